"""Trust (issue 14), through real FUSE mounts: a reference file serves only objects under its own
directory (or what --allow-source adds), keys that cannot be file names are refused or left out,
an object rewritten in place or deleted after the scan gives ESTALE, and the mount and unmount
commands refuse what would surprise a user."""
import json
import os
import subprocess
import time

import numpy as np
import pytest

from conftest import REPO, make_wrf_sample, require_fuse

ZARRMOUNT = os.environ.get("ZARRMOUNT_BIN", os.path.join(REPO, ".build", "debug", "zarrmount"))
ESTALE = 116

ZARRAY = json.dumps({"shape": [64], "chunks": [64], "dtype": "|u1", "compressor": None, "filters": None,
                     "fill_value": 0, "order": "C", "zarr_format": 2})


def references(chunks, extra=None):
    """A kerchunk document with one 64-byte array per entry of CHUNKS (array name -> [url, offset, length])."""
    refs = {".zgroup": json.dumps({"zarr_format": 2})}
    for name, ref in chunks.items():
        refs[name + "/.zarray"] = ZARRAY
        refs[name + "/.zattrs"] = json.dumps({"_ARRAY_DIMENSIONS": ["n_" + name[:200]]})
        refs[name + "/0"] = ref
    refs.update(extra or {})
    return {"version": 1, "refs": refs}


def run(args, timeout=120):
    return subprocess.run([ZARRMOUNT] + list(args), capture_output=True, text=True, timeout=timeout)


class Mounts:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.paths = []

    def new_mountpoint(self):
        path = str(self.tmp_path / ("mnt%d" % len(self.paths)))
        os.makedirs(path, exist_ok=True)
        self.paths.append(path)
        return path

    def cleanup(self):
        for path in self.paths:
            if os.path.ismount(path):
                run(["unmount", path], timeout=60)
            if os.path.ismount(path):
                run(["unmount", "--lazy", path], timeout=60)
            assert not os.path.ismount(path), path


@pytest.fixture
def mounts(tmp_path):
    require_fuse()
    m = Mounts(tmp_path)
    yield m
    m.cleanup()


@pytest.fixture
def secret(tmp_path):
    """A file outside the reference file's directory (a stand-in for /etc/shadow) and the directory it is in."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "secret.bin"
    path.write_bytes(bytes(range(64)) * 2)
    return str(path)


def test_a_local_reference_file_cannot_serve_files_outside_its_directory(mounts, tmp_path, secret):
    home = tmp_path / "refs"
    home.mkdir()
    (home / "data.bin").write_bytes(bytes(range(100, 164)))
    os.symlink(secret, str(home / "link.bin"))
    cases = {
        "absolute": [secret, 0, 64],
        "dotdot": [str(home / ".." / "outside" / "secret.bin"), 0, 64],
        "symlink": [str(home / "link.bin"), 0, 64],
        "etc": ["/etc/passwd", 0, 64],
        "file-url": ["file://" + secret, 0, 64],
    }
    for name, ref in cases.items():
        doc = home / ("%s.json" % name)
        doc.write_text(json.dumps(references({"ok": [str(home / "data.bin"), 0, 64], "x": ref})))
        mountpoint = mounts.new_mountpoint()
        p = run(["mount", "--references", str(doc), mountpoint])
        assert p.returncode == 1, (name, p.stderr)
        assert 'key "x/0" names %s' % ref[0] in p.stderr and "not allowed" in p.stderr, (name, p.stderr)
        assert "--allow-source" in p.stderr and str(home) + "/" in p.stderr, p.stderr
        assert not os.path.ismount(mountpoint), name
    # Allowed explicitly, on the command line or in a config, the same file mounts and serves its bytes.
    doc = home / "absolute.json"
    mountpoint = mounts.new_mountpoint()
    p = run(["mount", "--references", str(doc), "--allow-source", os.path.dirname(secret), mountpoint])
    assert p.returncode == 0, p.stderr
    assert open(os.path.join(mountpoint, "x", "0"), "rb").read() == bytes(range(64))
    assert open(os.path.join(mountpoint, "ok", "0"), "rb").read() == bytes(range(100, 164))
    config = tmp_path / "allowed.yaml"
    config.write_text("references: %s\nallow_sources:\n  - %s\n" % (doc, os.path.dirname(secret)))
    mountpoint = mounts.new_mountpoint()
    p = run(["mount", str(config), mountpoint])
    assert p.returncode == 0, p.stderr
    assert open(os.path.join(mountpoint, "x", "0"), "rb").read() == bytes(range(64))


@pytest.mark.parametrize("bad", ["nul", "long", "dotdot", "empty", "slash", "twice"])
def test_keys_that_cannot_be_file_names_are_refused_or_left_out(mounts, tmp_path, bad):
    (tmp_path / "data.bin").write_bytes(bytes(range(64)) * 2)
    good = [str(tmp_path / "data.bin"), 0, 64]
    name = {"nul": "ok\0shadow", "long": "v" * 10240, "dotdot": "../escape", "empty": "a//b", "slash": "/abs"}.get(bad, "y")
    extra = {"y/00": [str(tmp_path / "data.bin"), 64, 64]} if bad == "twice" else {}
    doc = tmp_path / "refs.json"
    doc.write_text(json.dumps(references({"ok": good, name: [str(tmp_path / "data.bin"), 64, 64]}, extra)))
    mountpoint = mounts.new_mountpoint()
    p = run(["mount", "--references", str(doc), mountpoint])
    assert p.returncode == 1, p.stderr
    assert "key " in p.stderr and "--on-error skip" in p.stderr, p.stderr
    assert len(p.stderr) < 2000, "a 10 KiB key is cut in the message"
    assert not os.path.ismount(mountpoint)
    p = run(["mount", "--references", str(doc), "--on-error", "skip", mountpoint])
    assert p.returncode == 0, p.stderr
    assert "warning: " in p.stderr and "left out" in p.stderr, p.stderr
    listing = sorted(os.listdir(mountpoint))
    assert "ok" in listing, listing
    assert all(len(entry.encode()) <= 255 and entry not in ("..", ".") for entry in listing), listing
    assert open(os.path.join(mountpoint, "ok", "0"), "rb").read() == bytes(range(64)), "the good array is the right bytes"
    if bad == "twice":
        assert "y" not in listing, "an array with two spellings of one chunk is left out"


def test_hdf5_names_longer_than_a_file_name_are_left_out_of_mounts_and_exports_and_kept_in_references(mounts, tmp_path):
    """HDF5 link names may be 100,000 bytes long; a file system's names hold 255. Such an array in a
    mount made the kernel drop the directory listing after it (`ls` showed no variable at all, not
    even `short`) and every open of it fail. It is left out by name; references keep it."""
    import h5py
    from conftest import ensure_fixtures
    path = os.path.join(ensure_fixtures(), "links-long-names-earliest.h5")
    long_names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: long_names.append(name) if isinstance(obj, h5py.Dataset) and len(name) > 255 else None)
        short = f["short"][()]
        # What a file system can name: the short dataset and a soft link to a long-named one.
        nameable = sorted(k for k in f.keys() if len(k.encode()) <= 255 and isinstance(f[k], h5py.Dataset))
    assert len(long_names) == 2 and nameable == ["short", "soft_to_long"], (long_names, nameable)

    mountpoint = mounts.new_mountpoint()
    p = run(["mount", path, "--no-cache", mountpoint])
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(mountpoint)) == [".zattrs", ".zgroup", ".zmetadata"] + nameable, os.listdir(mountpoint)
    import zarr
    np.testing.assert_array_equal(zarr.open_group(mountpoint, mode="r", zarr_format=2)["short"][...], short)
    consolidated = json.load(open(os.path.join(mountpoint, ".zmetadata")))["metadata"]
    assert all(len(part.encode()) <= 255 for key in consolidated for part in key.split("/")), "no long key is listed"
    for name in long_names:
        shown = name[:60]
        assert any(line.startswith("warning: " + shown) and "left out" in line and "at most 255" in line
                   and "--refs" in line for line in p.stderr.splitlines()), (shown, p.stderr[-2000:])
    assert len(p.stderr) < 4000, "a 100,000-byte name is cut in the warning"

    exported = str(tmp_path / "exported")
    p = run(["export", path, "--no-cache", "--zarr", exported])
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(exported)) == [".zattrs", ".zgroup", ".zmetadata"] + nameable, os.listdir(exported)

    refs = str(tmp_path / "refs.json")
    p = run(["scan", path, "--no-cache", "--refs", refs])
    assert p.returncode == 0, p.stderr
    keys = json.load(open(refs))["refs"]
    assert all(name + "/.zarray" in keys for name in long_names), "references keep what a file system cannot name"


def test_negative_offsets_and_lengths_say_so(tmp_path):
    (tmp_path / "data.bin").write_bytes(bytes(64))
    for field, ref in (("offset", [str(tmp_path / "data.bin"), -8, 8]), ("length", [str(tmp_path / "data.bin"), 0, -8])):
        doc = tmp_path / ("%s.json" % field)
        doc.write_text(json.dumps(references({"x": ref})))
        p = run(["scan", "--references", str(doc), "--refs", str(tmp_path / "out.json")])
        assert p.returncode == 1 and "x/0: the %s is negative" % field in p.stderr, p.stderr
        assert "whole object" not in p.stderr


@pytest.fixture
def archive_copy(tmp_path):
    directory = tmp_path / "archive"
    directory.mkdir()
    return make_wrf_sample(directory, days=2)


def test_a_file_rewritten_in_place_with_size_and_mtime_restored_gives_estale(mounts, archive_copy):
    mountpoint = mounts.new_mountpoint()
    p = run(["mount", os.path.dirname(archive_copy[0]) + "/*.nc", "--concat-dim", "Time", "--no-cache", mountpoint])
    assert p.returncode == 0, p.stderr
    target = archive_copy[1]
    before = os.stat(target)
    time.sleep(0.02)
    with open(target, "r+b") as f:  # in place: same inode, same size
        f.seek(-4096, 2)
        f.write(os.urandom(4096))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # what `touch -d` does
    after = os.stat(target)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    with pytest.raises(OSError) as failure:
        open(os.path.join(mountpoint, "T2", "1.0.0"), "rb").read()
    assert failure.value.errno == ESTALE, failure.value
    # The other file is unchanged and still served.
    assert len(open(os.path.join(mountpoint, "T2", "0.0.0"), "rb").read()) > 0


def test_a_file_deleted_after_the_scan_gives_estale(mounts, archive_copy, tmp_path):
    mountpoint = mounts.new_mountpoint()
    log = tmp_path / "daemon.log"
    p = run(["mount", os.path.dirname(archive_copy[0]) + "/*.nc", "--concat-dim", "Time", "--no-cache",
             "--log-file", str(log), mountpoint])
    assert p.returncode == 0, p.stderr
    os.unlink(archive_copy[1])
    with pytest.raises(OSError) as failure:
        open(os.path.join(mountpoint, "Q2", "1.0.0"), "rb").read()
    assert failure.value.errno == ESTALE, failure.value
    text = log.read_text()
    assert "archive changed since the scan" in text and "unmount and mount again" in text and archive_copy[1] in text, text


def test_unmount_of_a_path_that_is_not_mounted_says_so(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    p = run(["unmount", str(plain)])
    assert p.returncode == 1 and "%s: not mounted" % plain in p.stderr, p.stderr
    assert "lazy" not in p.stderr and "Invalid argument" not in p.stderr
    p = run(["unmount", str(tmp_path / "missing")])
    assert p.returncode == 1 and "No such file" in p.stderr, p.stderr


def test_mount_over_a_non_empty_directory_needs_nonempty(mounts, archive_copy):
    mountpoint = mounts.new_mountpoint()
    with open(os.path.join(mountpoint, "notes.txt"), "w") as fh:
        fh.write("mine")
    args = ["mount", os.path.dirname(archive_copy[0]) + "/*.nc", "--concat-dim", "Time", "--no-cache"]
    p = run(args + [mountpoint])
    assert p.returncode == 1 and "not empty" in p.stderr and "notes.txt" in p.stderr and "--nonempty" in p.stderr, p.stderr
    assert not os.path.ismount(mountpoint)
    p = run(args + ["--nonempty", mountpoint])
    assert p.returncode == 0, p.stderr
    assert os.path.ismount(mountpoint) and "T2" in os.listdir(mountpoint)
    run(["unmount", mountpoint])
    assert open(os.path.join(mountpoint, "notes.txt")).read() == "mine"


# ------------------------------------------------------------------ memory bounded by what is stored

MEMORY_CAP = 3 << 30  # address space for zarrmount: the old binary went past 17 GB on these files


def _capped():
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_capped(args, timeout=120):
    return subprocess.run([ZARRMOUNT] + list(args), capture_output=True, text=True, timeout=timeout, preexec_fn=_capped)


@pytest.fixture(scope="module")
def huge_files(tmp_path_factory):
    """Legal HDF5 files of a few KiB that declare billions of elements and store (almost) none."""
    import h5py
    d = tmp_path_factory.mktemp("huge")
    with h5py.File(d / "contiguous.h5", "w") as f:
        f.create_dataset("big", shape=(4_300_000_000,), dtype="f4")
    with h5py.File(d / "chunked.h5", "w") as f:
        f.create_dataset("big", shape=(4_300_000_000,), dtype="f4", chunks=(1024,))
    with h5py.File(d / "tiny-chunks.h5", "w") as f:
        f.create_dataset("big", shape=(4_300_000_000,), dtype="u1", chunks=(1,))
    with h5py.File(d / "sparse.h5", "w") as f:
        big = f.create_dataset("big", shape=(100_000, 100_000), dtype="f4", chunks=(10, 10), maxshape=(None, None))
        big[0:10, 0:10] = 1
        big[99_990:, 99_990:] = 2
    with h5py.File(d / "beyond.h5", "w") as f:
        f.create_dataset("big", shape=(2 ** 31, 2 ** 31), dtype="f4", chunks=(1, 1))
        f.create_dataset("small", data=[1, 2, 3])
    # A compact dataset (data inside its header) whose dataspace is then edited to declare 4.3
    # billion elements: HDF5 never writes this, a damaged or hostile file can. Version-1 object
    # headers carry no checksum, so the edit stays readable.
    with h5py.File(d / "compact-source.h5", "w", libver="earliest") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        dataset = h5py.h5d.create(f.id, b"big", h5py.h5t.STD_I32LE, h5py.h5s.create_simple((7,)), dcpl=dcpl)
        dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.arange(7, dtype="<i4"))
        f.create_dataset("small", data=[1, 2, 3])
    data = bytearray((d / "compact-source.h5").read_bytes())
    seven = (7).to_bytes(8, "little")
    places = [i for i in range(len(data) - 8) if data[i:i + 8] == seven]
    assert len(places) == 2, "the dataspace's size and maximum size"
    for i in places:
        data[i:i + 8] = (4_300_000_000).to_bytes(8, "little")
    (d / "compact.h5").write_bytes(bytes(data))
    return d


SAMPLES = {  # file -> [(index, expected value)]
    "contiguous.h5": [((0,), 0), ((4_299_999_999,), 0), ((2_000_000_000,), 0)],
    "chunked.h5": [((0,), 0), ((4_299_999_999,), 0)],
    "tiny-chunks.h5": [((0,), 0), ((4_299_999_999,), 0)],
    "sparse.h5": [((0, 0), 1), ((9, 9), 1), ((10, 10), 0), ((50_000, 50_000), 0), ((99_999, 99_999), 2)],
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_huge_declared_shapes_mount_and_read_within_a_memory_cap(mounts, huge_files, name):
    import zarr
    path = str(huge_files / name)
    for fmt in (2, 3):
        mountpoint = mounts.new_mountpoint()
        p = run_capped(["mount", path, "--zarr-format", str(fmt), "--no-cache", mountpoint])
        assert p.returncode == 0, p.stderr
        big = zarr.open_group(mountpoint, mode="r")["big"]
        for index, value in SAMPLES[name]:
            assert big[index] == value, (name, fmt, index)
        with os.scandir(os.path.join(mountpoint, "big")) as entries:
            first = [e.name for _, e in zip(range(20), entries)]
        assert first, "the array's directory lists"
        pid = json.loads(run(["status", mountpoint]).stdout)["pid"]
        with open("/proc/%d/status" % pid) as fh:
            rss_kib = int(next(line for line in fh if line.startswith("VmRSS")).split()[1])
        assert rss_kib < 400 * 1024, "daemon RSS %d KiB for %s" % (rss_kib, name)
        run(["unmount", mountpoint])


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_huge_declared_shapes_export_as_v3_and_refuse_v2_copies_of_the_fill_chunk(huge_files, tmp_path, name):
    import zarr
    path = str(huge_files / name)
    out = str(tmp_path / "v3")
    p = run_capped(["export", path, "--zarr", out, "--zarr-format", "3", "--no-cache"])
    assert p.returncode == 0, p.stderr
    big = zarr.open_group(out, mode="r")["big"]
    for index, value in SAMPLES[name]:
        assert big[index] == value, (name, index)
    p = run_capped(["scan", path, "--refs", str(tmp_path / "refs.json"), "--no-cache"])
    # Every sample leaves most of its grid unwritten: v2 references would repeat the fill chunk.
    assert p.returncode == 1, p.stderr
    assert "big" in p.stderr and name in p.stderr and "--zarr-format 3" in p.stderr and "never written" in p.stderr, p.stderr


@pytest.mark.parametrize("name,reason", [("compact.h5", "compact data holds 28 bytes"),
                                         ("beyond.h5", "[2147483648, 2147483648]")])
def test_a_variable_declaring_what_cannot_be_held_is_left_out_by_name(huge_files, tmp_path, name, reason):
    """A compact dataset whose shape needs more than its header holds; a grid beyond what a manifest indexes."""
    p = run_capped(["scan", str(huge_files / name), "--refs", str(tmp_path / "refs.json"), "--no-cache"])
    assert p.returncode == 0, p.stderr
    assert "/big left out" in p.stderr and reason in p.stderr, p.stderr
    refs = json.load(open(str(tmp_path / "refs.json")))["refs"]
    assert "small/.zarray" in refs and "big/.zarray" not in refs


def test_under_allow_other_chunk_files_carry_their_source_files_owner_and_read_bits(tmp_path):
    """root mounts for everyone: a chunk of a file only root may read is refused to another user
    (the kernel's default_permissions checks the bits the chunk file carries), a chunk of a
    world-readable file is not."""
    import tempfile
    require_fuse()
    assert os.geteuid() == 0, "this test mounts as root for another user"
    directory = tmp_path / "archive"
    directory.mkdir()
    files = make_wrf_sample(directory, days=2)
    os.chmod(files[0], 0o600)
    os.chmod(files[1], 0o644)
    shared = tempfile.mkdtemp(prefix="zm-modes-")
    os.chmod(shared, 0o755)
    mountpoint = os.path.join(shared, "mnt")
    os.mkdir(mountpoint)
    try:
        p = run(["mount", str(directory) + "/*.nc", "--concat-dim", "Time", "--no-cache", "--allow-other", mountpoint])
        assert p.returncode == 0, p.stderr
        private, public = os.path.join(mountpoint, "T2", "0.0.0"), os.path.join(mountpoint, "T2", "1.0.0")
        assert os.stat(private).st_mode & 0o777 == 0o400 and os.stat(private).st_uid == os.stat(files[0]).st_uid
        assert os.stat(public).st_mode & 0o777 == 0o444
        reader = "import sys\ntry:\n    open(sys.argv[1], 'rb').read(1)\n    print('read')\nexcept OSError as e:\n    print(e.errno)\n"

        def as_nobody(path):
            def drop():
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            return subprocess.run(["/usr/bin/python3", "-c", reader, path], capture_output=True, text=True, timeout=60,
                                  preexec_fn=drop).stdout.strip()
        assert as_nobody(public) == "read"
        assert as_nobody(private) == "13", "EACCES for a user who could not read the original"
        assert open(private, "rb").read(1), "root still reads it"
    finally:
        run(["unmount", mountpoint])
        if os.path.ismount(mountpoint):
            run(["unmount", "--lazy", mountpoint])
        os.rmdir(mountpoint)
        os.rmdir(shared)


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF4"])
def test_a_truncated_file_stops_the_scan_naming_it(tmp_path, fmt):
    """Trap: a day cut short by an interrupted download. Its metadata is whole (netCDF-3 and netCDF-4 keep it
    before the data), so it scanned with exit 0 and its last chunks pointed past its end: reads failed mid-analysis
    (and netCDF-C reads the missing values of a classic file as zeros). The scan now stops naming the file, the
    chunk and its size; --on-error skip leaves it out and says so in the dataset."""
    import netCDF4
    files = []
    for k in range(3):
        path = str(tmp_path / ("day_%d.nc" % k))
        with netCDF4.Dataset(path, "w", format=fmt) as nc:
            nc.createDimension("time", None)
            nc.createDimension("x", 1000)
            t = nc.createVariable("time", "f8", ("time",))
            t.units = "hours since 2030-01-01"
            t[:] = np.arange(10) + 24 * k
            nc.createVariable("v", "f4", ("time", "x"))[:] = np.random.default_rng(k).random((10, 1000))
        files.append(path)
    size = os.path.getsize(files[1])
    with open(files[1], "r+b") as fh:
        fh.truncate(size - 10000)
    out = str(tmp_path / "refs.json")
    p = run(["scan", *files, "--concat-dim", "time", "--refs", out, "--no-cache"])
    said = [line for line in p.stderr.splitlines() if "day_1.nc is truncated" in line]
    assert p.returncode == 1 and said and "is %d bytes" % (size - 10000) in said[0] and "of v ends at byte" in said[0], \
        p.stderr[-2000:]
    assert not os.path.exists(out)
    p = run(["scan", *files, "--concat-dim", "time", "--refs", out, "--no-cache", "--on-error", "skip"])
    assert p.returncode == 2 and any("skipped" in line and "day_1.nc" in line for line in p.stderr.splitlines()), \
        p.stderr[-2000:]
    with open(out) as fh:
        attrs = json.loads(json.load(fh)["refs"][".zattrs"])
    assert "day_1.nc is truncated" in attrs["zarrmount_skipped_files"][0], attrs
