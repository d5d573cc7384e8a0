"""Readers other than zarr-python through real mounts (issue 5): netCDF-C's ncdump (NCZarr, Debian
12's 4.9.0), GDAL's Zarr driver (gdalmdiminfo / gdalmdimtranslate, Debian 12's 3.6.2) and
tensorstore (PyPI), on the stored and the decoded (`--decoded`) mount of a WRF-like sample, Zarr v2
and v3; and netCDF4-python, whose PyPI wheel carries its own netCDF-C 4.10 with zlib and shuffle.
This file is the README's reader table: every cell is asserted both ways. A cell that
works must give exactly the values of the original files (netCDF4 on the .nc files, raw, no CF
decoding); a cell that does not must fail or give other values, so the table cannot go stale.
"""
import glob
import os
import shutil
import subprocess
import warnings

import numpy as np
import pytest

from conftest import CI, REPO, make_wrf_sample, require_fuse
import zarr_readers as readers

ZARRMOUNT = os.environ.get("ZARRMOUNT_BIN", os.path.join(REPO, ".build", "debug", "zarrmount"))
VARIABLES = ["T2", "U", "lat", "Time"]

# (reader, mode, Zarr format) -> works. The README's table is this dictionary.
MATRIX = {
    ("zarr-python", "stored", 2): True, ("zarr-python", "stored", 3): True,
    ("zarr-python", "decoded", 2): True, ("zarr-python", "decoded", 3): True,
    ("ncdump", "stored", 2): False, ("ncdump", "stored", 3): False,
    ("ncdump", "decoded", 2): True, ("ncdump", "decoded", 3): False,
    ("gdal", "stored", 2): False, ("gdal", "stored", 3): False,
    ("gdal", "decoded", 2): True, ("gdal", "decoded", 3): False,
    ("tensorstore", "stored", 2): False, ("tensorstore", "stored", 3): False,
    ("tensorstore", "decoded", 2): True, ("tensorstore", "decoded", 3): True,
    ("netCDF4-python", "stored", 2): True, ("netCDF4-python", "stored", 3): False,
    ("netCDF4-python", "decoded", 2): True, ("netCDF4-python", "decoded", 3): False,
}


# netCDF-3 archives (classic, 64-bit offset, 64-bit data): big-endian arrays without codecs, so
# the stored and the decoded mount serve the same bytes; (reader, Zarr format) -> works. The
# netCDF-3 table of docs/readers.md is this dictionary. ncdump 4.9.0 crashes on the char (`Times`) and 0-d
# (`crs`) arrays every such archive here has, and ignores byte order where it reads at all.
MATRIX_NETCDF3 = {
    ("zarr-python", 2): True, ("zarr-python", 3): True,
    ("ncdump", 2): False, ("ncdump", 3): False,
    ("gdal", 2): True, ("gdal", 3): False,
    ("tensorstore", 2): True, ("tensorstore", 3): True,
    ("netCDF4-python", 2): True, ("netCDF4-python", 3): False,
}
NETCDF3_VARIABLES = ["t2", "precip", "orog", "lat", "time"]


def _require(tool):
    if shutil.which(tool) is None:
        msg = "%s is not installed (tools/setup installs it)" % tool
        if CI:
            pytest.fail(msg + "; CI=true forbids skipping")
        pytest.skip(msg)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    require_fuse()
    return make_wrf_sample(tmp_path_factory.mktemp("reader-archive"))


@pytest.fixture(scope="module")
def expected(archive):
    """Raw values of every variable, from the original files (netCDF4, no masking)."""
    import netCDF4
    values = {}
    datasets = [netCDF4.Dataset(f) for f in archive]
    try:
        for name, variable in datasets[0].variables.items():
            parts = []
            for ds in datasets:
                v = ds.variables[name]
                v.set_auto_maskandscale(False)
                parts.append(v[...])
            values[name] = np.concatenate(parts) if "Time" in variable.dimensions else parts[0]
    finally:
        for ds in datasets:
            ds.close()
    return values


@pytest.fixture(scope="module")
def mounts(archive, tmp_path_factory):
    """One mount per (mode, format), made on first use, all unmounted at the end."""
    made = {}

    def get(mode, fmt):
        if (mode, fmt) not in made:
            mountpoint = str(tmp_path_factory.mktemp("readers-%s-v%d" % (mode, fmt)))
            p = subprocess.run([ZARRMOUNT, "mount", os.path.dirname(archive[0]) + "/*.nc", "--concat-dim", "Time",
                                "--no-cache", "--zarr-format", str(fmt)] + (["--decoded"] if mode == "decoded" else [])
                               + [mountpoint], capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, p.stderr
            made[(mode, fmt)] = mountpoint
        return made[(mode, fmt)]

    yield get
    for mountpoint in made.values():
        subprocess.run([ZARRMOUNT, "unmount", mountpoint], capture_output=True, timeout=60)
        assert not os.path.ismount(mountpoint)


def read_with(reader, mountpoint, fmt, variable):
    if reader == "zarr-python":
        import zarr
        return zarr.open_array(store=mountpoint, path=variable, mode="r", zarr_format=fmt)[...]
    if reader == "ncdump":
        return readers.ncdump_values(mountpoint, variable)
    if reader == "gdal":
        return readers.gdal_values(mountpoint, variable)
    if reader == "netCDF4-python":
        return readers.netcdf4_values(mountpoint, variable)
    return readers.tensorstore_values(mountpoint, variable, fmt)


def agrees(actual, wanted):
    actual = np.asarray(actual)
    return actual.shape == wanted.shape and np.array_equal(actual.astype(wanted.dtype), wanted,
                                                           equal_nan=wanted.dtype.kind == "f")


@pytest.mark.parametrize("reader,mode,fmt", sorted(MATRIX), ids=["%s-%s-v%d" % k for k in sorted(MATRIX)])
def test_reader_matrix(reader, mode, fmt, mounts, expected):
    _require({"ncdump": "ncdump", "gdal": "gdalmdiminfo"}.get(reader, "true"))
    mountpoint = mounts(mode, fmt)
    results = {}
    for variable in VARIABLES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results[variable] = agrees(read_with(reader, mountpoint, fmt, variable), expected[variable])
        except (readers.ReaderError, ValueError, RuntimeError, KeyError, OSError) as error:
            results[variable] = error
    compressed = [v for v in VARIABLES if v != "Time"]  # Time is stored without codecs
    if MATRIX[(reader, mode, fmt)]:
        assert all(r is True for r in results.values()), results
    else:
        # the table says "no": the encoded variables must fail or come back wrong, never pass
        assert not any(results[v] is True for v in compressed), results


def test_ncdump_of_the_decoded_mount_prints_what_ncdump_of_the_originals_prints(archive, mounts):
    _require("ncdump")
    mountpoint = mounts("decoded", 2)
    header = readers.ncdump_header(mountpoint)
    for line in ["Time = 3 ;", "south_north = 250 ;", "float T2(Time, south_north, west_east) ;"]:
        assert line in header, header[:2000]
    for variable in ["T2", "U", "lat"]:
        through_mount = readers.ncdump_values(mountpoint, variable)
        originals = [readers.ncdump_values(f, variable) for f in archive]
        want = np.concatenate(originals) if variable != "lat" else originals[0]
        np.testing.assert_array_equal(through_mount, want, err_msg=variable)


def test_gdalmdimtranslate_copies_a_variable_of_the_decoded_mount(mounts, expected, tmp_path):
    _require("gdalmdimtranslate")
    import netCDF4
    mountpoint = mounts("decoded", 2)
    info = readers.gdal_info(mountpoint)
    assert {"T2", "U", "lat"} <= {a["name"] if isinstance(a, dict) else a for a in info.get("arrays", {})}, info.keys()
    out = tmp_path / "t2.nc"
    p = subprocess.run(["gdalmdimtranslate", "-array", "T2", mountpoint, str(out)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0 and "ERROR" not in p.stderr, p.stderr
    with netCDF4.Dataset(str(out)) as ds:
        v = ds.variables["T2"]
        v.set_auto_maskandscale(False)
        np.testing.assert_array_equal(v[...], expected["T2"])


@pytest.mark.parametrize("fmt", [2, 3])
def test_tensorstore_reads_every_array_of_the_decoded_mount(fmt, mounts, expected):
    mountpoint = mounts("decoded", fmt)
    for variable, values in expected.items():
        np.testing.assert_array_equal(readers.tensorstore_values(mountpoint, variable, fmt), values, err_msg=variable)


def test_gdal_says_why_it_cannot_read_the_stored_mount(mounts):
    _require("gdalmdiminfo")
    info = readers.gdal_info(mounts("stored", 2))
    assert "Filter shuffle not handled" in info["_stderr"], info["_stderr"][:2000]


@pytest.fixture(scope="module")
def netcdf3_archive(tmp_path_factory):
    """Three daily netCDF-3 (64-bit offset) files and the raw values of their variables."""
    import netCDF4
    from test_netcdf3 import write_day
    require_fuse()
    directory = tmp_path_factory.mktemp("reader-netcdf3")
    files = [str(directory / ("day_%02d.nc" % k)) for k in range(3)]
    for k, path in enumerate(files):
        write_day(path, k, "NETCDF3_64BIT_OFFSET")
    datasets = [netCDF4.Dataset(f) for f in files]
    try:
        for ds in datasets:
            for v in ds.variables.values():
                v.set_auto_maskandscale(False)
        values = {name: np.concatenate([ds[name][...] for ds in datasets]) if "time" in datasets[0][name].dimensions
                  else datasets[0][name][...] for name in NETCDF3_VARIABLES}
    finally:
        for ds in datasets:
            ds.close()
    return files, values


@pytest.mark.parametrize("reader,fmt", sorted(MATRIX_NETCDF3), ids=["%s-v%d" % k for k in sorted(MATRIX_NETCDF3)])
def test_reader_matrix_for_netcdf3_archives(reader, fmt, netcdf3_archive, tmp_path):
    _require({"ncdump": "ncdump", "gdal": "gdalmdiminfo"}.get(reader, "true"))
    files, expected_values = netcdf3_archive
    mountpoint = str(tmp_path / "mnt")
    os.mkdir(mountpoint)
    p = subprocess.run([ZARRMOUNT, "mount", *files, "--concat-dim", "time", "--no-cache", "--zarr-format", str(fmt),
                        mountpoint], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    try:
        results = {}
        for variable in NETCDF3_VARIABLES:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    results[variable] = agrees(read_with(reader, mountpoint, fmt, variable), expected_values[variable])
            except (readers.ReaderError, ValueError, RuntimeError, KeyError, OSError) as error:
                results[variable] = error
        if MATRIX_NETCDF3[(reader, fmt)]:
            assert all(r is True for r in results.values()), results
        else:
            assert not any(r is True for r in results.values()), results
    finally:
        subprocess.run([ZARRMOUNT, "unmount", mountpoint], capture_output=True, timeout=60)
        assert not os.path.ismount(mountpoint)


def _netcdf_c_archive(directory, fmt):
    """A netCDF file with what netCDF-C's Zarr reader stumbles on: WRF's `Times` (char), a 0-d
    `crs`, a record coordinate chunked by 512 along 3 records, a compressed variable chunked
    likewise, and (netCDF-4) a variable-length string, which no spelling serves to it."""
    import netCDF4
    path = str(directory / ("netcdf-c-%s.nc" % fmt))
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("Time", None)
        ds.createDimension("DateStrLen", 19)
        ds.createDimension("x", 4)
        times = ds.createVariable("Times", "S1", ("Time", "DateStrLen"))
        times[:] = netCDF4.stringtochar(np.array(["2020-01-0%d_00:00:00" % d for d in (1, 2, 3)], "S19"))
        crs = ds.createVariable("crs", "i4", ())
        crs[...] = 7
        crs.grid_mapping_name = "lambert_conformal_conic"
        time = ds.createVariable("time", "f8", ("Time",))
        time[:] = [0.5, 1.5, 2.5]
        time.units = "days since 2020-01-01"
        netcdf4 = fmt == "NETCDF4"
        extra = {"zlib": True, "chunksizes": (512,)} if netcdf4 else {}
        level = ds.createVariable("level", "i2", ("Time",), **extra)
        level[:] = [5, -6, 7]
        t2 = ds.createVariable("T2", "f4", ("Time", "x"), **({"zlib": True, "chunksizes": (1, 4)} if netcdf4 else {}))
        t2[:] = np.arange(12, dtype="f4").reshape(3, 4) / 3
        if netcdf4:
            names = ds.createVariable("station", str, ("x",))
            names[:] = np.array(["a", "bb", "ccc", "dddd"], dtype=object)
    return path


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_64BIT_OFFSET"])
def test_ncdump_reads_a_reader_netcdf_c_mount_as_it_reads_the_original(tmp_path, fmt):
    """Debian's ncdump (netCDF-C 4.9) stops at the first array it cannot read, so one `Times` or
    `crs` made a whole store unreadable to it (issue 16). `--reader netcdf-c` spells the store its
    way, decoded: every variable prints what ncdump prints from the original file; a
    variable-length string is left out by name. Without the option, ncdump fails on the store."""
    _require("ncdump")
    require_fuse()
    original = _netcdf_c_archive(tmp_path, fmt)
    mountpoints = []
    try:
        def mount(*flags):
            mountpoint = str(tmp_path / ("mnt%d" % len(mountpoints)))
            os.makedirs(mountpoint)
            p = subprocess.run([ZARRMOUNT, "mount", original, "--no-cache", *flags, mountpoint],
                               capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, p.stderr
            mountpoints.append(mountpoint)
            return mountpoint, p.stderr

        spelled, warnings_text = mount("--reader", "netcdf-c")
        for variable in ["Times", "crs", "time", "level", "T2"]:
            through_mount = readers.ncdump_values(spelled, variable)
            want = readers.ncdump_values(original, variable)
            np.testing.assert_array_equal(np.ravel(through_mount), np.ravel(want), err_msg=variable)
        header = readers.ncdump_header(spelled)
        assert "char Times(Time, DateStrLen) ;" in header and "crs:grid_mapping_name" in header, header
        if fmt == "NETCDF4":
            assert "station left out" in warnings_text and "variable-length strings" in warnings_text, warnings_text
            assert "station" not in header
        plain, _ = mount("--decoded")
        with pytest.raises(readers.ReaderError):
            readers.ncdump_values(plain, "T2")
        empty = tmp_path / "v3"
        empty.mkdir()
        p = subprocess.run([ZARRMOUNT, "mount", original, "--reader", "netcdf-c", "--zarr-format", "3", str(empty)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0 and "--reader netcdf-c spells Zarr v2" in p.stderr, p.stderr
    finally:
        for mountpoint in mountpoints:
            subprocess.run([ZARRMOUNT, "unmount", mountpoint], capture_output=True, timeout=60)
            assert not os.path.ismount(mountpoint)
