"""Trust (issue 14), through real FUSE mounts: a reference file serves only objects under its own
directory (or what --allow-source adds), keys that cannot be file names are refused or left out,
an object rewritten in place or deleted after the scan gives ESTALE, and the mount and unmount
commands refuse what would surprise a user."""
import json
import os
import subprocess
import time

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
