"""Combining files is never silently wrong (issue 15).

Each case writes a tiny archive (netCDF4-python: 2-5 files of 4 time steps, lat 6 x lon 8) that sets
one trap for a combine: a concat dimension to infer (a coordinate, or an unlimited dimension without
one), file names that sort against time, per-file CF time units and calendars, per-file packing,
chunk shapes that cannot be joined, coordinates that differ, a corrupt file, a config with several
mistakes. Either the combined dataset equals xarray on the original files (open_mfdataset,
by_coords or nested), value by value -- read through `zarrmount scan --refs` and, for inference and
time units, through a real FUSE mount -- or the command fails with exit status 1 and a message that
names the variable, the files and the way out (--concat-dim, --drop-variables, ...).
"""
import contextlib
import functools
import os
import re
import warnings

import numpy as np
import pytest

from conftest import allowances, assert_same_values, compare_datasets, require_fuse, require_ok, run_vz

NT, NY, NX = 4, 6, 8
LAT = np.linspace(60.0, 65.0, NY, dtype=np.float32)
LON = np.linspace(-150.0, -143.0, NX, dtype=np.float32)
HOURS = np.array([0, 6, 12, 18])
DECODE = [True, False]
DECODE_IDS = ["cf", "raw"]


# ------------------------------------------------------------------ writing the archives

def write_daily(path, k, time_units="hours since 2030-01-01 00:00:00", time_values=None, time_dtype="i4",
                calendar=None, lat_shift=0.0, t2_scale=0.01, t2_offset=273.15, precip_chunks=(1, NY, NX), seed=None,
                t2_chunks=(1, NY, NX), reference_time=None, time_fill=None, precip_filters=None, endian="native"):
    """Day K: time(time, unlimited) with lat/lon coordinates, t2 packed int16 (float32 scale_factor and
    add_offset, _FillValue, some values missing) and float32 precip with NaNs, both zlib."""
    import netCDF4
    rng = np.random.default_rng(1000 + (k if seed is None else seed))
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.title = "combine test archive"
        nc.institution = "zarrmount tests"
        nc.createDimension("time", None)
        nc.createDimension("lat", NY)
        nc.createDimension("lon", NX)
        t = nc.createVariable("time", time_dtype, ("time",), fill_value=time_fill)
        t.units = time_units
        t.standard_name = "time"
        if calendar is not None:
            t.calendar = calendar
        instants = np.asarray(k * 24 + HOURS if time_values is None else time_values)
        # With a fill value, the last instant is never written (the data below still is).
        t[:] = instants if time_fill is None else instants[:-1]
        la = nc.createVariable("lat", "f4", ("lat",))
        la.units = "degrees_north"
        la[:] = LAT + np.float32(lat_shift)
        lo = nc.createVariable("lon", "f4", ("lon",))
        lo.units = "degrees_east"
        lo[:] = LON
        t2 = nc.createVariable("t2", "i2", ("time", "lat", "lon"), zlib=True, chunksizes=t2_chunks,
                               fill_value=np.int16(-32767), endian=endian)
        t2.set_auto_maskandscale(False)
        t2.scale_factor = np.float32(t2_scale)
        t2.add_offset = np.float32(t2_offset)
        t2.units = "K"
        raw = rng.integers(-3000, 3000, (NT, NY, NX)).astype(np.int16)
        raw[0, 0, :3] = -32767
        t2[:] = raw
        pr = nc.createVariable("precip", "f4", ("time", "lat", "lon"), chunksizes=precip_chunks, endian=endian,
                               **(precip_filters or dict(zlib=True)))
        pr.units = "mm"
        values = rng.random((NT, NY, NX)).astype(np.float32)
        values[1, 2, :] = np.nan
        values[3, :, 5] = np.nan
        pr[:] = values
        if reference_time is not None:
            rt = nc.createVariable("forecast_reference_time", "f8", ())
            rt.units = "hours since 2030-01-01 00:00:00"
            rt.standard_name = "forecast_reference_time"
            rt.assignValue(reference_time)


def write_wrf(path, k):
    """A WRF-like day: unlimited Time without a coordinate variable, Times char(Time, DateStrLen=19),
    T2(Time, south_north, west_east) and a static XLAT."""
    import netCDF4
    rng = np.random.default_rng(2000 + k)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.TITLE = "OUTPUT FROM WRF-like test writer"
        nc.createDimension("Time", None)
        nc.createDimension("DateStrLen", 19)
        nc.createDimension("south_north", NY)
        nc.createDimension("west_east", NX)
        times = nc.createVariable("Times", "S1", ("Time", "DateStrLen"))
        stamps = ["2030-01-%02d_%02d:00:00" % (k + 1, h) for h in HOURS]
        times[:] = netCDF4.stringtochar(np.array(stamps, dtype="S19"))
        xlat = nc.createVariable("XLAT", "f4", ("south_north", "west_east"))
        xlat.units = "degree_north"
        xlat[:] = np.repeat(LAT[:, None], NX, axis=1)
        t2 = nc.createVariable("T2", "f4", ("Time", "south_north", "west_east"), zlib=True, chunksizes=(1, NY, NX))
        t2.units = "K"
        t2.description = "TEMP at 2 M"
        t2[:] = (260 + 20 * rng.random((NT, NY, NX))).astype(np.float32)


def _dates(calendar_dates):
    return ["days since %s 00:00:00" % d for d in calendar_dates]


NOLEAP_UNITS = _dates(["2032-02-26", "2032-02-27", "2032-02-28", "2032-03-01", "2032-03-02"])
DAY360_UNITS = _dates(["2032-02-28", "2032-02-29", "2032-02-30", "2032-03-01", "2032-03-02"])
QUARTER_DAYS = np.array([0.0, 0.25, 0.5, 0.75])
SHUFFLED_NAMES = ["run_c.nc", "run_a.nc", "run_e.nc", "run_b.nc", "run_d.nc"]  # day k is SHUFFLED_NAMES[k]
ODD = {"packing-scale_factor": 2, "packing-add_offset": 2, "chunks": 3, "lat-differs": 3, "corrupt": 2,
       "packing-and-chunks": 1, "reftime-differs": 1,
       "time-chunks": 2}


def _set_files(name):
    """name -> [(file name, writer, kwargs)], day k of the set at index k."""
    days = range(5)
    daily = lambda **kw: [("day_%d.nc" % k, write_daily, dict(k=k, **kw)) for k in days]  # noqa: E731
    if name == "daily":
        return daily()
    if name == "shuffled":
        return [(SHUFFLED_NAMES[k], write_daily, dict(k=k)) for k in days]
    if name == "wrf":
        return [("wrfout_2030-01-%02d.nc" % (k + 1), write_wrf, dict(k=k)) for k in range(3)]
    if name == "same-time":
        return [("member_%d.nc" % k, write_daily, dict(k=k, time_values=HOURS)) for k in range(3)]
    if name == "units":
        return [("day_%d.nc" % k, write_daily, dict(k=k, time_units="hours since 2030-01-%02d 00:00:00" % (k + 1),
                                                    time_values=HOURS)) for k in days]
    if name == "noleap":
        return [("day_%d.nc" % k, write_daily, dict(k=k, time_units=NOLEAP_UNITS[k], calendar="noleap",
                                                    time_values=QUARTER_DAYS, time_dtype="f8")) for k in days]
    if name == "360_day":
        return [("day_%d.nc" % k, write_daily, dict(k=k, time_units=DAY360_UNITS[k], calendar="360_day",
                                                    time_values=QUARTER_DAYS, time_dtype="f8")) for k in days]
    if name == "offset":
        return [("day_%d.nc" % k, write_daily,
                 dict(k=k, time_units="hours since 2030-01-%02d %s" % (k + 1, "00:30:00" if k == 1 else "00:00:00"),
                      time_values=HOURS)) for k in days]
    if name in ("reftime-same", "reftime-differs"):
        # One forecast run's days share a reference time; the odd file comes from another run.
        return [("day_%d.nc" % k, write_daily, dict(k=k, reference_time=6.0 if name == "reftime-differs" and k == ODD[name] else 0.0))
                for k in days]
    if name == "units-with-gaps":
        return [("day_%d.nc" % k, write_daily, dict(k=k, time_units="hours since 2030-01-%02d 00:00:00" % (k + 1),
                                                    time_values=HOURS, time_fill=np.int32(-2147483647))) for k in range(3)]
    if name == "compression":
        # Day 2 stores precip uncompressed, day 3 with zlib, no shuffle and Fletcher-32.
        filters = {2: dict(zlib=False), 3: dict(zlib=True, shuffle=False, fletcher32=True)}
        return [("day_%d.nc" % k, write_daily, dict(k=k, precip_filters=filters.get(k))) for k in days]
    if name == "byte-order":
        return [("day_%d.nc" % k, write_daily, dict(k=k, endian="big" if k == 1 else "little")) for k in days]
    if name == "time-dtypes":
        # A writer that changed: day 2 stores time as float64 (one instant not a whole hour), the others int32.
        return [("day_%d.nc" % k, write_daily, dict(k=k, time_dtype="f8" if k == 2 else "i4",
                                                    time_values=k * 24 + (HOURS + np.array([0, 0, 0.5, 0]) if k == 2 else HOURS)))
                for k in days]
    if name == "reform-calendars":
        # Days written by a model say gregorian; days rewritten with xarray say proleptic_gregorian.
        return [("day_%d.nc" % k, write_daily, dict(k=k, calendar="gregorian" if k < 3 else "proleptic_gregorian",
                                                    time_units="hours since 2030-01-%02d 00:00:00" % (k + 1),
                                                    time_values=HOURS)) for k in days]
    if name == "calendars":
        return [("day_%d.nc" % k, write_daily, dict(k=k, calendar=c)) for k, c in enumerate(["standard", "noleap"])]
    odd = ODD[name]
    change = {"packing-scale_factor": dict(t2_scale=0.02), "packing-add_offset": dict(t2_offset=263.15),
              "chunks": dict(precip_chunks=(2, 3, 4)), "time-chunks": dict(precip_chunks=(2, NY, NX)), "packing-and-chunks": dict(t2_scale=0.02, t2_chunks=(2, 4, 3)),
              "lat-differs": dict(lat_shift=0.001), "corrupt": {}}[name]
    return [("day_%d.nc" % k, write_daily, dict(k=k, **(change if k == odd else {}))) for k in days]


@pytest.fixture(scope="module")
def archive(tmp_path_factory, vz):
    """archive(name) -> the set's paths, day order (written once per module)."""
    root = tmp_path_factory.mktemp("combine")
    made = {}

    def get(name):
        if name not in made:
            directory = root / name
            directory.mkdir()
            paths = []
            for fname, writer, kwargs in _set_files(name):
                writer(str(directory / fname), **kwargs)
                paths.append(str(directory / fname))
            if name == "corrupt":
                with open(paths[ODD[name]], "wb") as fh:
                    fh.write(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
            made[name] = paths
        return made[name]
    return get


# ------------------------------------------------------------------ running zarrmount

def scan(tmp_path, sources, flags=()):
    """`zarrmount scan SOURCES... FLAGS --refs OUT`: (OUT, completed process)."""
    out = tmp_path / ("refs-%d.json" % len(list(tmp_path.glob("refs-*.json"))))
    p = run_vz(["scan", *sources, *flags, "--no-cache", "--refs", out], timeout=120)
    return str(out), p


@contextlib.contextmanager
def mounted(tmp_path, sources, flags=(), ok=(0,)):
    """A real FUSE mount (background daemon) of SOURCES; unmounted on the way out."""
    require_fuse()
    mountpoint = tmp_path / ("mnt-%d" % len(list(tmp_path.glob("mnt-*"))))
    mountpoint.mkdir()
    p = run_vz(["mount", *sources, *flags, "--no-cache", mountpoint], timeout=120)
    try:
        require_ok(p, "mount", ok)
        assert os.path.ismount(str(mountpoint)), "mount exited %d but %s is not mounted:\n%s" % (
            p.returncode, mountpoint, p.stderr[-2000:])
        yield str(mountpoint), p
    finally:
        if os.path.ismount(str(mountpoint)):
            u = run_vz(["unmount", mountpoint], timeout=60)
            assert u.returncode == 0, u.stderr
        assert not os.path.ismount(str(mountpoint)), "%s is still mounted" % mountpoint


def _time_coder(use_cftime):
    import xarray as xr
    return xr.coders.CFDatetimeCoder(use_cftime=True) if use_cftime else True


def open_refs(refs, decode_cf=True, use_cftime=False):
    """conftest.open_refs (reference:// through zarr 3), optionally decoding times to cftime."""
    import xarray as xr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_dataset("reference://", engine="zarr", decode_cf=decode_cf, chunks=None,
                               decode_times=_time_coder(use_cftime) if decode_cf else False,
                               decode_timedelta=False if decode_cf else None,
                               backend_kwargs={"consolidated": False, "zarr_format": 2,
                                               "storage_options": {"fo": refs}}).load()


def open_mount(mountpoint, decode_cf=True, use_cftime=False):
    import xarray as xr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(mountpoint, consolidated=True, zarr_format=2, chunks=None, decode_cf=decode_cf,
                            decode_times=_time_coder(use_cftime) if decode_cf else False,
                            decode_timedelta=False if decode_cf else None).load()


# ------------------------------------------------------------------ the oracle: xarray on the originals

@functools.lru_cache(maxsize=None)
def expected(files, combine, concat_dim=None, decode_cf=True, use_cftime=False, drop=()):
    """xarray.open_mfdataset on the original FILES (a tuple, in the order given): combine="by_coords", or
    "nested" along CONCAT_DIM; variables without the dimension come from the first file."""
    import xarray as xr
    kwargs = dict(concat_dim=concat_dim) if combine == "nested" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with xr.open_mfdataset(list(files), engine="netcdf4", combine=combine, decode_cf=decode_cf,
                               decode_times=_time_coder(use_cftime) if decode_cf else False,
                               decode_timedelta=False if decode_cf else None, drop_variables=list(drop) or None,
                               data_vars="minimal", coords="minimal", compat="override", join="override",
                               combine_attrs="override", **kwargs) as ds:
            return ds.load()


def same(exp, act, where, decode_cf, files):
    """conftest.compare_datasets: same variables (none left out), dims, coords, attributes, dtypes and
    bit-identical values; packed float32 t2 decodes to float64 from JSON attributes (Allow.packed_f4)."""
    compare_datasets(exp, act, where, decode_cf, allowances(files[0]))


def lines_with(text, *needles):
    return [ln for ln in text.splitlines() if all(n in ln for n in needles)]


def names(paths):
    return [os.path.basename(p) for p in paths]


def decoded_time_equals(exp, act, where):
    e, a = exp["time"].values, act["time"].values
    assert e.shape == a.shape == (20,), "%s: time shape %s != %s" % (where, a.shape, e.shape)
    assert_same_values(e, a, "%s: time" % where)


# ------------------------------------------------------------------ 1. inferring the concat dimension

@pytest.mark.parametrize("decode_cf", DECODE, ids=DECODE_IDS)
def test_infers_time_from_its_coordinate_and_orders_by_time(archive, tmp_path, decode_cf):
    """Trap: no --concat-dim and file names that sort against time -- infer `time` from its coordinate, order by time."""
    files = archive("shuffled")
    by_name = sorted(files)
    assert by_name != files, "the fixture's names must sort against time"
    out, p = scan(tmp_path, by_name)
    require_ok(p, "scan without --concat-dim")
    said = lines_with(p.stderr, "combining 5 files along time")
    assert said and any("coordinate" in ln for ln in said), \
        "stderr must say it combines along time because of its coordinate:\n" + p.stderr
    assert "ordered by time" in p.stderr, "stderr must say the files are ordered by time:\n" + p.stderr
    exp = expected(tuple(files), "by_coords", decode_cf=decode_cf)
    act = open_refs(out, decode_cf)
    assert act.sizes["time"] == 20
    same(exp, act, "inferred time (refs)", decode_cf, files)


def test_infers_time_through_a_mount(archive, tmp_path):
    """Trap: no --concat-dim on `zarrmount mount` -- the mounted store equals open_mfdataset(by_coords)."""
    files = archive("shuffled")
    with mounted(tmp_path, sorted(files)) as (mountpoint, p):
        for decode_cf in DECODE:
            exp = expected(tuple(files), "by_coords", decode_cf=decode_cf)
            same(exp, open_mount(mountpoint, decode_cf), "inferred time (mount, decode_cf=%s)" % decode_cf,
                 decode_cf, files)


@pytest.mark.parametrize("decode_cf", DECODE, ids=DECODE_IDS)
def test_infers_an_unlimited_dimension_without_a_coordinate(archive, tmp_path, decode_cf):
    """Trap: WRF-like files (unlimited Time, no coordinate variable, Times chars) -- infer Time as the unlimited dimension."""
    files = archive("wrf")
    out, p = scan(tmp_path, files)
    require_ok(p, "scan WRF-like files without --concat-dim")
    assert lines_with(p.stderr, "along Time", "unlimited"), \
        "stderr must say it combines along Time because it is unlimited:\n" + p.stderr
    exp = expected(tuple(files), "nested", "Time", decode_cf)
    act = open_refs(out, decode_cf)
    assert act.sizes["Time"] == 12
    same(exp, act, "inferred Time (refs)", decode_cf, files)


def test_nothing_to_infer_is_an_error(archive, tmp_path):
    """Trap: files with identical time values and different data -- no dimension to infer, so refuse instead of keeping one file."""
    files = archive("same-time")
    out, p = scan(tmp_path, files)
    assert p.returncode == 1, "expected exit 1, got %d:\n%s" % (p.returncode, p.stderr[-2000:])
    assert "cannot tell how to combine" in p.stderr, p.stderr[-2000:]
    assert re.search(r"\btime\b", p.stderr), "the candidate dimension `time` must be named:\n" + p.stderr[-2000:]
    assert "--concat-dim" in p.stderr, p.stderr[-2000:]


# ------------------------------------------------------------------ 2. naming the dimension

@pytest.mark.parametrize("given,real,dims", [("Time", "time", ["time", "lat", "lon"]),
                                             ("time", "Time", ["Time", "DateStrLen", "south_north", "west_east"])],
                         ids=["Time-for-time", "time-for-Time"])
def test_misspelled_concat_dim_suggests_the_real_name(archive, tmp_path, given, real, dims):
    """Trap: --concat-dim in the wrong case -- refuse and suggest the dimension that exists, instead of stacking nothing."""
    files = archive("daily" if real == "time" else "wrf")
    out, p = scan(tmp_path, files, ["--concat-dim", given])
    assert p.returncode == 1, "expected exit 1, got %d:\n%s" % (p.returncode, p.stderr[-2000:])
    assert "did you mean %s" % real in p.stderr, p.stderr[-2000:]
    for d in dims:
        assert re.search(r"\b%s\b" % d, p.stderr), "the dimensions must be listed (%s missing):\n%s" % (d, p.stderr)


def test_unknown_concat_dim_lists_the_dimensions(archive, tmp_path):
    """Trap: --concat-dim naming no dimension of the files -- refuse, name it and list the dimensions there are."""
    out, p = scan(tmp_path, archive("daily"), ["--concat-dim", "nosuchdim"])
    assert p.returncode == 1, "expected exit 1, got %d:\n%s" % (p.returncode, p.stderr[-2000:])
    assert "nosuchdim" in p.stderr, p.stderr[-2000:]
    for d in ("time", "lat", "lon"):
        assert re.search(r"\b%s\b" % d, p.stderr), "the dimensions must be listed (%s missing):\n%s" % (d, p.stderr)


# ------------------------------------------------------------------ 3. per-file time units and calendars

def _raw_time(refs_or_mount, mount=False):
    act = open_mount(refs_or_mount, decode_cf=False) if mount else open_refs(refs_or_mount, decode_cf=False)
    return act["time"]


@pytest.mark.parametrize("flags", [["--concat-dim", "time"], []], ids=["concat-dim", "inferred"])
def test_per_file_time_units_are_reencoded_in_the_first_files_units(archive, tmp_path, flags):
    """Trap: each file's time restarts at 0 in its own `hours since <day>` units -- decode per file, re-encode in the first file's units."""
    files = archive("units")
    out, p = scan(tmp_path, files, flags)
    require_ok(p, "scan per-file time units")
    exp = expected(tuple(files), "nested", "time")
    act = open_refs(out)
    decoded_time_equals(exp, act, "per-file units")
    assert (np.diff(act["time"].values) > np.timedelta64(0, "s")).all(), "20 distinct increasing instants"
    same(exp, act, "per-file units (refs)", True, files)
    raw = _raw_time(out)
    assert raw.dtype.kind == "i", "integer hours stay integers: %s" % raw.dtype
    assert raw.values.tolist() == list(range(0, 120, 6))
    assert raw.attrs["units"] == "hours since 2030-01-01 00:00:00"
    exp_raw = expected(tuple(files), "nested", "time", decode_cf=False).drop_vars("time")
    same(exp_raw, open_refs(out, decode_cf=False).drop_vars("time"), "per-file units (refs, raw)", False, files)


def test_an_unwritten_instant_stays_missing_when_units_are_reencoded(archive, tmp_path):
    """Trap: each day's last instant was never written (it reads as time's _FillValue) and each file
    counts in its own units. Re-encoding shifted the later files' fill value by their offset, so
    xarray's NaT became a date in 1974; now it stays the fill value, as xarray reads the files."""
    files = archive("units-with-gaps")
    out, p = scan(tmp_path, files, ["--concat-dim", "time"])
    require_ok(p, "scan per-file time units with unwritten instants")
    exp, act = expected(tuple(files), "nested", "time"), open_refs(out)
    assert np.isnat(exp["time"].values).sum() == 3, "the oracle has one missing instant a file"
    np.testing.assert_array_equal(act["time"].values, exp["time"].values)
    raw = _raw_time(out)
    assert raw.values.tolist() == [0, 6, 12, -2147483647, 24, 30, 36, -2147483647, 48, 54, 60, -2147483647]


@pytest.mark.parametrize("decode_cf", DECODE, ids=DECODE_IDS)
def test_a_time_coordinate_stored_as_int32_in_some_files_and_float64_in_others_is_served_as_float64(archive, tmp_path, decode_cf):
    """Trap: one day of five stores time as float64, the others as int32 (a writer changed). The combine refused
    ("has dtype <i4 ... but <f8"), leaving only --layout per_file, where xarray decodes both. Time is read with the
    scan, so every file's values are now served as float64, exact, with a note naming the files."""
    files = archive("time-dtypes")
    out, p = scan(tmp_path, files, ["--concat-dim", "time"])
    require_ok(p, "scan time stored as int32 and float64")
    assert lines_with(p.stderr, "note", "time", "<i4", "<f8", names(files)[2]), p.stderr[-2000:]
    raw = _raw_time(out)
    assert raw.dtype == np.float64 and raw.values.tolist()[8:12] == [48.0, 54.0, 60.5, 66.0], raw.values
    same(expected(tuple(files), "nested", "time", decode_cf), open_refs(out, decode_cf), "int32 and float64 time", decode_cf, files)


def test_per_file_time_units_through_a_mount(archive, tmp_path):
    """Trap: per-file time units read through a real mount -- the same 20 instants, raw values in the first file's units."""
    files = archive("units")
    with mounted(tmp_path, files, ["--concat-dim", "time"]) as (mountpoint, p):
        exp = expected(tuple(files), "nested", "time")
        act = open_mount(mountpoint)
        decoded_time_equals(exp, act, "per-file units (mount)")
        same(exp, act, "per-file units (mount)", True, files)
        assert _raw_time(mountpoint, mount=True).values.tolist() == list(range(0, 120, 6))


@pytest.mark.parametrize("name", ["noleap", "360_day"])
def test_per_file_units_in_non_standard_calendars(archive, tmp_path, name):
    """Trap: `days since` units across Feb 28 (noleap) or Feb 30 (360_day) -- the offsets between files follow the file's calendar."""
    files = archive(name)
    out, p = scan(tmp_path, files, ["--concat-dim", "time"])
    require_ok(p, "scan %s" % name)
    exp = expected(tuple(files), "nested", "time", use_cftime=True)
    act = open_refs(out, use_cftime=True)
    decoded_time_equals(exp, act, name)
    same(exp, act, "%s (refs)" % name, True, files)
    raw = _raw_time(out)
    # the files start on consecutive days of their calendar (in the standard one 2032-02-29 and -30 differ)
    want = [k + q for k in range(5) for q in QUARTER_DAYS]
    assert raw.values.tolist() == want, "raw days in the first file's units"
    assert raw.attrs["units"] == (NOLEAP_UNITS if name == "noleap" else DAY360_UNITS)[0]
    assert raw.attrs["calendar"] == name


def test_unit_offsets_that_do_not_divide_make_time_float64(archive, tmp_path):
    """Trap: a file's units start at 00:30 while the values are integer hours -- the combined time must become float64, not be truncated."""
    files = archive("offset")
    out, p = scan(tmp_path, files, ["--concat-dim", "time"])
    require_ok(p, "scan offset units")
    assert "float64" in p.stderr, "stderr must say time becomes float64:\n" + p.stderr
    exp = expected(tuple(files), "nested", "time")
    act = open_refs(out)
    decoded_time_equals(exp, act, "offset units")
    same(exp, act, "offset units (refs)", True, files)
    raw = _raw_time(out)
    assert raw.dtype == np.float64, raw.dtype
    want = [24 * k + (0.5 if k == 1 else 0) + h for k in range(5) for h in HOURS]
    assert raw.values.tolist() == want


def test_different_calendars_are_an_error(archive, tmp_path):
    """Trap: one file in the standard calendar, one in noleap -- refuse, naming the calendar and both files."""
    files = archive("calendars")
    out, p = scan(tmp_path, files, ["--concat-dim", "time"])
    assert p.returncode == 1, "expected exit 1, got %d:\n%s" % (p.returncode, p.stderr[-2000:])
    assert lines_with(p.stderr, "calendar", *names(files)), \
        "one line must name the calendar and both files %s:\n%s" % (names(files), p.stderr[-2000:])


@pytest.mark.parametrize("order", ["key", "coordinate"])
def test_gregorian_and_proleptic_gregorian_files_after_1582_combine(archive, tmp_path, order):
    """Trap: days written by a model say calendar gregorian; days that went through xarray (to_netcdf)
    say proleptic_gregorian. The two agree from 1582-10-15 on and xarray combines them; the scan refused
    ("instants of different calendars cannot share one axis"). Now they share one axis when every
    instant is after the reform (before it they still differ and are refused: CombineRulesTests)."""
    files = archive("reform-calendars")
    out, p = scan(tmp_path, files, ["--concat-dim", "time", "--order", order])
    require_ok(p, "scan gregorian and proleptic_gregorian days")
    act = open_refs(out)
    exp = expected(tuple(files), "nested", "time")
    decoded_time_equals(exp, act, "gregorian and proleptic_gregorian")
    same(exp, act, "gregorian and proleptic_gregorian (%s order)" % order, True, files)
    assert _raw_time(out).values.tolist() == list(range(0, 120, 6))


# ------------------------------------------------------------------ 4. per-file packing, chunk shapes, variables

@pytest.mark.parametrize("attribute", ["scale_factor", "add_offset"])
def test_per_file_packing_is_an_error_with_a_way_out(archive, tmp_path, attribute):
    """Trap: one file packs t2 with another scale_factor/add_offset -- refuse (the first file's would be wrong), point to --drop-variables."""
    files = archive("packing-" + attribute)
    out, p = scan(tmp_path, files, ["--concat-dim", "time"])
    assert p.returncode == 1, "expected exit 1, got %d:\n%s" % (p.returncode, p.stderr[-2000:])
    said = [ln for ln in lines_with(p.stderr, "t2", attribute) if sum(n in ln for n in names(files)) >= 2]
    assert said, "one line must name t2, %s and two of the files:\n%s" % (attribute, p.stderr[-2000:])
    assert names(files)[ODD["packing-" + attribute]] in "\n".join(said), "the odd file must be named"
    assert "--drop-variables" in p.stderr, p.stderr[-2000:]
    out, p = scan(tmp_path, files, ["--concat-dim", "time", "--drop-variables", "t2"])
    require_ok(p, "scan --drop-variables t2")
    act = open_refs(out)
    assert "t2" not in act.variables
    same(expected(tuple(files), "nested", "time", drop=("t2",)), act, "packing, t2 dropped", True, files)


def test_mixed_chunk_shapes_are_an_error_with_a_way_out(archive, tmp_path):
    """Trap: precip chunked (2,3,4) and zlib in one file, (1,6,8) elsewhere -- refuse naming precip and the file, point to --drop-variables."""
    files = archive("chunks")
    odd = names(files)[ODD["chunks"]]
    out, p = scan(tmp_path, files, ["--concat-dim", "time"])
    assert p.returncode == 1, "expected exit 1, got %d:\n%s" % (p.returncode, p.stderr[-2000:])
    assert lines_with(p.stderr, "precip", odd), "one line must name precip and %s:\n%s" % (odd, p.stderr[-2000:])
    assert "--drop-variables" in p.stderr, p.stderr[-2000:]
    out, p = scan(tmp_path, files, ["--concat-dim", "time", "--drop-variables", "precip"])
    require_ok(p, "scan --drop-variables precip")
    for decode_cf in DECODE:
        act = open_refs(out, decode_cf)
        assert "precip" not in act.variables
        same(expected(tuple(files), "nested", "time", decode_cf, drop=("precip",)), act,
             "chunks, precip dropped (decode_cf=%s)" % decode_cf, decode_cf, files)


def test_variables_keeps_one_variable_and_its_coordinates(archive, tmp_path):
    """Trap: --variables t2 over files whose precip cannot be combined -- only t2 and the coordinates of its dimensions."""
    files = archive("chunks")
    out, p = scan(tmp_path, files, ["--concat-dim", "time", "--variables", "t2"])
    require_ok(p, "scan --variables t2")
    act = open_refs(out)
    assert sorted(act.variables) == ["lat", "lon", "t2", "time"], sorted(act.variables)
    exp = expected(tuple(files), "nested", "time", drop=("precip",))
    same(exp[["t2"]], act, "--variables t2", True, files)


# ------------------------------------------------------------------ 5. variables without the dimension: --compat

def refused_naming_the_odd_file(tmp_path, files, what, odd):
    """`scan FILES --concat-dim time` exits 1 without writing references, on a line that says WHAT
    and names the first and the odd file; returns that line."""
    out, p = scan(tmp_path, files, ["--concat-dim", "time"])
    assert p.returncode == 1, "expected exit 1, got %d:\n%s" % (p.returncode, p.stderr[-2000:])
    said = lines_with(p.stderr, what, names(files)[0], names(files)[odd])
    assert said, "one line must say %r naming %s and %s:\n%s" % (what, names(files)[0], names(files)[odd], p.stderr[-2000:])
    assert not os.path.exists(out), "a refused scan must not write references"
    return said[0]


def test_a_dimension_coordinate_that_differs_stops_the_default_combine(archive, tmp_path):
    """Trap: lat differs slightly in one file. The default combine kept the first file's lat and so
    labelled the odd file's values with another grid's latitudes; now scan and mount refuse, naming
    lat, both files and the ways out. --compat override keeps the first file's lat, as xarray's
    compat="override" does."""
    files = archive("lat-differs")
    first, odd = names(files)[0], names(files)[ODD["lat-differs"]]
    said = refused_naming_the_odd_file(tmp_path, files, "coordinate lat differs", ODD["lat-differs"])
    assert "--layout per_file" in said and "--compat override" in said, said
    mountpoint = tmp_path / "mnt-refused"
    mountpoint.mkdir()
    m = run_vz(["mount", *files, "--concat-dim", "time", "--no-cache", mountpoint], timeout=120)
    assert m.returncode == 1 and not os.path.ismount(str(mountpoint)), "mount must refuse too (exit %d):\n%s" % (
        m.returncode, m.stderr[-2000:])
    assert lines_with(m.stderr, "coordinate lat differs", first, odd), m.stderr[-2000:]
    exp = expected(tuple(files), "nested", "time")
    np.testing.assert_array_equal(exp["lat"].values, LAT, err_msg="the oracle keeps the first file's lat")
    out, p = scan(tmp_path, files, ["--concat-dim", "time", "--compat", "override"])
    require_ok(p, "scan --compat override")
    same(exp, open_refs(out), "lat-differs --compat override", True, files)


def test_a_scalar_that_differs_between_files_stops_the_default_combine(archive, tmp_path):
    """Trap: one day comes from another forecast run (its scalar forecast_reference_time is 6 h
    later). The default combine kept the first file's reference time for every day; now it
    refuses, naming the variable, both files and the ways out. The same reference time in every
    file combines, and --drop-variables or --compat override are the user's explicit choices."""
    files = archive("reftime-differs")
    said = refused_naming_the_odd_file(tmp_path, files, "variable forecast_reference_time differs", ODD["reftime-differs"])
    assert "--drop-variables forecast_reference_time" in said and "--compat override" in said, said
    out, p = scan(tmp_path, files, ["--concat-dim", "time", "--drop-variables", "forecast_reference_time"])
    require_ok(p, "scan --drop-variables forecast_reference_time")
    same(expected(tuple(files), "nested", "time", drop=("forecast_reference_time",)), open_refs(out),
         "reftime dropped", True, files)
    out, p = scan(tmp_path, files, ["--concat-dim", "time", "--compat", "override"])
    require_ok(p, "scan --compat override")
    assert open_refs(out, decode_cf=False)["forecast_reference_time"].values == 0.0, "override keeps the first file's"
    same_run = archive("reftime-same")
    out, p = scan(tmp_path, same_run, ["--concat-dim", "time"])
    require_ok(p, "scan of one run's days")
    assert open_refs(out, decode_cf=False)["forecast_reference_time"].values == 0.0


def write_swaths(directory, storage, odd=None):
    """Three files, each one time step of v(time, y, x) beside lat2d(y, x), a 2-D latitude without
    time stored as STORAGE (zlib chunks, netCDF-4 contiguous, netCDF-3; mixed: zlib chunks in even
    files, contiguous and big-endian in odd ones). File ODD's lat2d differs in its last value only (another ground
    track would differ everywhere)."""
    import netCDF4
    import numpy as np
    directory.mkdir()
    files = []
    for k in range(3):
        path = str(directory / ("granule_%d.nc" % k))
        with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET" if storage == "netcdf3" else "NETCDF4") as nc:
            nc.createDimension("time", None)
            nc.createDimension("y", 300)
            nc.createDimension("x", 400)
            t = nc.createVariable("time", "i4", ("time",))
            t.units = "hours since 2030-01-01"
            t[:] = [k]
            compressed = storage == "zlib" or storage == "mixed" and k % 2 == 0
            order = dict(endian="big") if storage == "mixed" and k % 2 == 1 else {}
            lat = nc.createVariable("lat2d", "f4", ("y", "x"), **(dict(zlib=True, chunksizes=(150, 400)) if compressed else order))
            lat.units = "degrees_north"
            grid = np.linspace(-60, 60, 300 * 400, dtype="f4").reshape(300, 400)
            if k == odd:
                grid[-1, -1] += 0.5
            lat[:] = grid
            v = nc.createVariable("v", "f4", ("time", "y", "x"))
            v[:] = np.full((1, 300, 400), k, dtype="f4")
        files.append(path)
    return files


@pytest.mark.parametrize("storage", ["zlib", "contiguous", "netcdf3"])
def test_a_2d_latitude_that_differs_between_files_stops_the_default_combine(tmp_path, storage):
    """Trap: swath granules whose lat2d(y, x) has no time dimension and differs between files. The
    default combine kept the first file's lat2d for every file with exit 0: only values read with
    the scan (1-D coordinates, scalars) were compared. Now a variable not read is compared by its
    stored chunks' lengths, then by the checksum that ends each zlib chunk, or without one by its
    first and last stored bytes; a difference stops the scan naming lat2d, both files and the ways
    out. The same grid in every file still combines, equal to xarray's."""
    files = write_swaths(tmp_path / "same", storage)
    out, p = scan(tmp_path, files, ["--concat-dim", "time"])
    require_ok(p, "scan of granules on one grid")
    same(expected(tuple(files), "nested", "time"), open_refs(out), "one grid, %s" % storage, True, files)

    files = write_swaths(tmp_path / "odd", storage, odd=2)
    import xarray as xr
    with xr.open_dataset(files[0]) as a, xr.open_dataset(files[2]) as b:
        assert not (a["lat2d"].values == b["lat2d"].values).all(), "the oracle must see two grids"
    said = refused_naming_the_odd_file(tmp_path, files, "variable lat2d differs", 2)
    for way in ("--compat equals", "--compat override", "--drop-variables lat2d", "--layout per_file"):
        assert way in said, said
    out, p = scan(tmp_path, files, ["--concat-dim", "time", "--compat", "equals"])
    assert p.returncode == 1 and "variable lat2d differs" in p.stderr, p.stderr[-2000:]
    out, p = scan(tmp_path, files, ["--concat-dim", "time", "--compat", "override"])
    require_ok(p, "scan --compat override")
    with xr.open_dataset(files[0]) as first:
        assert (open_refs(out)["lat2d"].values == first["lat2d"].values).all(), "override keeps the first file's"
    out, p = scan(tmp_path, files, ["--concat-dim", "time", "--drop-variables", "lat2d"])
    require_ok(p, "scan --drop-variables lat2d")
    assert "lat2d" not in open_refs(out).variables


@pytest.mark.filterwarnings("ignore:endian-ness of dtype")
def test_the_same_2d_latitude_stored_otherwise_combines_with_the_compat_the_error_advises(tmp_path):
    """Trap: granules whose writer changed: lat2d is zlib-compressed in some files, contiguous and big-endian in
    others, with the same values. The default combine refuses (it compares storage) and advises --compat equals or override; both
    then failed with "compressed differently" although one file's lat2d is served. Now --compat equals compares
    the decoded values (and still stops on a real difference) and --compat override keeps the first file's."""
    import xarray as xr
    files = write_swaths(tmp_path / "mixed", "mixed")
    said = refused_naming_the_odd_file(tmp_path, files, "variable lat2d", 1)
    assert "--compat equals" in said and "--compat override" in said, said
    for compat in ("equals", "override"):
        out, p = scan(tmp_path, files, ["--concat-dim", "time", "--compat", compat])
        require_ok(p, "scan --compat %s of one grid stored two ways" % compat)
        same(expected(tuple(files), "nested", "time"), open_refs(out), "one grid stored two ways, --compat %s" % compat,
             True, files)
    files = write_swaths(tmp_path / "mixed-odd", "mixed", odd=1)
    out, p = scan(tmp_path, files, ["--concat-dim", "time", "--compat", "equals"])
    assert p.returncode == 1 and lines_with(p.stderr, "variable lat2d differs", names(files)[1]), p.stderr[-2000:]
    with xr.open_dataset(files[0]) as first:
        out, p = scan(tmp_path, files, ["--concat-dim", "time", "--compat", "override"])
        require_ok(p, "scan --compat override of two grids")
        assert (open_refs(out)["lat2d"].values == first["lat2d"].values).all(), "override keeps the first file's"


def test_a_day_with_no_time_step_adds_nothing(tmp_path):
    """Trap: a model day that wrote no record (time of length 0) among the others. The combine was
    refused with "chunks do not line up ... 0 along time", which hid the cause; xarray combines the
    files, the empty one adding nothing. Now it is left out with a note naming it, and the dataset
    equals xarray's on all the files."""
    import netCDF4
    import numpy as np
    files = []
    for k, steps in enumerate((2, 0, 2)):
        path = str(tmp_path / ("day_%d.nc" % k))
        with netCDF4.Dataset(path, "w") as nc:
            nc.createDimension("time", None)
            nc.createDimension("x", 3)
            t = nc.createVariable("time", "f8", ("time",))
            t.units = "hours since 2030-01-01"
            t[:] = 24 * k + np.arange(steps)
            v = nc.createVariable("v", "f4", ("time", "x"))
            v[:] = np.arange(steps * 3, dtype="f4").reshape(steps, 3) + 100 * k
        files.append(path)
    out, p = scan(tmp_path, files, ["--concat-dim", "time"])
    require_ok(p, "scan with an empty day")
    assert lines_with(p.stderr, "note: left out 1 file with no time step", files[1]), p.stderr[-2000:]
    exp = expected(tuple(files), "nested", "time")
    assert exp.sizes["time"] == 4
    same(exp, open_refs(out), "an empty day", True, files)


def write_wrf_runs(directory, xtime_dims=("Time",)):
    """Three daily WRF-style files, each from a run started that day: XTIME (minutes since the
    run's start, float32) and T2 (K), or in day 1 T2 in degC when XTIME has other dimensions."""
    import netCDF4
    import numpy as np
    directory.mkdir()
    files = []
    for k in range(3):
        path = str(directory / ("wrfout_d01_2030-01-0%d.nc" % (k + 1)))
        with netCDF4.Dataset(path, "w") as nc:
            nc.createDimension("Time", None)
            nc.createDimension("x", 3)
            xtime = nc.createVariable("XTIME", "f4", xtime_dims)
            xtime.units = "minutes since 2030-01-0%d 00:00:00" % (k + 1)
            xtime[:] = np.zeros((2, 3)) + [[0], [60]] if len(xtime_dims) == 2 else [0, 60]
            t2 = nc.createVariable("T2", "f4", ("Time", "x"))
            t2.units = "K"
            t2.coordinates = "XTIME"
            t2[:] = np.arange(6, dtype="f4").reshape(2, 3) + 10 * k
        files.append(path)
    return files


def test_wrf_xtime_in_each_runs_own_units_is_reencoded(tmp_path):
    """Trap: WRF files from runs started on different days keep XTIME in minutes since their own
    start. The combine refused them ("units is minutes since 2030-01-01 ... but ...") and advised
    --decoded --unpack, which failed the same way. A 1-D time variable along the concat dimension
    is now read with the scan and re-encoded in the first file's units, as Time is; the instants
    equal xarray's, which decodes each file with its own units."""
    files = write_wrf_runs(tmp_path / "runs")
    out, p = scan(tmp_path, files, ["--concat-dim", "Time"])
    require_ok(p, "scan of runs started on other days")
    assert lines_with(p.stderr, "note: XTIME: values of 3 files re-encoded", "minutes since 2030-01-01"), p.stderr[-2000:]
    exp = expected(tuple(files), "nested", "Time")
    assert str(exp["XTIME"].values[2])[:16] == "2030-01-02T00:00", exp["XTIME"].values
    same(exp, open_refs(out), "XTIME re-encoded", True, files)


def test_other_units_are_not_advised_to_unpack(tmp_path):
    """A 2-D XTIME(Time, x) in each run's units is not re-encoded: the error names it and no longer
    advises --decoded --unpack, which takes other packings, not other units; the ways it gives work."""
    files = write_wrf_runs(tmp_path / "runs", xtime_dims=("Time", "x"))
    out, p = scan(tmp_path, files, ["--concat-dim", "Time"])
    assert p.returncode == 1 and "variable XTIME is encoded differently" in p.stderr, p.stderr[-2000:]
    assert "--unpack" not in p.stderr and "--drop-variables XTIME" in p.stderr, p.stderr[-2000:]
    out, p = scan(tmp_path, files, ["--concat-dim", "Time", "--drop-variables", "XTIME"])
    require_ok(p, "scan --drop-variables XTIME")


def test_wrf_days_out_of_name_order_get_a_note_and_order_by_their_times(tmp_path):
    """Trap: WRF files named wrf_day1, wrf_day2, wrf_day10 have no Time coordinate, only Times rows.
    Name order puts day 10 before day 2, and the combined data was out of time order with exit 0
    and not a word (a CF time coordinate got a note). Now a note names the two files; with
    --order coordinate the files are ordered by their Times, equal to xarray's concatenation of
    the files in time order."""
    import netCDF4
    import numpy as np
    files = {}
    for day in (1, 2, 10):
        path = str(tmp_path / ("wrf_day%d.nc" % day))
        with netCDF4.Dataset(path, "w") as nc:
            nc.createDimension("Time", None)
            nc.createDimension("DateStrLen", 19)
            nc.createDimension("x", 3)
            times = nc.createVariable("Times", "S1", ("Time", "DateStrLen"))
            times[:] = netCDF4.stringtochar(np.array(["2030-01-%02d_00:00:00" % day, "2030-01-%02d_12:00:00" % day], dtype="S19"))
            t2 = nc.createVariable("T2", "f4", ("Time", "x"))
            t2[:] = np.arange(6, dtype="f4").reshape(2, 3) + 10 * day
        files[day] = path
    by_name = sorted(files.values())
    assert names(by_name) == ["wrf_day1.nc", "wrf_day10.nc", "wrf_day2.nc"]
    out, p = scan(tmp_path, [str(tmp_path / "wrf_day*.nc")], ["--concat-dim", "Time"])
    require_ok(p, "scan in name order")
    said = lines_with(p.stderr, "note: Times does not increase from", by_name[1], by_name[2], "--order coordinate")
    assert said and "2030-01-10_12:00:00 then 2030-01-02_00:00:00" in said[0], p.stderr[-2000:]
    same(expected(tuple(by_name), "nested", "Time"), open_refs(out), "WRF days in name order", True, by_name)
    out, p = scan(tmp_path, [str(tmp_path / "wrf_day*.nc")], ["--concat-dim", "Time", "--order", "coordinate"])
    require_ok(p, "scan ordered by Times")
    assert "does not increase" not in p.stderr, p.stderr[-2000:]
    in_time = [files[day] for day in (1, 2, 10)]
    same(expected(tuple(in_time), "nested", "Time"), open_refs(out), "WRF days ordered by Times", True, in_time)


def test_a_stack_regex_that_gives_two_files_one_member_says_so(tmp_path):
    """Ensemble members run_ens01, run_ens02, run_ens10 stacked with --stack-regex 'ens(\\d)': the
    capture gives members 0, 0 and 1. The error said "member 0 is in both ..." and advised
    stacking along a new dimension, which the user was doing; it now names the regex, the member
    and both files, and says to widen the capture. 'ens(\\d+)' stacks members 1, 2 and 10, each
    holding its own file's values, as xarray reads them."""
    import netCDF4
    import numpy as np
    import xarray as xr
    files = []
    for member in ("01", "02", "10"):
        path = str(tmp_path / ("run_ens%s.nc" % member))
        with netCDF4.Dataset(path, "w") as nc:
            nc.createDimension("time", 2)
            nc.createDimension("x", 3)
            t = nc.createVariable("time", "i4", ("time",))
            t.units = "hours since 2030-01-01"
            t[:] = [0, 1]
            v = nc.createVariable("v", "f4", ("time", "x"))
            v[:] = np.arange(6, dtype="f4").reshape(2, 3) + 100 * int(member)
        files.append(path)
    out, p = scan(tmp_path, files, ["--stack-dim", "member", "--stack-regex", r"ens(\d)"])
    assert p.returncode == 1, p.stderr[-2000:]
    said = "error: %s: --stack-regex ens(\\d) gives member 0 to this file and to %s: each file needs a value of its own" % (
        files[1], files[0])
    assert lines_with(p.stderr, said), p.stderr[-2000:]
    out, p = scan(tmp_path, files, ["--stack-dim", "member", "--stack-regex", r"ens(\d+)"])
    require_ok(p, "scan with the whole member number")
    act = open_refs(out)
    assert act["member"].values.tolist() == [1, 2, 10]
    for index, path in enumerate(files):
        with xr.open_dataset(path) as original:
            assert (act["v"].values[index] == original["v"].values).all(), path


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_64BIT_OFFSET"])
def test_time_bounds_follow_their_coordinate_when_units_are_reencoded(tmp_path, fmt):
    """Trap: daily files in hours since their own day, with time_bnds(time, nv) that has no units
    of its own (CF 7.1: bounds share their coordinate's). time was re-encoded in the first file's
    units, but time_bnds was concatenated raw: every day's bounds decoded to the first day's, exit
    0. The bounds are now read with the scan and re-encoded with each file's time units, equal to
    xarray's; without --concat-dim (the bounds not read) the files are refused, not misdated."""
    import netCDF4
    import numpy as np
    files = []
    for k in range(3):
        path = str(tmp_path / ("day_%d.nc" % k))
        with netCDF4.Dataset(path, "w", format=fmt) as nc:
            nc.createDimension("time", None)
            nc.createDimension("nv", 2)
            nc.createDimension("x", 3)
            t = nc.createVariable("time", "f8", ("time",))
            t.units = "hours since 2030-01-%02d" % (k + 1)
            t.bounds = "time_bnds"
            t[:] = [0.5, 1.5]
            bounds = nc.createVariable("time_bnds", "f8", ("time", "nv"))
            bounds[:] = [[0, 1], [1, 2]]
            v = nc.createVariable("v", "f4", ("time", "x"))
            v[:] = np.arange(6, dtype="f4").reshape(2, 3) + 10 * k
        files.append(path)
    out, p = scan(tmp_path, files, ["--concat-dim", "time"])
    require_ok(p, "scan of days in their own units")
    assert lines_with(p.stderr, "note: time_bnds: values of 3 files re-encoded", "hours since 2030-01-01"), p.stderr[-2000:]
    exp = expected(tuple(files), "nested", "time")
    assert str(exp["time_bnds"].values[2, 0])[:13] == "2030-01-02T00", exp["time_bnds"].values
    act = open_refs(out)
    assert "units" not in act["time_bnds"].attrs and "units" not in open_refs(out, decode_cf=False)["time_bnds"].attrs
    same(exp, act, "time_bnds re-encoded", True, files)
    out, p = scan(tmp_path, files, [])
    assert p.returncode == 1 and "variable time_bnds is encoded differently" in p.stderr, p.stderr[-2000:]


def test_a_file_named_twice_through_a_link_is_refused(archive, tmp_path):
    """Trap: an archive directory keeps latest.nc, a link to its last day, and the glob takes both.
    The default (name order) combine held the last day twice, its instants repeated at the end of
    the time axis, with only a note. A symbolic or a hard link is now refused, naming both paths."""
    files = archive("daily")
    for kind in ("symlink", "hardlink"):
        directory = tmp_path / kind
        directory.mkdir()
        for path in files:
            os.symlink(path, directory / os.path.basename(path))
        latest = directory / "latest.nc"
        (os.symlink if kind == "symlink" else os.link)(os.path.realpath(directory / names(files)[-1]), latest)
        out, p = scan(tmp_path, [str(directory / "*.nc")], ["--concat-dim", "time"])
        assert p.returncode == 1, "expected exit 1, got %d:\n%s" % (p.returncode, p.stderr[-2000:])
        assert p.stderr.startswith("error: %s is the same file as %s (one is a link to the other)" % (
            latest, directory / names(files)[-1])), p.stderr[-2000:]
        assert not os.path.exists(out)
    out, p = scan(tmp_path, [str(tmp_path / "symlink" / "day_*.nc")], ["--concat-dim", "time"])
    require_ok(p, "scan of each day once")
    same(expected(tuple(files), "nested", "time"), open_refs(out), "each day once, through links", True, files)


def test_variable_length_strings_concatenate_along_time(tmp_path):
    """Trap: a label(time) of variable-length strings in every file. Its per-file strings were
    joined by a fixed item size, which strings do not have: the combined chunk was empty and
    zarr could not decode it. They now read as xarray reads the files, through references and a mount."""
    import netCDF4
    files = []
    for k in range(3):
        path = str(tmp_path / ("day_%d.nc" % k))
        with netCDF4.Dataset(path, "w") as nc:
            nc.createDimension("time", None)
            t = nc.createVariable("time", "i4", ("time",))
            t.units = "hours since 2030-01-01"
            t[:] = [24 * k, 24 * k + 12]
            label = nc.createVariable("label", str, ("time",))
            label[0], label[1] = "day %d, morning" % k, "day %d: évening %s" % (k, "!" * k)
        files.append(path)
    exp = expected(tuple(files), "nested", "time")
    assert exp["label"].values.tolist()[-1] == "day 2: évening !!"
    for zarr_format in ("2", "3"):
        out, p = scan(tmp_path, files, ["--concat-dim", "time", "--zarr-format", zarr_format])
        require_ok(p, "scan --zarr-format %s" % zarr_format)
        if zarr_format == "2":
            same(exp, open_refs(out), "strings along time (refs)", True, files)
    with mounted(tmp_path, files, ["--concat-dim", "time"]) as (mountpoint, p):
        same(exp, open_mount(mountpoint), "strings along time (mount)", True, files)


def refused_with_a_copy(tmp_path, files, day, dimension, what):
    """FILES plus a copy of FILES[DAY] under another name, concatenated along DIMENSION: exit 1
    without references, on a line that says WHAT, names both copies and points to --stack-dim."""
    import shutil
    copy = str(tmp_path / ("copy_of_" + os.path.basename(files[day])))
    shutil.copy(files[day], copy)
    out, p = scan(tmp_path, files + [copy], ["--concat-dim", dimension])
    assert p.returncode == 1, "expected exit 1, got %d:\n%s" % (p.returncode, p.stderr[-2000:])
    said = lines_with(p.stderr, what, files[day], copy)
    assert said and "--stack-dim" in said[0], p.stderr[-2000:]
    assert not os.path.exists(out)


def test_a_day_downloaded_twice_is_refused_in_name_order(archive, tmp_path):
    """Trap: a second copy of day 1 (another name, another file) sits among the days. In name order
    the combine held day 1's instants twice, with only a note; now it refuses, naming both copies
    and the instant. Files in name order that merely do not increase still combine, with a note."""
    files = archive("daily")
    refused_with_a_copy(tmp_path, files, 1, "time", "time 24 hours since 2030-01-01 00:00:00 is in both")
    members = archive("same-time")
    out, p = scan(tmp_path, members, ["--concat-dim", "time"])
    assert p.returncode == 1 and lines_with(p.stderr, "is in both", members[0], members[1]), p.stderr[-2000:]
    shuffled = archive("shuffled")
    out, p = scan(tmp_path, shuffled, ["--concat-dim", "time"])
    require_ok(p, "scan of files whose names do not follow time")
    assert lines_with(p.stderr, "note: time does not increase"), p.stderr[-2000:]


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_64BIT_OFFSET"])
def test_a_wrf_day_downloaded_twice_is_refused_by_its_times(tmp_path, fmt):
    """Trap: WRF files name their instants only in Times (no Time coordinate), and one day sits
    in the archive twice under another name. The combine held it twice, silently; now the
    Times rows are read with the scan and a row that two files hold is refused, naming both.
    The days once each still combine, equal to xarray."""
    import netCDF4
    files = []
    for k in range(3):
        path = str(tmp_path / ("wrfout_2030-01-%02d.nc" % (k + 1)))
        if fmt == "NETCDF4":
            write_wrf(path, k)
        else:
            with netCDF4.Dataset(path, "w", format=fmt) as nc:
                nc.createDimension("Time", None)
                nc.createDimension("DateStrLen", 19)
                nc.createDimension("x", 3)
                times = nc.createVariable("Times", "S1", ("Time", "DateStrLen"))
                times[:] = netCDF4.stringtochar(np.array(["2030-01-%02d_%02d:00:00" % (k + 1, h) for h in (0, 12)], "S19"))
                nc.createVariable("T2", "f4", ("Time", "x"))[:] = np.arange(6, dtype="f4").reshape(2, 3) + 10 * k
        files.append(path)
    refused_with_a_copy(tmp_path, files, 1, "Time", "Times 2030-01-02_00:00:00 is in both")
    out, p = scan(tmp_path, files, [])
    require_ok(p, "scan of each day once (Time inferred)")
    same(expected(tuple(files), "nested", "Time"), open_refs(out), "WRF days once each (%s)" % fmt, True, files)


def test_compat_equals_refuses_coordinates_that_differ(archive, tmp_path):
    """Trap: lat differs slightly in one file -- --compat equals refuses naming lat and both files."""
    files = archive("lat-differs")
    first, odd = names(files)[0], names(files)[ODD["lat-differs"]]
    out, p = scan(tmp_path, files, ["--concat-dim", "time", "--compat", "equals"])
    assert p.returncode == 1, "expected exit 1, got %d:\n%s" % (p.returncode, p.stderr[-2000:])
    assert lines_with(p.stderr, "lat", first, odd), \
        "one line must name lat, %s and %s:\n%s" % (first, odd, p.stderr[-2000:])
    assert "--compat equals: variable lat differs" in p.stderr, p.stderr[-2000:]


def test_compat_equals_accepts_identical_coordinates(archive, tmp_path):
    """Trap: --compat equals must not refuse files whose lat/lon are identical."""
    files = archive("daily")
    out, p = scan(tmp_path, files, ["--concat-dim", "time", "--compat", "equals"])
    require_ok(p, "scan --compat equals")
    same(expected(tuple(files), "nested", "time"), open_refs(out), "--compat equals", True, files)


# ------------------------------------------------------------------ 6. a corrupt file, a config with mistakes

def test_mount_skipping_a_corrupt_file_exits_2_and_names_it_once(archive, tmp_path):
    """Trap: `mount --on-error skip` with a corrupt file -- exit status 2 (mounted, with the other files), the file named once on a
    `skipped:` line and in the dataset's zarrmount_skipped_files attribute: a reader of the mount had no sign a file was missing."""
    files = archive("corrupt")
    bad = files[ODD["corrupt"]]
    good = [f for f in files if f != bad]
    with mounted(tmp_path, files, ["--concat-dim", "time", "--on-error", "skip"], ok=(2,)) as (mountpoint, p):
        base = os.path.basename(bad)
        assert p.stderr.count(base) == 1, "%s must appear exactly once in stderr:\n%s" % (base, p.stderr)
        line = lines_with(p.stderr, base)[0]
        assert "skipped:" in line and "error:" not in line, line
        act = open_mount(mountpoint)
        assert act.sizes["time"] == 16
        # The dataset names the file it lacks, as the skipped: line did (the exit status and
        # stderr are gone once the mount is in use).
        assert act.attrs.pop("zarrmount_skipped_files") == [line[len("skipped: "):]]
        same(expected(tuple(good), "nested", "time"), act, "corrupt file skipped (mount)", True, good)


def test_config_with_three_mistakes_names_all_three(archive, tmp_path):
    """Trap: a YAML config with two unknown keys and a bad value -- one run names all three (with their lines), not only the first."""
    files = archive("daily")
    config = tmp_path / "mistakes.yaml"
    config.write_text("sources:\n  - %s\nconcat_dimm: time\noder: key\nattrs: everything\n"
                      % os.path.join(os.path.dirname(files[0]), "*.nc"))
    out, p = scan(tmp_path, [config])
    assert p.returncode != 0, "a config with mistakes must fail:\n" + p.stderr
    for key, line in (("concat_dimm", 3), ("oder", 4), ("attrs", 5)):
        assert [ln for ln in lines_with(p.stderr, key) if re.search(r"\b%d\b" % line, ln)], \
            "stderr must name %s and its line %d:\n%s" % (key, line, p.stderr)


@pytest.mark.parametrize("attribute", ["scale_factor", "add_offset"])
def test_per_file_packing_is_served_unpacked_with_decoded_unpack(archive, tmp_path, attribute):
    """Way out: --decoded --unpack serves t2 unpacked, each file's chunks with its own packing, as xarray decodes each file."""
    files = archive("packing-" + attribute)
    with mounted(tmp_path, files, ["--concat-dim", "time", "--decoded", "--unpack"]) as (mountpoint, p):
        act = open_mount(mountpoint)
    exp = expected(tuple(files), "nested", "time")
    t2 = act["t2"]
    assert t2.dtype == np.float64, t2.dtype
    assert "zarrmount_unpacked" in t2.attrs and "scale_factor" not in t2.attrs, t2.attrs
    assert t2.shape == exp["t2"].shape == (5 * NT, NY, NX), (t2.shape, exp["t2"].shape)
    e, a = exp["t2"].values.astype(np.float64), t2.values
    assert np.array_equal(np.isnan(e), np.isnan(a)), "missing values differ"
    assert np.isnan(a).any(), "the archive has missing t2 values; none came back as NaN"
    # netCDF4 unpacks in float32; the daemon in float64 from the same float32 scale and offset.
    np.testing.assert_allclose(a[~np.isnan(a)], e[~np.isnan(e)], rtol=2e-7, atol=0)
    same(exp.drop_vars("t2"), act.drop_vars("t2"), "unpacked, the other variables", True, files)


def test_unpack_needs_decoded(archive, tmp_path):
    """--unpack alone is refused: only the decoded view can show unpacked values."""
    require_fuse()
    mountpoint = tmp_path / "mnt-unpack"
    mountpoint.mkdir()
    p = run_vz(["mount", *archive("daily"), "--concat-dim", "time", "--unpack", "--no-cache", mountpoint], timeout=60)
    assert p.returncode != 0 and "--decoded" in p.stderr, (p.returncode, p.stderr[-2000:])
    assert not os.path.ismount(str(mountpoint))


def _zarray(mountpoint, name):
    import json
    with open(os.path.join(mountpoint, name, ".zarray")) as fh:
        return json.load(fh)


@pytest.mark.parametrize("decode_cf", DECODE, ids=DECODE_IDS)
def test_mixed_chunk_shapes_are_served_on_one_grid_when_decoded(archive, tmp_path, decode_cf):
    """Way out: in --decoded mode, precip (chunked (2,3,4) in one file, (1,6,8) elsewhere) is served in the most
    common shape, each chunk assembled from the decoded source chunks it overlaps -- equal to xarray."""
    files = archive("chunks")
    with mounted(tmp_path, files, ["--concat-dim", "time", "--decoded"]) as (mountpoint, p):
        assert lines_with(p.stderr, "precip", "(1,6,8)".replace(",", ", ").replace("(", "[").replace(")", "]")), p.stderr[-2000:]
        zarray = _zarray(mountpoint, "precip")
        act = open_mount(mountpoint, decode_cf)
    assert zarray["chunks"] == [1, NY, NX] and zarray["compressor"] is None and not zarray.get("filters"), zarray
    same(expected(tuple(files), "nested", "time", decode_cf), act, "mixed chunks, decoded (decode_cf=%s)" % decode_cf,
         decode_cf, files)


def test_a_file_chunked_otherwise_along_the_concat_dimension_is_refused_or_regridded(archive, tmp_path):
    """Trap: one day chunks precip 2 time steps at a time, the others 1. Its chunks were put in
    slots of one step: two keys held two steps each (unreadable), and its last two steps read as
    fill, silently. The stored combine now refuses, naming precip, the file and --decoded; a
    --decoded mount serves it on one grid, equal to xarray."""
    files = archive("time-chunks")
    odd = names(files)[ODD["time-chunks"]]
    out, p = scan(tmp_path, files, ["--concat-dim", "time"])
    assert p.returncode == 1, "expected exit 1, got %d:\n%s" % (p.returncode, p.stderr[-2000:])
    said = lines_with(p.stderr, "precip", "chunks do not line up", odd)
    assert said and "--decoded" in said[0], p.stderr[-2000:]
    with mounted(tmp_path, files, ["--concat-dim", "time", "--decoded"]) as (mountpoint, p):
        act = open_mount(mountpoint)
    same(expected(tuple(files), "nested", "time"), act, "precip chunked otherwise along time, decoded", True, files)


def test_a_file_compressed_otherwise_is_refused_naming_decoded_or_served_decoded(archive, tmp_path):
    """Trap: one day stores precip uncompressed, another with Fletcher-32 and no shuffle (an archive whose writer
    changed settings). The stored combine refuses, naming both pipelines in words (it printed Swift enum cases)
    and --decoded; a --decoded mount serves each file's chunks through its own pipeline (it refused too), equal to
    xarray."""
    files = archive("compression")
    out, p = scan(tmp_path, files, ["--concat-dim", "time"])
    assert p.returncode == 1, "expected exit 1, got %d:\n%s" % (p.returncode, p.stderr[-2000:])
    said = lines_with(p.stderr, "precip", "compressed differently", names(files)[0], names(files)[2],
                      "(shuffle, zlib level 4)", "(no compression or filters)", "--decoded")
    assert said and "Codec" not in said[0], p.stderr[-2000:]
    for decode_cf in DECODE:
        with mounted(tmp_path, files, ["--concat-dim", "time", "--decoded"]) as (mountpoint, p):
            assert lines_with(p.stderr, "note", "precip", "compressed differently", "served decoded"), p.stderr[-2000:]
            zarray = _zarray(mountpoint, "precip")
            act = open_mount(mountpoint, decode_cf)
        assert zarray["compressor"] is None and not zarray.get("filters") and zarray["chunks"] == [1, NY, NX], zarray
        same(expected(tuple(files), "nested", "time", decode_cf), act, "compressed otherwise, decoded (decode_cf=%s)" % decode_cf,
             decode_cf, files)


@pytest.mark.filterwarnings("ignore:endian-ness of dtype")
def test_a_file_storing_big_endian_is_refused_naming_decoded_or_served_little_endian(archive, tmp_path):
    """Trap: one day of five stores t2 and precip big-endian (written on another machine). The stored combine
    refuses naming --decoded; a --decoded mount (it refused too) serves both little-endian, each file's chunks
    swapped as they are read, equal to xarray -- and with --unpack, t2 unpacked per file from either order."""
    files = archive("byte-order")
    out, p = scan(tmp_path, files, ["--concat-dim", "time"])
    assert p.returncode == 1, "expected exit 1, got %d:\n%s" % (p.returncode, p.stderr[-2000:])
    assert lines_with(p.stderr, "precip", "<f4", ">f4", names(files)[1], "--decoded"), p.stderr[-2000:]
    for decode_cf in DECODE:
        with mounted(tmp_path, files, ["--concat-dim", "time", "--decoded"]) as (mountpoint, p):
            assert lines_with(p.stderr, "note", "t2", "big-endian in", names(files)[1], "<i2"), p.stderr[-2000:]
            dtypes = [_zarray(mountpoint, v)["dtype"] for v in ("t2", "precip")]
            act = open_mount(mountpoint, decode_cf)
        assert dtypes == ["<i2", "<f4"], dtypes
        same(expected(tuple(files), "nested", "time", decode_cf), act, "big-endian day, decoded (decode_cf=%s)" % decode_cf,
             decode_cf, files)
    with mounted(tmp_path, files, ["--concat-dim", "time", "--decoded", "--unpack"]) as (mountpoint, p):
        act = open_mount(mountpoint)
        assert "zarrmount_unpacked" not in act["t2"].attrs  # the packing agrees; only the byte order differs
        same(expected(tuple(files), "nested", "time"), act, "big-endian day, --unpack", True, files)


def test_chunks_option_serves_a_variable_on_another_grid(archive, tmp_path):
    """--decoded --chunks VAR=...: chunks that cut across the files' chunks and the array's edges (partial last
    chunks) -- every value equal to xarray, the grid as asked."""
    files = archive("chunks")
    flags = ["--concat-dim", "time", "--decoded", "--chunks", "precip=3,4,5", "--chunks", "t2=7,6,3"]
    with mounted(tmp_path, files, flags) as (mountpoint, p):
        assert _zarray(mountpoint, "precip")["chunks"] == [3, 4, 5]
        assert _zarray(mountpoint, "t2")["chunks"] == [7, 6, 3]
        names_listed = sorted(os.listdir(os.path.join(mountpoint, "precip")))
        act_raw = open_mount(mountpoint, False)
        act = open_mount(mountpoint, True)
    # 20 x 6 x 8 in chunks of 3 x 4 x 5: 7 x 2 x 2 chunk files, the last ones partial.
    assert len([n for n in names_listed if not n.startswith(".")]) == 7 * 2 * 2, names_listed
    same(expected(tuple(files), "nested", "time", False), act_raw, "re-chunked, raw", False, files)
    same(expected(tuple(files), "nested", "time", True), act, "re-chunked, decoded", True, files)


def _assert_unpacked_like_xarray(act, exp, where):
    t2 = act["t2"]
    assert t2.dtype == np.float64 and "zarrmount_unpacked" in t2.attrs and "scale_factor" not in t2.attrs, (t2.dtype, t2.attrs)
    e, a = exp["t2"].values.astype(np.float64), t2.values
    assert e.shape == a.shape, (where, e.shape, a.shape)
    assert np.array_equal(np.isnan(e), np.isnan(a)) and np.isnan(a).any(), "%s: missing values differ" % where
    np.testing.assert_allclose(a[~np.isnan(a)], e[~np.isnan(e)], rtol=2e-7, atol=0, err_msg=where)


def test_unpack_and_regrid_one_variable(archive, tmp_path):
    """t2 packed differently (scale 0.02) and chunked differently ((2,4,3)) in day 1: --decoded --unpack serves it
    on one grid, each source chunk unpacked with its own file's packing as it is placed (was: refused). Also with
    --chunks cutting across every file's chunks and the array's edges."""
    files = archive("packing-and-chunks")
    exp = expected(tuple(files), "nested", "time")
    with mounted(tmp_path, files, ["--concat-dim", "time", "--decoded", "--unpack"]) as (mountpoint, p):
        assert _zarray(mountpoint, "t2")["chunks"] == [1, NY, NX] and _zarray(mountpoint, "t2")["dtype"] == "<f8"
        act = open_mount(mountpoint)
        _assert_unpacked_like_xarray(act, exp, "one grid")
        same(exp.drop_vars("t2"), act.drop_vars("t2"), "unpacked and regridded, the other variables", True, files)
    with mounted(tmp_path, files, ["--concat-dim", "time", "--decoded", "--unpack", "--chunks", "t2=3,5,7"]) as (mountpoint, p):
        assert _zarray(mountpoint, "t2")["chunks"] == [3, 5, 7]
        _assert_unpacked_like_xarray(open_mount(mountpoint), exp, "--chunks t2=3,5,7")
    unpacked_only = archive("packing-scale_factor")
    with mounted(tmp_path, unpacked_only, ["--concat-dim", "time", "--decoded", "--unpack", "--chunks", "t2=3,5,7"]) as (mountpoint, p):
        assert _zarray(mountpoint, "t2")["chunks"] == [3, 5, 7]
        _assert_unpacked_like_xarray(open_mount(mountpoint), expected(tuple(unpacked_only), "nested", "time"),
                                     "same chunks, --chunks t2=3,5,7")


def test_chunks_option_is_checked(archive, tmp_path):
    """--chunks needs --decoded, a variable that exists (did you mean) and one extent per dimension."""
    require_fuse()
    files = archive("daily")
    for flags, needle in [(["--chunks", "precip=1,2,2"], "--decoded"),
                          (["--decoded", "--chunks", "precipp=1,2,2"], "did you mean precip"),
                          (["--decoded", "--chunks", "precip=1,2"], "3 dimensions"),
                          (["--decoded", "--chunks", "precip=1,0,2"], "VAR=N,N")]:
        mountpoint = tmp_path / ("mnt-check-%d" % len(list(tmp_path.glob("mnt-check-*"))))
        mountpoint.mkdir()
        p = run_vz(["mount", *files, "--concat-dim", "time", *flags, "--no-cache", mountpoint], timeout=60)
        assert p.returncode != 0 and needle in p.stderr, (flags, p.returncode, p.stderr[-2000:])
        assert not os.path.ismount(str(mountpoint))


def test_a_rescan_takes_the_combined_dataset_from_the_cache_until_a_file_changes(archive, tmp_path, vz):
    """The second scan of unchanged files with the same options is the first scan's combined dataset;
    a day rewritten since (a new value and title) is scanned and combined again, and the
    references then agree with xarray on the files as they are now."""
    import shutil
    directory = tmp_path / "days"
    directory.mkdir()
    files = [shutil.copy(f, directory) for f in archive("daily")]
    cache = str(tmp_path / "cache")
    marker = "the combined dataset of these file versions and options came from the manifest cache"

    def cached_scan(*flags):
        out = tmp_path / ("cached-%d.json" % len(list(tmp_path.glob("cached-*.json"))))
        p = run_vz(["scan", str(directory / "*.nc"), "--concat-dim", "time", *flags, "--cache-dir", cache, "--refs", out], timeout=120)
        require_ok(p, "scan")
        with open(out) as fh:
            return fh.read(), p.stderr, str(out)

    first, err, _ = cached_scan()
    assert marker not in err and "(0 from the manifest cache)" in err, err
    again, err, _ = cached_scan()
    assert marker in err and "(5 from the manifest cache)" in err, err
    assert again == first
    dropped, err, _ = cached_scan("--drop-variables", "precip")
    assert marker not in err and '"precip/' not in dropped, err

    import netCDF4
    with netCDF4.Dataset(files[0], "a") as nc:
        nc["precip"][0, 0, 0] = np.float32(-1234.5)
        nc.title = "rewritten day"
    changed, err, changed_path = cached_scan()
    assert marker not in err and "(4 from the manifest cache)" in err, err
    exp = expected(tuple(files), "nested", concat_dim="time")
    assert float(exp["precip"][0, 0, 0]) == -1234.5 and exp.attrs["title"] == "rewritten day"
    assert "rewritten day" in changed
    same(exp, open_refs(changed_path), "rescan after a file changed", True, files)
    assert cached_scan()[1].count(marker) == 1


def test_results_cached_by_another_build_are_not_reused(archive, tmp_path, vz):
    """A new build may map files differently (this session's root-attribute and enum fixes did): the manifest
    cache reuses results only from the executable that wrote them."""
    import shutil
    files = archive("daily")
    cache = tmp_path / "cache"
    other = tmp_path / "zarrmount-other-build"
    shutil.copy2(vz[0], other)
    os.utime(other, (1_600_000_000, 1_600_000_000))

    def scan_with(binary):
        out = tmp_path / ("cached-%d.json" % len(list(tmp_path.glob("cached-*.json"))))
        import subprocess
        p = subprocess.run([str(binary), "scan", *files, "--concat-dim", "time", "--cache-dir", str(cache), "--refs", str(out)],
                           capture_output=True, text=True, timeout=120)
        require_ok(p, "scan")
        return p.stderr

    assert "(0 from the manifest cache)" in scan_with(vz[0])
    assert "(5 from the manifest cache)" in scan_with(vz[0]), "the same build reuses its results"
    assert "(0 from the manifest cache)" in scan_with(other), "another build must scan again"
