"""Icechunk repositories written by the icechunk package (PyPI), read natively by
`zarrmount info --icechunk`: the snapshot each branch, tag and id names, against icechunk's own
`Repository.inspect_snapshot` document; each array's chunks by kind (native, inline, virtual)
against what was written; and the errors for a missing branch, a deleted tag, a bad id and a
directory that is not a repository."""
import datetime
import json
import os
import re

import icechunk
import numpy as np
import pytest
import zarr

from conftest import run_vz, vz_command, zarrmount_mounts


def _info(root, *args):
    p = run_vz(["info", "--icechunk", root, "--json"] + list(args))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _inspect(repo, snapshot_id):
    document = json.loads(repo.inspect_snapshot(snapshot_id))
    document.pop("metadata")
    return document


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """Three commits: two on main (the second rewrites part of an array and adds one), the first
    tagged v1; a branch dev from the first with a commit of its own; virtual chunks in a raw
    file beside the repository."""
    base = tmp_path_factory.mktemp("icechunk")
    root = str(base / "repo")
    raw = base / "raw.bin"
    raw.write_bytes(np.arange(64, dtype="<f4").tobytes())
    config = icechunk.RepositoryConfig.default()
    prefix = "file://%s/" % base
    config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(str(base))))
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(root), config,
                                      icechunk.containers_credentials({prefix: None}))
    session = repo.writable_session("main")
    group = zarr.group(store=session.store)
    temp = group.create_array("temp", shape=(40, 60), chunks=(20, 30), dtype="f4", dimension_names=["y", "x"])
    temp[:] = np.arange(2400, dtype="f4").reshape(40, 60)
    small = group.create_array("small", shape=(3,), chunks=(3,), dtype="i2")
    small[:] = [1, 2, 3]
    group.create_group("sub")
    first = session.commit("first")
    repo.create_tag("v1", first)
    session = repo.writable_session("main")
    group = zarr.open_group(store=session.store)
    group["temp"][0:20, 0:30] = -1
    virtual = group.create_array("virtual", shape=(64,), chunks=(16,), dtype="<f4", compressors=None, fill_value=0)
    # A chunk never written reads as the array's fill value.
    sparse = group.create_array("sparse", shape=(8,), chunks=(4,), dtype="i4", fill_value=-5)
    sparse[0:4] = [1, 2, 3, 4]
    modified = datetime.datetime.fromtimestamp(raw.stat().st_mtime + 1, tz=datetime.timezone.utc)
    for i in range(4):
        session.store.set_virtual_ref("virtual/c/%d" % i, "%sraw.bin" % prefix, offset=64 * i, length=64, checksum=modified)
    second = session.commit("second")
    repo.create_branch("dev", first)
    session = repo.writable_session("dev")
    zarr.open_group(store=session.store)["small"][:] = [7, 8, 9]
    third = session.commit("on dev")
    return {"root": root, "repo": repo, "first": first, "second": second, "third": third}


def test_each_reference_names_the_snapshot_icechunk_does(repository):
    repo, root = repository["repo"], repository["root"]
    for args, snapshot_id in [([], repository["second"]), (["--branch", "main"], repository["second"]),
                              (["--tag", "v1"], repository["first"]), (["--branch", "dev"], repository["third"]),
                              (["--snapshot", repository["first"]], repository["first"])]:
        got = _info(root, *args)
        chunks = got.pop("chunks")
        assert got == _inspect(repo, snapshot_id), args
        assert set(chunks) == {node["path"] for node in got["nodes"] if node["node_type"] == "array"}
    assert _info(root, "--tag", "v1")["parent_id"] == "1CECHNKREP0F1RSTCMT0"
    assert _info(root)["parent_id"] == repository["first"]


def test_chunks_are_counted_by_kind(repository):
    root = repository["root"]
    first = _info(root, "--tag", "v1")["chunks"]
    # 20 x 30 float32 chunks (2,400 bytes) are stored as objects; a 6-byte chunk is inline.
    assert first == {"/temp": {"native": 4, "inline": 0, "virtual": 0}, "/small": {"native": 0, "inline": 1, "virtual": 0}}
    second = _info(root)["chunks"]
    assert second["/virtual"] == {"native": 0, "inline": 0, "virtual": 4}
    # The rewritten chunk holds one value, which compresses under icechunk's inline threshold
    # (512 bytes): it moves into the manifest, and the three others stay the first commit's
    # objects. The repository holds those four chunk objects and no other.
    assert second["/temp"] == {"native": 3, "inline": 1, "virtual": 0}
    assert len(os.listdir(os.path.join(root, "chunks"))) == 4
    p = run_vz(["info", "--icechunk", root])
    assert p.returncode == 0, p.stderr
    assert "snapshot %s (branch main)" % repository["second"] in p.stdout and '"second"' in p.stdout
    assert "/virtual: shape [64], chunks [16]; 0 native, 0 inline, 4 virtual chunks in 1 objects" in p.stdout, p.stdout
    assert "/temp (y, x): shape [40, 60], chunks [20, 30]; 3 native, 1 inline, 0 virtual chunks" in p.stdout, p.stdout


def test_errors_name_the_reference_and_say_what_exists(repository, tmp_path):
    repo, root = repository["repo"], repository["root"]
    p = run_vz(["info", "--icechunk", root, "--branch", "nope"])
    assert p.returncode == 1 and 'error: the repository has no branch "nope" (its branches: dev, main)' in p.stderr, p.stderr
    p = run_vz(["info", "--icechunk", root, "--tag", "v9"])
    assert p.returncode == 1 and 'no tag "v9" (its tags: v1)' in p.stderr, p.stderr
    repo.create_tag("gone", repository["first"])
    repo.delete_tag("gone")
    p = run_vz(["info", "--icechunk", root, "--tag", "gone"])
    assert p.returncode == 1 and 'tag "gone" was deleted' in p.stderr, p.stderr
    p = run_vz(["info", "--icechunk", root, "--snapshot", "NOTANID"])
    assert p.returncode == 1 and '"NOTANID" is not an Icechunk object id' in p.stderr, p.stderr
    p = run_vz(["info", "--icechunk", root, "--snapshot", "00000000000000000000"])
    assert p.returncode == 1 and "snapshots/00000000000000000000 is missing" in p.stderr, p.stderr
    p = run_vz(["info", "--icechunk", str(tmp_path)])
    assert p.returncode == 1 and "is not an Icechunk repository" in p.stderr, p.stderr
    p = run_vz(["info", "--icechunk", root, "--tag", "v1", "--branch", "main"])
    assert p.returncode == 64, p.stderr


def test_a_damaged_snapshot_is_an_error_naming_the_file(repository, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(repository["root"], copy)
    path = copy / "snapshots" / repository["second"]
    data = bytearray(path.read_bytes())
    for cut in (10, 39, len(data) // 2):
        path.write_bytes(bytes(data[:cut]))
        p = run_vz(["info", "--icechunk", copy])
        assert p.returncode == 1, (cut, p.stderr)
        assert p.stderr.startswith("error: snapshots/%s: " % repository["second"]), (cut, p.stderr)


class _Mounted:
    def __init__(self, root, mountpoint, *args):
        self.mountpoint = str(mountpoint)
        os.makedirs(self.mountpoint, exist_ok=True)
        self.result = run_vz(["mount", "--icechunk", root] + list(args) + [self.mountpoint])

    def __enter__(self):
        assert self.result.returncode == 0, self.result.stderr
        return self.mountpoint

    def __exit__(self, *exc):
        u = run_vz(["unmount", self.mountpoint])
        assert u.returncode == 0, u.stderr


def _session_group(repo, **reference):
    return zarr.open_group(store=repo.readonly_session(**reference).store, mode="r")


def test_each_snapshot_mounts_as_icechunk_reads_it(repository, tmp_path):
    from conftest import require_fuse
    require_fuse()
    repo, root = repository["repo"], repository["root"]
    allow = ["--allow-source", os.path.dirname(root) + "/"]
    for args, reference in [([], {"branch": "main"}), (["--tag", "v1"], {"tag": "v1"}), (["--branch", "dev"], {"branch": "dev"}),
                            (["--snapshot", repository["first"]], {"snapshot_id": repository["first"]})]:
        expected = _session_group(repo, **reference)
        with _Mounted(root, tmp_path / ("mnt-%s" % len(args)), *(args + allow)) as mountpoint:
            served = zarr.open_group(mountpoint, mode="r")
            assert sorted(served.array_keys()) == sorted(expected.array_keys()), args
            assert sorted(served.group_keys()) == sorted(expected.group_keys()), args
            for name in expected.array_keys():
                assert served[name].shape == expected[name].shape and served[name].dtype == expected[name].dtype, (args, name)
                assert np.array_equal(served[name][...], expected[name][...]), (args, name)
            if "virtual" in expected.array_keys():
                assert np.array_equal(served["virtual"][...], np.arange(64, dtype="<f4"))
                assert served["sparse"][...].tolist() == [1, 2, 3, 4, -5, -5, -5, -5]
            assert served["temp"].attrs["_ARRAY_DIMENSIONS"] == ["y", "x"]
    assert not any("mnt-" in m for m in zarrmount_mounts())
    # The Python package mounts a repository the same way (options as keyword arguments).
    import zarrmount
    os.environ.setdefault("ZARRMOUNT_BIN", vz_command()[0])
    with zarrmount.mount(None, icechunk=root, tag="v1", progress=False) as live:
        assert zarr.open_group(live.path, mode="r")["small"][...].tolist() == [1, 2, 3]
    assert not live.mounted
    refused = run_vz(["mount", "--icechunk", root, "--zarr-format", "3", str(tmp_path / "mnt-v3")])
    assert refused.returncode == 64 and "served as Zarr v2" in refused.stderr, refused.stderr


def test_a_local_repository_named_by_a_file_url_still_lists_its_chunk_objects(repository, tmp_path):
    """A local repository's chunk objects are listed (their owners and modes matter under
    --allow-other, and their identities guard every read), whether the repository is named by a
    path or by a file:// URL; only a remote repository takes their sizes from the manifests."""
    from conftest import require_fuse
    require_fuse()
    root = repository["root"]
    allow = ["--allow-source", os.path.dirname(root) + "/"]
    for name in (root, "file://" + root):
        mountpoint = tmp_path / ("mnt-%d" % name.startswith("file://"))
        mountpoint.mkdir()
        p = run_vz(["mount", "--icechunk", name, "--log-level", "info", *allow, mountpoint])
        assert p.returncode == 0, p.stderr
        try:
            [read] = [line for line in p.stderr.splitlines() if "references read" in line]
            objects, listed = (re.search(key + r"=(\d+)", read).group(1) for key in ("objects", "listed"))
            assert int(objects) > 0 and listed == objects, (name, read)
        finally:
            assert run_vz(["unmount", mountpoint]).returncode == 0


def test_an_xarray_dataset_written_to_icechunk_reads_the_same_through_the_mount(tmp_path):
    import xarray as xr
    from conftest import require_fuse
    require_fuse()
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "repo")))
    session = repo.writable_session("main")
    ds = xr.Dataset(
        {"T2": (("Time", "y", "x"), (np.arange(4 * 30 * 40, dtype="f4").reshape(4, 30, 40) % 97) + 250, {"units": "K"}),
         "mask": (("y", "x"), np.arange(30 * 40).reshape(30, 40) % 3 == 0)},
        coords={"Time": np.array(["2060-01-01", "2060-01-02", "2060-01-03", "2060-01-04"], dtype="datetime64[ns]"),
                "y": np.arange(30.0), "x": np.arange(40.0)},
        attrs={"title": "WRF-like"})
    ds.to_zarr(session.store, consolidated=False, encoding={"T2": {"chunks": (1, 30, 40)}})
    session.commit("xarray")
    expected = xr.open_zarr(repo.readonly_session(branch="main").store, consolidated=False).load()
    with _Mounted(str(tmp_path / "repo"), tmp_path / "mnt") as mountpoint:
        with xr.open_zarr(mountpoint) as served:
            xr.testing.assert_identical(served.load(), expected)
            assert served["T2"].attrs["units"] == "K" and served.attrs["title"] == "WRF-like"


def test_virtual_chunks_are_confined_and_checked_against_the_recorded_time(repository, tmp_path):
    root = repository["root"]
    (tmp_path / "mnt").mkdir()
    refused = run_vz(["mount", "--icechunk", root, str(tmp_path / "mnt")])
    assert refused.returncode == 1, refused.stderr
    assert "raw.bin" in refused.stderr and "--allow-source" in refused.stderr, refused.stderr
    assert not any(str(tmp_path) in m for m in zarrmount_mounts())
    # The raw file modified after the repository recorded it: its chunks are refused, by name.
    original = os.path.join(os.path.dirname(root), "raw.bin")
    saved = os.stat(original)
    try:
        os.utime(original, (saved.st_atime, saved.st_mtime + 3600))
        p = run_vz(["mount", "--icechunk", root, "--allow-source", os.path.dirname(root) + "/", str(tmp_path / "mnt")])
        assert p.returncode == 1, p.stderr
        assert "raw.bin, which was modified after the repository recorded it" in p.stderr, p.stderr
    finally:
        os.utime(original, (saved.st_atime, saved.st_mtime))
    assert not any(str(tmp_path) in m for m in zarrmount_mounts())


def test_a_virtualizarr_repository_of_the_sample_archive_reads_as_the_original_files(tmp_path):
    """VirtualiZarr (the issue's path) writes the sample archive's chunks into a repository as
    virtual references (`to_icechunk`): the mount serves all of them, equal to xarray on the
    netCDF files and to xarray reading the repository through icechunk."""
    import warnings

    import xarray as xr
    from conftest import make_wrf_sample, require_fuse
    from obstore.store import LocalStore
    from virtualizarr import open_virtual_dataset
    from virtualizarr.parsers import HDFParser
    require_fuse()
    files = make_wrf_sample(tmp_path / "archive", days=2)
    prefix = "file://%s/" % (tmp_path / "archive")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from virtualizarr.registry import ObjectStoreRegistry
        registry = ObjectStoreRegistry({"file://": LocalStore()})
        virtual = [open_virtual_dataset(url="file://" + f, parser=HDFParser(), registry=registry, loadable_variables=["Time"])
                   for f in files]
        combined = xr.concat(virtual, dim="Time", data_vars="all", coords="minimal", compat="override", combine_attrs="override")
        config = icechunk.RepositoryConfig.default()
        config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(str(tmp_path / "archive"))))
        credentials = icechunk.containers_credentials({prefix: None})
        repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "repo")), config, credentials)
        session = repo.writable_session("main")
        combined.vz.to_icechunk(session.store)
        session.commit("the sample archive, virtual")
        through_icechunk = xr.open_zarr(repo.readonly_session(branch="main").store, consolidated=False, zarr_format=3).load()
    originals = xr.open_mfdataset(files, combine="nested", concat_dim="Time", engine="netcdf4").load()
    described = _info(str(tmp_path / "repo"))["chunks"]
    assert described["/T2"] == {"native": 0, "inline": 0, "virtual": 2}
    with _Mounted(str(tmp_path / "repo"), tmp_path / "mnt", "--allow-source", str(tmp_path / "archive") + "/") as mountpoint:
        served = xr.open_zarr(mountpoint, consolidated=False).load()
    assert set(served.data_vars) == set(originals.data_vars) and len(served.data_vars) > 30
    for name in originals.data_vars:
        assert np.array_equal(served[name].values, originals[name].values, equal_nan=True), name
        assert np.array_equal(served[name].values, through_icechunk[name].values, equal_nan=True), name
    assert np.array_equal(served["Time"].values, originals["Time"].values)


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """moto's S3 server (tools/services.py), with the test credentials in the environment."""
    from conftest import started_services
    yield from started_services(str(tmp_path_factory.mktemp("icechunk-services")), lifetime=1800)


def test_a_repository_in_s3_mounts_as_icechunk_reads_it(moto, tmp_path):
    import subprocess

    import boto3
    from botocore.config import Config
    from conftest import require_fuse, vz_command
    require_fuse()
    endpoint = moto["ZARRMOUNT_S3_ENDPOINT"]
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing",
                 config=Config(s3={"addressing_style": "path"})).create_bucket(Bucket="zm-icechunk")
    storage = icechunk.s3_storage(bucket="zm-icechunk", prefix="archive/repo", endpoint_url=endpoint, allow_http=True, region="us-east-1",
                                  access_key_id="testing", secret_access_key="testing", force_path_style=True)
    repo = icechunk.Repository.create(storage)
    session = repo.writable_session("main")
    group = zarr.group(store=session.store)
    data = group.create_array("data", shape=(30, 40), chunks=(10, 20), dtype="f8", dimension_names=["y", "x"])
    data[:] = np.random.default_rng(7).random((30, 40))  # incompressible: stored as chunk objects, not inline
    group.create_array("flags", shape=(4,), chunks=(4,), dtype="u1")[:] = [1, 0, 1, 1]
    snapshot = session.commit("in S3")
    repo.create_tag("v1", snapshot)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    root = "s3://zm-icechunk/archive/repo"
    p = subprocess.run(vz_command() + ["info", "--icechunk", root, "--tag", "v1", "--json", "--endpoint-url", endpoint],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got.pop("chunks") == {"/data": {"native": 6, "inline": 0, "virtual": 0}, "/flags": {"native": 0, "inline": 1, "virtual": 0}}
    assert got == _inspect(repo, snapshot)
    p = subprocess.run(vz_command() + ["info", "--icechunk", root, "--branch", "nope", "--endpoint-url", endpoint],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 1 and 'no branch "nope" (its branches: main)' in p.stderr, p.stderr
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    p = subprocess.run(vz_command() + ["mount", "--icechunk", root, "--endpoint-url", endpoint, "--log-level", "info", str(mountpoint)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    # The six chunk objects are never rewritten: their sizes come from the manifest, with no HEAD.
    [read] = [line for line in p.stderr.splitlines() if "references read" in line]
    assert "objects=6" in read and "listed=0" in read, read
    try:
        served = zarr.open_group(str(mountpoint), mode="r")
        expected = _session_group(repo, branch="main")
        for name in ("data", "flags"):
            assert np.array_equal(served[name][...], expected[name][...]), name
    finally:
        assert run_vz(["unmount", str(mountpoint)]).returncode == 0


def test_virtual_chunks_in_s3_are_checked_against_the_recorded_etag(moto, tmp_path):
    import subprocess

    import boto3
    from botocore.config import Config
    from conftest import require_fuse, vz_command
    require_fuse()
    endpoint = moto["ZARRMOUNT_S3_ENDPOINT"]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing",
                      config=Config(s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket="zm-virtual")
    s3.put_object(Bucket="zm-virtual", Key="raw/values.bin", Body=np.arange(32, dtype="<i4").tobytes())
    etag = s3.head_object(Bucket="zm-virtual", Key="raw/values.bin")["ETag"]
    prefix = "s3://zm-virtual/raw/"
    config = icechunk.RepositoryConfig.default()
    config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(
        prefix, icechunk.s3_store(region="us-east-1", endpoint_url=endpoint, allow_http=True, force_path_style=True)))
    credentials = icechunk.containers_credentials(
        {prefix: icechunk.s3_credentials(access_key_id="testing", secret_access_key="testing")})
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "repo")), config, credentials)
    session = repo.writable_session("main")
    group = zarr.group(store=session.store)
    group.create_array("good", shape=(16,), chunks=(8,), dtype="<i4", compressors=None)
    group.create_array("stale", shape=(8,), chunks=(8,), dtype="<i4", compressors=None)
    for i in range(2):
        session.store.set_virtual_ref("good/c/%d" % i, prefix + "values.bin", offset=32 * i, length=32, checksum=etag)
    session.commit("etag recorded")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    common = ["--allow-source", prefix, "--endpoint-url", endpoint, str(mountpoint)]
    p = subprocess.run(vz_command() + ["mount", "--icechunk", str(tmp_path / "repo")] + common, capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    try:
        assert zarr.open_group(str(mountpoint), mode="r")["good"][...].tolist() == list(range(16))
    finally:
        assert run_vz(["unmount", str(mountpoint)]).returncode == 0
    # The object rewritten after the references were recorded: its ETag is another.
    session = repo.writable_session("main")
    session.store.set_virtual_ref("stale/c/0", prefix + "values.bin", offset=0, length=32, checksum='"0123456789abcdef0123456789abcdef"')
    session.commit("a stale etag")
    p = subprocess.run(vz_command() + ["mount", "--icechunk", str(tmp_path / "repo")] + common, capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 1, p.stderr
    assert "values.bin, whose ETag is %s" % etag in p.stderr, p.stderr
    assert 'not "0123456789abcdef0123456789abcdef" as the repository recorded' in p.stderr, p.stderr
