"""tools/bench scale [--objects N,N,...] [--latency-ms MS]: how a scan's cost grows with the archive.

For each size (default 365 and 10000 objects) an archive of that many URLs is served by nginx
behind tools/latency-proxy: the 365 WRF-like files of the bench year, published again and again
under new names through symbolic links (so 100,000 objects need no 100,000 files on disk; nginx
serves a link as its target). `zarrmount scan --urls ... --concat-dim Time --order key --manifest`
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
ap.add_argument("--latency-ms", type=float, default=20)
args = ap.parse_args()
args.work = os.path.abspath(args.work)
os.makedirs(args.work, exist_ok=True)
sizes = [int(n) for n in args.objects.split(",")]
names = sorted(n for n in os.listdir(args.archive) if n.endswith(".nc"))
if not names:
    raise SystemExit("%s holds no .nc files" % args.archive)


def publish_links(count):
    """A directory of COUNT links (obj-0000000.nc ...) cycling through the archive's files."""
    directory = os.path.join(args.work, "links-%d" % count)
    if not os.path.exists(os.path.join(directory, ".complete")):
        os.makedirs(directory, exist_ok=True)
        for i in range(count):
            link = os.path.join(directory, "obj-%07d.nc" % i)
            if not os.path.islink(link):
                os.symlink(os.path.join(os.path.realpath(args.archive), names[i % len(names)]), link)
        open(os.path.join(directory, ".complete"), "w").close()
    return directory


def scan(urls_file, manifest):
    start = time.perf_counter()
    p = subprocess.Popen([args.zarrmount, "scan", "--urls", urls_file, "--concat-dim", "Time", "--order", "key", "--no-cache",
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
    return {"files": files, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024,
            "requests": int(remote.group(1)), "bytes": float(remote.group(3)) * unit, "manifest": os.path.getsize(manifest),
            "phases": [float(phases.group(i)) for i in range(1, 5)]}


www, http_port = rr.start_services(args.work)
rows = []
with rr.latency_proxy(args.proxy, http_port, args.latency_ms) as port:
    for count in sizes:
        directory = publish_links(count)
        rr.publish(www, "bench-scale-%d" % count, directory)
        urls_file = os.path.join(args.work, "urls-%d.txt" % count)
        with open(urls_file, "w") as f:
            for i in range(count):
                f.write("http://127.0.0.1:%d/bench-scale-%d/obj-%07d.nc\n" % (port, count, i))
        sys.stderr.write("[bench scale] scanning %d objects\n" % count)
        rows.append(scan(urls_file, os.path.join(args.work, "scale-%d.zmf" % count)))
    capacity = subprocess.run([args.proxy, "--measure-capacity", "--upstream", "127.0.0.1:%d" % http_port, "--path",
                               "/bench-scale-%d/obj-0000000.nc" % sizes[0], "--seconds", "3"], capture_output=True, text=True)

base = rows[0]
print()
print("scan cost by archive size (WRF-like objects over HTTP at %.0f ms round trip; nginx behind tools/latency-proxy; %d cores)"
      % (args.latency_ms, os.cpu_count()))
print("latency proxy capacity (no delay): %s" % capacity.stdout.strip())
print("%8s %9s %9s %10s %10s %9s %9s %9s %11s %10s" % ("objects", "wall (s)", "files/s", "vs first", "CPU ms/file", "vs first",
                                                       "req/file", "KiB/file", "peak RSS MiB", "zmf B/file"))
for r in rows:
    rate, cpu = r["files"] / r["wall"], 1000 * r["cpu"] / r["files"]
    print("%8d %9.2f %9.1f %9.2fx %10.2f %8.2fx %9.1f %9.1f %11.0f %10.0f" % (
        r["files"], r["wall"], rate, rate / (base["files"] / base["wall"]), cpu, cpu / (1000 * base["cpu"] / base["files"]),
        r["requests"] / r["files"], r["bytes"] / 1024 / r["files"], r["rss"], r["manifest"] / r["files"]))
print()
print("time of each phase (s; listing is before the first file's scan: HTTP URLs are listed as they are scanned)")
print("%8s %9s %9s %10s %9s %12s" % ("objects", "listing", "scanning", "combining", "writing", "combining/file"))
for r in rows:
    listing, scanning, combining, writing = r["phases"]
    print("%8d %9.2f %9.2f %10.2f %9.2f %10.1f us" % (r["files"], listing, scanning, combining, writing, 1e6 * combining / r["files"]))
