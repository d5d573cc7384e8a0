"""Icechunk repositories written by the icechunk package (PyPI), read natively by
`zarrmount info --icechunk`: the snapshot each branch, tag and id names, against icechunk's own
`Repository.inspect_snapshot` document; each array's chunks by kind (native, inline, virtual)
against what was written; and the errors for a missing branch, a deleted tag, a bad id and a
directory that is not a repository."""
import datetime
import json
import os

import icechunk
import numpy as np
import pytest
import zarr

from conftest import run_vz


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
