"""Baseline of `tools/bench scan-local`: kerchunk's SingleHdf5ToZarr on every file, serially, then
MultiZarrToZarr along Time, written as reference JSON.  Prints `kerchunk: N files in S s`.

Usage: kerchunk_scan.py DIR OUT.json [--concat-dim Time] [--glob '*.nc']
"""
import argparse
import glob
import json
import os
import sys
import time
import warnings


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", metavar="DIR")
    ap.add_argument("out", metavar="OUT.json")
    ap.add_argument("--concat-dim", default="Time")
    ap.add_argument("--glob", default="*.nc", help="file pattern inside DIR (default *.nc)")
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(os.path.abspath(args.dir), args.glob)))
    if not files:
        sys.exit("kerchunk_scan: no %s files in %s" % (args.glob, args.dir))
    warnings.simplefilter("ignore")
    from kerchunk.combine import MultiZarrToZarr
    from kerchunk.hdf import SingleHdf5ToZarr

    t0 = time.perf_counter()
    singles = []
    for f in files:
        with open(f, "rb") as fh:
            singles.append(SingleHdf5ToZarr(fh, url=f, inline_threshold=300).translate())
    t_single = time.perf_counter() - t0
    # arrays without the concat dim (lat, lon, interp_levels, ...) are the same in every file
    refs0 = singles[0]["refs"]
    identical = []
    for key, value in refs0.items():
        if key.endswith("/.zattrs"):
            dims = json.loads(value).get("_ARRAY_DIMENSIONS", [])
            if args.concat_dim not in dims:
                identical.append(key[: -len("/.zattrs")])
    combined = MultiZarrToZarr(singles, concat_dims=[args.concat_dim], identical_dims=identical).translate()
    with open(args.out, "w") as fh:
        json.dump(combined, fh)
    elapsed = time.perf_counter() - t0
    print("kerchunk: %d files in %.2f s (%.1f files/s; SingleHdf5ToZarr %.2f s, MultiZarrToZarr + write %.2f s)" % (
        len(files), elapsed, len(files) / elapsed, t_single, elapsed - t_single))
    return 0


if __name__ == "__main__":
    sys.exit(main())
