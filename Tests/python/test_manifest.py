"""Binary manifest files (.zmf): `zarrmount scan --manifest` writes the combined dataset with each
object's identity; `zarrmount mount --manifest` serves it (local or over HTTP) without a scan and
reads like the original files; `zarrmount info` describes it and `--check` finds changed objects;
damaged or untrusted manifests are refused by name."""
import glob
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from conftest import CI, REPO, make_wrf_sample, require_fuse, started_services, wrf_originals

ZARRMOUNT = os.environ.get("ZARRMOUNT_BIN", os.path.join(REPO, ".build", "debug", "zarrmount"))


def run(*args, timeout=120):
    return subprocess.run([ZARRMOUNT, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    require_fuse()
    return make_wrf_sample(tmp_path_factory.mktemp("manifest-archive"))


@pytest.fixture
def mounts():
    made = []

    def mount(*args):
        mountpoint = args[-1]
        os.makedirs(mountpoint, exist_ok=True)
        p = run("mount", *args)
        if p.returncode == 0:
            made.append(mountpoint)
        return p

    yield mount
    for mountpoint in made:
        run("unmount", mountpoint, timeout=60)
        assert not os.path.ismount(mountpoint), "%s is still mounted" % mountpoint


def read_mount(mountpoint):
    import xarray as xr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(mountpoint, chunks=None).load()


def assert_like_originals(actual, files):
    expected = wrf_originals(files)
    assert sorted(expected.variables) == sorted(actual.variables)
    assert expected.attrs == actual.attrs
    for name in expected.variables:
        np.testing.assert_array_equal(expected[name].values, actual[name].values, err_msg=name)
        assert expected[name].dims == actual[name].dims, name


def test_a_manifest_mounts_like_a_scan_of_its_sources_and_reads_like_the_originals(archive, mounts, tmp_path):
    directory = os.path.dirname(archive[0])
    manifest = os.path.join(directory, "year.zmf")
    p = run("scan", directory + "/*.nc", "--concat-dim", "Time", "--no-cache", "--manifest", manifest)
    assert p.returncode == 0, p.stderr
    assert "wrote %s" % manifest in p.stderr
    first = open(manifest, "rb").read()
    assert first[:8] == b"\x89ZMF\r\n\x1a\n"
    # The same scan writes the same bytes: nothing in the file depends on the clock or the machine.
    again = run("scan", directory + "/*.nc", "--concat-dim", "Time", "--no-cache", "--manifest", manifest + ".again")
    assert again.returncode == 0, again.stderr
    assert open(manifest + ".again", "rb").read() == first

    from_manifest = mounts("--manifest", manifest, str(tmp_path / "m"))
    assert from_manifest.returncode == 0, from_manifest.stderr
    assert "scanned" not in from_manifest.stderr, "a manifest mount scans nothing"
    assert "read manifest %s: 3 objects" % manifest in from_manifest.stderr, from_manifest.stderr
    from_sources = mounts(directory + "/*.nc", "--concat-dim", "Time", "--no-cache", str(tmp_path / "s"))
    assert from_sources.returncode == 0, from_sources.stderr
    # The two mounts serve the same metadata, byte for byte, and the same chunk files.
    for name in (".zmetadata", "T2/.zarray", "Time/.zattrs"):
        assert open(tmp_path / "m" / name, "rb").read() == open(tmp_path / "s" / name, "rb").read(), name
    assert sorted(os.listdir(tmp_path / "m" / "U")) == sorted(os.listdir(tmp_path / "s" / "U"))
    assert_like_originals(read_mount(str(tmp_path / "m")), archive)


def test_info_describes_a_manifest_and_check_names_an_object_changed_since_the_scan(archive, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in archive:
        shutil.copy(f, copy)
    manifest = str(copy / "all.zmf")
    p = run("scan", str(copy) + "/*.nc", "--concat-dim", "Time", "--no-cache", "--manifest", manifest, "--refs", str(copy / "all.json"))
    assert p.returncode == 0, p.stderr
    info = run("info", manifest)
    assert info.returncode == 0, info.stderr
    arrays = len([k for k in __import__("json").load(open(copy / "all.json"))["refs"] if k.endswith("/.zarray")])
    assert "format version 1, written by zarrmount" in info.stdout
    assert "sources: 3 objects" in info.stdout and "(3 file identity)" in info.stdout, info.stdout
    assert "arrays: %d, chunks:" % arrays in info.stdout, info.stdout
    assert "  T2 (Time, south_north, west_east): shape [3, " in info.stdout or "... and" in info.stdout, info.stdout
    checked = run("info", manifest, "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "check: all 3 objects unchanged since the scan" in checked.stdout

    target = sorted(glob.glob(str(copy / "*.nc")))[1]
    with open(target, "r+b") as f:
        f.seek(-100, 2)
        f.write(b"\x00" * 100)
    changed = run("info", manifest, "--check")
    assert changed.returncode == 1, changed.stdout
    assert "check: 1 of 3 objects changed or missing since the scan" in changed.stdout, changed.stdout
    assert target + ": identity file:" in changed.stdout, changed.stdout
    os.remove(sorted(glob.glob(str(copy / "*.nc")))[2])
    gone = run("info", manifest, "--check")
    assert gone.returncode == 1 and "2 of 3 objects changed or missing" in gone.stdout, gone.stdout


def test_damaged_and_untrusted_manifests_are_refused_by_name_and_nothing_is_mounted(archive, mounts, tmp_path):
    directory = os.path.dirname(archive[0])
    manifest = os.path.join(directory, "trusted.zmf")
    assert run("scan", directory + "/*.nc", "--concat-dim", "Time", "--no-cache", "--manifest", manifest).returncode == 0
    data = bytearray(open(manifest, "rb").read())
    data[len(data) // 2] ^= 0x01
    damaged = os.path.join(directory, "damaged.zmf")
    open(damaged, "wb").write(bytes(data))
    p = mounts("--manifest", damaged, str(tmp_path / "d"))
    assert p.returncode == 1, p.stderr
    assert "%s: the manifest's checksum does not match its contents" % damaged in p.stderr, p.stderr
    assert not os.path.ismount(str(tmp_path / "d"))
    info = run("info", damaged)
    assert info.returncode == 1 and "checksum" in info.stderr, info.stderr

    # A manifest elsewhere may name only objects under its own directory, as a reference file.
    elsewhere = str(tmp_path / "elsewhere.zmf")
    shutil.copy(manifest, elsewhere)
    refused = mounts("--manifest", elsewhere, str(tmp_path / "e"))
    assert refused.returncode == 1
    assert "names %s" % archive[0] in refused.stderr and "--allow-source" in refused.stderr, refused.stderr
    assert not os.path.ismount(str(tmp_path / "e"))
    allowed = mounts("--manifest", elsewhere, "--allow-source", directory + "/", str(tmp_path / "a"))
    assert allowed.returncode == 0, allowed.stderr
    np.testing.assert_array_equal(read_mount(str(tmp_path / "a"))["T2"].values, wrf_originals(archive)["T2"].values)

    combined_at_scan = mounts("--manifest", manifest, "--decoded", "--unpack", str(tmp_path / "u"))
    assert combined_at_scan.returncode != 0 and "mount the sources instead" in combined_at_scan.stderr, combined_at_scan.stderr

    not_one = os.path.join(directory, "text.zmf")
    open(not_one, "w").write("{}")
    q = mounts("--manifest", not_one, str(tmp_path / "t"))
    assert q.returncode == 1, q.stderr
    assert "%s: not a zarrmount manifest (no .zmf signature)" % not_one in q.stderr, q.stderr


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    yield from started_services(str(tmp_path_factory.mktemp("manifest-services")), lifetime=900)


def test_several_mounts_read_one_manifest_over_http_without_scanning(archive, mounts, nginx, tmp_path):
    published = tmp_path / "www"
    published.mkdir()
    for f in archive:
        shutil.copy(f, published)
    link = os.path.join(nginx["ZARRMOUNT_HTTP_DIR"], "manifest-year")
    os.symlink(str(published), link)
    base = nginx["ZARRMOUNT_HTTP_ROOT"] + "/manifest-year/"
    urls = [base + os.path.basename(f) for f in archive]
    manifest = str(published / "year.zmf")
    p = run("scan", *urls, "--concat-dim", "Time", "--no-cache", "--manifest", manifest)
    assert p.returncode == 0, p.stderr
    expected = wrf_originals(archive)
    for node in range(3):
        mountpoint = str(tmp_path / ("node%d" % node))
        m = mounts("--manifest", base + "year.zmf", mountpoint)
        assert m.returncode == 0, m.stderr
        assert "read manifest %syear.zmf: 3 objects" % base in m.stderr and "scanned" not in m.stderr, m.stderr
    for node in range(3):
        actual = read_mount(str(tmp_path / ("node%d" % node)))
        for name in ("T2", "U", "Time", "lat"):
            np.testing.assert_array_equal(expected[name].values, actual[name].values, err_msg="node %d %s" % (node, name))


@pytest.mark.parametrize("shards", [1, 2, 3, 5], ids=lambda n: "%d-shards" % n)
@pytest.mark.parametrize("order", ["key", "coordinate"])
def test_sharded_scans_merge_to_the_single_scan_byte_for_byte(archive, tmp_path, shards, order):
    directory = os.path.dirname(archive[0])
    sources = [directory + "/*.nc"]
    common = ["--concat-dim", "Time", "--no-cache", "--order", order]
    single = run("scan", *sources, *common, "--manifest", str(tmp_path / "single.zmf"), "--refs", str(tmp_path / "single.json"))
    assert single.returncode == 0, single.stderr
    parts = []
    for index in range(shards):
        part = str(tmp_path / ("part-%d.zmf" % index))
        p = run("scan", *sources, *common, "--shard", "%d/%d" % (index, shards), "--manifest", part)
        assert p.returncode == 0, p.stderr
        assert "scanned shard %d/%d" % (index, shards) in p.stderr, p.stderr
        parts.append(part)
    # Given in any order: merge puts them in shard order.
    merged = run("merge", *reversed(parts), *common[:2], "--order", order, "--manifest", str(tmp_path / "merged.zmf"),
                 "--refs", str(tmp_path / "merged.json"))
    assert merged.returncode == 0, merged.stderr
    assert "merged %d shards: 3 files" % shards in merged.stderr, merged.stderr
    assert open(tmp_path / "merged.zmf", "rb").read() == open(tmp_path / "single.zmf", "rb").read()
    assert open(tmp_path / "merged.json", "rb").read() == open(tmp_path / "single.json", "rb").read()


def test_a_shard_leaves_the_codec_proof_to_merge(archive, tmp_path):
    """A scan proves the first listed file's codec chains while the others are scanned; a
    shard's files are not combined or proven until `merge`, so a shard reads no chunk for it."""
    directory = os.path.dirname(archive[0])
    common = [directory + "/*.nc", "--concat-dim", "Time", "--no-cache", "--log-level", "debug"]
    whole = run("scan", *common, "--manifest", str(tmp_path / "whole.zmf"))
    assert whole.returncode == 0, whole.stderr
    assert "chains proven while the files were scanned" in whole.stderr, whole.stderr[-3000:]
    shard = run("scan", *common, "--shard", "0/2", "--manifest", str(tmp_path / "part-0.zmf"))
    assert shard.returncode == 0, shard.stderr
    assert "chains proven while the files were scanned" not in shard.stderr, shard.stderr[-3000:]


def test_merge_names_missing_duplicate_and_foreign_shards_and_a_shard_does_not_mount(archive, mounts, tmp_path):
    directory = os.path.dirname(archive[0])
    parts = []
    for index in range(3):
        part = str(tmp_path / ("part-%d.zmf" % index))
        assert run("scan", directory + "/*.nc", "--concat-dim", "Time", "--no-cache", "--shard", "%d/3" % index,
                   "--manifest", part).returncode == 0
        parts.append(part)
    missing = run("merge", parts[0], parts[2], "--concat-dim", "Time", "--manifest", str(tmp_path / "m.zmf"))
    assert missing.returncode == 1 and "shard 1/3 missing: give every part of the scan" in missing.stderr, missing.stderr
    twice = run("merge", parts[0], parts[1], parts[1], parts[2], "--concat-dim", "Time", "--manifest", str(tmp_path / "m.zmf"))
    assert twice.returncode == 1 and "are both shard 1/3" in twice.stderr, twice.stderr
    other = str(tmp_path / "other.zmf")
    assert run("scan", directory + "/*.nc", "--concat-dim", "Time", "--no-cache", "--shard", "0/2", "--manifest", other).returncode == 0
    foreign = run("merge", parts[0], other, "--concat-dim", "Time", "--manifest", str(tmp_path / "m.zmf"))
    assert foreign.returncode == 1 and "the parts come from different scans" in foreign.stderr, foreign.stderr
    assert not os.path.exists(tmp_path / "m.zmf")
    shard_mount = mounts("--manifest", parts[0], str(tmp_path / "mnt"))
    assert shard_mount.returncode == 1 and "shard 0/3 of a scan (files not combined yet)" in shard_mount.stderr, shard_mount.stderr
    described = run("info", parts[1])
    assert described.returncode == 0 and "shard 1/3 of a scan of 3 files: files 1..<2 in key order" in described.stdout, described.stdout


def test_update_appends_new_files_without_rescanning_and_equals_a_full_scan(mounts, tmp_path):
    files = make_wrf_sample(tmp_path / "data", days=5)
    old = str(tmp_path / "data" / "old.zmf")
    p = run("scan", *files[:3], "--concat-dim", "Time", "--no-cache", "--manifest", old)
    assert p.returncode == 0, p.stderr
    glob_all = str(tmp_path / "data") + "/*.nc"
    updated = str(tmp_path / "data" / "updated.zmf")
    u = run("scan", glob_all, "--concat-dim", "Time", "--no-cache", "--update", old, "--manifest", updated)
    assert u.returncode == 0, u.stderr
    assert "updated %s: 3 objects kept, 2 new files scanned" % old in u.stderr, u.stderr
    full = str(tmp_path / "data" / "full.zmf")
    assert run("scan", glob_all, "--concat-dim", "Time", "--no-cache", "--manifest", full).returncode == 0
    assert open(updated, "rb").read() == open(full, "rb").read(), "the update is byte for byte a scan of all five files"
    m = mounts("--manifest", updated, str(tmp_path / "mnt"))
    assert m.returncode == 0, m.stderr
    actual = read_mount(str(tmp_path / "mnt"))
    assert actual.sizes["Time"] == 5
    assert_like_originals(actual, files)

    # Nothing new: the same dataset again.
    again = run("scan", glob_all, "--concat-dim", "Time", "--no-cache", "--update", full, "--manifest", str(tmp_path / "again.zmf"))
    assert again.returncode == 0 and "no new files" in again.stderr, again.stderr
    assert open(tmp_path / "again.zmf", "rb").read() == open(full, "rb").read()

    # A new file that sorts before the manifest's last one would land elsewhere in a full scan.
    early = str(tmp_path / "data" / "WRFDS_2059-12-31.nc")
    shutil.copy(files[0], early)
    before = run("scan", glob_all, "--concat-dim", "Time", "--no-cache", "--update", full, "--manifest", str(tmp_path / "x.zmf"))
    assert before.returncode == 1 and "%s sorts before" % early in before.stderr, before.stderr
    os.remove(early)

    # A file the manifest holds changed since: the update stops, naming it.
    with open(files[1], "r+b") as f:
        f.seek(-50, 2)
        f.write(b"\x00" * 50)
    stale = run("scan", glob_all, "--concat-dim", "Time", "--no-cache", "--update", full, "--manifest", str(tmp_path / "y.zmf"))
    assert stale.returncode == 1, stale.stderr
    assert "1 of its 5 objects changed since it was written" in stale.stderr and files[1] in stale.stderr, stale.stderr
    assert not os.path.exists(tmp_path / "y.zmf")
    no_dim = run("scan", glob_all, "--update", full, "--manifest", str(tmp_path / "z.zmf"))
    assert no_dim.returncode != 0 and "give it with --concat-dim" in no_dim.stderr, no_dim.stderr


def test_kerchunk_references_convert_to_a_manifest_and_back_unchanged(archive, tmp_path):
    directory = os.path.dirname(archive[0])
    refs = str(tmp_path / "scan.json")
    manifest = os.path.join(directory, "converted.zmf")
    assert run("scan", directory + "/*.nc", "--concat-dim", "Time", "--no-cache", "--refs", refs).returncode == 0
    to_manifest = run("scan", "--references", refs, "--allow-source", directory + "/", "--manifest", manifest)
    assert to_manifest.returncode == 0, to_manifest.stderr
    assert "read references for 3 objects from %s" % refs in to_manifest.stderr
    back = str(tmp_path / "back.json")
    to_refs = run("scan", "--references", manifest, "--refs", back)
    assert to_refs.returncode == 0, to_refs.stderr
    assert open(back, "rb").read() == open(refs, "rb").read()
    checked = run("info", manifest, "--check")
    assert checked.returncode == 0 and "all 3 objects unchanged" in checked.stdout, checked.stdout
