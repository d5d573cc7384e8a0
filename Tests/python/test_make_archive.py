"""tools/make-archive.py writes the WRF-like daily archive the benchmarks and acceptance tests use."""
import hashlib
import os
import subprocess
import sys

import netCDF4
import numpy as np
import pytest
import xarray as xr

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "make-archive.py")
DAYS = ["2060-01-01", "2060-01-02", "2060-01-03"]


def make(outdir, days=3, start="2060-01-01"):
    subprocess.run([sys.executable, TOOL, str(outdir), "--days", str(days), "--start", start, "--jobs", "2"],
                   check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return [os.path.join(outdir, "WRFDS_%s.nc" % d) for d in DAYS[:days]]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make(tmp_path_factory.mktemp("archive"))


def test_files_and_sizes(archive):
    for p in archive:
        assert os.path.exists(p)
        assert 1_000_000 < os.path.getsize(p) < 10_000_000  # "a few MB"


def test_dimensions_and_variables(archive):
    with xr.open_dataset(archive[0]) as ds:
        assert dict(ds.sizes) == {"Time": 1, "interp_levels": 9, "south_north": 250, "west_east": 320,
                                  "soil_layers_stag": 4}
        assert len(ds.data_vars) == 39
        assert set(ds.coords) == {"Time", "interp_levels"}
        assert all(v.dtype == np.float32 for v in ds.data_vars.values())
        assert ds["U"].dims == ("Time", "interp_levels", "south_north", "west_east")
        assert ds["TSLB"].dims == ("Time", "soil_layers_stag", "south_north", "west_east")
        assert ds["T2"].dims == ("Time", "south_north", "west_east")
        assert ds["lat"].dims == ("south_north", "west_east")
        assert set(ds.attrs) >= {"contact", "data", "date", "format", "info"}
        for v in ds.data_vars.values():
            assert "units" in v.attrs and "description" in v.attrs


def test_one_compressed_chunk_per_variable(archive):
    with netCDF4.Dataset(archive[0]) as nc:
        assert nc.dimensions["Time"].isunlimited()
        n = 0
        for name, v in nc.variables.items():
            if name in ("Time", "interp_levels"):
                continue
            n += 1
            want = [1 if d == "Time" else len(nc.dimensions[d]) for d in v.dimensions]
            assert v.chunking() == want, name
            f = v.filters()
            assert f["zlib"] and f["shuffle"] and f["complevel"] == 4, (name, f)
        assert n == 39
        assert nc["Time"].units == "hours since 2060-01-01 00:00:00"
        assert nc["Time"].dtype == np.int32


def test_values_differ_by_day(archive):
    parts = [xr.open_dataset(p, decode_times=False) for p in archive]  # (open_mfdataset would need dask)
    with xr.concat(parts, dim="Time", data_vars="minimal", coords="minimal", compat="override") as ds:
        assert list(ds["Time"].values) == [0, 24, 48]
        for name in ("T2", "U", "TSLB", "PCPT"):
            a = ds[name].isel(Time=0).values
            for i in (1, 2):
                b = ds[name].isel(Time=i).values
                assert not np.array_equal(a, b), name
            assert np.isfinite(a).all()
        # lat/lon are static
        np.testing.assert_array_equal(ds["lat"].values, parts[2]["lat"].values)
    for p in parts:
        p.close()


def test_deterministic(archive, tmp_path):
    again = make(tmp_path, days=1)[0]

    def digest(p):
        with open(p, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    assert digest(again) == digest(archive[0])
