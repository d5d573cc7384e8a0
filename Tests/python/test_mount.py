"""Real FUSE mounts of a WRF-like archive: what any Zarr reader sees through the mount equals
xarray on the original files; chunk files are the stored bytes; the mount is read-only."""
import glob
import shutil
import os
import subprocess
import time
import warnings

import numpy as np
import pytest

from conftest import REPO, make_wrf_sample, require_fuse, wrf_originals

ZARRMOUNT = os.environ.get("ZARRMOUNT_BIN", os.path.join(REPO, ".build", "debug", "zarrmount"))



@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    require_fuse()
    return make_wrf_sample(tmp_path_factory.mktemp("mount-archive"))


@pytest.fixture
def mounted(archive, tmp_path):
    mountpoints = []

    def mount(fmt=2, extra=()):
        mountpoint = tmp_path / ("mnt%d" % len(mountpoints))
        mountpoint.mkdir()
        p = subprocess.run([ZARRMOUNT, "mount", os.path.dirname(archive[0]) + "/*.nc", "--concat-dim", "Time",
                            "--zarr-format", str(fmt), "--no-cache", *extra, str(mountpoint)],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        mountpoints.append(str(mountpoint))
        return str(mountpoint)

    yield mount
    for mountpoint in mountpoints:
        subprocess.run([ZARRMOUNT, "unmount", mountpoint], capture_output=True, timeout=60)
        assert not os.path.ismount(mountpoint), "%s is still mounted" % mountpoint


originals = wrf_originals


@pytest.mark.parametrize("mode", ["stored", "decoded"])
@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("decode_cf", [True, False], ids=["cf", "raw"])
def test_mount_reads_like_the_originals(archive, mounted, fmt, decode_cf, mode):
    import xarray as xr
    mountpoint = mounted(fmt, ["--decoded"] if mode == "decoded" else [])
    assert os.path.ismount(mountpoint)
    expected = originals(archive, decode_cf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        actual = xr.open_zarr(mountpoint, chunks=None, decode_cf=decode_cf, zarr_format=fmt)
    assert sorted(expected.variables) == sorted(actual.variables)
    assert expected.attrs == actual.attrs
    for name in expected.variables:
        np.testing.assert_array_equal(expected[name].values, actual[name].values, err_msg=name)
        assert expected[name].dims == actual[name].dims, name


def test_chunk_files_are_the_stored_bytes_and_the_mount_is_read_only(archive, mounted, tmp_path):
    mountpoint = mounted(2)
    refs = tmp_path / "refs.json"
    subprocess.run([ZARRMOUNT, "scan", os.path.dirname(archive[0]) + "/*.nc", "--concat-dim", "Time", "--refs", str(refs),
                    "--no-cache"], check=True, capture_output=True)
    import json
    table = json.load(open(refs))["refs"]
    for key in ["T2/0.0.0", "T2/2.0.0", "U/1.0.0.0", "lat/0.0"]:
        url, offset, length = table[key]
        with open(url, "rb") as f:
            f.seek(offset)
            stored = f.read(length)
        with open(os.path.join(mountpoint, key), "rb") as f:
            assert f.read() == stored, key
        assert os.path.getsize(os.path.join(mountpoint, key)) == length
    assert not os.path.exists(os.path.join(mountpoint, "T2", "3.0.0")), "chunks outside the grid are absent"
    with pytest.raises(OSError) as failure:
        open(os.path.join(mountpoint, "T2", "0.0.0"), "r+b")
    assert failure.value.errno in (30, 13), failure.value  # EROFS (or EACCES from default_permissions)
    with pytest.raises(OSError):
        open(os.path.join(mountpoint, "new-file"), "wb")


def test_parallel_readers_agree(archive, mounted):
    mountpoint = mounted(2)
    script = ("import sys, hashlib, glob, os\n"
              "h = hashlib.sha256()\n"
              "for p in sorted(glob.glob(os.path.join(sys.argv[1], '*', '*'))):\n"
              "    h.update(open(p, 'rb').read())\n"
              "print(h.hexdigest())\n")
    procs = [subprocess.Popen(["python3", "-c", script, mountpoint], stdout=subprocess.PIPE, text=True) for _ in range(16)]
    digests = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert len(digests) == 1 and len(next(iter(digests))) == 64


def test_overwritten_object_fails_instead_of_serving_new_bytes(archive, mounted, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in archive:
        shutil.copy(f, copy)
    mountpoint = tmp_path / "changed"
    mountpoint.mkdir()
    p = subprocess.run([ZARRMOUNT, "mount", str(copy) + "/*.nc", "--concat-dim", "Time", "--no-cache", str(mountpoint)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    try:
        target = sorted(glob.glob(str(copy / "*.nc")))[1]
        time.sleep(0.05)
        with open(target, "r+b") as f:
            f.seek(-100, 2)
            f.write(b"\x00" * 100)
        with pytest.raises(OSError) as failure:
            open(os.path.join(str(mountpoint), "T2", "1.0.0"), "rb").read()
        assert failure.value.errno in (116, 5), failure.value  # ESTALE or EIO
    finally:
        subprocess.run([ZARRMOUNT, "unmount", str(mountpoint)], capture_output=True, timeout=60)


def test_stale_mount_after_kill_is_cleaned_by_unmount(archive, tmp_path):
    mountpoint = tmp_path / "killed"
    mountpoint.mkdir()
    p = subprocess.run([ZARRMOUNT, "mount", os.path.dirname(archive[0]) + "/*.nc", "--concat-dim", "Time", "--no-cache",
                        str(mountpoint)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    pid = int(p.stderr.split("daemon ")[1].split()[0])
    os.kill(pid, 9)
    time.sleep(0.3)
    u = subprocess.run([ZARRMOUNT, "unmount", str(mountpoint)], capture_output=True, text=True, timeout=60)
    assert u.returncode == 0, u.stderr
    assert not os.path.ismount(str(mountpoint))
    assert os.listdir(str(mountpoint)) == [], "the mountpoint is usable again"


def test_status_reports_counters_from_the_mount_root(archive, mounted, tmp_path):
    import json
    mountpoint = mounted(2)
    with open(os.path.join(mountpoint, "T2", "0.0.0"), "rb") as f:
        size = len(f.read())
    status = subprocess.run([ZARRMOUNT, "status", mountpoint], capture_output=True, text=True, timeout=30)
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert document["files"] == 3 and document["arrays"] == 41 and document["zarr_format"] == 2
    assert document["reads"]["bytes_fetched"] >= size > 0
    assert document["reads"]["errors"] == 0
    assert "user.zarrmount.status" in os.listxattr(mountpoint)
    assert sorted(os.listdir(mountpoint)) == sorted(set(os.listdir(mountpoint))), "no extra file appears in the tree"
    assert not any(name.startswith("status") for name in os.listdir(mountpoint))
    other = subprocess.run([ZARRMOUNT, "status", str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert other.returncode == 1 and "not a zarrmount mount" in other.stderr


def test_decoded_chunk_files_are_the_decoded_bytes_with_exact_sizes(archive, mounted, tmp_path):
    import json
    import zlib
    mountpoint = mounted(2, ["--decoded"])
    refs = tmp_path / "refs.json"
    subprocess.run([ZARRMOUNT, "scan", os.path.dirname(archive[0]) + "/*.nc", "--concat-dim", "Time", "--refs", str(refs),
                    "--no-cache"], check=True, capture_output=True)
    stored_meta = json.loads(json.load(open(refs))["refs"]["T2/.zarray"])
    assert stored_meta["compressor"] is not None or stored_meta["filters"], "the fixture's T2 must be encoded"
    meta = json.load(open(os.path.join(mountpoint, "T2", ".zarray")))
    assert meta["compressor"] is None and meta["filters"] is None
    chunk_bytes = int(np.prod(meta["chunks"])) * np.dtype(meta["dtype"]).itemsize
    expected = originals(archive, decode_cf=False)["T2"].values
    for t in range(3):
        path = os.path.join(mountpoint, "T2", "%d.0.0" % t)
        assert os.path.getsize(path) == chunk_bytes
        with open(path, "rb") as f:
            raw = f.read()
        assert len(raw) == chunk_bytes
        values = np.frombuffer(raw, dtype=meta["dtype"]).reshape(meta["chunks"])
        np.testing.assert_array_equal(values[0], expected[t])
        # and it is the stored chunk undone: inflate (and unshuffle) the stored bytes
        url, offset, length = json.load(open(refs))["refs"]["T2/%d.0.0" % t]
        with open(url, "rb") as f:
            f.seek(offset)
            stored = f.read(length)
        import numcodecs
        codecs = [numcodecs.get_codec(c) for c in (stored_meta["filters"] or [])]
        if stored_meta["compressor"]:
            codecs.append(numcodecs.get_codec(stored_meta["compressor"]))
        for codec in reversed(codecs):
            stored = codec.decode(stored)
        assert bytes(stored) == raw


def test_statfs_mtime_and_listing_attributes(archive, mounted):
    mountpoint = mounted(2)
    fs = os.statvfs(mountpoint)
    assert fs.f_flag & os.ST_RDONLY
    assert fs.f_blocks * fs.f_frsize >= sum(os.path.getsize(f) for f in archive)
    assert fs.f_bfree == 0 and fs.f_files > 115
    # chunk files carry their object's modification time; metadata the newest object's
    for t, original in enumerate(archive):
        assert os.stat(os.path.join(mountpoint, "T2", "%d.0.0" % t)).st_mtime == int(os.stat(original).st_mtime)
    assert os.stat(os.path.join(mountpoint, ".zmetadata")).st_mtime == max(int(os.stat(f).st_mtime) for f in archive)
    # a listing (readdirplus) carries the same attributes as stat
    listed = {e.name: e.stat() for e in os.scandir(os.path.join(mountpoint, "T2"))}
    assert sorted(listed) == [".zarray", ".zattrs", "0.0.0", "1.0.0", "2.0.0"]
    for name, st in listed.items():
        again = os.stat(os.path.join(mountpoint, "T2", name))
        assert (st.st_size, st.st_mtime, st.st_ino) == (again.st_size, again.st_mtime, again.st_ino), name
        assert st.st_mode & 0o777 == 0o444
    out = subprocess.run(["ls", "-l", os.path.join(mountpoint, "T2")], capture_output=True, text=True, check=True).stdout
    assert str(os.path.getsize(os.path.join(mountpoint, "T2", "0.0.0"))) in out


def test_mount_refuses_a_busy_or_stale_mountpoint_and_says_what_to_do(archive, tmp_path):
    mountpoint = tmp_path / "busy"
    mountpoint.mkdir()
    args = [ZARRMOUNT, "mount", os.path.dirname(archive[0]) + "/*.nc", "--concat-dim", "Time", "--no-cache", str(mountpoint)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    pid = int(p.stderr.split("daemon ")[1].split()[0])
    try:
        again = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert again.returncode == 1
        assert "already mounted by daemon %d" % pid in again.stderr and "zarrmount unmount" in again.stderr, again.stderr
        os.kill(pid, 9)
        time.sleep(0.3)
        stale = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert stale.returncode == 1
        assert "stale mount" in stale.stderr and "zarrmount unmount %s" % mountpoint in stale.stderr, stale.stderr
    finally:
        subprocess.run([ZARRMOUNT, "unmount", str(mountpoint)], capture_output=True, timeout=60)
    missing = subprocess.run(args[:-1] + [str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "nowhere" in missing.stderr and "No such file" in missing.stderr, missing.stderr


@pytest.mark.parametrize("signal_number", [15, 2], ids=["SIGTERM", "SIGINT"])
def test_signal_unmounts_and_exits_cleanly(archive, tmp_path, signal_number):
    mountpoint = tmp_path / "signalled"
    mountpoint.mkdir()
    daemon = subprocess.Popen([ZARRMOUNT, "mount", os.path.dirname(archive[0]) + "/*.nc", "--concat-dim", "Time",
                               "--no-cache", "--foreground", str(mountpoint)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not os.path.ismount(str(mountpoint)):
            assert daemon.poll() is None and time.monotonic() < deadline, "the daemon did not mount"
            time.sleep(0.05)
        assert len(open(os.path.join(str(mountpoint), "T2", "0.0.0"), "rb").read()) > 0
        daemon.send_signal(signal_number)
        assert daemon.wait(timeout=60) == 0, daemon.stderr.read()
        assert not os.path.ismount(str(mountpoint))
        assert "unmounted" in daemon.stderr.read()
    finally:
        if daemon.poll() is None:
            daemon.kill()
        subprocess.run([ZARRMOUNT, "unmount", str(mountpoint)], capture_output=True, timeout=60)


@pytest.mark.parametrize("mode", ["stored", "decoded"])
@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_python_opens_and_reads_every_array(archive, mounted, fmt, mode):
    import zarr
    mountpoint = mounted(fmt, ["--decoded"] if mode == "decoded" else [])
    expected = originals(archive, decode_cf=False)
    group = zarr.open_group(mountpoint, mode="r", zarr_format=fmt)
    names = sorted(name for name, _ in group.arrays())
    assert names == sorted(expected.variables)
    for name in names:
        np.testing.assert_array_equal(group[name][...], expected[name].values, err_msg=name)


def test_per_file_layout_from_a_config_gives_one_group_per_file(archive, tmp_path):
    import xarray as xr
    config = tmp_path / "per-file.yaml"
    config.write_text("sources: ['%s/*.nc']\nlayout: per_file\nzarr_format: 3\nno_cache: true\n" % os.path.dirname(archive[0]))
    mountpoint = tmp_path / "per-file"
    mountpoint.mkdir()
    p = subprocess.run([ZARRMOUNT, "mount", str(config), str(mountpoint)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    try:
        stems = [os.path.basename(f)[:-3] for f in archive]
        assert sorted(n for n in os.listdir(str(mountpoint)) if n != "zarr.json") == stems
        for stem, original in zip(stems, archive):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                actual = xr.open_zarr(str(mountpoint), group=stem, chunks=None, zarr_format=3)
                expected = xr.open_dataset(original, engine="netcdf4").load()
            assert sorted(actual.variables) == sorted(expected.variables)
            attrs = dict(actual.attrs)
            assert attrs.pop("zarrmount_source") == os.path.basename(original), actual.attrs
            assert attrs == expected.attrs
            for name in expected.variables:
                np.testing.assert_array_equal(actual[name].values, expected[name].values, err_msg="%s %s" % (stem, name))
    finally:
        subprocess.run([ZARRMOUNT, "unmount", str(mountpoint)], capture_output=True, timeout=60)
    refused = subprocess.run([ZARRMOUNT, "scan", str(config), "--concat-dim", "Time", "--refs", str(tmp_path / "x.json")],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "per_file" in refused.stderr and "concat" in refused.stderr, refused.stderr


def test_per_file_groups_of_files_sharing_a_name_say_which_file_they_hold(tmp_path):
    """Trap: runs/a/out.nc and runs/b/out.nc (an archive organised by directory) mounted per file were groups out
    and out_2, with nothing saying which run each held. Each group is now named by the file's path below the common
    directory (a_out, b_out), its zarrmount_source attribute names the file, and its values are that file's."""
    import netCDF4
    import xarray as xr
    files = []
    for run, offset in (("b", 100.0), ("a", 0.0)):
        os.makedirs(tmp_path / "runs" / run)
        path = str(tmp_path / "runs" / run / "out.nc")
        with netCDF4.Dataset(path, "w") as nc:
            nc.createDimension("x", 3)
            nc.createVariable("v", "f4", ("x",))[:] = np.arange(3) + offset
        files.append(path)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    p = subprocess.run([ZARRMOUNT, "mount", str(tmp_path / "runs" / "*" / "out.nc"), "--layout", "per_file", "--no-cache",
                        str(mountpoint)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    try:
        assert sorted(n for n in os.listdir(str(mountpoint)) if not n.startswith(".")) == ["a_out", "b_out"]
        for run, original in (("a", files[1]), ("b", files[0])):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                actual = xr.open_zarr(str(mountpoint), group=run + "_out", chunks=None, consolidated=False)
            assert actual.attrs["zarrmount_source"] == run + "/out.nc", actual.attrs
            with xr.open_dataset(original, engine="netcdf4") as expected:
                np.testing.assert_array_equal(actual["v"].values, expected["v"].values, err_msg=run)
    finally:
        subprocess.run([ZARRMOUNT, "unmount", str(mountpoint)], capture_output=True, timeout=60)


def test_the_daemon_allocates_with_jemalloc(archive, tmp_path):
    """The scan's speed depends on jemalloc replacing glibc's malloc (README, "Memory allocator");
    a link-order change would silently undo it, so check the running daemon, not the link line."""
    v = subprocess.run([ZARRMOUNT, "--version"], capture_output=True, text=True, timeout=60)
    assert v.returncode == 0, v.stderr
    assert "memory allocator: jemalloc 5." in v.stdout, v.stdout
    mountpoint = tmp_path / "allocator"
    mountpoint.mkdir()
    p = subprocess.run([ZARRMOUNT, "mount", os.path.dirname(archive[0]) + "/*.nc", "--concat-dim", "Time", "--no-cache",
                        str(mountpoint)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    try:
        pid = int(p.stderr.split("daemon ")[1].split()[0])
        with open("/proc/%d/maps" % pid) as maps:
            mapped = maps.read()
        assert "libjemalloc.so" in mapped
    finally:
        subprocess.run([ZARRMOUNT, "unmount", str(mountpoint)], capture_output=True, timeout=60)
    assert not os.path.ismount(str(mountpoint))


def test_the_daemon_does_not_link_libhdf5_and_verify_still_works(vz):
    """Issue 18: the mount daemon's link line has no libhdf5 (the oracle is zarrmount-verify, beside it);
    `zarrmount verify` runs that tool and gives its answer."""
    binary = vz[0]
    p = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "libfuse3" in p.stdout and "libcurl" in p.stdout, p.stdout
    assert "hdf5" not in p.stdout, "zarrmount links libhdf5:\n" + p.stdout
    verify = os.path.join(os.path.dirname(binary), "zarrmount-verify")
    assert os.access(verify, os.X_OK), "zarrmount-verify is not built beside " + binary
    assert "hdf5" in subprocess.run(["ldd", verify], capture_output=True, text=True, timeout=60).stdout
    sample = sorted(glob.glob(os.path.join(os.environ.get("ZARRMOUNT_SAMPLE_ARCHIVE") or "", "*.nc")))
    if not sample:
        sample = [f for f in sorted(glob.glob(os.path.join(REPO, ".cache", "sample-archive", "*.nc")))]
    assert sample, "no sample archive to verify"
    ok = subprocess.run([binary, "verify", sample[0]], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and "OK" in ok.stdout and "agree with libhdf5" in ok.stdout, (ok.returncode, ok.stdout, ok.stderr)
    bad = subprocess.run([binary, "verify", "/nonexistent.nc"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1, (bad.returncode, bad.stdout, bad.stderr)


@pytest.mark.parametrize("launch", ["fork", "exec"])
def test_the_daemon_keeps_nothing_the_caller_held_open(archive, tmp_path, launch):
    """A descriptor the caller inherited (a pipe a script reads until end of file) is closed in
    the daemon, whether it is a fork of the command or a new program (ZARRMOUNT_DAEMON_EXEC=1):
    otherwise the script would wait until the unmount."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    read_end, write_end = os.pipe()
    env = dict(os.environ, ZARRMOUNT_DAEMON_EXEC="1" if launch == "exec" else "0")
    try:
        p = subprocess.run([ZARRMOUNT, "mount", os.path.dirname(archive[0]) + "/*.nc", "--concat-dim", "Time", "--no-cache",
                            str(mountpoint)], capture_output=True, text=True, timeout=120, pass_fds=(write_end,), env=env)
        assert p.returncode == 0, p.stderr
        assert os.path.ismount(mountpoint)
        os.close(write_end)
        write_end = None
        os.set_blocking(read_end, False)
        assert os.read(read_end, 1) == b"", "end of file: no process holds the pipe's write end"
    except BlockingIOError:
        pytest.fail("the daemon holds the caller's pipe open")
    finally:
        os.close(read_end)
        if write_end is not None:
            os.close(write_end)
        subprocess.run([ZARRMOUNT, "unmount", str(mountpoint)], capture_output=True, timeout=60)
    assert not os.path.ismount(mountpoint)
