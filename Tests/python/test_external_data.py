"""External raw data (issue 16): datasets whose bytes live in other files (the HDF5 External
Data Files message, h5py's `external=`), mounted with a real FUSE mount and held against what
h5py reads; names outside the HDF5 file's directory are refused unless `--allow-source` allows
them.

The fixtures are tools/make-fixtures.py' external/ subdirectory: external-raw-data.h5 beside its
.bin files (one segment, three segments over two files, an unlimited segment, and segments that
split a row), and external-raw-data-hostile.h5 naming /etc/passwd and ../outside.bin.
"""
import json
import os

import numpy as np
import pytest

from conftest import ensure_fixtures, open_virtual, require_fuse, require_ok, run_vz

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

EXTERNAL = os.path.join(ensure_fixtures(), "external")
DATA = os.path.join(EXTERNAL, "external-raw-data.h5")
HOSTILE = os.path.join(EXTERNAL, "external-raw-data-hostile.h5")


def h5py_values(path, names):
    """What h5py reads, with external files resolved beside the HDF5 file (libhdf5 opens them
    relative to the working directory unless told otherwise)."""
    import h5py
    here = os.getcwd()
    os.chdir(os.path.dirname(path))
    try:
        with h5py.File(path, "r") as f:
            return {n: f[n][...] for n in names}, {n: f[n].external for n in names}
    finally:
        os.chdir(here)


def scan(path, tmp_path, *flags):
    out = str(tmp_path / (os.path.basename(path) + ".refs.json"))
    p = run_vz(["scan", path, "--refs", out, "--no-cache"] + list(flags))
    require_ok(p, "scan %s" % path)
    with open(out) as fh:
        return json.load(fh)["refs"], p


class Mount:
    count = 0

    def __init__(self, tmp_path, path, *flags):
        Mount.count += 1
        self.point = tmp_path / ("mnt-%d-%s" % (Mount.count, os.path.basename(path)))
        self.point.mkdir()
        self.proc = run_vz(["mount", path, "--no-cache"] + list(flags) + [str(self.point)], timeout=120)
        require_ok(self.proc, "mount %s" % path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        u = run_vz(["unmount", str(self.point)], timeout=60)
        assert u.returncode == 0, u.stderr


def test_external_segments_mount_with_the_values_h5py_reads(tmp_path):
    require_fuse()
    names = ["single", "multi", "unlimited", "inside"]
    expected, segments = h5py_values(DATA, names)
    assert segments["multi"] == [("multi-a.bin", 0, 40), ("multi-b.bin", 100, 60), ("multi-a.bin", 500, 20)]
    refs, p = scan(DATA, tmp_path)
    # Each chunk is a reference into the external file that holds it, at the segment's offset.
    multi = {k: v for k, v in refs.items() if k.startswith("multi/") and not k.split("/")[1].startswith(".")}
    assert multi == {
        "multi/%d.0" % i: [os.path.join(EXTERNAL, f), off, 20]
        for i, (f, off) in enumerate([("multi-a.bin", 0), ("multi-a.bin", 20), ("multi-b.bin", 100),
                                       ("multi-b.bin", 120), ("multi-b.bin", 140), ("multi-a.bin", 500)])}
    assert refs["single/0.0"] == [os.path.join(EXTERNAL, "single.bin"), 16, 96]
    assert refs["unlimited/0.0"] == [os.path.join(EXTERNAL, "unlimited.bin"), 8, 84]
    # Segments that end inside a row fit no chunk grid: left out, and the warning says where.
    assert "unaligned/.zarray" not in refs
    assert "/unaligned left out: raw data in external files: a segment starts at byte 20, inside row 1 of 12-byte rows" \
        in p.stderr, p.stderr
    with Mount(tmp_path, DATA) as m:
        assert sorted(os.listdir(m.point)) == sorted([".zattrs", ".zgroup", ".zmetadata"] + names)
        with open(m.point / "multi" / "2.0", "rb") as fh:
            assert np.frombuffer(fh.read(), "<i2").tolist() == expected["multi"][4:6].ravel().tolist()
        with open_virtual("mount", str(m.point), 2, decode_cf=False) as act:
            for name in names:
                np.testing.assert_array_equal(act[name].values, expected[name], err_msg=name)
                assert act[name].dtype == expected[name].dtype, name
            assert act["single"].attrs["units"] == "K"


def test_external_files_outside_the_files_directory_are_refused_unless_allowed(tmp_path):
    require_fuse()
    _, segments = h5py_values(HOSTILE, ["absolute", "dotdot"])
    assert segments == {"absolute": [("/etc/passwd", 0, 16)], "dotdot": [("../outside.bin", 0, 16)]}
    refs, p = scan(HOSTILE, tmp_path)
    assert not any(k.startswith(("absolute/", "dotdot/")) for k in refs), sorted(refs)
    assert not any(isinstance(v, list) and v[0] in ("/etc/passwd", os.path.join(os.path.dirname(EXTERNAL), "outside.bin"))
                   for v in refs.values())
    for name, target in (("absolute", "/etc/passwd"), ("dotdot", "../outside.bin")):
        assert "/%s left out: raw data in external files: %s" % (name, target) in p.stderr, p.stderr
    assert p.stderr.count("is not allowed: it is outside the allowed sources (%s/)" % EXTERNAL) == 2, p.stderr
    assert "--allow-source" in p.stderr
    with Mount(tmp_path, HOSTILE) as m:
        assert sorted(os.listdir(m.point)) == [".zattrs", ".zgroup", ".zmetadata", "inside"]
        assert "/etc/passwd" in m.proc.stderr
    # The fixtures' directory allowed: ../outside.bin is served; /etc/passwd still is not.
    allowed = os.path.dirname(EXTERNAL)
    refs, p = scan(HOSTILE, tmp_path, "--allow-source", allowed)
    assert refs["dotdot/0"] == [os.path.join(allowed, "outside.bin"), 0, 16]
    assert not any(k.startswith("absolute/") for k in refs)
    with Mount(tmp_path, HOSTILE, "--allow-source", allowed) as m:
        with open_virtual("mount", str(m.point), 2, decode_cf=False) as act:
            np.testing.assert_array_equal(act["dotdot"].values, np.arange(4, dtype="<i4"))
