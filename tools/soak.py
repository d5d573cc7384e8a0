#!/usr/bin/env python3
"""Soak test (issue 14): many readers for a long time over a mounted archive with a small cache.

    tools/soak.py [--days 365] [--readers 32] [--minutes 10] [--cache-size 64MiB]

Starts its own nginx (tools/services.py), serves DAYS WRF-like daily files (tools/make-archive.py),
mounts them over HTTP with a small chunk cache, and runs READERS threads that each read random
chunk files whole and compare them with the files' bytes at the references' offsets. Every
SAMPLE seconds it records the daemon's RSS, open file descriptors and threads, and the reads'
latency; it prints one row per sample and a summary (flat means the last samples are within a
few percent of the first ones after warm-up). Any wrong byte or error fails the run (exit 1).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZARRMOUNT = os.path.join(REPO, ".build", "debug", "zarrmount")


def daemon_sample(pid):
    with open("/proc/%d/status" % pid) as fh:
        fields = dict(line.split(":", 1) for line in fh if ":" in line)
    return {"rss_mib": int(fields["VmRSS"].split()[0]) / 1024, "threads": int(fields["Threads"]),
            "fds": len(os.listdir("/proc/%d/fd" % pid))}


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--readers", type=int, default=32)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--sample", type=float, default=30, help="seconds between samples")
    ap.add_argument("--cache-size", default="64MiB")
    ap.add_argument("--zarrmount", default=ZARRMOUNT)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="zm-soak-")
    services = os.path.join(work, "services")
    p = subprocess.run([sys.executable, os.path.join(REPO, "tools", "services.py"), "start", "--dir", services, "--parent-pid",
                        str(os.getpid()), "--lifetime", str(int(args.minutes * 60 + 3600))], capture_output=True, text=True, check=True)
    env_vars = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    mountpoint = os.path.join(work, "mnt")
    os.makedirs(mountpoint)
    failures = []
    try:
        archive = os.path.join(env_vars["ZARRMOUNT_HTTP_DIR"], "year")
        subprocess.run([os.path.join(REPO, "tools", "make-archive.py"), archive, "--days", str(args.days), "--jobs", "2"], check=True,
                       capture_output=True)
        names = sorted(n for n in os.listdir(archive) if n.endswith(".nc"))
        urls = os.path.join(work, "urls.txt")
        with open(urls, "w") as fh:
            fh.write("\n".join("%s/year/%s" % (env_vars["ZARRMOUNT_HTTP_ROOT"], n) for n in names) + "\n")
        env = dict(os.environ, HOME=work, XDG_CACHE_HOME=os.path.join(work, "cache"))
        refs_path = os.path.join(work, "refs.json")
        subprocess.run([args.zarrmount, "scan", "--urls", urls, "--concat-dim", "Time", "--no-cache", "--refs", refs_path], check=True,
                       capture_output=True, env=env)
        with open(refs_path) as fh:
            refs = {k: v for k, v in json.load(fh)["refs"].items() if isinstance(v, list)}
        keys = sorted(refs)
        subprocess.run([args.zarrmount, "mount", "--urls", urls, "--concat-dim", "Time", "--no-cache", "--cache-size", args.cache_size,
                        mountpoint], check=True, capture_output=True, env=env)
        pid = json.loads(subprocess.run([args.zarrmount, "status", mountpoint], capture_output=True, text=True, check=True).stdout)["pid"]
        latencies = []
        lock = threading.Lock()
        stop = time.monotonic() + args.minutes * 60

        def reader(seed):
            rng = random.Random(seed)
            while time.monotonic() < stop and not failures:
                key = rng.choice(keys)
                url, offset, length = refs[key]
                started = time.monotonic()
                try:
                    with open(os.path.join(mountpoint, key), "rb") as fh:
                        data = fh.read()
                except OSError as e:
                    failures.append("%s: %s" % (key, e))
                    return
                elapsed = time.monotonic() - started
                with open(os.path.join(archive, os.path.basename(url)), "rb") as fh:
                    fh.seek(offset)
                    if fh.read(length) != data:
                        failures.append("%s: wrong bytes" % key)
                        return
                with lock:
                    latencies.append(elapsed)

        threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(args.readers)]
        for t in threads:
            t.start()
        print("| t (s) | daemon RSS (MiB) | fds | threads | reads | p50 (ms) | p99 (ms) |")
        print("|---|---|---|---|---|---|---|")
        samples = []
        began = time.monotonic()
        while time.monotonic() < stop and not failures:
            time.sleep(min(args.sample, max(0.1, stop - time.monotonic())))
            with lock:
                window, latencies[:] = list(latencies), []
            sample = daemon_sample(pid)
            sample.update(t=time.monotonic() - began, reads=len(window), p50=percentile(window, 0.5) * 1000,
                          p99=percentile(window, 0.99) * 1000)
            samples.append(sample)
            print("| %.0f | %.1f | %d | %d | %d | %.1f | %.1f |" % (sample["t"], sample["rss_mib"], sample["fds"], sample["threads"],
                                                                 sample["reads"], sample["p50"], sample["p99"]), flush=True)
        for t in threads:
            t.join(timeout=60)
        if len(samples) >= 4:
            warm, last = samples[1], samples[-1]
            print("\nafter warm-up (%.0f s) -> end (%.0f s): RSS %.1f -> %.1f MiB, fds %d -> %d, threads %d -> %d; %d reads"
                  % (warm["t"], last["t"], warm["rss_mib"], last["rss_mib"], warm["fds"], last["fds"], warm["threads"], last["threads"],
                     sum(s["reads"] for s in samples)))
        status = json.loads(subprocess.run([args.zarrmount, "status", mountpoint], capture_output=True, text=True).stdout or "{}")
        print("daemon counters: %s" % json.dumps(status.get("reads", {})))
    finally:
        subprocess.run([args.zarrmount, "unmount", mountpoint], capture_output=True)
        subprocess.run([sys.executable, os.path.join(REPO, "tools", "services.py"), "stop", "--dir", services], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("FAILED: %s" % failures[:5])
        sys.exit(1)


if __name__ == "__main__":
    main()
