"""Single files: what xarray reads from the original (issue 15, "Single files").

Each case writes one small HDF5/netCDF-4 file (h5py or netCDF4-python) in tmp_path with one trait
that third-party archives have, scans it with `zarrmount scan FILE --refs OUT.json`, and holds the
reference dataset against `xr.open_dataset(original)` (the netcdf4 engine, as xarray picks by
default): variables, dimensions, attributes, dtypes and values bit for bit, decoded and raw.
"""
import os
import warnings

import numpy as np
import pytest

from conftest import Allow, compare_datasets, groups_of, left_out, open_original, open_refs, require_ok, run_vz

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")


def scan(path, tmp_path, ok=(0,)):
    out = str(tmp_path / (os.path.basename(str(path)) + ".refs.json"))
    p = run_vz(["scan", str(path), "--refs", out])
    require_ok(p, "scan %s" % path, ok)
    return out, p


def assert_like_xarray(path, tmp_path, allow=None, groups=None):
    """The scanned refs open in xarray as the original does, for every group, decoded and raw."""
    out, p = scan(path, tmp_path)
    allow = allow or Allow(left_out_text=left_out(p))
    for group in groups or groups_of(str(path)):
        for decode_cf in (True, False):
            with open_original(str(path), decode_cf=decode_cf, group=group) as exp, \
                    open_refs(out, decode_cf=decode_cf, group=group) as act:
                without_nc_attributes(exp)
                compare_datasets(exp, act, "%s %s" % (group, "cf" if decode_cf else "raw"), decode_cf, allow)
    return out, p


def without_nc_attributes(ds):
    """xarray's Zarr backend hides every attribute whose name starts with `_nc` in any case
    (`_NCPROPERTIES`, `_NCZARR_ATTR`) that netCDF-C shows; the refs keep them (see attrs_of)."""
    for attrs in [ds.attrs] + [ds[v].attrs for v in ds.variables]:
        for k in [k for k in attrs if k.lower().startswith("_nc")]:
            del attrs[k]


def attrs_of(refs, key):
    import json
    with open(refs) as fh:
        return json.loads(json.load(fh)["refs"][key])


# ------------------------------------------------------------------ reserved attribute names

RESERVED = ("_Format", "_IsNetcdf4", "_SuperblockVersion", "_Codecs", "_ARRAY_DIMENSIONS", "_nczarr_attr",
            "_NCProperties", "_nc3_strict")


def test_reserved_attribute_names_hidden_as_netcdf_c_hides_them(tmp_path):
    """netCDF-C hides its reserved attribute names (case-sensitive) on groups and variables; the
    old upper-case `_NCPROPERTIES` is not one of them and netCDF-C (and h5netcdf) show it."""
    import h5py
    import netCDF4
    path = tmp_path / "reserved.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.title = "reserved"
        nc.createDimension("x", 3)
        v = nc.createVariable("v", "i4", ("x",))
        v[:] = [1, 2, 3]
        g = nc.createGroup("g")
        g.createDimension("y", 2)
        w = g.createVariable("w", "f4", ("y",))
        w[:] = [0.5, 1.5]
    with h5py.File(path, "a") as f:
        for obj in (f, f["v"], f["g"], f["g/w"]):
            for name in RESERVED:
                obj.attrs[name] = np.int32(1)
            obj.attrs["_NCPROPERTIES"] = np.bytes_("version=1|netcdflibversion=4.4.0|hdf5libversion=1.8.12")
    out, _ = assert_like_xarray(path, tmp_path, groups=["/"])
    # (netCDF-C cannot open group g with all of them at once; check its attributes in the refs.)
    for key in (".zattrs", "v/.zattrs", "g/.zattrs", "g/w/.zattrs"):
        attrs = attrs_of(out, key)
        assert "_NCPROPERTIES" in attrs, key
        assert not [n for n in RESERVED if n in attrs and n != "_ARRAY_DIMENSIONS"], (key, attrs)
    assert attrs_of(out, "g/w/.zattrs")["_ARRAY_DIMENSIONS"] == ["y"]
