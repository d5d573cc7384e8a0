"""The Python recipes of README.md and docs/*.md, run as written.

Every fenced ```python block of those pages is parsed out of the markdown, its placeholders
(string literals such as "MOUNTPOINT" or "OUT.json") are replaced with what this module makes
(`PLACEHOLDERS` says which), and the block runs. Every dataset the block leaves for the user must
not be empty and must equal xarray on the original files, opened with the same decoding
arguments (values bit for bit, except the documented float32 packing difference).

A recipe this module cannot run fails the session: a placeholder the table does not cover, a
Python block that opens nothing the table makes, a reader call written in an inline code span or
in a block not marked ```python. New recipes are therefore tested, or the test says why not.

The test archive: two days of the WRF-like sample ($ZARRMOUNT_SAMPLE_ARCHIVE, else written by
tools/make-archive.py), to which each file gets a packed int16 variable `T2P` with float32
scale_factor/add_offset and _FillValue, and a group `surface`.
"""
import ast
import glob
import os
import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest

from conftest import REPO, Allow, allowances, compare_datasets, make_wrf_sample, require_fuse

ZARRMOUNT = os.environ.get("ZARRMOUNT_BIN", os.path.join(REPO, ".build", "debug", "zarrmount"))
DOCS = ["README.md"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))

# placeholder in a recipe -> what this module puts there (Resolver.value makes each one)
PLACEHOLDERS = {
    "MOUNTPOINT": "a real mount: zarrmount mount ARCHIVE --concat-dim Time --zarr-format 2|3",
    "OUT.json": "references: zarrmount scan ARCHIVE --concat-dim Time --refs OUT.json",
    "DIR": "an export: zarrmount export ARCHIVE --concat-dim Time --zarr DIR --zarr-format 2|3",
    "GROUP": "'surface', the group every file of the archive has",
    "VAR": "'T2P', the archive's int16 variable packed with float32 scale_factor/add_offset; a recipe"
           " naming it must decode it to netCDF's float32 values, bit for bit",
}
OPENED = {"MOUNTPOINT", "OUT.json", "DIR"}  # what a recipe opens; one of them must be in every recipe
PER_FORMAT = {"MOUNTPOINT", "DIR"}          # recipes using these run on Zarr v2 and v3
GROUP, PACKED = "surface", "T2P"
# a string literal or name spelled like a placeholder: MOUNTPOINT, OUT.json, DIR, GROUP, MY_VAR
PLACEHOLDER_LIKE = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Za-z0-9]+)?$")
PYTHON_LANGS = {"python", "python3", "py", "pycon", "ipython"}
# a call into a reader library: text holding one is a recipe
READER_CALL = re.compile(r"\b(?:xarray|xr|zarr|fsspec|kerchunk|netCDF4|h5py)\s*\.\s*\w+(?:\.\w+)*\s*\(")
# arguments of open_dataset/open_zarr/decode_cf that change what decoding gives
CF_ARGS = ("decode_cf", "mask_and_scale", "decode_times", "decode_timedelta", "decode_coords",
           "concat_characters", "use_cftime", "drop_variables")


# ------------------------------------------------------------------ the markdown

def fenced_blocks(text):
    """(first code line number, info string's language, code) of every fenced block."""
    out = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)", lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        start = i + 1
        j = start
        while j < len(lines) and not re.match(r"^ {0,3}%s%s*\s*$" % (re.escape(fence), re.escape(fence[0])), lines[j]):
            j += 1
        out.append((start + 1, lang, "\n".join(lines[start:j])))
        i = j + 1
    return out


def without_fences(text):
    kept, inside = [], None
    for ln in text.split("\n"):
        m = re.match(r"^ {0,3}(`{3,}|~{3,})", ln)
        if inside is None and m:
            inside = m.group(1)
        elif inside is not None and ln.strip().startswith(inside) and ln.strip().strip(inside[0]) == "":
            inside = None
        elif inside is None:
            kept.append(ln)
    return "\n".join(kept)


def read_doc(doc):
    with open(os.path.join(REPO, doc), encoding="utf-8") as fh:
        return fh.read()


def recipes():
    """(doc, line, code) of every ```python block of README.md and docs/*.md."""
    return [(doc, line, code) for doc in DOCS for line, lang, code in fenced_blocks(read_doc(doc))
            if lang in PYTHON_LANGS]


def placeholders_of(code):
    """Placeholder-like string literals and names of CODE, in order of appearance."""
    found = []
    for node in ast.walk(ast.parse(code)):
        s = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            s = node.value
        elif isinstance(node, ast.Name):
            s = node.id
        if s is not None and PLACEHOLDER_LIKE.match(s) and s not in found:
            found.append(s)
    return found


class Substitute(ast.NodeTransformer):
    def __init__(self, values):
        self.values = values

    def visit_Constant(self, node):
        if isinstance(node.value, str) and node.value in self.values:
            return ast.copy_location(ast.Constant(self.values[node.value]), node)
        return node

    def visit_Name(self, node):
        if node.id in self.values and isinstance(node.ctx, ast.Load):
            return ast.copy_location(ast.Constant(self.values[node.id]), node)
        return node


def _params():
    out = []
    for doc, line, code in recipes():
        try:
            used = placeholders_of(code)
        except SyntaxError:
            used = []
        for fmt in ((2, 3) if PER_FORMAT & set(used) else (2,)):
            out.append(pytest.param(doc, line, code, fmt, id="%s:%d-v%d" % (doc, line, fmt)))
    return out


def test_every_recipe_is_a_python_block_this_module_covers():
    blocks = recipes()
    assert blocks, "no ```python recipes found in %s" % DOCS
    problems = []
    for doc in DOCS:
        text = read_doc(doc)
        for line, lang, code in fenced_blocks(text):
            if lang not in PYTHON_LANGS and READER_CALL.search(code):
                problems.append("%s:%d: a block marked %r calls a reader; mark it ```python so it is run" % (
                    doc, line, lang or "(nothing)"))
        for m in re.finditer(r"(`+)(.+?)\1", without_fences(text), re.S):
            if READER_CALL.search(m.group(2)):
                problems.append("%s: inline code %r calls a reader; write recipes as ```python blocks so they are run"
                                % (doc, m.group(2)[:80]))
    for doc, line, code in blocks:
        try:
            used = placeholders_of(code)
        except SyntaxError as e:
            problems.append("%s:%d: not Python: %s" % (doc, line, e))
            continue
        unknown = [p for p in used if p not in PLACEHOLDERS]
        if unknown:
            problems.append("%s:%d: placeholders %s are not in PLACEHOLDERS (add them, with what the test puts there)"
                            % (doc, line, unknown))
        if not OPENED & set(used):
            problems.append("%s:%d: opens none of %s, so nothing it does can be checked" % (doc, line, sorted(OPENED)))
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ what the recipes open

def build_archive(directory):
    """Two days of the WRF-like sample, each file given the packed variable and the group."""
    import netCDF4
    src = os.environ.get("ZARRMOUNT_SAMPLE_ARCHIVE")
    sample = []
    if src:
        for base in (src, os.path.join(REPO, src)):
            sample = sorted(glob.glob(os.path.join(base, "*.nc")))[:2]
            if len(sample) == 2:
                break
    if len(sample) == 2:
        files = []
        for f in sample:
            files.append(os.path.join(directory, os.path.basename(f)))
            shutil.copyfile(f, files[-1])
    else:
        files = make_wrf_sample(directory, days=2)
    for i, f in enumerate(files):
        with netCDF4.Dataset(f, "a") as nc:
            t2 = np.asarray(nc["T2"][:], dtype=np.float64)
            v = nc.createVariable(PACKED, "i2", ("Time", "south_north", "west_east"), zlib=True,
                                  chunksizes=(1, 250, 320), fill_value=np.int16(-32767))
            v.scale_factor = np.float32(0.01)
            v.add_offset = np.float32(273.15)
            v.units = "K"
            v.set_auto_maskandscale(False)
            packed = np.clip(np.round((t2 - 273.15) / 0.01), -32000, 32000).astype(np.int16)
            packed[0, :3, :7] = -32767  # masked
            packed[0, 3, :] = -27315 + np.arange(packed.shape[2]) - packed.shape[2] // 2  # about -add_offset
            v[:] = packed
            g = nc.createGroup(GROUP)
            w = g.createVariable("T2MAX", "f4", ("Time", "south_north", "west_east"), zlib=True, chunksizes=(1, 250, 320))
            w.units = "K"
            w[:] = (t2 + 1.5 + i).astype(np.float32)
    return files


class Resolver:
    """The values of the placeholders, made when a recipe first needs them; one mount alive at a time."""

    def __init__(self, root, files):
        self.root, self.files = root, files
        self.made = {}
        self.mounted = None
        self.originals = {}

    def run(self, args):
        p = subprocess.run([ZARRMOUNT] + args, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, "zarrmount %s failed (exit %d):\n%s" % (args[0], p.returncode, p.stderr[-3000:])

    def value(self, placeholder, fmt):
        if placeholder == "GROUP":
            return GROUP
        if placeholder == "VAR":
            return PACKED
        key = (placeholder, fmt if placeholder in PER_FORMAT else 2)
        if key in self.made:
            return self.made[key]
        common = self.files + ["--concat-dim", "Time", "--no-cache"]
        if placeholder == "OUT.json":
            out = os.path.join(self.root, "OUT.json")
            self.run(["scan"] + common + ["--refs", out])
        elif placeholder == "DIR":
            out = os.path.join(self.root, "export.v%d.zarr" % fmt)
            self.run(["export"] + common + ["--zarr", out, "--zarr-format", str(fmt)])
        elif placeholder == "MOUNTPOINT":
            require_fuse()
            self.unmount()
            out = os.path.join(self.root, "mnt.v%d" % fmt)
            os.makedirs(out, exist_ok=True)
            self.run(["mount"] + common + ["--zarr-format", str(fmt), out])
            self.mounted = key
        else:
            raise KeyError(placeholder)
        self.made[key] = out
        return out

    def unmount(self):
        if self.mounted is None:
            return
        out = self.made.pop(self.mounted)
        self.mounted = None
        subprocess.run([ZARRMOUNT, "unmount", out], capture_output=True, timeout=60)
        if os.path.ismount(out):
            subprocess.run([ZARRMOUNT, "unmount", "--lazy", out], capture_output=True, timeout=60)
        assert not os.path.ismount(out), "%s is still mounted" % out

    def original(self, group, cf):
        """xarray on the original files (netcdf4 engine), joined along Time as the archive is, with
        the recipe's decoding arguments."""
        import xarray as xr
        key = (group, tuple(sorted((k, repr(v)) for k, v in cf.items())))
        if key not in self.originals:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parts = [xr.open_dataset(f, engine="netcdf4", group=group, **cf) for f in self.files]
                self.originals[key] = xr.combine_nested(
                    parts, concat_dim="Time", data_vars="minimal", coords="minimal", compat="override",
                    join="override", combine_attrs="override").load()
            for p in parts:
                p.close()
        return self.originals[key]


@pytest.fixture(scope="module")
def resolver(tmp_path_factory):
    if not os.access(ZARRMOUNT, os.X_OK):
        pytest.fail("%s is not built" % ZARRMOUNT)
    root = str(tmp_path_factory.mktemp("recipes"))
    archive = os.path.join(root, "archive")
    os.makedirs(archive)
    r = Resolver(root, build_archive(archive))
    yield r
    r.unmount()


class Recorder:
    """Wraps xarray.open_dataset / open_zarr / decode_cf while a recipe runs: which group each
    dataset is and with which decoding arguments it was made."""

    def __init__(self, monkeypatch):
        import xarray
        self.made = {}  # id(dataset) -> (group, cf arguments, how)
        self.depth = 0
        for name in ("open_dataset", "open_zarr"):
            monkeypatch.setattr(xarray, name, self.opener(getattr(xarray, name), name))
        monkeypatch.setattr(xarray, "decode_cf", self.decoder(xarray.decode_cf))

    def opener(self, fn, name):
        def wrapped(*args, **kwargs):
            self.depth += 1
            try:
                ds = fn(*args, **kwargs)
            finally:
                self.depth -= 1
            if self.depth == 0:
                group = kwargs.get("group") or (kwargs.get("backend_kwargs") or {}).get("group")
                group = None if group in (None, "", "/") else group.strip("/")
                cf = {k: kwargs[k] for k in CF_ARGS if k in kwargs}
                self.made[id(ds)] = (group, cf, "%s(%s)" % (name, ", ".join(
                    [repr(a) for a in args] + ["%s=%r" % kv for kv in kwargs.items()])))
            return ds
        return wrapped

    def decoder(self, fn):
        def wrapped(obj, *args, **kwargs):
            ds = fn(obj, *args, **kwargs)
            assert not args, "decode_cf with positional arguments: name them"
            assert id(obj) in self.made, "decode_cf of a dataset that was not opened by the recipe"
            group = self.made[id(obj)][0]
            self.made[id(ds)] = (group, {k: kwargs[k] for k in CF_ARGS if k in kwargs},
                                 "decode_cf(%s)" % self.made[id(obj)][2])
            return ds
        return wrapped


@pytest.mark.parametrize("doc,line,code,fmt", _params())
def test_recipe_runs_as_written_and_reads_the_originals(doc, line, code, fmt, resolver, monkeypatch, tmp_path):
    import xarray as xr
    used = placeholders_of(code)
    unknown = [p for p in used if p not in PLACEHOLDERS]
    if unknown:
        pytest.fail("%s:%d: placeholders %s are not in PLACEHOLDERS" % (doc, line, unknown))
    values = {p: resolver.value(p, fmt) for p in used}
    tree = ast.fix_missing_locations(Substitute(values).visit(ast.parse(code)))
    recorder = Recorder(monkeypatch)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__recipe__"}
    exec(compile(tree, "%s:%d" % (doc, line), "exec"), namespace)

    datasets = {k: v for k, v in namespace.items() if isinstance(v, xr.Dataset)}
    assert datasets, "%s:%d leaves no dataset" % (doc, line)
    packed_f4 = allowances(resolver.files[0]).packed_f4
    assert PACKED in packed_f4
    for name, ds in sorted(datasets.items()):
        where = "%s:%d %s (v%d)" % (doc, line, name, fmt)
        assert id(ds) in recorder.made, "%s: not made by xarray.open_dataset/open_zarr/decode_cf" % where
        group, cf, how = recorder.made[id(ds)]
        assert len(ds.data_vars) > 0, "%s = %s is an empty dataset" % (where, how)
        expected = resolver.original(group, cf)
        assert len(expected.data_vars) > 0
        # the documented difference (docs/semantics.md): float32 packing decodes to float64 through
        # Zarr; a recipe that decodes to float32 must give netCDF's values bit for bit
        unpacked64 = {v for v in packed_f4 if v in ds.variables and ds[v].dtype == np.float64}
        compare_datasets(expected, ds, "%s = %s" % (where, how), decode_cf=cf.get("decode_cf", True),
                         allow=Allow(packed_f4=unpacked64), values=False)
        compare_datasets(expected, ds, "%s = %s" % (where, how), decode_cf=cf.get("decode_cf", True),
                         variables=set(ds.variables) - unpacked64)
        for v in unpacked64:
            assert_within_float32_rounding(ds[v], expected[v], "%s: %s" % (where, v))
        if "VAR" in used and group is None:
            assert ds[PACKED].dtype == np.float32, "%s: %s is %s, not float32" % (where, PACKED, ds[PACKED].dtype)
        if group == GROUP:
            assert "T2MAX" in ds.data_vars, where
        else:
            assert PACKED in ds.data_vars and "T2" in ds.data_vars and ds.sizes["Time"] == 2, where


# ------------------------------------------------------------------ float32 packing (docs/semantics.md)

def float32_rounding(unpacked, add_offset):
    """How far netCDF's float32 unpacking (it rounds after the multiply and after the add) may be from
    the float64 one: two ulps of the larger of the scaled value and add_offset (docs/semantics.md)."""
    scaled = np.abs(np.asarray(unpacked, dtype=np.float64) - add_offset)
    return 2 * np.spacing(np.maximum(scaled, abs(add_offset)).astype(np.float32)).astype(np.float64)


def assert_within_float32_rounding(actual, expected, where):
    """A float64 unpacking (through Zarr) against netCDF's float32 one of the same variable."""
    a, e = actual.values, expected.values
    assert a.dtype == np.float64 and e.dtype == np.float32, "%s: %s / %s" % (where, a.dtype, e.dtype)
    assert np.array_equal(np.isnan(a), np.isnan(e)), "%s: masks differ" % where
    ok = ~np.isnan(a)
    diff = np.abs(a[ok].astype(np.float32).astype(np.float64) - e[ok])
    bound = float32_rounding(a[ok], actual.encoding.get("add_offset", 0.0))
    assert (diff <= bound).all(), "%s: %d values beyond netCDF's float32 rounding (max %g)" % (
        where, int((diff > bound).sum()), diff.max())


def test_float32_packing_decodes_to_float64_as_documented(resolver):
    """docs/semantics.md, "Known differences": an int16 variable packed with float32 scale_factor and
    add_offset is float32 in xarray on the file and float64 through Zarr (references and a v3 export:
    JSON attributes are Python floats); the float64 values are the exact unpacking; .astype("float32")
    is within netCDF's float32 rounding; float32 attributes and decode_cf give netCDF's values bit
    for bit. When xarray starts choosing float32 here, this fails: update the doc."""
    import netCDF4
    import xarray as xr
    f = resolver.files[0]
    with netCDF4.Dataset(f) as nc:
        v = nc[PACKED]
        assert np.asarray(v.getncattr("scale_factor")).dtype == np.float32
        assert np.asarray(v.getncattr("add_offset")).dtype == np.float32
        assert nc[PACKED][:].dtype == np.float32
        v.set_auto_maskandscale(False)
        stored = np.asarray(v[:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = xr.open_dataset(f, engine="netcdf4")[PACKED].isel(Time=slice(0, 1)).load()
        refs = xr.open_dataset("reference://", engine="zarr",
                               storage_options={"fo": resolver.value("OUT.json", 2)})
        v3 = xr.open_zarr(resolver.value("DIR", 3), zarr_format=3, chunks=None)
    assert original.dtype == np.float32
    for label, ds in (("references", refs), ("export v3", v3)):
        got = ds[PACKED]
        assert got.dtype == np.float64, "%s: %s (the doc says float64)" % (label, got.dtype)
        sf, ao = got.encoding["scale_factor"], got.encoding["add_offset"]
        assert type(sf) is float and type(ao) is float, label
        assert sf == float(np.float32(0.01)) and ao == float(np.float32(273.15)), label
        day0 = got.isel(Time=slice(0, 1)).values
        mask = stored == -32767
        assert mask.any() and np.isnan(day0[mask]).all() and np.isnan(original.values[mask]).all()
        exact = stored.astype(np.float64) * sf + ao
        np.testing.assert_array_equal(day0[~mask], exact[~mask], err_msg=label)
        assert_within_float32_rounding(got.isel(Time=slice(0, 1)), original, label)
        cast = day0.astype(np.float32)
        assert not np.array_equal(cast[~mask], original.values[~mask]), \
            "%s: astype(float32) equals netCDF's bit for bit; the doc says it may differ" % label

        raw = (xr.open_dataset("reference://", engine="zarr", mask_and_scale=False,
                               storage_options={"fo": resolver.value("OUT.json", 2)}) if label == "references"
               else xr.open_zarr(resolver.value("DIR", 3), zarr_format=3, chunks=None, mask_and_scale=False))
        for key in ("scale_factor", "add_offset"):
            raw.variables[PACKED].attrs[key] = np.float32(raw.variables[PACKED].attrs[key])
        fixed = xr.decode_cf(raw)[PACKED].isel(Time=slice(0, 1)).values
        assert fixed.dtype == np.float32, label
        np.testing.assert_array_equal(fixed.view(np.uint32), original.values.view(np.uint32), err_msg=label)
    assert any("decode_cf" in code and '"VAR"' in code for doc, line, code in recipes() if doc == "docs/semantics.md"), \
        "docs/semantics.md no longer shows the float32 workaround"
