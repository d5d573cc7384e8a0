"""The wheel `tools/package wheel` builds: installed into a fresh venv (no site packages, nothing
but the wheel), its own binary (a release build with the Swift runtime linked statically) mounts
the sample archive, xarray on the original files agrees with what the mount serves, and nothing
is left mounted after an exception in the block or after the interpreter exits. The package's
check of the binary's shared libraries names what is missing and the Debian package to install."""
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO, make_wrf_sample, require_fuse, wrf_originals, zarrmount_mounts


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    p = subprocess.run([os.path.join(REPO, "tools", "package"), "wheel", "--out", str(out)], capture_output=True, text=True,
                       timeout=3600)
    assert p.returncode == 0, p.stderr[-3000:]
    path = p.stdout.strip().splitlines()[-1]
    assert os.path.dirname(path) == str(out) and path.endswith(".whl"), p.stdout
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh venv with only the wheel installed (no dependencies to fetch: it has none)."""
    root = tmp_path_factory.mktemp("fresh-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    python = str(root / "bin" / "python")
    p = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index", wheel],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return python


def _fresh_environment():
    """No ZARRMOUNT_BIN and no checkout on any path: the package must find its own binary."""
    env = {key: value for key, value in os.environ.items() if key not in ("ZARRMOUNT_BIN", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
    return env


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_wrf_sample(tmp_path_factory.mktemp("wheel-archive"), days=3)


def test_the_wheel_is_tagged_for_the_platform_and_carries_a_binary_without_the_swift_runtime(wheel, tmp_path):
    name = os.path.basename(wheel)
    version = re.match(r"zarrmount-([^-]+)-py3-none-linux_x86_64\.whl$", name)
    assert version, name
    with zipfile.ZipFile(wheel) as archive:
        info = archive.getinfo("zarrmount/bin/zarrmount")
        assert (info.external_attr >> 16) & 0o111, "the binary is executable in the wheel"
        libraries = json.loads(archive.read("zarrmount/libraries.json"))
        archive.extract(info, tmp_path)
    binary = str(tmp_path / "zarrmount" / "bin" / "zarrmount")
    dynamic = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"Shared library: \[([^\]]+)\]", dynamic)
    assert not [n for n in needed if n.startswith("libswift") or "Foundation" in n], needed
    # Every library it needs but libc's own parts is recorded, with the package that holds it.
    recorded = {entry["soname"] for entry in libraries}
    assert recorded == {n for n in needed if not re.match(r"(libc|libm|libdl|libpthread|librt|libutil|ld-linux[-\w]*)\.so", n)}, (needed, recorded)
    assert "libcurl.so.4" in recorded and any(n.startswith("libfuse3.so.") for n in recorded), recorded
    for entry in libraries:
        owner = subprocess.run(["dpkg", "-S", entry["soname"]], capture_output=True, text=True).stdout
        assert entry["package"] + ":" in owner, (entry, owner)


def test_a_fresh_venv_mounts_the_archive_with_the_wheels_own_binary(venv, archive):
    import xarray as xr
    require_fuse()
    before = zarrmount_mounts()
    script = (
        "import sys, zarrmount\n"
        "print(zarrmount.binary(), zarrmount.__version__, flush=True)\n"
        "with zarrmount.mount(sys.argv[1:], concat_dim='Time') as m:\n"
        "    print(m.path, flush=True)\n"
        "    sys.stdin.readline()\n")
    child = subprocess.Popen([venv, "-c", script] + archive, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_fresh_environment(), cwd="/")
    try:
        binary, version = child.stdout.readline().split()
        assert binary.startswith(os.path.dirname(os.path.dirname(venv))) and binary.endswith("/zarrmount/bin/zarrmount"), binary
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
        assert out.startswith("zarrmount "), out
        path = child.stdout.readline().strip()
        assert path in zarrmount_mounts(), (path, child.stderr.read() if child.poll() is not None else "")
        expected = wrf_originals(archive)
        with xr.open_zarr(path) as ds:
            assert ds.sizes["Time"] == 3
            assert (ds["T2"].values == expected["T2"].values).all()
            assert (ds["Time"].values == expected["Time"].values).all()
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=120) == 0, child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert zarrmount_mounts() == before
    assert not os.path.exists(path), "the temporary mountpoint is removed"


def test_a_fresh_venv_unmounts_after_an_exception_and_at_interpreter_exit(venv, archive):
    require_fuse()
    before = zarrmount_mounts()
    raising = ("import sys, zarrmount\n"
               "with zarrmount.mount(sys.argv[1:], concat_dim='Time') as m:\n"
               "    print(m.path, flush=True)\n"
               "    raise KeyError('the analysis failed')\n")
    p = subprocess.run([venv, "-c", raising] + archive, capture_output=True, text=True, timeout=120, env=_fresh_environment())
    assert p.returncode == 1 and "KeyError: 'the analysis failed'" in p.stderr, p.stderr
    assert p.stdout.strip().startswith("/")
    assert zarrmount_mounts() == before
    left_open = ("import sys, zarrmount\n"
                 "m = zarrmount.mount(sys.argv[1:], concat_dim='Time')\n"
                 "print(m.path, flush=True)\n")
    p = subprocess.run([venv, "-c", left_open] + archive, capture_output=True, text=True, timeout=120, env=_fresh_environment())
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().startswith("/")
    assert zarrmount_mounts() == before
    assert not os.path.exists(p.stdout.strip())


def test_a_missing_shared_library_is_named_with_its_package_at_import(venv, tmp_path):
    """The same check the import runs, over the installed package's own list with one library this
    system cannot have added; and the import itself, with that list in place of the real one."""
    site = subprocess.run([venv, "-c", "import zarrmount, os; print(os.path.dirname(zarrmount.__file__))"],
                          capture_output=True, text=True, env=_fresh_environment(), check=True).stdout.strip()
    manifest = os.path.join(site, "libraries.json")
    with open(manifest) as f:
        real = json.load(f)
    p = subprocess.run([venv, "-c", "import zarrmount; print(zarrmount.missing_libraries())"], capture_output=True, text=True,
                       env=_fresh_environment())
    assert p.returncode == 0 and p.stdout.strip() == "[]", (p.stdout, p.stderr)
    try:
        with open(manifest, "w") as f:
            json.dump(real + [{"soname": "libzarrmount-absent.so.7", "package": "libzarrmount-absent7"}], f)
        p = subprocess.run([venv, "-c", "import zarrmount"], capture_output=True, text=True, env=_fresh_environment())
        assert p.returncode == 1
        assert "ImportError: zarrmount's binary needs shared libraries this system does not have: " \
               "libzarrmount-absent.so.7 (package libzarrmount-absent7)" in p.stderr, p.stderr
        assert "apt-get install libzarrmount-absent7" in p.stderr, p.stderr
        # Another binary named by ZARRMOUNT_BIN is not the wheel's: the import does not check.
        env = dict(_fresh_environment(), ZARRMOUNT_BIN="/bin/true")
        assert subprocess.run([venv, "-c", "import zarrmount"], env=env).returncode == 0
    finally:
        with open(manifest, "w") as f:
            json.dump(real, f)
