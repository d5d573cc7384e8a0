"""Shared helpers of the Python tests: test data, running `zarrmount scan/export`, opening originals
and virtual datasets with xarray, and comparing them (values bit for bit, attributes, dtypes)."""
import base64
import fcntl
import glob
import hashlib
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(REPO, ".cache")
SETS_DIR = os.path.join(CACHE, "vz-sets")
CI = os.environ.get("CI") == "true"

# tools/test runs the suite in two pytest-xdist workers. Each worker gets a temporary directory of
# its own, so the mountpoints the Python package makes (tempfile.mkdtemp) and the mounts a test
# counts before and after are this worker's alone.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if WORKER:
    _worker_tmp = os.path.join(tempfile.gettempdir(), "zarrmount-tests-%s-%d" % (WORKER, os.getpid()))
    os.makedirs(_worker_tmp, exist_ok=True)
    os.environ["TMPDIR"] = _worker_tmp
    tempfile.tempdir = None


def started_services(root, lifetime):
    """nginx and moto from tools/services.py in the private state directory ROOT, for a module's
    fixture to yield from: their environment (ZARRMOUNT_HTTP_DIR, ZARRMOUNT_S3_ENDPOINT, ...),
    stopped afterwards. A start that fails fails the test under CI=true and skips it elsewhere."""
    tool = os.path.join(REPO, "tools", "services.py")
    p = subprocess.run([sys.executable, tool, "start", "--dir", root, "--parent-pid", str(os.getpid()), "--lifetime", str(lifetime)],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        message = "tools/services.py start failed: %s" % p.stderr.strip()[-2000:]
        if CI:
            pytest.fail(message + " (CI=true forbids skipping)")
        pytest.skip(message)
    try:
        yield dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    finally:
        subprocess.run([sys.executable, tool, "stop", "--dir", root], capture_output=True, timeout=60)
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")


# ------------------------------------------------------------------ generated test data

def _sha256(*paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def _ensure_generated(outdir, generator_paths, cmd, also_clear=()):
    """Regenerate OUTDIR with CMD when the generators' sha256 differs from OUTDIR/.generator.sha256;
    ALSO_CLEAR are directories derived from OUTDIR, removed with it."""
    stamp = os.path.join(outdir, ".generator.sha256")
    want = _sha256(*generator_paths)
    os.makedirs(os.path.dirname(outdir), exist_ok=True)
    # Both test workers may ask at once: the first generates, the other waits and then uses it.
    with open(outdir.rstrip("/") + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(stamp) as fh:
                if fh.read().strip() == want:
                    return outdir
        except OSError:
            pass
        for stale in (outdir,) + tuple(also_clear):
            shutil.rmtree(stale, ignore_errors=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(stamp, "w") as fh:
            fh.write(want + "\n")
        return outdir


def ensure_vz_sets():
    """tools/make-vz-sets.py output in .cache/vz-sets (regenerated when make-vz-sets or make-archive changes)."""
    gens = [os.path.join(REPO, "tools", "make-vz-sets.py"), os.path.join(REPO, "tools", "make-archive.py")]
    return _ensure_generated(SETS_DIR, gens, [sys.executable, gens[0], SETS_DIR])


def ensure_fixtures():
    """The make-fixtures matrix: $ZARRMOUNT_FIXTURES (tools/test sets it), else .cache/fixtures with the
    same stamp rule as tools/test."""
    env = os.environ.get("ZARRMOUNT_FIXTURES")
    if env and os.path.isdir(env):
        return env
    gen = os.path.join(REPO, "tools", "make-fixtures.py")
    out = os.path.join(CACHE, "fixtures")
    return _ensure_generated(out, [gen], [sys.executable, gen, out], also_clear=[os.path.join(CACHE, "fixtures-expected")])


# ------------------------------------------------------------------ the command under test

def vz_command():
    """The scan/export command: $ZARRMOUNT_VZ_CMD (e.g. the Python model Tests/python/vz_reference.py),
    else $ZARRMOUNT_BIN, else .build/debug/zarrmount."""
    cmd = os.environ.get("ZARRMOUNT_VZ_CMD")
    if cmd:
        return shlex.split(cmd)
    return [os.environ.get("ZARRMOUNT_BIN", os.path.join(REPO, ".build", "debug", "zarrmount"))]


def missing_subcommands():
    """Which of scan/export the command does not offer (their --help must mention --refs / --zarr)."""
    cmd = vz_command()
    missing = []
    for sub, flag in (("scan", "--refs"), ("export", "--zarr")):
        try:
            p = subprocess.run(cmd + [sub, "--help"], capture_output=True, text=True, timeout=60)
            if flag not in p.stdout + p.stderr:
                missing.append(sub)
        except (OSError, subprocess.TimeoutExpired):
            missing.append(sub)
    return missing


@pytest.fixture(scope="session")
def vz():
    """Skips (or, under CI=true, fails) when the binary has no scan/export subcommand."""
    missing = missing_subcommands()
    if missing:
        msg = "%s has no %s subcommand" % (" ".join(vz_command()), "/".join(missing))
        if CI:
            pytest.fail(msg + " (CI=true forbids skipping)")
        pytest.skip(msg)
    return vz_command()


def run_vz(args, timeout=600):
    p = subprocess.run(vz_command() + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if p.returncode < 0:
        raise AssertionError("%s killed by signal %d\n%s" % (" ".join(map(str, args[:2])), -p.returncode, p.stderr[-3000:]))
    return p


# Real FUSE mounts of the same sources: stored chunks, or decoded ones (`--decoded`).
MOUNT_KINDS = ("mount", "mount-decoded")


class Outputs:
    """scan/export results cached for the session: one run per (name, kind, format)."""

    runs = 0
    seconds = 0.0
    slowest = []

    def __init__(self, root):
        self.root = root
        self.cache = {}
        self.mounted = []

    def get(self, name, sources, flags, kind, fmt=2):
        key = (name, kind, fmt)
        if key in self.cache:
            return self.cache[key]
        safe = name.replace("/", "__")
        if kind in MOUNT_KINDS:
            out = os.path.join(self.root, "%s.%s.v%d.mnt" % (safe, kind, fmt))
            os.makedirs(out, exist_ok=True)
            args = (["mount"] + list(sources) + list(flags) + ["--zarr-format", str(fmt), "--no-cache"]
                    + (["--decoded"] if kind == "mount-decoded" else []) + [out])
        elif kind == "refs":
            out = os.path.join(self.root, "%s.refs.json" % safe)
            args = ["scan"] + list(sources) + list(flags) + ["--refs", out]
        else:
            out = os.path.join(self.root, "%s.v%d.zarr" % (safe, fmt))
            args = ["export"] + list(sources) + list(flags) + ["--zarr", out, "--zarr-format", str(fmt)]
        t0 = time.monotonic()
        p = run_vz(args)
        Outputs.runs += 1
        dt = time.monotonic() - t0
        Outputs.seconds += dt
        Outputs.slowest = sorted(Outputs.slowest + [(dt, "%s %s %s" % (args[0], name, fmt))], reverse=True)[:5]
        # A mount that skipped files exits 2 and is live all the same.
        if kind in MOUNT_KINDS and os.path.ismount(out):
            self.mounted.append((key, out))
        self.cache[key] = (out, p)
        return out, p

    def unmount_all(self):
        """Real mounts are unmounted after each test (one daemon alive at a time in each worker)."""
        for key, mountpoint in self.mounted:
            subprocess.run(vz_command() + ["unmount", mountpoint], capture_output=True, timeout=60)
            if os.path.ismount(mountpoint):
                subprocess.run(vz_command() + ["unmount", "--lazy", mountpoint], capture_output=True, timeout=60)
            self.cache.pop(key, None)
        self.mounted = []


@pytest.fixture(scope="session")
def outputs(tmp_path_factory, vz):
    return Outputs(str(tmp_path_factory.mktemp("vz-out")))


def require_ok(p, what, ok=(0,)):
    assert p.returncode in ok, "%s failed (exit %d):\n%s" % (what, p.returncode, p.stderr[-4000:])


def left_out(p):
    """What the command said it left out: variables (warning lines on stderr) and files
    (`skipped:` lines)."""
    return "\n".join(ln for ln in p.stderr.splitlines() if "warn" in ln.lower() or ln.startswith("skipped: "))


# ------------------------------------------------------------------ opening

def open_original(path, decode_cf=True, group=None, drop_variables=None):
    import xarray as xr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_dataset(path, engine="netcdf4", decode_cf=decode_cf, group=group,
                               drop_variables=drop_variables, decode_timedelta=False if decode_cf else None)


def open_refs(refs_path, decode_cf=True, group=None, drop_variables=None):
    """kerchunk reference JSON through fsspec's ReferenceFileSystem and zarr 3: exactly this call.
    Sub-groups need consolidated metadata (a `.zmetadata` key in the refs): zarr 3.1's FsspecStore
    cannot list a sub-group of a ReferenceFileSystem rooted at "" (list_dir strips "/a/" from "a/...")."""
    import xarray as xr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_dataset("reference://", engine="zarr", decode_cf=decode_cf, group=group,
                               drop_variables=drop_variables, decode_timedelta=False if decode_cf else None,
                               backend_kwargs={"consolidated": group not in (None, "/"), "zarr_format": 2,
                                               "storage_options": {"fo": refs_path}})


def open_store(path, fmt, decode_cf=True, group=None, drop_variables=None):
    import xarray as xr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(path, consolidated=True, zarr_format=fmt, decode_cf=decode_cf, group=group,
                            drop_variables=drop_variables, chunks=None,
                            decode_timedelta=False if decode_cf else None)


def open_virtual(kind, out, fmt, decode_cf=True, group=None, drop_variables=None):
    if kind in MOUNT_KINDS:
        assert os.path.ismount(out), "%s is not mounted" % out
    if kind == "refs":
        return open_refs(out, decode_cf, group, drop_variables)
    return open_store(out, fmt, decode_cf, group, drop_variables)


def combine_originals(files, concat_dim, decode_cf=True, combine_attrs="override", variables=None):
    """What xarray.open_mfdataset(files, combine="nested", concat_dim=DIM, data_vars="minimal",
    coords="minimal", compat="override") gives -- built from open_dataset + combine_nested, which is
    what open_mfdataset does, because dask is not installed (open_mfdataset needs it)."""
    import xarray as xr
    parts = []
    for f in files:
        drop = None
        if variables is not None:
            with open_original(f, decode_cf=False) as probe:
                drop = [v for v in probe.variables if v not in variables]
        parts.append(open_original(f, decode_cf=decode_cf, drop_variables=drop))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = xr.combine_nested(parts, concat_dim=concat_dim, data_vars="minimal", coords="minimal",
                                compat="override", join="override", combine_attrs=combine_attrs)
        out = out.load()
    for p in parts:
        p.close()
    return out


# ------------------------------------------------------------------ comparing

class Allow:
    """Known, documented differences between netCDF-via-xarray and Zarr-via-xarray that no Zarr
    metadata can remove; each is narrow and checked."""

    def __init__(self, fixed_strings=(), enums=(), packed_f4=(), left_out_text="", opaque=()):
        self.fixed_strings = set(fixed_strings)  # HDF5 fixed-length string datasets: netCDF-C gives str
        self.enums = set(enums)                  # enum variables: flag_values/flag_meanings may be added
        self.packed_f4 = set(packed_f4)          # float32 scale_factor/add_offset: JSON makes them float64
        self.left_out_text = left_out_text       # stderr warnings naming variables left out
        self.opaque = set(opaque)                # opaque datasets: served as |V, skipped by netCDF-C


def norm_attr(v):
    """Attribute value -> comparable python value (numpy scalars/arrays to python, NaN/Inf as tokens)."""
    if isinstance(v, np.ndarray):
        if v.ndim == 0:
            return norm_attr(v[()])
        return [norm_attr(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [norm_attr(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
        if isinstance(v, tuple):  # a structured scalar (np.void)
            return [norm_attr(x) for x in v]
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, float):  # a float must stay a float: Python reads JSON `1` as int, and xarray's
        if math.isnan(v):     # CF decoding picks dtypes from type(scale_factor)
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return ("float", v)
    if isinstance(v, int):
        return ("int", v)
    return v


def norm_attrs(attrs):
    return {k: norm_attr(v) for k, v in attrs.items()}


def _str_kind(dt):
    return dt.kind in "UT" or dt == object


def _as_str_list(arr):
    out = []
    for x in np.asarray(arr, dtype=object).ravel().tolist():
        if isinstance(x, bytes):
            x = x.decode("utf-8", "replace")
        out.append(x)
    return out


def _bits(a):
    a = np.ascontiguousarray(a)
    if a.dtype.kind in "fiucmM" and a.dtype.byteorder not in "=|":
        a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype.kind == "b":
        return a.view("u1")
    if a.dtype.kind in "fiucmM":
        return a.view("u%d" % a.dtype.itemsize) if a.dtype.itemsize in (1, 2, 4, 8) else a.view("u1")
    return a


def assert_same_values(exp, act, where):
    e = np.asarray(exp)
    a = np.asarray(act)
    assert e.shape == a.shape, "%s: shape %s != %s" % (where, e.shape, a.shape)
    if e.dtype.fields is not None:
        assert a.dtype.fields is not None, "%s: expected a structured dtype, got %s" % (where, a.dtype)
        for name in e.dtype.names:
            assert name in a.dtype.names, "%s: field %s missing (have %s)" % (where, name, a.dtype.names)
            assert_same_values(e[name], a[name], "%s.%s" % (where, name))
        extra = [n for n in a.dtype.names if n not in e.dtype.names]
        for n in extra:
            assert a.dtype.fields[n][0].kind == "V", "%s: unexpected field %s %s" % (where, n, a.dtype.fields[n][0])
        return
    if _str_kind(e.dtype) or _str_kind(a.dtype) or (e.dtype.kind == "S") != (a.dtype.kind == "S"):
        if e.dtype.kind == "O" and e.size and not isinstance(e.ravel()[0], (str, bytes)):
            assert e.ravel().tolist() == a.ravel().tolist(), "%s: values differ" % where
            return
        assert _as_str_list(e) == _as_str_list(a), "%s: strings differ:\n%s\n%s" % (
            where, _as_str_list(e)[:10], _as_str_list(a)[:10])
        return
    if e.dtype.kind == "S":
        assert e.tobytes() == a.tobytes() and e.dtype.itemsize == a.dtype.itemsize, "%s: bytes differ" % where
        return
    if e.dtype.kind == "O":
        assert e.ravel().tolist() == a.ravel().tolist(), "%s: values differ" % where
        return
    # (numpy labels the first argument ACTUAL: the virtual dataset)
    np.testing.assert_array_equal(_bits(a), _bits(e), err_msg="%s: values differ bit for bit" % where)


def _same_dtype(e, a):
    if _str_kind(e) and _str_kind(a):
        return True
    if e.fields is not None or a.fields is not None:
        return e.fields is not None and a.fields is not None
    return e.newbyteorder("=") == a.newbyteorder("=") if e.kind in "fiucmMb" else e == a


def compare_datasets(exp, act, where, decode_cf, allow=None, values=True, variables=None):
    """Same variables, dims, coords, dtypes, attributes (global and per variable) and bit-identical
    values (NaN-aware, on the raw bytes)."""
    allow = allow or Allow()
    exp_vars = set(exp.variables)
    act_vars = set(act.variables)
    missing = exp_vars - act_vars
    unexplained = [v for v in missing if v not in allow.left_out_text]
    assert not unexplained, "%s: variables missing without a warning: %s" % (where, sorted(unexplained))
    unexpected = act_vars - exp_vars - allow.opaque
    assert not unexpected, "%s: unexpected variables %s" % (where, sorted(unexpected))
    common = sorted(exp_vars & act_vars)
    for name in act_vars - exp_vars:  # opaque: served as raw bytes of the type's size
        assert act[name].dtype.kind == "V", "%s: %s: dtype %s, expected an opaque |V" % (where, name, act[name].dtype)
    act = act.drop_vars(sorted(act_vars - exp_vars))
    act_vars = set(act.variables)
    assert set(exp.coords) & act_vars == set(act.coords), "%s: coords %s != %s" % (
        where, sorted(exp.coords), sorted(act.coords))
    exp_dims = {d: n for d, n in exp.sizes.items() if any(d in exp[v].dims for v in common) or not missing}
    assert exp_dims == dict(act.sizes), "%s: dims %s != %s" % (where, exp_dims, dict(act.sizes))
    # Files `--on-error skip` left out are named in the dataset, each as its `skipped:` line said.
    act_attrs = dict(act.attrs)
    for line in act_attrs.pop("zarrmount_skipped_files", []):
        assert "skipped: " + line in allow.left_out_text, "%s: %r is not a skipped: line:\n%s" % (where, line, allow.left_out_text)
    assert norm_attrs(exp.attrs) == norm_attrs(act_attrs), "%s: global attributes differ:\n%s\n%s" % (
        where, exp.attrs, act_attrs)
    for name in common:
        if variables is not None and name not in variables:
            continue
        e, a = exp[name].variable, act[name].variable
        w = "%s: %s" % (where, name)
        assert e.dims == a.dims, "%s: dims %s != %s" % (w, e.dims, a.dims)
        ea, aa = norm_attrs(e.attrs), norm_attrs(a.attrs)
        if name in allow.enums:
            for k in ("flag_values", "flag_meanings"):
                if k in aa and k not in ea:
                    del aa[k]
        if name in allow.fixed_strings and aa.get("_Encoding") == "utf-8" and "_Encoding" not in ea:
            del aa["_Encoding"]
        assert ea == aa, "%s: attributes differ:\n  expected %s\n  actual   %s" % (w, e.attrs, a.attrs)
        if name in allow.packed_f4 and decode_cf:
            assert e.dtype == np.float32 and a.dtype == np.float64, "%s: %s/%s" % (w, e.dtype, a.dtype)
            if values:
                ev, av = e.values, a.values
                assert np.array_equal(np.isnan(ev), np.isnan(av)), "%s: masks differ" % w
                np.testing.assert_allclose(av, ev, rtol=2e-7, err_msg=w)
            continue
        if name in allow.fixed_strings:
            assert a.dtype.kind in "SOUT", "%s: dtype %s" % (w, a.dtype)
        else:
            assert _same_dtype(e.dtype, a.dtype), "%s: dtype %s != %s" % (w, e.dtype, a.dtype)
        if values:
            assert_same_values(e.values, a.values, w)


def groups_of(path):
    """Group paths of a netCDF file ('/' first), as netCDF4-python walks them."""
    import netCDF4
    out = []

    def walk(g, p):
        out.append(p)
        for n, s in g.groups.items():
            walk(s, (p.rstrip("/") + "/" + n))
    with netCDF4.Dataset(path) as nc:
        walk(nc, "/")
    return out


_ALLOWANCES = r"""
import json, sys
import numpy as np
import h5py, netCDF4
fixed, enums, packed, opaque = set(), set(), set(), set()
path = sys.argv[1]
try:
    with h5py.File(path, "r") as h5:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                base = name.rsplit("/", 1)[-1]
                s = h5py.check_string_dtype(obj.dtype)
                if s is not None and s.length is not None:
                    fixed.add(base)
                if h5py.check_enum_dtype(obj.dtype) is not None:
                    enums.add(base)
                if obj.id.get_type().get_class() == h5py.h5t.OPAQUE:  # h5py shows tagged ones as S or M
                    opaque.add(base)
        h5.visititems(visit)
except OSError:
    pass  # not HDF5: a netCDF-3 file has no HDF5 types to allow for
try:
    with netCDF4.Dataset(path) as nc:
        def walk(g):
            for n, v in g.variables.items():
                for k in ("scale_factor", "add_offset"):
                    if k in v.ncattrs() and np.asarray(v.getncattr(k)).dtype == np.float32:
                        packed.add(n)
            for s in g.groups.values():
                walk(s)
        walk(nc)
except OSError:
    pass
print(json.dumps([sorted(fixed), sorted(enums), sorted(packed), sorted(opaque)]))
"""


def allowances(path, left_out_text=""):
    """The Allow for one original file (looks at HDF5 types and attribute types). Runs in a child
    process, as the probe of the originals does: libhdf5 can crash on exotic files, and a crash
    must not take the test session with it (it then allows nothing)."""
    fixed, enums, packed, opaque = set(), set(), set(), set()
    p = subprocess.run([sys.executable, "-c", _ALLOWANCES, path], capture_output=True, text=True, timeout=300)
    lines = [line for line in p.stdout.splitlines() if line.startswith("[")]
    if p.returncode == 0 and lines:
        fixed, enums, packed, opaque = (set(x) for x in json.loads(lines[-1]))
    return Allow(fixed, enums, packed, left_out_text, opaque)


# ------------------------------------------------------------------ probing originals (crash-proof)

UNOPENABLE = []  # (file, why): originals xarray cannot open, listed at the end of the session
REFUSED = []  # (file, why): originals xarray reads and zarrmount refuses, listed at the end of the session


def pytest_sessionfinish(session):
    """Under pytest-xdist, a worker hands its tallies to the controller, which prints the summary."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["zarrmount"] = json.dumps({"runs": Outputs.runs, "seconds": Outputs.seconds, "slowest": Outputs.slowest,
                                                "refused": REFUSED, "unopenable": UNOPENABLE})


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    tallies = json.loads(getattr(node, "workeroutput", {}).get("zarrmount", "{}"))
    if tallies:
        Outputs.runs += tallies["runs"]
        Outputs.seconds += tallies["seconds"]
        Outputs.slowest = sorted(Outputs.slowest + [tuple(x) for x in tallies["slowest"]], reverse=True)[:5]
        REFUSED.extend(tuple(x) for x in tallies["refused"])
        UNOPENABLE.extend(tuple(x) for x in tallies["unopenable"])


# Tests whose module fixtures are costly or touch the whole machine run on one worker, together.
SERIAL_GROUPS = {
    "test_deb.py": "packages",  # tools/package builds a release binary; dpkg installs system-wide
    "test_wheel.py": "packages",
    "test_icechunk.py": "icechunk",  # one VirtualiZarr repository, built once
    "test_remote.py": "remote",  # nginx, moto and the fault matrix's inputs, started once
    "test_readers.py": "readers",  # five readers on one set of mounts
}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the marks to group the tests
def pytest_collection_modifyitems(config, items):
    for item in items:
        group = SERIAL_GROUPS.get(os.path.basename(str(item.fspath)))
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_terminal_summary(terminalreporter):
    if Outputs.runs:
        terminalreporter.write_line("scan/export: %d runs of %s, %.1f s" % (
            Outputs.runs, " ".join(vz_command()), Outputs.seconds))
        terminalreporter.write_line("slowest: " + ", ".join("%s %.1f s" % (w, t) for t, w in Outputs.slowest))
    if REFUSED:
        terminalreporter.write_sep("-", "originals xarray reads and zarrmount refuses, with the reason")
        for f, why in sorted(set(REFUSED)):
            terminalreporter.write_line("%s: %s" % (f, why[:300]))
    if UNOPENABLE:
        terminalreporter.write_sep("-", "originals xarray cannot open (not compared with the virtual dataset)")
        for f, why in sorted(set(UNOPENABLE)):
            terminalreporter.write_line("%s: %s" % (f, why[:160]))
        try:
            with open(os.path.join(CACHE, "vz-unopenable.txt"), "w") as fh:
                for f, why in sorted(set(UNOPENABLE)):
                    fh.write("%s: %s\n" % (f, why))
        except OSError:
            pass


_PROBE = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import netCDF4, xarray as xr
for path in sys.argv[1:]:
    print(json.dumps({"start": path}), flush=True)
    res = {"file": path, "groups": {}}
    try:
        out = []
        def walk(g, p):
            out.append(p)
            for n, s in g.groups.items():
                walk(s, p.rstrip("/") + "/" + n)
        with netCDF4.Dataset(path) as nc:
            walk(nc, "/")
        for g in out:
            try:
                for dc in (True, False):
                    with xr.open_dataset(path, engine="netcdf4", group=g, decode_cf=dc) as ds:
                        ds.load()
                res["groups"][g] = "ok"
            except Exception as e:
                res["groups"][g] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
    except Exception as e:
        res["error"] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
    print(json.dumps(res), flush=True)
"""


def probe_originals(paths):
    """For each file: which groups xarray (netcdf4 engine) opens, decoded and raw. Runs in child
    processes so a crash in libnetcdf/libhdf5 on an exotic HDF5 file marks that file, not the session."""
    todo = list(paths)
    results = {}
    while todo:
        p = subprocess.run([sys.executable, "-c", _PROBE] + todo, capture_output=True, text=True, timeout=900)
        started = None
        for line in p.stdout.splitlines():
            # libnetcdf writes diagnostics to stdout ("There are 353 HDF5 objects open!"): not a record.
            if not line.startswith("{"):
                continue
            rec = json.loads(line)
            if "start" in rec:
                started = rec["start"]
            else:
                results[rec["file"]] = rec
                started = None
        if started is not None:  # the child died inside this file
            results[started] = {"file": started, "groups": {}, "error": "crashed (exit %d)" % p.returncode}
        todo = [t for t in todo if t not in results]
        if p.returncode == 0 and todo:
            for t in todo:
                results[t] = {"file": t, "groups": {}, "error": "not probed"}
            todo = []
    return results


# ------------------------------------------------------------------ reference JSON helpers

def load_refs(path):
    with open(path) as fh:
        return json.load(fh)


def ref_bytes(v):
    """The bytes one kerchunk reference value stands for."""
    if isinstance(v, list):
        with open(v[0].replace("file://", ""), "rb") as fh:
            if len(v) == 1:
                return fh.read()
            fh.seek(v[1])
            return fh.read(v[2])
    if v.startswith("base64:"):
        return base64.b64decode(v[7:])
    return v.encode()


# ------------------------------------------------------------------ mounts of the WRF-like sample

def require_fuse():
    """Skips without /dev/fuse and fusermount3; under CI=true that is a failure."""
    if not (os.path.exists("/dev/fuse") and os.path.exists("/usr/bin/fusermount3")):
        if CI:
            pytest.fail("FUSE is not available (/dev/fuse, fusermount3) and CI=true forbids skipping mount tests")
        pytest.skip("FUSE is not available here")


_OWN_ROOTS = []


@pytest.fixture(scope="session", autouse=True)
def _own_roots(tmp_path_factory):
    """Where this worker's mounts live: its temporary directory and its pytest tmp_path base."""
    _OWN_ROOTS[:] = [tempfile.gettempdir(), str(tmp_path_factory.getbasetemp())]
    yield
    if WORKER:
        try:
            os.rmdir(tempfile.gettempdir())
        except OSError:
            pass


def zarrmount_mounts():
    """Mountpoints of the zarrmount mounts that are up now (/proc/self/mounts): under two test
    workers, only this worker's, so a test's count before and after is not moved by the other's."""
    with open("/proc/self/mounts") as f:
        points = {line.split()[1] for line in f if "zarrmount" in line.split()[0] or "zarrmount" in line.split()[2]}
    if not WORKER:
        return points
    return {p for p in points if any(p == root or p.startswith(root.rstrip("/") + "/") for root in _OWN_ROOTS)}


def make_wrf_sample(directory, days=3):
    """DAYS daily WRF-like files (tools/make-archive.py) in DIRECTORY, sorted paths."""
    subprocess.run([os.path.join(REPO, "tools", "make-archive.py"), str(directory), "--days", str(days)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return sorted(glob.glob(os.path.join(str(directory), "*.nc")))


def wrf_originals(files, decode_cf=True):
    """xarray on the original files, joined along Time the way the mount joins them."""
    import xarray as xr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = [xr.open_dataset(f, engine="netcdf4", decode_cf=decode_cf) for f in files]
        return xr.combine_nested(parts, concat_dim="Time", data_vars="minimal", coords="minimal", compat="override",
                                 join="override", combine_attrs="override").load()
