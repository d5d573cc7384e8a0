"""tools/bench scale [--objects N,N,...] [--kinds wrf,indexed] [--latency-ms MS]: how a scan's cost grows with the archive.

For each kind of file and each size (default 365 and 10000 objects) an archive of that many URLs
is served by nginx behind tools/latency-proxy, files published again and again under new names
through symbolic links (so 100,000 objects need no 100,000 files on disk; nginx serves a link as
its target). The kinds:
- `wrf`: the 365 WRF-like files of the bench year (41 variables, contiguous and chunked, v1
  B-tree indexes);
- `indexed`: 8 distinct netCDF-4 files written by h5netcdf with libhdf5's latest format, each
  with many small chunks in the newer indexes: `obs(time, station)` (time unlimited: an
  extensible array, 384 chunks) and `profile(time, level)` (two unlimited dimensions: a v2
  B-tree, 384 chunks). `zarrmount scan --urls ... --concat-dim Time (time) --order key --manifest`
runs once per size with the manifest cache off, and the tables print files/s, CPU per file,
requests and KiB per file, the peak RSS, the manifest's size (with ratios to the smallest size:
files/s at N within 20 % of files/s at 365 is issue 17's target; no step may be superlinear),
and the time of each phase (listing, scanning, combining, writing). The latency proxy's own capacity is measured in the same run.

Repeated files repeat their time steps: the scan notes that the axis does not increase (key
order keeps it as given), which costs it nothing.
"""
import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import remote_read as rr  # noqa: E402  (services and the latency proxy)

ap = argparse.ArgumentParser()
ap.add_argument("--zarrmount", required=True)
ap.add_argument("--proxy", required=True)
ap.add_argument("--archive", required=True, help="directory of the 365 WRF-like files")
ap.add_argument("--work", required=True)
ap.add_argument("--objects", default="365,10000", help="comma-separated archive sizes")
ap.add_argument("--kinds", default="wrf,indexed", help="comma-separated kinds of file: wrf, indexed")
ap.add_argument("--latency-ms", type=float, default=20)
args = ap.parse_args()
args.work = os.path.abspath(args.work)
os.makedirs(args.work, exist_ok=True)
sizes = [int(n) for n in args.objects.split(",")]
kinds = args.kinds.split(",")
for kind in kinds:
    if kind not in ("wrf", "indexed"):
        raise SystemExit("unknown kind %r (use wrf or indexed)" % kind)


def indexed_archive():
    """8 netCDF-4 files of many small chunks in extensible-array and v2 B-tree indexes."""
    import h5netcdf
    import h5py
    import numpy as np
    directory = os.path.join(args.work, "indexed")
    marker = os.path.join(directory, ".complete")
    if not os.path.exists(marker):
        os.makedirs(directory, exist_ok=True)
        steps, stations, levels = 48, 64, 16
        for n in range(8):
            path = os.path.join(directory, "indexed-%d.nc" % n)
            rng = np.random.default_rng(n)
            with h5netcdf.File(path, "w", libver="latest") as f:
                f.dimensions = {"time": None, "station": stations, "level": None}
                f.resize_dimension("time", steps)
                f.resize_dimension("level", levels)
                time_ = f.create_variable("time", ("time",), "f8", chunks=(steps,))
                time_[:] = n * steps + np.arange(steps)
                time_.attrs["units"] = "hours since 2020-01-01"
                obs = f.create_variable("obs", ("time", "station"), "f4", chunks=(1, 8), compression="gzip", fillvalue=np.float32(-999))
                obs[:] = rng.normal(size=(steps, stations)).astype("f4")
                profile = f.create_variable("profile", ("time", "level"), "f4", chunks=(1, 2), fillvalue=np.float32(-999))
                profile[:] = rng.normal(size=(steps, levels)).astype("f4")
            with h5py.File(path, "r") as f:
                kinds_seen = {f[name].id.get_create_plist().get_layout() for name in ("obs", "profile")}
                assert kinds_seen == {h5py.h5d.CHUNKED}, kinds_seen
        open(marker, "w").close()
    return directory


def sources(kind):
    if kind == "wrf":
        return os.path.realpath(args.archive)
    return indexed_archive()


def publish_links(kind, count):
    """A directory of COUNT links (obj-0000000.nc ...) cycling through the kind's files."""
    origin = sources(kind)
    names = sorted(n for n in os.listdir(origin) if n.endswith(".nc"))
    if not names:
        raise SystemExit("%s holds no .nc files" % origin)
    directory = os.path.join(args.work, "links-%d" % count if kind == "wrf" else "links-%s-%d" % (kind, count))
    if not os.path.exists(os.path.join(directory, ".complete")):
        os.makedirs(directory, exist_ok=True)
        for i in range(count):
            link = os.path.join(directory, "obj-%07d.nc" % i)
            if not os.path.islink(link):
                os.symlink(os.path.join(origin, names[i % len(names)]), link)
        open(os.path.join(directory, ".complete"), "w").close()
    return directory


CONCAT_DIM = {"wrf": "Time", "indexed": "time"}


def scan(urls_file, manifest, kind):
    start = time.perf_counter()
    p = subprocess.Popen([args.zarrmount, "scan", "--urls", urls_file, "--concat-dim", CONCAT_DIM[kind], "--order", "key", "--no-cache",
                          "--manifest", manifest], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("zarrmount scan of %s failed:\n%s" % (urls_file, stderr[-3000:]))
    files = int(re.search(r"scanned (\d+) files", stderr).group(1))
    remote = re.search(r"remote: (\d+) HTTP requests \((\d+) retried\), ([\d.]+) (\w+) received", stderr)
    phases = re.search(r"time: listing ([\d.]+) s, scanning ([\d.]+) s, combining ([\d.]+) s, writing ([\d.]+) s", stderr)
    unit = {"B": 1, "KiB": 1024, "MiB": 2 ** 20, "GiB": 2 ** 30}[remote.group(4)]
    chunks = int(re.search(r"arrays, (\d+) chunks", stderr).group(1))
    return {"files": files, "chunks": chunks, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024,
            "requests": int(remote.group(1)), "bytes": float(remote.group(3)) * unit, "manifest": os.path.getsize(manifest),
            "phases": [float(phases.group(i)) for i in range(1, 5)]}


www, http_port = rr.start_services(args.work)
rows = []
with rr.latency_proxy(args.proxy, http_port, args.latency_ms) as port:
    for kind in kinds:
        for count in sizes:
            directory = publish_links(kind, count)
            name = "bench-scale-%s-%d" % (kind, count)
            rr.publish(www, name, directory)
            urls_file = os.path.join(args.work, "urls-%s-%d.txt" % (kind, count))
            with open(urls_file, "w") as f:
                for i in range(count):
                    f.write("http://127.0.0.1:%d/%s/obj-%07d.nc\n" % (port, name, i))
            sys.stderr.write("[bench scale] scanning %d %s objects\n" % (count, kind))
            row = scan(urls_file, os.path.join(args.work, "scale-%s-%d.zmf" % (kind, count)), kind)
            row["kind"] = kind
            rows.append(row)
    capacity = subprocess.run([args.proxy, "--measure-capacity", "--upstream", "127.0.0.1:%d" % http_port, "--path",
                               "/bench-scale-%s-%d/obj-0000000.nc" % (kinds[0], sizes[0]), "--seconds", "3"],
                              capture_output=True, text=True)

print()
print("scan cost by archive size (objects over HTTP at %.0f ms round trip; nginx behind tools/latency-proxy; %d cores;"
      " ratios against the smallest size of the same kind)" % (args.latency_ms, os.cpu_count()))
print("latency proxy capacity (no delay): %s" % capacity.stdout.strip())
print("%8s %8s %11s %9s %9s %10s %10s %9s %9s %9s %11s %10s" % (
    "kind", "objects", "chunks/file", "wall (s)", "files/s", "vs first", "CPU ms/file", "vs first", "req/file", "KiB/file",
    "peak RSS MiB", "zmf B/file"))
for r in rows:
    base = next(b for b in rows if b["kind"] == r["kind"])
    rate, cpu = r["files"] / r["wall"], 1000 * r["cpu"] / r["files"]
    print("%8s %8d %11.0f %9.2f %9.1f %9.2fx %10.2f %8.2fx %9.1f %9.1f %11.0f %10.0f" % (
        r["kind"], r["files"], r["chunks"] / r["files"], r["wall"], rate, rate / (base["files"] / base["wall"]), cpu,
        cpu / (1000 * base["cpu"] / base["files"]), r["requests"] / r["files"], r["bytes"] / 1024 / r["files"], r["rss"],
        r["manifest"] / r["files"]))
print()
print("time of each phase (s; listing is before the first file's scan: HTTP URLs are listed as they are scanned)")
print("%8s %8s %9s %9s %10s %9s %12s" % ("kind", "objects", "listing", "scanning", "combining", "writing", "combining/file"))
for r in rows:
    listing, scanning, combining, writing = r["phases"]
    print("%8s %8d %9.2f %9.2f %10.2f %9.2f %10.1f us" % (r["kind"], r["files"], listing, scanning, combining, writing,
                                                        1e6 * combining / r["files"]))
