"""tools/bench summary [--files N] [--latency-ms MS] [--repeat N]
    The four numbers issue 20 sets targets for, in one run, each beside a baseline from the same
    run: the WRF-like year (N files, default 365) served by nginx behind tools/latency-proxy at
    MS ms round trip (default 20).

    scan          `zarrmount scan` of the URLs: wall time, and CPU against a scan of the same
                  files from local disk (the CPU floor)
    first answer  from a cold start (fresh daemon, Python already imported): `zarrmount mount`
                  of the URLs, `xr.open_zarr`, and the mean of T2 over Time; once with no
                  manifest cache and once with it filled, against fsspec + kerchunk references
                  (`zarrmount scan --refs`, open through `reference://`, the same mean), and
                  against the client's floor: the same open and mean over a local Zarr export
                  of the year (what xarray, dask and zarr cost with no mount and no network)
    cold read     every variable through a fresh mount with xarray + dask, against the same
                  reads from a local Zarr export (the client's own ceiling)
    time series   one grid point across the year (one value per file), cold, against fsspec
                  + kerchunk references of the same URLs

Body of `tools/bench summary`; tools/bench builds the binaries and the archive, then runs

    summary.py --zarrmount BIN --proxy BIN --archive DIR --files N --latency-ms MS --work DIR [--repeat N]

Timed steps run in fresh Python processes (this script again, `_worker ...`) that import xarray
and dask before the clock starts: a notebook has them imported already.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import remote_read as rr  # noqa: E402  (the services, proxy, mount and ceiling helpers)

PYTHON = rr.PYTHON
MiB = rr.MiB
POINT = (125, 160)  # (south_north, west_east) of the time series


def log(msg):
    sys.stderr.write("[bench summary] %s\n" % msg)
    sys.stderr.flush()


# ------------------------------------------------------------------ timed steps (worker side)

def worker_first_answer(zarrmount, url_file, mountpoint, cache_dir, log_file):
    """Mount, open, mean of T2 over Time; each step's seconds. The mount is left for the parent
    to remove (it unmounts whatever happens)."""
    import numpy as np
    import xarray as xr
    with open(url_file) as f:
        urls = [line.strip() for line in f if line.strip()]
    cache = ["--cache-dir", cache_dir] if cache_dir else ["--no-cache"]
    start = time.perf_counter()
    p = subprocess.run([zarrmount, "mount"] + urls + ["--concat-dim", "Time", "--log-file", log_file] + cache + [mountpoint],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise rr.BenchError("zarrmount mount failed (status %d): %s" % (p.returncode, rr.tail(p.stderr)))
    mounted = time.perf_counter()
    ds = xr.open_zarr(mountpoint)
    opened = time.perf_counter()
    mean = ds["T2"].mean("Time").values
    done = time.perf_counter()
    if mean.shape != (250, 320) or not np.isfinite(mean).all():
        raise rr.BenchError("mean of T2 over Time has shape %s and %d non-finite values" % (mean.shape, (~np.isfinite(mean)).sum()))
    return {"mount_s": mounted - start, "open_s": opened - mounted, "compute_s": done - opened, "total_s": done - start,
            "checksum": float(mean.astype("f8").sum())}


def worker_floor(store):
    """The client's own share of the first answer: open and mean over a local Zarr export of
    the same year (no daemon, no network)."""
    import xarray as xr
    start = time.perf_counter()
    ds = xr.open_zarr(store)
    opened = time.perf_counter()
    mean = ds["T2"].mean("Time").values
    done = time.perf_counter()
    return {"mount_s": 0.0, "open_s": opened - start, "compute_s": done - opened, "total_s": done - start,
            "checksum": float(mean.astype("f8").sum())}


def worker_first_answer_refs(zarrmount, url_file, refs):
    """The same first answer through kerchunk references read by fsspec: scan to references,
    open through `reference://`, the same mean."""
    import xarray as xr
    start = time.perf_counter()
    p = subprocess.run([zarrmount, "scan", "--urls", url_file, "--concat-dim", "Time", "--no-cache", "--refs", refs],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise rr.BenchError("zarrmount scan --refs failed (status %d): %s" % (p.returncode, rr.tail(p.stderr)))
    scanned = time.perf_counter()
    ds = open_refs(xr, refs)
    opened = time.perf_counter()
    mean = ds["T2"].mean("Time").values
    done = time.perf_counter()
    return {"mount_s": scanned - start, "open_s": opened - scanned, "compute_s": done - opened, "total_s": done - start,
            "checksum": float(mean.astype("f8").sum())}


def open_refs(xr, refs):
    # zarr 3 opens fsspec stores asynchronously; the reference filesystem insists its target
    # filesystem agrees, hence remote_options asynchronous=True.
    return xr.open_dataset("reference://", engine="zarr", chunks={}, backend_kwargs={
        "consolidated": False, "storage_options": {"fo": refs, "remote_protocol": "http", "remote_options": {"asynchronous": True}}})


def worker_time_series(kind, target):
    """Open TARGET (a fresh mount, or a reference file) and read T2 at one grid point across the
    year: one value from each file's chunk."""
    import numpy as np
    import xarray as xr
    start = time.perf_counter()
    ds = xr.open_zarr(target) if kind == "mount" else open_refs(xr, target)
    opened = time.perf_counter()
    series = ds["T2"].isel(south_north=POINT[0], west_east=POINT[1]).values
    done = time.perf_counter()
    if series.ndim != 1 or not np.isfinite(series).all():
        raise rr.BenchError("time series of T2 has shape %s with non-finite values" % (series.shape,))
    return {"open_s": opened - start, "read_s": done - opened, "total_s": done - start, "values": len(series),
            "checksum": float(series.astype("f8").sum())}


def worker_main(argv):
    ap = argparse.ArgumentParser(prog="summary.py _worker")
    ap.add_argument("kind", choices=["first-answer", "first-answer-refs", "floor", "series-mount", "series-refs"])
    ap.add_argument("args", nargs="*")
    a = ap.parse_args(argv)
    import dask  # noqa: F401  (imported before the clock starts, as in a notebook)
    import xarray  # noqa: F401
    import zarr  # noqa: F401
    try:
        if a.kind == "first-answer":
            zarrmount, url_file, mountpoint, cache_dir, log_file = a.args
            result = worker_first_answer(zarrmount, url_file, mountpoint, cache_dir if cache_dir != "-" else None, log_file)
        elif a.kind == "floor":
            result = worker_floor(a.args[0])
        elif a.kind == "first-answer-refs":
            result = worker_first_answer_refs(*a.args)
        else:
            result = worker_time_series("mount" if a.kind == "series-mount" else "refs", a.args[0])
    except Exception as e:  # reported to the parent, which prints it in the table
        print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
        return 1
    print(json.dumps(result))
    return 0


def run_worker(kind, *worker_args, timeout=900):
    cmd = [PYTHON, os.path.realpath(__file__), "_worker", kind] + [str(a) for a in worker_args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after %d s" % timeout}
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": "worker exited with status %d without a result:\n%s" % (p.returncode, rr.tail(p.stderr))}
    return json.loads(lines[-1])


# ------------------------------------------------------------------ the four measurements

def scan_cpu(zarrmount, work, url_file, path_file, repeat):
    """Remote and local scans of the same files, in turn, REPEAT times; the median run of each."""
    def one(source_file):
        out = os.path.join(work, "summary-refs.json")
        with tempfile.TemporaryFile(mode="w+") as err:
            p = subprocess.Popen([zarrmount, "scan", "--urls", source_file, "--concat-dim", "Time", "--refs", out, "--no-cache"],
                                 stdout=subprocess.DEVNULL, stderr=err)
            start = time.perf_counter()
            _, status, usage = os.wait4(p.pid, 0)
            wall = time.perf_counter() - start
            if os.waitstatus_to_exitcode(status) != 0:
                err.seek(0)
                raise rr.BenchError("zarrmount scan --urls %s failed: %s" % (source_file, rr.tail(err.read())))
        return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime}
    remote, local = [], []
    for _ in range(max(1, repeat)):
        remote.append(one(url_file))
        local.append(one(path_file))

    def median(runs):
        return sorted(runs, key=lambda r: r["wall"])[len(runs) // 2]
    return {"remote": median(remote), "local": median(local),
            "remote_cpu_spread": (min(r["cpu"] for r in remote), max(r["cpu"] for r in remote)),
            "local_cpu_spread": (min(r["cpu"] for r in local), max(r["cpu"] for r in local))}


def first_answer(zarrmount, work, url_file, cache_dir):
    mountpoint = os.path.join(work, "mnt-first")
    os.makedirs(mountpoint, exist_ok=True)
    if os.path.ismount(mountpoint):
        rr.unmount(zarrmount, mountpoint)
    try:
        return run_worker("first-answer", zarrmount, url_file, mountpoint, cache_dir or "-", mountpoint + ".log")
    finally:
        if os.path.ismount(mountpoint):
            rr.unmount(zarrmount, mountpoint)


def client_floor(zarrmount, work, path_file):
    """open + mean on a local Zarr export of the whole year (made once, kept in WORK)."""
    store = os.path.join(work, "year-export.zarr")
    if not os.path.exists(store):
        p = subprocess.run([zarrmount, "export", "--urls", path_file, "--concat-dim", "Time", "--no-cache", "--zarr", store + ".tmp"],
                           capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            shutil.rmtree(store + ".tmp", ignore_errors=True)
            return {"error": "zarrmount export failed (status %d): %s" % (p.returncode, rr.tail(p.stderr))}
        os.replace(store + ".tmp", store)
    return run_worker("floor", store)


def time_series(zarrmount, work, urls, refs):
    mountpoint = os.path.join(work, "mnt-series")
    with rr.mounted(zarrmount, urls, mountpoint, ["--concat-dim", "Time"]) as mount_s:
        ours = run_worker("series-mount", mountpoint)
    ours["mount_s"] = mount_s
    theirs = run_worker("series-refs", refs)
    return ours, theirs


# ------------------------------------------------------------------ report

def report(args, files, scan, cold_answer, cached_answer, refs_answer, floor, year, ceiling, series, series_refs):
    print()
    print("issue 20's targets, measured in one run: %d WRF-like files on nginx behind tools/latency-proxy at %.0f ms round trip, "
          "%d cores" % (files, args.latency_ms, os.cpu_count()))
    print("%-34s %12s  %-40s %12s %8s %10s %5s" % ("step", "zarrmount", "baseline (same run)", "baseline", "ratio", "target", "met"))

    def row(step, ours, unit, baseline_label, baseline, ratio, target, met):
        value = ("%.2f %s" % (ours, unit)) if ours is not None else "failed"
        base = ("%.2f %s" % (baseline, unit)) if baseline is not None else "—"
        print("%-34s %12s  %-40s %12s %8s %10s %5s" % (step, value, baseline_label, base,
                                                      "%.2fx" % ratio if ratio is not None else "—", target,
                                                      "—" if met is None else ("yes" if met else "NO")))

    r, lo = scan["remote"], scan["local"]
    row("scan: CPU", r["cpu"], "s", "the same files from local disk", lo["cpu"], r["cpu"] / lo["cpu"], "<= 1.3x",
        r["cpu"] / lo["cpu"] <= 1.3)
    row("scan: wall", r["wall"], "s", "the same files from local disk", lo["wall"], r["wall"] / lo["wall"], "<= 0.8 s",
        r["wall"] <= 0.8)
    for label, answer, target in (("first answer, cold", cold_answer, 3.0), ("first answer, manifest cache", cached_answer, 1.5)):
        ok = answer and "error" not in answer
        base_ok = refs_answer and "error" not in refs_answer
        row(label, answer["total_s"] if ok else None, "s", "fsspec + kerchunk refs (scan, open, mean)",
            refs_answer["total_s"] if base_ok else None,
            answer["total_s"] / refs_answer["total_s"] if ok and base_ok else None, "<= %.1f s" % target,
            answer["total_s"] <= target if ok else False)
    floor_ok = floor and "error" not in floor
    for label, answer in (("first answer over the client floor", cold_answer), ("  the same, manifest cache", cached_answer)):
        ok = answer and "error" not in answer
        row(label, answer["total_s"] if ok else None, "s", "open + mean of a local Zarr export", floor["total_s"] if floor_ok else None,
            answer["total_s"] / floor["total_s"] if ok and floor_ok else None, "—", None)
    cold, ceil = rr.mbps(year.get("cold")), rr.mbps(ceiling)
    row("cold read (MiB/s)", cold, "", "local Zarr export (client ceiling)", ceil, cold / ceil if cold and ceil else None,
        ">= 0.90x", cold / ceil >= 0.9 if cold and ceil else False)
    ok, base_ok = series and "error" not in series, series_refs and "error" not in series_refs
    row("time series, cold (open + read)", series["total_s"] if ok else None, "s", "fsspec + kerchunk refs",
        series_refs["total_s"] if base_ok else None, series["total_s"] / series_refs["total_s"] if ok and base_ok else None,
        "<= 1.5 s", series["total_s"] <= 1.5 if ok else False)

    print()
    print("scan CPU over %d runs each (min-max): remote %.2f-%.2f s, local %.2f-%.2f s" % (
        args.repeat, *scan["remote_cpu_spread"], *scan["local_cpu_spread"]))
    for label, answer in (("first answer, cold", cold_answer), ("first answer, manifest cache", cached_answer),
                          ("first answer, fsspec refs", refs_answer), ("client floor, local export", floor)):
        if answer and "error" not in answer:
            print("%-30s mount (or scan) %.2f s + open %.2f s + mean %.2f s" % (label + ":", answer["mount_s"], answer["open_s"],
                                                                                answer["compute_s"]))
        else:
            print("%-30s failed: %s" % (label + ":", rr.one_line((answer or {}).get("error", "not run"))))
    if cold_answer and refs_answer and "error" not in cold_answer and "error" not in refs_answer:
        same = abs(cold_answer["checksum"] - refs_answer["checksum"]) <= 1e-6 * abs(refs_answer["checksum"])
        print("mean of T2 over Time: the mount's and the references' %s" % ("agree" if same else
                                                                           "DIFFER (%r against %r)" % (cold_answer["checksum"], refs_answer["checksum"])))
    if year.get("cold") and "error" not in year["cold"]:
        print("cold read: %d files through the mount (scan %.1f s before it); ceiling: %s files" % (
            files, year["mount_s"], ceiling.get("files", "?") if ceiling else "?"))
    else:
        print("cold read: failed: %s" % rr.one_line((year.get("cold") or {}).get("error", "not run")))
    for label, s in (("time series, mount", series), ("time series, fsspec refs", series_refs)):
        if s and "error" not in s:
            print("%-30s open %.2f s + read %.2f s of %d values%s" % (label + ":", s["open_s"], s["read_s"], s["values"],
                                                                     " (after a mount of %.2f s)" % s["mount_s"] if "mount_s" in s else ""))
        else:
            print("%-30s failed: %s" % (label + ":", rr.one_line((s or {}).get("error", "not run"))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    ap.add_argument("--zarrmount", required=True)
    ap.add_argument("--proxy", required=True, help="tools/latency-proxy binary")
    ap.add_argument("--archive", required=True, help="directory of WRF-like daily files (tools/make-archive.py)")
    ap.add_argument("--files", type=int, default=365)
    ap.add_argument("--latency-ms", type=float, default=20)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each scan row, in turn; each row shows its median run")
    ap.add_argument("--work", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="dask threads of the cold read")
    ap.add_argument("--ceiling-files", type=int, default=30, help="files in the local ceiling's export")
    args = ap.parse_args()
    args.work = os.path.abspath(args.work)
    os.makedirs(args.work, exist_ok=True)

    names = sorted(f for f in os.listdir(args.archive) if f.endswith(".nc"))[: args.files]
    if len(names) < args.files:
        raise rr.BenchError("%s holds %d .nc files, --files asks for %d" % (args.archive, len(names), args.files))
    for n in names:  # warm the server's page cache for every path alike
        with open(os.path.join(args.archive, n), "rb") as f:
            while f.read(8 * MiB):
                pass
    www, http_port = rr.start_services(args.work)
    rr.publish(www, "bench-year", os.path.realpath(args.archive))
    path_file = os.path.join(args.work, "paths.txt")
    with open(path_file, "w") as f:
        f.write("\n".join(os.path.join(args.archive, n) for n in names) + "\n")
    with rr.latency_proxy(args.proxy, http_port, args.latency_ms) as port:
        urls = ["http://127.0.0.1:%d/bench-year/%s" % (port, n) for n in names]
        url_file = os.path.join(args.work, "urls.txt")
        with open(url_file, "w") as f:
            f.write("\n".join(urls) + "\n")
        log("scan: remote and local, %d runs each" % args.repeat)
        scan = scan_cpu(args.zarrmount, args.work, url_file, path_file, args.repeat)
        log("first answer: cold, then with the manifest cache, then through fsspec references")
        cache_dir = os.path.join(args.work, "manifest-cache")
        shutil.rmtree(cache_dir, ignore_errors=True)
        cold_answer = first_answer(args.zarrmount, args.work, url_file, None)
        first_answer(args.zarrmount, args.work, url_file, cache_dir)  # fills the cache
        cached_answer = first_answer(args.zarrmount, args.work, url_file, cache_dir)
        refs = os.path.join(args.work, "summary-refs.json")
        refs_answer = run_worker("first-answer-refs", args.zarrmount, url_file, refs)
        log("the client's floor: open and mean over a local Zarr export of the year")
        floor = client_floor(args.zarrmount, args.work, path_file)
        log("time series of one grid point: a fresh mount, then fsspec references")
        series, series_refs = time_series(args.zarrmount, args.work, urls, refs)
        log("cold read of every variable through a fresh mount")
        mountpoint = os.path.join(args.work, "mnt-year")
        with rr.mounted(args.zarrmount, urls, mountpoint, ["--concat-dim", "Time"]) as mount_s:
            year = {"mount_s": mount_s, "cold": rr.run_worker(args, "mount", mountpoint)}
    ceiling = rr.read_local_ceiling(args, names)
    report(args, len(names), scan, cold_answer, cached_answer, refs_answer, floor, year, ceiling, series, series_refs)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        sys.exit(worker_main(sys.argv[2:]))
    try:
        main()
    except rr.BenchError as e:
        sys.stderr.write("tools/bench summary: %s\n" % e)
        sys.exit(1)
