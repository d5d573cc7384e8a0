"""Read one variable of a Zarr directory store with readers that are not zarr-python.

Each function returns raw stored values as numpy (no CF masking or scaling) or raises
ReaderError carrying the tool's command line, exit status and stderr. None of them knows
what a store should contain: callers compare the result with their own oracle.

What each reader can and cannot read on Debian 12 (netcdf-bin 4.9.0, gdal-bin 3.6.2), with
tensorstore from PyPI and with the netCDF-C inside the netCDF4 wheel is written up in
.cache/reader-matrix.md. In short: all of them read uncompressed (decoded) little-endian
numeric Zarr v2 arrays; only tensorstore reads Zarr v3 (and then only without numcodecs.*
codecs); ncdump 4.9.0 without codec plugins prints *compressed bytes as values* or crashes
on zlib/shuffle chunks and ignores big-endian byte order, both without an error, so its
values mean something only on decoded little-endian stores.
"""
import json
import os
import re
import signal
import subprocess

import numpy as np

TIMEOUT = 300


class ReaderError(RuntimeError):
    """A foreign reader failed (non-zero exit, signal, refusal, or output it cannot parse)."""


def _run(cmd, timeout=TIMEOUT):
    """Run CMD, return (stdout, stderr); raise ReaderError on a non-zero exit or a signal.

    Signals matter: ncdump 4.9.0 dies with SIGSEGV on several Zarr dtypes after printing
    part of the data, so a partial stdout must never be taken as a result."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise ReaderError(f"{' '.join(cmd)}: timed out after {timeout} s") from e
    if p.returncode != 0:
        how = (f"killed by {signal.Signals(-p.returncode).name}" if p.returncode < 0
               else f"exit status {p.returncode}")
        raise ReaderError(f"{' '.join(cmd)}: {how}\n{p.stderr.strip()}")
    return p.stdout, p.stderr


# ------------------------------------------------------------------ netCDF-C (ncdump, NCZarr)

def nczarr_url(store):
    """The NCZarr URL of a local store directory; other paths (e.g. .nc files) pass through.

    `#mode=zarr,file` (or `nczarr,file`) reads plain zarr-python v2 stores and takes
    dimension names from `_ARRAY_DIMENSIONS`. In 4.9.0 other spellings (`mode=zarr`,
    `mode=file,zarr`, `mode=zarr,file,xarray`) do not fail but spin allocating memory, so
    keep exactly this form."""
    if os.path.isdir(store):
        return "file://" + os.path.abspath(store) + "#mode=zarr,file"
    return store


def ncdump_header(store):
    """`ncdump -h` of the store as CDL text (dimensions, variables, attributes). On a Zarr v3
    store netCDF-C 4.9.0 prints an empty dataset and exits 0."""
    return _run(["ncdump", "-h", nczarr_url(store)])[0]


# netCDF default fill values (netcdf.h NC_FILL_*): ncdump prints `_` for a value equal to the
# variable's fill value, and NCZarr 4.9.0 reports the default one whatever .zarray says.
_CDL_TYPES = {
    "byte": ("i1", -127), "ubyte": ("u1", 255), "char": ("S1", b"\0"),
    "short": ("i2", -32767), "ushort": ("u2", 65535),
    "int": ("i4", -2147483647), "uint": ("u4", 4294967295),
    "int64": ("i8", -9223372036854775806), "uint64": ("u8", 18446744073709551614),
    "float": ("f4", 9.9692099683868690e+36), "double": ("f8", 9.9692099683868690e+36),
    "string": ("O", ""),
}
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|([^,\s;"]+)|(;)')


def _cdl_declaration(cdl, var):
    """(cdl type, shape) of VAR from CDL text, resolving dimensions through enclosing groups."""
    name = var.rsplit("/", 1)[-1]
    decl = re.compile(r"^\s*(\w+) " + re.escape(name) + r"(?:\((.*)\))? ;$")
    scopes, section = [{}], None
    for line in cdl.splitlines():
        s = line.strip()
        if s.startswith("group:") and s.endswith("{"):
            scopes.append({})
        elif s.startswith("}"):
            scopes.pop()
        elif s in ("dimensions:", "variables:", "data:"):
            section = s
        elif section == "dimensions:":
            m = re.match(r"(\S+) = (?:(\d+)|UNLIMITED ; // \((\d+) currently)", s)
            if m:
                scopes[-1][m.group(1)] = int(m.group(2) or m.group(3))
        elif section == "variables:":
            m = decl.match(line)
            if m and m.group(1) in _CDL_TYPES:
                dims = [d.strip() for d in (m.group(2) or "").split(",") if d.strip()]
                visible = {k: v for sc in scopes for k, v in sc.items()}
                return m.group(1), tuple(visible[d] for d in dims)
    raise ReaderError(f"no declaration of {var!r} with an atomic type in the CDL header")


def _cdl_data(cdl, var):
    """The raw tokens of VAR's data section: quoted strings as str, others as str too."""
    name = var.rsplit("/", 1)[-1]
    m = re.search(r"^\s*data:\s*$", cdl, re.M)
    m = m and re.compile(r"^\s*" + re.escape(name) + r" =", re.M).search(cdl, m.end())
    if not m:
        raise ReaderError(f"no data section for {var!r} in ncdump output")
    out = []
    for t in _TOKEN.finditer(cdl, m.end()):
        if t.group(3):
            return out
        out.append(t.group(1) if t.group(1) is not None else t.group(2))
    raise ReaderError(f"unterminated data section for {var!r}")


def ncdump_values(store, var, fill=None):
    """Values of VAR read by netCDF-C's `ncdump -v`, parsed from CDL into numpy.

    `-p 9,17` prints float/double with enough digits to round-trip exactly (ncdump's
    default 7/15 digits loses float32 and float64 bits). ncdump prints `_` for a value equal
    to the variable's fill value; it is replaced by FILL, default the `_FillValue` attribute
    in the CDL or else the netCDF default fill of the type. NCZarr 4.9.0 never takes the
    fill from .zarray's fill_value (and even with a `_FillValue` in .zattrs prints `_` for
    the default fill), so on zarrmount stores the default is right. char variables come
    back as bytes strings over the last dimension, as ncdump prints them. VAR may be a path
    (`group/var`); its last component must be unique in the output. NCZarr 4.9.0 ignores
    the byte order of `>` dtypes, so big-endian arrays come back byte-swapped, silently."""
    cdl = _run(["ncdump", "-p", "9,17", "-v", var, nczarr_url(store)])[0]
    ctype, shape = _cdl_declaration(cdl, var)
    dtype, fill_default = _CDL_TYPES[ctype]
    if fill is None:
        m = re.search(r"^\s*" + re.escape(var.rsplit("/", 1)[-1]) + r":_FillValue = (.*) ;$", cdl, re.M)
        fill = fill_default if not m else m.group(1).strip('"') if ctype in ("char", "string") \
            else re.fullmatch(r"(.*?)(UB|US|ULL|LL|U|b|s|f)?", m.group(1)).group(1)
    tokens = _cdl_data(cdl, var)
    if ctype == "char":
        shape = shape[:-1]
        values = [t.encode("latin-1").decode("unicode_escape").encode("latin-1") for t in tokens]
        return np.array(values, dtype="S").reshape(shape)
    if ctype == "string":
        values = [fill if t == "_" else t.encode("latin-1").decode("unicode_escape") for t in tokens]
        return np.array(values, dtype=object).reshape(shape)
    if dtype[0] == "f":
        # float data is printed with an `f` suffix on non-finite values (NaNf, Infinityf)
        tokens = [str(fill) if t == "_" else t for t in tokens]
        tokens = [t[:-1] if t.endswith("f") else t for t in tokens]
    else:
        tokens = [str(fill) if t == "_" else t for t in tokens]
    values = np.array(tokens).astype(dtype)
    if values.size != int(np.prod(shape)):
        raise ReaderError(f"{var}: {values.size} values in ncdump output for shape {shape}")
    return values.reshape(shape)


# ------------------------------------------------------------------ GDAL multidimensional API

def gdal_info(store):
    """`gdalmdiminfo STORE` as a dict. GDAL 3.6.2 leaves out arrays it cannot decode (e.g.
    `Filter shuffle not handled`) with only an `ERROR 1:` line on stderr and exit status 0,
    so those lines are returned too, under the key "_stderr"."""
    out, err = _run(["gdalmdiminfo", "-nopretty", store])
    info = json.loads(out)
    info["_stderr"] = err
    return info


_GDAL_DTYPES = {"Byte": "u1", "Int8": "i1", "UInt16": "u2", "Int16": "i2", "UInt32": "u4",
                "Int32": "i4", "UInt64": "u8", "Int64": "i8", "Float32": "f4", "Float64": "f8"}


# Errors GDAL 3.6 logs while opening a store for arrays it then leaves out. They may concern
# other arrays than the one asked for (GDAL parses all metadata); if they concern that one,
# gdalmdiminfo fails with "Cannot find array". Any other ERROR (e.g. "Decompression of tile
# ... failed") comes with exit status 0 and holes in the values, so it is a failure.
_GDAL_OPEN_ERRORS = re.compile(r"^ERROR 1: (Filter \S+ not handled|Invalid or unsupported format for dtype)")


def gdal_values(store, var):
    """Values of VAR via `gdalmdiminfo -detailed -array VAR` (GDAL prints them as JSON).

    No temporary file and no osgeo bindings needed; GDAL writes floats with enough digits to
    round-trip and non-finite ones as "NaN"/"Infinity" strings. VAR is the array's GDAL full
    name without the leading slash (`grp/var`). Numeric and String data types are handled;
    GDAL widens int8 to Int16, float16 to Float32 and bool to Byte."""
    out, err = _run(["gdalmdiminfo", "-detailed", "-nopretty", "-array", var, store])
    errors = [l for l in err.splitlines() if l.startswith("ERROR") and not _GDAL_OPEN_ERRORS.match(l)]
    if errors:
        raise ReaderError(f"gdalmdiminfo -array {var} {store}:\n" + "\n".join(errors))
    info = json.loads(out)
    dt = info.get("datatype")
    if "values" not in info:
        raise ReaderError(f"{var}: gdalmdiminfo printed no values")
    shape = tuple(info.get("dimension_size", ()))
    if dt == "String":  # fixed-length `|Sn` arrays, NUL padding stripped by GDAL
        return np.array(info["values"], dtype=object).reshape(shape)
    if not isinstance(dt, str) or dt not in _GDAL_DTYPES:  # compound types come as a dict
        raise ReaderError(f"{var}: GDAL data type {dt!r} not handled here")
    try:
        values = np.array(info["values"], dtype=object if dt[0] == "F" else _GDAL_DTYPES[dt])
        values = values.astype(str).astype(_GDAL_DTYPES[dt]) if dt[0] == "F" else values
        return values.reshape(shape)
    except ValueError as e:
        raise ReaderError(f"{var}: values of gdalmdiminfo do not fit shape {shape}: {e}\n{err}") from e


# ------------------------------------------------------------------ tensorstore

def tensorstore_values(store, var, zarr_format):
    """Values of VAR read with tensorstore's `zarr` (v2) or `zarr3` (v3) driver and a `file`
    kvstore. tensorstore validates metadata strictly: it refuses v2 `filters` and v3 codecs
    named `numcodecs.*`, with an error naming the member, which is re-raised as ReaderError.
    Dimension names are not returned (v2 `_ARRAY_DIMENSIONS` is ignored by tensorstore; v3
    `dimension_names` become the domain labels of the opened TensorStore)."""
    import tensorstore as ts

    driver = {2: "zarr", 3: "zarr3"}[int(zarr_format)]
    path = os.path.join(os.path.abspath(store), var.strip("/")) + "/"
    spec = {"driver": driver, "kvstore": {"driver": "file", "path": path}}
    try:
        values = ts.open(spec, read=True, open=True).result().read().result()
    except (ValueError, RuntimeError) as e:
        raise ReaderError(f"tensorstore {driver} {path}: {e}") from e
    if values.dtype.itemsize == 0:
        # v2 `|Sn`/`|Vn` open as `char`/`byte` arrays with an extra dimension of n, and these
        # reach numpy as zero-width S/V items: the bytes are lost, so refuse.
        raise ReaderError(f"tensorstore {driver} {path}: data type not representable in numpy")
    return values


# ------------------------------------------------------------------ netCDF-C inside the netCDF4 wheel

def netcdf4_values(store, var):
    """Values of VAR through netCDF4-python, whose PyPI wheel bundles its own netCDF-C (4.10.x
    with NCZarr and the zlib/shuffle codecs): a newer netCDF-C than Debian's ncdump, in-process.
    Raw values: auto mask/scale off."""
    import netCDF4

    try:
        with netCDF4.Dataset(nczarr_url(store)) as ds:
            v = ds[var]
            v.set_auto_maskandscale(False)
            return np.asarray(v[...])
    except (OSError, RuntimeError, IndexError, KeyError) as e:
        raise ReaderError(f"netCDF4 {nczarr_url(store)} {var}: {e}") from e
