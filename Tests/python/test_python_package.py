"""The repository's Python package (python/, installed editable by tools/setup): mounts as context
managers and datasets that unmount when closed, the CLI's scan and
merge as functions, and scans sharded over a real dask.distributed LocalCluster with several worker
processes, one of them killed mid-scan; the Slurm and Kubernetes recipes of docs/scaling.md run as
plain processes (no scheduler runs here)."""
import os
import re
import stat
import subprocess
import sys

import pytest

import zarrmount
import zarrmount.dask
from conftest import REPO, make_wrf_sample, zarrmount_mounts

ZARRMOUNT = os.environ.get("ZARRMOUNT_BIN", os.path.join(REPO, ".build", "debug", "zarrmount"))
# The package, and the Dask workers started below (they inherit the environment), run the binary
# under test rather than whatever else zarrmount.binary() would find (a release build, PATH).
os.environ["ZARRMOUNT_BIN"] = ZARRMOUNT


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_wrf_sample(tmp_path_factory.mktemp("package-archive"), days=4)


@pytest.fixture(scope="module")
def single(archive, tmp_path_factory):
    """The single-machine scan's manifest and references, made by the CLI."""
    out = tmp_path_factory.mktemp("single")
    p = subprocess.run([ZARRMOUNT, "scan", os.path.dirname(archive[0]) + "/*.nc", "--concat-dim", "Time", "--no-cache",
                        "--manifest", str(out / "single.zmf"), "--refs", str(out / "single.json")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return open(out / "single.zmf", "rb").read(), open(out / "single.json", "rb").read()


def test_scan_and_merge_as_functions_write_what_the_cli_writes(archive, single, tmp_path):
    assert zarrmount.binary() == ZARRMOUNT
    sources = os.path.dirname(archive[0]) + "/*.nc"
    written = zarrmount.scan(sources, manifest=tmp_path / "a.zmf", refs=tmp_path / "a.json", concat_dim="Time", no_cache=True)
    assert written == [tmp_path / "a.zmf", tmp_path / "a.json"]
    assert open(tmp_path / "a.zmf", "rb").read() == single[0]
    assert open(tmp_path / "a.json", "rb").read() == single[1]
    parts = [zarrmount.dask.scan_shard(i, 2, sources, str(tmp_path), {"concat_dim": "Time", "no_cache": True}) for i in range(2)]
    assert [os.path.basename(p) for p in parts] == ["part-00000-of-00002.zmf", "part-00001-of-00002.zmf"]
    zarrmount.merge(parts, manifest=tmp_path / "m.zmf", concat_dim="Time")
    assert open(tmp_path / "m.zmf", "rb").read() == single[0]
    assert zarrmount.command({"concat_dim": "Time", "allow_source": ["a/", "b/"], "no_cache": True, "order": None}) == [
        "--concat-dim", "Time", "--allow-source", "a/", "--allow-source", "b/", "--no-cache"]


def test_a_failed_command_raises_with_its_own_message(tmp_path):
    with pytest.raises(zarrmount.ZarrmountError) as failure:
        zarrmount.scan(str(tmp_path / "nothing-*.nc"), manifest=tmp_path / "x.zmf")
    assert failure.value.status == 1
    assert str(failure.value).startswith("error: "), str(failure.value)
    assert "nothing-*.nc" in str(failure.value)
    with pytest.raises(ValueError):
        zarrmount.scan("a.nc")


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        with Client(local) as client:
            yield client


def test_dask_scan_over_worker_processes_equals_the_single_scan(archive, single, cluster, tmp_path):
    manifest = tmp_path / "all.zmf"
    result = zarrmount.dask.scan(os.path.dirname(archive[0]) + "/*.nc", 3, cluster, manifest, refs=tmp_path / "all.json",
                                 concat_dim="Time", no_cache=True)
    assert result == manifest
    assert open(manifest, "rb").read() == single[0]
    assert open(tmp_path / "all.json", "rb").read() == single[1]
    pids = set(cluster.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids, "the shards ran in worker processes"


def test_a_worker_killed_mid_scan_is_replaced_and_its_shard_scanned_again(archive, single, cluster, tmp_path):
    # A zarrmount that, the first time it is asked for shard 1, kills the worker running it
    # (its parent process) before scanning: a worker lost in the middle of a task.
    marker = tmp_path / "killed-once"
    wrapper = tmp_path / "zarrmount-killing-once"
    wrapper.write_text("#!/bin/sh\n"
                       "case \"$*\" in *'--shard 1/'*) if [ ! -e '%s' ]; then touch '%s'; kill -9 $PPID; sleep 5; exit 1; fi;; esac\n"
                       "exec '%s' \"$@\"\n" % (marker, marker, ZARRMOUNT))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    before = set(cluster.run(os.getpid).values())
    manifest = tmp_path / "all.zmf"
    zarrmount.dask.scan(os.path.dirname(archive[0]) + "/*.nc", 3, cluster, manifest, binary_path=str(wrapper),
                        concat_dim="Time", no_cache=True)
    assert marker.exists(), "shard 1's first attempt ran and killed its worker"
    after = set(cluster.run(os.getpid).values())
    assert before - after, "a worker process was lost (%s before, %s after)" % (before, after)
    assert open(manifest, "rb").read() == single[0]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".part-")], "no half-written part is left"


def recipe(name):
    """The shell block of docs/scaling.md that follows `<!-- recipe: NAME -->`."""
    text = open(os.path.join(REPO, "docs", "scaling.md")).read()
    match = re.search(r"<!-- recipe: %s -->\s*```(?:bash|sh)\n(.*?)```" % re.escape(name), text, re.S)
    assert match, "docs/scaling.md has no recipe %s" % name
    return match.group(1)


@pytest.mark.parametrize("scheduler,index_variable,count_variable", [
    ("slurm-array-task", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"),
    ("kubernetes-indexed-job", "JOB_COMPLETION_INDEX", "SHARDS"),
])
def test_the_job_array_recipes_run_as_plain_processes_and_merge_to_the_single_scan(archive, single, tmp_path, scheduler,
                                                                                    index_variable, count_variable):
    env = dict(os.environ, PATH=os.path.dirname(ZARRMOUNT) + os.pathsep + os.environ["PATH"],
               SOURCES=os.path.dirname(archive[0]) + "/*.nc", PARTS=str(tmp_path / "parts"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    tasks = [subprocess.Popen(["bash", "-euc", recipe(scheduler)], env=dict(env, **{index_variable: str(i), count_variable: "3"}),
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    for task in tasks:
        _, err = task.communicate(timeout=300)
        assert task.returncode == 0, err
    merged = subprocess.run(["bash", "-euc", recipe("merge")], env=dict(env, MANIFEST=str(tmp_path / "all.zmf")),
                            capture_output=True, text=True, timeout=300)
    assert merged.returncode == 0, merged.stderr
    assert open(tmp_path / "all.zmf", "rb").read() == single[0]


# ------------------------------------------------------------------ mounts from Python


def test_a_mount_as_a_context_manager_serves_the_originals_and_unmounts(archive):
    import xarray as xr
    from conftest import require_fuse, wrf_originals
    require_fuse()
    before = zarrmount_mounts()
    expected = wrf_originals(archive)
    with zarrmount.mount(archive, concat_dim="Time") as live:
        assert live.path in zarrmount_mounts()
        assert live.status()["pid"] > 0
        with xr.open_zarr(live.path) as ds:
            assert ds.sizes["Time"] == 4
            assert (ds["T2"].values == expected["T2"].values).all()
            assert (ds["Time"].values == expected["Time"].values).all()
    assert not live.mounted
    assert zarrmount_mounts() == before
    assert not os.path.exists(live.path), "the temporary mountpoint is removed"
    live.unmount()  # a second unmount does nothing


def test_an_exception_inside_the_block_still_unmounts(archive, tmp_path):
    from conftest import require_fuse
    require_fuse()
    before = zarrmount_mounts()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    with pytest.raises(KeyError):
        with zarrmount.mount(archive, mountpoint=mountpoint, concat_dim="Time") as live:
            assert os.path.ismount(live.path)
            raise KeyError("the analysis failed")
    assert not os.path.ismount(mountpoint)
    assert mountpoint.exists(), "a mountpoint the caller gave is left in place"
    assert zarrmount_mounts() == before


def test_mounts_left_open_are_unmounted_when_the_interpreter_exits(archive):
    from conftest import require_fuse
    require_fuse()
    before = zarrmount_mounts()
    script = "import zarrmount, sys\nm = zarrmount.mount(sys.argv[1:], concat_dim='Time')\nprint(m.path, flush=True)\n"
    p = subprocess.run([os.sys.executable, "-c", script] + archive, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    path = p.stdout.strip()
    assert path.startswith("/"), p.stdout
    assert path not in zarrmount_mounts() and not os.path.exists(path)
    assert zarrmount_mounts() == before
    # An uncaught exception ends the interpreter the same way.
    p = subprocess.run([os.sys.executable, "-c", script + "raise SystemExit(3)\n"] + archive, capture_output=True, text=True, timeout=120)
    assert p.returncode == 3, p.stderr
    assert zarrmount_mounts() == before


def test_open_dataset_lives_as_long_as_the_dataset(archive):
    from conftest import require_fuse, wrf_originals
    require_fuse()
    before = zarrmount_mounts()
    expected = wrf_originals(archive, decode_cf=False)
    ds = zarrmount.open_dataset(archive, concat_dim="Time", mount_options={"no_cache": True}, decode_cf=False)
    try:
        assert len(zarrmount_mounts() - before) == 1
        assert (ds["T2"].values == expected["T2"].values).all()
        assert (ds["Time"].values == expected["Time"].values).all(), "the xarray keyword (decode_cf) reached xarray"
    finally:
        ds.close()
    assert zarrmount_mounts() == before
    assert not zarrmount._live_mounts


def test_a_failed_mount_raises_with_the_clis_message_and_leaves_nothing(tmp_path):
    from conftest import require_fuse
    require_fuse()
    before = zarrmount_mounts()
    leftovers = set(os.listdir(tempfile_dir()))
    with pytest.raises(zarrmount.ZarrmountError) as failure:
        zarrmount.mount(str(tmp_path / "none-*.nc"), concat_dim="Time")
    assert str(failure.value).startswith("error: "), str(failure.value)
    assert "none-*.nc" in str(failure.value)
    assert zarrmount_mounts() == before
    assert {n for n in os.listdir(tempfile_dir()) if n.startswith("zarrmount-")} <= leftovers


def tempfile_dir():
    import tempfile
    return tempfile.gettempdir()


def test_the_package_carries_the_binarys_version():
    out = subprocess.run([ZARRMOUNT, "--version"], capture_output=True, text=True, check=True).stdout
    binary_version = re.match(r"zarrmount (\S+) ", out).group(1)
    release, _, pre = binary_version.partition("-")
    assert zarrmount.__version__ == release + (".dev0" if pre == "dev" else ("+" + pre if pre else "")), (out, zarrmount.__version__)


def test_progress_goes_to_a_function_a_tqdm_bar_or_the_clis_lines(archive, tmp_path, capsys, monkeypatch):
    sources = os.path.dirname(archive[0]) + "/*.nc"
    seen = []
    zarrmount.scan(sources, manifest=tmp_path / "a.zmf", concat_dim="Time", no_cache=True, progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1] == (4, 4), seen
    assert all(t == 4 for _, t in seen) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    out = capsys.readouterr()
    assert "scanned 4 files" in out.err, "the summary is echoed"
    assert "4/4 files" not in out.err, "progress went to the function only"

    import tqdm  # noqa: F401 (tools/requirements.txt installs it: the bar is what a notebook shows)
    zarrmount.scan(sources, manifest=tmp_path / "b.zmf", concat_dim="Time", no_cache=True)
    err = capsys.readouterr().err
    assert re.search(r"zarrmount scan: 100%\|.*\| 4/4", err), err[-500:]

    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # as if tqdm were not installed
    zarrmount.scan(sources, manifest=tmp_path / "c.zmf", concat_dim="Time", no_cache=True)
    err = capsys.readouterr().err
    assert "[########################] 4/4 files" in err, err[-500:]
    assert "\x1b" not in err and "\r" not in err, "the CLI's lines, without the terminal's control characters"
