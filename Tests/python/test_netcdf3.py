"""netCDF-3 archives (issue 16): classic (CDF-1), 64-bit offset (CDF-2) and 64-bit data (CDF-5) files,
parsed natively, combine along their record dimension like netCDF-4 files do.

Each case writes a small archive with netCDF4-python (3 daily files of 4 records: a record
coordinate, a packed int16 record variable, a float32 record variable with NaNs, a WRF-like `Times`
char variable, a fixed 2-D variable, a 0-d variable) and compares what zarrmount serves -- kerchunk
references, real FUSE mounts stored and `--decoded`, Zarr v2 and v3 -- with xarray's open_mfdataset
on the original files, value by value. Mixed archives of netCDF-3 and netCDF-4 files combine when
their variables' dtypes agree, and otherwise fail naming the variable and both files; a file that
is neither netCDF-3 nor HDF5 fails naming what it is.
"""
import os
import warnings

import numpy as np
import pytest

from conftest import compare_datasets, allowances, require_ok, run_vz

FORMATS = ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA"]
NT, NY, NX = 4, 5, 7
DECODE = [True, False]
DECODE_IDS = ["cf", "raw"]


def write_day(path, k, fmt, endian="native"):
    """Day K of a netCDF-3 (or, with FMT="NETCDF4", netCDF-4) archive."""
    import netCDF4
    rng = np.random.default_rng(300 + k)
    with netCDF4.Dataset(path, "w", format=fmt) as nc:
        nc.title = "netCDF-3 test archive"
        nc.day = np.int32(k)
        nc.createDimension("time", None)
        nc.createDimension("lat", NY)
        nc.createDimension("lon", NX)
        nc.createDimension("DateStrLen", 19)
        kw = {} if fmt.startswith("NETCDF3") else {"endian": endian}
        t = nc.createVariable("time", "f8", ("time",), **kw)
        t.units = "hours since 2031-05-01 00:00:00"
        t.standard_name = "time"
        t[:] = k * 24 + np.array([0.0, 6.0, 12.0, 18.0])
        lat = nc.createVariable("lat", "f4", ("lat",), **kw)
        lat.units = "degrees_north"
        lat[:] = np.linspace(40.0, 44.0, NY, dtype=np.float32)
        lon = nc.createVariable("lon", "f4", ("lon",), **kw)
        lon.units = "degrees_east"
        lon[:] = np.linspace(5.0, 11.0, NX, dtype=np.float32)
        orog = nc.createVariable("orog", "f4", ("lat", "lon"), **kw)
        orog.units = "m"
        orog[:] = np.arange(NY * NX, dtype=np.float32).reshape(NY, NX) * 3.5
        t2 = nc.createVariable("t2", "i2", ("time", "lat", "lon"), fill_value=np.int16(-32767), **kw)
        t2.set_auto_maskandscale(False)
        t2.scale_factor = np.float32(0.01)
        t2.add_offset = np.float32(273.15)
        t2.units = "K"
        raw = rng.integers(-3000, 3000, size=(NT, NY, NX)).astype(np.int16)
        raw[0, 0, :2] = -32767
        t2[:] = raw
        pr = nc.createVariable("precip", "f4", ("time", "lat", "lon"), **kw)
        pr.units = "mm"
        values = rng.random((NT, NY, NX), dtype=np.float32)
        values[1, 2, 3] = np.nan
        pr[:] = values
        times = nc.createVariable("Times", "S1", ("time", "DateStrLen"))
        stamps = ["2031-05-%02d_%02d:00:00" % (k + 1, h) for h in (0, 6, 12, 18)]
        times[:] = netCDF4.stringtochar(np.array(stamps, dtype="S19"))
        crs = nc.createVariable("crs", "i4", (), **kw)
        crs.grid_mapping_name = "latitude_longitude"
        crs.assignValue(0)


def archive(directory, fmt, days=3):
    os.makedirs(directory, exist_ok=True)
    files = []
    for k in range(days):
        path = os.path.join(directory, "day_%02d.nc" % k)
        write_day(path, k, fmt)
        files.append(path)
    return files


def expected(files, decode_cf):
    import xarray as xr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with xr.open_mfdataset(files, engine="netcdf4", combine="nested", concat_dim="time", decode_cf=decode_cf,
                               decode_times=decode_cf, decode_timedelta=False if decode_cf else None,
                               data_vars="minimal", coords="minimal", compat="override", join="override",
                               combine_attrs="override") as ds:
            return ds.load()


def open_refs(refs, decode_cf):
    import xarray as xr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_dataset("reference://", engine="zarr", decode_cf=decode_cf, chunks=None, decode_times=decode_cf,
                               decode_timedelta=False if decode_cf else None,
                               backend_kwargs={"consolidated": False, "zarr_format": 2,
                                               "storage_options": {"fo": refs}}).load()


def open_mount(mountpoint, fmt, decode_cf):
    import xarray as xr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(mountpoint, consolidated=fmt == 2, zarr_format=fmt, chunks=None, decode_cf=decode_cf,
                            decode_times=decode_cf, decode_timedelta=False if decode_cf else None).load()


@pytest.fixture(scope="module")
def archives(tmp_path_factory, vz):
    root = tmp_path_factory.mktemp("netcdf3")
    return {fmt: archive(str(root / fmt), fmt) for fmt in FORMATS}


def _mount(tmp_path, sources, flags):
    from conftest import require_fuse
    require_fuse()
    mountpoint = tmp_path / ("mnt-%d" % len(list(tmp_path.glob("mnt-*"))))
    mountpoint.mkdir()
    p = run_vz(["mount", *sources, *flags, "--no-cache", mountpoint], timeout=120)
    require_ok(p, "mount")
    assert os.path.ismount(str(mountpoint)), p.stderr[-2000:]
    return str(mountpoint)


def _unmount(mountpoint):
    u = run_vz(["unmount", mountpoint], timeout=60)
    assert u.returncode == 0, u.stderr
    assert not os.path.ismount(mountpoint)


@pytest.mark.parametrize("decode_cf", DECODE, ids=DECODE_IDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_records_of_successive_files_are_one_array(archives, tmp_path, fmt, decode_cf):
    files = archives[fmt]
    refs = str(tmp_path / "refs.json")
    p = run_vz(["scan", *files, "--concat-dim", "time", "--no-cache", "--refs", refs])
    require_ok(p, "scan")
    act = open_refs(refs, decode_cf)
    exp = expected(files, decode_cf)
    assert act["t2"].shape == (3 * NT, NY, NX)
    assert act["Times"].dtype.kind == "S"
    compare_datasets(exp, act, "%s refs" % fmt, decode_cf, allowances(files[0]))


@pytest.mark.parametrize("mode", [("mount", 2), ("mount", 3), ("mount-decoded", 3)], ids=["v2", "v3", "decoded-v3"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_mounts_of_netcdf3_archives_read_like_the_originals(archives, tmp_path, fmt, mode):
    files = archives[fmt]
    kind, zarr_format = mode
    flags = ["--concat-dim", "time", "--zarr-format", str(zarr_format)] + (["--decoded"] if kind == "mount-decoded" else [])
    mountpoint = _mount(tmp_path, files, flags)
    try:
        for decode_cf in DECODE:
            act = open_mount(mountpoint, zarr_format, decode_cf)
            compare_datasets(expected(files, decode_cf), act, "%s %s" % (fmt, "-".join(map(str, mode))), decode_cf,
                             allowances(files[0]))
    finally:
        _unmount(mountpoint)


def test_the_record_dimension_is_inferred_without_a_coordinate(tmp_path, vz):
    """Files whose record dimension has no coordinate variable concatenate along it (it is the
    one unlimited dimension they share), as netCDF-4 files do."""
    import netCDF4
    files = []
    for k in range(3):
        path = str(tmp_path / ("run_%d.nc" % k))
        with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
            nc.createDimension("step", None)
            nc.createDimension("x", 3)
            v = nc.createVariable("v", "i4", ("step", "x"))
            v[:] = np.arange(6, dtype=np.int32).reshape(2, 3) + 100 * k
        files.append(path)
    refs = str(tmp_path / "refs.json")
    p = run_vz(["scan", *files, "--no-cache", "--refs", refs])
    require_ok(p, "scan")
    act = open_refs(refs, False)
    assert act["v"].dims == ("step", "x")
    np.testing.assert_array_equal(act["v"].values, np.concatenate([np.arange(6).reshape(2, 3) + 100 * k for k in range(3)]))


def test_mixed_archives_combine_when_dtypes_agree_and_say_why_not(tmp_path, vz):
    """A netCDF-4 file whose variables are big-endian joins netCDF-3 files (whose variables always
    are); a little-endian one is refused, naming a variable, both files and the way out."""
    nc3 = [str(tmp_path / "a_day_00.nc"), str(tmp_path / "a_day_01.nc")]
    write_day(nc3[0], 0, "NETCDF3_CLASSIC")
    write_day(nc3[1], 1, "NETCDF3_64BIT_DATA")
    big = str(tmp_path / "a_day_02.nc")
    write_day(big, 2, "NETCDF4", endian="big")
    refs = str(tmp_path / "refs.json")
    files = nc3 + [big]
    p = run_vz(["scan", *files, "--concat-dim", "time", "--no-cache", "--refs", refs])
    require_ok(p, "scan")
    for decode_cf in DECODE:
        compare_datasets(expected(files, decode_cf), open_refs(refs, decode_cf), "mixed", decode_cf, allowances(files[0]))

    little = str(tmp_path / "a_day_03.nc")
    write_day(little, 3, "NETCDF4", endian="little")
    p = run_vz(["scan", *nc3, little, "--concat-dim", "time", "--no-cache", "--refs", str(tmp_path / "bad.json")])
    assert p.returncode == 1, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert "has dtype >" in line and "but <" in line and "a_day_00.nc" in line and "a_day_03.nc" in line, line
    assert "--drop-variables" in line, line


@pytest.mark.parametrize("content,what", [
    (b"GRIB\x00\x00\x10\x02" + bytes(200), "a GRIB file, not netCDF"),
    (b"<!DOCTYPE html><html><body>403 Forbidden</body></html>", "an HTML page"),
    (b"\x1f\x8b\x08\x00" + bytes(100), "a gzip-compressed file"),
    (b"CDF\x07" + bytes(100), "version byte 7"),
    (b"", "an empty file"),
    (b"hello world, this is not a netCDF file at all" * 3, "an unrecognised file starting with 68 65 6c 6c"),
], ids=["grib", "html", "gzip", "cdf-7", "empty", "text"])
def test_a_file_that_is_not_netcdf_is_named_for_what_it_is(tmp_path, vz, content, what):
    path = tmp_path / "data.nc"
    path.write_bytes(content)
    p = run_vz(["scan", str(path), "--no-cache", "--refs", str(tmp_path / "r.json")])
    assert p.returncode == 1, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert str(path) in line and what in line, line
