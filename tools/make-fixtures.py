#!/usr/bin/env python3
"""Write a matrix of small HDF5 / netCDF-4 fixture files into OUTDIR.

Covers superblock versions 0-3 and user blocks; every storage layout and
chunk index (v1 B-tree, single chunk, implicit, fixed array incl. paged,
extensible array incl. secondary blocks, v2 B-tree filtered/unfiltered);
filters (deflate, shuffle, fletcher32, scaleoffset, nbit, szip when
available, lzf as a registered non-standard id, a chunk with a non-zero
filter mask, partial edge chunks); datatypes (integers, floats incl.
float16, both byte orders, fixed and variable strings, compound, enum,
array, opaque, bitfield, object and region references, vlen sequences);
scalar / null / unlimited dataspaces; fill values; compact and dense
attributes (incl. > 64 KiB); compact, dense and symbol-table groups;
creation order; soft / external / hard-link aliases and a cycle; committed
datatypes; shared object header messages; netCDF-4 files.

Output is deterministic (fixed seeds, no object timestamps): the same
bytes on every run with the same h5py / libhdf5 / netCDF4 versions.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # tools/, for _bootstrap
import _bootstrap  # noqa: E402
_REPO = _bootstrap.use_repo_venv(__file__, warn_if_missing=True)

import argparse
import ctypes
import glob
import struct
import time
import zlib

import numpy as np
import h5py
from h5py import h5d, h5f, h5g, h5p, h5s, h5t, h5z

LIBVER = {"earliest": h5f.LIBVER_EARLIEST, "v108": h5f.LIBVER_V18, "v110": h5f.LIBVER_V110,
          "v112": h5f.LIBVER_V112, "v114": h5f.LIBVER_V114, "latest": h5f.LIBVER_LATEST}
CRT = h5p.CRT_ORDER_TRACKED | h5p.CRT_ORDER_INDEXED

# ------------------------------------------------------------------ libhdf5 calls h5py does not wrap

_lib = None


def libhdf5():
    """The libhdf5 inside h5py's wheel (already loaded by h5py: same instance)."""
    global _lib
    if _lib is None:
        libdir = os.path.join(os.path.dirname(os.path.dirname(h5py.__file__)), "h5py.libs")
        cands = sorted(glob.glob(os.path.join(libdir, "libhdf5-*.so*")))
        _lib = ctypes.CDLL(cands[0]) if cands else ctypes.CDLL(h5py.h5.__file__)
        for name, args in (("H5Pset_istore_k", [ctypes.c_int64, ctypes.c_uint]),
                           ("H5Pset_sym_k", [ctypes.c_int64, ctypes.c_uint, ctypes.c_uint]),
                           ("H5Pset_shared_mesg_nindexes", [ctypes.c_int64, ctypes.c_uint]),
                           ("H5Pset_shared_mesg_index", [ctypes.c_int64, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint]),
                           ("H5Pset_fill_value", [ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]),
                           ("H5Pset_relax_file_integrity_checks", [ctypes.c_int64, ctypes.c_uint64])):
            fn = getattr(_lib, name, None)
            if fn is None:
                continue
            fn.argtypes = args
            fn.restype = ctypes.c_int
    return _lib


def call(name, *args):
    if getattr(libhdf5(), name)(*args) < 0:
        raise RuntimeError("%s failed" % name)


# ------------------------------------------------------------------ deterministic timestamps

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


FIXED_TIME = (946684800).to_bytes(4, "little")  # 2000-01-01T00:00:00Z


def normalize_times(path):
    """Pin the access/modification/change/birth times of every v2 object header (OHDR with
    times stored) to a fixed instant and fix its checksum.  libhdf5 stores times for objects
    h5py cannot switch them off for (superblock extension, committed datatypes, netCDF-C's)."""
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    changed = False
    pos = data.find(b"OHDR")
    while pos >= 0:
        if pos + 6 <= len(data) and data[pos + 4] == 2 and data[pos + 5] & 0x20:
            flags = data[pos + 5]
            p = pos + 6 + 16 + (4 if flags & 0x10 else 0)
            n = 1 << (flags & 3)
            size0 = int.from_bytes(data[p:p + n], "little")
            end = p + n + size0
            if end + 4 <= len(data) and lookup3(bytes(data[pos:end])) == int.from_bytes(data[end:end + 4], "little"):
                data[pos + 6:pos + 22] = FIXED_TIME * 4
                data[end:end + 4] = lookup3(bytes(data[pos:end])).to_bytes(4, "little")
                changed = True
        pos = data.find(b"OHDR", pos + 4)
    if changed:
        with open(path, "wb") as fh:
            fh.write(data)


# ------------------------------------------------------------------ helpers

def new_file(path, low="earliest", high="latest", userblock=0, track_order=False, fcpl_hook=None, relax=False):
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_libver_bounds(LIBVER[low], LIBVER[high])
    if relax and hasattr(libhdf5(), "H5Pset_relax_file_integrity_checks"):
        # libhdf5 >= 2.0 refuses "unusual" types (precision < size, as nbit needs) unless relaxed
        call("H5Pset_relax_file_integrity_checks", fapl.id, 1)
    fcpl = h5p.create(h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    if userblock:
        fcpl.set_userblock(userblock)
    if track_order:
        fcpl.set_link_creation_order(CRT)
        fcpl.set_attr_creation_order(CRT)
    if fcpl_hook:
        fcpl_hook(fcpl)
    fid = h5f.create(path.encode(), h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)
    return h5py.File(fid)


def group(parent, name, track_order=False):
    gcpl = h5p.create(h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    if track_order:
        gcpl.set_link_creation_order(CRT)
        gcpl.set_attr_creation_order(CRT)
    return h5py.Group(h5g.create(parent.id, name.encode(), gcpl=gcpl))


def ds(parent, name, data=None, **kw):
    kw.setdefault("track_times", False)
    return parent.create_dataset(name, data=data, **kw)


def dcpl_new():
    p = h5p.create(h5p.DATASET_CREATE)
    p.set_obj_track_times(False)
    return p


def ll_dataset(parent, name, tid, shape, maxshape=None, dcpl=None, data=None, mtype=None):
    """Low-level dataset: explicit file type / property list; data written with mtype (default: tid)."""
    if shape == ():
        space = h5s.create(h5s.SCALAR)
    else:
        space = h5s.create_simple(shape, maxshape)
    dcpl = dcpl or dcpl_new()
    dsid = h5d.create(parent.id, name.encode(), tid, space, dcpl=dcpl)
    if data is not None:
        dsid.write(h5s.ALL, h5s.ALL, np.ascontiguousarray(data), mtype=mtype if mtype is not None else tid)
    return h5py.Dataset(dsid)


def narrow_float(base, fields, offset, precision, size, bias):
    """A float type of the file's own format (as n-bit data declare them): `fields` are the sign
    position, exponent position and size, mantissa position and size, in container bits."""
    t = base.copy()
    t.set_fields(*fields)
    t.set_offset(offset)
    t.set_precision(precision)
    t.set_size(size)
    t.set_ebias(bias)
    return t


def rng(seed):
    return np.random.default_rng(seed)


def smooth(shape, seed=0, dtype="f4"):
    r = rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 3, n) for n in shape], indexing="ij")
    a = sum(np.sin(g * (i + 1) + r.uniform(0, 6)) for i, g in enumerate(grids))
    return (a * 10).astype(dtype)


FIXTURES = []


def fixture(name):
    def deco(fn):
        FIXTURES.append((name, fn))
        return fn
    return deco


# ------------------------------------------------------------------ superblocks & user blocks

def _basic_content(f, seed=0):
    ds(f, "data", smooth((20, 30), seed))
    g = group(f, "group")
    ds(g, "ints", np.arange(100, dtype="<i4"))
    f.attrs["title"] = np.bytes_("superblock fixture")
    ds(f, "chunked", smooth((40, 50), seed + 1), chunks=(16, 16), compression="gzip", compression_opts=4)


for _low, _sbv in (("earliest", 0), ("v108", 2), ("v110", 3), ("latest", 3)):
    def _make(path, low=_low):
        with new_file(path, low=low) as f:
            _basic_content(f)
    fixture("superblock-v%d-libver-%s.h5" % (_sbv, _low))(_make)


@fixture("superblock-v1-istore-k.h5")
def _(path):
    def hook(fcpl):
        call("H5Pset_istore_k", fcpl.id, 4)
        call("H5Pset_sym_k", fcpl.id, 2, 2)
    with new_file(path, low="earliest", fcpl_hook=hook) as f:
        _basic_content(f)
        # small istore_k/sym_k: multi-level chunk B-tree and group B-tree with few entries
        ds(f, "many_chunks", np.arange(400, dtype="<i2").reshape(20, 20), chunks=(2, 2))
        g = group(f, "members")
        for i in range(40):
            ds(g, "m%02d" % i, np.int32(i))


@fixture("userblock-512-earliest.h5")
def _(path):
    with new_file(path, low="earliest", userblock=512) as f:
        _basic_content(f, 3)
        ds(f, "compact", np.arange(10, dtype="<i4"))


@fixture("userblock-1024-latest.h5")
def _(path):
    with new_file(path, low="latest", userblock=1024) as f:
        _basic_content(f, 4)
        ds(f, "ea", np.arange(300, dtype="<f8"), maxshape=(None,), chunks=(10,))


# ------------------------------------------------------------------ layouts

@fixture("layout-compact.h5")
def _(path):
    with new_file(path, low="latest") as f:
        for name, data in (("i4", np.arange(12, dtype="<i4").reshape(3, 4)), ("f8be", np.linspace(0, 1, 7).astype(">f8")),
                           ("scalar", np.array(42, dtype="<i8")), ("str", np.array([b"ab", b"cde"], dtype="S4"))):
            p = dcpl_new()
            p.set_layout(h5d.COMPACT)
            tid = h5t.py_create(data.dtype)
            ll_dataset(f, name, tid, data.shape, dcpl=p, data=data)
    with new_file(path.replace(".h5", "-earliest.h5"), low="earliest") as f:
        p = dcpl_new()
        p.set_layout(h5d.COMPACT)
        ll_dataset(f, "compact", h5t.STD_I16LE, (5, 5), dcpl=p, data=np.arange(25, dtype="<i2").reshape(5, 5))


@fixture("layout-contiguous.h5")
def _(path):
    with new_file(path, low="earliest") as f:
        ds(f, "written", smooth((30, 40), 5))
        ds(f, "never_written", shape=(10, 10), dtype="<f4")
        ds(f, "never_written_fill", shape=(8,), dtype="<i4", fillvalue=-7)
        ds(f, "scalar", data=np.float64(3.5))
        ds(f, "written_be", smooth((16,), 6, ">f8"))
    with new_file(path.replace(".h5", "-latest.h5"), low="latest") as f:
        ds(f, "written", smooth((30, 40), 7))
        ds(f, "never_written", shape=(10, 10), dtype="<f4")


@fixture("layout-chunked-btree-v1.h5")
def _(path):
    with new_file(path, low="earliest") as f:
        ds(f, "small", np.arange(60, dtype="<i4").reshape(6, 10), chunks=(4, 4))  # partial edge chunks
        ds(f, "many", smooth((100, 120), 8), chunks=(5, 8))  # 300 chunks: multi-level B-tree
        ds(f, "deflate", smooth((64, 64), 9), chunks=(16, 16), compression="gzip")
        ds(f, "unlimited", np.arange(50, dtype="<f8"), maxshape=(None,), chunks=(8,))
        ds(f, "sparse", shape=(40, 40), dtype="<i2", chunks=(10, 10))[0:10, 20:30] = 5  # one chunk allocated
        ds(f, "3d", np.arange(5 * 6 * 7, dtype="<u2").reshape(5, 6, 7), chunks=(2, 3, 4))


@fixture("layout-chunked-single-chunk.h5")
def _(path):
    with new_file(path, low="latest") as f:
        ds(f, "unfiltered", smooth((20, 30), 10), chunks=(20, 30))
        ds(f, "filtered", smooth((20, 30), 11), chunks=(20, 30), compression="gzip", compression_opts=6)
        ds(f, "filtered_shuffle_fletcher", smooth((50,), 12), chunks=(50,), shuffle=True, compression="gzip",
           fletcher32=True)
        ds(f, "never_written", shape=(10,), dtype="<i4", chunks=(10,))


@fixture("layout-chunked-implicit.h5")
def _(path):
    with new_file(path, low="latest") as f:
        for name, shape, chunks in (("exact", (20,), (5,)), ("partial", (23, 17), (5, 5))):
            p = dcpl_new()
            p.set_chunk(chunks)
            p.set_alloc_time(h5d.ALLOC_TIME_EARLY)
            d = ll_dataset(f, name, h5t.STD_I32LE, shape, dcpl=p)
            d[...] = np.arange(np.prod(shape), dtype="<i4").reshape(shape)
        p = dcpl_new()
        p.set_chunk((4, 4))
        p.set_alloc_time(h5d.ALLOC_TIME_EARLY)
        ll_dataset(f, "never_written", h5t.IEEE_F32LE, (8, 8), dcpl=p)


@fixture("layout-chunked-fixed-array.h5")
def _(path):
    with new_file(path, low="latest") as f:
        ds(f, "small", np.arange(15, dtype="<f4").reshape(5, 3), chunks=(2, 3))
        ds(f, "filtered", smooth((40, 40), 13), chunks=(10, 10), compression="gzip")
        d = ds(f, "sparse", shape=(30, 30), dtype="<i4", chunks=(10, 10), fillvalue=-1)
        d[10:20, 0:10] = 1
        d[20:30, 20:30] = 2


@fixture("layout-chunked-fixed-array-paged.h5")
def _(path):
    with new_file(path, low="latest") as f:
        ds(f, "paged", np.arange(50 * 52, dtype="<i4").reshape(50, 52), chunks=(1, 2))  # 1300 chunks > 1024
        ds(f, "paged_filtered", np.arange(2100, dtype="<i8"), chunks=(2,), compression="gzip", compression_opts=1)
        d = ds(f, "paged_sparse", shape=(3000,), dtype="<i2", chunks=(1,))
        d[0:10] = 1
        d[2990:3000] = 2


@fixture("layout-chunked-extensible-array.h5")
def _(path):
    with new_file(path, low="latest") as f:
        ds(f, "ea_2000", np.arange(2000, dtype="<f4"), maxshape=(None,), chunks=(1,))  # super blocks + data blocks
        ds(f, "ea_small", np.arange(15, dtype="<i2").reshape(5, 3), maxshape=(None, 3), chunks=(2, 3))
        ds(f, "ea_filtered", smooth((300, 8), 14), maxshape=(None, 8), chunks=(2, 8), compression="gzip")
        # unlimited dimension is not dimension 0 (libhdf5's chunk iteration misreports these coordinates)
        ds(f, "ea_dim1_unlimited", np.arange(4 * 600, dtype="<i4").reshape(4, 600), maxshape=(4, None), chunks=(2, 2))
        ds(f, "ea_dim1_unlimited_3d", np.arange(3 * 5 * 4, dtype="<i4").reshape(3, 5, 4), maxshape=(7, None, 9),
           chunks=(2, 2, 3))
        ds(f, "ea_dim2_unlimited_filtered", smooth((5, 4, 30), 17), maxshape=(9, 5, None), chunks=(2, 3, 2),
           compression="gzip")
        d = ds(f, "ea_sparse", shape=(100,), dtype="<i4", maxshape=(None,), chunks=(4,))
        d[40:44] = 7
        d.resize((5000,))
        d[4996:5000] = 8


@fixture("layout-chunked-btree-v2.h5")
def _(path):
    with new_file(path, low="latest") as f:
        ds(f, "unfiltered", np.arange(15, dtype="<f4").reshape(5, 3), maxshape=(None, None), chunks=(2, 3))
        ds(f, "filtered", smooth((30, 30), 15), maxshape=(None, None), chunks=(4, 4), compression="gzip")
        ds(f, "many", np.arange(60 * 60, dtype="<i2").reshape(60, 60), maxshape=(None, None), chunks=(2, 2))
        ds(f, "many_filtered", smooth((60, 60), 16, "<f8"), maxshape=(None, None), chunks=(2, 2),
           compression="gzip", compression_opts=1)
        ds(f, "3d", np.arange(4 * 5 * 6, dtype="<u1").reshape(4, 5, 6), maxshape=(None, 5, None), chunks=(2, 2, 2))


# ------------------------------------------------------------------ filters

@fixture("filters.h5")
def _(path):
    with new_file(path, low="earliest") as f:
        data = smooth((64, 64), 20)
        for lvl in (1, 4, 9):
            ds(f, "deflate_%d" % lvl, data, chunks=(16, 16), compression="gzip", compression_opts=lvl)
        ds(f, "shuffle_deflate", data, chunks=(16, 16), shuffle=True, compression="gzip")
        ds(f, "fletcher32", data, chunks=(16, 16), fletcher32=True)
        ds(f, "shuffle_deflate_fletcher32", data, chunks=(16, 16), shuffle=True, compression="gzip", fletcher32=True)
        ds(f, "scaleoffset_int", np.arange(4096, dtype="<i4").reshape(64, 64) % 1000, chunks=(16, 16), scaleoffset=0)
        ds(f, "scaleoffset_float", data, chunks=(16, 16), scaleoffset=3)
        ds(f, "lzf", np.arange(4096, dtype="<i4").reshape(64, 64) // 7, chunks=(16, 16),
           compression="lzf")  # id 32000: registered, not an HDF5 built-in
        ds(f, "edge_chunks", smooth((50, 45), 21), chunks=(16, 16), compression="gzip", shuffle=True)
        # nbit: 12-bit integers in a 16-bit container (libhdf5 2.0 refuses more unused bits unless relaxed)
        t = h5t.STD_I16LE.copy()
        t.set_precision(12)
        p = dcpl_new()
        p.set_chunk((32,))
        p.set_filter(h5z.FILTER_NBIT, 0)
        ll_dataset(f, "nbit", t, (100,), dcpl=p, data=(np.arange(100, dtype="<i2") * 17) % 2000 - 1000,
                   mtype=h5t.NATIVE_INT16)
        if h5z.filter_avail(h5z.FILTER_SZIP):
            try:
                ds(f, "szip", np.arange(4096, dtype="<i4").reshape(64, 64), chunks=(32, 32), compression="szip")
            except Exception:  # noqa: BLE001 - encoder missing: skip silently
                pass
        # a chunk written with deflate skipped (filter mask bit 0 set) next to normal chunks
        d = ds(f, "filter_mask", shape=(4, 8), dtype="<i4", chunks=(4, 4), compression="gzip")
        d.id.write_direct_chunk((0, 0), np.arange(16, dtype="<i4").tobytes(), filter_mask=1)
        d.id.write_direct_chunk((0, 4), zlib.compress(np.arange(16, 32, dtype="<i4").tobytes(), 6), filter_mask=0)
    with new_file(path.replace(".h5", "-latest.h5"), low="latest") as f:
        data = smooth((64, 64), 22)
        ds(f, "shuffle_deflate_fletcher32_fa", data, chunks=(16, 16), shuffle=True, compression="gzip", fletcher32=True)
        ds(f, "deflate_ea", data, chunks=(16, 16), maxshape=(None, 64), compression="gzip")
        ds(f, "lzf_bt2", np.arange(4096, dtype="<i4").reshape(64, 64) // 7, chunks=(16, 16), maxshape=(None, None),
           compression="lzf")
        d = ds(f, "filter_mask_bt2", shape=(4, 8), dtype="<i4", chunks=(4, 4), maxshape=(None, None), compression="gzip")
        d.id.write_direct_chunk((0, 0), np.arange(16, dtype="<i4").tobytes(), filter_mask=1)
        d.id.write_direct_chunk((0, 4), zlib.compress(np.arange(16, 32, dtype="<i4").tobytes(), 6), filter_mask=0)
        d = ds(f, "filter_mask_single", shape=(4, 4), dtype="<i4", chunks=(4, 4), compression="gzip")
        d.id.write_direct_chunk((0, 0), np.arange(16, dtype="<i4").tobytes(), filter_mask=1)


# Plugin filters (hdf5plugin's zstd, bzip2, blosc, lz4, bitshuffle; h5py's lzf; libhdf5's szip,
# scaleoffset, nbit), in a subdirectory: the single-file matrix opens every top-level fixture with
# netCDF-C, which decodes none of these without its plugins. Every filtered variable names, in its
# attribute `oracle`, an unfiltered variable of the same file holding what h5py reads from it.
@fixture("plugins/filters-plugins.h5")
def _(path):
    try:
        import hdf5plugin  # registers the plugin filters with h5py's libhdf5
    except ImportError as error:
        raise SystemExit("make-fixtures: plugins/filters-plugins.h5 needs hdf5plugin (tools/requirements.txt): %s" % error)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    floats = smooth((64, 64), 30)
    ints = ((np.arange(4096, dtype="<i4").reshape(64, 64) * 37) % 5000 - 2500).astype("<i4")
    doubles = smooth((40, 30), 31, dtype="<f8")
    shorts = (np.arange(1200, dtype="<i2").reshape(40, 30) * 7 % 3000).astype("<i2")
    noise = rng(32).integers(0, 256, size=(64, 64), dtype="u1")
    steps = (np.arange(4096, dtype="<i4").reshape(64, 64) // 7).astype("<i4")  # compresses without a shuffle
    edge = smooth((50, 45), 33)
    written = {}
    with new_file(path, low="earliest", relax=True) as f:
        oracles = {}

        def filtered(name, data, chunks, **kw):
            ds(f, name, data, chunks=chunks, **kw)
            plain = next((p for p, values in oracles.items() if values.dtype == data.dtype and np.array_equal(values, data)), None)
            if plain is None:
                plain = "plain_%d_%s" % (len(oracles), data.dtype.str[1:])
                oracles[plain] = data
                ds(f, plain, data)
            written[name] = plain

        filtered("zstd", floats, (16, 16), **hdf5plugin.Zstd(clevel=5))
        filtered("zstd_shuffle", floats, (16, 16), shuffle=True, **hdf5plugin.Zstd(clevel=1))
        filtered("zstd_fletcher32", ints, (16, 16), fletcher32=True, **hdf5plugin.Zstd())
        filtered("bzip2", floats, (16, 16), **hdf5plugin.BZip2(blocksize=9))
        filtered("bzip2_edge", edge, (16, 16), **hdf5plugin.BZip2(blocksize=1))
        for cname in ("blosclz", "lz4", "lz4hc", "zlib", "zstd"):
            filtered("blosc_" + cname, steps, (16, 16), **hdf5plugin.Blosc(cname=cname, clevel=5))
        filtered("blosc_bitshuffle", doubles, (8, 30), **hdf5plugin.Blosc(cname="lz4", clevel=9, shuffle=hdf5plugin.Blosc.BITSHUFFLE))
        filtered("blosc_noshuffle", steps.astype("<i2")[:40, :30], (8, 30), **hdf5plugin.Blosc(cname="zstd", clevel=3, shuffle=hdf5plugin.Blosc.NOSHUFFLE))
        filtered("blosc_edge", edge, (16, 16), **hdf5plugin.Blosc(cname="lz4", clevel=5))
        filtered("lz4", floats, (16, 16), **hdf5plugin.LZ4())
        filtered("lz4_blocks", doubles, (40, 30), **hdf5plugin.LZ4(nbytes=1000))  # several blocks, a short last one
        filtered("lz4_incompressible", noise, (32, 32), **hdf5plugin.LZ4(nbytes=256))  # blocks stored raw
        filtered("bitshuffle", floats, (16, 16), **hdf5plugin.Bitshuffle(cname="none"))
        filtered("bitshuffle_lz4", doubles, (8, 30), **hdf5plugin.Bitshuffle(cname="lz4"))
        filtered("bitshuffle_zstd", shorts, (8, 30), **hdf5plugin.Bitshuffle(cname="zstd", clevel=3))
        filtered("bitshuffle_leftover", edge, (13, 7), **hdf5plugin.Bitshuffle(cname="lz4"))  # 91 elements: 3 not in a block of 8
        filtered("bitshuffle_small_blocks", doubles, (40, 30), **hdf5plugin.Bitshuffle(nelems=64, cname="lz4"))
        filtered("bitshuffle_bytes", noise, (32, 32), **hdf5plugin.Bitshuffle(cname="none"))
        filtered("lzf", steps, (16, 16), compression="lzf")
        filtered("lzf_shuffle", doubles, (8, 30), compression="lzf", shuffle=True)
        filtered("lzf_edge", steps[:50, :45], (16, 16), compression="lzf")
        filtered("szip", ints, (32, 32), compression="szip", compression_opts=("nn", 16))
        filtered("szip_ec", shorts, (8, 30), compression="szip", compression_opts=("ec", 8))
        filtered("szip_float", floats, (16, 16), compression="szip", compression_opts=("nn", 32))
        filtered("scaleoffset_int", ints, (16, 16), scaleoffset=0)
        filtered("scaleoffset_short", shorts, (8, 30), scaleoffset=11)
        filtered("scaleoffset_float", floats, (16, 16), scaleoffset=3)
        filtered("scaleoffset_double", doubles, (8, 30), scaleoffset=2)
        filtered("scaleoffset_deflate", ints, (16, 16), scaleoffset=0, compression="gzip")
        # nbit: 12-bit integers in 16-bit containers (the file is relaxed: libhdf5 2.0 refuses such
        # "unusual" types otherwise).
        t = h5t.STD_I16LE.copy()
        t.set_precision(12)
        p = dcpl_new()
        p.set_chunk((8, 30))
        p.set_filter(h5z.FILTER_NBIT, 0)
        twelve_bits = ((np.arange(1200, dtype="<i2") * 17) % 4000 - 2000).astype("<i2").reshape(40, 30)
        ll_dataset(f, "nbit", t, (40, 30), dcpl=p, data=twelve_bits, mtype=h5t.NATIVE_INT16)
        written["nbit"] = None

        def nbit_partly_written(name, tid, native, values, fill):
            # n-bit of a type narrower than its container, with a fill value (stored in the
            # file's type) and a second chunk never written, so a reader sees the fill there.
            p = dcpl_new()
            p.set_chunk((len(values) // 2,))
            p.set_filter(h5z.FILTER_NBIT, 0)
            p.set_fill_value(np.array([fill], dtype=native))
            d = h5d.create(f.id, name.encode(), tid, h5s.create_simple((len(values),)), dcpl=p)
            selection = d.get_space()
            selection.select_hyperslab((0,), (len(values) // 2,))
            half = np.ascontiguousarray(values[:len(values) // 2], dtype=native)
            d.write(h5s.create_simple(half.shape), selection, half)
            written[name] = None

        # HDF5's own n-bit float test type (test/dsets.c): 20 significant bits from bit 7 of a
        # 4-byte container, a 6-bit exponent biased by 31, a 13-bit mantissa; big- and little-endian.
        samples = np.array([1.5, -2.25, 3.0e4, 0.0, 1e-3, -7.125, 12345.678, -0.5, 2.0 ** -20, 1e9], dtype="<f4")
        for order, base in (("be", h5t.IEEE_F32BE), ("le", h5t.IEEE_F32LE)):
            nbit_partly_written("nbit_float_" + order, narrow_float(base, (26, 20, 6, 7, 13), 7, 20, 4, 31), "<f4", samples, -9.75)
        # A double of 43 bits from bit 3 of its 8 bytes: an 11-bit exponent, a 31-bit mantissa.
        nbit_partly_written("nbit_double", narrow_float(h5t.IEEE_F64LE, (45, 34, 11, 3, 31), 3, 43, 8, 1023), "<f8",
                            np.linspace(-1e5, 3e7, 12), 1e300)
        # A compound of n-bit members (libhdf5 lists them in member order, each a number or bytes
        # kept as they are): 17 bits from bit 3 of an int32, HDF5's test float (big-endian), a
        # 3-byte string, an int8 and a uint16. (An array member is left to CodecTests: zarr-python 3
        # reads no structured type with one.)
        narrow = h5t.STD_I32LE.copy()
        narrow.set_precision(17)
        narrow.set_offset(3)
        test_float = narrow_float(h5t.IEEE_F32BE, (26, 20, 6, 7, 13), 7, 20, 4, 31)
        text = h5t.C_S1.copy()
        text.set_size(3)
        record = h5t.create(h5t.COMPOUND, 14)
        memory = h5t.create(h5t.COMPOUND, 14)
        for name, offset, stored, native in (("i", 0, narrow, h5t.NATIVE_INT32), ("f", 4, test_float, h5t.NATIVE_FLOAT), ("s", 8, text, text),
                                             ("b", 11, h5t.STD_I8LE, h5t.NATIVE_INT8), ("u", 12, h5t.STD_U16LE, h5t.NATIVE_UINT16)):
            record.insert(name.encode(), offset, stored)
            memory.insert(name.encode(), offset, native)
        values = np.zeros(12, np.dtype([("i", "<i4"), ("f", "<f4"), ("s", "S3"), ("b", "i1"), ("u", "<u2")]))
        values["i"] = np.arange(12) * 1000 - 6000
        values["f"] = np.linspace(-3, 5, 12)
        values["s"] = [b"ab", b"xyz", b"", b"q"] * 3
        values["b"] = np.arange(12) - 6
        values["u"] = np.arange(12) * 5000
        p = dcpl_new()
        p.set_chunk((4,))
        p.set_filter(h5z.FILTER_NBIT, 0)
        h5d.create(f.id, b"nbit_compound", record, h5s.create_simple((12,)), dcpl=p).write(h5s.ALL, h5s.ALL, values, mtype=memory)
        written["nbit_compound"] = None
        # Signed 12-bit integers from bit 2 of a 2-byte big-endian container; a negative fill value.
        t = h5t.STD_I16BE.copy()
        t.set_precision(12)
        t.set_offset(2)
        nbit_partly_written("nbit_int_offset", t, "<i2", (np.arange(16) * 191 % 4000 - 2000).astype("<i2"), -17)
    # Read back once the file is closed: before, h5py reads the written values from libhdf5's chunk
    # cache, not what the filters stored (scale-offset is lossy).
    with h5py.File(path, "r+") as f:
        for name, plain in written.items():
            read = f[name][()]
            if plain is None or not np.array_equal(read, f[plain][()]):
                plain = "as_read_" + name
                ds(f, plain, read)
            f[name].attrs["oracle"] = plain


# ------------------------------------------------------------------ datatypes

def _fixed_string_type(size, pad, cset):
    t = h5t.C_S1.copy()
    t.set_size(size)
    t.set_strpad(pad)
    t.set_cset(cset)
    return t


def _types_content(f, seed):
    r = rng(seed)
    g = group(f, "int")
    for size in (1, 2, 4, 8):
        for kind in "iu":
            for order in "<>":
                dt = np.dtype("%s%s%d" % (order, kind, size))
                info = np.iinfo(dt)
                vals = r.integers(info.min, info.max, size=10, dtype=dt.newbyteorder("="), endpoint=True).astype(dt)
                name = "%s%d%s" % (kind, size * 8, "le" if order == "<" else "be")
                ds(g, name, vals)
                g.attrs[name] = vals[:3]
    g = group(f, "float")
    for size in (2, 4, 8):
        for order in "<>":
            dt = np.dtype("%sf%d" % (order, size))
            vals = np.array([0.0, -1.5, 3.25, np.nan, np.inf, -np.inf, 1e-3, 6e4], dtype=dt)
            name = "f%d%s" % (size * 8, "le" if order == "<" else "be")
            ds(g, name, vals)
            g.attrs[name] = vals
    g = group(f, "string")
    words = [b"alpha", b"beta", b"gamma ray", b""]
    for pad, pname in ((h5t.STR_NULLTERM, "nullterm"), (h5t.STR_NULLPAD, "nullpad"), (h5t.STR_SPACEPAD, "spacepad")):
        for cset, cname in ((h5t.CSET_ASCII, "ascii"), (h5t.CSET_UTF8, "utf8")):
            t = _fixed_string_type(10, pad, cset)
            ll_dataset(g, "fixed_%s_%s" % (pname, cname), t, (4,), data=np.array(words, dtype="S10"),
                       mtype=_fixed_string_type(10, h5t.STR_NULLPAD, cset))
    ds(g, "fixed_numpy", np.array([b"x", b"yz", "\u00e9t\u00e9".encode()], dtype="S6"))
    ds(g, "vlen_ascii", np.array([b"one", b"two", b"three!"], dtype=object), dtype=h5py.string_dtype("ascii"))
    ds(g, "vlen_utf8", np.array(["\u00e9t\u00e9", "snow \u2603", ""], dtype=object), dtype=h5py.string_dtype("utf-8"))
    ds(g, "vlen_scalar", data="a scalar vlen string", dtype=h5py.string_dtype("utf-8"))
    g.attrs["vlen_attr"] = "utf-8 \u00fc attribute"
    g.attrs.create("vlen_ascii_attr", np.array([b"a", b"bc"], dtype=object), dtype=h5py.string_dtype("ascii"))
    g.attrs["fixed_attr"] = np.bytes_("fixed")
    g = group(f, "compound")
    inner = np.dtype([("x", "<f8"), ("tag", "S3")])
    cdt = np.dtype([("a", "<i4"), ("b", ">f4"), ("nested", inner), ("arr", "<i2", (2, 3))])
    vals = np.zeros(5, dtype=cdt)
    vals["a"] = np.arange(5)
    vals["b"] = np.linspace(0, 1, 5)
    vals["nested"]["x"] = np.arange(5) * 2.5
    vals["nested"]["tag"] = [b"a", b"bb", b"ccc", b"", b"e"]
    vals["arr"] = np.arange(30).reshape(5, 2, 3)
    ds(g, "nested", vals)
    g.attrs["nested"] = vals[:2]
    padded = np.dtype({"names": ["c", "d"], "formats": ["u1", "<f8"], "offsets": [0, 8], "itemsize": 16})
    ds(g, "padded", np.array([(1, 2.0), (3, 4.0)], dtype=padded))
    ds(g, "complex", np.array([1 + 2j, -3.5j], dtype="<c16"))
    vcdt = np.dtype([("id", "<i4"), ("name", h5py.string_dtype())])
    ds(g, "with_vlen_member", np.array([(1, "one"), (2, "two")], dtype=vcdt))
    g = group(f, "enum")
    edt = h5py.enum_dtype({"RED": 0, "GREEN": 1, "BLUE": 42}, basetype="i1")
    ds(g, "enum_i1", np.array([0, 1, 42, 1], dtype="i1"), dtype=edt)
    edt2 = h5py.enum_dtype({"LOW": -5, "HIGH": 70000}, basetype=">i4")
    ds(g, "enum_i4be", np.array([-5, 70000], dtype=">i4"), dtype=edt2)
    ds(g, "bool", np.array([True, False, True]))
    g.attrs.create("enum_attr", np.array([42, 0], dtype="i1"), dtype=edt)
    g = group(f, "array")
    at = h5t.array_create(h5t.STD_I32LE, (2, 3))
    ll_dataset(g, "array_2x3", at, (4,), data=np.arange(24, dtype="<i4").reshape(4, 2, 3))
    atf = h5t.array_create(h5t.IEEE_F64BE, (3,))
    ll_dataset(g, "array_f8be", atf, (2,), data=np.arange(6, dtype=">f8").reshape(2, 3))
    g = group(f, "opaque")
    ot = h5t.create(h5t.OPAQUE, 7)
    ot.set_tag(b"seven byte blobs")
    ll_dataset(g, "opaque_tagged", ot, (3,), data=np.frombuffer(b"ABCDEFGabcdefg0123456", dtype="V7"))
    ds(g, "opaque_numpy", np.frombuffer(b"\x00\x01\x02\x03\xff\xfe\xfd\xfc", dtype="V4"))
    g = group(f, "bitfield")
    for tid, name, n in ((h5t.STD_B8LE, "b8", 1), (h5t.STD_B16BE, "b16be", 2), (h5t.STD_B32LE, "b32le", 4)):
        raw = np.frombuffer(bytes((i * 37) & 0xFF for i in range(6 * n)), dtype="V%d" % n)
        ll_dataset(g, name, tid, (6,), data=raw, mtype=tid)
    g = group(f, "reference")
    target = ds(g, "target", np.arange(20, dtype="<i4").reshape(4, 5))
    tg = group(g, "target_group")
    refs = ds(g, "object_refs", shape=(3,), dtype=h5py.ref_dtype)
    refs[0] = target.ref
    refs[1] = tg.ref
    refs[2] = f.ref
    g.attrs.create("object_ref_attr", target.ref, dtype=h5py.ref_dtype)
    rr = ds(g, "region_refs", shape=(2,), dtype=h5py.regionref_dtype)
    rr[0] = target.regionref[0:2, 1:3]
    rr[1] = target.regionref[3, :]
    g = group(f, "vlen")
    vt = h5py.vlen_dtype(np.dtype("<i4"))
    d = ds(g, "vlen_int", shape=(3,), dtype=vt)
    d[0] = np.array([1, 2, 3], dtype="<i4")
    d[1] = np.array([], dtype="<i4")
    d[2] = np.arange(10, dtype="<i4")
    g.attrs.create("vlen_attr", np.array([np.array([1.5, 2.5], "<f8"), np.array([3.0], "<f8")], dtype=object),
                   dtype=h5py.vlen_dtype(np.dtype("<f8")))
    g.attrs.create("vlen_be_attr", np.array([np.array([1, 2], ">u8"), np.array([258], ">u8")], dtype=object),
                   dtype=h5py.vlen_dtype(np.dtype(">u8")))


@fixture("types-earliest.h5")
def _(path):
    with new_file(path, low="earliest") as f:
        _types_content(f, 30)


@fixture("types-latest.h5")
def _(path):
    with new_file(path, low="latest") as f:
        _types_content(f, 31)


@fixture("types-big-endian.h5")
def _(path):
    with new_file(path, low="v110") as f:
        ds(f, "f4be", smooth((40, 40), 32, ">f4"))
        ds(f, "f8be_chunked", smooth((40, 40), 33, ">f8"), chunks=(10, 10), compression="gzip", shuffle=True)
        ds(f, "i2be", np.arange(-50, 50, dtype=">i2"))
        ds(f, "u8be_chunked", np.arange(300, dtype=">u8"), chunks=(64,), maxshape=(None,))
        f.attrs["be_attr"] = np.array([1.25, -2.5], dtype=">f8")
        f.attrs["be_int"] = np.array(123456789, dtype=">i4")


# ------------------------------------------------------------------ dataspaces & fill values

@fixture("dataspaces.h5")
def _(path):
    with new_file(path, low="latest") as f:
        ds(f, "scalar_f8", data=np.float64(2.5))
        ds(f, "scalar_str", data=np.bytes_("scalar"))
        ds(f, "null", data=h5py.Empty("<f4"))
        ds(f, "null_int", data=h5py.Empty("<i8"))
        f.attrs["null_attr"] = h5py.Empty("<f8")
        f.attrs["scalar_attr"] = np.int16(-3)
        ds(f, "zero_size", shape=(0,), dtype="<i4")
        ds(f, "zero_size_unlimited", shape=(0, 3), dtype="<f4", maxshape=(None, 3), chunks=(4, 3))
        ds(f, "unlimited_1d", np.arange(10, dtype="<f8"), maxshape=(None,), chunks=(4,))
        ds(f, "partly_unlimited", np.arange(24, dtype="<i4").reshape(4, 6), maxshape=(None, 10), chunks=(2, 5))
        ds(f, "max_larger", np.arange(24, dtype="<i4").reshape(4, 6), maxshape=(8, 12), chunks=(2, 3))
        ds(f, "rank4", np.arange(2 * 3 * 4 * 5, dtype="<u1").reshape(2, 3, 4, 5))


@fixture("fill-values.h5")
def _(path):
    for low, suffix in (("earliest", "-earliest"), ("latest", "")):
        with new_file(path.replace(".h5", suffix + ".h5"), low=low) as f:
            ds(f, "default", shape=(10,), dtype="<f4", chunks=(5,))
            ds(f, "user_f4", shape=(10,), dtype="<f4", chunks=(5,), fillvalue=-999.5)
            ds(f, "user_nan", shape=(10,), dtype="<f8", chunks=(5,), fillvalue=np.nan)
            ds(f, "user_i2be", shape=(10,), dtype=">i2", fillvalue=-2)
            ds(f, "user_str", shape=(3,), dtype="S5", fillvalue=b"none")
            cdt = np.dtype([("a", "<i4"), ("b", "<f8")])
            ds(f, "user_compound", shape=(3,), dtype=cdt, fillvalue=np.array((7, 1.5), dtype=cdt))
            for name, ft in (("never", h5d.FILL_TIME_NEVER), ("alloc", h5d.FILL_TIME_ALLOC)):
                p = dcpl_new()
                p.set_chunk((4,))
                p.set_fill_time(ft)
                p.set_fill_value(np.array([5], dtype="<i4"))
                d = ll_dataset(f, "fill_time_" + name, h5t.STD_I32LE, (8,), dcpl=p)
                d[0:4] = 1
            p = dcpl_new()
            p.set_chunk((4,))
            call("H5Pset_fill_value", p.id, h5t.STD_I32LE.id, None)  # undefined fill value
            p.set_fill_time(h5d.FILL_TIME_NEVER)
            d = ll_dataset(f, "undefined", h5t.STD_I32LE, (8,), dcpl=p)
            d[...] = np.arange(8)
            p = dcpl_new()
            p.set_alloc_time(h5d.ALLOC_TIME_EARLY)
            p.set_fill_value(np.array([1.0], dtype="<f4"))
            ll_dataset(f, "early_contiguous", h5t.IEEE_F32LE, (6,), dcpl=p)


# ------------------------------------------------------------------ attributes

@fixture("attributes-compact-and-dense.h5")
def _(path):
    with new_file(path, low="latest") as f:
        d = ds(f, "dense_attrs", np.arange(4, dtype="<i4"))
        for i in range(30):
            d.attrs["attr_%02d" % i] = np.arange(i + 1, dtype="<i4")
        g = group(f, "compact_attrs")
        for i in range(5):
            g.attrs["a%d" % i] = np.float32(i) * 1.5
        g2 = group(f, "dense_group_attrs")
        for i in range(30):
            g2.attrs["s%02d" % i] = "value %d" % i
        d = ds(f, "large_attr", np.arange(3, dtype="<i4"))
        d.attrs["big"] = np.arange(10000, dtype="<f8")  # 80 KB > 64 KiB: dense storage
        d.attrs["small"] = np.int8(1)
        g3 = group(f, "ordered_attrs", track_order=True)
        for name in ("zeta", "alpha", "mid"):
            g3.attrs[name] = np.bytes_(name)
    with new_file(path.replace(".h5", "-earliest.h5"), low="earliest") as f:
        d = ds(f, "many_attrs", np.arange(4, dtype="<i4"))
        for i in range(30):
            d.attrs["attr_%02d" % i] = np.arange(i + 1, dtype="<i4")  # v1 object header with continuation blocks


# ------------------------------------------------------------------ groups & links

@fixture("groups-dense.h5")
def _(path):
    with new_file(path, low="latest") as f:
        g = group(f, "dense")
        for i in range(100):
            ds(g, "member_%03d" % i, np.int32(i))
        g = group(f, "compact")
        for i in range(5):
            group(g, "sub%d" % i)
        g = group(f, "dense_ordered", track_order=True)
        for i in reversed(range(60)):
            ds(g, "m%02d" % i, np.int16(i))


@fixture("groups-symbol-table-large.h5")
def _(path):
    with new_file(path, low="earliest") as f:
        g = group(f, "big")
        for i in range(300):  # many symbol-table nodes: a B-tree of more than one level
            ds(g, "member_%03d" % i, np.int32(i))
        g = group(f, "nested")
        for a in range(3):
            ga = group(g, "a%d" % a)
            for b in range(3):
                ds(group(ga, "b%d" % b), "leaf", np.arange(a * 3 + b + 1, dtype="<i2"))


@fixture("groups-track-order.h5")
def _(path):
    with new_file(path, low="latest", track_order=True) as f:
        for name in ("zulu", "alpha", "mike"):
            ds(f, name, np.arange(3, dtype="<i4"))
        g = group(f, "ordered", track_order=True)
        for name in ("c", "b", "a"):
            group(g, name)
    with new_file(path.replace(".h5", "-earliest.h5"), low="earliest", track_order=True) as f:
        for name in ("zulu", "alpha", "mike"):
            ds(f, name, np.arange(3, dtype="<i4"))


@fixture("links.h5")
def _(path):
    for low, suffix in (("earliest", "-earliest"), ("latest", "")):
        target = os.path.basename(path.replace(".h5", "-external-target.h5"))
        with new_file(path.replace(".h5", suffix + ".h5"), low=low) as f:
            d = ds(f, "data", np.arange(10, dtype="<f4"))
            g = group(f, "group")
            sub = group(g, "sub")
            f["soft_to_data"] = h5py.SoftLink("/data")
            f["soft_dangling"] = h5py.SoftLink("/no/such/object")
            g["soft_relative"] = h5py.SoftLink("sub")
            f["external"] = h5py.ExternalLink(target, "/payload")
            f["external_missing"] = h5py.ExternalLink("missing-file.h5", "/x")
            g["alias_of_data"] = d  # hard link: a second path to /data
            sub["cycle"] = g  # /group/sub/cycle -> /group
            f["group_alias"] = sub
    with new_file(path.replace(".h5", "-external-target.h5"), low="earliest") as f:
        ds(f, "payload", np.arange(5, dtype="<i8"))


@fixture("links-long-names-earliest.h5")
def _(path):
    # Old-style group whose local heap holds names longer than 64 KiB: a dataset, a group and a
    # soft link target (the heap is larger than any one name).
    long_dataset = "d" * 70000 + "_end"
    long_group = "g" * 100000
    with new_file(path, low="earliest") as f:
        ds(f, long_dataset, np.arange(6, dtype="<i4"))
        g = group(f, long_group)
        ds(g, "inner", np.arange(3, dtype="<f8"))
        f["soft_to_long"] = h5py.SoftLink("/" + long_dataset)
        ds(f, "short", np.arange(2, dtype="<i2"))


@fixture("committed-datatypes.h5")
def _(path):
    for low, suffix in (("earliest", "-earliest"), ("latest", "")):
        with new_file(path.replace(".h5", suffix + ".h5"), low=low) as f:
            f["types/point"] = np.dtype([("x", "<f8"), ("y", "<f8")])
            f["types/celsius"] = np.dtype(">f4")
            f["types/color"] = h5py.enum_dtype({"R": 0, "G": 1, "B": 2}, basetype="u1")
            pt = f["types/point"]
            pts = np.array([(1.0, 2.0), (3.0, 4.0)], dtype=pt.dtype)
            d = ds(f, "points", pts, dtype=pt)
            ds(f, "temperature", np.linspace(-10, 30, 9).astype(">f4"), dtype=f["types/celsius"])
            d.attrs.create("origin", np.array((0.0, 0.0), dtype=pt.dtype), dtype=pt)
            f.attrs.create("colors", np.array([0, 2], dtype="u1"), dtype=f["types/color"])
            f["types/point"].attrs["doc"] = np.bytes_("a 2-D point")


def _shared_messages_to_v1(path, dataset_paths):
    """Rewrite the shared datatype messages of v1 dataset headers in the 1.6 encoding.

    libhdf5 >= 1.8 writes a committed datatype's shared message as version 2 (address only) even
    for earliest-format files; HDF5 1.6 wrote version 1: reserved bytes and a whole symbol table
    entry (name offset, header address, cache type, scratch pad; 40 bytes with 8-byte sizes).
    The message grows from 16 to 48 bytes; the header's NIL message gives up the difference."""
    with h5py.File(path, "r") as f:
        addrs = {p: h5py.h5o.get_info(f[p].id).addr for p in dataset_paths}
        base = f.id.get_create_plist().get_userblock()
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    for name, addr in addrs.items():
        a = base + addr
        version, _, nmesgs, _, hsize = struct.unpack_from("<BBHII", data, a)
        assert version == 1, "%s: expected a v1 object header" % name
        start, end = a + 16, a + 16 + hsize
        messages, p = [], start
        while p + 8 <= end:
            mtype, size, flags = struct.unpack_from("<HHB", data, p)
            messages.append([mtype, flags, bytes(data[p + 8:p + 8 + size])])
            p += 8 + size
        grown = 0
        for m in messages:
            if m[0] == 0x3 and m[1] & 0x02 and m[2][0] == 2:
                oh_addr = m[2][2:10]
                entry = struct.pack("<Q", 0) + oh_addr + bytes(4 + 4 + 16)
                body = bytes([1, 0]) + bytes(6) + entry
                grown += len(body) - len(m[2])
                m[2] = body
        nil = next(m for m in reversed(messages) if m[0] == 0)
        assert len(nil[2]) >= grown, "%s: no room in the header's NIL message" % name
        nil[2] = nil[2][:len(nil[2]) - grown]
        out = b"".join(struct.pack("<HHB3x", t, len(b), fl) + b for t, fl, b in messages)
        assert len(out) == hsize and len(messages) == nmesgs
        data[start:end] = out
    with open(path, "wb") as fh:
        fh.write(data)


@fixture("committed-datatypes-shared-v1.h5")
def _(path):
    # A 1.6-era file: committed datatypes referenced through version 1 shared messages.
    with new_file(path, low="earliest") as f:
        f["types/point"] = np.dtype([("x", "<f8"), ("y", "<f8")])
        f["types/celsius"] = np.dtype(">f4")
        ds(f, "points", np.array([(1.0, 2.0), (3.0, 4.0), (5.5, -6.25)], dtype=f["types/point"].dtype),
           dtype=f["types/point"])
        ds(f, "temperature", np.linspace(-10, 30, 9).astype(">f4"), dtype=f["types/celsius"])
        ds(f, "group/temperature2", np.linspace(0, 8, 5).astype(">f4"), dtype=f["types/celsius"])
    _shared_messages_to_v1(path, ["points", "temperature", "group/temperature2"])


def _external_dataset(parent, name, data, segments):
    """A contiguous dataset whose bytes live in other files (External Data Files message)."""
    return parent.create_dataset(name, data=data, external=segments, track_times=False)


@fixture("external/external-raw-data.h5")
def _(path):
    # Raw data in other files, named relative to the HDF5 file (a subdirectory of its own: the
    # files are resolved against it, and the matrix's readers open fixtures from elsewhere).
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    for name in ("single.bin", "multi-a.bin", "multi-b.bin", "unlimited.bin", "unaligned.bin"):
        with open(os.path.join(directory, name), "wb") as fh:
            fh.write(bytes(range(256)) * 4)  # bytes around the segments that are not data
    here = os.getcwd()
    os.chdir(directory)  # libhdf5 opens external files for writing relative to the working directory
    try:
        with new_file(os.path.basename(path), low="earliest") as f:
            d = _external_dataset(f, "single", smooth((6, 4), 11), [("single.bin", 16, 96)])
            d.attrs["units"] = np.bytes_("K")
            # Rows 0-3, 4-9 and 10-11 in three segments of two files: chunks of two rows.
            _external_dataset(f, "multi", np.arange(60, dtype="<i2").reshape(12, 5) * 3 - 50,
                              [("multi-a.bin", 0, 40), ("multi-b.bin", 100, 60), ("multi-a.bin", 500, 20)])
            _external_dataset(f, "unlimited", np.arange(21, dtype="<i4").reshape(3, 7) - 5,
                              [("unlimited.bin", 8, h5f.UNLIMITED)])
            # Segments that end inside a row: no chunk grid fits them.
            _external_dataset(f, "unaligned", np.arange(12, dtype=">i4").reshape(4, 3),
                              [("unaligned.bin", 0, 20), ("unaligned.bin", 64, 28)])
            ds(f, "inside", np.arange(5, dtype="<f8"))
    finally:
        os.chdir(here)


@fixture("external/external-raw-data-hostile.h5")
def _(path):
    # External raw data named outside the file's directory: an absolute path and a `..` path
    # (which exists, so only confinement refuses it). Nothing is written through them.
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(os.path.dirname(directory), "outside.bin"), "wb") as fh:
        fh.write(np.arange(4, dtype="<i4").tobytes())
    with new_file(path, low="earliest") as f:
        f.create_dataset("absolute", (4,), "<i4", external=[("/etc/passwd", 0, 16)], track_times=False)
        f.create_dataset("dotdot", (4,), "<i4", external=[("../outside.bin", 0, 16)], track_times=False)
        ds(f, "inside", np.arange(3, dtype="<i2"))


@fixture("shared-messages.h5")
def _(path):
    def hook(fcpl):
        call("H5Pset_shared_mesg_nindexes", fcpl.id, 2)
        call("H5Pset_shared_mesg_index", fcpl.id, 0, (1 << 3) | (1 << 1), 1)  # datatype + dataspace
        call("H5Pset_shared_mesg_index", fcpl.id, 1, (1 << 12) | (1 << 11) | (1 << 5), 1)  # attr + pline + fill
    with new_file(path, low="v108", fcpl_hook=hook) as f:
        cdt = np.dtype([("id", "<i8"), ("value", "<f8"), ("flag", "u1")])
        for i in range(12):
            d = ds(f, "ds_%02d" % i, np.zeros(16, dtype=cdt), chunks=(8,), compression="gzip", fillvalue=np.zeros((), cdt))
            d.attrs["units"] = np.bytes_("metres per second")
            d.attrs["scale"] = np.float64(0.5)
            d.attrs["shared_compound"] = np.zeros(3, dtype=cdt)
        g = group(f, "g")
        for i in range(12):
            ds(g, "plain_%02d" % i, np.arange(20, dtype="<f4"))


@fixture("early-parse-decoys.h5")
def _(path):
    # For the parser's early parse of dataset headers found in the first bytes (and of what
    # their attributes reference): a dataset header no link leads to, references to a group, to
    # a deleted object and to a dataset two groups down, and more than 8 root links (dense
    # storage, as in netCDF-4 files).
    with new_file(path, low="latest") as f:
        gone = ds(f, "gone", np.arange(6, dtype="<i4"))
        gone.attrs["note"] = np.bytes_("deleted in a later session")
        g = group(f, "outer")
        inner = group(g, "inner")
        deep = ds(inner, "deep", np.arange(12, dtype="<f4").reshape(3, 4), chunks=(3, 2))
        scale = ds(f, "scale", np.arange(3, dtype="<i4"))
        scale.attrs.create("targets", [deep.ref, g.ref, gone.ref], dtype=h5py.ref_dtype)
        for i in range(10):
            ds(f, "plain_%02d" % i, np.full(4, i, dtype="<i2"))
    with h5py.File(path, "r+") as f:
        del f["gone"]
        plain = h5py.h5o.get_info(f["plain_00"].id).addr
    # libhdf5 wipes a deleted header, so the stale one is made by hand: a copy of plain_00's
    # header (checksum and all) after the end of the file's data, where no link leads.
    with open(path, "r+b") as fh:
        fh.seek(plain)
        prefix = fh.read(8)
        flags = prefix[5]
        size_at = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        fh.seek(plain + size_at)
        width = 1 << (flags & 3)
        chunk = int.from_bytes(fh.read(width), "little")
        fh.seek(plain)
        header = fh.read(size_at + width + chunk + 4)
        fh.seek(0, 2)
        fh.write(header)


# ------------------------------------------------------------------ netCDF-4

@fixture("netcdf4-classic-groups.nc")
def _(path):
    import netCDF4
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.setncattr("title", "netCDF-4 fixture")
        nc.setncattr("version", np.int32(3))
        nc.createDimension("time", None)
        nc.createDimension("lat", 12)
        nc.createDimension("lon", 16)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "hours since 2000-01-01"
        la = nc.createVariable("lat", "f4", ("lat",))
        la[:] = np.linspace(-60, 60, 12)
        lo = nc.createVariable("lon", "f4", ("lon",))
        lo[:] = np.linspace(0, 350, 16)
        v = nc.createVariable("temp", "f4", ("time", "lat", "lon"), zlib=True, complevel=4, shuffle=True,
                              chunksizes=(1, 6, 8), fill_value=np.float32(-9999))
        v.units = "K"
        for i in range(5):
            t[i] = i * 6
            v[i] = smooth((12, 16), 40 + i) + 273
        n = nc.createVariable("nan_fill", "f8", ("lat",), fill_value=np.nan)
        n[0:6] = np.arange(6)
        s = nc.createVariable("scalar", "i4")
        s.assignValue(7)
        sv = nc.createVariable("names", str, ("lat",))
        for i in range(12):
            sv[i] = "station %d" % i
        c = nc.createVariable("chars", "S1", ("lat",))
        c[:] = np.array(list("abcdefghijkl"), dtype="S1")
        g = nc.createGroup("forecast")
        g.createDimension("step", 4)
        gv = g.createVariable("wind", "f4", ("step", "lat"), fill_value=np.float32(1e20))
        gv[:] = smooth((4, 12), 50)
        sub = g.createGroup("members")
        sub.createDimension("member", 3)
        sub.createVariable("ensemble", "i2", ("member",))[:] = [1, 2, 3]
        u = nc.createVariable("unlimited_2d", "i8", ("time", "lon"))
        u[0:2, :] = np.arange(32).reshape(2, 16)


@fixture("netcdf4-user-types.nc")
def _(path):
    import netCDF4
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("n", 4)
        cdt = np.dtype([("speed", "f4"), ("direction", "i2")], align=True)
        ct = nc.createCompoundType(cdt, "wind_t")
        v = nc.createVariable("wind", ct, ("n",))
        data = np.zeros(4, dtype=cdt)
        data["speed"] = [1.5, 2.5, 3.5, 4.5]
        data["direction"] = [0, 90, 180, 270]
        v[:] = data
        et = nc.createEnumType(np.uint8, "cloud_t", {"clear": 0, "cumulus": 1, "stratus": 2, "missing": 255})
        e = nc.createVariable("cloud", et, ("n",), fill_value=255)
        e[:] = np.array([0, 1, 2, 255], dtype="u1")
        vt = nc.createVLType(np.int32, "ragged_t")
        r = nc.createVariable("ragged", vt, ("n",))
        for i in range(4):
            r[i] = np.arange(i + 1, dtype="i4")
        nc.setncattr("history", "created by tools/make-fixtures.py")


@fixture("netcdf4-classic-model.nc")
def _(path):
    import netCDF4
    with netCDF4.Dataset(path, "w", format="NETCDF4_CLASSIC") as nc:
        nc.createDimension("x", 30)
        nc.createDimension("t", None)
        x = nc.createVariable("x", "f8", ("x",))
        x[:] = np.arange(30) * 0.5
        v = nc.createVariable("v", "i2", ("t", "x"), zlib=True, fill_value=np.int16(-1))
        v.scale_factor = 0.01
        v.add_offset = 10.0
        v.set_auto_maskandscale(False)
        v[0:3, :] = np.arange(90, dtype="i2").reshape(3, 30)


# ------------------------------------------------------------------ netCDF-3 (classic, 64-bit offset, 64-bit data)
#
# Each netcdf3-*.nc comes with netcdf3-*.nc.expected.json: what netCDF4-python reads from it
# (format, record count, dimensions, attributes with their netCDF types, variables with shape,
# dtype, attributes and, for small variables, their raw values), which the Swift tests compare
# against the native parser and the Zarr mapping.

NC3_TYPE_NAMES = {"int8": "NC_BYTE", "int16": "NC_SHORT", "int32": "NC_INT", "float32": "NC_FLOAT",
                  "float64": "NC_DOUBLE", "uint8": "NC_UBYTE", "uint16": "NC_USHORT", "uint32": "NC_UINT",
                  "int64": "NC_INT64", "uint64": "NC_UINT64", "S1": "NC_CHAR"}


def _nc3_attribute(value):
    if isinstance(value, str):
        return {"type": "NC_CHAR", "text": value}
    arr = np.atleast_1d(np.asarray(value))
    return {"type": NC3_TYPE_NAMES[arr.dtype.name], "values": arr.tolist()}


def _nc3_expected(path, max_values=4096):
    import json
    import netCDF4
    with netCDF4.Dataset(path) as nc:
        out = {"format": nc.file_format, "dimensions": [], "attributes": [], "variables": []}
        unlimited = [d for d in nc.dimensions.values() if d.isunlimited()]
        out["numrecs"] = len(unlimited[0]) if unlimited else 0
        for name, d in nc.dimensions.items():
            out["dimensions"].append({"name": name, "length": len(d), "unlimited": d.isunlimited()})
        for name in nc.ncattrs():
            out["attributes"].append(dict(name=name, **_nc3_attribute(nc.getncattr(name))))
        for name, v in nc.variables.items():
            v.set_auto_maskandscale(False)
            v.set_always_mask(False)
            dtype = "S1" if v.dtype == np.dtype("S1") else np.dtype(v.dtype).name
            entry = {"name": name, "dimensions": list(v.dimensions), "shape": list(v.shape),
                     "type": NC3_TYPE_NAMES[dtype],
                     "attributes": [dict(name=a, **_nc3_attribute(v.getncattr(a))) for a in v.ncattrs()]}
            if v.size <= max_values:
                data = np.asarray(v[...]) if v.size > 0 else np.zeros(v.shape, dtype=v.dtype)
                if dtype == "S1":
                    entry["data"] = np.frombuffer(data.tobytes(), dtype="u1").tolist()
                else:
                    flat = data.reshape(-1)
                    entry["data"] = [None if isinstance(x, float) and x != x else x for x in flat.tolist()]
            out["variables"].append(entry)
    with open(path + ".expected.json", "w") as fh:
        json.dump(out, fh, indent=1, sort_keys=False)


def _nc3_classic_types_attributes(target):
    target.setncattr("a_byte", np.int8(-7))
    target.setncattr("a_bytes", np.array([-128, 0, 127], dtype="i1"))
    target.setncattr("a_char", "température, a UTF-8 text")
    target.setncattr("a_short", np.int16(-300))
    target.setncattr("a_shorts", np.array([1, -2, 32767], dtype="i2"))
    target.setncattr("a_int", np.int32(-70000))
    target.setncattr("a_ints", np.array([2147483647, -2147483648], dtype="i4"))
    target.setncattr("a_float", np.float32(1.5))
    target.setncattr("a_floats", np.array([0.1, -2.5e10, 3.25], dtype="f4"))
    target.setncattr("a_double", np.float64(2.718281828459045))
    target.setncattr("a_doubles", np.array([1e-300, -0.0, 1e300], dtype="f8"))


def _nc3_all_types_attributes(target):
    _nc3_classic_types_attributes(target)
    target.setncattr("a_ubyte", np.uint8(255))
    target.setncattr("a_ushorts", np.array([0, 65535], dtype="u2"))
    target.setncattr("a_uint", np.uint32(4294967295))
    target.setncattr("a_int64s", np.array([-9223372036854775808, 9223372036854775807], dtype="i8"))
    target.setncattr("a_uint64", np.uint64(18446744073709551615))


def _nc3_weather(nc, records, string_length=4):
    """A small model output: coordinates, record and fixed variables, chars, fill values."""
    nc.setncattr("title", "netCDF-3 fixture")
    nc.setncattr("Conventions", "CF-1.8")
    _nc3_classic_types_attributes(nc)
    nc.createDimension("time", None)
    nc.createDimension("lat", 5)
    nc.createDimension("lon", 7)
    nc.createDimension("nchar", string_length)
    t = nc.createVariable("time", "f8", ("time",))
    t.units = "hours since 2000-01-01"
    la = nc.createVariable("lat", "f4", ("lat",))
    la.units = "degrees_north"
    la[:] = np.linspace(-60, 60, 5)
    lo = nc.createVariable("lon", "f4", ("lon",))
    lo[:] = np.linspace(0, 300, 7)
    temp = nc.createVariable("temp", "f4", ("time", "lat", "lon"), fill_value=np.float32(-9999))
    temp.units = "K"
    temp.long_name = "air temperature"
    _nc3_classic_types_attributes(temp)
    pres = nc.createVariable("pres", "i2", ("lat", "lon"))
    pres.scale_factor = np.float32(0.1)
    pres.add_offset = np.float32(1000)
    pres.set_auto_maskandscale(False)
    pres[:] = np.arange(35, dtype="i2").reshape(5, 7) - 17
    flag = nc.createVariable("flag", "i1", ("time",), fill_value=np.int8(-1))
    counts = nc.createVariable("counts", "i4", ("time", "lat"))
    odd = nc.createVariable("odd", "i2", ("time", "lon"))  # 14 bytes a record: padded to 16
    names = nc.createVariable("station", "S1", ("lat", "nchar"))
    names[:] = netCDF4_stringtochar(np.array(["ab", "cde", "fghi", "j", ""], dtype="S%d" % string_length))
    label = nc.createVariable("label", "S1", ("time", "nchar"))
    for r in range(records):
        t[r] = r * 6
        temp[r] = smooth((5, 7), 60 + r) + 273
        flag[r] = r % 3 - 1 if r % 4 else -1
        counts[r] = np.arange(5, dtype="i4") * (r + 1)
        odd[r] = np.arange(7, dtype="i2") - r
        label[r] = netCDF4_stringtochar(np.array(["r%d" % r], dtype="S%d" % string_length))[0]


def netCDF4_stringtochar(a):
    import netCDF4
    return netCDF4.stringtochar(a)


@fixture("netcdf3-classic.nc")
def _(path):
    import netCDF4
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as nc:
        _nc3_weather(nc, records=3)
    _nc3_expected(path)


@fixture("netcdf3-64bit-offset.nc")
def _(path):
    import netCDF4
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        _nc3_weather(nc, records=40, string_length=5)
    _nc3_expected(path)


@fixture("netcdf3-zero-records.nc")
def _(path):
    import netCDF4
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as nc:
        _nc3_weather(nc, records=0)
    _nc3_expected(path)


@fixture("netcdf3-64bit-data.nc")
def _(path):
    import netCDF4
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_DATA") as nc:
        nc.setncattr("title", "CDF-5 fixture with every type")
        _nc3_all_types_attributes(nc)
        nc.createDimension("rec", None)
        nc.createDimension("n", 3)
        nc.createDimension("m", 2)
        for i, dt in enumerate(["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"]):
            info = np.iinfo(dt) if dt[0] in "iu" else np.finfo(dt)
            fixed = nc.createVariable("fixed_" + dt, dt, ("n", "m"))
            fixed[:] = np.array([[info.min, info.max], [0, 1], [2, 3]], dtype=dt)
            rec = nc.createVariable("rec_" + dt, dt, ("rec", "n"))
            _nc3_all_types_attributes(rec) if i == 0 else rec.setncattr("index", np.int32(i))
            for r in range(2):
                rec[r] = (np.arange(3) + 10 * r + i).astype(dt)
        c = nc.createVariable("chars", "S1", ("rec", "m"))
        c[0] = np.array([b"x", b"y"])
        c[1] = np.array([b"z", b"w"])
        s = nc.createVariable("scalar", "i8")
        s.assignValue(-42)
    _nc3_expected(path)


@fixture("netcdf3-one-record-variable.nc")
def _(path):
    import netCDF4
    # One record variable alone is packed: its 3 shorts (6 bytes) a record are not padded to 8.
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as nc:
        nc.createDimension("time", None)
        nc.createDimension("x", 3)
        x = nc.createVariable("x", "f8", ("x",))
        x[:] = [0.5, 1.5, 2.5]
        v = nc.createVariable("v", "i2", ("time", "x"))
        v.units = "1"
        for r in range(5):
            v[r] = np.array([r, -r, 100 + r], dtype="i2")
    _nc3_expected(path)


@fixture("netcdf3-scipy.nc")
def _(path):
    from scipy.io import netcdf_file
    f = netcdf_file(path, "w", version=2)
    f.history = b"written by scipy.io.netcdf_file"
    f.createDimension("time", None)
    f.createDimension("y", 4)
    y = f.createVariable("y", "f8", ("y",))
    y[:] = [1.0, 2.0, 4.0, 8.0]
    y.units = b"m"
    t = f.createVariable("time", "i4", ("time",))
    v = f.createVariable("v", "f4", ("time", "y"))
    v.missing_value = np.float32(-1)
    t[0] = 17
    v[0] = np.array([0.25, 0.5, 0.75, 1.0], dtype="f4")
    f.close()
    _nc3_expected(path)


@fixture("netcdf3-large-header.nc")
def _(path):
    import netCDF4
    # 400 attributes of 200 characters: a header of about 100 KiB, past the first 64 KiB read.
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as nc:
        for i in range(400):
            nc.setncattr("comment_%03d" % i, ("attribute %d " % i) * 20)
        nc.createDimension("x", 4)
        v = nc.createVariable("v", "i4", ("x",))
        v.note = "after the long global attribute list"
        v[:] = [1, 2, 3, 4]
    _nc3_expected(path)


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(
        description="Write the HDF5/netCDF-4 fixture matrix (deterministic) into OUTDIR.",
        epilog="Files are named after what they cover, e.g. layout-chunked-extensible-array.h5. "
               "Check them with: tools/check-oracle.py --zarrmount Z --fixtures OUTDIR --expected OUTDIR-expected")
    ap.add_argument("outdir", metavar="OUTDIR")
    ap.add_argument("--only", metavar="SUBSTR", help="only fixtures whose name contains SUBSTR")
    ap.add_argument("--list", action="store_true", help="list fixture generators and exit")
    args = ap.parse_args()
    if args.list:
        for name, _ in FIXTURES:
            print(name)
        return 0
    os.makedirs(args.outdir, exist_ok=True)
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    t0 = time.monotonic()
    for name, fn in FIXTURES:
        if args.only and args.only not in name:
            continue
        fn(os.path.join(args.outdir, name))
    files = sorted(p for p in glob.glob(os.path.join(args.outdir, "*")) if p.endswith((".h5", ".nc")))
    for p in files:
        normalize_times(p)
    total = sum(os.path.getsize(p) for p in files)
    print("make-fixtures: %d files, %d bytes (%.1f MB) in %s (%.1f s)" % (
        len(files), total, total / 1e6, args.outdir, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
