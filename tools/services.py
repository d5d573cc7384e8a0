#!/usr/bin/env python3
"""Test services on 127.0.0.1: moto_server (S3) and nginx (HTTP with Range, ETag, keep-alive).

    tools/services.py start [--dir DIR] [--parent-pid PID] [--lifetime S]
    tools/services.py stop  [--dir DIR]
    tools/services.py env   [--dir DIR]      # `export KEY=VALUE` lines: eval "$(tools/services.py env)"
    tools/services.py status [--dir DIR]

State lives in DIR (default .cache/services): the generated nginx.conf, pid files, logs,
`www/` (nginx's document root) and `services.env`:

    ZARRMOUNT_S3_ENDPOINT=http://127.0.0.1:P      moto_server
    ZARRMOUNT_HTTP_ROOT=http://127.0.0.1:Q        nginx, serving ZARRMOUNT_HTTP_DIR, hardened:
                                                  at most 16 ranges per request (max_ranges 16)
    ZARRMOUNT_HTTP_STOCK_ROOT=http://127.0.0.1:R  the same nginx and files with its stock
                                                  settings (no limit on ranges per request)
    ZARRMOUNT_HTTP_SHORT_HEADERS_ROOT=http://127.0.0.1:S
                                                  the same files; header lines over 512 bytes
                                                  (a Range of about 30 ranges) get a 400
    ZARRMOUNT_HTTPS_ROOT=https://127.0.0.1:T      the same files over TLS (HTTP/2 offered), with
                                                  a certificate for 127.0.0.1 and localhost signed
    ZARRMOUNT_HTTPS_CA=DIR/tls/ca.pem             by this test CA (made at start; trusted nowhere)
    ZARRMOUNT_HTTP_DIR=DIR/www
    AWS_ACCESS_KEY_ID=testing  AWS_SECRET_ACCESS_KEY=testing  AWS_DEFAULT_REGION=us-east-1

`start` picks free ports, starts both servers in their own process groups (nginx with
`daemon off`, as a child of no shell), waits until both answer, then writes services.env.
Running `start` while both answer does nothing. A watchdog stops both when PID (--parent-pid)
exits or after --lifetime seconds, so a killed test run leaves nothing behind. `stop` ends both
process groups (TERM, then KILL) and waits until they are gone. A missing nginx or moto_server
is an error naming what to install (exit status 3); under CI=true the message says so.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # tools/, for _bootstrap
import _bootstrap  # noqa: E402
_REPO = _bootstrap.use_repo_venv(__file__)

import argparse
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

CI = os.environ.get("CI") == "true"
DEFAULT_DIR = os.path.join(_REPO, ".cache", "services")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
START_TIMEOUT = 30.0


class ServiceError(Exception):
    pass


def log(msg):
    sys.stderr.write("[services] %s\n" % msg)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_moto():
    for cand in (os.path.join(_REPO, ".venv", "bin", "moto_server"), shutil.which("moto_server")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def find_nginx():
    for cand in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def missing(what, how):
    prefix = "CI=true requires it: " if CI else ""
    raise ServiceError("%s%s not found (%s)" % (prefix, what, how))


# ------------------------------------------------------------------ process bookkeeping

def read_pid(path):
    try:
        with open(path) as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid):
    if not pid:
        return False
    try:
        with open("/proc/%d/stat" % pid) as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def is_ours(pid, marker):
    """The process PID still runs the command we started (its command line names MARKER)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            return marker.encode() in fh.read()
    except OSError:
        return False


def kill_group(pid, marker, name):
    """TERM the process group led by PID (if PID is still ours), then KILL; wait until gone."""
    if not pid or not alive(pid) or not is_ours(pid, marker):
        return
    try:
        pgid = os.getpgid(pid)
    except OSError:
        return
    if pgid != pid:  # we always start services as group leaders; never signal a foreign group
        pgid = None
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            if pgid:
                os.killpg(pgid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:  # reap it if it is our child (the watchdog case never is)
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not alive(pid) and not group_alive(pgid):
                return
            time.sleep(0.05)
    if alive(pid):
        raise ServiceError("%s (pid %d) did not stop" % (name, pid))


def group_alive(pgid):
    if not pgid:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a group whose members are all zombies still answers signal 0; look closer
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    return True
            except (OSError, IndexError, ValueError):
                pass
    return False


def answers(url, timeout=1.0, cafile=None):
    import ssl
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https://") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as r:
            r.read()
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except (OSError, ValueError):
        return False


# ------------------------------------------------------------------ the services

class Paths:
    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.www = os.path.join(self.root, "www")
        self.env = os.path.join(self.root, "services.env")
        self.nginx_conf = os.path.join(self.root, "nginx.conf")
        self.nginx_pid = os.path.join(self.root, "nginx.pid")        # the master, written by us
        self.nginx_log = os.path.join(self.root, "nginx.log")
        self.moto_pid = os.path.join(self.root, "moto.pid")
        self.moto_log = os.path.join(self.root, "moto.log")
        self.watchdog_pid = os.path.join(self.root, "watchdog.pid")
        self.tmp = os.path.join(self.root, "tmp")
        self.tls = os.path.join(self.root, "tls")


def make_certificates(paths):
    """A test CA and a server certificate for 127.0.0.1 and localhost signed by it (openssl)."""
    os.makedirs(paths.tls, exist_ok=True)
    t = paths.tls
    if all(os.path.exists(os.path.join(t, n)) for n in ("ca.pem", "server.pem", "server.key")):
        return
    openssl = shutil.which("openssl") or missing("openssl", "Debian package openssl")

    def run(*args):
        subprocess.run([openssl] + list(args), check=True, capture_output=True, cwd=t)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
        "-subj", "/CN=zarrmount test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(t, "san.ext"), "w") as fh:
        fh.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
        "-days", "30", "-extfile", "san.ext")


def nginx_config(paths, port, stock_port, short_port, tls_port):
    # tcp_nopush stays off: with it, nginx holds the tail of some multipart/byteranges answers on
    # a kept-alive connection until the client's delayed ACK (40 ms), which would add a random
    # 40 ms to the simulated network's round trips (most to serial runs).
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers read DIR/www whatever its owner
    t = paths.tmp
    return """# generated by tools/services.py; do not edit
{user}daemon off;
master_process on;
worker_processes 2;
pid {root}/nginx.master.pid;
error_log {root}/nginx.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    etag on;
    server_tokens off;
    log_format protocol '$server_protocol $connection $status';
    client_body_temp_path {t}/body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        max_ranges 16;
        root {www};
        location / {{ autoindex on; }}
        # Redirects for the confinement tests: within this server, and to the stock one.
        location ~ ^/redirect-here/(.*)$ {{ return 302 /$1; }}
        location ~ ^/redirect-away/(.*)$ {{ return 302 http://127.0.0.1:{stock_port}/$1; }}
    }}
    server {{
        listen 127.0.0.1:{stock_port} reuseport backlog=4096;
        root {www};
        location / {{ autoindex on; }}
    }}
    server {{
        listen 127.0.0.1:{tls_port} ssl http2 reuseport backlog=4096;
        access_log {root}/tls-access.log protocol;
        ssl_certificate {tls}/server.pem;
        ssl_certificate_key {tls}/server.key;
        root {www};
        location / {{ autoindex on; }}
    }}
    server {{
        listen 127.0.0.1:{short_port} reuseport backlog=4096;
        client_header_buffer_size 512;
        large_client_header_buffers 4 512;
        root {www};
        location / {{ autoindex on; }}
    }}
}}
""".format(user=user, root=paths.root, t=t, port=port, stock_port=stock_port, short_port=short_port, www=paths.www,
           tls_port=tls_port, tls=paths.tls)


def spawn(cmd, log_path, pid_path):
    with open(log_path, "ab") as log_fh:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=log_fh,
                             start_new_session=True, close_fds=True)
    with open(pid_path, "w") as fh:
        fh.write("%d\n" % p.pid)
    return p


def wait_until(pred, proc, name, log_path):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError("%s exited with status %s before answering; its log %s ends:\n%s" % (
                name, proc.returncode, log_path, tail(log_path)))
        if pred():
            return
        time.sleep(0.05)
    raise ServiceError("%s did not answer within %.0f s; its log %s ends:\n%s" % (
        name, START_TIMEOUT, log_path, tail(log_path)))


def tail(path, n=15):
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-n:])
    except OSError:
        return "(no log)"


def read_env(paths):
    env = {}
    try:
        with open(paths.env) as fh:
            for line in fh:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    k, v = line.split("=", 1)
                    env[k] = v
    except OSError:
        pass
    return env


def healthy(paths):
    env = read_env(paths)
    moto, nginx = read_pid(paths.moto_pid), read_pid(paths.nginx_pid)
    return (bool(env) and alive(moto) and is_ours(moto, "moto_server") and alive(nginx)
            and is_ours(nginx, paths.nginx_conf)
            and answers(env.get("ZARRMOUNT_S3_ENDPOINT", "") + "/")
            and answers(env.get("ZARRMOUNT_HTTP_ROOT", "") + "/")
            and answers(env.get("ZARRMOUNT_HTTP_STOCK_ROOT", "") + "/")
            and answers(env.get("ZARRMOUNT_HTTP_SHORT_HEADERS_ROOT", "") + "/")
            and answers(env.get("ZARRMOUNT_HTTPS_ROOT", "") + "/", cafile=env.get("ZARRMOUNT_HTTPS_CA")))


def start(paths, parent_pid, lifetime):
    moto_bin, nginx_bin = find_moto(), find_nginx()
    if not moto_bin:
        missing("moto_server", "pip package moto[server]: run tools/setup")
    if not nginx_bin:
        missing("nginx", "Debian package nginx-light: run tools/setup")
    os.makedirs(paths.www, exist_ok=True)
    if healthy(paths):
        log("already running (%s)" % paths.env)
        return read_env(paths)
    stop(paths, quiet=True)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(paths.tmp, sub), exist_ok=True)
    make_certificates(paths)
    try:
        env = None
        for attempt in range(5):  # a port picked free can be taken before the server binds it
            moto_port, nginx_port, stock_port, short_port, tls_port = free_port(), free_port(), free_port(), free_port(), free_port()
            moto = spawn([moto_bin, "-H", "127.0.0.1", "-p", str(moto_port)], paths.moto_log, paths.moto_pid)
            with open(paths.nginx_conf, "w") as fh:
                fh.write(nginx_config(paths, nginx_port, stock_port, short_port, tls_port))
            nginx = spawn([nginx_bin, "-e", paths.nginx_log, "-p", paths.root, "-c", paths.nginx_conf],
                          paths.nginx_log, paths.nginx_pid)
            s3 = "http://127.0.0.1:%d" % moto_port
            http = "http://127.0.0.1:%d" % nginx_port
            stock = "http://127.0.0.1:%d" % stock_port
            short = "http://127.0.0.1:%d" % short_port
            https = "https://127.0.0.1:%d" % tls_port
            ca = os.path.join(paths.tls, "ca.pem")
            try:
                wait_until(lambda: answers(s3 + "/"), moto, "moto_server", paths.moto_log)
                wait_until(lambda: answers(http + "/"), nginx, "nginx", paths.nginx_log)
                wait_until(lambda: answers(stock + "/"), nginx, "nginx", paths.nginx_log)
                wait_until(lambda: answers(short + "/"), nginx, "nginx", paths.nginx_log)
                wait_until(lambda: answers(https + "/", cafile=ca), nginx, "nginx", paths.nginx_log)
            except ServiceError as e:
                stop(paths, quiet=True)
                if "Address already in use" in str(e) and attempt < 4:
                    continue
                raise
            env = {"ZARRMOUNT_S3_ENDPOINT": s3, "ZARRMOUNT_HTTP_ROOT": http, "ZARRMOUNT_HTTP_STOCK_ROOT": stock,
                   "ZARRMOUNT_HTTP_SHORT_HEADERS_ROOT": short, "ZARRMOUNT_HTTPS_ROOT": https, "ZARRMOUNT_HTTPS_CA": ca,
                   "ZARRMOUNT_HTTP_DIR": paths.www}
            env.update(CREDENTIALS)
            break
        with open(paths.env + ".tmp", "w") as fh:
            fh.write("# written by tools/services.py start; source with `set -a; . FILE; set +a`\n")
            for k, v in env.items():
                fh.write("%s=%s\n" % (k, v))
        os.replace(paths.env + ".tmp", paths.env)
        if parent_pid or lifetime:
            start_watchdog(paths, parent_pid, lifetime)
    except BaseException:
        stop(paths, quiet=True)
        raise
    log("moto_server %s, nginx %s (max_ranges 16) and %s (stock) serving %s (env: %s)" % (
        env["ZARRMOUNT_S3_ENDPOINT"], env["ZARRMOUNT_HTTP_ROOT"], env["ZARRMOUNT_HTTP_STOCK_ROOT"], paths.www, paths.env))
    return env


def start_watchdog(paths, parent_pid, lifetime):
    cmd = [sys.executable, os.path.realpath(__file__), "_watchdog", "--dir", paths.root,
           "--parent-pid", str(parent_pid or 0), "--lifetime", str(lifetime or 0)]
    spawn(cmd, os.path.join(paths.root, "watchdog.log"), paths.watchdog_pid)


def watchdog(paths, parent_pid, lifetime):
    deadline = time.monotonic() + lifetime if lifetime else None
    moto, nginx = read_pid(paths.moto_pid), read_pid(paths.nginx_pid)
    while True:
        time.sleep(0.5)
        if parent_pid and not alive(parent_pid):
            log("watchdog: parent %d exited; stopping services" % parent_pid)
            break
        if deadline and time.monotonic() > deadline:
            log("watchdog: lifetime %s s over; stopping services" % lifetime)
            break
        if not alive(moto) and not alive(nginx):
            return  # stopped by someone else
    try:
        os.unlink(paths.watchdog_pid)  # so that stop() does not signal us
    except OSError:
        pass
    stop(paths, quiet=True)


def stop(paths, quiet=False):
    errors = []
    wd = read_pid(paths.watchdog_pid)
    if wd and wd != os.getpid():
        try:
            kill_group(wd, "_watchdog", "watchdog")
        except ServiceError as e:
            errors.append(str(e))
    for name, pid_path, marker in (("nginx", paths.nginx_pid, paths.nginx_conf),
                                   ("moto_server", paths.moto_pid, "moto_server")):
        pid = read_pid(pid_path)
        try:
            kill_group(pid, marker, name)
        except ServiceError as e:
            errors.append(str(e))
            continue
        if pid and not quiet:
            log("stopped %s (pid %d)" % (name, pid))
        try:
            os.unlink(pid_path)
        except OSError:
            pass
    for p in (paths.env, paths.watchdog_pid):
        try:
            os.unlink(p)
        except OSError:
            pass
    if errors:
        raise ServiceError("; ".join(errors))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("command", choices=["start", "stop", "env", "status", "_watchdog"])
    ap.add_argument("--dir", default=os.environ.get("ZARRMOUNT_SERVICES_DIR", DEFAULT_DIR),
                    help="state directory (default .cache/services)")
    ap.add_argument("--parent-pid", type=int, default=0, help="stop the services when this process exits")
    ap.add_argument("--lifetime", type=float, default=0, help="stop the services after this many seconds")
    args = ap.parse_args()
    paths = Paths(args.dir)
    try:
        if args.command == "start":
            env = start(paths, args.parent_pid, args.lifetime)
            for k, v in env.items():
                print("%s=%s" % (k, v))
        elif args.command == "stop":
            stop(paths)
        elif args.command == "env":
            env = read_env(paths)
            if not env:
                raise ServiceError("not running (no %s): run tools/services.py start" % paths.env)
            for k, v in env.items():
                print("export %s=%s" % (k, v))
        elif args.command == "status":
            if not healthy(paths):
                print("not running")
                return 1
            print("running: " + " ".join("%s=%s" % kv for kv in read_env(paths).items()))
        else:
            os.makedirs(paths.root, exist_ok=True)
            watchdog(paths, args.parent_pid, args.lifetime)
    except ServiceError as e:
        log("error: %s" % e)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
