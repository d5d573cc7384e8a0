#!/usr/bin/env python3
"""Write the multi-file sets and single-file edge cases of the virtual-dataset tests into OUTDIR.

Every set is a directory; a test scans it (`zarrmount scan OUTDIR/SET/*.nc ...`) and compares the
virtual dataset with xarray on the originals (Tests/python/test_virtual_datasets.py).

  wrf/                  31 daily WRF-like files from tools/make-archive.py (concat dim Time)
  aligned/              4 files, unlimited `time` of 3 per file, time chunks of 3: chunk indices offset
                        cleanly; fixed lat/lon, a static 2-D variable, global attributes that differ
  reordered/            3 files whose key order is not their time order (--order coordinate)
  oversized-unfiltered/ 5 files, unlimited `time` of 1 per file stored in netCDF's default chunk of
                        1024 (`value`) and in an explicit (1024, 6) chunk (`profile`), unfiltered: they
                        combine by referencing each chunk's leading byte range. The `time` coordinate
                        itself is zlib-compressed in a 512-long chunk: it must be decoded and inlined.
  oversized-filtered/   the same with `value` zlib-compressed: an error naming `value`
  misaligned/           3 files of time length 2; `temp` is zlib-compressed in time chunks of 3: an error
                        naming `temp` (every other variable is chunked 2 along time and lines up)
  codec-mismatch/       2 files; `temp` is zlib in one and uncompressed in the other: error naming `temp`
  dtype-mismatch/       2 files; `temp` is float32 in one and float64 in the other: error naming `temp`
  broken/               part_01.nc, part_02.nc and part_03.nc truncated to 1/3 of its size: an error
                        naming part_03.nc; with --on-error skip the other two combine
  stack/                member_01.nc .. member_03.nc without a time dimension, stacked along a new
                        dimension `member` (values 1, 2, 3 from the regex `member_(\\d+)`)
  edge/                 single files, one per edge case: never-written variables (fill only, every numeric
                        type, chunked/contiguous/zlib, strings, chars), scalars, fill values of every
                        numeric type (NaN, -Inf, netCDF "no fill", default fill), big-endian data, vlen
                        strings and char arrays, HDF5 fixed/vlen strings, compound (padded), enum,
                        nested groups, _Unsigned, times (calendars, int64 with fill), packed data
                        (scale_factor/add_offset/missing_value), plain HDF5 without dimension scales
                        (phony dims, also nested), a compact dataset, partially written chunks, attribute
                        types, and > 16 MiB uncompressed contiguous variables (one with a prime length)

Output is deterministic (fixed data, no object timestamps) for the same h5py/netCDF4 versions.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # tools/, for _bootstrap
import _bootstrap  # noqa: E402
_REPO = _bootstrap.use_repo_venv(__file__, warn_if_missing=True)

import argparse
import importlib.machinery
import importlib.util
import shutil
import subprocess
import time

import numpy as np

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
import h5py  # noqa: E402
import netCDF4  # noqa: E402
from h5py import h5d, h5p, h5s, h5t  # noqa: E402


def _load_make_fixtures():
    path = os.path.join(_REPO, "tools", "make-fixtures.py")
    loader = importlib.machinery.SourceFileLoader("make_fixtures", path)
    spec = importlib.util.spec_from_loader("make_fixtures", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


normalize_times = _load_make_fixtures().normalize_times


def smooth(shape, seed=0, dtype="f4", scale=10.0):
    r = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 3, n) for n in shape], indexing="ij")
    a = sum(np.sin(g * (i + 1) + r.uniform(0, 6)) for i, g in enumerate(grids))
    return (np.round(a * scale * 64) / 64).astype(dtype)


def nc_file(path, fmt="NETCDF4"):
    return netCDF4.Dataset(path, "w", format=fmt)


# ------------------------------------------------------------------ multi-file sets

def make_wrf(outdir, days):
    d = os.path.join(outdir, "wrf")
    subprocess.run([sys.executable, os.path.join(_REPO, "tools", "make-archive.py"), d, "--days", str(days),
                    "--jobs", str(min(2, os.cpu_count() or 1))], check=True, stdout=subprocess.DEVNULL)


def _aligned_file(path, index, nt=3, tchunk=3, title="aligned set", extra_attrs=None, temp_kw=None,
                  temp_dtype="f4", t0=None):
    ny, nx = 5, 7
    with nc_file(path) as nc:
        nc.setncatts({"title": title, "Conventions": "CF-1.8", "file_index": np.int32(index),
                      "history": "file %d of the set" % index})
        if extra_attrs:
            nc.setncatts(extra_attrs)
        nc.createDimension("time", None)
        nc.createDimension("lat", ny)
        nc.createDimension("lon", nx)
        t = nc.createVariable("time", "f8", ("time",), chunksizes=(tchunk,))
        t.units = "days since 2000-01-01 00:00:00"
        t.calendar = "standard"
        t.standard_name = "time"
        start = index * nt if t0 is None else t0
        t[:] = np.arange(start, start + nt, dtype="f8") + 0.5
        la = nc.createVariable("lat", "f4", ("lat",))
        la.units = "degrees_north"
        la[:] = np.linspace(40, 48, ny)
        lo = nc.createVariable("lon", "f4", ("lon",))
        lo.units = "degrees_east"
        lo[:] = np.linspace(-10, 2, nx)
        kw = dict(zlib=True, complevel=4, shuffle=True, chunksizes=(tchunk, ny, nx))
        if temp_kw is not None:
            kw = temp_kw
        v = nc.createVariable("temp", temp_dtype, ("time", "lat", "lon"), fill_value=np.array(-999, temp_dtype), **kw)
        v.units = "K"
        v.long_name = "air temperature"
        data = np.stack([smooth((ny, nx), 100 + start + k) + 280 for k in range(nt)]).astype(temp_dtype)
        if nt > 1:
            data[1, 2, 3] = -999  # masked by _FillValue
        v[:] = data
        p = nc.createVariable("precip", "f4", ("time", "lat", "lon"), chunksizes=(tchunk, 3, 4), fill_value=np.float32(np.nan))
        p.units = "mm"
        p[:] = np.abs(np.stack([smooth((ny, nx), 200 + start + k) for k in range(nt)]))
        c = nc.createVariable("count", "i2", ("time",), chunksizes=(tchunk,), zlib=True)
        c[:] = np.arange(start, start + nt, dtype="i2") * 3
        e = nc.createVariable("elevation", "f4", ("lat", "lon"), zlib=True)  # static 2-D
        e.units = "m"
        e[:] = np.abs(smooth((ny, nx), 7)) * 100
    normalize_times(path)


def make_aligned(outdir):
    d = os.path.join(outdir, "aligned")
    os.makedirs(d, exist_ok=True)
    for i in range(4):
        _aligned_file(os.path.join(d, "aligned_%02d.nc" % i), i)


def make_reordered(outdir):
    d = os.path.join(outdir, "reordered")
    os.makedirs(d, exist_ok=True)
    for name, t0 in (("run_a.nc", 6), ("run_b.nc", 0), ("run_c.nc", 3)):
        _aligned_file(os.path.join(d, name), t0 // 3, t0=t0)


def _oversized_file(path, index, filtered):
    with nc_file(path) as nc:
        nc.setncatts({"title": "oversized unlimited chunks"})
        nc.createDimension("time", None)
        nc.createDimension("x", 6)
        t = nc.createVariable("time", "f8", ("time",), zlib=True)  # default chunk: 512 (4 KiB)
        t.units = "hours since 2001-01-01"
        t[0] = index * 6.0
        x = nc.createVariable("x", "i4", ("x",))
        x[:] = np.arange(6) * 10
        kw = dict(zlib=True, complevel=1) if filtered else {}
        v = nc.createVariable("value", "f4", ("time",), **kw)  # default chunk: 1024
        v.units = "1"
        v[0] = 1.25 * index - 2
        p = nc.createVariable("profile", "i4", ("time", "x"), chunksizes=(1024, 6), fill_value=np.int32(-1))
        p[0, :] = np.arange(6, dtype="i4") + 100 * index
        f = nc.createVariable("field", "f4", ("time", "x"), zlib=True)  # default chunk (1, 6)
        f[0, :] = smooth((6,), index)
        nc.createVariable("static", "f8", ("x",))[:] = np.linspace(0, 1, 6)
    normalize_times(path)
    with netCDF4.Dataset(path) as nc:
        assert nc["value"].chunking() == [1024], nc["value"].chunking()
        assert nc["profile"].chunking() == [1024, 6]


def make_oversized(outdir):
    for filtered, name in ((False, "oversized-unfiltered"), (True, "oversized-filtered")):
        d = os.path.join(outdir, name)
        os.makedirs(d, exist_ok=True)
        for i in range(5):
            _oversized_file(os.path.join(d, "step_%02d.nc" % i), i, filtered)


def make_misaligned(outdir):
    d = os.path.join(outdir, "misaligned")
    os.makedirs(d, exist_ok=True)
    for i in range(3):
        _aligned_file(os.path.join(d, "mis_%02d.nc" % i), i, nt=2, tchunk=2,
                      temp_kw=dict(zlib=True, chunksizes=(3, 5, 7)))


def make_codec_mismatch(outdir):
    d = os.path.join(outdir, "codec-mismatch")
    os.makedirs(d, exist_ok=True)
    _aligned_file(os.path.join(d, "codec_00.nc"), 0, temp_kw=dict(zlib=True, complevel=4, chunksizes=(3, 5, 7)))
    _aligned_file(os.path.join(d, "codec_01.nc"), 1, temp_kw=dict(zlib=False, chunksizes=(3, 5, 7)))


def make_dtype_mismatch(outdir):
    d = os.path.join(outdir, "dtype-mismatch")
    os.makedirs(d, exist_ok=True)
    _aligned_file(os.path.join(d, "dtype_00.nc"), 0)
    _aligned_file(os.path.join(d, "dtype_01.nc"), 1, temp_dtype="f8")


def make_broken(outdir):
    d = os.path.join(outdir, "broken")
    os.makedirs(d, exist_ok=True)
    for i in range(3):
        _aligned_file(os.path.join(d, "part_%02d.nc" % (i + 1)), i)
    bad = os.path.join(d, "part_03.nc")
    size = os.path.getsize(bad)
    with open(bad, "r+b") as fh:
        fh.truncate(size // 3)


def make_stack(outdir):
    d = os.path.join(outdir, "stack")
    os.makedirs(d, exist_ok=True)
    for m in (1, 2, 3):
        path = os.path.join(d, "member_%02d.nc" % m)
        with nc_file(path) as nc:
            nc.setncatts({"title": "ensemble member", "source": "tools/make-vz-sets.py"})
            nc.createDimension("y", 6)
            nc.createDimension("x", 8)
            y = nc.createVariable("y", "f8", ("y",))
            y[:] = np.arange(6) * 1000.0
            x = nc.createVariable("x", "f8", ("x",))
            x[:] = np.arange(8) * 1000.0
            v = nc.createVariable("field", "f4", ("y", "x"), zlib=True, shuffle=True, chunksizes=(3, 4),
                                  fill_value=np.float32(1e20))
            v.units = "m"
            v[:] = smooth((6, 8), 300 + m)
            w = nc.createVariable("flag", "u1", ("x",))
            w[:] = np.arange(8, dtype="u1") * m
            nc.createVariable("scalar", "f8", ()).assignValue(m * 0.5)
        normalize_times(path)


# ------------------------------------------------------------------ single-file edge cases

EDGE = []


def edge(name):
    def deco(fn):
        EDGE.append((name, fn))
        return fn
    return deco


NUMERIC = ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"]
FILLS = {"i1": -7, "u1": 250, "i2": -32000, "u2": 65000, "i4": -2000000000, "u4": 4000000000,
         "i8": -(2 ** 62), "u8": 2 ** 63 + 5, "f4": -1e30, "f8": 1e300}


@edge("never-written.nc")
def _(path):
    with nc_file(path) as nc:
        nc.createDimension("x", 10)
        nc.createDimension("y", 4)
        nc.createDimension("t", None)
        nc.createVariable("x", "i4", ("x",))[:] = np.arange(10)
        for dt in NUMERIC:  # default netCDF fill, no _FillValue attribute, never written, contiguous
            nc.createVariable("empty_%s" % dt, dt, ("x",))
        nc.createVariable("empty_chunked", "f4", ("y", "x"), chunksizes=(2, 5))
        nc.createVariable("empty_zlib", "f8", ("y", "x"), zlib=True, chunksizes=(2, 5))
        nc.createVariable("empty_user_fill", "i2", ("y", "x"), fill_value=np.int16(-5), chunksizes=(2, 5))
        nc.createVariable("empty_nan_fill", "f4", ("x",), fill_value=np.float32(np.nan))
        nc.createVariable("empty_unlimited", "f4", ("t", "x"))  # length 0
        nc.createVariable("empty_string", str, ("y",))
        nc.createDimension("strlen", 5)
        nc.createVariable("empty_chars", "S1", ("y", "strlen"))  # default char fill: NUL
        c = nc.createVariable("partial_chars", "S1", ("y", "strlen"), chunksizes=(1, 5))
        c.set_auto_chartostring(False)
        c[1] = np.frombuffer(b"hello", dtype="S1")
        c[3] = np.frombuffer(b"bye\x00\x00", dtype="S1")


@edge("scalars.nc")
def _(path):
    with nc_file(path) as nc:
        for dt in NUMERIC:
            v = nc.createVariable("scalar_%s" % dt, dt, ())
            v.assignValue(np.array(FILLS[dt] // 3 if dt[0] in "iu" else FILLS[dt] / 3, dtype=dt))
        v = nc.createVariable("scalar_fill", "f4", (), fill_value=np.float32(-1))
        v.assignValue(np.float32(2.5))
        nc.createVariable("scalar_unwritten", "f8", (), fill_value=np.float64(-9.5))
        nc.createVariable("scalar_unwritten_default", "i4", ())
        s = nc.createVariable("scalar_string", str, ())
        s[0] = "a scalar string"
        nc.createVariable("scalar_zlib", "f8", (), zlib=True).assignValue(1.5)


@edge("fill-values.nc")
def _(path):
    with nc_file(path) as nc:
        nc.createDimension("x", 12)
        nc.createDimension("t", None)
        for dt in NUMERIC:
            v = nc.createVariable("fill_%s" % dt, dt, ("x",), fill_value=np.array(FILLS[dt], dtype=dt), chunksizes=(4,))
            vals = np.arange(12).astype(dt)
            v.set_auto_maskandscale(False)
            v[0:6] = vals[0:6]
            v[7] = np.array(FILLS[dt], dtype=dt)  # an explicit fill inside a written chunk
            # [8:12] never written: a whole missing chunk
            d = nc.createVariable("default_%s" % dt, dt, ("x",), chunksizes=(4,))  # no _FillValue attribute
            d.set_auto_maskandscale(False)
            d[0:6] = vals[0:6]
            if dt[0] in "iu":
                n = nc.createVariable("nofill_%s" % dt, dt, ("x",), fill_value=False)  # netCDF "no fill" mode
                n[:] = vals
        for dt in ("f4", "f8"):
            v = nc.createVariable("nan_%s" % dt, dt, ("x",), fill_value=np.array(np.nan, dt), chunksizes=(4,))
            v[0:5] = np.arange(5)
            v = nc.createVariable("inf_%s" % dt, dt, ("x",), fill_value=np.array(-np.inf, dt), chunksizes=(4,))
            v[0:5] = np.arange(5)
        v = nc.createVariable("time_like_zero", "i8", ("t",))  # 0 is a real value, default fill
        v.units = "seconds since 1970-01-01"
        v[0:3] = [0, 1, 2]


@edge("big-endian.nc")
def _(path):
    with nc_file(path) as nc:
        nc.createDimension("x", 20)
        nc.createDimension("y", 6)
        for dt in ("i2", "u2", "i4", "u4", "i8", "f4", "f8"):
            v = nc.createVariable("be_%s" % dt, np.dtype(dt).newbyteorder(">"), ("y", "x"), endian="big", chunksizes=(3, 10),
                                  zlib=dt in ("f4", "i4"), shuffle=dt == "f4",
                                  fill_value=np.array(FILLS[dt] if dt in FILLS else 0, dtype=dt))
            v[:] = (np.arange(120).reshape(6, 20) * 3 - 50).astype(dt) if dt[0] in "iu" else smooth((6, 20), 5, dt)
        c = nc.createVariable("be_contiguous", ">f8", ("x",), endian="big", contiguous=True)
        c[:] = np.linspace(-1, 1, 20)
        c.valid_range = np.array([-1.0, 1.0], dtype=">f8")


@edge("strings.nc")
def _(path):
    with nc_file(path) as nc:
        nc.createDimension("n", 4)
        nc.createDimension("strlen", 8)
        s = nc.createVariable("vlen", str, ("n",))
        for i, w in enumerate(["alpha", "b\u00e9ta", "", "a much longer string with spaces"]):
            s[i] = w
        s.long_name = "variable-length strings"
        c = nc.createVariable("chars", "S1", ("n", "strlen"))
        c[:] = netCDF4.stringtochar(np.array([b"one", b"two2", b"three", b"fourfour"], dtype="S8"))
        c.long_name = "fixed strings as a char array"
        e = nc.createVariable("chars_encoded", "S1", ("n", "strlen"))
        e._Encoding = "utf-8"
        e.set_auto_chartostring(False)
        e[:] = np.array(["caf\u00e9".encode(), b"x", b"", b"yz"], dtype="S8").view("S1").reshape(4, 8)
        nc.title = "strings"
        nc.setncattr_string("string_list", ["a", "bc", "def"])
        nc.utf8_attr = "\u2603 snowman"


@edge("strings-hdf5.h5")
def _(path):
    with h5py.File(path, "w", libver="earliest", track_order=False) as f:
        n = f.create_dataset("n", data=np.arange(4, dtype="i4"), track_times=False)
        n.make_scale("n")
        for name, data, dtype in (
                ("fixed_ascii", np.array([b"ab", b"cde", b"", b"fghij"], dtype="S5"), None),
                ("vlen_utf8", np.array(["\u00e9t\u00e9", "snow \u2603", "", "z"], dtype=object), h5py.string_dtype("utf-8")),
                ("vlen_ascii", np.array([b"one", b"two", b"three", b"4"], dtype=object), h5py.string_dtype("ascii"))):
            d = f.create_dataset(name, data=data, dtype=dtype, track_times=False)
            d.dims[0].attach_scale(n)
    normalize_times(path)


@edge("compound.nc")
def _(path):
    with nc_file(path) as nc:
        nc.createDimension("n", 5)
        cdt = np.dtype([("speed", "f4"), ("direction", "i2"), ("quality", "u1")], align=True)
        ct = nc.createCompoundType(cdt, "wind_t")
        v = nc.createVariable("wind", ct, ("n",))
        data = np.zeros(5, dtype=cdt)
        data["speed"] = [1.5, 2.5, 3.5, 4.5, 5.5]
        data["direction"] = [0, 90, 180, 270, 45]
        data["quality"] = [1, 2, 3, 4, 5]
        v[:] = data
        v.long_name = "compound wind"
        nc.createVariable("plain", "f4", ("n",))[:] = np.arange(5)


@edge("enum.nc")
def _(path):
    with nc_file(path) as nc:
        nc.createDimension("n", 6)
        et = nc.createEnumType(np.uint8, "cloud_t", {"clear": 0, "cumulus": 1, "stratus": 2, "missing": 255})
        e = nc.createVariable("cloud", et, ("n",), fill_value=255)
        e[:] = np.array([0, 1, 2, 255, 1, 0], dtype="u1")
        e.long_name = "cloud type"
        et2 = nc.createEnumType(np.int16, "level_t", {"low": -1, "mid": 0, "high": 1})
        e2 = nc.createVariable("level", et2, ("n",))
        e2[:] = np.array([-1, 0, 1, 1, 0, -1], dtype="i2")


@edge("groups.nc")
def _(path):
    with nc_file(path) as nc:
        nc.title = "nested groups"
        nc.createDimension("x", 4)
        nc.createVariable("x", "i4", ("x",))[:] = np.arange(4)
        nc.createVariable("root_var", "f4", ("x",))[:] = np.arange(4) * 0.5
        a = nc.createGroup("a")
        a.group_attr = "group a"
        a.createDimension("y", 3)
        a.createVariable("y", "f8", ("y",))[:] = [10.0, 20.0, 30.0]
        av = a.createVariable("a_var", "f4", ("x", "y"), zlib=True, fill_value=np.float32(-1))  # inherited dim x
        av[:] = smooth((4, 3), 3)
        b = a.createGroup("b")
        b.depth = np.int32(2)
        b.createDimension("z", 2)
        b.createVariable("b_var", "i2", ("z", "y", "x"))[:] = np.arange(24).reshape(2, 3, 4)
        c = b.createGroup("c")
        c.createVariable("c_scalar", "f8", ()).assignValue(42.0)
        nc.createGroup("empty_group").note = "a group without variables"


@edge("unsigned.nc")
def _(path):
    with nc_file(path) as nc:
        nc.createDimension("x", 8)
        v = nc.createVariable("ubyte_attr", "i1", ("x",))  # netCDF-3 style: signed storage, _Unsigned
        v._Unsigned = "true"
        v.set_auto_maskandscale(False)
        v[:] = np.array([0, 1, 127, -128, -1, -2, 5, 6], dtype="i1")
        w = nc.createVariable("ubyte_attr_fill", "i1", ("x",), fill_value=np.int8(-1))
        w._Unsigned = "true"
        w.set_auto_maskandscale(False)
        w[:] = np.array([0, 1, 127, -128, -1, -2, 5, 6], dtype="i1")
        u = nc.createVariable("ubyte", "u1", ("x",))
        u[:] = np.array([0, 1, 127, 128, 255, 254, 5, 6], dtype="u1")
        s = nc.createVariable("ushort_attr", "i2", ("x",))
        s._Unsigned = "true"
        s.set_auto_maskandscale(False)
        s[:] = np.array([0, 1, 32767, -32768, -1, -2, 5, 6], dtype="i2")
        f = nc.createVariable("signed_from_unsigned", "u1", ("x",))
        f._Unsigned = "false"
        f.set_auto_maskandscale(False)
        f[:] = np.array([0, 1, 127, 128, 255, 254, 5, 6], dtype="u1")


@edge("time.nc")
def _(path):
    with nc_file(path) as nc:
        nc.createDimension("time", None)
        nc.createDimension("t2", 4)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "hours since 1999-12-31 18:00:00"
        t.calendar = "proleptic_gregorian"
        t.standard_name = "time"
        t[:] = [0.0, 6.0, 12.0, 18.5, 24.0]
        n = nc.createVariable("time_noleap", "i4", ("t2",))
        n.units = "days since 2001-01-01"
        n.calendar = "noleap"
        n[:] = [0, 58, 59, 364]
        d = nc.createVariable("time_360", "f8", ("t2",))
        d.units = "days since 2000-01-01"
        d.calendar = "360_day"
        d[:] = [0, 29.5, 30, 359]
        i = nc.createVariable("time_int64_fill", "i8", ("t2",), fill_value=np.int64(-1))
        i.units = "seconds since 1970-01-01T00:00:00"
        i[0:2] = [0, 86400]  # [2:4] fill: NaT
        dd = nc.createVariable("duration", "f4", ("t2",))
        dd.units = "hours"
        dd[:] = [0.5, 1, 2, 48]
        b = nc.createVariable("time_bnds", "f8", ("time", "t2"))
        b[:] = np.arange(20).reshape(5, 4)
        t.bounds = "time_bnds"


@edge("packed.nc")
def _(path):
    with nc_file(path) as nc:
        nc.createDimension("x", 10)
        v = nc.createVariable("packed", "i2", ("x",), fill_value=np.int16(-32767))
        v.scale_factor = np.float32(0.01)
        v.add_offset = np.float32(273.15)
        v.missing_value = np.int16(-32766)
        v.units = "K"
        v.set_auto_maskandscale(False)
        v[:] = np.array([0, 100, -100, -32767, -32766, 5000, 7, 8, 9, 10], dtype="i2")
        w = nc.createVariable("packed_f8", "i4", ("x",))
        w.scale_factor = 0.5
        w.add_offset = -10.0
        w.set_auto_maskandscale(False)
        w[:] = np.arange(10, dtype="i4")
        m = nc.createVariable("missing_only", "f4", ("x",))
        m.missing_value = np.array([-1.0, -2.0], dtype="f4")
        m[:] = np.array([0, -1, -2, 3, 4, 5, 6, 7, 8, 9], dtype="f4")
        u = nc.createVariable("packed_u", "i1", ("x",))
        u._Unsigned = "true"
        u.scale_factor = np.float32(0.5)
        u.set_auto_maskandscale(False)
        u[:] = np.array([0, -1, 1, 2, 3, 4, 5, 6, 7, -128], dtype="i1")


@edge("phony-dims.h5")
def _(path):
    with h5py.File(path, "w", libver="earliest") as f:
        f.create_dataset("a", data=np.arange(12, dtype="<i4").reshape(3, 4), track_times=False)
        f.create_dataset("b", data=np.arange(12, dtype="<f8").reshape(4, 3), track_times=False)
        f.create_dataset("square", data=np.arange(16, dtype="<i2").reshape(4, 4), track_times=False)
        f.create_dataset("chunked", data=smooth((10, 3), 1, "<f4"), chunks=(5, 3), compression="gzip",
                         track_times=False)
        f.create_dataset("scalar", data=np.float64(1.5), track_times=False)
        f.attrs["title"] = "plain HDF5 without dimension scales"
        g = f.create_group("sub", track_order=False)
        g.create_dataset("c", data=np.arange(5, dtype="<u2"), track_times=False)
        g.create_dataset("d", data=np.arange(12, dtype="<u1").reshape(3, 4), track_times=False)
    normalize_times(path)


@edge("phony-dims-nested.h5")
def _(path):
    # netCDF-C numbers dimensions file-wide: a group's dimension scales first, then its sub-groups
    # (recursively), then the group's phony dimensions; an unscaled axis takes an unused dimension of
    # the same length from its own group (real or phony) before a new phony_dim_N is made.
    # h5netcdf's phony_dims="sort" numbers nested groups differently; netCDF-C is the reference.
    with h5py.File(path, "w", libver="earliest") as f:
        x = f.create_dataset("x", data=np.arange(4, dtype="<i4"), track_times=False)
        x.make_scale("x")
        f.create_dataset("r1", data=np.arange(16, dtype="<f4").reshape(4, 4), track_times=False)
        f.create_dataset("r2", data=np.arange(7, dtype="<i2"), track_times=False)
        a = f.create_group("a")
        a.create_dataset("a1", data=np.arange(28, dtype="<f8").reshape(7, 4), track_times=False)
        b = a.create_group("b")
        b.create_dataset("b1", data=np.arange(63, dtype="<u2").reshape(9, 7), track_times=False)
        c = f.create_group("c")
        c.create_dataset("c1", data=np.arange(4, dtype="<i8"), track_times=False)


@edge("large-contiguous.nc")
def _(path):
    with nc_file(path) as nc:
        nc.createDimension("row", 4096)
        nc.createDimension("prime", 4099)
        nc.createDimension("col", 1100)
        a = nc.createVariable("big_even", "f4", ("row", "col"), contiguous=True)
        a[:] = (np.arange(4096 * 1100, dtype="f4") % 65521).reshape(4096, 1100)
        a.note = "18 MB uncompressed contiguous: split into a chunk grid"
        b = nc.createVariable("big_prime", "i4", ("prime", "col"), contiguous=True)  # last in the file
        b[:] = (np.arange(4099 * 1100, dtype="i8") % 1000003).astype("i4").reshape(4099, 1100)
        b.note = "leading dimension 4099 is prime"


@edge("compact.h5")
def _(path):
    with h5py.File(path, "w", libver="earliest") as f:
        x = f.create_dataset("x", data=np.arange(6, dtype="<i4"), track_times=False)
        x.make_scale("x")
        y = f.create_dataset("y", data=np.array([0.5, 1.5], dtype="<f8"), track_times=False)
        y.make_scale("y")
        for name, tid, shape, data in (
                ("compact_f8", h5t.IEEE_F64LE, (6,), np.linspace(0, 1, 6)),
                ("compact_i2_2d", h5t.STD_I16BE, (2, 6), np.arange(12, dtype=">i2").reshape(2, 6))):
            p = h5p.create(h5p.DATASET_CREATE)
            p.set_obj_track_times(False)
            p.set_layout(h5d.COMPACT)
            dsid = h5d.create(f.id, name.encode(), tid, h5s.create_simple(shape), dcpl=p)
            dsid.write(h5s.ALL, h5s.ALL, np.ascontiguousarray(data.astype(data.dtype)))
            d = h5py.Dataset(dsid)
            if len(shape) == 1:
                d.dims[0].attach_scale(x)
            else:
                d.dims[0].attach_scale(y)
                d.dims[1].attach_scale(x)
            d.attrs["units"] = "1"
    normalize_times(path)


@edge("partial-chunks.nc")
def _(path):
    with nc_file(path) as nc:
        nc.createDimension("y", 6)
        nc.createDimension("x", 8)
        v = nc.createVariable("partial_fill", "f4", ("y", "x"), chunksizes=(2, 4), zlib=True, fill_value=np.float32(-99))
        v[0:2, 0:4] = np.arange(8).reshape(2, 4)
        v[4:6, 4:8] = np.arange(8).reshape(2, 4) + 100
        w = nc.createVariable("partial_default", "i4", ("y", "x"), chunksizes=(3, 3))  # edge chunks, default fill
        w.set_auto_maskandscale(False)
        w[0:3, 0:3] = np.arange(9).reshape(3, 3)
        w[3:6, 6:8] = np.arange(6).reshape(3, 2)
        n = nc.createVariable("partial_nan", "f8", ("y", "x"), chunksizes=(6, 1), fill_value=np.nan)
        n[:, 2] = np.arange(6)


@edge("attributes.nc")
def _(path):
    with nc_file(path) as nc:
        nc.createDimension("x", 3)
        v = nc.createVariable("v", "f4", ("x",))
        v[:] = [1, 2, 3]
        for target in (nc, v):
            target.setncatts({
                "a_str": "text",
                "a_utf8": "\u00e9t\u00e9 \u2603",
                "a_empty_str": "",
                "a_i1": np.int8(-3), "a_u1": np.uint8(200), "a_i2": np.int16(-300), "a_u2": np.uint16(60000),
                "a_i4": np.int32(-70000), "a_u4": np.uint32(4000000000), "a_i8": np.int64(-(2 ** 40)),
                "a_u8": np.uint64(2 ** 63 + 1), "a_f4": np.float32(0.1), "a_f8": 0.1,
                "a_nan_f4": np.float32(np.nan), "a_nan_f8": np.nan, "a_inf": np.inf, "a_ninf": -np.inf,
                "a_array_f8": np.array([1.5, np.nan, -np.inf, 2.0]), "a_array_i2": np.array([1, -2, 3], "i2"),
                "a_len1": np.array([7], "i4"), "a_len1_f4": np.array([0.5], "f4"),
            })
            target.setncattr_string("a_vlen_str_list", ["x", "yy", "\u00e9"])
            target.setncattr_string("a_vlen_str_one", "single vlen string")
        v.valid_range = np.array([0, 10], "f4")


# ------------------------------------------------------------------ main

SETS = [
    ("aligned", make_aligned), ("reordered", make_reordered), ("oversized", make_oversized),
    ("misaligned", make_misaligned), ("codec-mismatch", make_codec_mismatch),
    ("dtype-mismatch", make_dtype_mismatch), ("broken", make_broken), ("stack", make_stack),
]


def main():
    ap = argparse.ArgumentParser(description="Write the virtual-dataset test sets (deterministic) into OUTDIR.",
                                 epilog="Example: tools/make-vz-sets.py .cache/vz-sets")
    ap.add_argument("outdir", metavar="OUTDIR")
    ap.add_argument("--wrf-days", type=int, default=31, metavar="N", help="files in wrf/ (default 31; 0: none)")
    ap.add_argument("--list", action="store_true", help="list sets and edge files and exit")
    args = ap.parse_args()
    if args.list:
        print("wrf")
        for name, _ in SETS:
            print(name)
        for name, _ in EDGE:
            print("edge/" + name)
        return 0
    t0 = time.monotonic()
    os.makedirs(args.outdir, exist_ok=True)
    for name, fn in SETS:
        for sub in ((name,) if name != "oversized" else ("oversized-unfiltered", "oversized-filtered")):
            shutil.rmtree(os.path.join(args.outdir, sub), ignore_errors=True)
        fn(args.outdir)
    e = os.path.join(args.outdir, "edge")
    shutil.rmtree(e, ignore_errors=True)
    os.makedirs(e)
    for name, fn in EDGE:
        p = os.path.join(e, name)
        fn(p)
        normalize_times(p)
    if args.wrf_days > 0:
        shutil.rmtree(os.path.join(args.outdir, "wrf"), ignore_errors=True)
        make_wrf(args.outdir, args.wrf_days)
    nfiles = total = 0
    for root, _, files in os.walk(args.outdir):
        for fn in files:
            if fn.endswith((".nc", ".h5")):
                nfiles += 1
                total += os.path.getsize(os.path.join(root, fn))
    print("make-vz-sets: %d files, %d bytes (%.1f MB) in %s (%.1f s)" % (
        nfiles, total, total / 1e6, args.outdir, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
