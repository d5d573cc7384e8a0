"""The Debian package `tools/package deb` builds, installed on this machine with dpkg: the binary,
`mount -t fuse.zarrmount CONFIG MOUNTPOINT -o ...` through the package's mount helper, an
/etc/fstab line mounted with `mount MOUNTPOINT`, the systemd unit template (started where systemd
runs as PID 1; otherwise checked with `systemd-analyze verify`, as here in containers), the man
page and the completions; then the package is purged. Every mount is read with xarray and
compared with xarray on the original files."""
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import REPO, make_wrf_sample, require_fuse, wrf_originals

PACKAGE = "zarrmount"


def _zarrmount_mounts():
    with open("/proc/self/mounts") as f:
        return {line.split()[1] for line in f if "zarrmount" in line.split()[0] or "zarrmount" in line.split()[2]}


def _require_root_and_dpkg():
    if os.geteuid() != 0 or not shutil.which("dpkg"):
        if os.environ.get("CI") == "true":
            pytest.fail("installing the .deb needs root and dpkg, and CI=true forbids skipping it")
        pytest.skip("installing the .deb needs root and dpkg")


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    _require_root_and_dpkg()
    out = tmp_path_factory.mktemp("deb")
    p = subprocess.run([os.path.join(REPO, "tools", "package"), "deb", "--out", str(out)], capture_output=True, text=True,
                       timeout=3600)
    assert p.returncode == 0, p.stderr[-3000:]
    path = p.stdout.strip().splitlines()[-1]
    assert re.match(r"zarrmount_[0-9.]+(~\w+)?_amd64\.deb$", os.path.basename(path)), path
    return path


@pytest.fixture(scope="module")
def installed(deb):
    p = subprocess.run(["dpkg", "-i", deb], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    try:
        yield deb
    finally:
        for mountpoint in _zarrmount_mounts():
            if "/test-deb-" in mountpoint or mountpoint.startswith("/mnt/zarrmount/"):
                subprocess.run(["umount", "-l", mountpoint], capture_output=True)
        purged = subprocess.run(["dpkg", "--purge", PACKAGE], capture_output=True, text=True, timeout=600)
        assert purged.returncode == 0, purged.stdout + purged.stderr
        assert not os.path.exists("/usr/bin/zarrmount") and not os.path.exists("/sbin/mount.fuse.zarrmount")
        assert not os.path.exists("/lib/systemd/system/zarrmount@.service")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_wrf_sample(tmp_path_factory.mktemp("test-deb-archive"), days=3)


@pytest.fixture
def config(archive, tmp_path):
    path = tmp_path / "year.yaml"
    path.write_text("sources:\n  - %s/*.nc\nconcat_dim: Time\n" % os.path.dirname(archive[0]))
    return str(path)


def _check_served(mountpoint, archive):
    import xarray as xr
    expected = wrf_originals(archive)
    with xr.open_zarr(mountpoint) as ds:
        assert ds.sizes["Time"] == 3
        assert (ds["T2"].values == expected["T2"].values).all()
        assert (ds["Time"].values == expected["Time"].values).all()


def test_the_package_carries_the_binary_man_page_completions_and_its_dependencies(installed):
    version = subprocess.run(["/usr/bin/zarrmount", "--version"], capture_output=True, text=True, check=True).stdout
    fields = subprocess.run(["dpkg-query", "-W", "-f", "${Version}\n${Depends}\n${Status}", PACKAGE], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    assert version.startswith("zarrmount " + fields[0].replace("~", "-") + " "), (version, fields)
    depends = [d.strip() for d in fields[1].split(",")]
    assert {"fuse3", "libcurl4", "libjemalloc2", "libfuse3-3"} <= set(depends), depends
    assert fields[2] == "install ok installed"
    dynamic = subprocess.run(["readelf", "-d", "/usr/bin/zarrmount"], capture_output=True, text=True, check=True).stdout
    assert "libswift" not in dynamic, "the Swift runtime is linked in"
    page = subprocess.run(["man", "-w", "zarrmount"], capture_output=True, text=True)
    assert page.stdout.strip() == "/usr/share/man/man1/zarrmount.1.gz", (page.stdout, page.stderr)
    text = subprocess.run(["bash", "-c", "zcat /usr/share/man/man1/zarrmount.1.gz"], capture_output=True, text=True, check=True).stdout
    assert "Mount archives of netCDF-3 and netCDF-4/HDF5 files" in text and "--concat-dim" in text
    completion = subprocess.run(["bash", "-c", "source /usr/share/bash-completion/completions/zarrmount && complete -p zarrmount"],
                                capture_output=True, text=True)
    assert completion.returncode == 0 and "zarrmount" in completion.stdout, completion.stderr
    assert "mount" in open("/usr/share/zsh/vendor-completions/_zarrmount").read()
    fish = open("/usr/share/fish/vendor_completions.d/zarrmount.fish").read()
    assert "complete -c 'zarrmount'" in fish and "concat-dim" in fish


def test_mount_dash_t_fuse_zarrmount_mounts_a_config_with_its_options(installed, archive, config, tmp_path):
    require_fuse()
    mountpoint = tmp_path / "test-deb-mnt"
    mountpoint.mkdir()
    p = subprocess.run(["mount", "-t", "fuse.zarrmount", config, str(mountpoint), "-o", "ro,allow_other,nodev,timeout=7,verify_chunks"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    try:
        assert str(mountpoint) in _zarrmount_mounts()
        status = json.loads(subprocess.run(["/usr/bin/zarrmount", "status", str(mountpoint)], capture_output=True, text=True,
                                           check=True).stdout)
        assert status["timeout_seconds"] == 7 and status["verify_chunks"] is True, status
        _check_served(str(mountpoint), archive)
    finally:
        u = subprocess.run(["umount", str(mountpoint)], capture_output=True, text=True, timeout=120)
    assert u.returncode == 0, u.stderr
    assert str(mountpoint) not in _zarrmount_mounts()
    # An option zarrmount does not have is refused, by name, and nothing is mounted.
    p = subprocess.run(["mount", "-t", "fuse.zarrmount", config, str(mountpoint), "-o", "ro,no_such_option=1"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode != 0 and "no-such-option" in p.stderr, p.stderr
    assert str(mountpoint) not in _zarrmount_mounts()


def test_an_fstab_line_mounts_with_mount_mountpoint(installed, archive, config, tmp_path):
    require_fuse()
    mountpoint = tmp_path / "test-deb-fstab"
    mountpoint.mkdir()
    with open("/etc/fstab") as f:
        fstab = f.read()
    try:
        with open("/etc/fstab", "a") as f:
            f.write("%s %s fuse.zarrmount ro,allow_other,noauto,nofail 0 0\n" % (config, mountpoint))
        p = subprocess.run(["mount", str(mountpoint)], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        try:
            assert str(mountpoint) in _zarrmount_mounts()
            _check_served(str(mountpoint), archive)
        finally:
            u = subprocess.run(["umount", str(mountpoint)], capture_output=True, text=True, timeout=120)
        assert u.returncode == 0, u.stderr
    finally:
        with open("/etc/fstab", "w") as f:
            f.write(fstab)
    assert str(mountpoint) not in _zarrmount_mounts()


def test_the_systemd_unit_template_mounts_a_config_of_etc_zarrmount(installed, archive, tmp_path):
    with open("/proc/1/comm") as f:
        systemd_runs = f.read().strip() == "systemd"
    unit = "/lib/systemd/system/zarrmount@.service"
    text = open(unit).read()
    assert "ExecStart=/usr/bin/zarrmount mount --foreground --allow-other /etc/zarrmount/%i.yaml /mnt/zarrmount/%i" in text
    if not systemd_runs:
        # No service manager here: the unit is checked as systemd would load it, for an instance.
        instance = tmp_path / "zarrmount@year.service"
        shutil.copy(unit, instance)
        p = subprocess.run(["systemd-analyze", "verify", "--man=no", str(instance)], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "zarrmount@year.service" not in p.stderr, p.stderr
        return
    name = "test-deb-%d" % os.getpid()
    config = "/etc/zarrmount/%s.yaml" % name
    with open(config, "w") as f:
        f.write("sources:\n  - %s/*.nc\nconcat_dim: Time\n" % os.path.dirname(archive[0]))
    try:
        subprocess.run(["systemctl", "start", "zarrmount@%s" % name], check=True, timeout=300)
        mountpoint = "/mnt/zarrmount/%s" % name
        deadline = time.monotonic() + 120
        while mountpoint not in _zarrmount_mounts() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert mountpoint in _zarrmount_mounts()
        _check_served(mountpoint, archive)
        subprocess.run(["systemctl", "stop", "zarrmount@%s" % name], check=True, timeout=300)
        assert mountpoint not in _zarrmount_mounts()
    finally:
        os.remove(config)
