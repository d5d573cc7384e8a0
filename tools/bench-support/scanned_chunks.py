"""tools/bench chunks [--chunks N] [--index-chunks N]: arrays of millions of chunks, scanned from
real HDF5 files, mounted from their manifests and listed.

libhdf5 (through h5py) writes one dataset per chunk index kind, of one-byte chunks allocated at
creation and never written (so the file is mostly its index): a fixed array and an implicit
index of `--chunks` chunks (10,000,000 by default, issue 17's size), and an extensible array, a
version-2 B-tree and a version-1 B-tree of `--index-chunks` chunks each (1,000,000 by default; libhdf5 takes minutes to
write 10 million entries into those). Each file is scanned to a manifest with the cache off
(wall time and peak RSS of the scan), mounted from the manifest (`mount --manifest`: time, and
the daemon's peak RSS after listing), its array directory listed, and its last chunk file read.
The baseline, in the same run, is libhdf5's own enumeration of the same chunks (h5py's
`chunk_iter`): the scan's time is printed as a ratio to it.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import h5py

ap = argparse.ArgumentParser()
ap.add_argument("--zarrmount", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--chunks", type=int, default=10_000_000, help="chunks of the fixed-array dataset")
ap.add_argument("--index-chunks", type=int, default=1_000_000, help="chunks of the other index kinds")
args = ap.parse_args()
args.work = os.path.abspath(args.work)
os.makedirs(args.work, exist_ok=True)

WIDTH = 1000
# (name, chunk count, libver low bound, unlimited axes, filtered): libhdf5 picks the index from
# these; unfiltered chunks allocated at creation in a fixed shape need no index at all
# (implicit), and a shuffle filter (a no-op on one-byte elements) makes it a fixed array.
KINDS = [
    ("fixed array", args.chunks, "latest", 0, True),
    ("implicit", args.chunks, "latest", 0, False),
    ("extensible array", args.index_chunks, "latest", 1, False),
    ("v2 B-tree", args.index_chunks, "latest", 2, False),
    ("v1 B-tree", args.index_chunks, "earliest", 0, False),
]


def write(path, count, libver, unlimited, filtered):
    rows = max(1, count // WIDTH)
    shape = (rows, min(count, WIDTH))
    maxshape = tuple(h5py.h5s.UNLIMITED if axis < unlimited else extent for axis, extent in enumerate(shape))
    with h5py.File(path + ".tmp", "w", libver=(libver, "latest")) as f:
        space = h5py.h5s.create_simple(shape, maxshape)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((1, 1))
        if filtered:
            dcpl.set_shuffle()
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        h5py.h5d.create(f.id, b"data", h5py.h5t.NATIVE_UINT8, space, dcpl=dcpl)
    os.replace(path + ".tmp", path)


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise SystemExit("%s failed (status %d):\n%s" % (" ".join(cmd), p.returncode, p.stderr[-2000:]))
    return p.stdout


def timed_rss(cmd):
    """Wall seconds and peak RSS (MiB) of one command, which must succeed."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("%s failed:\n%s" % (" ".join(cmd), err[-2000:]))
    return wall, usage.ru_maxrss / 1024


def daemon_peak_rss(mountpoint):
    pid = json.loads(run([args.zarrmount, "status", mountpoint]))["pid"]
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


rows = []
for name, count, libver, unlimited, filtered in KINDS:
    slug = name.replace(" ", "-")
    path = os.path.join(args.work, "chunks-%s-%d.h5" % (slug, count))
    if not os.path.exists(path):
        sys.stderr.write("[bench chunks] libhdf5 writes %s of %d chunks\n" % (name, count))
        write(path, count, libver, unlimited, filtered)
    start = time.perf_counter()
    with h5py.File(path, "r") as f:
        enumerated = [0]

        def visit(info):
            enumerated[0] += 1

        f["data"].id.chunk_iter(visit)
    baseline = time.perf_counter() - start
    manifest = os.path.join(args.work, "chunks-%s.zmf" % slug)
    sys.stderr.write("[bench chunks] scanning %s\n" % name)
    scan_s, scan_rss = timed_rss([args.zarrmount, "scan", path, "--no-cache", "--manifest", manifest])
    mountpoint = os.path.join(args.work, "mnt-%s" % slug)
    os.makedirs(mountpoint, exist_ok=True)
    mount_s, _ = timed_rss([args.zarrmount, "mount", "--manifest", manifest, mountpoint])
    try:
        start = time.perf_counter()
        listed = sum(1 for _ in os.scandir(os.path.join(mountpoint, "data")))
        list_s = time.perf_counter() - start
        with open(os.path.join(mountpoint, "data", "%d.%d" % (count // WIDTH - 1, min(count, WIDTH) - 1)), "rb") as f:
            last = len(f.read())
        daemon_rss = daemon_peak_rss(mountpoint)
    finally:
        run([args.zarrmount, "unmount", mountpoint])
    rows.append((name, enumerated[0], baseline, scan_s, scan_rss, os.path.getsize(manifest), mount_s, daemon_rss, listed, list_s, last))

print()
print("arrays of many chunks, scanned from HDF5 files libhdf5 wrote (%s), mounted from their manifests (%d cores)"
      % (h5py.version.hdf5_version, os.cpu_count()))
print("%-17s %9s %9s %8s %9s %9s %8s %8s %10s %10s %7s %5s" % (
    "index", "chunks", "libhdf5 s", "scan s", "vs hdf5", "scan MiB", "zmf MiB", "mount s", "daemon MiB", "entries", "list s",
    "last"))
for name, chunks, baseline, scan_s, scan_rss, zmf, mount_s, daemon_rss, listed, list_s, last in rows:
    print("%-17s %9d %9.2f %8.2f %8.2fx %9.0f %8.1f %8.2f %10.0f %10d %7.1f %5d" % (
        name, chunks, baseline, scan_s, scan_s / baseline, scan_rss, zmf / 2 ** 20, mount_s, daemon_rss, listed, list_s, last))
print("(libhdf5 s: h5py's chunk_iter over the same chunks; entries: the listing of data/, with .zarray and .zattrs;"
      " last: bytes of the last chunk file)")
