#!/usr/bin/env python3
"""Hold what xarray reads through `zarrmount scan FILE --refs` against xarray on FILE itself, for
every file of the third-party corpus (or of any directory), and print the differing classes.

For each file: `zarrmount scan FILE --refs OUT` (the scan the mount runs), then, in a child
process (libhdf5 can crash on exotic files), every group netCDF-C opens is compared decoded and
raw with the test suite's own comparison (`Tests/python/conftest.py: compare_datasets`, with its
documented allowances and the scan's "left out" warnings). Each file is one of:

  same           equal in every group, decoded and raw
  differs        the first difference (variables, dims, attributes, dtypes, values)
  unreadable     zarr-python or xarray fails on the references (the reason)
  not-netcdf     netCDF-C cannot open (or crashes on) the original: nothing to compare with
  scan-failed    the scan stopped on the file (its message)
  crashed        the references' reading or the comparison died (a signal) or timed out

The last line counts each class. Exit status 1 when any file is `differs` or `crashed`.

  tools/xarray-survey.py                      # the corpus beside the checkout (../shared/hdf5-corpus)
  tools/xarray-survey.py DIR_OR_FILES... --jobs 2 --only differs
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # tools/, for _bootstrap
import _bootstrap  # noqa: E402
_REPO = _bootstrap.use_repo_venv(__file__)

import argparse  # noqa: E402
import collections  # noqa: E402
import concurrent.futures  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

TESTS = os.path.join(_REPO, "Tests", "python")
DEFAULT_CORPUS = os.path.join(os.path.dirname(_REPO), "shared", "hdf5-corpus", "files")

# One file's comparison, in its own process. Prints one JSON line: {"class": ..., "detail": ...}.
_COMPARE = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[1])
path, refs, left = sys.argv[2], sys.argv[3], sys.argv[4]
from conftest import allowances, compare_datasets, groups_of, open_original, open_refs

def report(kind, detail=""):
    print(json.dumps({"class": kind, "detail": detail[:600]}), flush=True)
    sys.exit(0)

def step(name):  # the parent attributes a crash to the last step named
    print(json.dumps({"step": name}), flush=True)

step("original")
try:
    groups = groups_of(path)
except Exception as error:
    report("not-netcdf", "%s: %s" % (type(error).__name__, error))
allow = allowances(path, left)
for group in groups:
    zgroup = None if group == "/" else group
    if group.strip("/") and ("/" + group.strip("/") + " left out") in left:
        continue  # a group the scan left out, and said so (an external link)
    for decode_cf in (True, False):
        # The references first: netCDF-C can corrupt the heap on exotic originals, and a crash
        # after that must not be blamed on the references.
        step("references")
        try:
            act = open_refs(refs, decode_cf=decode_cf, group=zgroup)
            act.load()
        except Exception as error:
            report("unreadable", "group %s: %s: %s" % (group, type(error).__name__, error))
        step("original")
        try:
            exp = open_original(path, decode_cf=decode_cf, group=zgroup)
            exp.load()
        except Exception as error:
            report("not-netcdf", "group %s: %s: %s" % (group, type(error).__name__, error))
        step("comparison")
        # xarray's Zarr backend hides every `_nc*` attribute that netCDF-C shows.
        for attrs in [exp.attrs] + [exp[v].attrs for v in exp.variables]:
            for key in [k for k in attrs if k.lower().startswith("_nc")]:
                del attrs[key]
        try:
            compare_datasets(exp, act, "group %s %s" % (group, "cf" if decode_cf else "raw"), decode_cf, allow)
        except AssertionError as error:
            # Variables never written with filling off read as whatever memory held
            # (netCDF-C's f03tst_open_mem.nc): values that change between two reads of the
            # original are no oracle.
            again = open_original(path, decode_cf=decode_cf, group=zgroup).load()
            if "values differ" in str(error) and not exp.identical(again):
                report("not-netcdf", "the original's values change between reads (never written, filling off): " + str(error))
            report("differs", str(error))
report("same")
"""


def corpus_files(arguments):
    files = []
    for argument in arguments:
        if os.path.isdir(argument):
            for root, _, names in os.walk(argument):
                files += [os.path.join(root, n) for n in names if not n.startswith(".")]
        else:
            files.append(argument)
    return sorted(files)


def survey_one(binary, path, timeout):
    with tempfile.TemporaryDirectory(prefix="xarray-survey-") as work:
        refs = os.path.join(work, "refs.json")
        try:
            scan = subprocess.run([binary, "scan", path, "--refs", refs, "--no-cache"], capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "crashed", "the scan took over %d s" % timeout
        if scan.returncode != 0:
            lines = [ln for ln in scan.stderr.splitlines() if ln.strip() and "####" not in ln]
            return "scan-failed", (lines[-1] if lines else "exit %d" % scan.returncode)
        left = "\n".join(ln for ln in scan.stderr.splitlines() if "warn" in ln.lower())
        try:
            child = subprocess.run([sys.executable, "-c", _COMPARE, TESTS, path, refs, left], capture_output=True,
                                   text=True, timeout=timeout, env=dict(os.environ, HDF5_USE_FILE_LOCKING="FALSE"))
        except subprocess.TimeoutExpired:
            return "crashed", "the comparison took over %d s" % timeout
        lines = [json.loads(ln) for ln in child.stdout.splitlines() if ln.startswith("{")]
        results = [ln for ln in lines if "class" in ln]
        if child.returncode != 0 or not results:
            steps = [ln["step"] for ln in lines if "step" in ln]
            why = "exit %d: %s" % (child.returncode, " ".join(child.stderr.strip().splitlines()[-1:]))
            if steps and steps[-1] == "original":  # netCDF-C or libhdf5 died on the original file
                return "not-netcdf", "opening the original crashed: " + why
            return "crashed", "%s: %s" % (steps[-1] if steps else "start", why)
        return results[-1]["class"], results[-1]["detail"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="files or directories (default: %s)" % DEFAULT_CORPUS)
    parser.add_argument("--binary", default=os.environ.get("ZARRMOUNT_BIN", os.path.join(_REPO, ".build", "release", "zarrmount")),
                        help="the zarrmount executable (default: $ZARRMOUNT_BIN or .build/release/zarrmount)")
    parser.add_argument("--jobs", type=int, default=max(1, os.cpu_count() or 1), help="files at once (default: the cores)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per scan and per comparison (default 300)")
    parser.add_argument("--only", action="append", default=[], help="print only files of this class (repeatable)")
    args = parser.parse_args()
    paths = args.paths or [DEFAULT_CORPUS]
    files = corpus_files(paths)
    if not files:
        sys.exit("xarray-survey: no files under %s" % ", ".join(paths))
    if not os.access(args.binary, os.X_OK):
        sys.exit("xarray-survey: %s is not an executable; build it with `swift build -c release` or pass --binary" % args.binary)
    common = os.path.commonpath(files) if len(files) > 1 else os.path.dirname(files[0])
    counts = collections.Counter()
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(survey_one, args.binary, f, args.timeout): f for f in files}
        done = 0
        for future in concurrent.futures.as_completed(futures):
            done += 1
            kind, detail = future.result()
            counts[kind] += 1
            if not args.only or kind in args.only:
                line = "%-12s %s" % (kind, os.path.relpath(futures[future], common))
                print(line + ("\n             " + detail.replace("\n", " ")[:400] if detail and kind != "same" else ""), flush=True)
            print("[%d/%d]" % (done, len(files)), file=sys.stderr, end="\r", flush=True)
    print("%d files: %s" % (len(files), ", ".join("%s %d" % (k, counts[k]) for k in
                                                    ("same", "differs", "unreadable", "not-netcdf", "scan-failed", "crashed"))))
    sys.exit(1 if counts["differs"] or counts["crashed"] else 0)


if __name__ == "__main__":
    main()
