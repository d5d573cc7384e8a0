"""netCDF-C's own test files as an oracle corpus (issue 16): every .nc file in Debian's netCDF-C 4.9.0
source, and every CDL of its ncdump/, ncgen/ and ncgen3/ tests compiled by ncgen into netCDF-3
classic and 64-bit data files (tools/netcdf-c-corpus.py builds them into
.cache/netcdf-c-corpus; never into the repository).

Each file that xarray opens (netCDF4-python, i.e. netCDF-C itself) is scanned into kerchunk references
and must read back, raw and CF-decoded, exactly as xarray reads the original: same variables (or those
left out named in a warning), dims, attributes, dtypes and values. A file xarray cannot open must
still end the scan cleanly (exit 0, or 1 naming the file), never a crash. The session summary lists
how many files agreed and which were refused and why.
"""
import os
import subprocess
import sys

import pytest

from conftest import (CACHE, REFUSED, REPO, UNOPENABLE, _ensure_generated, allowances, compare_datasets, left_out,
                      open_original, open_refs, probe_originals, run_vz)

TOOL = os.path.join(REPO, "tools", "netcdf-c-corpus.py")
CORPUS = _ensure_generated(os.path.join(CACHE, "netcdf-c-corpus"), [TOOL], [sys.executable, TOOL,
                                                                           os.path.join(CACHE, "netcdf-c-corpus")])
FILES = sorted(os.path.relpath(os.path.join(d, f), CORPUS)
               for d, _, names in os.walk(CORPUS) for f in names if f.endswith(".nc"))


# Variables netCDF-C itself reads differently each time: never written, with no fill value
# (HDF5 "fill never"), so netCDF-C returns whatever its buffer held (ncdump prints
# 163245695, 21872, 0, 0, ...; netCDF4-python another value). Their metadata is compared, their
# values are not.
UNDEFINED_VALUES = {"files/nc_test/f03tst_open_mem.nc": ["var2"]}


@pytest.fixture(scope="module")
def probes():
    return probe_originals([os.path.join(CORPUS, f) for f in FILES])


def test_the_corpus_holds_netcdf_c_files_of_every_format():
    """The corpus is what it says: netCDF-3 in all three formats and netCDF-4 files (by magic number)."""
    formats = {}
    for f in FILES:
        with open(os.path.join(CORPUS, f), "rb") as fh:
            magic = fh.read(8)
        kind = {b"CDF\x01": "classic", b"CDF\x02": "64-bit offset", b"CDF\x05": "64-bit data"}.get(
            magic[:4], "HDF5" if magic == b"\x89HDF\r\n\x1a\n" else "other")
        formats[kind] = formats.get(kind, 0) + 1
    assert formats.get("classic", 0) >= 50, formats
    assert formats.get("64-bit offset", 0) >= 1, formats
    assert formats.get("64-bit data", 0) >= 50, formats
    assert formats.get("HDF5", 0) >= 5, formats


@pytest.mark.parametrize("name", FILES)
def test_netcdf_c_file_reads_as_netcdf_c_reads_it(name, probes, tmp_path):
    path = os.path.join(CORPUS, name)
    refs = str(tmp_path / "refs.json")
    p = run_vz(["scan", path, "--no-cache", "--refs", refs], timeout=120)
    probe = probes[path]
    ok_groups = [g for g, s in probe.get("groups", {}).items() if s == "ok"]
    if "error" in probe or not ok_groups:
        assert p.returncode in (0, 1), p.stderr[-2000:]
        if p.returncode == 1:
            assert path in p.stderr, "the error names the file: %s" % p.stderr[-2000:]
        if "Unknown file format" in probe.get("error", ""):
            # netCDF-C calls it corrupt (overlapping variables, a bad magic number...): so must we.
            assert p.returncode == 1, "netCDF-C refuses %s, zarrmount served it:\n%s" % (name, p.stderr[-2000:])
        UNOPENABLE.append((name, str(probe.get("error", probe.get("groups")))))
        pytest.skip("xarray cannot open %s either" % name)
    if p.returncode == 1:
        message = (p.stderr.strip().splitlines() or ["(no message)"])[-1]
        assert path in message or os.path.basename(path) in message, "the error names the file: %s" % message
        REFUSED.append((name, message))
        return
    assert p.returncode == 0, p.stderr[-3000:]
    allow = allowances(path, left_out(p))
    undefined = UNDEFINED_VALUES.get(name, [])
    for group in ok_groups:
        zgroup = None if group == "/" else group.lstrip("/")
        for decode_cf in (True, False):
            where = "%s group %s %s" % (name, group, "cf" if decode_cf else "raw")
            with open_original(path, decode_cf, group=None if group == "/" else group) as exp, \
                    open_refs(refs, decode_cf, group=zgroup) as act:
                compare_datasets(exp, act, where, decode_cf, allow, values=not undefined)
                if undefined:
                    defined = [v for v in exp.variables if v not in undefined]
                    compare_datasets(exp, act, where, decode_cf, allow, variables=defined)

