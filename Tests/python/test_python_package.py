"""The repository's Python package (python/, installed editable by tools/setup): the CLI's scan and
merge as functions, and scans sharded over a real dask.distributed LocalCluster with several worker
processes, one of them killed mid-scan; the Slurm and Kubernetes recipes of docs/scaling.md run as
plain processes (no scheduler runs here)."""
import os
import re
import stat
import subprocess

import pytest

import zarrmount
import zarrmount.dask
from conftest import REPO, make_wrf_sample

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
