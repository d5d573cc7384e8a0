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


# ------------------------------------------------------------------ fixed-length string attributes

def write_fixed_string_attributes(path):
    """Fixed-length string attributes of each padding (null-terminated, null-padded, space-padded),
    scalar and as arrays, with embedded NULs and trailing spaces, and a space-padded dataset."""
    import h5py
    values = [b"a\0b ", b"ab \0 ", b" \0\0", b"xy  ", b"title"]
    with h5py.File(path, "w") as f:
        d = f.create_dataset("x", data=np.arange(3, dtype="i4"))
        for pad, name in ((h5py.h5t.STR_NULLTERM, "nullterm"), (h5py.h5t.STR_NULLPAD, "nullpad"),
                          (h5py.h5t.STR_SPACEPAD, "spacepad")):
            tid = h5py.h5t.C_S1.copy()
            tid.set_size(6)
            tid.set_strpad(pad)
            filler = b" " if pad == h5py.h5t.STR_SPACEPAD else b"\0"
            raw = np.array([(v + filler * 6)[:6] for v in values], dtype="S6")
            for shape, suffix in (((), "_scalar"), ((1,), "_one"), ((5,), "_five"), ((2, 2), "_2d")):
                space = h5py.h5s.create_simple(shape) if shape else h5py.h5s.create(h5py.h5s.SCALAR)
                for target in (d.id, f.id):
                    attr = h5py.h5a.create(target, (name + suffix).encode(), tid, space)
                    count = int(np.prod(shape)) if shape else 1
                    attr.write(raw[:count].reshape(shape) if shape else raw[1:2].reshape(()), mtype=tid)
            if pad == h5py.h5t.STR_SPACEPAD:
                clean = np.array([v.replace(b"\0", b"") for v in values], dtype="S6")
                data = np.array([(v + b" " * 6)[:6] for v in clean], dtype="S6")
                ds = h5py.h5d.create(f.id, b"spacepadded", tid, h5py.h5s.create_simple((5,)))
                ds.write(h5py.h5s.ALL, h5py.h5s.ALL, data, mtype=tid)


def test_fixed_string_attributes_keep_padding_as_netcdf_c_reads_them(tmp_path):
    """netCDF-C reads a scalar fixed-length string attribute as text (netCDF4-python drops its
    NULs, keeps its spaces), and an array of them as strings each ending at its first NUL, spaces
    kept, whatever the padding the file declares."""
    path = tmp_path / "fixed_strings.h5"
    write_fixed_string_attributes(path)
    assert_like_xarray(path, tmp_path, allow=Allow(fixed_strings={"spacepadded"}))


# ------------------------------------------------------------------ attributes of user-defined types

def test_attributes_of_uncommitted_user_defined_types_left_out_as_netcdf_c_does(tmp_path):
    """netCDF-C shows compound, enum, opaque, variable-length and array-typed attributes only when
    their native type equals a type committed in the file: h5py's multi-dimensional array-typed
    attributes (which were served nested), structured values, complex numbers and booleans are left
    out; committed compound and enum attributes, and those whose type matches one (big-endian
    compounds too), are shown as xarray shows them."""
    import h5py
    path = tmp_path / "user_types.h5"
    point = np.dtype([("a", "<i4"), ("b", "<f8")])
    big = np.dtype([("a", ">i4"), ("b", ">f8")])
    with h5py.File(path, "w") as f:
        f["point_t"] = point
        f["state_t"] = h5py.enum_dtype({"SOLID": 0, "LIQUID": 1}, basetype="i1")
        d = f.create_dataset("x", data=np.arange(3, dtype="i4"))
        for obj in (f, d):
            obj.attrs.create("grid", np.arange(12, dtype="i4").reshape(2, 2, 3), dtype=np.dtype(("i4", (2, 3))))
            obj.attrs.create("grid1", np.arange(6, dtype="i4").reshape(1, 2, 3), dtype=np.dtype(("i4", (2, 3))))
            obj.attrs.create("pair", np.array([(1, 2.5), (3, 4.5)], dtype=point))
            obj.attrs.create("pair_be", np.array([(1, 2.5)], dtype=big))
            obj.attrs.create("flag", np.array([True, False]))
            obj.attrs.create("z", np.array([1 + 2j]))
            obj.attrs.create("ragged", np.array([np.arange(2), np.arange(3)], dtype=object), dtype=h5py.vlen_dtype("i4"))
            obj.attrs.create("state", np.array([0, 1], "i1"), dtype=h5py.enum_dtype({"SOLID": 0, "LIQUID": 1}, basetype="i1"))
            obj.attrs.create("blob", np.array([b"abcd"], dtype="V4"))
            obj.attrs.create("named_pair", np.array([(5, 6.5), (7, 8.5)], dtype=point), dtype=f["point_t"])
            obj.attrs.create("named_state", np.array([1, 0], "i1"), dtype=f["state_t"])
            obj.attrs.create("triple", np.array([(1, 2, 3.0)], dtype=[("p", "i2"), ("q", "i2"), ("r", "f4")]))
            obj.attrs["plain"] = np.float32(1.5)
    out, _ = assert_like_xarray(path, tmp_path)
    for key in (".zattrs", "x/.zattrs"):
        # (uncommitted pair, pair_be and state match point_t and state_t natively, so netCDF-C shows them)
        assert sorted(k for k in attrs_of(out, key) if k != "_ARRAY_DIMENSIONS") == [
            "named_pair", "named_state", "pair", "pair_be", "plain", "state"]


# ------------------------------------------------------------------ enum variables

def test_enum_variables_carry_no_cf_flags_and_keep_their_names_in_nc_enum(tmp_path):
    """xarray shows an enum variable as its integers with no flag_values/flag_meanings; the enum's
    names and values are kept in `_nc_enum`, which xarray's Zarr backend hides (`_nc*`)."""
    import h5py
    import netCDF4
    path = tmp_path / "enums.nc"
    with netCDF4.Dataset(path, "w") as nc:
        cloud = nc.createEnumType("u1", "cloud_t", {"clear": 0, "cumulus": 1, "missing": 255})
        nc.createDimension("t", 4)
        v = nc.createVariable("cloud", cloud, ("t",), fill_value=255)
        v.long_name = "cloud type"
        v[:] = np.array([0, 1, 255, 1], "u1")
    with h5py.File(path, "a") as f:
        f.create_dataset("phase", data=np.array([2, 0, 1], "i2"),
                         dtype=h5py.enum_dtype({"SOLID": 0, "LIQUID": 1, "GAS": 2}, basetype="i2"))
    out, _ = assert_like_xarray(path, tmp_path)
    assert attrs_of(out, "cloud/.zattrs")["_nc_enum"] == {"clear": 0, "cumulus": 1, "missing": 255}
    assert attrs_of(out, "phase/.zattrs")["_nc_enum"] == {"SOLID": 0, "LIQUID": 1, "GAS": 2}


# ------------------------------------------------------------------ soft links and hard-link aliases

def test_datasets_and_groups_reached_through_soft_links_and_second_hard_links(tmp_path):
    """netCDF-C lists a dataset or group under every name that reaches it: soft links (absolute and
    relative) and second hard links, with everything inside a linked group."""
    import h5py
    path = tmp_path / "links.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("arr", data=np.arange(6, dtype="i4"))
        f["arr_soft"] = h5py.SoftLink("/arr")
        pep = f.create_group("pep")
        pep.create_dataset("pep3", data=np.arange(4, dtype="f4") + 0.5)
        pep["near"] = h5py.SoftLink("pep3")
        f["pep_soft"] = h5py.SoftLink("/pep")
        f["pep_hard"] = pep
    assert_like_xarray(path, tmp_path)


def test_a_pipeline_zarr_cannot_decode_is_left_out_with_a_warning(tmp_path):
    """Issue 15: Fletcher-32 applied before shuffle (as hdf5-json's dset_gzip.h5 writes it) leaves a buffer of the
    data and a 4-byte checksum, which numcodecs' shuffle refuses: the variable is left out with a warning that says
    why, never served as chunks no reader can decode; the variables beside it are served."""
    import h5py
    path = str(tmp_path / "fletcher_then_shuffle.h5")
    data = np.arange(200, dtype="<f8").reshape(20, 10)
    with h5py.File(path, "w") as f:
        f.create_dataset("good", data=data, chunks=(10, 10), shuffle=True, compression="gzip", fletcher32=True)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((10, 10))
        dcpl.set_fletcher32()
        dcpl.set_shuffle()
        dcpl.set_deflate(4)
        space = h5py.h5s.create_simple((20, 10))
        dset = h5py.h5d.create(f.id, b"odd", h5py.h5t.IEEE_F64LE, space, dcpl=dcpl)
        dset.write(h5py.h5s.ALL, h5py.h5s.ALL, data)
    with h5py.File(path) as f:
        assert list(f["odd"]._filters) == ["fletcher32", "shuffle", "gzip"], list(f["odd"]._filters)
    out = str(tmp_path / "refs.json")
    p = run_vz(["scan", path, "--refs", out, "--no-cache"])
    require_ok(p, "scan")
    assert "odd" in p.stderr and "shuffle" in p.stderr and "left out" in p.stderr, p.stderr[-2000:]
    ds = open_refs(out)
    assert "odd" not in ds.variables
    np.testing.assert_array_equal(ds["good"].values, data)


def test_phony_dimensions_skip_datasets_netcdf_cannot_read(tmp_path):
    """Issue 15: netCDF-C skips datasets of array and reference types before it numbers phony dimensions (as
    PyTables' ex-noattr.h5 shows); an opaque one it numbers. The names match netCDF4's on the same file."""
    import h5py
    import netCDF4
    path = str(tmp_path / "phony.h5")
    with h5py.File(path, "w") as f:
        g = f.create_group("columns")
        g.create_dataset("pressure", (4,), dtype=np.dtype(("f8", (2,))))
        g.create_dataset("name", data=np.array([b"ab"] * 5, dtype="V2"))
        g.create_dataset("refs", (6,), dtype=h5py.ref_dtype)
        g.create_dataset("ok", data=np.arange(7.0))
        f.create_dataset("table", data=np.arange(4.0))
        f.create_dataset("t3", data=np.zeros((3, 7)))
    expected = {}
    with netCDF4.Dataset(path) as nc:
        for name, var in nc.variables.items():
            expected[name] = list(var.dimensions)
        for name, var in nc.groups["columns"].variables.items():
            expected["columns/" + name] = list(var.dimensions)
    out = str(tmp_path / "refs.json")
    require_ok(run_vz(["scan", path, "--refs", out, "--no-cache"]), "scan")
    import json
    with open(out) as fh:
        refs = json.load(fh)["refs"]
    for name, dims in expected.items():
        assert json.loads(refs[name + "/.zattrs"])["_ARRAY_DIMENSIONS"] == dims, (name, refs[name + "/.zattrs"], dims)
    assert expected["table"] == ["phony_dim_4"], expected


# ------------------------------------------------------------------ a codec chain is proven by decoding a chunk

def test_filters_that_do_not_decode_leave_the_variable_out_with_a_warning(tmp_path):
    """A variable whose filter pipeline says zlib while its chunks are not zlib streams (a
    corrupted or mislabelled file) would fail every read with "unknown compression method". The
    scan decodes one chunk per variable: such a variable is left out with a warning naming the
    file, the variable and the error; the others are served and read right."""
    import h5py
    import json
    path = tmp_path / "mislabelled.h5"
    good = np.arange(200, dtype="<i4").reshape(10, 20)
    with h5py.File(path, "w") as f:
        f.create_dataset("good", data=good, chunks=(5, 20), compression="gzip")
        f.create_dataset("bad", data=good * 3, chunks=(5, 20), compression="gzip")
    with h5py.File(path, "r") as f:
        info = [f["bad"].id.get_chunk_info(i) for i in range(f["bad"].id.get_num_chunks())]
    with open(path, "r+b") as fh:
        for chunk in info:  # a zlib header whose compression method is 7: "unknown compression method"
            fh.seek(chunk.byte_offset)
            fh.write(bytes([0x77, 0x01]))
    out, p = scan(path, tmp_path)
    assert "bad left out" in p.stderr and "does not decode" in p.stderr and "mislabelled.h5" in p.stderr, p.stderr
    assert "incorrect header check" in p.stderr or "unknown compression method" in p.stderr, p.stderr
    keys = json.load(open(out))["refs"]
    assert "bad/.zarray" not in keys and "good/.zarray" in keys
    with open_refs(out, decode_cf=False) as act:
        np.testing.assert_array_equal(act["good"].values, good)


def test_chains_proven_while_scanning_still_leave_a_mislabelled_variable_out(tmp_path):
    """The first file listed has its chains proven while the others are scanned; a chunk that
    does not decode there is proven again after the combine, which leaves the variable out with
    the same warning. The log says how many chunks were proven ahead: one, good's (time, the
    concat dimension's coordinate, is inlined and has no chunk to prove)."""
    import h5py
    import json
    import xarray as xr
    paths = []
    for day in range(3):
        path = str(tmp_path / ("mislabelled-%d.nc" % day))
        ds = xr.Dataset({"good": (("time", "x"), np.full((1, 20), day, dtype="<i4")),
                         "bad": (("time", "x"), np.full((1, 20), day * 3, dtype="<i4"))},
                        coords={"time": ("time", np.array([day], dtype="<f8"))})
        encoding = {name: {"zlib": True, "chunksizes": (1, 20)} for name in ("good", "bad")}
        ds.to_netcdf(path, engine="netcdf4", encoding=encoding, unlimited_dims=["time"])
        with h5py.File(path, "r") as f:
            chunk = f["bad"].id.get_chunk_info(0)
        with open(path, "r+b") as fh:
            fh.seek(chunk.byte_offset)
            fh.write(bytes([0x77, 0x01]))  # compression method 7: "unknown compression method"
        paths.append(path)
    out = str(tmp_path / "refs.json")
    p = run_vz(["scan"] + paths + ["--concat-dim", "time", "--refs", out, "--no-cache", "--log-level", "debug"])
    require_ok(p, "scan")
    warnings = [line for line in p.stderr.splitlines() if "bad left out" in line]
    assert len(warnings) == 1 and "does not decode" in warnings[0] and "mislabelled-0.nc" in warnings[0], p.stderr[-3000:]
    ahead = [line for line in p.stderr.splitlines() if "chains proven while the files were scanned" in line]
    assert len(ahead) == 1 and "chunks=1" in ahead[0], p.stderr[-3000:]
    refs = json.load(open(out))["refs"]
    assert "bad/.zarray" not in refs and "good/.zarray" in refs
    with open_refs(out, decode_cf=False) as act:
        np.testing.assert_array_equal(act["good"].values, np.repeat(np.arange(3, dtype="<i4"), 20).reshape(3, 20))


# ------------------------------------------------------------------ external links

def test_external_links_are_not_followed_and_say_so(tmp_path):
    """netCDF-C follows an external link into another file. A scan serves only the files it was
    given (a link can name any path on the machine), so what the link reaches is left out with a
    warning naming the link, its target and the other file; the rest is served as xarray reads it.
    Before: the linked variable vanished without a word."""
    import h5py
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("far", data=np.arange(6, dtype="<f8"))
    path = tmp_path / "linking.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("near", data=np.arange(4, dtype="<i2"))
        # named after "near": netCDF-C numbers the phony dimensions of what the link reaches,
        # which a scan that does not open the other file cannot (the warning says so)
        f["zfar"] = h5py.ExternalLink("other.h5", "/far")
    import netCDF4
    with netCDF4.Dataset(str(path)) as nc:
        assert "zfar" in nc.variables, "netCDF-C follows the link (the premise of this test)"
    out, p = assert_like_xarray(path, tmp_path)
    assert "/zfar left out: an external link to /far in other.h5" in p.stderr, p.stderr
    with open_refs(out, decode_cf=False) as act:
        assert list(act.variables) == ["near"]


# ------------------------------------------------------------------ booleans and empty attributes

def test_h5py_booleans_are_int8_as_xarray_shows_them(tmp_path):
    """h5py stores numpy booleans as an enum FALSE=0/TRUE=1 of int8; netCDF-C reads an enum, and xarray
    shows int8. The mount serves int8 with the names in `_nc_enum` (was: bool, a dtype xarray never shows)."""
    import h5py
    import json
    path = tmp_path / "booleans.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("flags", data=np.array([True, False, True, True]))
    out, _ = assert_like_xarray(path, tmp_path)
    assert json.loads(json.load(open(out))["refs"]["flags/.zarray"])["dtype"] == "|i1"
    assert attrs_of(out, "flags/.zattrs")["_nc_enum"] == {"FALSE": 0, "TRUE": 1}


def test_attributes_with_a_null_dataspace_read_as_netcdf_c_reads_them(tmp_path):
    """An attribute with a null dataspace (h5py.Empty) holds no values: netCDF-C gives an empty array of its
    type, and an empty text for strings (was: an empty text for every type)."""
    import h5py
    path = tmp_path / "empty_attributes.h5"
    with h5py.File(path, "w") as f:
        f.attrs["nothing_f8"] = h5py.Empty("<f8")
        f.attrs["nothing_i4"] = h5py.Empty("<i4")
        f.attrs["nothing_text"] = h5py.Empty("S4")
        f.create_dataset("x", data=np.arange(3, dtype="<i2")).attrs["nothing"] = h5py.Empty("<f4")
    out, _ = assert_like_xarray(path, tmp_path)
    assert attrs_of(out, ".zattrs")["nothing_f8"] == [] and attrs_of(out, "x/.zattrs")["nothing"] == []


# ------------------------------------------------------------------ dimension naming as netCDF-C does it

def test_several_scales_on_one_axis_name_it_by_the_last(tmp_path):
    """An axis with two dimension scales attached (pyfive's dim_scales.hdf5): netCDF-C's
    H5DSiterate_scales visitor keeps the last, so the axis is x2 (was: x1)."""
    import h5py
    path = tmp_path / "two_scales.h5"
    with h5py.File(path, "w") as f:
        for name, n in (("z1", 4), ("y1", 3), ("x1", 2), ("x2", 2)):
            f.create_dataset(name, data=np.arange(n, dtype="<f4")).make_scale(name)
        d = f.create_dataset("data", data=np.arange(24, dtype="<i4").reshape(4, 3, 2))
        d.dims[0].attach_scale(f["z1"])
        d.dims[1].attach_scale(f["y1"])
        d.dims[2].attach_scale(f["x1"])
        d.dims[2].attach_scale(f["x2"])
    out, _ = assert_like_xarray(path, tmp_path)
    assert attrs_of(out, "data/.zattrs")["_ARRAY_DIMENSIONS"] == ["z1", "y1", "x2"]


def test_netcdf_c_names_for_non_coordinate_and_multi_dimensional_coordinate_variables(tmp_path):
    """netCDF-C writes a variable that shares a dimension's name without standing for it as
    `_nc4_non_coord_<name>` (served as <name>; was: under the prefixed name), and a coordinate
    variable of two dimensions (a char coordinate z(z, string3)) as a dimension scale whose axes
    are named by `_Netcdf4Coordinates` (was: phony_dim_N); a fixed-string fill value is kept."""
    import netCDF4
    path = tmp_path / "netcdf_names.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("x", 2)
        nc.createDimension("y", 5)
        nc.createDimension("z", 3)
        nc.createDimension("string3", 3)
        y = nc.createVariable("y", "f8", ("x", "y"))
        y[:] = np.arange(10.0).reshape(2, 5)
        z = nc.createVariable("z", "S1", ("z", "string3"), fill_value=b"X")
        z[:] = netCDF4.stringtochar(np.array([b"ab", b"cde", b"f"], dtype="S3"))
        nc.createVariable("v", "i2", ("z",))[:] = [1, 2, 3]
    import h5py
    with h5py.File(path, "r") as f:
        assert "_nc4_non_coord_y" in f, "netCDF-C's spelling (the premise of this test)"
    out, _ = assert_like_xarray(path, tmp_path)
    assert attrs_of(out, "y/.zattrs")["_ARRAY_DIMENSIONS"] == ["x", "y"]
    assert attrs_of(out, "z/.zattrs")["_ARRAY_DIMENSIONS"] == ["z", "string3"]



def test_shuffle_after_compression_is_left_out_as_zarr_readers_cannot_undo_it(tmp_path):
    """jhdf's issue318_example.hdf5 deflates, then shuffles the compressed bytes: HDF5 leaves the
    trailing bytes of a buffer that is not a whole number of elements, numcodecs' Shuffle refuses
    it, so every Zarr read failed. The scan's proof decodes as Zarr readers do and leaves the
    variable out with a warning; a variable filtered the usual way (shuffle, then deflate) is
    served and read right."""
    import h5py
    import json
    path = tmp_path / "deflate_then_shuffle.h5"
    values = np.arange(1000, dtype="<i8") * 7919
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((1000,))
        dcpl.set_deflate(1)
        dcpl.set_shuffle()  # after deflate: the pipeline's second filter
        space = h5py.h5s.create_simple((1000,))
        h5py.h5d.create(f.id, b"odd", h5py.h5t.STD_I64LE, space, dcpl=dcpl).write(h5py.h5s.ALL, h5py.h5s.ALL, values)
        f.create_dataset("usual", data=values, chunks=(1000,), shuffle=True, compression="gzip")
    with h5py.File(path, "r") as f:
        assert [name for name, _ in f["odd"]._filters.items()] == ["gzip", "shuffle"], dict(f["odd"]._filters)
        np.testing.assert_array_equal(f["odd"][:], values)
        stored = f["odd"].id.get_chunk_info(0).size
    assert stored % 8 != 0, "the premise: a compressed chunk that is not a whole number of 8-byte elements"
    out, p = scan(path, tmp_path)
    assert "odd left out" in p.stderr and "whole number of 8-byte elements" in p.stderr, p.stderr
    keys = json.load(open(out))["refs"]
    assert "odd/.zarray" not in keys
    with open_refs(out, decode_cf=False) as act:
        np.testing.assert_array_equal(act["usual"].values, values)


# ------------------------------------------------------------------ big-endian compounds

def test_big_endian_compounds_read_through_a_decoded_mount(tmp_path):
    """zarr-python 3 cannot read a structured type with big-endian members (hdf5-json's
    committed_type.h5, netCDF-C's ref_tst_compounds.nc): xarray fails on their values. A --decoded
    mount declares the members little-endian and swaps each element's bytes as its chunks are read,
    chunked and compressed or contiguous; xarray then reads what it reads from the original. The
    references keep the file's bytes and big-endian spelling."""
    import h5py
    import json
    from conftest import open_virtual, require_fuse
    require_fuse()
    path = tmp_path / "big_endian_compounds.h5"
    # (no string member: netCDF-C misreads those, docs/semantics.md)
    station = np.dtype([("id", ">i4"), ("flag", "u1"), ("temperature", ">f8"), ("counts", ">u2")])
    values = np.zeros(37, dtype=station)
    values["id"] = np.arange(37) * 1001
    values["flag"] = np.arange(37) % 3
    values["temperature"] = np.linspace(-40.25, 51.5, 37)
    values["counts"] = np.arange(37) * 257
    with h5py.File(path, "w") as f:
        f["station_t"] = station  # committed, so netCDF-C shows the type
        f.create_dataset("chunked", data=values, dtype=f["station_t"], chunks=(10,), compression="gzip", shuffle=True)
        f.create_dataset("contiguous", data=values[::-1], dtype=f["station_t"])
    out, p = scan(path, tmp_path)
    zarray = json.loads(json.load(open(out))["refs"]["chunked/.zarray"])
    assert ["id", ">i4"] in zarray["dtype"], zarray["dtype"]
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    m = run_vz(["mount", str(path), "--decoded", "--no-cache", str(mountpoint)], timeout=120)
    require_ok(m, "mount --decoded")
    try:
        with open(mountpoint / "chunked" / ".zarray") as fh:
            assert ["id", "<i4"] in json.load(fh)["dtype"]
        for decode_cf in (True, False):
            with open_original(str(path), decode_cf=decode_cf) as exp, open_virtual("mount", str(mountpoint), 2, decode_cf) as act:
                for name, written in (("chunked", values), ("contiguous", values[::-1])):
                    e, a = exp[name].values, act[name].values
                    assert a.dtype.names == e.dtype.names == written.dtype.names, (a.dtype, e.dtype)
                    for field in e.dtype.names:
                        np.testing.assert_array_equal(e[field], written[field], err_msg="the original, %s.%s" % (name, field))
                        np.testing.assert_array_equal(a[field], e[field], err_msg="%s.%s" % (name, field))
    finally:
        u = run_vz(["unmount", str(mountpoint)], timeout=60)
        assert u.returncode == 0, u.stderr


def test_an_extensible_array_with_paged_data_blocks_in_super_blocks_lists_every_chunk(tmp_path):
    """Past 131,056 chunks (default parameters) an extensible array's super blocks point to data
    blocks of two pages each, and each data block has its own byte of page bitmask: the super
    block's size counted one bit per page over all blocks, so its checksum failed and the scan
    stopped on a valid file. libhdf5's chunk_iter is the oracle."""
    import h5py
    import json
    path = str(tmp_path / "paged-extensible-array.h5")
    count = 140_000
    with h5py.File(path, "w", libver=("latest", "latest")) as f:
        space = h5py.h5s.create_simple((count,), (h5py.h5s.UNLIMITED,))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((1,))
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        h5py.h5d.create(f.id, b"data", h5py.h5t.NATIVE_UINT8, space, dcpl=dcpl)
    expected = {}
    with h5py.File(path, "r") as f:
        f["data"].id.chunk_iter(lambda info: expected.__setitem__("data/%d" % info.chunk_offset[0], [info.byte_offset, info.size]))
    assert len(expected) == count
    refs = str(tmp_path / "refs.json")
    require_ok(run_vz(["scan", path, "--no-cache", "--refs", refs]), "scan of a paged extensible array")
    with open(refs) as f:
        stored = json.load(f)["refs"]
    got = {key: value[1:] for key, value in stored.items() if key.startswith("data/") and not key.startswith("data/.")}
    assert len(got) == count
    assert got == expected


def test_an_extensible_array_skips_the_pages_libhdf5_never_wrote(tmp_path):
    """A paged data block's pages are written only once one of their chunks is; the super block's
    bitmask says which. A sparse write of four chunks in a 400,000-chunk unlimited array leaves
    most pages unwritten (their bytes fail a page's checksum, or lie past the end of the file):
    the scan read every page and stopped on a valid file. libhdf5's chunk_iter is the oracle."""
    import h5py
    import json
    path = str(tmp_path / "sparse-extensible-array.h5")
    count = 400_000
    # Past index 131,060 each data block has two pages; 399,999 is page 0 of block 67 of its super
    # block, whose bit lies in the bitmask's 17th byte (the bits run on across blocks).
    written = [3, 131_100, 262_150, 399_999]
    with h5py.File(path, "w", libver=("latest", "latest")) as f:
        data = f.create_dataset("data", shape=(count,), maxshape=(None,), chunks=(1,), dtype="u1")
        for index in written:
            data[index] = index % 251
    expected = {}
    with h5py.File(path, "r") as f:
        f["data"].id.chunk_iter(lambda info: expected.__setitem__("data/%d" % info.chunk_offset[0], [info.byte_offset, info.size]))
    assert sorted(expected) == sorted("data/%d" % i for i in written)
    refs = str(tmp_path / "refs.json")
    require_ok(run_vz(["scan", path, "--no-cache", "--refs", refs]), "scan of a sparse extensible array")
    with open(refs) as f:
        stored = json.load(f)["refs"]
    got = {key: value[1:] for key, value in stored.items() if key.startswith("data/") and isinstance(value, list)}
    assert got == expected
    # The chunks never written read as the HDF5 fill value (zero), inline: no reference to bytes
    # that are not a chunk.
    unwritten = {value for key, value in stored.items() if key.startswith("data/") and not key.startswith("data/.") and key not in got}
    assert unwritten == {"base64:AA=="}
