#!/usr/bin/env python3
"""Write libhdf5 (h5py) oracles for HDF5 files, in the corpus oracle schema.

For each FILE, writes OUT/<name>.jsonl.gz with the same record layout as
shared/hdf5-corpus/expected/**.jsonl.gz (see the corpus README): one
"file" record, then one record per group / dataset / committed datatype
reached by hard links from "/" (breadth first, links in name order; each
object once, other paths to it in "aliases").

All byte offsets are absolute file offsets (user block included).  Layout
messages and superblocks are parsed from the bytes by this script
(libhdf5 does not expose the chunk-index type).  For extensible-array
datasets whose unlimited dimension is not dimension 0, chunk coordinates
are rebuilt from the reported ones (see unswizzle()), because libhdf5's
chunk iteration and per-coordinate lookup both get them wrong there.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # tools/, for _bootstrap
import _bootstrap  # noqa: E402
_REPO = _bootstrap.use_repo_venv(__file__, warn_if_missing=True)

import argparse
import gzip
import hashlib
import json
import math
import struct

import numpy as np
import h5py
from h5py import h5a, h5d, h5o, h5t

SIGNATURE = b"\x89HDF\r\n\x1a\n"
UNDEF = None
MAX_LISTED_CHUNKS = 1000
MAX_HEX_BYTES = 65536
CHECK_BYTES = True


# ---------------------------------------------------------------- raw bytes

class RawFile:
    """Minimal byte-level reader: superblock, object headers, layout messages."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        self.size = len(self.data)
        self.sb = self._superblock()
        self.base = self.sb.get("base_address", 0) if self.sb else 0
        self.so = self.sb.get("sizeof_offsets", 8) if self.sb else 8
        self.sl = self.sb.get("sizeof_lengths", 8) if self.sb else 8

    def u(self, pos, n):
        return int.from_bytes(self.data[pos:pos + n], "little")

    def addr(self, pos, n=None):
        n = n or self.so
        v = self.u(pos, n)
        return None if v == (1 << (8 * n)) - 1 else v

    def _superblock(self):
        pos = 0
        while pos + 8 <= self.size:
            if self.data[pos:pos + 8] == SIGNATURE:
                break
            pos = 512 if pos == 0 else pos * 2
        else:
            return None
        d = self.data
        v = d[pos + 8]
        sb = {"offset": pos, "version": v}
        if v in (0, 1):
            sb.update(freespace_version=d[pos + 9], root_symtab_version=d[pos + 10],
                      shared_header_version=d[pos + 12], sizeof_offsets=d[pos + 13],
                      sizeof_lengths=d[pos + 14], group_leaf_k=self.u(pos + 16, 2),
                      group_internal_k=self.u(pos + 18, 2), consistency_flags=self.u(pos + 20, 4))
            p = pos + 24
            if v == 1:
                sb["istore_k"] = self.u(p, 2)
                p += 4
            so = sb["sizeof_offsets"]
            self.so = so
            sb["base_address_stored"] = self.u(p, so)
            sb["freespace_address"] = self.addr(p + so, so)
            sb["eof_address"] = self.u(p + 2 * so, so)
            sb["driver_info_address"] = self.addr(p + 3 * so, so)
            e = p + 4 * so
            sb["root_symbol_table_entry"] = {
                "link_name_offset": self.u(e, so), "object_header_address": self.u(e + so, so),
                "cache_type": self.u(e + 2 * so, 4)}
            if sb["root_symbol_table_entry"]["cache_type"] == 1:
                sb["root_symbol_table_entry"]["btree_address"] = self.u(e + 2 * so + 8, so)
                sb["root_symbol_table_entry"]["heap_address"] = self.u(e + 3 * so + 8, so)
            sb["root_object_header_address"] = sb["root_symbol_table_entry"]["object_header_address"]
        elif v in (2, 3, 4):
            so = d[pos + 9]
            self.so = so
            sb.update(sizeof_offsets=so, sizeof_lengths=d[pos + 10], consistency_flags=d[pos + 11])
            p = pos + 12
            sb["base_address_stored"] = self.u(p, so)
            sb["superblock_extension_address"] = self.addr(p + so, so)
            sb["eof_address"] = self.u(p + 2 * so, so)
            sb["root_object_header_address"] = self.u(p + 3 * so, so)
            sb["checksum"] = self.u(p + 4 * so, 4)
        sb["base_address"] = pos
        return sb

    def messages(self, addr):
        """(type, data_bytes, msg_flags) of every message in the object header at addr."""
        out = []
        pos = self.base + addr
        d = self.data
        if d[pos:pos + 4] == b"OHDR":
            flags = d[pos + 5]
            p = pos + 6
            if flags & 0x20:
                p += 16
            if flags & 0x10:
                p += 4
            n = 1 << (flags & 3)
            size0 = self.u(p, n)
            p += n
            blocks = [(p, p + size0)]
            hdr = 4 + (2 if flags & 0x04 else 0)
            i = 0
            while i < len(blocks):
                start, end = blocks[i]
                i += 1
                q = start
                while q + hdr <= end:
                    mtype = d[q]
                    msize = self.u(q + 1, 2)
                    mflags = d[q + 3]
                    body = d[q + hdr:q + hdr + msize]
                    out.append((mtype, body, mflags))
                    if mtype == 0x10:
                        caddr, clen = self.u(q + hdr, self.so), self.u(q + hdr + self.so, self.sl)
                        cp = self.base + caddr
                        blocks.append((cp + 4, cp + clen - 4))  # "OCHK" ... checksum
                    q += hdr + msize
            return out, 2
        # version 1
        nmesgs = self.u(pos + 2, 2)
        hsize = self.u(pos + 8, 4)
        blocks = [(pos + 16, pos + 16 + hsize)]
        i = 0
        while i < len(blocks) and len(out) < nmesgs:
            start, end = blocks[i]
            i += 1
            q = start
            while q + 8 <= end and len(out) < nmesgs:
                mtype = self.u(q, 2)
                msize = self.u(q + 2, 2)
                mflags = d[q + 4]
                body = d[q + 8:q + 8 + msize]
                out.append((mtype, body, mflags))
                if mtype == 0x10:
                    caddr, clen = self.u(q + 8, self.so), self.u(q + 8 + self.so, self.sl)
                    blocks.append((self.base + caddr, self.base + caddr + clen))
                q += 8 + msize
        return out, 1

    def layout(self, body):
        """Parse a data layout message body (addresses as stored, relative to the base address)."""
        so, sl = self.so, self.sl
        b = body

        def A(p):  # raw (base-relative) address, as stored
            v = int.from_bytes(b[p:p + so], "little")
            return None if v == (1 << (8 * so)) - 1 else v

        def U(p, n):
            return int.from_bytes(b[p:p + n], "little")
        v = b[0]
        r = {"message_version": v}
        classes = {0: "compact", 1: "contiguous", 2: "chunked", 3: "virtual"}
        if v in (1, 2):
            ndims, cls = b[1], b[2]
            r["class"] = classes.get(cls, cls)
            p = 8
            if cls != 0:
                r["address"] = A(p)
                p += so
            dims = [U(p + 4 * i, 4) for i in range(ndims)]
            p += 4 * ndims
            if cls == 2:
                r["chunk_dims_raw"] = dims
                r["chunk_index"] = "btree_v1"
            elif cls == 0:
                r["compact_size"] = U(p, 4)
            return r
        cls = b[1]
        r["class"] = classes.get(cls, cls)
        if cls == 0:
            r["compact_size"] = U(2, 2)
        elif cls == 1:
            r["address"] = A(2)
            r["size"] = U(2 + so, sl)
        elif cls == 3:
            r["address"] = A(2)
            r["index"] = U(2 + so, 4)
        elif cls == 2 and v == 3:
            ndims = b[2]
            r["index_address"] = A(3)
            r["chunk_dims_raw"] = [U(3 + so + 4 * i, 4) for i in range(ndims)]
            r["chunk_index"] = "btree_v1"
        elif cls == 2 and v >= 4:
            flags, ndims, enc = b[2], b[3], b[4]
            r["layout_flags"] = flags
            p = 5
            r["chunk_dims_raw"] = [U(p + enc * i, enc) for i in range(ndims)]
            p += enc * ndims
            it = b[p]
            p += 1
            names = {1: "single_chunk", 2: "implicit", 3: "fixed_array", 4: "extensible_array", 5: "btree_v2"}
            r["chunk_index"] = names.get(it, it)
            params = {}
            if it == 1 and flags & 2:
                params = {"filtered_chunk_size": U(p, sl), "filter_mask": U(p + sl, 4)}
                p += sl + 4
            elif it == 3:
                params = {"max_dblock_page_bits": b[p]}
                p += 1
            elif it == 4:
                params = dict(zip(["max_bits", "index_elements", "min_pointers", "min_elements",
                                   "max_dblock_page_bits"], b[p:p + 5]))
                p += 5
            elif it == 5:
                params = {"node_size": U(p, 4), "split_percent": b[p + 4], "merge_percent": b[p + 5]}
                p += 6
            r["index_params"] = params
            r["index_address"] = A(p)
        return r


def lookup3(data, initval=0):
    """Jenkins lookup3 hashlittle(), as libhdf5's H5_checksum_lookup3."""
    M = 0xFFFFFFFF

    def rot(x, k):
        return ((x << k) | (x >> (32 - k))) & M
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & M
    i = 0
    while length > 12:
        a = (a + int.from_bytes(data[i:i + 4], "little")) & M
        b = (b + int.from_bytes(data[i + 4:i + 8], "little")) & M
        c = (c + int.from_bytes(data[i + 8:i + 12], "little")) & M
        a = (a - c) & M; a ^= rot(c, 4); c = (c + b) & M
        b = (b - a) & M; b ^= rot(a, 6); a = (a + c) & M
        c = (c - b) & M; c ^= rot(b, 8); b = (b + a) & M
        a = (a - c) & M; a ^= rot(c, 16); c = (c + b) & M
        b = (b - a) & M; b ^= rot(a, 19); a = (a + c) & M
        c = (c - b) & M; c ^= rot(b, 4); b = (b + a) & M
        i += 12
        length -= 12
    if length == 0:
        return c
    tail = data[i:] + bytes(12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & M
    b = (b + int.from_bytes(tail[4:8], "little")) & M
    c = (c + int.from_bytes(tail[8:12], "little")) & M
    c ^= b; c = (c - rot(b, 14)) & M
    a ^= c; a = (a - rot(c, 11)) & M
    b ^= a; b = (b - rot(a, 25)) & M
    c ^= b; c = (c - rot(b, 16)) & M
    a ^= c; a = (a - rot(c, 4)) & M
    b ^= a; b = (b - rot(a, 14)) & M
    c ^= b; c = (c - rot(b, 24)) & M
    return c


def flags_cleared_copy(raw, path):
    """A temporary copy of a v2/v3 file whose superblock status flags are cleared (checksum fixed)."""
    import tempfile
    sb = raw.sb
    if not sb or sb["version"] not in (2, 3) or not sb.get("consistency_flags"):
        return None
    pos = sb["offset"]
    end = pos + 12 + 4 * sb["sizeof_offsets"]
    data = bytearray(raw.data)
    data[pos + 11] = 0
    data[end:end + 4] = lookup3(bytes(data[pos:end])).to_bytes(4, "little")
    fd, tmp = tempfile.mkstemp(suffix=".h5", prefix="h5oracle-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return tmp


# ---------------------------------------------------------------- types & values

ORDER = {h5t.ORDER_LE: "LE", h5t.ORDER_BE: "BE"}
CSET = {h5t.CSET_ASCII: "ascii", h5t.CSET_UTF8: "utf8"}
STRPAD = {h5t.STR_NULLTERM: "nullterm", h5t.STR_NULLPAD: "nullpad", h5t.STR_SPACEPAD: "spacepad"}


def describe_type(t):
    c = t.get_class()
    size = t.get_size()
    if c == h5t.INTEGER:
        return {"class": "integer", "size": size, "order": ORDER.get(t.get_order(), str(t.get_order())),
                "signed": t.get_sign() != h5t.SGN_NONE, "precision": t.get_precision(), "offset": t.get_offset()}
    if c == h5t.FLOAT:
        sp, ep, es, mp, ms = t.get_fields()
        return {"class": "float", "size": size, "order": ORDER.get(t.get_order(), str(t.get_order())),
                "precision": t.get_precision(), "offset": t.get_offset(),
                "fields": {"sign_pos": sp, "exp_pos": ep, "exp_size": es, "mant_pos": mp, "mant_size": ms},
                "ebias": t.get_ebias()}
    if c == h5t.STRING:
        return {"class": "string", "size": size, "variable": bool(t.is_variable_str()),
                "cset": CSET.get(t.get_cset(), str(t.get_cset())), "strpad": STRPAD.get(t.get_strpad(), str(t.get_strpad()))}
    if c == h5t.BITFIELD:
        return {"class": "bitfield", "size": size, "order": ORDER.get(t.get_order(), str(t.get_order()))}
    if c == h5t.OPAQUE:
        tag = t.get_tag()
        return {"class": "opaque", "size": size, "tag": tag.decode("utf-8", "replace") if isinstance(tag, bytes) else tag}
    if c == h5t.COMPOUND:
        return {"class": "compound", "size": size, "members": [
            {"name": t.get_member_name(i).decode("utf-8", "replace"), "offset": t.get_member_offset(i),
             "type": describe_type(t.get_member_type(i))} for i in range(t.get_nmembers())]}
    if c == h5t.ENUM:
        return {"class": "enum", "size": size, "base": describe_type(t.get_super()),
                "members": {t.get_member_name(i).decode("utf-8", "replace"): int(t.get_member_value(i))
                            for i in range(t.get_nmembers())}}
    if c == h5t.VLEN:
        return {"class": "vlen", "size": size, "base": describe_type(t.get_super())}
    if c == h5t.ARRAY:
        return {"class": "array", "size": size, "dims": list(t.get_array_dims()), "base": describe_type(t.get_super())}
    if c == h5t.REFERENCE:
        if t.equal(h5t.STD_REF_OBJ):
            kind = "object"
        elif t.equal(h5t.STD_REF_DSETREG):
            kind = "dataset_region"
        else:
            kind = "reference"
        return {"class": "reference", "size": size, "ref_kind": kind}
    if c == h5t.TIME:
        return {"class": "time", "size": size}
    return {"class": "unknown:%d" % c, "size": size}


def type_is_fixed(d):
    """True if the type's bytes are self-contained (no heap pointers)."""
    c = d["class"]
    if c == "string":
        return not d["variable"]
    if c == "vlen":
        return False
    if c == "reference":
        return d.get("ref_kind") == "object"
    if c == "compound":
        return all(type_is_fixed(m["type"]) for m in d["members"])
    if c in ("array", "enum"):
        return type_is_fixed(d["base"])
    return True


def dtype_str(get):
    try:
        dt = get()
        return str(dt.descr) if dt.names is not None else dt.str
    except Exception as e:  # noqa: BLE001
        return "unmapped: %s" % e


def jsonify(v, f):
    """h5py value -> JSON, the corpus oracle's way."""
    if isinstance(v, h5py.Empty):
        return repr(v)
    if isinstance(v, (h5py.RegionReference, h5py.Reference)):
        key = "region_ref" if isinstance(v, h5py.RegionReference) else "object_ref"
        name = _ref_name(f, v)
        if isinstance(name, tuple):
            return {key: name[0], "error": name[1]}
        return {key: name}
    if isinstance(v, (bytes, np.bytes_)):
        try:
            return bytes(v).decode("utf-8")
        except UnicodeDecodeError:
            return {"hex": bytes(v).hex()}
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        x = float(v)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if isinstance(v, (complex, np.complexfloating)):
        return [jsonify(v.real, f), jsonify(v.imag, f)]
    if isinstance(v, np.void):
        if v.dtype.names:
            return {n: jsonify(v[n], f) for n in v.dtype.names}
        return {"hex": bytes(v).hex()}
    if isinstance(v, np.ndarray):
        if v.dtype.names is None and v.dtype.kind == "V":
            return {"hex": v.tobytes().hex()} if v.ndim == 0 else [jsonify(x, f) for x in v]
        if v.ndim == 0:
            return jsonify(v[()], f)
        return [jsonify(x, f) for x in v]
    if isinstance(v, (list, tuple)):
        return [jsonify(x, f) for x in v]
    return repr(v)


def _ref_name(f, ref):
    if not ref:
        return None
    try:
        return f[ref].name
    except Exception as e:  # noqa: BLE001
        return ("?", str(e))


def space_desc(sp):
    cls = sp.get_simple_extent_type()
    from h5py import h5s
    if cls == h5s.SCALAR:
        return {"class": "scalar"}
    if cls == h5s.NULL:
        return {"class": "null"}
    dims = list(sp.get_simple_extent_dims())
    maxdims = [None if m == h5s.UNLIMITED else m for m in sp.get_simple_extent_dims(True)]
    return {"class": "simple", "dims": dims, "maxdims": maxdims}


def attributes(obj, f):
    out = []
    try:
        names = sorted(obj.attrs.keys())
    except Exception as e:  # noqa: BLE001
        return [{"name": "", "read_error": "%s: %s" % (type(e).__name__, e)}]
    for name in names:
        rec = {"name": name}
        try:
            aid = h5a.open(obj.id, name.encode("utf-8"))
            ft = aid.get_type()
            rec["type"] = describe_type(ft)
            sp = space_desc(aid.get_space())
            rec["space"] = sp
            rec["dtype"] = dtype_str(lambda: aid.dtype)
            npts = 0 if sp["class"] == "null" else (1 if sp["class"] == "scalar" else int(np.prod(sp["dims"])))
            nbytes = npts * ft.get_size()
            if nbytes > MAX_HEX_BYTES:
                rec["value_omitted"] = True
                rec["nelements"] = npts
                out.append(rec)
                continue
            if sp["class"] != "null" and type_is_fixed(rec["type"]):
                buf = np.zeros(nbytes, dtype=np.uint8)
                try:
                    aid.read(buf, mtype=ft)
                    rec["value_filetype_hex"] = _zero_padding(buf.tobytes(), rec["type"], npts).hex()
                except Exception as e:  # noqa: BLE001
                    rec["value_filetype_hex_error"] = "%s: %s" % (type(e).__name__, e)
            try:
                v = obj.attrs[name]
                t = rec["type"]
                if t["class"] == "vlen" and t["base"]["class"] in ("integer", "float") and t["base"]["order"] == "BE":
                    v = _fix_vlen_be(v)
                rec["value"] = jsonify(v, f)
            except Exception as e:  # noqa: BLE001
                rec["read_error"] = "%s: %s" % (type(e).__name__, e)
        except Exception as e:  # noqa: BLE001
            rec["read_error"] = "%s: %s" % (type(e).__name__, e)
        out.append(rec)
    return out


def _fix_vlen_be(v):
    """h5py 3.16 hands back a big-endian vlen sequence's raw bytes as native numbers; swap them."""
    if isinstance(v, np.ndarray) and v.dtype != object:
        return v.byteswap() if v.dtype.byteorder in ("=", "<", "|") and sys.byteorder == "little" else v
    if isinstance(v, np.ndarray):
        out = np.empty(v.shape, dtype=object)
        for idx in np.ndindex(v.shape):
            out[idx] = _fix_vlen_be(v[idx])
        return out
    return v


def _member_mask(t, mask, base):
    """Mark bytes covered by (nested) compound members."""
    if t["class"] == "compound":
        for m in t["members"]:
            _member_mask(m["type"], mask, base + m["offset"])
    elif t["class"] == "array":
        n = int(np.prod(t["dims"])) if t["dims"] else 1
        bs = t["base"]["size"]
        for i in range(n):
            _member_mask(t["base"], mask, base + i * bs)
    else:
        mask[base:base + t["size"]] = 1


def _zero_padding(raw, t, npts):
    if t["class"] not in ("compound", "array"):
        return raw
    mask = np.zeros(t["size"], dtype=np.uint8)
    _member_mask(t, mask, 0)
    if mask.all():
        return raw
    a = np.frombuffer(raw, dtype=np.uint8).reshape(npts, t["size"]) * mask
    return a.tobytes()


# ---------------------------------------------------------------- objects

def chunk_digest(chunks):
    h = hashlib.sha256()
    for c in chunks:
        h.update(("%s;%d;%d;%d\n" % (",".join(map(str, c["offset"])), c["filter_mask"],
                                      c["byte_offset"], c["size"])).encode())
    return h.hexdigest()


def unswizzle(r, u, grid):
    """True chunk grid coordinates of an extensible-array chunk whose unlimited dimension u > 0.

    libhdf5 (through 2.0) reports such chunks' coordinates from the EA element index k as if
    the grid were row-major with u first-but-unswizzled: k = r[u]*prod(G[u+1:]) + ravel(r[u+1:]).
    The index really is row-major over the swizzled grid (G[u], G[:u], G[u+1:]), G from the
    maximum dimensions for the fixed dims.  Verified against chunk bytes for 2-D and 3-D cases.
    """
    tail = grid[u + 1:]
    k = r[u] * int(np.prod(tail)) + (int(np.ravel_multi_index(r[u + 1:], tail)) if tail else 0)
    rest_dims = grid[:u] + grid[u + 1:]
    n = int(np.prod(rest_dims)) if rest_dims else 1
    su, rem = divmod(k, n)
    rest = [int(x) for x in np.unravel_index(rem, rest_dims)] if rest_dims else []
    return rest[:u] + [su] + rest[u:]


def list_chunks(ds, shape, chunks, layout_raw):
    dsid = ds.id
    out = []
    method = "H5Dchunk_iter"

    def cb(si):
        out.append({"offset": [int(x) for x in si.chunk_offset], "filter_mask": int(si.filter_mask),
                    "byte_offset": int(si.byte_offset), "size": int(si.size)})
    try:
        dsid.chunk_iter(cb)
    except Exception:  # noqa: BLE001
        method = "H5Dget_chunk_info"
        out.clear()
        for i in range(dsid.get_num_chunks()):
            cb(dsid.get_chunk_info(i))
    maxshape = list(ds.maxshape or ())
    unlimited = [i for i, m in enumerate(maxshape) if m is None]
    if layout_raw.get("chunk_index") == "extensible_array" and unlimited and unlimited[0] > 0:
        u = unlimited[0]
        grid = [-(-(m if m is not None else s) // c) for s, m, c in zip(shape, maxshape, chunks)]
        reported = [[o // c for o, c in zip(x["offset"], chunks)] for x in out]
        if all(not any(r[:u]) for r in reported):
            method = "H5Dchunk_iter, coordinates rebuilt (extensible array, unlimited dim %d)" % u
            for x, r in zip(out, reported):
                x["offset"] = [t * c for t, c in zip(unswizzle(r, u, grid), chunks)]
        else:
            method = "H5Dchunk_iter (extensible array coordinates NOT rebuilt: unexpected pattern)"
    out.sort(key=lambda c: (c["offset"], c["byte_offset"]))
    return out, method


def _decode_chunk(raw, filters, itemsize, mask):
    """Undo deflate / shuffle / fletcher32 (pipeline applied in reverse); None for other filters."""
    import zlib
    for i in reversed(range(len(filters))):
        if mask & (1 << i):
            continue
        fid = filters[i]["id"]
        if fid == 1:
            raw = zlib.decompress(raw)
        elif fid == 2:
            n = len(raw) // itemsize
            body = np.frombuffer(raw[:n * itemsize], dtype=np.uint8).reshape(itemsize, n).T.tobytes()
            raw = body + raw[n * itemsize:]
        elif fid == 3:
            raw = raw[:-4]
        else:
            return None
    return raw


def chunk_bytes_check(ds, rec, chunks, limit=5000):
    """Decode listed chunks (deflate/shuffle/fletcher32 only) and compare with libhdf5's read of
    the same region: proves the chunk coordinates, offsets and sizes."""
    res = {"checked": 0, "match": 0, "mismatch": 0, "skipped": 0, "errors": []}
    dt = ds.dtype
    if dt.kind == "O" or dt.hasobject or rec["type"]["size"] != dt.itemsize or not type_is_fixed(rec["type"]):
        res["skipped"] = len(chunks)
        return res
    if ds.id.get_storage_size() > 64 << 20:
        res["skipped"] = len(chunks)
        return res
    data = ds[...]
    cs = rec["chunks"]
    with open(ds.file.filename, "rb") as fh:
        for c in chunks[:limit]:
            fh.seek(c["byte_offset"])
            raw = fh.read(c["size"])
            try:
                dec = _decode_chunk(raw, rec["filters"], dt.itemsize, c["filter_mask"])
            except Exception as e:  # noqa: BLE001
                res["errors"].append("%s: %s" % (c["offset"], e))
                res["mismatch"] += 1
                res["checked"] += 1
                continue
            if dec is None:
                res["skipped"] += 1
                continue
            res["checked"] += 1
            sl = tuple(slice(o, o + n) for o, n in zip(c["offset"], cs))
            region = np.ascontiguousarray(data[sl])
            try:
                arr = np.frombuffer(dec, dtype=dt).reshape(cs)
                part = np.ascontiguousarray(arr[tuple(slice(0, n) for n in region.shape)])
                ok = part.tobytes() == region.tobytes()
            except ValueError:
                ok = False
            if ok:
                res["match"] += 1
            else:
                res["mismatch"] += 1
                if len(res["errors"]) < 5:
                    res["errors"].append("chunk at %s differs from the data read by libhdf5" % (c["offset"],))
    res["skipped"] += max(0, len(chunks) - limit)
    return res


FILL_STATUS = {h5d.FILL_VALUE_UNDEFINED: "undefined", h5d.FILL_VALUE_DEFAULT: "default",
               h5d.FILL_VALUE_USER_DEFINED: "user_defined"}
ALLOC = {h5d.ALLOC_TIME_EARLY: "early", h5d.ALLOC_TIME_LATE: "late", h5d.ALLOC_TIME_INCR: "incremental"}
FILLT = {h5d.FILL_TIME_ALLOC: "alloc", h5d.FILL_TIME_NEVER: "never", h5d.FILL_TIME_IFSET: "ifset"}
LAYOUT = {h5d.COMPACT: "compact", h5d.CONTIGUOUS: "contiguous", h5d.CHUNKED: "chunked"}
if hasattr(h5d, "VIRTUAL"):
    LAYOUT[h5d.VIRTUAL] = "virtual"


def dataset_record(ds, f, raw, addr):
    rec = {}
    ft = ds.id.get_type()
    tdesc = describe_type(ft)
    rec["type"] = tdesc
    rec["dtype"] = dtype_str(lambda: ds.dtype)
    sp = space_desc(ds.id.get_space())
    rec["space"] = sp
    rec["shape"] = None if sp["class"] == "null" else ([] if sp["class"] == "scalar" else sp["dims"])
    rec["maxshape"] = None if sp["class"] == "null" else ([] if sp["class"] == "scalar" else sp["maxdims"])
    dcpl = ds.id.get_create_plist()
    rec["layout"] = LAYOUT.get(dcpl.get_layout(), str(dcpl.get_layout()))
    rec["chunks"] = list(dcpl.get_chunk()) if rec["layout"] == "chunked" else None
    filters = []
    for i in range(dcpl.get_nfilters()):
        fid, flags, params, name = dcpl.get_filter(i)
        filters.append({"id": int(fid), "name": name.decode("utf-8", "replace") if isinstance(name, bytes) else name,
                        "flags": int(flags), "optional": bool(flags & 1), "params": [int(x) for x in params]})
    rec["filters"] = filters
    fill = {"status": FILL_STATUS.get(dcpl.fill_value_defined(), "?"),
            "alloc_time": ALLOC.get(dcpl.get_alloc_time(), "?"),
            "fill_time": FILLT.get(dcpl.get_fill_time(), "?")}
    if fill["status"] == "user_defined":
        try:
            arr = np.zeros((1,), dtype=ds.dtype)
            dcpl.get_fill_value(arr)
            fill["value"] = jsonify(arr[0], f)
            if type_is_fixed(tdesc) and tdesc["class"] != "reference" and arr.dtype.itemsize == tdesc["size"]:
                fill["value_hex"] = _zero_padding(arr.tobytes(), tdesc, 1).hex()
        except Exception as e:  # noqa: BLE001
            fill["value_error"] = str(e)
    rec["fill"] = fill
    rec["storage_size"] = int(ds.id.get_storage_size())
    if dcpl.get_external_count():
        rec["external"] = [{"name": n.decode() if isinstance(n, bytes) else n, "offset": int(o), "size": int(s)}
                           for n, o, s in (dcpl.get_external(i) for i in range(dcpl.get_external_count()))]
    layout_raw = {}
    try:
        for mtype, body, _ in raw.messages(addr)[0]:
            if mtype == 0x08:
                layout_raw = raw.layout(body)
    except Exception as e:  # noqa: BLE001
        layout_raw = {"error": str(e)}
    rec["layout_raw"] = layout_raw
    if rec["layout"] == "contiguous":
        off = ds.id.get_offset()
        rec["contiguous"] = {"offset": None if off is None else int(off), "size": rec["storage_size"]}
    elif rec["layout"] == "compact":
        rec["compact"] = {"size": int(layout_raw.get("compact_size", rec["storage_size"]))}
    elif rec["layout"] == "chunked":
        rec["num_chunks"] = int(ds.id.get_num_chunks())
        chunks, method = list_chunks(ds, rec["shape"], rec["chunks"], layout_raw)
        rec["chunk_list_method"] = method
        rec["chunk_count_listed"] = len(chunks)
        rec["chunk_digest_sha256"] = chunk_digest(chunks)
        rec["chunk_list_truncated"] = len(chunks) > MAX_LISTED_CHUNKS
        rec["chunk_list"] = chunks[:MAX_LISTED_CHUNKS]
        if CHECK_BYTES:
            try:
                rec["chunk_bytes_check"] = chunk_bytes_check(ds, rec, chunks)
            except Exception as e:  # noqa: BLE001
                rec["chunk_bytes_check"] = {"error": "%s: %s" % (type(e).__name__, e)}
    return rec


def header_info(raw, addr):
    """attr/link storage kinds from the object header messages."""
    try:
        msgs, version = raw.messages(addr)
    except Exception:  # noqa: BLE001
        return {}, None
    types = [m[0] for m in msgs]
    info = {"version": version}
    attr = "none"
    if 0x0C in types:
        attr = "compact"
    for mtype, body, _ in msgs:
        if mtype == 0x15:  # attribute info
            flags = body[1]
            p = 2 + (2 if flags & 1 else 0)
            heap = int.from_bytes(body[p:p + raw.so], "little")
            if heap != (1 << (8 * raw.so)) - 1:
                attr = "dense"
    storage = None
    if 0x11 in types:
        storage = "symbol_table"
    elif 0x02 in types:
        storage = "compact"
        for mtype, body, _ in msgs:
            if mtype == 0x02:
                flags = body[1]
                p = 2 + (8 if flags & 1 else 0)
                heap = int.from_bytes(body[p:p + raw.so], "little")
                if heap != (1 << (8 * raw.so)) - 1:
                    storage = "dense"
    info["messages"] = sorted(set(types))
    return {"attr_storage": attr, "storage": storage}, info


def oracle(path):
    raw = RawFile(path)
    st = os.stat(path)
    with open(path, "rb") as fh:
        sha = hashlib.sha256(fh.read()).hexdigest()
    filerec = {"record": "file", "relpath": path, "size": st.st_size, "sha256": sha,
               "hdf5_library": "%d.%d.%d" % h5py.version.hdf5_version_tuple, "h5py": h5py.version.version,
               "superblock": raw.sb, "open_mode": "r"}
    if raw.sb and raw.sb["version"] in (2, 3):
        p = raw.sb["offset"]
        end = p + 12 + 4 * raw.sb["sizeof_offsets"]
        raw.sb["checksum_ok"] = lookup3(raw.data[p:end]) == raw.sb["checksum"]
    records = []
    tmp = None
    try:
        try:
            f = h5py.File(path, "r")
        except Exception as e:  # noqa: BLE001
            tmp = flags_cleared_copy(raw, path)
            if not tmp:
                raise
            f = h5py.File(tmp, "r")
            filerec["open_mode"] = ("temporary copy with superblock status flags cleared "
                                    "(file was left open for write; same addresses)")
            filerec["status_flags_cleared_copy"] = True
    except Exception as e:  # noqa: BLE001
        filerec["h5py_opened"] = False
        return [filerec, {"record": "error", "stage": "open", "error": "%s: %s" % (type(e).__name__, e)}]
    finally:
        if tmp:
            os.unlink(tmp)  # h5py keeps its descriptor open
    filerec["h5py_opened"] = True
    counts = {"groups": 0, "datasets": 0, "datatypes": 0, "soft_links": 0, "external_links": 0,
              "hard_link_aliases": 0, "attributes": 0, "errors": 0}
    with f:
        fcpl = f.id.get_create_plist()
        try:
            ver = fcpl.get_version()
            filerec["fcpl"] = {"superblock_version": ver[0], "freelist_version": ver[1],
                               "symtable_version": ver[2], "shared_header_version": ver[3],
                               "userblock": fcpl.get_userblock(), "sizes": list(fcpl.get_sizes())}
        except Exception:  # noqa: BLE001
            pass
        by_addr = {}
        root_addr = h5o.get_info(f.id).addr
        queue = [("/", root_addr)]
        root_rec = {"path": "/", "record": "group", "object_header": {"address": root_addr}}
        by_addr[root_addr] = root_rec
        records.append(root_rec)
        qi = 0
        while qi < len(queue):
            gpath, gaddr = queue[qi]
            qi += 1
            rec = by_addr[gaddr]
            obj = f[gpath]
            hi, info = header_info(raw, gaddr)
            rec["object_header"]["version"] = info and info["version"]
            if rec["record"] == "group":
                counts["groups"] += 1
                rec["storage"] = hi.get("storage")
                links = []
                for name in list(obj.keys()):  # h5py's order: creation order when tracked, else name
                    lnk = obj.get(name, getlink=True)
                    child = gpath.rstrip("/") + "/" + name
                    if isinstance(lnk, h5py.SoftLink):
                        links.append({"name": name, "type": "soft", "target": lnk.path})
                        counts["soft_links"] += 1
                        continue
                    if isinstance(lnk, h5py.ExternalLink):
                        links.append({"name": name, "type": "external", "file": lnk.filename, "target": lnk.path})
                        counts["external_links"] += 1
                        continue
                    try:
                        oid = h5o.open(obj.id, name.encode("utf-8"))
                        oinfo = h5o.get_info(oid)
                        caddr = oinfo.addr
                        otype = oinfo.type
                    except Exception as e:  # noqa: BLE001
                        links.append({"name": name, "type": "hard", "open_error": str(e)})
                        counts["errors"] += 1
                        continue
                    links.append({"name": name, "type": "hard", "object_address": caddr})
                    if caddr in by_addr:
                        by_addr[caddr].setdefault("aliases", []).append(child)
                        counts["hard_link_aliases"] += 1
                        continue
                    kind = {h5o.TYPE_GROUP: "group", h5o.TYPE_DATASET: "dataset",
                            h5o.TYPE_NAMED_DATATYPE: "datatype"}.get(otype, "unknown")
                    crec = {"path": child, "record": kind, "object_header": {"address": caddr}}
                    by_addr[caddr] = crec
                    records.append(crec)
                    queue.append((child, caddr))
                rec["links"] = links
            elif rec["record"] == "dataset":
                counts["datasets"] += 1
                try:
                    rec.update(dataset_record(obj, f, raw, gaddr))
                except Exception as e:  # noqa: BLE001
                    rec["error"] = "%s: %s" % (type(e).__name__, e)
                    counts["errors"] += 1
            elif rec["record"] == "datatype":
                counts["datatypes"] += 1
                rec["type"] = describe_type(obj.id)
            rec["attr_storage"] = hi.get("attr_storage")
            rec["attributes"] = attributes(obj, f)
            counts["attributes"] += len(rec["attributes"])
    filerec["counts"] = counts
    return [filerec] + records


def out_name(path, outdir, relative_to=None):
    if relative_to:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(relative_to))
    else:
        rel = os.path.basename(path)
    return os.path.join(outdir, rel + ".jsonl.gz")


def main():
    ap = argparse.ArgumentParser(
        description="Write libhdf5/h5py oracles (corpus schema, one .jsonl.gz per file) for HDF5 files.",
        epilog="Example: tools/h5oracle.py fixtures/*.h5 --out fixtures-expected --relative-to fixtures")
    ap.add_argument("files", nargs="+", metavar="FILE", help="HDF5 / netCDF-4 files")
    ap.add_argument("--out", required=True, metavar="DIR", help="output directory")
    ap.add_argument("--relative-to", metavar="DIR",
                    help="keep each file's path relative to DIR under --out (default: basename only)")
    ap.add_argument("--stdout", action="store_true", help="also print the records (JSON lines) to stdout")
    ap.add_argument("--no-bytes-check", action="store_true",
                    help="skip decoding chunks (deflate/shuffle/fletcher32) to prove them against libhdf5 reads")
    args = ap.parse_args()
    global CHECK_BYTES
    CHECK_BYTES = not args.no_bytes_check
    os.makedirs(args.out, exist_ok=True)
    for path in args.files:
        recs = oracle(path)
        dest = out_name(path, args.out, args.relative_to)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        recs[0]["relpath"] = os.path.relpath(path, args.relative_to) if args.relative_to else os.path.basename(path)
        text = "".join(json.dumps(r, sort_keys=False, allow_nan=False) + "\n" for r in recs)
        with open(dest, "wb") as fh:
            with gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, filename="") as gz:
                gz.write(text.encode())
        if args.stdout:
            sys.stdout.write(text)
    print("h5oracle: wrote %d oracle(s) to %s" % (len(args.files), args.out), file=sys.stderr)


if __name__ == "__main__":
    main()
