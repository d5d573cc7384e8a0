"""The fault matrix (issue 14): scans and reads through real mounts with tools/fault-proxy.py in front
of nginx, injecting one kind of fault into a share of the requests. The rule checked: a scan gives
references identical to a clean scan or fails naming the file; every read gives the right bytes
or an errno within the read bound; nothing hangs.

Used by Tests/python/test_faults.py (one rate in CI) and tools/fault-matrix.py (every rate, the
README's table)."""
import concurrent.futures
import errno
import json
import os
import re
import select
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(REPO, "tools")

KINDS = ("503", "reset", "truncate", "stall", "whole", "wrong-length")
READ_TIMEOUT = 4  # the mounts' --timeout in seconds: the bound every read must keep
STALL_MS = 8000   # longer than READ_TIMEOUT, so a stalled read must end in ETIMEDOUT
VARIABLES = ("T2", "Q2", "U10", "PSFC")


def proxy_arguments(kind, rate, after=0):
    if kind == "stall":
        return ["--delay-rate", str(rate), "--delay-ms", str(STALL_MS), "--delay-after", str(after)]
    return ["--rate-%s" % kind, str(rate), "--max-faults-per-request", "2"]


class Proxy:
    """tools/fault-proxy.py on a free port in front of UPSTREAM, logging each request to LOG."""

    def __init__(self, upstream, args, log, max_seconds=600):
        self.log = log
        cmd = [sys.executable, os.path.join(TOOLS, "fault-proxy.py"), "--upstream", upstream, "--port", "0",
               "--log", log, "--max-seconds", str(max_seconds)] + [str(a) for a in args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else ""
        m = re.match(r"listening on (\d+)", line)
        if not m:
            self.proc.kill()
            raise AssertionError("fault-proxy did not start: %r %s" % (line, self.proc.stderr.read()[-2000:]))
        self.port = int(m.group(1))
        self.url = "http://127.0.0.1:%d" % self.port
        self.stderr = ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                _, self.stderr = self.proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, self.stderr = self.proc.communicate()
        return self.stderr


def injected(log):
    """The requests a proxy faulted or delayed, from its log (one JSON line per request)."""
    count = 0
    with open(log) as fh:
        for line in fh:
            record = json.loads(line)
            count += bool(record.get("fault")) or record.get("delay_ms", 0) > 0
    return count


def scan_case(zarrmount, env, upstream, names, clean_refs, kind, rate, workdir):
    """(outcome, faults): outcome is 'identical', 'failed naming the file' or what went wrong."""
    log = os.path.join(workdir, "scan-proxy.jsonl")
    proxy = Proxy(upstream, proxy_arguments(kind, rate) if kind != "stall" else
                  ["--delay-rate", str(rate), "--delay-ms", "1500"], log)
    out = os.path.join(workdir, "scan.json")
    try:
        p = subprocess.run([zarrmount, "scan"] + ["%s/wrf/%s" % (proxy.url, n) for n in names] +
                           ["--concat-dim", "Time", "--no-cache", "--refs", out], capture_output=True, text=True,
                           timeout=300, env=env)
    finally:
        proxy.stop()
    if p.returncode == 0:
        with open(out) as fh:
            refs = json.load(fh)["refs"]
        same = {k: (v if not isinstance(v, list) else [os.path.basename(v[0])] + v[1:]) for k, v in refs.items()} == clean_refs
        return ("identical" if same else "DIFFERENT"), injected(log)
    if any(n in p.stderr for n in names):
        return "failed naming the file", injected(log)
    return "FAILED WITHOUT A NAME: " + p.stderr[-300:], injected(log)


def read_case(zarrmount, env, upstream, refs_text, expected, kind, rate, mode, workdir, listing_requests):
    """Counts of one mount's reads: {'right': n, 'errno NAME': n, 'WRONG BYTES': n, 'HUNG': n, 'faults': n}."""
    log = os.path.join(workdir, "read-proxy.jsonl")
    proxy = Proxy(upstream, proxy_arguments(kind, rate, after=listing_requests), log)
    refs_path = os.path.join(workdir, "refs.json")
    with open(refs_path, "w") as fh:
        fh.write(refs_text.replace("{{upstream}}", proxy.url))
    mountpoint = os.path.join(workdir, "mnt")
    os.makedirs(mountpoint, exist_ok=True)
    counts = {}
    try:
        args = [zarrmount, "mount", "--references", refs_path, "--allow-source", proxy.url, "--timeout", str(READ_TIMEOUT),
                "--readahead", "0", mountpoint]
        if mode == "decoded":
            args.insert(-1, "--decoded")
        p = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
        if p.returncode != 0:
            raise AssertionError("mount failed under %s %s: %s" % (kind, rate, p.stderr[-2000:]))

        def read(key):
            try:
                with open(os.path.join(mountpoint, key), "rb") as fh:
                    return "right" if fh.read() == expected[key] else "WRONG BYTES"
            except OSError as e:
                return "errno " + errno.errorcode.get(e.errno, str(e.errno))

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(read, key) for key in sorted(expected)]
            # Eight at a time, each bounded by READ_TIMEOUT (plus slack for the kernel and retries
            # already under way): anything later has hung.
            deadline = time.monotonic() + (len(futures) / 8 + 1) * (READ_TIMEOUT + 6)
            for future in futures:
                try:
                    outcome = future.result(timeout=max(0.1, deadline - time.monotonic()))
                except concurrent.futures.TimeoutError:
                    outcome = "HUNG"
                counts[outcome] = counts.get(outcome, 0) + 1
            if counts.get("HUNG"):
                subprocess.run([zarrmount, "unmount", "--lazy", mountpoint], capture_output=True, timeout=60)
    finally:
        subprocess.run([zarrmount, "unmount", mountpoint], capture_output=True, timeout=60)
        if os.path.ismount(mountpoint):
            subprocess.run([zarrmount, "unmount", "--lazy", mountpoint], capture_output=True, timeout=60)
        proxy.stop()
        counts["faults"] = injected(log)
    return counts


def expected_bytes(zarrmount, env, files, refs, mode, workdir):
    """Chunk file bytes of VARIABLES: stored ones from the files at the references' offsets, decoded
    ones from a mount of the local files without faults."""
    keys = [k for k in refs if k.split("/")[0] in VARIABLES and not k.split("/")[-1].startswith(".")]
    if mode == "stored":
        by_name = {os.path.basename(f): f for f in files}
        out = {}
        for key in keys:
            url, offset, length = refs[key]
            with open(by_name[os.path.basename(url)], "rb") as fh:
                fh.seek(offset)
                out[key] = fh.read(length)
        return out
    mountpoint = os.path.join(workdir, "clean-decoded")
    os.makedirs(mountpoint, exist_ok=True)
    p = subprocess.run([zarrmount, "mount"] + list(files) + ["--concat-dim", "Time", "--no-cache", "--decoded", mountpoint],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    try:
        out = {}
        for key in keys:
            with open(os.path.join(mountpoint, key), "rb") as fh:
                out[key] = fh.read()
        return out
    finally:
        subprocess.run([zarrmount, "unmount", mountpoint], capture_output=True, timeout=60)


def acceptable(counts):
    """Right bytes or an errno for every read, none hung, none wrong."""
    return not counts.get("WRONG BYTES") and not counts.get("HUNG")
