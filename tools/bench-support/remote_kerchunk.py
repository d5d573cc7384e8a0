"""Baseline of `tools/bench scan` over HTTP: kerchunk's SingleHdf5ToZarr on N files read through
fsspec's HTTP filesystem (aiohttp), serially, as the seed notebook does per file. Point it at the
latency proxy in front of nginx to see what 20 ms round trips cost it.

    remote_kerchunk.py URL... | --urls FILE | --base URL --names 'WRFDS_*.nc' --dir DIR
                       [--files N] [--cache-type none] [--block-size BYTES]

Prints `kerchunk-http: N files in S s (F files/s; R reads/file, B bytes/file; cache_type ...)`.
The default cache_type "none" is the seed's setting (default_fill_cache=False,
default_cache_type="none"): every read h5py makes is one ranged GET. (Combining is left out: it
is local work, and MultiZarrToZarr cannot fetch the Time coordinate through fsspec's HTTP
filesystem under zarr 3's event loop.)
"""
import argparse
import fnmatch
import io
import os
import sys
import time
import warnings


class CountingFile(io.RawIOBase):
    """A file-like wrapper counting the reads (each one an HTTP request with cache_type none)."""

    def __init__(self, f):
        super().__init__()
        self.f = f
        self.reads = 0
        self.bytes = 0

    def read(self, n=-1):
        data = self.f.read(n)
        self.reads += 1
        self.bytes += len(data)
        return data

    def readinto(self, b):
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seek(self, offset, whence=0):
        return self.f.seek(offset, whence)

    def tell(self):
        return self.f.tell()

    def seekable(self):
        return True

    def readable(self):
        return True

    def close(self):
        self.f.close()
        super().close()


def urls_from(args):
    urls = list(args.urls)
    if args.urls_file:
        with open(args.urls_file) as fh:
            urls += [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]
    if args.base:
        if not args.dir:
            sys.exit("remote_kerchunk: --base needs --dir (the served directory, to list the names)")
        names = sorted(n for n in os.listdir(args.dir) if fnmatch.fnmatchcase(n, args.names))
        urls += [args.base.rstrip("/") + "/" + n for n in names]
    if args.files:
        urls = urls[: args.files]
    if not urls:
        sys.exit("remote_kerchunk: no URLs")
    return urls


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("urls", nargs="*", metavar="URL")
    ap.add_argument("--urls", dest="urls_file", metavar="FILE", help="a file of URLs, one a line")
    ap.add_argument("--base", metavar="URL", help="base URL of the files in --dir matching --names")
    ap.add_argument("--dir", help="the directory the server serves at --base")
    ap.add_argument("--names", default="*.nc", help="file name pattern with --base (default *.nc)")
    ap.add_argument("--files", type=int, default=0, metavar="N", help="only the first N URLs")
    ap.add_argument("--cache-type", default="none", help="fsspec cache_type (default none, as the seed)")
    ap.add_argument("--block-size", type=int, default=None, help="fsspec block_size for caching cache types")
    args = ap.parse_args()
    urls = urls_from(args)
    warnings.simplefilter("ignore")
    import fsspec
    from kerchunk.hdf import SingleHdf5ToZarr

    fs = fsspec.filesystem("http", skip_instance_cache=True)
    opts = {"cache_type": args.cache_type}
    if args.block_size:
        opts["block_size"] = args.block_size
    singles = []
    reads = nbytes = 0
    t0 = time.perf_counter()
    for url in urls:
        with fs.open(url, "rb", **opts) as raw:
            f = CountingFile(raw)
            singles.append(SingleHdf5ToZarr(f, url=url, inline_threshold=300).translate())
            reads += f.reads
            nbytes += f.bytes
    elapsed = time.perf_counter() - t0
    n = len(urls)
    print("kerchunk-http: %d files in %.2f s (%.2f files/s; %.0f reads/file, %.0f bytes/file; cache_type %s)" % (
        n, elapsed, n / elapsed, reads / n, nbytes / n, args.cache_type), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
