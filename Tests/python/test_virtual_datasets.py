"""Virtual datasets (issue 3): `zarrmount scan --refs`, `zarrmount export --zarr` and real mounts
(`zarrmount mount`, stored and `--decoded`, v2 and v3) must decode, through xarray + zarr-python 3, to
exactly what xarray gives on the original netCDF-4/HDF5 files.

For every netCDF-readable fixture of tools/make-fixtures.py, every edge file and multi-file set of
tools/make-vz-sets.py, and every output (kerchunk references = Zarr v2, exported Zarr v2, exported Zarr
v3), decoded and raw (decode_cf=False): same variables, dims, coords, dtypes, attributes and
bit-identical values. Error cases exit 1 with one line naming the variable or file.

The command under test is .build/debug/zarrmount ($ZARRMOUNT_BIN, or any command line in
$ZARRMOUNT_VZ_CMD, e.g. the Python model Tests/python/vz_reference.py). Without scan/export the
tests skip, unless CI=true.
"""
import functools
import glob
import json
import os
import re
import warnings

import numpy as np
import pytest

from conftest import (UNOPENABLE, Allow, allowances, assert_same_values, combine_originals, compare_datasets,
                      ensure_fixtures, ensure_vz_sets, left_out, load_refs, norm_attrs, open_original,
                      open_virtual, probe_originals, ref_bytes, require_ok, run_vz)

SETS = ensure_vz_sets()
FIXTURES = ensure_fixtures()
FIXTURE_FILES = sorted(f for f in os.listdir(FIXTURES) if f.endswith((".h5", ".nc")))
EDGE_FILES = sorted(f for f in os.listdir(os.path.join(SETS, "edge")) if f.endswith((".h5", ".nc")))
SINGLE = [("fixtures", f) for f in FIXTURE_FILES] + [("edge", f) for f in EDGE_FILES]

MODES = [("refs", 2), ("zarr", 2), ("zarr", 3), ("mount", 2), ("mount", 3), ("mount-decoded", 2), ("mount-decoded", 3)]
MODE_IDS = ["refs-v2", "zarr-v2", "zarr-v3", "mount-v2", "mount-v3", "mount-decoded-v2", "mount-decoded-v3"]
# Single files are compared in fewer modes than sets: an exported Zarr v2 store holds exactly
# the referenced bytes and opens like the references (test_v2_store_with_zarr_and_same_bytes_as_refs),
# and a mounted v3 tree is file for file the exported v3 store (test_mounted_v3_tree_is_the_exported_store).
SINGLE_MODES = [m for m in MODES if m not in (("zarr", 2), ("mount", 3))]
SINGLE_MODE_IDS = [i for m, i in zip(MODES, MODE_IDS) if m in SINGLE_MODES]
DECODE = [True, False]
DECODE_IDS = ["cf", "raw"]



@pytest.fixture(autouse=True)
def _unmount_after_each_test(request):
    yield
    if "outputs" in request.fixturenames:
        request.getfixturevalue("outputs").unmount_all()


def _path(where, name):
    return os.path.join(FIXTURES if where == "fixtures" else os.path.join(SETS, "edge"), name)


@pytest.fixture(scope="session")
def probes():
    paths = [_path(w, n) for w, n in SINGLE]
    res = probe_originals(paths)
    for p in paths:
        r = res[p]
        if "error" in r:
            UNOPENABLE.append((os.path.relpath(p, os.path.dirname(os.path.dirname(p))), r["error"]))
        else:
            for g, s in r["groups"].items():
                if s != "ok":
                    UNOPENABLE.append(("%s group %s" % (os.path.basename(p), g), s))
    return res


# ------------------------------------------------------------------ single files: fixtures and edge cases

def _zarr_group(g):
    return None if g == "/" else g.lstrip("/")


@pytest.mark.parametrize("decode_cf", DECODE, ids=DECODE_IDS)
@pytest.mark.parametrize("mode", SINGLE_MODES, ids=SINGLE_MODE_IDS)
@pytest.mark.parametrize("where,name", SINGLE, ids=["%s/%s" % s for s in SINGLE])
def test_single_file(where, name, mode, decode_cf, outputs, probes):
    path = _path(where, name)
    probe = probes[path]
    ok_groups = [g for g, s in probe["groups"].items() if s == "ok"]
    kind, fmt = mode
    out, p = outputs.get("%s/%s" % (where, name), [path], [], kind, fmt)
    if not ok_groups:
        # not netCDF-readable: nothing to compare with; the command must still end cleanly
        assert p.returncode in (0, 1), p.stderr[-2000:]
        pytest.skip("xarray cannot open %s: %s" % (name, probe.get("error", probe["groups"])))
    require_ok(p, "%s %s" % (kind, name))
    allow = allowances(path, left_out(p))
    for g in ok_groups:
        with open_original(path, decode_cf, group=None if g == "/" else g) as exp, \
                open_virtual(kind, out, fmt, decode_cf, group=_zarr_group(g)) as act:
            compare_datasets(exp, act, "%s %s group %s" % (name, "-".join(map(str, mode)), g), decode_cf, allow)


# ------------------------------------------------------------------ multi-file sets

def _files(pattern):
    return sorted(glob.glob(os.path.join(SETS, pattern)))


SET_CASES = {
    # name: (sources as passed, flags, expected files in order, concat dim, combine_attrs)
    "aligned": ([os.path.join(SETS, "aligned", "aligned_*.nc")], ["--concat-dim", "time"],
                _files("aligned/*.nc"), "time", "override"),
    "aligned-drop-conflicts": ([os.path.join(SETS, "aligned", "aligned_*.nc")],
                               ["--concat-dim", "time", "--attrs", "drop_conflicts"],
                               _files("aligned/*.nc"), "time", "drop_conflicts"),
    "reordered-key": ([os.path.join(SETS, "reordered", n) for n in ("run_c.nc", "run_a.nc", "run_b.nc")],
                      ["--concat-dim", "time", "--order", "key"], _files("reordered/*.nc"), "time", "override"),
    "reordered-coordinate": ([os.path.join(SETS, "reordered", "*.nc")], ["--concat-dim", "time", "--order", "coordinate"],
                             [os.path.join(SETS, "reordered", n) for n in ("run_b.nc", "run_c.nc", "run_a.nc")],
                             "time", "override"),
    "oversized-unfiltered": ([os.path.join(SETS, "oversized-unfiltered", "*.nc")], ["--concat-dim", "time"],
                             _files("oversized-unfiltered/*.nc"), "time", "override"),
    "broken-skip": ([os.path.join(SETS, "broken", "*.nc")], ["--concat-dim", "time", "--on-error", "skip"],
                    _files("broken/part_0[12].nc"), "time", "override"),
    "stack": ([os.path.join(SETS, "stack", "member_*.nc")], ["--stack-dim", "member", "--stack-regex", r"member_(\d+)"],
              _files("stack/*.nc"), None, "override"),
}


@functools.lru_cache(maxsize=None)
def expected_set(name, decode_cf):
    sources, flags, files, concat, attrs = SET_CASES[name]
    if name == "stack":
        import pandas as pd
        import xarray as xr
        parts = [open_original(f, decode_cf) for f in files]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = xr.concat(parts, dim=pd.Index([1, 2, 3], name="member"), data_vars="all", coords="minimal",
                            compat="override", join="override", combine_attrs="override").load()
        for p in parts:
            p.close()
        return out
    return combine_originals(files, concat, decode_cf, combine_attrs=attrs)


@pytest.mark.parametrize("decode_cf", DECODE, ids=DECODE_IDS)
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("name", list(SET_CASES))
def test_set(name, mode, decode_cf, outputs, vz):
    sources, flags, files, concat, _ = SET_CASES[name]
    kind, fmt = mode
    out, p = outputs.get("set/" + name, sources, flags, kind, fmt)
    # --on-error skip: done, but a file was left out (exit 2 says so; 0 is accepted too)
    require_ok(p, "%s %s" % (kind, name), ok=(0, 2) if name == "broken-skip" else (0,))
    if name == "broken-skip":
        assert "part_03.nc" in p.stderr, "--on-error skip must warn about the skipped file:\n" + p.stderr
    exp = expected_set(name, decode_cf)
    with open_virtual(kind, out, fmt, decode_cf) as act:
        compare_datasets(exp, act, "%s %s" % (name, "-".join(map(str, mode))), decode_cf,
                         allowances(files[0], left_out(p)))


def test_oversized_chunks_reference_leading_bytes(outputs, vz):
    """netCDF's 1024-long chunks of a 1-long unlimited dim: the combined array is chunked 1 along time
    and each chunk references the leading bytes of one file's chunk."""
    out, p = outputs.get("set/oversized-unfiltered", *SET_CASES["oversized-unfiltered"][:2], "refs", 2)
    require_ok(p, "scan oversized-unfiltered")
    refs = load_refs(out)["refs"]
    for var, row in (("value", 4), ("profile", 24)):
        zarray = json.loads(refs[var + "/.zarray"])
        assert zarray["shape"][0] == 5 and zarray["chunks"][0] == 1, (var, zarray)
        keys = sorted(k for k in refs if k.startswith(var + "/") and not k.split("/")[-1].startswith("."))
        assert len(keys) == 5, keys
        for i, k in enumerate(keys):
            v = refs[k]
            assert isinstance(v, list) and v[2] == row, (k, v)
            assert os.path.basename(v[0]) == "step_%02d.nc" % i, (k, v)
    time_ref = refs["time/0"]
    assert isinstance(time_ref, str) and time_ref.startswith("base64:"), "the concat coordinate is inlined"


# ------------------------------------------------------------------ the WRF-like month (31 files)

WRF_VALUE_VARS = ["Time", "interp_levels", "T2", "U", "PSFC", "TSLB", "lat", "lon"]
WRF_SOURCES = [os.path.join(SETS, "wrf", "WRFDS_*.nc")]


@functools.lru_cache(maxsize=None)
def expected_wrf(decode_cf):
    return combine_originals(_files("wrf/*.nc"), "Time", decode_cf, variables=set(WRF_VALUE_VARS))


@pytest.mark.parametrize("decode_cf", DECODE, ids=DECODE_IDS)
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_wrf_month(mode, decode_cf, outputs, vz):
    files = _files("wrf/*.nc")
    assert len(files) >= 30
    kind, fmt = mode
    out, p = outputs.get("set/wrf", WRF_SOURCES, ["--concat-dim", "Time"], kind, fmt)
    require_ok(p, "%s wrf" % kind)
    with open_virtual(kind, out, fmt, decode_cf) as full, open_original(files[0], decode_cf) as first:
        # every variable: dims, dtype, attributes, shape (Time grows to the number of files)
        assert set(full.variables) == set(first.variables)
        assert norm_attrs(full.attrs) == norm_attrs(first.attrs)
        for v in first.variables:
            e, a = first[v].variable, full[v].variable
            assert e.dims == a.dims and e.dtype == a.dtype, (v, e.dims, a.dims, e.dtype, a.dtype)
            assert norm_attrs(e.attrs) == norm_attrs(a.attrs), (v, e.attrs, a.attrs)
            want = tuple(len(files) if d == "Time" else n for d, n in zip(e.dims, e.shape))
            assert a.shape == want, (v, a.shape, want)
        # a subset of variables: every value, bit for bit
        exp = expected_wrf(decode_cf)
        act = full[WRF_VALUE_VARS]
        compare_datasets(exp, act, "wrf %s" % "-".join(map(str, mode)), decode_cf, Allow())


# ------------------------------------------------------------------ errors

ERROR_CASES = {
    # name: (sources, flags, substrings that one stderr line must hold, any-of file names on that line)
    "misaligned": ([os.path.join(SETS, "misaligned", "*.nc")], ["--concat-dim", "time"], ["temp"],
                   ["mis_00.nc", "mis_01.nc", "mis_02.nc"]),
    "oversized-filtered": ([os.path.join(SETS, "oversized-filtered", "*.nc")], ["--concat-dim", "time"], ["value"],
                           ["step_%02d.nc" % i for i in range(5)]),
    "codec-mismatch": ([os.path.join(SETS, "codec-mismatch", "*.nc")], ["--concat-dim", "time"], ["temp", "codec_01.nc"],
                       []),
    "dtype-mismatch": ([os.path.join(SETS, "dtype-mismatch", "*.nc")], ["--concat-dim", "time"], ["temp", "dtype_01.nc"],
                       []),
    "broken": ([os.path.join(SETS, "broken", "*.nc")], ["--concat-dim", "time"], ["part_03.nc"], []),
    "broken-explicit-fail": ([os.path.join(SETS, "broken", "*.nc")], ["--concat-dim", "time", "--on-error", "fail"],
                             ["part_03.nc"], []),
}


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("name", list(ERROR_CASES))
def test_error(name, mode, tmp_path, vz):
    sources, flags, must, any_of = ERROR_CASES[name]
    kind, fmt = mode
    if kind == "refs":
        p = run_vz(["scan"] + sources + flags + ["--refs", tmp_path / "out.json"])
    elif kind.startswith("mount"):
        (tmp_path / "mnt").mkdir()
        p = run_vz(["mount"] + sources + flags + ["--zarr-format", fmt, tmp_path / "mnt"])
        if p.returncode == 0:
            run_vz(["unmount", tmp_path / "mnt"])
    else:
        p = run_vz(["export"] + sources + flags + ["--zarr", tmp_path / "out.zarr", "--zarr-format", fmt])
    assert p.returncode == 1, "expected exit 1, got %d\n%s" % (p.returncode, p.stderr[-2000:])
    lines = [ln for ln in p.stderr.splitlines() if all(m in ln for m in must)
             and (not any_of or any(f in ln for f in any_of))]
    assert lines, "no stderr line names %s%s:\n%s" % (must, " and one of %s" % any_of if any_of else "", p.stderr[-2000:])
    assert "Traceback" not in p.stderr and "Fatal error" not in p.stderr, p.stderr[-2000:]


# ------------------------------------------------------------------ sources: globs, YAML configs

def test_yaml_config_equals_flags(tmp_path, outputs, vz):
    flags_out, p = outputs.get("set/aligned", *SET_CASES["aligned"][:2], "refs", 2)
    require_ok(p, "scan aligned")
    cfg = tmp_path / "aligned.yaml"
    cfg.write_text("# a one-off mount config\nsources:\n  - %s\nconcat_dim: time\norder: key\nattrs: first\n"
                   "zarr_format: 2\non_error: fail\n" % os.path.join(SETS, "aligned", "aligned_*.nc"))
    out = tmp_path / "yaml.json"
    p = run_vz(["scan", cfg, "--refs", out])
    require_ok(p, "scan aligned.yaml")
    assert load_refs(out) == load_refs(flags_out)


def test_yaml_config_export_v3(tmp_path, vz):
    cfg = tmp_path / "stack.yaml"
    cfg.write_text("sources:\n  - %s\n  - %s\nconcat_dim: time\nzarr_format: 3\n" % (
        os.path.join(SETS, "aligned", "aligned_0[01].nc"), os.path.join(SETS, "aligned", "aligned_0[23].nc")))
    out = tmp_path / "yaml.zarr"
    p = run_vz(["export", cfg, "--zarr", out])
    require_ok(p, "export aligned.yaml")
    root = json.loads((out / "zarr.json").read_text())
    assert root["zarr_format"] == 3 and root["node_type"] == "group"
    exp = expected_set("aligned", True)
    with open_virtual("zarr", str(out), 3) as act:
        compare_datasets(exp, act, "aligned via YAML, v3", True, allowances(SET_CASES["aligned"][2][0]))


def test_yaml_config_bad_key(tmp_path, vz):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("sources:\n  - %s\nconcat_dimm: time\n" % os.path.join(SETS, "aligned", "*.nc"))
    p = run_vz(["scan", cfg, "--refs", tmp_path / "out.json"])
    assert p.returncode == 1, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if "concat_dimm" in ln and re.search(r"\b3\b", ln)]
    assert lines, "the error must name the key and its line (3):\n" + p.stderr


# ------------------------------------------------------------------ the reference JSON itself

def test_refs_format(outputs, tmp_path, vz):
    out, p = outputs.get("set/aligned", *SET_CASES["aligned"][:2], "refs", 2)
    require_ok(p, "scan aligned")
    doc = load_refs(out)
    assert doc["version"] == 1 and set(doc) <= {"version", "refs", "templates", "gen"}
    refs = doc["refs"]
    for key in (".zgroup", ".zattrs", "temp/.zarray", "temp/.zattrs", "time/.zarray", "elevation/.zarray"):
        assert key in refs, key
        assert isinstance(refs[key], str), "metadata values are JSON text"
        json.loads(refs[key])
    assert json.loads(refs[".zgroup"]) == {"zarr_format": 2}
    zarray = json.loads(refs["temp/.zarray"])
    assert zarray["zarr_format"] == 2 and zarray["shape"] == [12, 5, 7] and zarray["chunks"] == [3, 5, 7]
    assert zarray["dtype"] == "<f4" and zarray["order"] == "C"
    assert zarray["compressor"] == {"id": "zlib", "level": 4}, "portable form: zlib as the compressor"
    assert zarray["filters"] == [{"id": "shuffle", "elementsize": 4}]
    assert zarray.get("dimension_separator", ".") == "."
    assert json.loads(refs["temp/.zattrs"])["_ARRAY_DIMENSIONS"] == ["time", "lat", "lon"]
    files = _files("aligned/*.nc")
    for i in range(4):
        v = refs["temp/%d.0.0" % i]
        assert isinstance(v, list) and len(v) == 3, v
        assert os.path.isabs(v[0]) and os.path.samefile(v[0], files[i]), v
        assert isinstance(v[1], int) and isinstance(v[2], int) and v[2] > 0
    for k, v in refs.items():
        if k.split("/")[-1].startswith("."):
            continue
        assert isinstance(v, list) or v.startswith("base64:"), (k, v[:40])
    # consolidated metadata in the refs (sub-groups cannot be listed through reference:// without it)
    zmeta = json.loads(refs[".zmetadata"])
    assert zmeta["zarr_consolidated_format"] == 1
    meta = {k: json.loads(v) for k, v in refs.items() if k.split("/")[-1] in (".zgroup", ".zattrs", ".zarray")}
    assert zmeta["metadata"] == meta
    # deterministic: the same bytes again
    again = tmp_path / "again.json"
    p2 = run_vz(["scan"] + SET_CASES["aligned"][0] + SET_CASES["aligned"][1] + ["--refs", again])
    require_ok(p2, "scan aligned again")
    with open(out, "rb") as a, open(again, "rb") as b:
        assert a.read() == b.read(), "reference JSON must be deterministic"


def test_large_contiguous_split(outputs, vz):
    path = os.path.join(SETS, "edge", "large-contiguous.nc")
    out, p = outputs.get("edge/large-contiguous.nc", [path], [], "refs", 2)
    require_ok(p, "scan large-contiguous.nc")
    refs = load_refs(out)["refs"]
    for var, rows in (("big_even", 4096), ("big_prime", 4099)):
        zarray = json.loads(refs[var + "/.zarray"])
        assert zarray["shape"][0] == rows
        assert zarray["chunks"][0] < rows, "%s (> 16 MiB, uncompressed, contiguous) must be split" % var
        assert zarray["compressor"] is None and not zarray["filters"]


# ------------------------------------------------------------------ stores: layout, bytes, zarr directly

def test_store_layout_v2(outputs, vz):
    out, p = outputs.get("set/aligned", *SET_CASES["aligned"][:2], "zarr", 2)
    require_ok(p, "export aligned v2")
    for key in (".zgroup", ".zattrs", ".zmetadata", "temp/.zarray", "temp/.zattrs", "temp/0.0.0", "temp/3.0.0"):
        assert os.path.isfile(os.path.join(out, key)), key
    with open(os.path.join(out, ".zmetadata")) as fh:
        zmeta = json.load(fh)
    assert zmeta["zarr_consolidated_format"] == 1
    with open(os.path.join(out, "temp", ".zarray")) as fh:
        assert zmeta["metadata"]["temp/.zarray"] == json.load(fh)
    assert zmeta["metadata"]["temp/.zattrs"]["_ARRAY_DIMENSIONS"] == ["time", "lat", "lon"]


def test_store_layout_v3(outputs, vz):
    out, p = outputs.get("set/aligned", *SET_CASES["aligned"][:2], "zarr", 3)
    require_ok(p, "export aligned v3")
    with open(os.path.join(out, "zarr.json")) as fh:
        root = json.load(fh)
    assert root["zarr_format"] == 3 and root["node_type"] == "group"
    cm = root["consolidated_metadata"]
    assert cm["kind"] == "inline"
    temp = cm["metadata"]["temp"]
    with open(os.path.join(out, "temp", "zarr.json")) as fh:
        assert json.load(fh) == temp
    assert temp["node_type"] == "array" and temp["dimension_names"] == ["time", "lat", "lon"]
    assert temp["data_type"] == "float32" and temp["shape"] == [12, 5, 7]
    names = [c["name"] for c in temp["codecs"]]
    assert names == ["bytes", "numcodecs.shuffle", "numcodecs.zlib"], names
    assert "_ARRAY_DIMENSIONS" not in temp["attributes"]


def _all_cases():
    cases = [("%s/%s" % s, [_path(*s)], []) for s in SINGLE]
    cases += [("set/" + n, c[0], c[1]) for n, c in SET_CASES.items()]
    cases.append(("set/wrf", WRF_SOURCES, ["--concat-dim", "Time"]))
    return cases


def _require_both(name, sources, probes, first, second):
    """Both runs succeeded (a set that skips a file may exit 2), or the test is skipped for a single
    file netCDF-C cannot read (there is nothing to hold it against). Returns the accepted exits."""
    ok = (0, 2) if name == "set/broken-skip" else (0,)
    if all(p.returncode in ok for _, p in (first, second)):
        return ok
    if not name.startswith("set/") and not any(s == "ok" for s in probes[sources[0]]["groups"].values()):
        pytest.skip("not netCDF-readable: %s" % name)
    for what, p in (first, second):
        require_ok(p, "%s %s" % (what, name), ok)
    return ok


@pytest.mark.parametrize("name,sources,flags", _all_cases(), ids=[c[0] for c in _all_cases()])
def test_v2_store_with_zarr_and_same_bytes_as_refs(name, sources, flags, outputs, probes):
    """zarr 3 opens the exported v2 store directly and reads every array; every chunk file of the
    store holds exactly the bytes its reference names (export copies stored bytes, no re-encoding)."""
    import zarr
    store, p = outputs.get(name, sources, flags, "zarr", 2)
    refs_path, p2 = outputs.get(name, sources, flags, "refs", 2)
    ok = _require_both(name, sources, probes, ("export", p), ("scan", p2))
    refs = load_refs(refs_path)["refs"]
    for k, v in refs.items():
        if k.split("/")[-1].startswith("."):
            continue
        if any(len(part.encode()) > 255 for part in k.split("/")):
            # No file system names it: the export leaves the array out by name (test_trust.py).
            assert "%s… left out" % k[:60] in p.stderr, k[:60]
            continue
        f = os.path.join(store, k)
        assert os.path.isfile(f), "store lacks chunk %s" % k
        with open(f, "rb") as fh:
            assert fh.read() == ref_bytes(v), "chunk %s differs from its reference" % k
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = zarr.open_group(store, mode="r", zarr_format=2)
        r = zarr.open_group("reference://", mode="r", zarr_format=2, storage_options={"fo": refs_path},
                            use_consolidated=False)
        n = 0
        for path, arr in g.members(max_depth=None):
            if not isinstance(arr, zarr.Array):
                continue
            if name == "set/wrf" and path not in WRF_VALUE_VARS:
                assert arr.shape == r[path].shape and arr.dtype == r[path].dtype
                continue  # (the byte check above covered its chunks; decoding all 39 x 31 is slow)
            data = np.asarray(arr[...])
            assert data.shape == arr.shape
            assert_same_values(np.asarray(r[path][...]), data, "%s %s" % (name, path))
            n += 1


@pytest.mark.parametrize("name,sources,flags", _all_cases(), ids=[c[0] for c in _all_cases()])
def test_mounted_v3_tree_is_the_exported_store(name, sources, flags, outputs, probes):
    """The mounted Zarr v3 tree and the exported v3 store list the same files with the same bytes:
    what the readers see through one is what they see through the other."""
    store, p = outputs.get(name, sources, flags, "zarr", 3)
    mount, p2 = outputs.get(name, sources, flags, "mount", 3)
    _require_both(name, sources, probes, ("export", p), ("mount", p2))

    def tree(root):
        found = {}
        for directory, _, files in os.walk(root):
            for f in files:
                full = os.path.join(directory, f)
                found[os.path.relpath(full, root)] = full
        return found

    exported, mounted = tree(store), tree(mount)
    assert sorted(mounted) == sorted(exported), "%s: files only mounted %s, only exported %s" % (
        name, sorted(set(mounted) - set(exported))[:5], sorted(set(exported) - set(mounted))[:5])
    assert len(exported) > 1, "%s: the store holds its metadata and chunks" % name
    for key, path in exported.items():
        with open(path, "rb") as a, open(mounted[key], "rb") as b:
            assert a.read() == b.read(), "%s: %s differs between the mount and the export" % (name, key)


@pytest.mark.parametrize("where,name", [("edge", "attributes.nc"), ("fixtures", "types-latest.h5"),
                                        ("fixtures", "netcdf3-64bit-data.nc")])
def test_a_cached_scan_gives_the_references_a_fresh_scan_gives(where, name, tmp_path, vz):
    """The manifest cache keeps results as JSON text: NaN and infinite attributes (Python's bare
    literals) and -0.0 must come back as they went in, or a rescan would serve "NaN" strings and 0.0."""
    path = _path(where, name)
    cache = str(tmp_path / "cache")
    texts = []
    for run in range(2):
        out = str(tmp_path / ("refs-%d.json" % run))
        p = run_vz(["scan", path, "--cache-dir", cache, "--refs", out])
        require_ok(p, "scan %d of %s" % (run, name))
        assert ("(1 from the manifest cache)" in p.stderr) == (run == 1), p.stderr[-1000:]
        with open(out) as fh:
            texts.append(fh.read())
    assert texts[0] == texts[1]
