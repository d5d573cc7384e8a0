#!/usr/bin/env python3
"""The fault matrix (issue 14), every rate: prints the README's table.

    tools/fault-matrix.py [--rates 0.01,0.1,0.3] [--kinds 503,reset,...]

Starts its own nginx (tools/services.py), serves five WRF-like daily files (tools/make-archive.py) and
puts tools/fault-proxy.py in front with one kind of fault at one rate: a scan (references identical
to a clean scan, or a failure naming the file), then reads of the chunk files of four variables
through a mount of clean references, stored and --decoded (--timeout 4; every read must be the
right bytes or an errno, none may hang). Each row gives the requests faulted and what the reads
gave. Takes a few minutes.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # tools/, for _bootstrap
import _bootstrap  # noqa: E402
REPO = _bootstrap.use_repo_venv(__file__)
sys.path.insert(0, os.path.join(REPO, "Tests", "python"))
import fault_matrix  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="0.01,0.1,0.3")
    ap.add_argument("--kinds", default=",".join(fault_matrix.KINDS))
    ap.add_argument("--zarrmount", default=os.path.join(REPO, ".build", "debug", "zarrmount"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="zm-fault-matrix-")
    services = os.path.join(work, "services")
    p = subprocess.run([sys.executable, os.path.join(REPO, "tools", "services.py"), "start", "--dir", services, "--parent-pid",
                        str(os.getpid()), "--lifetime", "3600"], capture_output=True, text=True, check=True)
    env_vars = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    try:
        archive = os.path.join(work, "archive")
        subprocess.run([os.path.join(REPO, "tools", "make-archive.py"), archive, "--days", "5"], check=True, capture_output=True)
        names = sorted(n for n in os.listdir(archive) if n.endswith(".nc"))
        files = [os.path.join(archive, n) for n in names]
        os.makedirs(os.path.join(env_vars["ZARRMOUNT_HTTP_DIR"], "wrf"), exist_ok=True)
        for f in files:
            shutil.copy(f, os.path.join(env_vars["ZARRMOUNT_HTTP_DIR"], "wrf"))
        http = env_vars["ZARRMOUNT_HTTP_ROOT"]
        env = dict(os.environ, HOME=work, XDG_CACHE_HOME=os.path.join(work, "cache"))
        clean_path = os.path.join(work, "clean.json")
        subprocess.run([args.zarrmount, "scan"] + ["%s/wrf/%s" % (http, n) for n in names] +
                       ["--concat-dim", "Time", "--no-cache", "--refs", clean_path], check=True, capture_output=True, env=env)
        with open(clean_path) as fh:
            text = fh.read()
        raw = json.loads(text)["refs"]
        clean = {k: (v if not isinstance(v, list) else [os.path.basename(v[0])] + v[1:]) for k, v in raw.items()}
        expected = {mode: fault_matrix.expected_bytes(args.zarrmount, env, files, raw, mode, work) for mode in ("stored", "decoded")}
        print("| fault | rate | scan | requests faulted (scan) | stored reads | decoded reads | requests faulted (reads) |")
        print("|---|---|---|---|---|---|---|")
        for kind in args.kinds.split(","):
            for rate in [float(r) for r in args.rates.split(",")]:
                case = tempfile.mkdtemp(dir=work)
                outcome, scan_faults = fault_matrix.scan_case(args.zarrmount, env, http, names, clean, kind, rate, case)
                cells, read_faults = [], 0
                for mode in ("stored", "decoded"):
                    mode_dir = os.path.join(case, mode)
                    os.makedirs(mode_dir)
                    counts = fault_matrix.read_case(args.zarrmount, env, http, text.replace(http, "{{upstream}}"), expected[mode],
                                                    kind, rate, mode, mode_dir, listing_requests=len(names))
                    read_faults += counts.pop("faults")
                    cells.append(", ".join("%d %s" % (v, k) for k, v in sorted(counts.items())))
                print("| %s | %g %% | %s | %d | %s | %s | %d |" % (kind, rate * 100, outcome, scan_faults, cells[0], cells[1], read_faults),
                      flush=True)
    finally:
        subprocess.run([sys.executable, os.path.join(REPO, "tools", "services.py"), "stop", "--dir", services], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
