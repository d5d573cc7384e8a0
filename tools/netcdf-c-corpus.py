#!/usr/bin/env python3
"""netCDF-C's own test files as an oracle corpus: tools/netcdf-c-corpus.py OUTDIR

Downloads the source of Debian's netCDF-C (netcdf_4.9.0.orig.tar.gz from deb.debian.org's pool,
checked against the sha256 the Debian source package lists), and writes into OUTDIR:

  files/<dir>/<name>.nc       every .nc file the source carries (netCDF-3 and netCDF-4, some broken
                              on purpose, e.g. nc_test/bad_cdf5_begin.nc)
  cdl/<dir>/<name>.<kind>.nc  every .cdl of ncdump/, ncgen/ and ncgen3/ compiled by Debian's ncgen
                              into netCDF-3 classic (nc3) and 64-bit data (nc5)
                              files; a CDL that ncgen refuses for a format is skipped (netCDF-4-only
                              types in a classic file), and the reason is listed in OUTDIR/skipped.txt

The files are netCDF-C's test data, used only as test input (never copied into the repository).
The oracle is netCDF-C itself (xarray on the originals, through netCDF4-python), so the tests hold
zarrmount's view of each file against the library that wrote it.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # tools/, for _bootstrap
import _bootstrap  # noqa: E402
_REPO = _bootstrap.use_repo_venv(__file__, warn_if_missing=True)

import argparse  # noqa: E402
import hashlib  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402
import urllib.request  # noqa: E402

TARBALL = "netcdf_4.9.0.orig.tar.gz"
URL = "http://deb.debian.org/debian/pool/main/n/netcdf/" + TARBALL
# From netcdf_4.9.0-3.dsc (Debian 12's source package of libnetcdf19 4.9.0-3).
SHA256 = "9f4cb864f3ab54adb75409984c6202323d2fc66c003e5308f3cdf224ed41c0a6"
CDL_DIRS = ("ncdump", "ncgen", "ncgen3")
# CDLs whose files ncgen writes out in full at 4 GB and more (ncgen3/big*.cdl): too large for a
# test run's disk; their point, offsets past 2 and 4 GiB, is covered by sparse files in the tests.
TOO_LARGE = ("ncgen3/bigf1", "ncgen3/bigf2", "ncgen3/bigf3", "ncgen3/bigr1", "ncgen3/bigr2", "ncgen3/bigr3")
# A compiled file above this is dropped (and listed) rather than kept.
MAX_FILE_BYTES = 64 << 20
# Classic and 64-bit data: 64-bit offset files differ from classic ones only in the width of
# their offsets, which netCDF-C's own ref_nctest_64bit_offset.nc and the fixtures cover; leaving
# them out keeps the corpus test to its share of the suite.
KINDS = (("nc3", "classic"), ("nc5", "64-bit data"))


def fetch(cache):
    """The tarball, from CACHE when it is there and intact, else downloaded into it."""
    path = os.path.join(cache, TARBALL)
    if os.path.exists(path) and sha256(path) == SHA256:
        return path
    os.makedirs(cache, exist_ok=True)
    partial = path + ".part"
    with urllib.request.urlopen(URL, timeout=120) as response, open(partial, "wb") as out:
        shutil.copyfileobj(response, out)
    got = sha256(partial)
    if got != SHA256:
        os.remove(partial)
        sys.exit("netcdf-c-corpus: %s has sha256 %s, not Debian's %s" % (URL, got, SHA256))
    os.replace(partial, path)
    return path


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("--cache", default=os.path.join(_REPO, ".cache", "downloads"),
                        help="where the source tarball is kept (default .cache/downloads)")
    args = parser.parse_args()
    if shutil.which("ncgen") is None:
        sys.exit("netcdf-c-corpus: ncgen is missing (Debian's netcdf-bin; tools/setup installs it)")
    tarball = fetch(args.cache)
    out = os.path.abspath(args.outdir)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    skipped = []
    counts = {"files": 0, "cdl": 0}
    work = os.path.join(out, ".cdl-source")
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            parts = member.name.split("/")
            if len(parts) < 3 or ".." in parts:
                continue
            relative = "/".join(parts[1:])
            if relative.endswith(".nc"):
                target = os.path.join(out, "files", relative)
            elif relative.endswith(".cdl") and parts[1] in CDL_DIRS:
                target = os.path.join(work, relative)
            else:
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            if relative.endswith(".nc"):
                counts["files"] += 1
    for directory, _, names in sorted(os.walk(work)):
        for name in sorted(names):
            cdl = os.path.join(directory, name)
            relative = os.path.relpath(cdl, work)[: -len(".cdl")]
            if relative in TOO_LARGE:
                skipped.append("%s: writes a file of 4 GB or more" % (relative + ".cdl"))
                continue
            for kind, label in KINDS:
                target = os.path.join(out, "cdl", "%s.%s.nc" % (relative, kind))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                # ncgen resolves nothing outside the CDL; a bounded run keeps a pathological one
                # from holding the suite.
                try:
                    p = subprocess.run(["ncgen", "-k", kind, "-o", target, cdl], capture_output=True, text=True,
                                       timeout=60, cwd=directory)
                except subprocess.TimeoutExpired:
                    p = None
                if p is None or p.returncode != 0 or not os.path.exists(target):
                    reason = "timed out" if p is None else (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
                    skipped.append("%s (%s): %s" % (relative + ".cdl", label, reason))
                    if os.path.exists(target):
                        os.remove(target)
                elif os.path.getsize(target) > MAX_FILE_BYTES:
                    skipped.append("%s (%s): %d bytes, over the corpus's %d" % (
                        relative + ".cdl", label, os.path.getsize(target), MAX_FILE_BYTES))
                    os.remove(target)
                else:
                    counts["cdl"] += 1
    shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(out, "skipped.txt"), "w") as fh:
        fh.write("\n".join(skipped) + ("\n" if skipped else ""))
    print("netcdf-c-corpus: %d .nc files, %d netCDF-3 files from CDL (%d CDL/format pairs ncgen refused) in %s"
          % (counts["files"], counts["cdl"], len(skipped), out))


if __name__ == "__main__":
    main()
