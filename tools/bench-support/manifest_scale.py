"""tools/bench manifest [--chunks N]: what mounting from a binary manifest costs, apart from any scan.

1. The year (365 WRF-like files on local disk) scanned once to a manifest; then `zarrmount mount
   --manifest` of it, against `zarrmount mount` of the same files with the manifest cache filled
   (the baseline: a listing of every file and the cached per-file results combined again), and
   against the start of the binary alone (`zarrmount --version`; a mount starts it once, and
   its daemon is a fork of the command). Medians of 5.
2. A synthetic manifest of N chunks (default 10,000,000) over one object: its size, the time to
   read and check it in a fresh process with that process's peak RSS, the time `zarrmount mount
   --manifest` takes with the daemon's peak RSS, a listing of the array's directory, and a read of
   its last chunk file.
"""
import argparse
import json
import os
import statistics
import subprocess
import time

ap = argparse.ArgumentParser()
ap.add_argument("--zarrmount", required=True)
ap.add_argument("--bench", required=True)
ap.add_argument("--archive", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--chunks", type=int, default=10_000_000)
ap.add_argument("--repeat", type=int, default=5)
args = ap.parse_args()
os.makedirs(args.work, exist_ok=True)


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    if p.returncode != 0:
        raise SystemExit("%s failed (status %d):\n%s" % (" ".join(cmd), p.returncode, p.stderr[-2000:]))
    return p


def timed(cmd):
    start = time.perf_counter()
    run(cmd)
    return time.perf_counter() - start


def peak_rss(mountpoint):
    pid = json.loads(run([args.zarrmount, "status", mountpoint]).stdout)["pid"]
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def mount_timed(sources, mountpoint):
    os.makedirs(mountpoint, exist_ok=True)
    took = timed([args.zarrmount, "mount"] + sources + [mountpoint])
    return took


def unmount(mountpoint):
    run([args.zarrmount, "unmount", mountpoint])


names = sorted(n for n in os.listdir(args.archive) if n.endswith(".nc"))
paths = [os.path.join(args.archive, n) for n in names]
url_file = os.path.join(args.work, "paths.txt")
with open(url_file, "w") as f:
    f.write("\n".join(paths) + "\n")
manifest = os.path.join(args.archive, "year.zmf")  # beside its objects: allowed without --allow-source
cache = os.path.join(args.work, "manifest-cache")
run([args.zarrmount, "scan", "--urls", url_file, "--concat-dim", "Time", "--no-cache", "--manifest", manifest])
run([args.zarrmount, "scan", "--urls", url_file, "--concat-dim", "Time", "--cache-dir", cache, "--refs", os.path.join(args.work, "r.json")])
mnt = os.path.join(args.work, "mnt")
start_s, manifest_s, cached_s = [], [], []
for _ in range(args.repeat):
    start_s.append(timed([args.zarrmount, "--version"]))
    manifest_s.append(mount_timed(["--manifest", manifest], mnt))
    unmount(mnt)
    cached_s.append(mount_timed(["--urls", url_file, "--concat-dim", "Time", "--cache-dir", cache], mnt))
    unmount(mnt)
read_year = run([args.bench, "manifest", "--read", manifest]).stdout.strip()

big = os.path.join(args.work, "synthetic.zmf")
written = run([args.bench, "manifest", "--chunks", str(args.chunks), "--object", paths[0], "--out", big]).stdout.strip()
read_big = run([args.bench, "manifest", "--read", big]).stdout.strip()
big_mnt = os.path.join(args.work, "big-mnt")
big_mount_s = mount_timed(["--manifest", big, "--allow-source", args.archive + "/"], big_mnt)
try:
    big_rss = peak_rss(big_mnt)
    start = time.perf_counter()
    listed = sum(1 for _ in os.scandir(os.path.join(big_mnt, "big")))
    list_s = time.perf_counter() - start
    with open(os.path.join(big_mnt, "big", str(args.chunks - 1)), "rb") as f:
        last = len(f.read())
    big_rss_after = peak_rss(big_mnt)
finally:
    unmount(big_mnt)

m = statistics.median
print()
print("mounting from a manifest (%d files of the WRF-like year on local disk; medians of %d)" % (len(names), args.repeat))
print("%-58s %10s %10s" % ("run", "wall (s)", "vs cache"))
print("%-58s %10.3f %9.2fx" % ("zarrmount mount --manifest year.zmf", m(manifest_s), m(manifest_s) / m(cached_s)))
print("%-58s %10.3f %9.2fx" % ("zarrmount mount of the files, manifest cache filled", m(cached_s), 1.0))
print("%-58s %10.3f %9.2fx" % ("zarrmount --version (one start of the binary)", m(start_s), m(start_s) / m(cached_s)))
print("year manifest: %s; %s" % (os.path.getsize(manifest), read_year))
print()
print(written)
print(read_big)
print("zarrmount mount --manifest: %.2f s, daemon peak RSS %.0f MiB; listing of big/: %d entries in %.1f s; last chunk file %d bytes; "
      "daemon peak RSS after %.0f MiB" % (big_mount_s, big_rss, listed, list_s, last, big_rss_after))
