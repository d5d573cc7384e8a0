"""tools/bench read [--files N] [--latency-ms MS]
    Read every variable of the WRF-like year (N files, default 365) served by nginx behind
    tools/latency-proxy at MS ms round trip (default 20): through a `zarrmount mount` with
    xarray + dask (threaded scheduler), cold (fresh daemon) and warm (same mount again), with
    the daemon's peak RSS, stored bytes fetched and HTTP requests; the same reads through
    fsspec's ReferenceFileSystem on `zarrmount scan --refs` references (kerchunk's Python
    path); netCDF4-python over HTTP byte ranges (`URL#mode=bytes`, serial, capped at 30 s and
    extrapolated); the same reads from a local Zarr export (the client's decoding ceiling, no
    network); and one 64 MiB uncompressed chunk read with `cat` through the mount against
    `curl` fetching the same byte range through the same proxy. MB/s everywhere is decoded
    bytes (the arrays' nbytes) per second of reading, opening excluded.

Body of `tools/bench read`; tools/bench builds the binaries and the archive, then runs

    remote_read.py --zarrmount BIN --proxy BIN --archive DIR --files N --latency-ms MS --work DIR
                   [--threads T] [--netcdf-seconds S] [--ceiling-files N] [--chunk-mib M]
                   [--fsspec-warm]

Every reading path runs in its own Python process (this script again, `_worker ...`), so each
starts with empty client-side caches and its peak RSS is its own. The server's page cache is
warmed first for all paths alike: the benchmark measures the client side, not the disk.
Services (nginx) run from a private state directory under --work and stop with this process.
Targets (issue 5): cold reads >= 2x the fsspec path; the large chunk at >= 80 % of curl.
"""
import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
PYTHON = os.path.join(REPO, ".venv", "bin", "python")
MiB = 2 ** 20


class BenchError(Exception):
    """A step of the benchmark failed; the message names the step and carries the tool's output."""


def log(msg):
    sys.stderr.write("[bench read] %s\n" % msg)
    sys.stderr.flush()


def tail(text, n=1500):
    text = (text or "").strip()
    return text[-n:] if text else "(no output)"


# ------------------------------------------------------------------ reading paths (worker side)
#
# Each runs in a fresh process: a second open in the same process would find fsspec instances,
# zarr metadata and Python's own caches warm, and its RSS would mix with the others'.

def _block_bytes(block):
    """One dask block -> its decoded size, as a 1-element array of the block's rank.

    Summing these forces every chunk to be fetched and decoded while keeping memory bounded (a
    full `.load()` of a year is ~11 GiB), and counts the bytes really produced rather than
    trusting metadata."""
    import numpy as np
    return np.full((1,) * block.ndim, block.nbytes, dtype=np.int64)


def _read_dataset(ds, threads):
    """Decode every data variable of DS with the dask threaded scheduler; returns decoded bytes."""
    import dask
    import dask.array as da
    import numpy as np
    sizes = []
    for name in ds.data_vars:
        data = ds[name].data
        if not isinstance(data, da.Array) or data.ndim == 0:
            sizes.append(int(np.asarray(ds[name].values).nbytes))
            continue
        per_block = data.map_blocks(_block_bytes, dtype=np.int64, chunks=tuple((1,) * len(c) for c in data.chunks))
        sizes.append(per_block.sum())
    with dask.config.set(scheduler="threads", num_workers=threads):
        return int(sum(dask.compute(*sizes)))


def worker_xarray(kind, target, threads):
    """Open TARGET with xarray (a mountpoint, a local Zarr store, or a kerchunk reference file read
    through fsspec's HTTP filesystem) and decode all data variables."""
    import xarray as xr
    start = time.perf_counter()
    if kind in ("mount", "local"):
        ds = xr.open_zarr(target, chunks={}, consolidated=kind == "local")
    else:
        # zarr 3 opens fsspec stores asynchronously; the reference filesystem insists its target
        # filesystem agrees, hence remote_options asynchronous=True.
        ds = xr.open_dataset("reference://", engine="zarr", chunks={}, backend_kwargs={
            "consolidated": False,
            "storage_options": {"fo": target, "remote_protocol": "http", "remote_options": {"asynchronous": True}}})
    opened = time.perf_counter()
    decoded = _read_dataset(ds, threads)
    done = time.perf_counter()
    expected = sum(ds[v].nbytes for v in ds.data_vars)
    if decoded != expected:
        raise BenchError("%s: decoded %d bytes, the dataset's nbytes say %d" % (target, decoded, expected))
    return {"open_s": opened - start, "read_s": done - opened, "decoded": decoded, "files": None,
            "variables": list(ds.data_vars)}


def worker_rclone(directory, files, threads):
    """The generic path users otherwise take: the raw files through a FUSE mount of the same HTTP
    endpoint (`rclone mount`), opened with `xr.open_mfdataset(engine="h5netcdf", parallel=True)`
    and combined along Time as the seed notebook does, then the same reads."""
    import xarray as xr
    paths = sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".nc"))[:files]
    if not paths:
        raise BenchError("%s lists no .nc files through rclone" % directory)
    start = time.perf_counter()
    ds = xr.open_mfdataset(paths, engine="h5netcdf", parallel=True, combine="nested", concat_dim="Time", chunks={},
                           data_vars="minimal", coords="minimal", compat="override")
    opened = time.perf_counter()
    decoded = _read_dataset(ds, threads)
    done = time.perf_counter()
    expected = sum(ds[v].nbytes for v in ds.data_vars)
    if decoded != expected:
        raise BenchError("rclone: decoded %d bytes, the dataset's nbytes say %d" % (decoded, expected))
    return {"open_s": opened - start, "read_s": done - opened, "decoded": decoded, "files": len(paths),
            "variables": list(ds.data_vars)}


def worker_netcdf(urls, variables, seconds):
    """Read VARIABLES of each URL with netCDF4-python over HTTP byte ranges (`#mode=bytes`),
    serially (netCDF-C is not thread-safe), until SECONDS have passed.

    Opening is timed with the read here: a netCDF-C open over HTTP is the many small ranged
    reads of the HDF5 metadata, and it cannot be separated from reading the way the mount's
    one-time scan can."""
    import netCDF4
    start = time.perf_counter()
    decoded, files = 0, 0
    for url in urls:
        try:
            ds = netCDF4.Dataset(url + "#mode=bytes")
        except OSError as e:  # e.g. a netCDF-C built without byte-range support: "NetCDF: ..."
            raise BenchError("netCDF4.Dataset(%r) after %d files: %s" % (url + "#mode=bytes", files, e))
        try:
            for name in variables or ds.variables:
                if name in ds.variables:
                    decoded += ds.variables[name][:].nbytes
        finally:
            ds.close()
        files += 1
        if time.perf_counter() - start > seconds:
            break
    return {"open_s": None, "read_s": time.perf_counter() - start, "decoded": decoded, "files": files}


def worker_main(argv):
    """`remote_read.py _worker KIND ...`: run one reading path, print its result as JSON."""
    ap = argparse.ArgumentParser(prog="remote_read.py _worker")
    ap.add_argument("kind", choices=["mount", "local", "refs", "netcdf", "rclone"])
    ap.add_argument("target", help="mountpoint, reference JSON, or a file listing URLs")
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--variables", default="", help="netcdf: comma-separated variable names (default: all)")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--files", type=int, default=30, help="rclone: how many files open_mfdataset opens")
    a = ap.parse_args(argv)
    try:
        if a.kind == "netcdf":
            with open(a.target) as f:
                urls = [line.strip() for line in f if line.strip()]
            result = worker_netcdf(urls, [v for v in a.variables.split(",") if v], a.seconds)
        elif a.kind == "rclone":
            result = worker_rclone(a.target, a.files, a.threads)
        else:
            result = worker_xarray(a.kind, a.target, a.threads)
    except Exception as e:  # reported to the parent, which prints it in the table
        print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
        return 1
    result["rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result))
    return 0


def run_worker(args, kind, target, extra=(), timeout=1800):
    """Run one reading path in a fresh Python process; returns its JSON result (with "error" on
    failure, so that one broken path still leaves a table)."""
    cmd = [PYTHON, os.path.realpath(__file__), "_worker", kind, target, "--threads", str(args.threads)] + list(extra)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after %d s" % timeout}
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": "worker exited with status %d without a result:\n%s" % (p.returncode, tail(p.stderr))}
    return json.loads(lines[-1])


# ------------------------------------------------------------------ services, proxy, mounts

def start_services(work):
    """nginx (and moto) from tools/services.py in a private state directory, stopped by its
    watchdog when this process exits: other test runs' services are neither reused nor
    disturbed, and a killed benchmark leaves nothing behind."""
    state = os.path.join(work, "services")
    p = subprocess.run([os.path.join(REPO, "tools", "services.py"), "start", "--dir", state, "--parent-pid", str(os.getpid())],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise BenchError("tools/services.py start --dir %s failed (status %d):\n%s" % (state, p.returncode, tail(p.stderr)))
    env = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    return env["ZARRMOUNT_HTTP_DIR"], int(env["ZARRMOUNT_HTTP_ROOT"].rsplit(":", 1)[1])


def publish(www, name, target):
    """Expose TARGET (file or directory) as /NAME on nginx."""
    link = os.path.join(www, name)
    if os.path.islink(link) or os.path.exists(link):
        os.remove(link)
    os.symlink(target, link)


@contextlib.contextmanager
def latency_proxy(binary, upstream_port, latency_ms):
    """tools/latency-proxy in front of nginx, half the round trip each way (as tools/bench scan)."""
    p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:%d" % upstream_port,
                          "--delay-ms", str(latency_ms / 2), "--max-seconds", "3600"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        m = re.search(r"listening on (\d+)", line)
        if not m:
            p.kill()
            raise BenchError("latency proxy did not start: %r %s" % (line, tail(p.stderr.read())))
        yield int(m.group(1))
    finally:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def status(zarrmount, mountpoint):
    """The daemon's `zarrmount status` JSON (pid and live counters)."""
    p = subprocess.run([zarrmount, "status", mountpoint], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise BenchError("zarrmount status %s failed: %s" % (mountpoint, tail(p.stderr)))
    return json.loads(p.stdout)


def peak_rss_mib(pid):
    """VmHWM of PID: the daemon's resident high-water mark since it started."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError as e:
        raise BenchError("reading /proc/%d/status (the daemon's peak RSS): %s" % (pid, e))
    return float("nan")


@contextlib.contextmanager
def mounted(zarrmount, sources, mountpoint, extra=()):
    """`zarrmount mount SOURCES... MOUNTPOINT` for the block; always unmounted afterwards (lazily
    when a reader still holds it), so a failed run leaves no mount behind.

    Sources go on the command line: `mount --urls FILE MOUNTPOINT` is refused ("give the
    sources, then the mountpoint") because the last positional argument is the mountpoint."""
    os.makedirs(mountpoint, exist_ok=True)
    if os.path.ismount(mountpoint):
        unmount(zarrmount, mountpoint)
    log_file = mountpoint.rstrip("/") + ".log"
    start = time.perf_counter()
    p = subprocess.run([zarrmount, "mount"] + list(sources) + list(extra) + ["--no-cache", "--log-file", log_file, mountpoint],
                       capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise BenchError("zarrmount mount (%d sources) at %s failed (status %d):\n%s" % (
            len(sources), mountpoint, p.returncode, tail(p.stderr)))
    took = time.perf_counter() - start
    try:
        yield took
    finally:
        unmount(zarrmount, mountpoint)


def unmount(zarrmount, mountpoint):
    p = subprocess.run([zarrmount, "unmount", mountpoint], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        q = subprocess.run([zarrmount, "unmount", mountpoint, "--lazy"], capture_output=True, text=True, timeout=120)
        if q.returncode != 0:
            log("warning: could not unmount %s: %s / %s" % (mountpoint, tail(p.stderr), tail(q.stderr)))


# ------------------------------------------------------------------ the year

def read_year_through_mount(args, urls):
    """Cold and warm reads of the year through one mount; the daemon's counters and peak RSS."""
    mountpoint = os.path.join(args.work, "mnt-year")
    with mounted(args.zarrmount, urls, mountpoint, ["--concat-dim", "Time"]) as mount_s:
        log("mounted %d files in %.1f s; cold read through the mount" % (len(urls), mount_s))
        s0 = status(args.zarrmount, mountpoint)
        cold = run_worker(args, "mount", mountpoint)
        s1 = status(args.zarrmount, mountpoint)
        log("warm read through the mount")
        warm = run_worker(args, "mount", mountpoint)
        s2 = status(args.zarrmount, mountpoint)
        rss = peak_rss_mib(s2["pid"])

    def delta(a, b):
        return {"bytes_fetched": b["reads"]["bytes_fetched"] - a["reads"]["bytes_fetched"],
                "hits": b["reads"]["cache_hits"] - a["reads"]["cache_hits"],
                "misses": b["reads"]["cache_misses"] - a["reads"]["cache_misses"],
                "errors": b["reads"]["errors"] - a["reads"]["errors"],
                "requests": b.get("http", {}).get("requests", 0) - a.get("http", {}).get("requests", 0)}
    cold["daemon"], warm["daemon"] = delta(s0, s1), delta(s1, s2)
    return {"mount_s": mount_s, "cold": cold, "warm": warm, "daemon_rss": rss, "cached_bytes": s2["reads"]["cached_bytes"]}


def listing(directory):
    """The chunk files of an array directory, in grid order."""
    return sorted((n for n in os.listdir(directory) if not n.startswith(".")), key=lambda n: [int(x) for x in n.split(".")])


def access_patterns(args, urls):
    """Traffic and speed of the read path for a random and a sequential reader, with readahead on
    (the default) and off, and with --verify-chunks: each row is one fresh mount of the year with
    a 64 MiB cache. fetched/served is the stored bytes the daemon fetched over what readers got."""
    import random
    import threading
    rows = []
    variables = ("T2", "Q2", "U10", "PSFC", "TSK", "SLP")
    for pattern, label, extra in (("random", "readahead 8 (default)", []), ("random", "readahead 0", ["--readahead", "0"]),
                                  ("sequential", "readahead 8 (default)", []), ("sequential", "readahead 0", ["--readahead", "0"]),
                                  ("random", "readahead 8, --verify-chunks", ["--verify-chunks"]),
                                  ("sequential", "readahead 8, --verify-chunks", ["--verify-chunks"])):
        mountpoint = os.path.join(args.work, "mnt-access")
        with mounted(args.zarrmount, urls, mountpoint, ["--concat-dim", "Time", "--cache-size", "64MiB"] + extra):
            files = {v: listing(os.path.join(mountpoint, v)) for v in variables}
            arrays = [a for a in os.listdir(mountpoint) if os.path.exists(os.path.join(mountpoint, a, ".zarray"))]
            before = status(args.zarrmount, mountpoint)["reads"]
            served = [0]
            lock = threading.Lock()
            started = time.perf_counter()
            if pattern == "random":
                # Every chunk file of every array once, in a random order shared out to 32
                # readers: no read repeats, so the kernel's page cache cannot hide the traffic.
                deadline = started + args.access_seconds
                everything = [os.path.join(array, name) for array in arrays for name in listing(os.path.join(mountpoint, array))]
                random.Random(7).shuffle(everything)

                def reader(seed):
                    for path in everything[seed::32]:
                        if time.perf_counter() >= deadline:
                            return
                        with open(os.path.join(mountpoint, path), "rb") as f:
                            n = len(f.read())
                        with lock:
                            served[0] += n
                threads = [threading.Thread(target=reader, args=(i,)) for i in range(32)]
            else:
                def reader(variable):
                    for name in files[variable]:
                        with open(os.path.join(mountpoint, variable, name), "rb") as f:
                            n = len(f.read())
                        with lock:
                            served[0] += n
                threads = [threading.Thread(target=reader, args=(v,)) for v in variables]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.perf_counter() - started
            after = status(args.zarrmount, mountpoint)["reads"]
        fetched = after["bytes_fetched"] - before["bytes_fetched"]
        rows.append({"pattern": pattern, "label": label, "served": served[0], "fetched": fetched, "seconds": took,
                     "readahead": after["readahead"] - before["readahead"], "errors": after["errors"] - before["errors"],
                     "verify_failures": after.get("verify_failures", 0)})
        log("access %s, %s: %.1f MiB served in %.1f s, fetched/served %.2f" % (pattern, label, served[0] / MiB, took,
                                                                              fetched / max(served[0], 1)))
    return rows


def report_access(rows):
    print()
    print("read path by access pattern (one fresh mount each, 64 MiB cache; random: 32 readers through every chunk file of every array once,")
    print("in a shared random order, for a fixed time;")
    print("sequential: one reader per variable through all its chunk files in order); ratios against the default row of the same pattern")
    print("%-10s %-30s %11s %11s %15s %11s %10s %7s" % ("pattern", "mount", "served MiB", "MiB/s", "fetched/served", "readahead",
                                                       "vs default", "errors"))
    base = {r["pattern"]: r["served"] / r["seconds"] for r in rows if r["label"] == "readahead 8 (default)"}
    for r in rows:
        rate = r["served"] / r["seconds"] if r["seconds"] else 0
        print("%-10s %-30s %11.1f %11.1f %15.2f %11d %9.2fx %7d" % (
            r["pattern"], r["label"], r["served"] / MiB, rate / MiB, r["fetched"] / max(r["served"], 1), r["readahead"],
            rate / base[r["pattern"]] if base.get(r["pattern"]) else float("nan"), r["errors"]))


def read_year_through_refs(args, url_file):
    """kerchunk references from `zarrmount scan` (same URLs, same proxy), read by fsspec."""
    refs = os.path.join(args.work, "refs.json")
    p = subprocess.run([args.zarrmount, "scan", "--urls", url_file, "--concat-dim", "Time", "--no-cache", "--refs", refs],
                       capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        return {"cold": {"error": "zarrmount scan --refs failed (status %d): %s" % (p.returncode, tail(p.stderr))}}
    log("cold read through fsspec references")
    result = {"cold": run_worker(args, "refs", refs)}
    if args.fsspec_warm:
        log("second read through fsspec references")
        result["warm"] = run_worker(args, "refs", refs)
    return result


def read_year_through_netcdf(args, url_file, variables):
    """netCDF4-python over HTTP byte ranges, serial, for --netcdf-seconds: the same variables as
    the Zarr paths read (every variable when neither could say which)."""
    log("netCDF4 over HTTP byte ranges (up to %.0f s)" % args.netcdf_seconds)
    return run_worker(args, "netcdf", url_file, ["--variables", ",".join(variables), "--seconds", str(args.netcdf_seconds)],
                      timeout=int(args.netcdf_seconds) + 300)


def read_year_through_rclone(args, port):
    """The raw files through `rclone mount` of the same endpoint (same proxy), read by
    open_mfdataset over the first --rclone-files files; the mount is made and removed here."""
    if not shutil.which("rclone"):
        raise BenchError("rclone not found (tools/bench installs Debian's rclone)")
    mountpoint = os.path.join(args.work, "rclone-mnt")
    os.makedirs(mountpoint, exist_ok=True)
    log("rclone mount of the same endpoint, open_mfdataset(engine='h5netcdf', parallel=True) of %d files" % args.rclone_files)
    p = subprocess.Popen(["rclone", "mount", ":http:", mountpoint, "--http-url", "http://127.0.0.1:%d/bench-year/" % port,
                          "--read-only", "--vfs-cache-mode", "off", "--dir-cache-time", "1h"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mountpoint):
            if p.poll() is not None or time.monotonic() > deadline:
                raise BenchError("rclone mount did not come up: %s" % tail(p.stderr.read() if p.poll() is not None else "timed out"))
            time.sleep(0.1)
        result = run_worker(args, "rclone", mountpoint, ["--files", str(args.rclone_files)])
    finally:
        for tool in ("fusermount3", "fusermount"):
            if shutil.which(tool) and os.path.ismount(mountpoint):
                subprocess.run([tool, "-u", mountpoint], capture_output=True)
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    return result


def read_local_ceiling(args, names):
    """The same reads from a local Zarr copy of the first --ceiling-files files (`zarrmount
    export`: stored bytes copied, so the same codecs): what this machine's CPU allows the client
    (decompression, CF masking, dask) with no network at all. A remote path near this rate is
    bound by the client's decoding, not by fetching, and cannot be told apart from another."""
    subset = names[: args.ceiling_files]
    store = os.path.join(args.work, "ceiling-%d.zarr" % len(subset))
    if not os.path.exists(store):
        p = subprocess.run([args.zarrmount, "export"] + [os.path.join(args.archive, n) for n in subset]
                           + ["--concat-dim", "Time", "--no-cache", "--zarr", store + ".tmp"], capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            shutil.rmtree(store + ".tmp", ignore_errors=True)
            return {"error": "zarrmount export failed (status %d): %s" % (p.returncode, tail(p.stderr))}
        os.replace(store + ".tmp", store)
    log("local ceiling: the same reads from a local Zarr export of %d files" % len(subset))
    result = run_worker(args, "local", store)
    result["files"] = len(subset)
    return result


# ------------------------------------------------------------------ one large chunk

def large_chunk_file(work, mib):
    """An HDF5 file with one float32 variable stored as a single uncompressed chunk of MIB MiB
    (chunked, not contiguous: zarrmount splits large contiguous arrays). Random values: a read
    of it is a pure transfer. Returns (path, chunk offset, chunk size)."""
    import h5py
    import numpy as np
    path = os.path.join(work, "large-chunk-%dmib.h5" % mib)
    rows = mib * MiB // (4 * 4096)
    if not os.path.exists(path):
        rng = np.random.default_rng(2060)
        with h5py.File(path + ".tmp", "w") as f:
            d = f.create_dataset("big", shape=(1, rows, 4096), dtype="f4", chunks=(1, rows, 4096))
            d[...] = rng.standard_normal((1, rows, 4096), dtype=np.float32)
        os.replace(path + ".tmp", path)
    with h5py.File(path, "r") as f:
        info = f["big"].id.get_chunk_info(0)
    return path, info.byte_offset, info.size


def timed(cmd):
    start = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - start
    if p.returncode != 0:
        raise BenchError("%s failed (status %d): %s" % (" ".join(cmd), p.returncode, tail(p.stderr)))
    return took, p.stdout


def large_chunk(args, www, proxy_port, repeats=3):
    """`cat` of the mount's one chunk file (a fresh mount each time, so the daemon's cache is
    empty) against `curl` of the same byte range through the same proxy. Medians of REPEATS."""
    path, offset, size = large_chunk_file(args.work, args.chunk_mib)
    publish(www, "large-chunk.h5", path)
    url = "http://127.0.0.1:%d/large-chunk.h5" % proxy_port
    mountpoint = os.path.join(args.work, "mnt-chunk")
    cat_s, curl_s = [], []
    for _ in range(repeats):
        with mounted(args.zarrmount, [url], mountpoint):
            chunk = os.path.join(mountpoint, "big", "0.0.0")
            if os.path.getsize(chunk) != size:
                raise BenchError("%s is %d bytes, the HDF5 chunk %d" % (chunk, os.path.getsize(chunk), size))
            took, _ = timed(["sh", "-c", 'cat "$1" > /dev/null', "sh", chunk])
            cat_s.append(took)
        took, out = timed(["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", "-r", "%d-%d" % (offset, offset + size - 1), url])
        if int(out) != size:
            raise BenchError("curl got %s bytes of %s, expected %d" % (out, url, size))
        curl_s.append(took)
    return {"size": size, "cat_s": statistics.median(cat_s), "curl_s": statistics.median(curl_s)}


# ------------------------------------------------------------------ report

def mbps(r):
    return r["decoded"] / MiB / r["read_s"] if r and "error" not in r and r["read_s"] > 0 else None


def one_line(text, n=300):
    """An error for a table row: whitespace collapsed, cut at N characters (its full text went
    to stderr when it happened)."""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def fmt(x, spec="%.1f"):
    return spec % x if x is not None else "—"


def report(args, files, stored, year, refs, netcdf, rclone, ceiling, chunk):
    print()
    print("reading %d WRF-like files (%.0f MiB stored) over HTTP at %.0f ms round trip (nginx behind tools/latency-proxy);"
          % (files, stored / MiB, args.latency_ms))
    print("xarray + dask threaded scheduler, %d threads; MB/s = decoded MiB (nbytes) per second of reading, opening excluded"
          % args.threads)
    base = mbps(refs.get("cold"))
    rows = []
    for label, cold, warm, nfiles, daemon in (
            ("zarrmount mount (xarray.open_zarr)", year.get("cold"), year.get("warm"), files, year.get("daemon_rss")),
            ("fsspec + kerchunk refs (reference://)", refs.get("cold"), refs.get("warm"), files, None),
            ("netCDF4 over HTTP byte ranges (serial)", netcdf, None, netcdf.get("files") if netcdf else None, None),
            ("rclone mount + open_mfdataset (h5netcdf)", rclone, None, rclone.get("files") if rclone else None, None),
            ("ceiling: local Zarr export, no network", ceiling, None, ceiling.get("files") if ceiling else None, None)):
        rows.append((label, cold, warm, nfiles, daemon))
    print("%-40s %6s %8s %11s %11s %10s %11s %12s" % ("path", "files", "open s", "cold MiB/s", "warm MiB/s", "vs fsspec",
                                                     "reader RSS", "daemon RSS"))
    for label, cold, warm, nfiles, daemon in rows:
        if cold is None or "error" in cold:
            reason = cold["error"] if cold else "not run"
            print("%-40s not available: %s" % (label, one_line(reason)))
            continue
        c, w = mbps(cold), mbps(warm)
        ratio = "%.2fx" % (c / base) if base and c else "—"
        rss = "%.0f MiB" % (cold["rss_kib"] / 1024)
        print("%-40s %6s %8s %11.1f %11s %10s %11s %12s" % (label, nfiles, fmt(cold["open_s"]), c, fmt(w), ratio, rss,
                                                              "%.0f MiB" % daemon if daemon else "—"))
    if year.get("cold") and "error" not in year["cold"]:
        d, wd = year["cold"]["daemon"], year["warm"].get("daemon", {})
        print("zarrmount: mount (scan) %.1f s; cold read fetched %.1f MiB stored in %d HTTP requests (%d chunk misses, %d hits, %d errors);"
              % (year["mount_s"], d["bytes_fetched"] / MiB, d["requests"], d["misses"], d["hits"], d["errors"]))
        print("           warm read: %d hits, %d misses, %.1f MiB fetched%s; daemon cache holds %.0f MiB"
              % (wd.get("hits", 0), wd.get("misses", 0), wd.get("bytes_fetched", 0) / MiB,
                 " (the kernel's page cache answered the rest)" if wd.get("hits", 0) + wd.get("misses", 0) < d["misses"] else "",
                 year["cached_bytes"] / MiB))
    if netcdf and "error" not in netcdf:
        print("netCDF4: %d of %d files in %.1f s (capped at %.0f s; opening included: ~%.1f s per file, all %d would take ~%.0f s)"
              % (netcdf["files"], files, netcdf["read_s"], args.netcdf_seconds, netcdf["read_s"] / netcdf["files"],
                 files, netcdf["read_s"] / netcdf["files"] * files))
    if rclone and "error" not in rclone:
        print("rclone: open_mfdataset of %d files took %.1f s (~%.2f s per file; all %d would take ~%.0f s to open)"
              % (rclone["files"], rclone["open_s"], rclone["open_s"] / rclone["files"], files, rclone["open_s"] / rclone["files"] * files))
    if not args.fsspec_warm:
        print("fsspec warm: not run (no client-side cache: a second read costs what the first did; --fsspec-warm runs it)")
    c = mbps(year.get("cold"))
    if c and base:
        print("target: cold reads >= 2x the fsspec path: %.2fx %s" % (c / base, "(met)" if c >= 2 * base else "(NOT met)"))
    if chunk and "error" not in chunk:
        cat_rate, curl_rate = chunk["size"] / MiB / chunk["cat_s"], chunk["size"] / MiB / chunk["curl_s"]
        ratio = cat_rate / curl_rate
        print("single %.0f MiB chunk (median of 3, cold mount): cat through the mount %.1f MiB/s, curl same range %.1f MiB/s: "
              "%.0f%% of curl (target >= 80%%: %s)" % (chunk["size"] / MiB, cat_rate, curl_rate, 100 * ratio,
                                                        "met" if ratio >= 0.8 else "NOT met"))
    else:
        print("single large chunk: not available: %s" % one_line((chunk or {}).get("error", "not run")))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--zarrmount", required=True)
    ap.add_argument("--proxy", required=True, help="tools/latency-proxy binary")
    ap.add_argument("--archive", required=True, help="directory of WRF-like daily files (tools/make-archive.py)")
    ap.add_argument("--files", type=int, default=365)
    ap.add_argument("--latency-ms", type=float, default=20)
    ap.add_argument("--work", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                    help="dask threads (default: the cores, as dask's threaded scheduler does; more threads hide round trips for every path alike)")
    ap.add_argument("--netcdf-seconds", type=float, default=30, help="time cap of the netCDF4 byte-range path")
    ap.add_argument("--ceiling-files", type=int, default=30, help="files in the local no-network ceiling run")
    ap.add_argument("--rclone-files", type=int, default=30, help="files open_mfdataset opens through the rclone mount")
    ap.add_argument("--chunk-mib", type=int, default=64, help="size of the single large chunk")
    ap.add_argument("--fsspec-warm", action="store_true", help="also read a second time through fsspec")
    ap.add_argument("--access-seconds", type=float, default=20, help="how long the random readers of the access-pattern rows read")
    ap.add_argument("--access-only", action="store_true", help="run only the access-pattern rows")
    args = ap.parse_args()
    args.work = os.path.abspath(args.work)
    os.makedirs(args.work, exist_ok=True)
    for tool in ("curl", "nginx"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            raise BenchError("%s not found (run tools/setup)" % tool)

    names = sorted(f for f in os.listdir(args.archive) if f.endswith(".nc"))[: args.files]
    if len(names) < args.files:
        raise BenchError("%s holds %d .nc files, --files asks for %d (run tools/make-archive.py)" % (args.archive, len(names), args.files))
    stored = sum(os.path.getsize(os.path.join(args.archive, n)) for n in names)
    for n in names:  # warm the server's page cache for every path alike
        with open(os.path.join(args.archive, n), "rb") as f:
            while f.read(8 * MiB):
                pass

    www, http_port = start_services(args.work)
    publish(www, "bench-year", os.path.realpath(args.archive))
    with latency_proxy(args.proxy, http_port, args.latency_ms) as port:
        urls = ["http://127.0.0.1:%d/bench-year/%s" % (port, n) for n in names]
        url_file = os.path.join(args.work, "urls.txt")
        with open(url_file, "w") as f:
            f.write("\n".join(urls) + "\n")

        def attempt(what, fn, *a):
            try:
                return fn(*a)
            except (BenchError, subprocess.TimeoutExpired, OSError) as e:
                log("%s failed: %s" % (what, e))
                return {"error": str(e), "cold": {"error": str(e)}}

        if args.access_only:
            report_access(access_patterns(args, urls))
            return
        year = attempt("mount read", read_year_through_mount, args, urls)
        variables = (year.get("cold") or {}).get("variables")
        refs = attempt("fsspec read", read_year_through_refs, args, url_file)
        if not variables:
            variables = (refs.get("cold") or {}).get("variables")
        netcdf = read_year_through_netcdf(args, url_file, variables or [])  # all variables if both zarr paths failed
        rclone = attempt("rclone read", read_year_through_rclone, args, port)
        log("single large chunk: cat through the mount vs curl")
        chunk = attempt("large chunk", large_chunk, args, www, port)
        access = access_patterns(args, urls)
    ceiling = attempt("local ceiling", read_local_ceiling, args, names)
    report(args, len(names), stored, year, refs, netcdf, rclone, ceiling, chunk)
    report_access(access)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        sys.exit(worker_main(sys.argv[2:]))
    try:
        main()
    except BenchError as e:
        sys.stderr.write("tools/bench read: %s\n" % e)
        sys.exit(1)
