"""HDF5 plugin filters as Zarr codecs (issue 16), through real FUSE mounts of tools/make-fixtures.py'
plugins/filters-plugins.h5 (h5py + hdf5plugin): zstd, bzip2, blosc (several compressors and
shuffles), lz4 (HDF5's framing), bitshuffle (none, lz4, zstd), lzf, szip, scale-offset and n-bit.

The oracle is h5py with hdf5plugin loaded. A stored mount gives numcodecs' codec to the filters
numcodecs decodes byte for byte (zstd, bz2, blosc): zarr-python reads them through the mount and
gets h5py's values. The others (HDF5's lz4 framing, lzf, szip, bitshuffle...) have no numcodecs
codec: a stored mount leaves them out with a warning naming the filter and `--decoded`; a
`--decoded` mount serves every one of them, decoded by the daemon.
"""
import contextlib
import json
import os

import numpy as np
import pytest

from conftest import CI, ensure_fixtures, require_fuse, require_ok, run_vz

# HDF5 filter ids numcodecs decodes byte for byte (with libhdf5's shuffle and Fletcher-32).
ZARR_READABLE = {1, 2, 3, 32015, 307, 32001}
# What the stored store's warning calls the others.
DECODED_ONLY = {32004: "lz4", 32000: "lzf", 4: "szip", 32008: "bitshuffle", 6: "scaleoffset", 5: "nbit"}
NUMCODECS_ID = {32015: "zstd", 307: "bz2", 32001: "blosc"}


def _require(condition, message):
    if not condition:
        if CI:
            pytest.fail(message + " (CI=true forbids skipping)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def plugins_file():
    try:
        import hdf5plugin  # noqa: F401 - registers the plugin filters with h5py's libhdf5
    except ImportError:
        _require(False, "hdf5plugin is not installed (tools/requirements.txt)")
    path = os.path.join(ensure_fixtures(), "plugins", "filters-plugins.h5")
    _require(os.path.exists(path), "%s is missing: run tools/make-fixtures.py" % path)
    return path


@pytest.fixture(scope="module")
def oracle(plugins_file):
    """name -> (values h5py reads, HDF5 filter ids in pipeline order) for every filtered variable."""
    import h5py
    import hdf5plugin  # noqa: F401
    variables = {}
    with h5py.File(plugins_file, "r") as f:
        for name, dataset in f.items():
            if "oracle" not in dataset.attrs:
                continue
            plist = dataset.id.get_create_plist()
            ids = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
            values = dataset[()]
            expected = f[dataset.attrs["oracle"]][()]
            np.testing.assert_array_equal(values, expected, err_msg="%s: the fixture's oracle variable" % name)
            variables[name] = (values, ids)
    assert len(variables) >= 30, sorted(variables)
    # Every filter the issue names is in the fixture.
    seen = {i for _, ids in variables.values() for i in ids}
    assert set(DECODED_ONLY) | {32015, 307, 32001} <= seen, seen
    return variables


@contextlib.contextmanager
def mounted(tmp_path, path, flags):
    require_fuse()
    mountpoint = tmp_path / ("mnt-%d" % len(list(tmp_path.glob("mnt-*"))))
    mountpoint.mkdir()
    p = run_vz(["mount", path, *flags, "--no-cache", str(mountpoint)], timeout=120)
    try:
        require_ok(p, "mount %s" % " ".join(flags))
        assert os.path.ismount(str(mountpoint)), p.stderr[-2000:]
        yield str(mountpoint), p
    finally:
        if os.path.ismount(str(mountpoint)):
            u = run_vz(["unmount", str(mountpoint)], timeout=60)
            assert u.returncode == 0, u.stderr
        assert not os.path.ismount(str(mountpoint))


def zarr_readable(ids):
    return all(i in ZARR_READABLE for i in ids)


def warning_for(stderr, name, ids):
    """The stored store's warning about NAME: it names the first decoded-only filter and --decoded."""
    first = next(i for i in ids if i not in ZARR_READABLE)
    lines = [ln for ln in stderr.splitlines() if ln.startswith("warning: %s left out" % name)]
    assert lines, "no warning about %s in:\n%s" % (name, stderr[-3000:])
    line = lines[0]
    assert "%s (HDF5 filter %d)" % (DECODED_ONLY[first], first) in line and "--decoded" in line, line
    return line


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_stored_mount_serves_numcodecs_filters_and_names_the_others(tmp_path, plugins_file, oracle, zarr_format):
    import zarr
    with mounted(tmp_path, plugins_file, ["--zarr-format", str(zarr_format)]) as (mountpoint, p):
        group = zarr.open_group(mountpoint, mode="r", zarr_format=zarr_format)
        served = set(group.array_keys())
        readable = 0
        for name, (values, ids) in sorted(oracle.items()):
            if zarr_readable(ids):
                assert name in served, "%s (filters %s) is not served:\n%s" % (name, ids, p.stderr[-2000:])
                array = group[name]
                assert array.dtype == values.dtype, (name, array.dtype, values.dtype)
                np.testing.assert_array_equal(array[...], values, err_msg="%s through a stored v%d mount" % (name, zarr_format))
                readable += 1
            else:
                assert name not in served, "%s (filters %s) has no numcodecs codec, yet is served" % (name, ids)
                warning_for(p.stderr, name, ids)
        assert readable >= 13, readable  # zstd (3), bzip2 (2), blosc (8)
        # The metadata names numcodecs' codecs, with the filter's settings.
        if zarr_format == 2:
            meta = json.load(open(os.path.join(mountpoint, "zstd", ".zarray")))
            assert meta["compressor"] == {"id": "zstd", "level": 5}, meta
            meta = json.load(open(os.path.join(mountpoint, "bzip2", ".zarray")))
            assert meta["compressor"] == {"id": "bz2", "level": 9}, meta
            meta = json.load(open(os.path.join(mountpoint, "blosc_bitshuffle", ".zarray")))
            assert meta["compressor"] == {"id": "blosc", "cname": "lz4", "clevel": 9, "shuffle": 2, "blocksize": 0}, meta
        else:
            meta = json.load(open(os.path.join(mountpoint, "zstd_shuffle", "zarr.json")))
            names = [codec["name"] for codec in meta["codecs"]]
            assert names == ["bytes", "numcodecs.shuffle", "numcodecs.zstd"], names


def same_values_type(served, original):
    """The served dtype holds the original's values: equal, up to byte order (Zarr v3 keeps it in
    its bytes codec and zarr-python reads in native order; the decoded view serves compound
    members little-endian)."""
    if original.names:
        return served.names == original.names and all(
            served[n].kind == original[n].kind and served[n].itemsize == original[n].itemsize for n in original.names)
    return served.newbyteorder("=") == original.newbyteorder("=")


def left_out_of_v3(name, values, stderr):
    """Structured types have no Zarr v3 data type: such a variable is left out of v3 stores by name."""
    assert values.dtype.names, name
    assert any(line.startswith("warning: %s left out of the Zarr v3 store" % name) and "has no Zarr v3 data type" in line
               for line in stderr.splitlines()), (name, stderr[-2000:])


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_decoded_mount_serves_every_filter_zarrmount_decodes(tmp_path, plugins_file, oracle, zarr_format):
    import zarr
    with mounted(tmp_path, plugins_file, ["--zarr-format", str(zarr_format), "--decoded"]) as (mountpoint, p):
        group = zarr.open_group(mountpoint, mode="r", zarr_format=zarr_format)
        served = set(group.array_keys())
        for name, (values, ids) in sorted(oracle.items()):
            if zarr_format == 3 and values.dtype.names:
                left_out_of_v3(name, values, p.stderr)
                continue
            assert name in served, "%s (filters %s) is not served decoded:\n%s" % (name, ids, p.stderr[-3000:])
            array = group[name]
            if zarr_format == 2:
                meta = json.load(open(os.path.join(mountpoint, name, ".zarray")))
                assert meta["compressor"] is None and meta["filters"] is None, (name, meta)
                assert array.dtype == values.dtype or values.dtype.names, (name, array.dtype, values.dtype)
            assert same_values_type(array.dtype, values.dtype), (name, array.dtype, values.dtype)
            np.testing.assert_array_equal(array[...], values, err_msg="%s through a decoded v%d mount" % (name, zarr_format))
        assert "left out" not in p.stderr.replace("left out of the Zarr v3 store", ""), p.stderr[-3000:]


def test_refs_leave_decoded_only_filters_out_with_the_same_warning(tmp_path, plugins_file, oracle):
    """kerchunk references are read by numcodecs: the same variables are left out, with the same words."""
    out = str(tmp_path / "refs.json")
    p = run_vz(["scan", plugins_file, "--no-cache", "--refs", out], timeout=120)
    require_ok(p, "scan")
    refs = json.load(open(out))["refs"]
    for name, (_, ids) in oracle.items():
        if zarr_readable(ids):
            assert name + "/.zarray" in refs, name
        else:
            assert name + "/.zarray" not in refs, name
            warning_for(p.stderr, name, ids)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_export_decoded_writes_every_filter_decoded_and_stored_export_names_the_others(tmp_path, plugins_file, oracle,
                                                                                       zarr_format):
    """`export --decoded`: a real Zarr store with decoded chunks, readable without any codec; a stored
    export keeps the numcodecs filters encoded and leaves the others out, as a stored mount does."""
    import zarr
    decoded = str(tmp_path / "decoded")
    p = run_vz(["export", plugins_file, "--no-cache", "--decoded", "--zarr", decoded, "--zarr-format", str(zarr_format)],
               timeout=120)
    require_ok(p, "export --decoded")
    assert "left out" not in p.stderr.replace("left out of the Zarr v3 store", ""), p.stderr[-3000:]
    group = zarr.open_group(decoded, mode="r", zarr_format=zarr_format)
    for name, (values, ids) in sorted(oracle.items()):
        if zarr_format == 3 and values.dtype.names:
            left_out_of_v3(name, values, p.stderr)
            continue
        array = group[name]
        if zarr_format == 2:
            assert array.metadata.compressor is None and not array.metadata.filters, (name, array.metadata)
        else:
            assert [codec["name"] for codec in json.load(open(os.path.join(decoded, name, "zarr.json")))["codecs"]] == ["bytes"]
        np.testing.assert_array_equal(array[...], values, err_msg="%s in an exported decoded v%d store" % (name, zarr_format))
    stored = str(tmp_path / "stored")
    p = run_vz(["export", plugins_file, "--no-cache", "--zarr", stored, "--zarr-format", str(zarr_format)], timeout=120)
    require_ok(p, "export")
    group = zarr.open_group(stored, mode="r", zarr_format=zarr_format)
    for name, (values, ids) in sorted(oracle.items()):
        if zarr_readable(ids):
            np.testing.assert_array_equal(group[name][...], values, err_msg="%s in an exported stored store" % name)
        else:
            assert name not in set(group.array_keys()), name
            warning_for(p.stderr, name, ids)


def test_values_libhdf5_converts_are_left_out_and_their_attributes_converted(tmp_path):
    """HDF5 lets a file declare integers narrower than their container (and away from its lowest bit)
    and floats in a format of its own; libhdf5 converts them when it reads. Their bytes are not
    their values: served as whole containers a reader got 65535 for -1 (issue 16's n-bit work found
    it). Without the n-bit filter, which zarrmount converts in --decoded, such a variable is left out
    with a warning that names its type; attributes of such types read as libhdf5 converts them."""
    import h5py
    from h5py import h5a, h5d, h5s, h5t
    path = str(tmp_path / "narrow-types.h5")
    values = np.array([-1, 2, -300, 7], dtype="<i4")
    floats = np.array([1.5, -2.25, 3.0e4, -7.125], dtype="<f4")

    def narrow_integers(offset):
        t = h5t.STD_I32LE.copy()
        t.set_precision(16)
        t.set_offset(offset)
        return t

    def hdf5_test_float():
        # HDF5's n-bit test format (test/dsets.c): 20 bits from bit 7, 6-bit exponent biased by 31.
        t = h5t.IEEE_F32LE.copy()
        t.set_fields(26, 20, 6, 7, 13)
        t.set_offset(7)
        t.set_precision(20)
        t.set_size(4)
        t.set_ebias(31)
        return t

    with h5py.File(path, "w") as f:
        space = h5s.create_simple((4,))
        for name, tid, data in (("narrow", narrow_integers(0), values), ("narrow_shifted", narrow_integers(8), values),
                                ("own_float_format", hdf5_test_float(), floats)):
            h5d.create(f.id, name.encode(), tid, space).write(h5s.ALL, h5s.ALL, data)
        plain = f.create_dataset("plain", data=floats)
        h5a.create(plain.id, b"narrow_attribute", narrow_integers(3), h5s.create(h5s.SCALAR)).write(np.array(-300, dtype="<i4"))
        h5a.create(plain.id, b"float_attribute", hdf5_test_float(), h5s.create(h5s.SCALAR)).write(np.array(-7.125, dtype="<f4"))
    with h5py.File(path, "r") as f:  # what libhdf5 reads: the values written
        np.testing.assert_array_equal(f["narrow_shifted"][()], values)
        np.testing.assert_array_equal(f["own_float_format"][()], floats)
        assert f["plain"].attrs["narrow_attribute"] == -300 and f["plain"].attrs["float_attribute"] == -7.125

    out = str(tmp_path / "refs.json")
    p = run_vz(["scan", path, "--no-cache", "--refs", out], timeout=60)
    require_ok(p, "scan")
    refs = json.load(open(out))["refs"]
    assert "plain/.zarray" in refs
    expected = {"narrow": "16-bit integers from bit 0 of 4-byte containers",
                "narrow_shifted": "16-bit integers from bit 8 of 4-byte containers",
                "own_float_format": "20-bit floats from bit 7 of 4-byte containers (exponent of 6 bits, bias 31, mantissa of 13 bits)"}
    for name, words in expected.items():
        assert name + "/.zarray" not in refs, "%s is served as whole containers" % name
        line = next((l for l in p.stderr.splitlines() if "/%s left out" % name in l), None)
        assert line is not None and words in line and "libhdf5 converts them" in line, (name, p.stderr[-2000:])
    attributes = json.loads(refs["plain/.zattrs"])
    assert attributes["narrow_attribute"] == -300 and attributes["float_attribute"] == -7.125, attributes
