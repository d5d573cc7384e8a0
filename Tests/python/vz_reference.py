#!/usr/bin/env python3
"""A slow Python model of `zarrmount scan` / `zarrmount export` (Tests/python only).

It exists to prove the tests in test_virtual_datasets.py against a second implementation,
and to show in running code the mapping rules the Swift side follows (which Zarr metadata
xarray + zarr-python 3 decode to exactly what xarray gives on the netCDF originals).
Point the tests at it with

    ZARRMOUNT_VZ_CMD="$PWD/.venv/bin/python $PWD/Tests/python/vz_reference.py" .venv/bin/python -m pytest Tests/python

Same command line as the Swift CLI:

    vz_reference.py scan SOURCE... --refs OUT.json [--concat-dim DIM] [--order key|coordinate]
                    [--attrs first|drop_conflicts] [--on-error fail|skip]
                    [--stack-dim NAME --stack-regex REGEX] [--zarr-format 2|3]
    vz_reference.py export SOURCE... --zarr DIR [--zarr-format 2|3] [same flags]

It reads netCDF semantics (names, dimensions, attributes) with netCDF4-python and storage
(layout, filters, chunk addresses) with h5py; it does not pretend to be fast or complete.
"""
import argparse
import base64
import glob
import json
import math
import os
import re
import shutil
import struct
import sys

import numpy as np

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
import h5py  # noqa: E402
import netCDF4  # noqa: E402

SPLIT_THRESHOLD = 16 * 2 ** 20   # uncompressed contiguous arrays above this are split into a chunk grid
SPLIT_TARGET = 4 * 2 ** 20       # target chunk size of that grid
INLINE_DECODED_LIMIT = 2 ** 20   # arrays with filters Zarr cannot express are decoded and inlined up to this


class VZError(Exception):
    pass


# ------------------------------------------------------------------ model

class Arr:
    def __init__(self):
        self.name = ""
        self.dims = ()
        self.shape = ()
        self.chunks = ()
        self.dtype = None        # numpy dtype as stored (byte order kept); object for vlen strings
        self.kind = "numeric"    # numeric | vlen_str
        self.filters = []        # HDF5 pipeline order, numcodecs configs
        self.fill = None         # HDF5 fill value as a numpy scalar of self.dtype ("" for strings)
        self.attrs = {}
        self.refs = {}           # chunk index tuple -> ("ref", path, offset, length) | ("inline", bytes)
        self.enum = None
        self.source = ""


class Group:
    def __init__(self):
        self.attrs = {}
        self.arrays = {}         # name -> Arr (insertion order = netCDF order)
        self.groups = {}         # name -> Group


# ------------------------------------------------------------------ reading one file

def _attr_value(v):
    """netCDF4-python attribute value -> JSON-able python value (as the zarr side must store it)."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, str):
        return v
    if isinstance(v, np.ndarray):
        if v.dtype.kind in "SU" or v.dtype == object:
            return [x.decode() if isinstance(x, bytes) else str(x) for x in v.tolist()]
        if v.ndim == 0:
            return v.item()
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_attr_value(x) for x in v]
    return v


def _codec_pipeline(dcpl, dtype, name):
    out = []
    for i in range(dcpl.get_nfilters()):
        code, flags, values, fname = dcpl.get_filter(i)
        if code == 1:
            out.append({"id": "zlib", "level": int(values[0]) if values else 4})
        elif code == 2:
            out.append({"id": "shuffle", "elementsize": int(values[0]) if values else dtype.itemsize})
        elif code == 3:
            out.append({"id": "fletcher32"})
        else:
            return None  # no Zarr codec
    return out


def _encode_chunk(raw, filters):
    import numcodecs
    buf = raw
    for f in filters:
        buf = numcodecs.get_codec(dict(f)).encode(np.frombuffer(buf, dtype="u1"))
        buf = bytes(buf)
    return buf


def _chunk_grid(shape, chunks):
    return [int(math.ceil(s / c)) if c else 0 for s, c in zip(shape, chunks)]


def _read_group(nc, h5, path, fname):
    g = Group()
    g.attrs = {k: _attr_value(nc.getncattr(k)) for k in nc.ncattrs()}
    for name, var in nc.variables.items():
        h5path = (path.rstrip("/") + "/" + name) if path != "/" else "/" + name
        d = h5[h5path]
        a = Arr()
        a.name = name
        a.source = fname
        a.dims = tuple(var.dimensions)
        # netCDF's shape, not the HDF5 extent: a variable on an unlimited dimension has the dimension's
        # length (the longest variable on it); records past its own extent read as the fill value
        a.shape = tuple(int(s) for s in var.shape)
        a.attrs = {k: _attr_value(var.getncattr(k)) for k in var.ncattrs()}
        dt = d.dtype
        sinfo = h5py.check_string_dtype(dt)
        enum = h5py.check_enum_dtype(dt)
        if enum is not None:
            a.enum = dict(enum)
            dt = np.dtype(dt.str)
        if sinfo is not None and sinfo.length is None:
            a.kind = "vlen_str"
            a.dtype = np.dtype(object)
            vals = d.asstr()[()] if a.shape else np.array(d.asstr()[()], dtype=object)
            vals = np.asarray(vals, dtype=object)
            a.chunks = a.shape
            a.fill = ""
            import numcodecs
            blob = numcodecs.VLenUTF8().encode(np.array([("" if x is None else x) for x in vals.ravel().tolist()],
                                                        dtype=object))
            a.refs[(0,) * len(a.shape)] = ("inline", bytes(blob))
            g.arrays[name] = a
            continue
        if dt.kind == "O":
            print("warning: %s: %s: variable-length data not supported, left out" % (fname, h5path), file=sys.stderr)
            continue
        a.dtype = np.dtype(dt.str) if dt.fields is None else dt
        dcpl = d.id.get_create_plist()
        layout = dcpl.get_layout()
        fv = d.fillvalue
        a.fill = np.array(fv, dtype=a.dtype)[()] if fv is not None else np.zeros((), a.dtype)[()]
        nbytes = int(np.prod(a.shape, dtype=np.int64)) * a.dtype.itemsize
        pipeline = _codec_pipeline(dcpl, a.dtype, name) if layout == h5py.h5d.CHUNKED else []
        if layout == h5py.h5d.CHUNKED:
            a.chunks = tuple(int(c) for c in d.chunks)
            info = []
            # by coordinate: libhdf5's chunk iteration misreports coordinates when the unlimited axis is not 0
            for idx in np.ndindex(*_chunk_grid(d.shape, a.chunks)):
                c = d.id.get_chunk_info_by_coord(tuple(i * n for i, n in zip(idx, a.chunks)))
                if c.byte_offset is not None:
                    info.append((c.chunk_offset, c.filter_mask, c.byte_offset, c.size))
            # libhdf5 2.0 reports wrong chunk addresses for extensible arrays whose unlimited axis is not 0
            odd_ea = any(m is None for m in (d.maxshape or ())[1:])
            if pipeline is None or odd_ea or any(m for _, m, _, _ in info):
                if nbytes > INLINE_DECODED_LIMIT:
                    print("warning: %s: %s: filters without a Zarr codec, left out" % (fname, h5path), file=sys.stderr)
                    continue
                a.filters = []
                a.chunks = a.shape
                data = np.full(a.shape, a.fill, dtype=a.dtype)
                data[tuple(slice(0, n) for n in d.shape)] = d[()]
                a.refs[(0,) * len(a.shape)] = ("inline", data.tobytes())
            else:
                a.filters = pipeline
                for off, _, addr, size in info:
                    idx = tuple(o // c for o, c in zip(off, a.chunks))
                    a.refs[idx] = ("ref", fname, int(addr), int(size))
        elif layout == h5py.h5d.CONTIGUOUS:
            addr = d.id.get_offset()
            if a.shape == ():
                a.chunks = ()
            else:
                a.chunks = a.shape
            if addr is not None and nbytes > 0:
                if nbytes > SPLIT_THRESHOLD and len(a.shape) >= 1:
                    row = nbytes // a.shape[0]
                    r = max(1, min(a.shape[0], SPLIT_TARGET // max(row, 1)))
                    a.chunks = (r,) + tuple(a.shape[1:])
                    fsize = os.path.getsize(fname)
                    for i in range(_chunk_grid(a.shape, a.chunks)[0]):
                        start = addr + i * r * row
                        full = r * row
                        idx = (i,) + (0,) * (len(a.shape) - 1)
                        if start + full <= fsize:
                            a.refs[idx] = ("ref", fname, start, full)   # tail beyond the array is ignored
                        else:  # last chunk would read past the end of the file: inline it, zero padded
                            with open(fname, "rb") as fh:
                                fh.seek(start)
                                part = fh.read(nbytes - i * r * row)
                            a.refs[idx] = ("inline", part + bytes(full - len(part)))
                else:
                    a.refs[(0,) * len(a.shape)] = ("ref", fname, int(addr), nbytes)
        else:  # compact
            a.chunks = a.shape
            data = np.ascontiguousarray(d[()]).astype(a.dtype)
            a.refs[(0,) * len(a.shape)] = ("inline", data.tobytes())
        g.arrays[name] = a
    for gname, sub in nc.groups.items():
        g.groups[gname] = _read_group(sub, h5, (path.rstrip("/") + "/" + gname), fname)
    return g


def read_file(fname, check=True):
    fname = os.path.abspath(fname)
    if check and not fname.endswith(".nc"):  # netCDF-C crashes on some plain HDF5 files: find out in a child
        import subprocess
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "_check", fname], capture_output=True, text=True)
        if p.returncode < 0:
            raise VZError("%s: cannot parse: netCDF-C crashes on it (signal %d)" % (fname, -p.returncode))
    try:
        with netCDF4.Dataset(fname) as nc, h5py.File(fname, "r") as h5:
            nc.set_auto_maskandscale(False)
            return _read_group(nc, h5, "/", fname)
    except VZError:
        raise
    except Exception as e:  # noqa: BLE001
        raise VZError("%s: cannot parse: %s" % (fname, str(e).splitlines()[0] if str(e) else type(e).__name__))


# ------------------------------------------------------------------ combining

def _coord_values(fname, path):
    with h5py.File(fname, "r") as h5:
        return np.asarray(h5[path][()])


def _same_attr(a, b):
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def combine(files, groups, concat_dim, attrs_policy, stack_dim=None, stack_values=None):
    if len(groups) == 1 and not stack_dim:
        return groups[0]
    out = Group()
    _combine_group(out, files, groups, "", concat_dim, attrs_policy, stack_dim, stack_values)
    return out


def _combine_group(out, files, groups, path, concat_dim, attrs_policy, stack_dim, stack_values):
    first = groups[0]
    if attrs_policy == "drop_conflicts":
        merged = {}
        dropped = set()
        for g in groups:
            for k, v in g.attrs.items():
                if k in dropped:
                    continue
                if k in merged and not _same_attr(merged[k], v):
                    dropped.add(k)
                    del merged[k]
                elif k not in merged:
                    merged[k] = v
        out.attrs = merged
    else:
        out.attrs = dict(first.attrs)
    names = list(first.arrays)
    for g, f in zip(groups, files):
        if list(g.arrays) != names and set(g.arrays) != set(names):
            raise VZError("%s: variables differ from %s: %s" % (f, files[0], sorted(set(g.arrays) ^ set(names))))
    coord_names = set()
    for g in groups:
        for a in g.arrays.values():
            coord_names.update(n for n in a.dims if n in g.arrays)
    if stack_dim:
        arr = Arr()
        arr.name = stack_dim
        arr.dims = (stack_dim,)
        vals = np.array(stack_values)
        arr.dtype = np.dtype("<i8") if vals.dtype.kind in "iu" else None
        if arr.dtype is None:
            arr.kind = "vlen_str"
            arr.dtype = np.dtype(object)
            import numcodecs
            blob = bytes(numcodecs.VLenUTF8().encode(np.array([str(v) for v in stack_values], dtype=object)))
            arr.fill = ""
        else:
            blob = vals.astype("<i8").tobytes()
            arr.fill = np.zeros((), arr.dtype)[()]
        arr.shape = (len(stack_values),)
        arr.chunks = arr.shape
        arr.refs[(0,)] = ("inline", blob)
        out.arrays[stack_dim] = arr
    for name in names:
        arrs = [g.arrays[name] for g in groups]
        a0 = arrs[0]
        for a, f in zip(arrs[1:], files[1:]):
            if a.dtype != a0.dtype or a.kind != a0.kind:
                raise VZError("variable %s%s: dtype %s in %s but %s in %s" % (
                    path + "/" if path else "", name, a0.dtype.str if a0.dtype.fields is None else a0.dtype,
                    files[0], a.dtype.str if a.dtype.fields is None else a.dtype, f))
            if a.filters != a0.filters:
                raise VZError("variable %s: codecs %s in %s but %s in %s" % (
                    name, json.dumps(a0.filters), files[0], json.dumps(a.filters), f))
        vname = (path + "/" + name).lstrip("/")
        if stack_dim:
            if name in coord_names:
                out.arrays[name] = a0
                continue
            n = Arr()
            n.__dict__.update(a0.__dict__)
            n.dims = (stack_dim,) + a0.dims
            n.shape = (len(arrs),) + a0.shape
            n.chunks = (1,) + a0.chunks
            n.refs = {}
            for i, a in enumerate(arrs):
                if a.shape != a0.shape or a.chunks != a0.chunks:
                    raise VZError("variable %s: shape/chunks %s/%s in %s but %s/%s in %s" % (
                        vname, a0.shape, a0.chunks, files[0], a.shape, a.chunks, files[i]))
                for idx, r in a.refs.items():
                    n.refs[(i,) + idx] = r
            out.arrays[name] = n
            continue
        if concat_dim not in a0.dims:
            for a, f in zip(arrs[1:], files[1:]):
                if a.shape != a0.shape:
                    raise VZError("variable %s: shape %s in %s but %s in %s" % (vname, a0.shape, files[0], a.shape, f))
            out.arrays[name] = a0
            continue
        axis = a0.dims.index(concat_dim)
        n = Arr()
        n.__dict__.update(a0.__dict__)
        n.refs = {}
        total = sum(a.shape[axis] for a in arrs)
        n.shape = a0.shape[:axis] + (total,) + a0.shape[axis + 1:]
        if name == concat_dim and len(a0.dims) == 1 and a0.kind == "numeric":
            vals = np.concatenate([_coord_values(a.source, ("/" + path.strip("/") + "/" + name).replace("//", "/"))
                                   .astype(a0.dtype) for a in arrs])
            n.chunks = (total,)
            n.filters = []
            n.refs[(0,)] = ("inline", vals.tobytes())
            out.arrays[name] = n
            continue
        c = a0.chunks[axis]
        lens = [a.shape[axis] for a in arrs]
        for a, f in zip(arrs[1:], files[1:]):
            if a.chunks[:axis] + a.chunks[axis + 1:] != a0.chunks[:axis] + a0.chunks[axis + 1:] or a.chunks[axis] != c:
                raise VZError("variable %s: chunk shape %s in %s but %s in %s" % (vname, a0.chunks, files[0], a.chunks, f))
        if all(n_ % c == 0 for n_ in lens[:-1]):
            off = 0
            for a, n_ in zip(arrs, lens):
                for idx, r in a.refs.items():
                    k = list(idx)
                    k[axis] += off // c
                    n.refs[tuple(k)] = r
                off += n_
        elif axis == 0 and not a0.filters and len(set(lens)) == 1 and lens[0] < c \
                and all(r[0] == "ref" for a in arrs for r in a.refs.values()):
            m = lens[0]
            n.chunks = (m,) + a0.chunks[1:]
            row = int(np.prod(a0.chunks[1:], dtype=np.int64)) * a0.dtype.itemsize
            for i, a in enumerate(arrs):
                for idx, r in a.refs.items():
                    n.refs[(i,) + idx[1:]] = ("ref", r[1], r[2], m * row)
        else:
            bad = next(i for i, n_ in enumerate(lens) if n_ % c)
            raise VZError("variable %s: chunks along %s do not line up: %s has %d along %s in chunks %s; "
                          "the next file %s starts at a chunk boundary of %s" % (
                              vname, concat_dim, files[bad], lens[bad], concat_dim, a0.chunks,
                              files[min(bad + 1, len(files) - 1)], arrs[min(bad + 1, len(arrs) - 1)].chunks))
        out.arrays[name] = n
    for gname in first.groups:
        sub = Group()
        _combine_group(sub, files, [g.groups[gname] for g in groups], path + "/" + gname, concat_dim, attrs_policy,
                       stack_dim, stack_values)
        out.groups[gname] = sub


# ------------------------------------------------------------------ encoding metadata

def _json_number(x):
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Infinity" if x > 0 else "-Infinity"
    return x


def _v2_dtype(dt):
    if dt.kind == "O":
        return "|O"
    if dt.fields is not None:
        out = []
        pos = 0
        for fname in dt.names:
            fdt, foff = dt.fields[fname][:2]
            if foff > pos:
                out.append(["", "|V%d" % (foff - pos)])
            out.append([fname, _v2_dtype(fdt)] if fdt.shape == () else [fname, fdt.base.str, list(fdt.shape)])
            pos = foff + fdt.itemsize
        if dt.itemsize > pos:
            out.append(["", "|V%d" % (dt.itemsize - pos)])
        return out
    return dt.str


def _fill_json(value, dt):
    """A fill value as Zarr v2 .zarray / v3 zarr.json write it."""
    if dt.kind == "O":
        return ""
    if dt.fields is not None or dt.kind in "SV":
        return base64.standard_b64encode(np.array(value, dtype=dt).tobytes()).decode()
    v = np.array(value, dtype=dt)[()].item()
    if dt.kind == "f":
        return _json_number(float(v))
    if dt.kind == "b":
        return bool(v)
    return int(v)


def _has_fill_attr(a):
    return "_FillValue" in a.attrs


def _json_attrs(attrs):
    return {k: v for k, v in attrs.items()}


def _missing_fill_chunk(a):
    """The bytes every missing chunk key must serve when fill_value cannot say it (v2, no _FillValue)."""
    if a.kind != "numeric":
        return None
    fillbytes = np.array(a.fill, dtype=a.dtype).tobytes()
    if not any(fillbytes):
        return None
    n = int(np.prod(a.chunks, dtype=np.int64)) if a.chunks else 1
    raw = fillbytes * n
    return _encode_chunk(raw, a.filters)


def _v2_meta(a):
    filters = list(a.filters)
    compressor = None
    if a.kind == "vlen_str":
        filters = [{"id": "vlen-utf8"}]
    elif filters and filters[-1]["id"] == "zlib" and all(f["id"] == "shuffle" for f in filters[:-1]):
        compressor = filters.pop()
    if a.kind == "vlen_str":
        fill = None
    elif _has_fill_attr(a):
        fill = _fill_json(np.array(a.attrs["_FillValue"]).astype(a.dtype)[()], a.dtype)
    else:
        fill = None
    zarray = {"shape": list(a.shape), "chunks": list(a.chunks), "dtype": _v2_dtype(a.dtype), "fill_value": fill,
              "order": "C", "filters": filters or None, "compressor": compressor, "dimension_separator": ".",
              "zarr_format": 2}
    zattrs = {k: v for k, v in a.attrs.items() if k != "_FillValue"}
    if a.enum is not None:
        zattrs["_nc_enum"] = dict(a.enum.items())
    zattrs["_ARRAY_DIMENSIONS"] = list(a.dims)
    return zarray, zattrs


V3_TYPES = {"i1": "int8", "i2": "int16", "i4": "int32", "i8": "int64", "u1": "uint8", "u2": "uint16", "u4": "uint32",
            "u8": "uint64", "f2": "float16", "f4": "float32", "f8": "float64", "b1": "bool", "c8": "complex64",
            "c16": "complex128"}


def _v3_dtype(dt):
    if dt.kind == "O":
        return "string"
    if dt.fields is not None:
        fields = []
        pos = 0
        for fname in dt.names:
            fdt, foff = dt.fields[fname][:2]
            if foff > pos:
                fields.append(["_pad%d" % pos, {"name": "raw_bytes", "configuration": {"length_bytes": foff - pos}}])
            fields.append([fname, _v3_dtype(fdt)])
            pos = foff + fdt.itemsize
        if dt.itemsize > pos:
            fields.append(["_pad%d" % pos, {"name": "raw_bytes", "configuration": {"length_bytes": dt.itemsize - pos}}])
        return {"name": "structured", "configuration": {"fields": fields}}
    if dt.kind == "S":
        return {"name": "null_terminated_bytes", "configuration": {"length_bytes": dt.itemsize}}
    if dt.kind == "V":
        return {"name": "raw_bytes", "configuration": {"length_bytes": dt.itemsize}}
    return V3_TYPES[dt.kind + str(dt.itemsize)]


def _xarray_fillvalue_attr(value, dt):
    """`_FillValue` in v3 attributes, in the encoding xarray's FillValueCoder.decode reads."""
    if dt.kind == "f":
        return base64.standard_b64encode(struct.pack("<d", float(value))).decode()
    if dt.kind in "iu":
        return int(value)
    if dt.kind == "b":
        return bool(value)
    return None


def _v3_meta(a):
    codecs = []
    if a.kind == "vlen_str":
        codecs = [{"name": "vlen-utf8", "configuration": {}}]
    else:
        if a.dtype.fields is None and a.dtype.itemsize > 1 and a.dtype.kind not in "SV":
            codecs.append({"name": "bytes", "configuration": {"endian": "big" if a.dtype.byteorder == ">" else "little"}})
        else:
            codecs.append({"name": "bytes"})
        for f in a.filters:
            cfg = {k: v for k, v in f.items() if k != "id"}
            codecs.append({"name": "numcodecs." + f["id"], "configuration": cfg})
    attrs = {k: v for k, v in a.attrs.items() if k != "_FillValue"}
    if _has_fill_attr(a):
        enc = _xarray_fillvalue_attr(a.attrs["_FillValue"], a.dtype)
        if enc is not None:
            attrs["_FillValue"] = enc
    if a.enum is not None:
        attrs["_nc_enum"] = dict(a.enum.items())
    meta = {"zarr_format": 3, "node_type": "array", "shape": list(a.shape), "data_type": _v3_dtype(a.dtype),
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(a.chunks) if a.chunks else []}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": _fill_json(a.fill, a.dtype), "codecs": codecs, "attributes": attrs,
            "dimension_names": list(a.dims)}
    return meta


def _chunk_keys(a):
    grid = _chunk_grid(a.shape, a.chunks)
    if not a.shape:
        return [()]
    if any(g == 0 for g in grid):
        return []
    return list(np.ndindex(*grid))


def _walk_arrays(g, prefix=""):
    for name, a in g.arrays.items():
        yield (prefix + name), a
    for gname, s in g.groups.items():
        yield from _walk_arrays(s, prefix + gname + "/")


def _walk_groups(g, prefix=""):
    yield prefix, g
    for gname, s in g.groups.items():
        yield from _walk_groups(s, prefix + gname + "/")


def _dumps(obj):
    return json.dumps(obj, allow_nan=True, sort_keys=False, separators=(",", ":"))


def _chunk_bytes(r):
    if r[0] == "inline":
        return r[1]
    with open(r[1], "rb") as fh:
        fh.seek(r[2])
        return fh.read(r[3])


def write_refs(root, out):
    refs = {}
    consolidated = {}
    for gp, g in _walk_groups(root):
        refs[gp + ".zgroup"] = _dumps({"zarr_format": 2})
        refs[gp + ".zattrs"] = _dumps(_json_attrs(g.attrs))
        consolidated[gp + ".zgroup"] = {"zarr_format": 2}
        consolidated[gp + ".zattrs"] = _json_attrs(g.attrs)
    for path, a in _walk_arrays(root):
        zarray, zattrs = _v2_meta(a)
        refs[path + "/.zarray"] = _dumps(zarray)
        refs[path + "/.zattrs"] = _dumps(zattrs)
        consolidated[path + "/.zarray"] = zarray
        consolidated[path + "/.zattrs"] = zattrs
        missing = _missing_fill_chunk(a) if zarray["fill_value"] is None else None
        for idx in _chunk_keys(a):
            key = path + "/" + (".".join(str(i) for i in idx) if idx else "0")
            r = a.refs.get(tuple(idx))
            if r is None:
                if missing is not None:
                    refs[key] = "base64:" + base64.b64encode(missing).decode()
                continue
            if r[0] == "inline":
                refs[key] = "base64:" + base64.b64encode(r[1]).decode()
            else:
                refs[key] = [r[1], r[2], r[3]]
    # consolidated metadata: without it zarr 3.1 + fsspec cannot list sub-groups through reference://
    refs[".zmetadata"] = _dumps({"zarr_consolidated_format": 1, "metadata": consolidated})
    with open(out, "w") as fh:
        json.dump({"version": 1, "refs": refs}, fh, allow_nan=True, indent=None, separators=(",", ":"))


def export_store(root, out, fmt):
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)

    def put(key, data):
        p = os.path.join(out, key)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(data if isinstance(data, bytes) else data.encode())

    if fmt == 2:
        consolidated = {}
        for gp, g in _walk_groups(root):
            consolidated[gp + ".zgroup"] = {"zarr_format": 2}
            consolidated[gp + ".zattrs"] = _json_attrs(g.attrs)
        for path, a in _walk_arrays(root):
            zarray, zattrs = _v2_meta(a)
            consolidated[path + "/.zarray"] = zarray
            consolidated[path + "/.zattrs"] = zattrs
            missing = _missing_fill_chunk(a) if zarray["fill_value"] is None else None
            for idx in _chunk_keys(a):
                key = path + "/" + (".".join(str(i) for i in idx) if idx else "0")
                r = a.refs.get(tuple(idx))
                if r is None:
                    if missing is not None:
                        put(key, missing)
                    continue
                put(key, _chunk_bytes(r))
        for k, v in consolidated.items():
            put(k, _dumps(v))
        put(".zmetadata", _dumps({"zarr_consolidated_format": 1, "metadata": consolidated}))
        return
    metas = {}
    for gp, g in _walk_groups(root):
        metas[gp.rstrip("/")] = {"zarr_format": 3, "node_type": "group", "attributes": _json_attrs(g.attrs)}
    for path, a in _walk_arrays(root):
        metas[path] = _v3_meta(a)
        for idx in _chunk_keys(a):
            r = a.refs.get(tuple(idx))
            if r is None:
                continue
            key = path + "/c" + ("/" + "/".join(str(i) for i in idx) if idx else "")
            put(key, _chunk_bytes(r))
    for k, v in metas.items():
        if k:
            put(k + "/zarr.json", _dumps(v))
    rootmeta = dict(metas[""])
    rootmeta["consolidated_metadata"] = {"kind": "inline", "must_understand": False,
                                         "metadata": {k: v for k, v in metas.items() if k}}
    put("zarr.json", _dumps(rootmeta))


# ------------------------------------------------------------------ CLI

def _load_config(path):
    import yaml
    with open(path) as fh:
        text = fh.read()
    cfg = yaml.safe_load(text) or {}
    known = {"sources", "concat_dim", "order", "attrs", "zarr_format", "on_error"}
    for k in cfg:
        if k not in known:
            line = next((i + 1 for i, ln in enumerate(text.splitlines()) if ln.split(":")[0].strip() == k), 0)
            raise VZError("%s:%d: unknown key %r" % (path, line, k))
    base = os.path.dirname(os.path.abspath(path))
    cfg["sources"] = [s if os.path.isabs(s) else os.path.join(base, s) for s in cfg.get("sources", [])]
    return cfg


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_check"]:
        try:
            read_file(argv[1], check=False)
        except VZError:
            pass
        return 0
    ap = argparse.ArgumentParser(prog="vz_reference")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd in ("scan", "export"):
        p = sub.add_parser(cmd)
        p.add_argument("sources", nargs="+")
        if cmd == "scan":
            p.add_argument("--refs", required=True)
        else:
            p.add_argument("--zarr", required=True)
        p.add_argument("--concat-dim")
        p.add_argument("--order", choices=["key", "coordinate"])
        p.add_argument("--attrs", choices=["first", "drop_conflicts"])
        p.add_argument("--on-error", choices=["fail", "skip"])
        p.add_argument("--stack-dim")
        p.add_argument("--stack-regex")
        p.add_argument("--zarr-format", type=int, choices=[2, 3])
    args = ap.parse_args(argv)
    try:
        cfg = {}
        sources = args.sources
        if len(sources) == 1 and sources[0].endswith((".yaml", ".yml")):
            cfg = _load_config(sources[0])
            sources = cfg["sources"]
        concat_dim = args.concat_dim or cfg.get("concat_dim")
        order = args.order or cfg.get("order", "key")
        attrs_policy = args.attrs or cfg.get("attrs", "first")
        on_error = args.on_error or cfg.get("on_error", "fail")
        fmt = args.zarr_format or cfg.get("zarr_format", 2)
        files = []
        for s in sources:
            hits = sorted(glob.glob(s)) if any(ch in s for ch in "*?[") else [s]
            if not hits:
                raise VZError("%s: no such file" % s)
            files.extend(os.path.abspath(h) for h in hits)
        files = sorted(set(files))
        parsed = []
        for f in files:
            try:
                parsed.append((f, read_file(f)))
            except VZError as e:
                if on_error == "skip":
                    print("warning: skipping %s" % e, file=sys.stderr)
                    continue
                raise
        if not parsed:
            raise VZError("no files to scan")
        stack_values = None
        if args.stack_dim:
            rx = re.compile(args.stack_regex)
            stack_values = []
            for f, _ in parsed:
                m = rx.search(os.path.basename(f))
                if not m:
                    raise VZError("%s: does not match --stack-regex %s" % (f, args.stack_regex))
                v = m.group(1)
                stack_values.append(int(v) if re.fullmatch(r"-?\d+", v) else v)
        elif len(parsed) > 1 and not concat_dim:
            raise VZError("%d files but no --concat-dim" % len(parsed))
        if order == "coordinate" and concat_dim and len(parsed) > 1:
            def first_value(item):
                g = item[1]
                a = g.arrays.get(concat_dim)
                if a is None:
                    raise VZError("%s: no coordinate %s to order by" % (item[0], concat_dim))
                return _coord_values(a.source, "/" + concat_dim).ravel()[0]
            parsed.sort(key=first_value)
        root = combine([f for f, _ in parsed], [g for _, g in parsed], concat_dim, attrs_policy,
                       args.stack_dim, stack_values)
        if args.cmd == "scan":
            if fmt != 2:
                raise VZError("kerchunk references are Zarr v2 only (--zarr-format 3 needs export)")
            write_refs(root, args.refs)
        else:
            export_store(root, args.zarr, fmt)
    except VZError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
