"""tools/bench scan: zarrmount scanning a WRF-like year over HTTP (nginx) and S3 (moto) behind the
latency proxy, against kerchunk over the same HTTP endpoint. Prints one table."""
import argparse
import json
import os
import re
import tempfile
import resource
import shutil
import subprocess
import sys
import time

repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
ap = argparse.ArgumentParser()
ap.add_argument("--zarrmount", required=True)
ap.add_argument("--proxy", required=True)
ap.add_argument("--archive", required=True)
ap.add_argument("--files", type=int, default=365)
ap.add_argument("--latency-ms", type=float, default=20)
ap.add_argument("--work", required=True)
ap.add_argument("--serial-files", type=int, default=20, help="files for the concurrency-1 and kerchunk runs")
ap.add_argument("--repeat", type=int, default=5,
                help="runs of the concurrency-1, default and local rows, interleaved; each row shows the run with the median wall time")
args = ap.parse_args()
os.makedirs(args.work, exist_ok=True)


def services():
    subprocess.run([os.path.join(repo, "tools", "services.py"), "start"], check=True, stdout=subprocess.DEVNULL)
    env = {}
    with open(os.path.join(repo, ".cache", "services", "services.env")) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                k, v = line.strip().split("=", 1)
                env[k] = v
    return env


def start_proxy(upstream_port):
    p = subprocess.Popen([args.proxy, "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:%d" % upstream_port,
                          "--delay-ms", str(args.latency_ms / 2), "--max-seconds", "3600"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    port = int(re.search(r"(\d+)\s*$", line).group(1))
    return p, port


def process_cpu(pids):
    """CPU seconds (user + system, all threads) the processes have used so far."""
    ticks = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def nginx_pids():
    """The services' nginx master and its workers."""
    try:
        with open(os.path.join(repo, ".cache", "services", "nginx.pid")) as f:
            master = int(f.read().strip())
    except (OSError, ValueError):
        return []
    pids = [master]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == master:
                        pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return pids


def run_scan(label, sources, extra, env, rig=()):
    out = os.path.join(args.work, "refs.json")
    rig_before = process_cpu(rig)
    start = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as err:
        # wait4 gives this child's own peak RSS and CPU (RUSAGE_CHILDREN would report the
        # largest of all runs so far).
        p = subprocess.Popen([args.zarrmount, "scan"] + sources + ["--concat-dim", "Time", "--refs", out, "--no-cache"] + extra,
                             env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    if p.returncode != 0:
        print("%s failed:\n%s" % (label, stderr[-2000:]))
        sys.exit(1)
    m = re.search(r"scanned (\d+) files", stderr)
    r = re.search(r"remote: (\d+) HTTP requests \((\d+) retried\), ([\d.]+) (\w+) received, at most (\d+) dependent rounds", stderr)
    n = int(m.group(1))
    row = {"label": label, "files": n, "wall": wall, "requests": None, "bytes": None, "rounds": None, "rss": usage.ru_maxrss / 1024,
           "cpu": usage.ru_utime + usage.ru_stime, "rig_cpu": process_cpu(rig) - rig_before}
    if r:  # local scans make no HTTP requests
        unit = {"B": 1, "KiB": 1024, "MiB": 2**20, "GiB": 2**30}[r.group(4)]
        row.update(requests=int(r.group(1)) / n, bytes=float(r.group(3)) * unit / n, rounds=int(r.group(5)))
    return row


env_services = services()
env = dict(os.environ)
env.update(env_services)
names = sorted(f for f in os.listdir(args.archive) if f.endswith(".nc"))[: args.files]
file_bytes = sum(os.path.getsize(os.path.join(args.archive, f)) for f in names) / len(names)
www = env_services["ZARRMOUNT_HTTP_DIR"]
link = os.path.join(www, "bench-year")
if os.path.islink(link) or os.path.exists(link):
    os.remove(link)
os.symlink(args.archive, link)
# nginx with its stock settings (no limit on ranges per request), as most servers are; the
# hardened one (max_ranges 16) gets one extra row.
http_port = int(env_services["ZARRMOUNT_HTTP_STOCK_ROOT"].rsplit(":", 1)[1])
hardened_port = int(env_services["ZARRMOUNT_HTTP_ROOT"].rsplit(":", 1)[1])
s3_port = int(env_services["ZARRMOUNT_S3_ENDPOINT"].rsplit(":", 1)[1])

capacity = subprocess.run([args.proxy, "--measure-capacity", "--upstream", "127.0.0.1:%d" % http_port,
                           "--path", "/bench-year/" + names[0], "--seconds", "3"], capture_output=True, text=True).stdout.strip()

http_proxy, http_proxy_port = start_proxy(http_port)
hardened_proxy, hardened_proxy_port = start_proxy(hardened_port)
s3_proxy, s3_proxy_port = start_proxy(s3_port)
try:
    urls = ["http://127.0.0.1:%d/bench-year/%s" % (http_proxy_port, n) for n in names]
    url_file = os.path.join(args.work, "urls.txt")
    with open(url_file, "w") as f:
        f.write("\n".join(urls) + "\n")
    serial_file = os.path.join(args.work, "urls-serial.txt")
    with open(serial_file, "w") as f:
        f.write("\n".join(urls[: args.serial_files]) + "\n")
    # The same files from local disk (page cache warm): the CPU the scan needs without any
    # network, measured in the same run so the remote rows can be read against it.
    local_file = os.path.join(args.work, "paths.txt")
    with open(local_file, "w") as f:
        f.write("\n".join(os.path.join(args.archive, n) for n in names) + "\n")
    # These machines' speed drifts by a third within an hour and the default row is CPU-bound
    # while concurrency 1 is latency-bound, so one run of each gives a ratio that wanders by
    # several points. The rows are run in turn, several times, and each shows its median run.
    runs = [[], [], []]
    for _ in range(max(1, args.repeat)):
        runs[0].append(run_scan("zarrmount HTTP, concurrency 1 (%d files)" % args.serial_files, [],
                                ["--urls", serial_file, "--concurrency", "1"], env))
        runs[1].append(run_scan("zarrmount HTTP, default concurrency", [], ["--urls", url_file], env,
                                rig=[http_proxy.pid] + nginx_pids()))
        runs[2].append(run_scan("zarrmount local files (no network, CPU floor)", [], ["--urls", local_file], env))
    rows = [sorted(r, key=lambda row: row["wall"])[len(r) // 2] for r in runs]
    spreads = [(min(row["wall"] for row in r), max(row["wall"] for row in r)) for r in runs]
    hardened_file = os.path.join(args.work, "urls-hardened.txt")
    with open(hardened_file, "w") as f:
        f.write("\n".join("http://127.0.0.1:%d/bench-year/%s" % (hardened_proxy_port, n) for n in names) + "\n")
    rows.append(run_scan("zarrmount HTTP, default, nginx max_ranges 16", [], ["--urls", hardened_file], env))

    # S3 through moto (a Python server: slower than nginx, so a subset), uploaded once.
    subset = os.path.join(args.work, "s3-subset")
    shutil.rmtree(subset, ignore_errors=True)
    os.makedirs(subset)
    for n in names[: args.serial_files * 2]:
        os.symlink(os.path.join(args.archive, n), os.path.join(subset, n))
    subprocess.run([os.path.join(repo, "tools", "s3-load.py"), "upload", "bench", subset, "--prefix", "year/", "--pattern", "*.nc",
                    "--endpoint-url", env_services["ZARRMOUNT_S3_ENDPOINT"]], check=True, stdout=subprocess.DEVNULL, env=env)
    rows.append(run_scan("zarrmount S3 (moto), default concurrency", ["s3://bench/year/*.nc"],
                         ["--endpoint-url", "http://127.0.0.1:%d" % s3_proxy_port], env))

    kerchunk = subprocess.run([os.path.join(repo, ".venv", "bin", "python"), os.path.join(repo, "tools", "bench-support", "remote_kerchunk.py"),
                               "--urls", serial_file], capture_output=True, text=True)
    km = re.search(r"kerchunk-http: (\d+) files in ([\d.]+) s", kerchunk.stdout)
finally:
    http_proxy.terminate()
    hardened_proxy.terminate()
    s3_proxy.terminate()

print()
print("remote scan of WRF-like files (%.1f MiB each) at %.0f ms round trip (latency proxy in front of nginx and moto;"
      " nginx with stock settings unless the row says otherwise)" % (file_bytes / 2**20, args.latency_ms))
print("latency proxy capacity (no delay): %s" % capacity)
print("%-46s %6s %9s %8s %8s %9s %9s %7s %7s %8s" % ("run", "files", "wall (s)", "CPU (s)", "files/s", "req/file", "KiB/file", "% file",
                                                    "rounds", "RSS MiB"))
for r in rows:
    if r["requests"] is None:
        print("%-46s %6d %9.2f %8.2f %8.1f %9s %9s %7s %7s %8.0f" % (r["label"], r["files"], r["wall"], r["cpu"], r["files"] / r["wall"],
                                                                   "-", "-", "-", "-", r["rss"]))
        continue
    print("%-46s %6d %9.2f %8.2f %8.1f %9.1f %9.1f %6.1f%% %7d %8.0f" % (r["label"], r["files"], r["wall"], r["cpu"], r["files"] / r["wall"],
                                                                       r["requests"], r["bytes"] / 1024, 100 * r["bytes"] / file_bytes,
                                                                       r["rounds"], r["rss"]))
serial, default, local = rows[0], rows[1], rows[2]
print("wall time over %d runs of each (min-max): concurrency 1 %.2f-%.2f s, default %.2f-%.2f s, local %.2f-%.2f s"
      % (len(runs[0]), *spreads[0], *spreads[1], *spreads[2]))
print("default HTTP vs local files: %.2fx the wall time, %.2fx the CPU" % (default["wall"] / local["wall"], default["cpu"] / local["cpu"]))
print("the test rig (latency proxy and nginx, on the same %d cores) used %.2f CPU-seconds during the default row's median run"
      % (os.cpu_count(), default["rig_cpu"]))
print("default vs concurrency 1: %.1fx more files/s (medians; run by run, in turn: %s)" % (
    (default["files"] / default["wall"]) / (serial["files"] / serial["wall"]),
    ", ".join("%.1fx" % ((d["files"] / d["wall"]) / (c["files"] / c["wall"])) for c, d in zip(runs[0], runs[1]))))
if km:
    kfiles, ksec = int(km.group(1)), float(km.group(2))
    print("%-44s %6d %9.2f %8.2f" % ("kerchunk SingleHdf5ToZarr over HTTP (serial)", kfiles, ksec, kfiles / ksec))
    print("zarrmount (default) vs kerchunk: %.0fx more files/s" % ((default["files"] / default["wall"]) / (kfiles / ksec)))
else:
    print("kerchunk run failed:\n" + kerchunk.stderr[-1500:])
