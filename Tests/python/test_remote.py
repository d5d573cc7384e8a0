"""Remote archives (issue 4): `zarrmount scan` over S3 (moto_server) and HTTP (nginx), real servers on
127.0.0.1 started by tools/services.py for this session, with tools/fault-proxy.py in front of them to log
what the client sends and to inject faults.

A five-day WRF-like set (tools/make-archive.py) is uploaded to moto and copied into nginx's root; a scan
over S3, over HTTP (URLs as arguments and through --urls) and over the local files must give the same
references, URLs aside (compared by basename), with the URLs exactly as given (s3://bucket/key,
http://host/path). Also: a listing of > 1000 keys, every glob form, anonymous and signed requests (each
signature recomputed with botocore's S3SigV4Auth from the exact request logged by the proxy), credentials
from the environment and from a profile, requester-pays, region, If-Match on every ranged GET, the
manifest cache, and failures: 403, 404, unreachable endpoints, 5xx then success, Retry-After, and a
fault-injected scan (delays, 503s, SlowDown, 5xx, resets, truncated bodies) that must equal the clean one.

Without nginx/moto (tools/services.py) or without a zarrmount that scans remote sources the tests skip,
unless CI=true, where they fail.
"""
import calendar
import hashlib
import json
import os
import posixpath
import re
import select
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import fault_matrix
from conftest import CACHE, CI, REPO, _ensure_generated, require_fuse, vz_command, wrf_originals

TOOLS = os.path.join(REPO, "tools")
DAYS = ["2060-01-0%d" % d for d in range(1, 6)]
NAMES = ["WRFDS_%s.nc" % d for d in DAYS]
BUCKET = "zm-wrf"
PUBLIC = "zm-public"
CACHE_BUCKET = "zm-cache"
DECOYS = 1100
SCAN_TIMEOUT = 120


def _skip_or_fail(msg):
    if CI:
        pytest.fail(msg + " (CI=true forbids skipping)")
    pytest.skip(msg)


# ------------------------------------------------------------------ services and data

class Services:
    def __init__(self, env, root):
        self.env = env
        self.root = root
        self.s3 = env["ZARRMOUNT_S3_ENDPOINT"]
        self.http = env["ZARRMOUNT_HTTP_ROOT"]  # nginx with max_ranges 16
        self.http_stock = env["ZARRMOUNT_HTTP_STOCK_ROOT"]  # the same nginx, no limit on ranges
        self.http_short_headers = env["ZARRMOUNT_HTTP_SHORT_HEADERS_ROOT"]  # 400 for header lines over 512 bytes
        self.www = env["ZARRMOUNT_HTTP_DIR"]

    def boto3(self):
        import boto3
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=self.s3, region_name="us-east-1",
                            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
                            config=Config(s3={"addressing_style": "path"}))


@pytest.fixture(scope="session")
def services(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("services"))
    tool = os.path.join(TOOLS, "services.py")
    try:
        p = subprocess.run([sys.executable, tool, "start", "--dir", root, "--parent-pid", str(os.getpid()),
                            "--lifetime", "1800"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        _skip_or_fail("tools/services.py start failed: %s" % e)
    if p.returncode != 0:
        _skip_or_fail("tools/services.py start failed: %s" % p.stderr.strip()[-2000:])
    env = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    try:
        yield Services(env, root)
    finally:
        subprocess.run([sys.executable, tool, "stop", "--dir", root], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def zm():
    """The command under test; skips (fails under CI) when its scan has no remote options."""
    cmd = vz_command()
    try:
        p = subprocess.run(cmd + ["scan", "--help"], capture_output=True, text=True, timeout=60)
        text = p.stdout + p.stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        text = str(e)
    missing = [f for f in ("--endpoint-url", "--anonymous", "--urls", "--region", "--requester-pays")
               if f not in text]
    if missing:
        _skip_or_fail("%s scan has no %s (remote scanning)" % (" ".join(cmd), ", ".join(missing)))
    return cmd


@pytest.fixture(scope="session")
def archive():
    """Five WRF-like daily files, regenerated when tools/make-archive.py changes."""
    gen = os.path.join(TOOLS, "make-archive.py")
    out = os.path.join(CACHE, "remote-archive")
    _ensure_generated(out, [gen], [sys.executable, gen, out, "--days", str(len(DAYS)), "--jobs", "2"])
    files = [os.path.join(out, n) for n in NAMES]
    assert all(os.path.exists(f) for f in files), os.listdir(out)
    return files


def _tool(name, *args, env=None):
    p = subprocess.run([sys.executable, os.path.join(TOOLS, name)] + list(args), capture_output=True, text=True,
                       timeout=300, env=env)
    assert p.returncode == 0, "%s %s failed:\n%s" % (name, " ".join(args), p.stderr[-3000:])
    return p.stdout


GLOB_DECOYS = {  # tiny non-HDF5 objects a wrong glob would pick up (and the scan would then fail on)
    "star": ["star/WRFDS_2060-01-01.nc.bak", "star/sub/WRFDS_2060-01-09.nc", "star/notes.txt", "starWRFDS.nc"],
    "qm": ["qm/WRFDS_2060-01-0.nc", "qm/WRFDS_2060-01-012.nc", "qm/WRFDS_2060-01-0/.nc"],
    "br": ["br/WRFDS_2060-01-0-.nc", "br/WRFDS_2060-01-0a.nc", "br/WRFDS_2060-01-01.nc/x"],
    "tree": ["tree/m01/notes.txt", "tree/m02/y/WRFDS_2060-01-04.nc.md5", "treeWRFDS.nc", "tree/m03/x.nc4"],
}
TREE = ["tree/m01/" + NAMES[0], "tree/m01/x/" + NAMES[1], "tree/m02/" + NAMES[2], "tree/m02/y/z/" + NAMES[3],
        "tree/m03/" + NAMES[4]]


@pytest.fixture(scope="session")
def world(services, archive):
    """The archive in moto (bucket zm-wrf: daily/2060/, mixed/ with 1100 decoys, glob prefixes; public
    bucket zm-public; zm-cache for the manifest cache test) and in nginx's root (wrf/)."""
    tool_env = dict(os.environ, ZARRMOUNT_S3_ENDPOINT=services.s3, AWS_ACCESS_KEY_ID="testing",
                    AWS_SECRET_ACCESS_KEY="testing")
    adir = os.path.dirname(archive[0])
    _tool("s3-load.py", "upload", BUCKET, adir, "--prefix", "daily/2060", "--pattern", "*.nc", env=tool_env)
    _tool("s3-load.py", "upload", PUBLIC, adir, "--prefix", "daily", "--pattern", "*.nc", "--public", env=tool_env)
    _tool("s3-load.py", "upload", CACHE_BUCKET, adir, "--prefix", "cache", "--pattern", "*.nc", env=tool_env)
    # 1100 keys between day 1 and day 2 ("WRFDS_2060-01-01.nc.d..." sorts there): days 2-5 are on page 2
    _tool("s3-load.py", "decoys", BUCKET, "--prefix", "mixed", "--count", str(DECOYS),
          "--name", "WRFDS_2060-01-01.nc.d{i:05d}", "--jobs", "16", env=tool_env)
    s3 = services.boto3()
    copies = {}
    for n in NAMES:
        for prefix in ("mixed", "star", "qm", "br"):
            copies["%s/%s" % (prefix, n)] = "daily/2060/" + n
    for key, n in zip(TREE, NAMES):
        copies[key] = "daily/2060/" + n
    for dst, src in copies.items():
        s3.copy_object(Bucket=BUCKET, Key=dst, CopySource={"Bucket": BUCKET, "Key": src})
    for keys in GLOB_DECOYS.values():
        for k in keys:
            s3.put_object(Bucket=BUCKET, Key=k, Body=b"not hdf5\n")
    www = os.path.join(services.www, "wrf")
    os.makedirs(www, exist_ok=True)
    for f in archive:
        shutil.copy2(f, www)
    etags = {n: s3.head_object(Bucket=BUCKET, Key="daily/2060/" + n)["ETag"] for n in NAMES}
    return {"etags": etags, "www": www}


class Refs:
    """One refs file: the refs with every [url, offset, length] url cut to its basename, and the urls."""

    def __init__(self, path):
        with open(path) as fh:
            d = json.load(fh)
        templates = d.get("templates", {})
        self.urls = set()
        self.refs = {}
        for k, v in d["refs"].items():
            if isinstance(v, list) and v and isinstance(v[0], str):
                url = v[0]
                for t, sub in templates.items():
                    url = url.replace("{{%s}}" % t, sub)
                self.urls.add(url)
                v = [posixpath.basename(url)] + list(v[1:])
            self.refs[k] = v
        self.text = json.dumps(d)


def assert_same_refs(expected, actual, what):
    if expected.refs == actual.refs:
        return
    e, a = expected.refs, actual.refs
    missing = sorted(set(e) - set(a))[:10]
    extra = sorted(set(a) - set(e))[:10]
    diff = [(k, e[k], a[k]) for k in sorted(set(e) & set(a)) if e[k] != a[k]][:5]
    raise AssertionError("%s: references differ from the local scan's (URLs aside):\n  missing %s\n  extra %s\n"
                         "  different %s" % (what, missing, extra, [(k, str(x)[:200], str(y)[:200]) for k, x, y in diff]))


# ------------------------------------------------------------------ running the client

class Scanner:
    def __init__(self, cmd, services, tmp):
        self.cmd = cmd
        self.services = services
        self.tmp = tmp
        self.n = 0
        self.home = os.path.join(tmp, "home")
        os.makedirs(self.home, exist_ok=True)

    def env(self, credentials=True, **extra):
        """A clean environment: no AWS_* of the caller's, HOME in a temporary directory (so no
        ~/.aws and no default manifest cache), the services' test credentials unless told not to."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["HOME"] = self.home
        env["XDG_CACHE_HOME"] = os.path.join(self.home, ".cache")
        if credentials:
            env["AWS_ACCESS_KEY_ID"] = self.services.env["AWS_ACCESS_KEY_ID"]
            env["AWS_SECRET_ACCESS_KEY"] = self.services.env["AWS_SECRET_ACCESS_KEY"]
        env.update({k: v for k, v in extra.items() if v is not None})
        return env

    def scan(self, sources, *flags, env=None, cache_dir=None, timeout=SCAN_TIMEOUT, concat=True):
        self.n += 1
        out = os.path.join(self.tmp, "scan-%03d.json" % self.n)
        args = list(self.cmd) + ["scan"] + list(sources) + ["--refs", out] + list(flags)
        if concat:
            args += ["--concat-dim", "Time"]
        args += ["--cache-dir", cache_dir] if cache_dir else ["--no-cache"]
        t0 = time.monotonic()
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                           env=env if env is not None else self.env())
        p.elapsed = time.monotonic() - t0
        p.out = out
        p.argv = args
        if p.returncode < 0:
            raise AssertionError("zarrmount killed by signal %d\n%s" % (-p.returncode, p.stderr[-3000:]))
        return p

    def ok(self, sources, *flags, **kw):
        p = self.scan(sources, *flags, **kw)
        assert p.returncode == 0, "scan %s failed (exit %d):\n%s" % (" ".join(sources), p.returncode,
                                                                     p.stderr[-4000:])
        return Refs(p.out), p


@pytest.fixture(scope="session")
def scanner(zm, services, tmp_path_factory):
    return Scanner(zm, services, str(tmp_path_factory.mktemp("remote-scans")))


@pytest.fixture(scope="session")
def local_refs(scanner, archive):
    """Local scans of subsets of the archive (by day numbers 1..5), cached."""
    cache = {}

    def get(days=(1, 2, 3, 4, 5)):
        days = tuple(days)
        if days not in cache:
            cache[days], _ = scanner.ok([archive[d - 1] for d in days])
        return cache[days]
    return get


class FaultProxy(fault_matrix.Proxy):
    def __init__(self, upstream, log, args=()):
        super().__init__(upstream, args, log, max_seconds=300)

    def requests(self):
        out = []
        with open(self.log) as fh:
            for line in fh:
                r = json.loads(line)
                r["h"] = {}
                for k, v in r["headers"]:
                    r["h"].setdefault(k.lower(), v)
                r["path"], _, r["query"] = r["target"].partition("?")
                out.append(r)
        return out

    def injected(self):
        """{fault: count} from the summary the proxy prints when it stops."""
        self.stop()
        m = re.search(r"injected: (.*)", self.stderr)
        if not m or m.group(1).strip() == "nothing":
            return {}
        return {k: int(v) for k, v in (part.rsplit(" ", 1) for part in m.group(1).split(", "))}


@pytest.fixture
def proxies(tmp_path):
    started = []

    def start(upstream, *args):
        fp = FaultProxy(upstream, str(tmp_path / ("proxy-%d.jsonl" % len(started))), args)
        started.append(fp)
        return fp
    yield start
    for fp in started:
        fp.stop()


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ request checks

def is_list(r):
    return "list-type=2" in r["query"].split("&") or r["query"].startswith("list-type")


def object_gets(reqs):
    return [r for r in reqs if r["method"] == "GET" and not is_list(r) and r["path"] not in ("", "/")]


def check_s3_validators(reqs, etags):
    """Every GET of an object is ranged and carries If-Match with the object's ETag (from the listing)."""
    gets = object_gets(reqs)
    assert gets, "no object GETs were sent"
    for r in gets:
        name = posixpath.basename(r["path"])
        assert "range" in r["h"], "GET %s without Range" % r["target"]
        assert re.fullmatch(r"bytes=\d+-\d+", r["h"]["range"]), "GET %s: Range %r" % (r["target"], r["h"]["range"])
        assert r["h"].get("if-match") == etags[name], "GET %s (Range %s): If-Match %r, the ETag is %s" % (
            r["target"], r["h"]["range"], r["h"].get("if-match"), etags[name])


def nginx_validators(url):
    req = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers["ETag"], r.headers["Last-Modified"]


def check_http_validators(reqs, base_url):
    """Every GET is ranged; once the client knows an object's ETag (from a HEAD or from its first GET), every GET
    carries If-Match (or If-Range) with it. Only the GET that learns the ETag (and its retries), one of the object's
    first bytes sent before any other request for that URL, may go without."""
    identified = set()
    gets = 0
    for r in reqs:
        if r["method"] not in ("GET", "HEAD"):
            continue
        url = base_url + r["path"]
        etag, last_modified = nginx_validators(url)
        if r["method"] == "HEAD":
            identified.add(r["path"])
            continue
        gets += 1
        assert "range" in r["h"], "GET %s without Range" % r["target"]
        v = r["h"].get("if-match") or r["h"].get("if-range")
        if v is None:
            assert r["path"] not in identified and r["h"]["range"].startswith("bytes=0-"), \
                "GET %s (Range %s) has neither If-Match nor If-Range, though the ETag was known" % (r["target"], r["h"]["range"])
            continue
        identified.add(r["path"])
        assert v in (etag, last_modified), "GET %s: validator %r, the object's ETag is %s" % (r["target"], v, etag)
    assert gets, "no GETs were sent"


class SignedHeadersSigV4:
    """botocore's S3SigV4Auth (canonical request, string to sign, HMAC chain), signing exactly the header
    set the client declared in SignedHeaders (SigV4 lets the client choose it; botocore alone would skip
    a few, e.g. user-agent)."""

    def __new__(cls, credentials, region, signed):
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import HTTPHeaders

        class Signer(S3SigV4Auth):
            def headers_to_sign(self, request):
                hm = HTTPHeaders()
                for name, value in request.headers.items():
                    if name.lower() in signed:
                        hm[name.lower()] = value
                return hm
        return Signer(credentials, "s3", region)


def check_signature(r, access_key, secret_key, token=None, region="us-east-1"):
    """Recompute the Authorization header of logged request R with botocore and compare."""
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    auth = r["h"].get("authorization")
    assert auth, "%s %s is not signed" % (r["method"], r["target"])
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, ?"
                     r"SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})", auth)
    assert m, "malformed Authorization %r" % auth
    akid, day, reg, signed_text, _ = m.groups()
    assert akid == access_key, "signed with access key %s, expected %s" % (akid, access_key)
    assert reg == region, "signed for region %s, expected %s" % (reg, region)
    signed = signed_text.split(";")
    amz_date = r["h"].get("x-amz-date", "")
    assert re.fullmatch(r"\d{8}T\d{6}Z", amz_date) and amz_date[:8] == day, "x-amz-date %r" % amz_date
    t = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    assert abs(t - time.time()) < 900, "x-amz-date %s is not now" % amz_date
    for need in ("host", "x-amz-date", "x-amz-content-sha256"):
        assert need in signed, "%s not signed (SignedHeaders=%s)" % (need, signed_text)
    for name in r["h"]:
        if name.startswith("x-amz-"):
            assert name in signed, "%s sent but not signed" % name
    assert r["h"]["x-amz-content-sha256"] in (
        "UNSIGNED-PAYLOAD", hashlib.sha256(b"").hexdigest()), r["h"]["x-amz-content-sha256"]
    if token:
        assert r["h"].get("x-amz-security-token") == token, "session token not sent"
    else:
        assert "x-amz-security-token" not in r["h"], "a session token was sent without one configured"
    headers = [(k, v) for k, v in r["headers"] if k.lower() in signed]
    path, _, query = r["target"].partition("?")
    params = []
    if query:
        for pair in query.split("&"):
            k, _, v = pair.partition("=")
            params.append((urllib.parse.unquote(k), urllib.parse.unquote(v)))
    req = AWSRequest(method=r["method"], url="http://%s%s" % (r["h"]["host"], path), params=params)
    for k, v in headers:
        req.headers[k] = v  # appends: repeated headers stay repeated
    req.context["timestamp"] = amz_date
    signer = SignedHeadersSigV4(Credentials(akid, secret_key, token), region, set(signed))
    canonical = signer.canonical_request(req)
    signature = signer.signature(signer.string_to_sign(req, canonical), req)
    expected = "AWS4-HMAC-SHA256 Credential=%s, SignedHeaders=%s, Signature=%s" % (
        signer.scope(req), signer.signed_headers(signer.headers_to_sign(req)), signature)
    norm = re.sub(r",\s*", ", ", auth)
    assert norm == expected, "signature of %s %s does not verify:\n  sent     %s\n  botocore %s\n" \
                             "  canonical request:\n%s" % (r["method"], r["target"], auth, expected, canonical)


def assert_no_secret(p, refs, *secrets):
    for s in secrets:
        assert s not in p.stderr and s not in p.stdout, "a secret appears in the output"
        assert s not in refs.text, "a secret appears in the references"


# ------------------------------------------------------------------ the tools themselves

def test_services_env_and_servers(services):
    env = services.env
    for k in ("ZARRMOUNT_S3_ENDPOINT", "ZARRMOUNT_HTTP_ROOT", "ZARRMOUNT_HTTP_STOCK_ROOT", "ZARRMOUNT_HTTP_SHORT_HEADERS_ROOT",
              "ZARRMOUNT_HTTP_DIR", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env.get(k), "%s missing from services.env" % k
    for url in (services.s3, services.http, services.http_stock, services.http_short_headers):
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), url
    with open(os.path.join(services.root, "services.env")) as fh:
        assert "ZARRMOUNT_S3_ENDPOINT=%s" % services.s3 in fh.read()
    path = os.path.join(services.www, "range-probe.bin")
    with open(path, "wb") as fh:
        fh.write(bytes(range(256)) * 40)
    req = urllib.request.Request(services.http + "/range-probe.bin", headers={"Range": "bytes=10-19"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 206 and r.read() == bytes(range(10, 20))
        assert r.headers["Content-Range"] == "bytes 10-19/10240"
        etag = r.headers["ETag"]
    assert etag and etag.startswith('"')
    bad = urllib.request.Request(services.http + "/range-probe.bin", headers={"Range": "bytes=0-1",
                                                                               "If-Match": '"other"'})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(bad, timeout=10)
    assert e.value.code == 412
    # 17 ranges: the hardened nginx (max_ranges 16) sends the whole object, the stock one a multipart body
    seventeen = "bytes=" + ",".join("%d-%d" % (i * 100, i * 100 + 9) for i in range(17))
    for root, status, kind in ((services.http, 200, "application/octet-stream"), (services.http_stock, 206, "multipart/byteranges")):
        with urllib.request.urlopen(urllib.request.Request(root + "/range-probe.bin", headers={"Range": seventeen}), timeout=10) as r:
            assert (r.status, r.headers["Content-Type"].split(";")[0]) == (status, kind), root
    # a second start is harmless: same ports
    again = subprocess.run([sys.executable, os.path.join(TOOLS, "services.py"), "start", "--dir", services.root],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "ZARRMOUNT_S3_ENDPOINT=%s" % services.s3 in again.stdout, again.stderr


def test_fault_proxy_keepalive_pipelining_and_faults(services, proxies):
    path = os.path.join(services.www, "pipeline.bin")
    data = hashlib.sha256(b"x").digest() * 2000
    with open(path, "wb") as fh:
        fh.write(data)
    fp = proxies(services.http)
    reqs = b"".join(b"GET /pipeline.bin HTTP/1.1\r\nHost: a\r\nRange: bytes=%d-%d\r\n\r\n" % (i * 100, i * 100 + 99)
                    for i in range(6)) + b"HEAD /pipeline.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", fp.port), timeout=10) as s:
        s.sendall(reqs)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    parts = got.split(b"HTTP/1.1 ")[1:]
    assert [p[:3] for p in parts] == [b"206"] * 6 + [b"200"], got[:500]
    for i, part in enumerate(parts[:6]):
        assert part.endswith(data[i * 100:(i + 1) * 100]), "pipelined response %d out of order" % i
    log = fp.requests()
    assert len(log) == 7 and len({r["conn"] for r in log}) == 1
    assert [r["h"].get("range") for r in log[:3]] == ["bytes=0-99", "bytes=100-199", "bytes=200-299"]

    # forced faults, in order: reset, truncate (bodies cut short), 503 with Retry-After, SlowDown, then 5xx
    fp2 = proxies(services.http, "--sequence", "reset,truncate,503,slowdown,5xx", "--retry-after", "3",
                  "--max-faults-per-request", "10")
    import http.client
    outcomes = []
    for _ in range(6):
        c = http.client.HTTPConnection("127.0.0.1", fp2.port, timeout=10)
        try:
            c.request("GET", "/pipeline.bin", headers={"Range": "bytes=0-9999"})
            r = c.getresponse()
            body = r.read()
            outcomes.append((r.status, len(body), r.getheader("Retry-After"), b"SlowDown" in body))
        except (http.client.IncompleteRead, ConnectionError) as e:
            outcomes.append(type(e).__name__)
        finally:
            c.close()
    assert outcomes[0] in ("ConnectionResetError", "IncompleteRead"), outcomes
    assert outcomes[1] == "IncompleteRead", outcomes
    assert outcomes[2][:1] == (503,) and outcomes[2][2] == "3", outcomes
    assert outcomes[3][0] == 503 and outcomes[3][3], outcomes
    assert outcomes[4][0] in (500, 502, 504), outcomes
    assert outcomes[5] == (206, 10000, None, False), outcomes
    assert fp2.injected() == {"reset": 1, "truncate": 1, "503": 1, "slowdown": 1, "5xx": 1}


def test_s3_fixture_listing_needs_pages(services, world):
    s3 = services.boto3()
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="mixed/"))
    keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
    assert len(pages) >= 2 and len(keys) == DECOYS + len(NAMES)
    first_page = {o["Key"] for o in pages[0]["Contents"]}
    assert "mixed/" + NAMES[0] in first_page and not any("mixed/" + n in first_page for n in NAMES[1:])


def test_signature_checker_accepts_botocore_and_rejects_tampering(services, world, proxies):
    """The checker itself: requests botocore signs verify; a changed header does not."""
    import boto3
    from botocore.config import Config
    fp = proxies(services.s3)
    s3 = boto3.client("s3", endpoint_url=fp.url, region_name="us-east-1", aws_access_key_id="AKIDCHECK",
                      aws_secret_access_key="checker-secret", aws_session_token="checker-token",
                      config=Config(s3={"addressing_style": "path"}))
    s3.list_objects_v2(Bucket=BUCKET, Prefix="daily/2060/", MaxKeys=2)
    s3.get_object(Bucket=BUCKET, Key="daily/2060/" + NAMES[0], Range="bytes=0-99",
                  IfMatch=world["etags"][NAMES[0]])["Body"].read()
    reqs = fp.requests()
    assert len(reqs) == 2
    for r in reqs:
        check_signature(r, "AKIDCHECK", "checker-secret", token="checker-token")
    tampered = dict(reqs[1])
    tampered["headers"] = [(k, "bytes=0-100" if k.lower() == "range" else v) for k, v in reqs[1]["headers"]]
    tampered["h"] = dict(reqs[1]["h"], range="bytes=0-100")
    with pytest.raises(AssertionError, match="does not verify"):
        check_signature(tampered, "AKIDCHECK", "checker-secret", token="checker-token")


# ------------------------------------------------------------------ S3 and HTTP scans equal the local scan

def test_s3_signed_scan_equals_local(scanner, services, world, local_refs, proxies):
    expected = local_refs()
    direct, p = scanner.ok(["s3://%s/daily/2060/*.nc" % BUCKET], "--endpoint-url", services.s3)
    assert_same_refs(expected, direct, "s3 scan")
    assert direct.urls == {"s3://%s/daily/2060/%s" % (BUCKET, n) for n in NAMES}, sorted(direct.urls)

    # the same through the logging proxy, with a session token and the most verbose log
    fp = proxies(services.s3)
    env = scanner.env(AWS_SESSION_TOKEN="session-token-secret-123")
    refs, p = scanner.ok(["s3://%s/daily/2060/*.nc" % BUCKET], "--endpoint-url", fp.url, "--log-level", "trace",
                         env=env)
    assert_same_refs(expected, refs, "s3 scan through the proxy")
    reqs = fp.requests()
    assert any(is_list(r) for r in reqs), "no ListObjectsV2 request"
    for r in reqs:
        check_signature(r, "testing", "testing", token="session-token-secret-123")
    check_s3_validators(reqs, world["etags"])
    assert_no_secret(p, refs, "session-token-secret-123")


def test_http_scan_equals_local(scanner, services, world, local_refs, proxies, tmp_path):
    expected = local_refs()
    urls = ["%s/wrf/%s" % (services.http, n) for n in NAMES]
    refs, _ = scanner.ok(urls)
    assert_same_refs(expected, refs, "http scan (URLs as arguments)")
    assert refs.urls == set(urls), sorted(refs.urls)

    url_file = tmp_path / "urls.txt"
    # (files join Time in key order, whatever order the list gives)
    url_file.write_text("# the archive\n\n" + "\n".join(urls) + "\n")
    refs, _ = scanner.ok([], "--urls", str(url_file))
    assert_same_refs(expected, refs, "http scan (--urls FILE)")
    assert refs.urls == set(urls)

    fp = proxies(services.http)
    purls = ["%s/wrf/%s" % (fp.url, n) for n in NAMES]
    refs, _ = scanner.ok(purls)
    assert_same_refs(expected, refs, "http scan through the proxy")
    reqs = fp.requests()
    assert not any("authorization" in r["h"] for r in reqs), "HTTP requests carry an Authorization header"
    check_http_validators(reqs, services.http)
    # Structures scattered between the data travel as multi-range GETs, up to 16 ranges each at
    # first. services.http is nginx with max_ranges 16: the one probe for more gets the whole
    # object, which the client cuts off and asks again; no other GET asks for more than 16.
    per_get = [r["h"]["range"].count(",") + 1 for r in reqs if r["method"] == "GET"]
    assert max(per_get) > 1, "no multi-range GETs: %s" % per_get
    assert sum(n > 16 for n in per_get) == 1, "not one probe beyond the 16 ranges nginx allows: %s" % per_get


def test_a_server_that_allows_more_ranges_per_request_is_asked_for_more(scanner, services, world, local_refs, proxies):
    """Stock nginx has no max_ranges: beyond 16 ranges per GET, one probe at a time asks for up
    to twice as many, so the same scan takes fewer GETs than against the hardened server
    (max_ranges 16), where the one refused probe is cut off and asked again."""
    gets = {}
    for name, root in (("hardened", services.http), ("stock", services.http_stock)):
        fp = proxies(root)
        refs, _ = scanner.ok(["%s/wrf/%s" % (fp.url, n) for n in NAMES])
        assert_same_refs(local_refs(), refs, "http scan of %s nginx" % name)
        gets[name] = [r["h"]["range"].count(",") + 1 for r in fp.requests() if r["method"] == "GET"]
    assert max(gets["stock"]) > 16, "no GET asked stock nginx for more than 16 ranges: %s" % gets["stock"]
    assert sum(n > 16 for n in gets["hardened"]) == 1, "not exactly one probe went to the hardened server: %s" % gets["hardened"]
    assert len(gets["stock"]) < len(gets["hardened"]), gets


def test_a_server_that_refuses_a_long_range_header_keeps_the_limit_that_worked(scanner, services, world, local_refs, proxies):
    """An nginx with 512-byte header buffers answers the probe's Range of 32 ranges with 400. The
    scan must not fail: the probe's ranges go again at 16 per GET, and no other GET asks for more."""
    fp = proxies(services.http_short_headers)
    refs, _ = scanner.ok(["%s/wrf/%s" % (fp.url, n) for n in NAMES])
    assert_same_refs(local_refs(), refs, "http scan of an nginx with short header buffers")
    per_get = [r["h"]["range"].count(",") + 1 for r in fp.requests() if r["method"] == "GET"]
    assert sum(n > 16 for n in per_get) == 1, "not exactly one probe beyond 16 ranges: %s" % per_get
    assert max(n for n in per_get if n <= 16) == 16, "the limit fell below 16 after the refused probe: %s" % per_get


def test_progress_shows_files_bytes_and_http_requests(scanner, services, world, archive):
    """On a terminal (ZARRMOUNT_PROGRESS_TERMINAL=1, as a daemonised mount's parent sets it) the
    bar is redrawn in place and its last state counts every file and the HTTP requests the
    summary reports; without a terminal, whole lines; a local scan counts reads instead."""
    urls = ["%s/wrf/%s" % (services.http, n) for n in NAMES]
    p = scanner.ok(urls, env=scanner.env(ZARRMOUNT_PROGRESS_TERMINAL="1"))[1]
    # (text mode reads each "\r" as a line end: each redraw starts with the erase-line sequence)
    draws = re.findall(r"\x1b\[2K(.*)", p.stderr)
    assert draws, "no bar drawn in place:\n%s" % p.stderr[-2000:]
    last = re.fullmatch(r"\[(#+)\] (\d+)/(\d+) files  \d+ files/s  [\d.]+ \w+  (\d+) requests  0 errors  ETA \d+ s", draws[-1])
    assert last, repr(draws[-1])
    assert (len(last.group(1)), int(last.group(2)), int(last.group(3))) == (24, len(NAMES), len(NAMES))
    summary = re.search(r"remote: (\d+) HTTP requests", p.stderr)
    assert summary and int(summary.group(1)) == int(last.group(4)), p.stderr[-2000:]

    plain = scanner.ok(urls)[1]
    assert "\x1b" not in plain.stderr, "terminal control sequences without a terminal: %r" % plain.stderr
    assert re.search(r"^\[#{24}\] %d/%d files .* \d+ requests  0 errors  ETA \d+ s$" % (len(NAMES), len(NAMES)), plain.stderr, re.M), plain.stderr

    local = scanner.ok(archive[:2])[1]
    assert re.search(r"^\[#{24}\] 2/2 files .* \d+ reads  0 errors", local.stderr, re.M), local.stderr


def test_transfers_queued_beyond_the_connection_limit_start_when_a_place_frees(scanner, services, world, local_refs):
    """With one connection, the listing queues a GET per URL behind the first. Each must start as
    soon as the one before it ends: the HTTP engine once slept in its poll, with every socket idle,
    until the poll's one-second timeout, once per queued transfer (5 s here). The bound is a
    hang check, far above the few tens of milliseconds this takes."""
    urls = ["%s/wrf/%s" % (services.http, n) for n in NAMES]
    refs, p = scanner.ok(urls, "--connections", "1")
    assert_same_refs(local_refs(), refs, "http scan over one connection")
    assert p.elapsed < 3.0, "5 files over one connection took %.1f s: queued transfers waited for a timeout" % p.elapsed


def test_each_file_is_scanned_as_soon_as_its_own_listing_get_is_answered(scanner, services, world, local_refs, proxies):
    """With only HTTP URLs as sources, a file's scan starts when its own listing GET (its first
    16 KiB) is answered, not when the slowest listing GET is: here every request for the last
    file waits a second, and the other files' scan reads must not wait for it."""
    slow = NAMES[-1]
    fp = proxies(services.http, "--delay-rate", "1", "--delay-ms", "1000", "--delay-target", slow)
    refs, _ = scanner.ok(["%s/wrf/%s" % (fp.url, n) for n in NAMES])
    assert_same_refs(local_refs(), refs, "http scan with one slow file")
    reqs = [r for r in fp.requests() if r["method"] == "GET"]
    slow_listing = next(r for r in reqs if r["path"].endswith(slow))
    seen, early_scan_reads = set(), []
    for r in reqs:
        name = posixpath.basename(r["path"])
        if name in seen and name != slow and r["t"] < slow_listing["t"] + 0.9:
            early_scan_reads.append(name)  # a read after this file's listing GET, while the slow one waits
        seen.add(name)
    assert set(early_scan_reads) == set(NAMES[:-1]), "scan reads sent while the slow listing GET waited: %s" % early_scan_reads


def test_objects_without_etag_or_last_modified_get_a_warning(scanner, services, world, local_refs, proxies):
    """A server that sends neither ETag nor Last-Modified leaves reads unconditional: a change after
    the scan would be served without a word. The scan still matches, and now warns, naming an
    object; the same files with their headers get no such warning."""
    fp = proxies(services.http, "--strip-header", "ETag", "--strip-header", "Last-Modified")
    urls = ["%s/wrf/%s" % (fp.url, n) for n in NAMES]
    refs, p = scanner.ok(urls)
    assert_same_refs(local_refs(), refs, "http scan without identities")
    said = [ln for ln in p.stderr.splitlines() if ln.startswith("warning: ") and "neither an ETag nor a Last-Modified" in ln]
    assert said and "%d objects (%s and others)" % (len(NAMES), urls[0]) in said[0], p.stderr[-2000:]
    assert "--verify-chunks" in said[0], said[0]
    _, p = scanner.ok(["%s/wrf/%s" % (proxies(services.http).url, n) for n in NAMES])
    assert "neither an ETag" not in p.stderr, p.stderr[-2000:]


def test_listing_over_1000_keys(scanner, services, world, local_refs, proxies):
    fp = proxies(services.s3)
    refs, _ = scanner.ok(["s3://%s/mixed/*.nc" % BUCKET], "--endpoint-url", fp.url)
    assert_same_refs(local_refs(), refs, "scan of 5 .nc files among %d decoys" % DECOYS)
    lists = [r for r in fp.requests() if is_list(r)]
    assert len(lists) >= 2, "one ListObjectsV2 page cannot hold %d keys: %s" % (DECOYS + 5, [r["target"] for r in lists])
    assert any("continuation-token=" in r["query"] for r in lists[1:]), [r["target"] for r in lists]
    assert not any(posixpath.basename(r["path"]).startswith("WRFDS_2060-01-01.nc.d") for r in object_gets(fp.requests())), \
        "a decoy key was read"


GLOBS = [
    ("star", "star/*.nc", (1, 2, 3, 4, 5)),
    ("question", "qm/WRFDS_2060-01-0?.nc", (1, 2, 3, 4, 5)),
    ("range", "br/WRFDS_2060-01-0[1-3].nc", (1, 2, 3)),
    ("set", "br/WRFDS_2060-01-0[245].nc", (2, 4, 5)),
    ("negated", "qm/WRFDS_2060-01-0[!1-3].nc", (4, 5)),
    ("doublestar", "tree/**/*.nc", (1, 2, 3, 4, 5)),
    ("doublestar-zero-segments", "tree/m02/**/*.nc", (3, 4)),
    ("doublestar-middle", "tree/**/z/WRFDS_*.nc", (4,)),
]


@pytest.mark.parametrize("pattern,days", [g[1:] for g in GLOBS], ids=[g[0] for g in GLOBS])
def test_glob_forms(scanner, services, world, local_refs, pattern, days):
    refs, _ = scanner.ok(["s3://%s/%s" % (BUCKET, pattern)], "--endpoint-url", services.s3)
    assert_same_refs(local_refs(days), refs, pattern)
    keys = sorted(u.split("/", 3)[3] for u in refs.urls)
    assert len(keys) == len(days), keys


def test_a_key_with_brackets_is_that_object_or_refused_when_it_also_matches_others(scanner, services, world):
    """Trap: a key named `WRFDS_2060-01-0[1].nc` (brackets are legal in keys and file names). Taken as a pattern it
    named `WRFDS_2060-01-01.nc` -- another object, served without a word -- or, alone, nothing. Now a source that
    names an object is that object; if it also matches others as a pattern, the scan stops naming them and how to
    write either meaning (locally the same: ScannerTests)."""
    s3 = services.boto3()
    literal = "WRFDS_2060-01-0[1].nc"
    for prefix in ("brackets-alone", "brackets-both"):
        s3.copy_object(Bucket=BUCKET, Key="%s/%s" % (prefix, literal), CopySource={"Bucket": BUCKET, "Key": "daily/2060/" + NAMES[4]})
    s3.copy_object(Bucket=BUCKET, Key="brackets-both/" + NAMES[0], CopySource={"Bucket": BUCKET, "Key": "daily/2060/" + NAMES[0]})
    refs, _ = scanner.ok(["s3://%s/brackets-alone/%s" % (BUCKET, literal)], "--endpoint-url", services.s3)
    assert refs.urls == {"s3://%s/brackets-alone/%s" % (BUCKET, literal)}, refs.urls
    p = scanner.scan(["s3://%s/brackets-both/%s" % (BUCKET, literal)], "--endpoint-url", services.s3)
    assert p.returncode != 0 and "names a file, but as a pattern it also matches" in p.stderr, p.stderr[-2000:]
    assert "brackets-both/" + NAMES[0] in p.stderr and "WRFDS_2060-01-0[[]1].nc" in p.stderr, p.stderr[-2000:]
    refs, _ = scanner.ok(["s3://%s/brackets-both/WRFDS_2060-01-0[[]1].nc" % BUCKET], "--endpoint-url", services.s3)
    assert refs.urls == {"s3://%s/brackets-both/%s" % (BUCKET, literal)}, refs.urls


def test_single_s3_key(scanner, services, world, local_refs):
    refs, _ = scanner.ok(["s3://%s/daily/2060/%s" % (BUCKET, NAMES[2])], "--endpoint-url", services.s3)
    assert_same_refs(local_refs((3,)), refs, "one explicit key")


def test_yaml_config_with_remote_sources(scanner, services, world, local_refs, tmp_path):
    signed = tmp_path / "s3.yaml"
    signed.write_text("sources:\n  - s3://%s/daily/2060/*.nc\nendpoint_url: %s\nregion: us-east-1\n"
                      "concat_dim: Time\n" % (BUCKET, services.s3))
    refs, _ = scanner.ok([str(signed)], concat=False)
    assert_same_refs(local_refs(), refs, "S3 mount config")
    anonymous = tmp_path / "public.yaml"
    anonymous.write_text("sources: ['s3://%s/daily/*.nc']\nendpoint_url: %s\nanonymous: true\nconcat_dim: Time\n"
                         % (PUBLIC, services.s3))
    refs, _ = scanner.ok([str(anonymous)], concat=False, env=scanner.env(credentials=False))
    assert_same_refs(local_refs(), refs, "anonymous S3 mount config")
    http = tmp_path / "http.yaml"
    http.write_text("sources:\n" + "".join("  - %s/wrf/%s\n" % (services.http, n) for n in NAMES)
                    + "concat_dim: Time\n")
    refs, _ = scanner.ok([str(http)], concat=False)
    assert_same_refs(local_refs(), refs, "HTTP mount config")


# ------------------------------------------------------------------ credentials

def test_anonymous_public_bucket(scanner, services, world, local_refs, proxies):
    fp = proxies(services.s3)
    env = scanner.env(credentials=False)
    refs, _ = scanner.ok(["s3://%s/daily/*.nc" % PUBLIC], "--endpoint-url", fp.url, "--anonymous", env=env)
    assert_same_refs(local_refs(), refs, "anonymous scan")
    assert refs.urls == {"s3://%s/daily/%s" % (PUBLIC, n) for n in NAMES}
    reqs = fp.requests()
    assert reqs
    for r in reqs:
        assert "authorization" not in r["h"] and "x-amz-security-token" not in r["h"], \
            "--anonymous sent credentials: %s %s" % (r["method"], r["target"])
        assert "X-Amz-Signature" not in r["target"]
    # --anonymous wins over credentials present in the environment
    fp2 = proxies(services.s3)
    scanner.ok(["s3://%s/daily/*.nc" % PUBLIC], "--endpoint-url", fp2.url, "--anonymous")
    assert not any("authorization" in r["h"] for r in fp2.requests())


def test_credentials_from_profile(scanner, services, world, local_refs, proxies, tmp_path):
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = default-secret\n\n"
                     "[zmtest]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret-456\n"
                     "aws_session_token = profile-token-789\n")
    fp = proxies(services.s3)
    env = scanner.env(credentials=False, AWS_PROFILE="zmtest", AWS_SHARED_CREDENTIALS_FILE=str(creds))
    refs, p = scanner.ok(["s3://%s/daily/2060/*.nc" % BUCKET], "--endpoint-url", fp.url, "--log-level", "trace",
                         env=env)
    assert_same_refs(local_refs(), refs, "scan with a profile's credentials")
    for r in fp.requests():
        check_signature(r, "AKIDPROFILE", "profile-secret-456", token="profile-token-789")
    assert_no_secret(p, refs, "profile-secret-456", "profile-token-789")

    # the default profile of ~/.aws/credentials when neither AWS_PROFILE nor a file is named
    os.makedirs(os.path.join(scanner.home, ".aws"), exist_ok=True)
    shutil.copy(creds, os.path.join(scanner.home, ".aws", "credentials"))
    try:
        fp2 = proxies(services.s3)
        scanner.ok(["s3://%s/daily/2060/%s" % (BUCKET, NAMES[0])], "--endpoint-url", fp2.url,
                   env=scanner.env(credentials=False))
        for r in fp2.requests():
            check_signature(r, "AKIDDEFAULT", "default-secret")
    finally:
        shutil.rmtree(os.path.join(scanner.home, ".aws"))


def test_region_and_requester_pays(scanner, services, world, local_refs, proxies):
    fp = proxies(services.s3)
    refs, _ = scanner.ok(["s3://%s/daily/2060/*.nc" % BUCKET], "--endpoint-url", fp.url, "--region", "eu-west-3",
                         "--requester-pays")
    assert_same_refs(local_refs(), refs, "scan with --region and --requester-pays")
    for r in fp.requests():
        check_signature(r, "testing", "testing", region="eu-west-3")
        assert r["h"].get("x-amz-request-payer") == "requester", "%s %s lacks x-amz-request-payer" % (
            r["method"], r["target"])


# ------------------------------------------------------------------ failures

def test_403_says_credentials(scanner, services, world, proxies):
    fp = proxies(services.s3, "--always", "403")
    p = scanner.scan(["s3://%s/daily/2060/*.nc" % BUCKET], "--endpoint-url", fp.url)
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert p.elapsed < 30
    err = p.stderr.lower()
    assert "403" in err or "accessdenied" in err or "access denied" in err, p.stderr[-2000:]
    assert "credentials" in err and "anonymous" in err, "a 403 should say: check credentials or --anonymous:\n" + \
        p.stderr[-2000:]
    assert len(fp.requests()) <= 3, "a 403 is not worth retrying (%d requests)" % len(fp.requests())


def test_404_names_the_key(scanner, services, world):
    key = "daily/2060/WRFDS_2099-12-31.nc"
    p = scanner.scan(["s3://%s/%s" % (BUCKET, key)], "--endpoint-url", services.s3)
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert key in p.stderr, "the error should name the key:\n" + p.stderr[-2000:]
    url = "%s/wrf/WRFDS_2099-12-31.nc" % services.http
    p = scanner.scan([url])
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert url in p.stderr or "/wrf/WRFDS_2099-12-31.nc" in p.stderr, p.stderr[-2000:]
    assert "404" in p.stderr or "not found" in p.stderr.lower(), p.stderr[-2000:]


def test_unreachable_endpoint(scanner, world):
    port = closed_port()
    p = scanner.scan(["s3://%s/daily/2060/*.nc" % BUCKET], "--endpoint-url", "http://127.0.0.1:%d" % port)
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert p.elapsed < 30, "gave up after %.1f s" % p.elapsed
    assert "127.0.0.1:%d" % port in p.stderr, "the error should name the endpoint:\n" + p.stderr[-2000:]
    port = closed_port()
    url = "http://127.0.0.1:%d/wrf/%s" % (port, NAMES[0])
    p = scanner.scan([url])
    assert p.returncode == 1 and p.elapsed < 30, (p.returncode, p.elapsed, p.stderr[-2000:])
    assert "127.0.0.1:%d" % port in p.stderr, p.stderr[-2000:]


@pytest.mark.parametrize("kind,status", [("s3", 503), ("s3", 500), ("http", 502), ("http", 504)])
def test_5xx_then_success(scanner, services, world, local_refs, proxies, kind, status):
    if kind == "s3":
        fp = proxies(services.s3, "--fail-first", "2", "--status", str(status))
        refs, _ = scanner.ok(["s3://%s/daily/2060/*.nc" % BUCKET], "--endpoint-url", fp.url)
    else:
        fp = proxies(services.http, "--fail-first", "2", "--status", str(status))
        refs, _ = scanner.ok(["%s/wrf/%s" % (fp.url, n) for n in NAMES])
    assert_same_refs(local_refs(), refs, "scan after %d %d responses" % (2, status))
    assert fp.injected().get("status-%d" % status) == 2


def test_retry_after_is_honoured(scanner, services, world, local_refs, proxies):
    fp = proxies(services.s3, "--fail-first", "1", "--status", "503", "--retry-after", "2")
    refs, p = scanner.ok(["s3://%s/daily/2060/*.nc" % BUCKET], "--endpoint-url", fp.url)
    assert_same_refs(local_refs(), refs, "scan after a 503 with Retry-After")
    reqs = fp.requests()
    first = reqs[0]
    again = [r for r in reqs[1:] if r["target"] == first["target"] and r["method"] == first["method"]]
    assert again, "the 503'd request was not retried"
    waited = again[0]["t"] - first["t"]
    assert waited >= 1.8, "retried %.2f s after a 503 with Retry-After: 2" % waited


FAULTS = ["--seed", "4", "--delay-rate", "0.3", "--delay-ms", "1-40", "--rate-503", "0.05", "--rate-5xx", "0.05",
          "--rate-slowdown", "0.04", "--rate-reset", "0.05", "--rate-truncate", "0.05",
          "--sequence", "reset,truncate,503,slowdown,5xx,truncate,reset", "--max-faults-per-request", "2"]


@pytest.mark.parametrize("kind", ["s3", "http"])
def test_faults_leave_the_result_identical(scanner, services, world, local_refs, proxies, kind):
    if kind == "s3":
        clean, _ = scanner.ok(["s3://%s/daily/2060/*.nc" % BUCKET], "--endpoint-url", services.s3)
        fp = proxies(services.s3, *FAULTS)
        refs, p = scanner.ok(["s3://%s/daily/2060/*.nc" % BUCKET], "--endpoint-url", fp.url)
    else:
        clean, _ = scanner.ok(["%s/wrf/%s" % (services.http, n) for n in NAMES])
        fp = proxies(services.http, *FAULTS)
        refs, p = scanner.ok(["%s/wrf/%s" % (fp.url, n) for n in NAMES])
    assert_same_refs(clean, refs, "%s scan through the fault proxy" % kind)
    assert_same_refs(local_refs(), refs, "%s scan through the fault proxy" % kind)
    reqs = fp.requests()
    injected = fp.injected()
    for fault in ("reset", "truncate", "503", "slowdown", "5xx", "delay"):
        assert injected.get(fault, 0) >= 1, "no %s was injected: %s" % (fault, injected)
    # every faulted request was sent again; the one GET for more ranges than nginx allows (the
    # probe, answered with the whole object and cut off before the fault) is asked again as
    # smaller GETs, so there each of its ranges must be asked again
    def ranges_of(r):
        return set(r["h"].get("range", "").replace("bytes=", "").split(","))
    for i, r in enumerate(reqs):
        if r["fault"] in ("reset", "truncate", "503", "slowdown", "5xx"):
            key = (r["method"], r["target"], r["h"].get("range"))
            if kind == "http" and len(ranges_of(r)) > 16:
                later = set().union(*[ranges_of(q) for q in reqs[i + 1:] if q["target"] == r["target"]])
                assert ranges_of(r) <= later, "ranges of the refused probe %s were not asked again" % (key,)
                continue
            assert any((q["method"], q["target"], q["h"].get("range")) == key for q in reqs[i + 1:]), \
                "%s %s (Range %s) failed with %s and was never retried" % (key + (r["fault"],))
    if kind == "s3":
        check_s3_validators(reqs, world["etags"])
    else:
        check_http_validators(reqs, services.http)


# ------------------------------------------------------------------ manifest cache

def test_manifest_cache(scanner, services, world, local_refs, proxies, tmp_path, archive):
    cache_dir = str(tmp_path / "manifests")
    source = "s3://%s/cache/*.nc" % CACHE_BUCKET
    fp1 = proxies(services.s3)
    first, _ = scanner.ok([source], "--endpoint-url", fp1.url, cache_dir=cache_dir)
    assert_same_refs(local_refs(), first, "first scan (cache empty)")
    assert len(object_gets(fp1.requests())) >= len(NAMES)

    fp2 = proxies(services.s3)
    second, _ = scanner.ok([source], "--endpoint-url", fp2.url, cache_dir=cache_dir)
    assert_same_refs(local_refs(), second, "second scan (all cached)")
    assert object_gets(fp2.requests()) == [], "an unchanged archive was read again: %s" % [
        r["target"] for r in object_gets(fp2.requests())]

    # change one object (same HDF5 content plus trailing bytes: a new ETag); only it is read again
    s3 = services.boto3()
    with open(archive[1], "rb") as fh:
        s3.put_object(Bucket=CACHE_BUCKET, Key="cache/" + NAMES[1], Body=fh.read() + b"\0" * 64)
    fp3 = proxies(services.s3)
    third, _ = scanner.ok([source], "--endpoint-url", fp3.url, cache_dir=cache_dir)
    assert_same_refs(local_refs(), third, "third scan (one object changed)")
    read = {posixpath.basename(r["path"]) for r in object_gets(fp3.requests())}
    assert read == {NAMES[1]}, "expected only the changed object to be read again, read %s" % sorted(read)


def test_http_listing_is_the_first_read_and_cached_files_get_a_head(scanner, services, world, local_refs, proxies, tmp_path):
    """Without a cached result, an HTTP URL is listed with a GET of its first 16 KiB (the size from Content-Range,
    the identity from ETag), which is also the scan's first read: no HEAD, and those bytes are not asked for again.
    With a cached result, a HEAD alone shows it is still valid."""
    cache_dir = str(tmp_path / "manifests")
    fp = proxies(services.http)
    purls = ["%s/wrf/%s" % (fp.url, n) for n in NAMES]
    refs, _ = scanner.ok(purls, cache_dir=cache_dir)
    assert_same_refs(local_refs(), refs, "http scan listed by first GETs")
    reqs = fp.requests()
    assert [r for r in reqs if r["method"] == "HEAD"] == [], "HEADs beside the first GETs"
    firsts = {}
    for r in reqs:
        firsts.setdefault(r["path"], r)
    assert len(firsts) == len(NAMES)
    for path, r in firsts.items():
        assert r["method"] == "GET" and r["h"].get("range") == "bytes=0-16383" and "if-match" not in r["h"], (path, r["h"])
    starts = [r for r in reqs if r["h"].get("range", "").startswith("bytes=0-")]
    assert len(starts) == len(NAMES), "a file's first bytes were fetched again: %s" % [r["h"]["range"] for r in starts]
    check_http_validators(reqs, services.http)

    before = len(reqs)
    again, _ = scanner.ok(purls, cache_dir=cache_dir)
    assert_same_refs(local_refs(), again, "http rescan from the manifest cache")
    later = fp.requests()[before:]
    assert sorted(r["method"] for r in later) == ["HEAD"] * len(NAMES), [(r["method"], r["target"]) for r in later]


# ------------------------------------------------------------------ mounts of remote archives

class Mounted:
    """`zarrmount mount` in the background (or --foreground under our control), always unmounted."""

    def __init__(self, cmd, env, path):
        self.cmd, self.env, self.path = cmd, env, path
        os.makedirs(path, exist_ok=True)

    def __enter__(self):
        return self

    def mount(self, args, timeout=SCAN_TIMEOUT):
        p = subprocess.run(list(self.cmd) + ["mount"] + list(args) + [self.path], capture_output=True, text=True,
                           timeout=timeout, env=self.env)
        assert p.returncode == 0, "mount %s failed:\n%s" % (" ".join(args), p.stderr[-3000:])
        return p

    def __exit__(self, *exc):
        subprocess.run(list(self.cmd) + ["unmount", self.path], capture_output=True, timeout=60)
        if os.path.ismount(self.path):
            subprocess.run(list(self.cmd) + ["unmount", "--lazy", self.path], capture_output=True, timeout=60)
        assert not os.path.ismount(self.path), "%s is still mounted" % self.path


def _assert_mount_equals_originals(mountpoint, files, fmt=2):
    import warnings
    import numpy as np
    import xarray as xr
    expected = wrf_originals(files)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        actual = xr.open_zarr(mountpoint, chunks=None, zarr_format=fmt)
    assert sorted(expected.variables) == sorted(actual.variables)
    for name in expected.variables:
        np.testing.assert_array_equal(expected[name].values, actual[name].values, err_msg=name)


@pytest.mark.parametrize("kind,mode,fmt", [("s3", "stored", 2), ("http", "decoded", 3)])
def test_mount_of_a_remote_archive_reads_like_the_originals(scanner, services, world, archive, local_refs, tmp_path,
                                                            kind, mode, fmt):
    require_fuse()
    if kind == "s3":
        args = ["s3://%s/daily/2060/*.nc" % BUCKET, "--endpoint-url", services.s3]
    else:
        args = ["%s/wrf/%s" % (services.http, n) for n in NAMES]
    args += ["--concat-dim", "Time", "--no-cache", "--zarr-format", str(fmt)] + (["--decoded"] if mode == "decoded" else [])
    with Mounted(scanner.cmd, scanner.env(), str(tmp_path / "mnt")) as m:
        m.mount(args)
        _assert_mount_equals_originals(m.path, archive, fmt)
        if mode == "stored":
            # a chunk file is the stored byte range of the original object
            for key in ["T2/0.0.0", "T2/4.0.0", "U/2.0.0.0"]:
                name, offset, length = local_refs().refs[key]
                with open(os.path.join(os.path.dirname(archive[0]), name), "rb") as f:
                    f.seek(offset)
                    stored = f.read(length)
                with open(os.path.join(m.path, key), "rb") as f:
                    assert f.read() == stored, key
        status = json.loads(subprocess.run(list(scanner.cmd) + ["status", m.path], capture_output=True, text=True,
                                           check=True).stdout)
        assert status["http"]["requests"] > 0 and status["reads"]["errors"] == 0
        assert status["decoded"] == (mode == "decoded")


def test_mount_of_a_manifest_in_s3_reads_like_the_originals_without_scanning(scanner, services, world, archive, tmp_path):
    require_fuse()
    manifest = str(tmp_path / "s3.zmf")
    p = subprocess.run(list(scanner.cmd) + ["scan", "s3://%s/daily/2060/*.nc" % BUCKET, "--endpoint-url", services.s3,
                                            "--concat-dim", "Time", "--no-cache", "--manifest", manifest],
                       capture_output=True, text=True, timeout=SCAN_TIMEOUT, env=scanner.env())
    assert p.returncode == 0, p.stderr
    services.boto3().upload_file(manifest, BUCKET, "manifests/all.zmf")
    location = "s3://%s/manifests/all.zmf" % BUCKET
    with Mounted(scanner.cmd, scanner.env(), str(tmp_path / "mnt")) as m:
        out = m.mount(["--manifest", location, "--endpoint-url", services.s3])
        assert "read manifest %s: 5 objects" % location in out.stderr and "scanned" not in out.stderr, out.stderr
        _assert_mount_equals_originals(m.path, archive)
    info = subprocess.run(list(scanner.cmd) + ["info", location, "--check", "--endpoint-url", services.s3], capture_output=True,
                          text=True, timeout=SCAN_TIMEOUT, env=scanner.env())
    assert info.returncode == 0 and "check: all 5 objects unchanged" in info.stdout, info.stdout + info.stderr
    assert "(5 ETag)" in info.stdout, info.stdout


def test_mount_of_references_served_over_http_checks_every_read(scanner, services, world, archive, tmp_path, proxies):
    require_fuse()
    urls = ["%s/wrf/%s" % (services.http, n) for n in NAMES]
    refs, _ = scanner.ok(urls)
    with open(os.path.join(world["www"], "refs.json"), "w") as fh:
        fh.write(refs.text)
    config = tmp_path / "refs.yaml"
    config.write_text("references: %s/wrf/refs.json\nzarr_format: 2\n" % services.http)
    with Mounted(scanner.cmd, scanner.env(), str(tmp_path / "mnt")) as m:
        p = m.mount([str(config)])
        assert "read references for 5 objects" in p.stderr, p.stderr
        _assert_mount_equals_originals(m.path, archive)
    # through the logging proxy: every ranged GET of a chunk carries the identity HEAD found
    fp = proxies(services.http)
    purls = ["%s/wrf/%s" % (fp.url, n) for n in NAMES]
    proxied = json.loads(refs.text.replace(services.http, fp.url))
    (tmp_path / "proxied.json").write_text(json.dumps(proxied))
    with Mounted(scanner.cmd, scanner.env(), str(tmp_path / "mnt2")) as m:
        refused = subprocess.run(list(scanner.cmd) + ["mount", "--references", str(tmp_path / "proxied.json"), m.path],
                                 capture_output=True, text=True, timeout=120, env=scanner.env())
        assert refused.returncode == 1 and "--allow-source" in refused.stderr and fp.url in refused.stderr, refused.stderr
        assert not os.path.ismount(m.path)
        m.mount(["--references", str(tmp_path / "proxied.json"), "--allow-source", fp.url + "/wrf/"])
        assert len(open(os.path.join(m.path, "T2", "3.0.0"), "rb").read()) > 0
    gets = [r for r in fp.requests() if r["method"] == "GET"]
    assert gets and all("if-match" in r["h"] or "if-unmodified-since" in r["h"] for r in gets), gets[:3]
    assert {r["path"] for r in fp.requests() if r["method"] == "HEAD"} == {urllib.parse.urlparse(u).path for u in purls}


def test_mount_of_references_stored_in_s3(scanner, services, world, archive, tmp_path):
    require_fuse()
    refs, _ = scanner.ok(["s3://%s/daily/2060/*.nc" % BUCKET], "--endpoint-url", services.s3)
    services.boto3().put_object(Bucket=BUCKET, Key="refs/wrf.json", Body=refs.text.encode())
    with Mounted(scanner.cmd, scanner.env(), str(tmp_path / "mnt")) as m:
        p = m.mount(["--references", "s3://%s/refs/wrf.json" % BUCKET, "--endpoint-url", services.s3, "--zarr-format", "3"])
        assert "read references for 5 objects" in p.stderr, p.stderr
        _assert_mount_equals_originals(m.path, archive, 3)
    missing = subprocess.run(list(scanner.cmd) + ["mount", "--references", "s3://%s/refs/nothing.json" % BUCKET,
                                                  "--endpoint-url", services.s3, str(tmp_path / "mnt")],
                             capture_output=True, text=True, timeout=120, env=scanner.env())
    assert missing.returncode == 1 and "refs/nothing.json" in missing.stderr, missing.stderr
    assert not os.path.ismount(str(tmp_path / "mnt"))


def test_the_s3_objects_a_reference_file_names_are_described_together(scanner, services, world, tmp_path, proxies):
    """A reference file (or an Icechunk snapshot) names its objects one by one; each takes a
    HEAD, and the HEADs go out together, not one round trip after another. Each HEAD is held
    for 1.5 s by the proxy: all five arrive before the first is answered."""
    refs, first = scanner.ok(["s3://%s/daily/2060/*.nc" % BUCKET], "--endpoint-url", services.s3)
    shutil.copy(first.out, str(tmp_path / "refs.json"))
    fp = proxies(services.s3, "--delay-rate", "1", "--delay-ms", "1500", "--only-methods", "HEAD")
    again = scanner.ok([], "--references", str(tmp_path / "refs.json"), "--endpoint-url", fp.url,
                       "--allow-source", "s3://%s/" % BUCKET, concat=False)[0]
    assert again.refs == refs.refs and again.urls == refs.urls
    heads = [r for r in fp.requests() if r["method"] == "HEAD"]
    assert sorted(r["path"].rsplit("/", 1)[1] for r in heads) == sorted(NAMES), heads
    arrivals = [r["t"] for r in heads]
    assert max(arrivals) - min(arrivals) < 1.5, "HEADs sent one after another: %s" % arrivals


def test_sigterm_and_unmount_with_reads_in_flight_end_cleanly(scanner, services, world, archive, tmp_path, proxies):
    """Chunk reads held for 2 s by the proxy: SIGTERM (and, on a second mount, a lazy unmount) while
    16 readers wait; the readers get the right bytes or an error, never hang, and the daemon exits 0."""
    require_fuse()
    refs, _ = scanner.ok(["%s/wrf/%s" % (services.http, n) for n in NAMES])
    fp = proxies(services.http, "--delay-rate", "1", "--delay-ms", "2000", "--only-methods", "GET")
    (tmp_path / "slow.json").write_text(refs.text.replace(services.http, fp.url))
    expected = {}
    for key in ["T2/%d.0.0" % t for t in range(5)]:
        name, offset, length = refs.refs[key]
        with open(os.path.join(os.path.dirname(archive[0]), name), "rb") as f:
            f.seek(offset)
            expected[key] = f.read(length)
    reader = ("import sys\n"
              "try:\n"
              "    data = open(sys.argv[1], 'rb').read()\n"
              "    sys.stdout.buffer.write(data)\n"
              "except OSError as e:\n"
              "    print('errno', e.errno, file=sys.stderr)\n"
              "    sys.exit(3)\n")
    for how in ("sigterm", "lazy-unmount"):
        mountpoint = str(tmp_path / ("mnt-" + how))
        os.makedirs(mountpoint)
        daemon = subprocess.Popen(list(scanner.cmd) + ["mount", "--references", str(tmp_path / "slow.json"), "--foreground",
                                                       "--allow-source", fp.url, mountpoint], stderr=subprocess.PIPE, text=True, env=scanner.env())
        try:
            deadline = time.monotonic() + 60
            while not os.path.ismount(mountpoint):
                assert daemon.poll() is None and time.monotonic() < deadline, "the daemon did not mount"
                time.sleep(0.05)
            keys = sorted(expected) * 4
            readers = [subprocess.Popen([sys.executable, "-c", reader, os.path.join(mountpoint, k)], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE) for k in keys]
            time.sleep(0.5)
            if how == "sigterm":
                daemon.terminate()
            else:
                u = subprocess.run(list(scanner.cmd) + ["unmount", "--lazy", mountpoint], capture_output=True, text=True,
                                   timeout=30)
                assert u.returncode == 0, u.stderr
            answered = 0
            for key, r in zip(keys, readers):
                out, err = r.communicate(timeout=30)
                if r.returncode == 0:
                    assert out == expected[key], "%s: a read in flight returned wrong bytes" % key
                    answered += 1
                else:
                    assert b"errno" in err, err
            if how == "lazy-unmount":
                daemon.terminate()
            assert daemon.wait(timeout=40) == 0, daemon.stderr.read()[-3000:]
            assert not os.path.ismount(mountpoint)
            assert answered > 0, "%s: no read in flight was answered" % how
        finally:
            if daemon.poll() is None:
                daemon.kill()
            subprocess.run(list(scanner.cmd) + ["unmount", mountpoint], capture_output=True, timeout=60)


# ------------------------------------------------------------------ confinement (issue 14)

def _refs_scan(scanner, location, *flags):
    """`zarrmount scan --references LOCATION`: converts references without mounting."""
    out = os.path.join(scanner.tmp, "confined-%d.json" % time.monotonic_ns())
    return subprocess.run(list(scanner.cmd) + ["scan", "--references", location, "--refs", out] + list(flags),
                          capture_output=True, text=True, timeout=SCAN_TIMEOUT, env=scanner.env())


def test_a_reference_file_served_over_http_may_name_only_objects_at_its_own_origin(scanner, services, world):
    refs, _ = scanner.ok(["%s/wrf/%s" % (services.http, n) for n in NAMES])
    os.makedirs(os.path.join(world["www"], "confine"), exist_ok=True)
    variants = {
        "home": refs.text,
        "away": refs.text.replace(services.http, services.http_stock),  # the same files, another port
        "local": refs.text.replace("%s/wrf/%s" % (services.http, NAMES[2]), "/etc/passwd"),
    }
    for name, text in variants.items():
        with open(os.path.join(world["www"], "confine", name + ".json"), "w") as fh:
            fh.write(text)
    home = _refs_scan(scanner, "%s/wrf/confine/home.json" % services.http)
    assert home.returncode == 0, home.stderr
    for name, named in (("away", services.http_stock + "/wrf/"), ("local", "/etc/passwd")):
        p = _refs_scan(scanner, "%s/wrf/confine/%s.json" % (services.http, name))
        assert p.returncode == 1, p.stderr
        assert "names %s" % named in p.stderr and "not allowed" in p.stderr and "--allow-source" in p.stderr, p.stderr
        assert re.search(r'key "[^"]+/[0-9.]+" names', p.stderr), "the error names the key: " + p.stderr
    allowed = _refs_scan(scanner, "%s/wrf/confine/away.json" % services.http, "--allow-source", services.http_stock + "/wrf")
    assert allowed.returncode == 0, allowed.stderr
    narrower = _refs_scan(scanner, "%s/wrf/confine/away.json" % services.http, "--allow-source", services.http_stock + "/other")
    assert narrower.returncode == 1 and "not allowed" in narrower.stderr, narrower.stderr


def test_redirects_are_followed_within_one_origin_and_never_to_another(scanner, services, world, local_refs):
    here, _ = scanner.ok(["%s/redirect-here/wrf/%s" % (services.http, n) for n in NAMES[:2]])
    assert_same_refs(local_refs((1, 2)), here, "a scan through same-origin redirects")
    away = "%s/redirect-away/wrf/%s" % (services.http, NAMES[0])
    p = scanner.scan([away])
    assert p.returncode == 1, p.stderr
    assert away in p.stderr and "redirected to %s/wrf/%s" % (services.http_stock, NAMES[0]) in p.stderr, p.stderr
    assert "another origin" in p.stderr, p.stderr


def _daemons_for(mountpoint, caller):
    """Pids of zarrmount processes other than CALLER whose command line names MOUNTPOINT: the
    daemon, a fork of the `mount` command (its command line) or a new program (--ready-file)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == caller:
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if mountpoint.encode() in argv and b"mount" in argv:
            found.append(int(pid))
    return found


@pytest.mark.parametrize("launch", ["fork", "exec"])
@pytest.mark.parametrize("signal_number", [15, 2], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_mount_during_the_scan_stops_the_daemon_too(scanner, services, world, tmp_path, proxies, signal_number, launch):
    """Both ways the daemon starts (Daemon.swift): a fork of the command, and a new program,
    which ZARRMOUNT_DAEMON_EXEC=1 chooses."""
    require_fuse()
    fp = proxies(services.http, "--delay-rate", "1", "--delay-ms", "60000")
    mountpoint = str(tmp_path / "stalled")
    os.makedirs(mountpoint)
    env = dict(scanner.env(), ZARRMOUNT_DAEMON_EXEC="1" if launch == "exec" else "0")
    mount = subprocess.Popen(list(scanner.cmd) + ["mount", "%s/wrf/%s" % (fp.url, NAMES[0]), "--no-cache", mountpoint],
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while not _daemons_for(mountpoint, mount.pid):
            assert mount.poll() is None and time.monotonic() < deadline, "no daemon started"
            time.sleep(0.05)
        time.sleep(0.5)  # the daemon is scanning, its first GET held by the proxy
        [daemon] = _daemons_for(mountpoint, mount.pid)
        with open("/proc/%d/cmdline" % daemon, "rb") as fh:
            assert (b"--ready-file" in fh.read().split(b"\0")) == (launch == "exec")
        mount.send_signal(signal_number)
        assert mount.wait(timeout=10) != 0
        deadline = time.monotonic() + 10
        while _daemons_for(mountpoint, mount.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _daemons_for(mountpoint, mount.pid) == [], "the daemon kept scanning after mount was stopped"
        assert not os.path.ismount(mountpoint)
        assert "stopped" in mount.stderr.read()
    finally:
        for pid in _daemons_for(mountpoint, mount.pid):
            os.kill(pid, 9)
        if mount.poll() is None:
            mount.kill()


def test_a_read_from_a_stalled_server_fails_within_the_timeout(scanner, services, world, archive, tmp_path, proxies):
    require_fuse()
    refs, _ = scanner.ok(["%s/wrf/%s" % (services.http, n) for n in NAMES])
    fp = proxies(services.http, "--delay-rate", "1", "--delay-ms", "60000", "--delay-after", str(len(NAMES)))
    (tmp_path / "stalled.json").write_text(refs.text.replace(services.http, fp.url))
    with Mounted(scanner.cmd, scanner.env(), str(tmp_path / "mnt")) as m:
        m.mount(["--references", str(tmp_path / "stalled.json"), "--allow-source", fp.url, "--timeout", "3",
                 "--log-file", str(tmp_path / "daemon.log")])
        started = time.monotonic()
        with pytest.raises(OSError) as failure:
            open(os.path.join(m.path, "T2", "2.0.0"), "rb").read()
        waited = time.monotonic() - started
        assert failure.value.errno == 110, failure.value  # ETIMEDOUT
        assert 2.5 < waited < 8, "the read failed after %.1f s with --timeout 3" % waited
        assert "--timeout" in (tmp_path / "daemon.log").read_text()


def test_verify_chunks_refuses_a_body_of_the_right_length_with_other_bytes_and_the_same_etag(scanner, services, world, archive,
                                                                                           tmp_path):
    """nginx's ETag is mtime-size: a file rewritten in place with its mtime restored keeps it, so
    If-Match passes. Without --verify-chunks the new bytes are served; with it, a zlib chunk
    whose Adler-32 fails is EIO and counted in status."""
    require_fuse()
    directory = os.path.join(world["www"], "verify")
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, NAMES[0])
    shutil.copy(archive[0], target)
    url = "%s/wrf/verify/%s" % (services.http, NAMES[0])
    refs, _ = scanner.ok([url])
    name, offset, length = refs.refs["T2/0.0.0"]
    _, q_offset, q_length = refs.refs["Q2/0.0.0"]
    assert q_offset + q_length <= offset or q_offset >= offset + length, "Q2's chunk is not the one corrupted"
    with Mounted(scanner.cmd, scanner.env(), str(tmp_path / "plain")) as plain, \
            Mounted(scanner.cmd, scanner.env(), str(tmp_path / "verified")) as verified:
        plain.mount([url, "--no-cache"])
        verified.mount([url, "--no-cache", "--verify-chunks"])
        with open(archive[0], "rb") as original:
            original.seek(q_offset)
            good = original.read(q_length)
        assert open(os.path.join(verified.path, "Q2", "0.0.0"), "rb").read() == good, "a chunk that passes is served"
        before = os.stat(target)
        with open(target, "r+b") as f:
            f.seek(offset + length // 2)
            middle = f.read(16)
            f.seek(offset + length // 2)
            f.write(bytes(b ^ 0x5A for b in middle))
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        with open(target, "rb") as f:
            f.seek(offset)
            corrupted = f.read(length)
        assert open(os.path.join(plain.path, "T2", "0.0.0"), "rb").read() == corrupted, "without the check: the server's bytes"
        with pytest.raises(OSError) as failure:
            open(os.path.join(verified.path, "T2", "0.0.0"), "rb").read()
        assert failure.value.errno == 5, failure.value
        status = json.loads(subprocess.run(list(scanner.cmd) + ["status", verified.path], capture_output=True, text=True,
                                           check=True).stdout)
        assert status["verify_chunks"] is True and status["reads"]["verify_failures"] >= 1, status


def test_https_verifies_certificates_takes_a_ca_bundle_and_multiplexes_over_http2(scanner, services, world, local_refs, tmp_path):
    https, ca = services.env["ZARRMOUNT_HTTPS_ROOT"], services.env["ZARRMOUNT_HTTPS_CA"]
    urls = ["%s/wrf/%s" % (https, n) for n in NAMES]
    refused = scanner.scan(urls[:1])
    assert refused.returncode == 1, refused.stderr
    assert "certificate" in refused.stderr and "--ca-bundle" in refused.stderr, refused.stderr
    wrong = scanner.scan(urls[:1], "--ca-bundle", "/etc/ssl/certs/ca-certificates.crt")
    assert wrong.returncode == 1 and "certificate" in wrong.stderr, wrong.stderr
    log = os.path.join(services.root, "tls-access.log")
    seen = os.path.getsize(log) if os.path.exists(log) else 0
    refs, _ = scanner.ok(urls, "--ca-bundle", ca)
    assert_same_refs(local_refs(), refs, "a scan over HTTPS")
    with open(log) as fh:
        fh.seek(seen)
        lines = [line.split() for line in fh if line.strip()]
    assert lines and all(protocol == "HTTP/2.0" for protocol, _, _ in lines), lines[:5]
    assert len({connection for _, connection, _ in lines}) < len(lines), "requests share HTTP/2 connections"
    from_environment, _ = scanner.ok(urls[:2], env=scanner.env(CURL_CA_BUNDLE=ca))
    assert_same_refs(local_refs((1, 2)), from_environment, "CURL_CA_BUNDLE")
    missing = scanner.scan(urls[:1], "--ca-bundle", str(tmp_path / "nothing.pem"))
    assert missing.returncode == 1 and "nothing.pem" in missing.stderr and "cannot be read" in missing.stderr, missing.stderr


# ------------------------------------------------------------------ the fault matrix (issue 14; tools/fault-matrix.py runs every rate)

@pytest.fixture(scope="session")
def matrix_inputs(scanner, services, world, archive, tmp_path_factory):
    """Clean references over HTTP (URLs as {{upstream}}), and the expected bytes of the matrix's chunk files."""
    refs, _ = scanner.ok(["%s/wrf/%s" % (services.http, n) for n in NAMES])
    work = str(tmp_path_factory.mktemp("matrix-expected"))
    raw = json.loads(refs.text)["refs"]
    expected = {mode: fault_matrix.expected_bytes(scanner.cmd[0], scanner.env(), archive, raw, mode, work)
                for mode in ("stored", "decoded")}
    return refs.text.replace(services.http, "{{upstream}}"), expected, refs.refs


@pytest.mark.parametrize("kind", ["503", "reset", "truncate", "stall", "whole", "wrong-length"])
def test_fault_matrix_at_30_percent_scans_are_identical_and_reads_right_or_an_errno(scanner, services, world, matrix_inputs,
                                                                                     tmp_path, kind):
    require_fuse()
    refs_text, expected, clean = matrix_inputs
    outcome, faults = fault_matrix.scan_case(scanner.cmd[0], scanner.env(), services.http, NAMES, clean, kind, 0.3, str(tmp_path))
    assert outcome in ("identical", "failed naming the file"), outcome
    assert faults > 0, "the proxy injected nothing"
    for mode in ("stored", "decoded"):
        work = tmp_path / mode
        work.mkdir()
        counts = fault_matrix.read_case(scanner.cmd[0], scanner.env(), services.http, refs_text, expected[mode], kind, 0.3, mode,
                                        str(work), listing_requests=len(NAMES))
        assert fault_matrix.acceptable(counts), (mode, counts)
        assert counts["faults"] > 0 and sum(v for k, v in counts.items() if k != "faults") == len(expected[mode]), counts
        if kind != "stall":
            assert counts.get("right", 0) == len(expected[mode]), "retries recover every read from %s: %s" % (kind, counts)


def test_an_object_deleted_after_the_scan_gives_estale_and_says_to_remount(scanner, services, world, archive, tmp_path):
    require_fuse()
    directory = os.path.join(world["www"], "gone")
    os.makedirs(directory, exist_ok=True)
    for name in NAMES[:2]:
        shutil.copy(archive[NAMES.index(name)], directory)
    config = tmp_path / "gone.yaml"
    config.write_text("sources:\n%s\nconcat_dim: Time\nno_cache: true\nverify_chunks: true\ntimeout: 7\n"
                      % "".join("  - %s/wrf/gone/%s\n" % (services.http, n) for n in NAMES[:2]))
    log = tmp_path / "daemon.log"
    with Mounted(scanner.cmd, scanner.env(), str(tmp_path / "mnt")) as m:
        m.mount([str(config), "--log-file", str(log)])
        status = json.loads(subprocess.run(list(scanner.cmd) + ["status", m.path], capture_output=True, text=True,
                                           check=True).stdout)
        assert status["verify_chunks"] is True and status["timeout_seconds"] == 7, "the config's mount keys apply"
        os.unlink(os.path.join(directory, NAMES[1]))
        with pytest.raises(OSError) as failure:
            open(os.path.join(m.path, "T2", "1.0.0"), "rb").read()
        assert failure.value.errno == 116, failure.value  # ESTALE, not EIO
        assert len(open(os.path.join(m.path, "T2", "0.0.0"), "rb").read()) > 0, "the other object is still served"
        text = log.read_text()
        assert "archive changed since the scan" in text and NAMES[1] in text, text


def test_unsigned_refusal_says_no_credentials_were_found(scanner, services, world):
    """Issue 15: a scan without credentials (and without --anonymous) that the server refuses says that
    no credentials were found, and what to set, whatever status the server chose."""
    p = scanner.scan(["s3://%s/daily/2060/*.nc" % BUCKET], "--endpoint-url", services.s3, env=scanner.env(credentials=False))
    if p.returncode == 0:
        pytest.fail("moto served a private bucket to an unsigned request; the test needs a refusal:\n" + p.stderr[-2000:])
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert "no AWS credentials were found" in p.stderr, p.stderr[-2000:]
    assert "AWS_ACCESS_KEY_ID" in p.stderr and "--anonymous" in p.stderr, p.stderr[-2000:]
    # With credentials, the same scan has no such hint.
    ok = scanner.scan(["s3://%s/daily/2060/*.nc" % BUCKET], "--endpoint-url", services.s3)
    assert ok.returncode == 0 and "no AWS credentials" not in ok.stderr, ok.stderr[-2000:]


def test_http_glob_says_http_has_no_listing(scanner, services, world):
    """Issue 15: an HTTP glob is not answered with the server's 404 but with what to do instead."""
    url = "%s/wrf/*.nc" % services.http
    p = scanner.scan([url])
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert url in p.stderr and "HTTP has no listing" in p.stderr, p.stderr[-2000:]
    assert "--urls" in p.stderr and "--url-template" in p.stderr, p.stderr[-2000:]
    # The URL's port may hold the digits 404 (CI met port 40443): look past it.
    assert "404" not in p.stderr.replace(services.http, ""), p.stderr[-2000:]


def test_netcdf3_archives_scan_over_http_and_s3_as_they_do_locally(scanner, services, world, tmp_path):
    """netCDF-3 files (classic, 64-bit offset, 64-bit data) from nginx and from moto give the
    references a local scan gives, URLs aside: the parser is chosen from the first bytes the
    listing GET (HTTP) or the first read (S3) brings."""
    from test_netcdf3 import write_day
    local = tmp_path / "nc3"
    local.mkdir()
    names = []
    for k, fmt in enumerate(["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA"]):
        name = "nc3_day_%02d.nc" % k
        write_day(str(local / name), k, fmt)
        names.append(name)
    www = os.path.join(services.www, "nc3")
    os.makedirs(www, exist_ok=True)
    s3 = services.boto3()
    for name in names:
        shutil.copy2(str(local / name), www)
        s3.upload_file(str(local / name), BUCKET, "nc3/" + name)
    expected, _ = scanner.ok([str(local / n) for n in names], "--concat-dim", "time", concat=False)
    assert any(k.startswith("t2/") and not k.endswith((".zarray", ".zattrs")) for k in expected.refs)
    refs, _ = scanner.ok(["%s/nc3/%s" % (services.http, n) for n in names], "--concat-dim", "time", concat=False)
    assert_same_refs(expected, refs, "netCDF-3 over HTTP")
    refs, _ = scanner.ok(["s3://%s/nc3/*.nc" % BUCKET], "--endpoint-url", services.s3, "--concat-dim", "time",
                         concat=False)
    assert_same_refs(expected, refs, "netCDF-3 over S3")


# ------------------------------------------------------------------ external raw data over HTTP

def test_external_raw_data_over_http_reads_sibling_urls_and_refuses_escapes(scanner, services):
    """An HDF5 file served over HTTP names its external raw-data files relative to itself: they
    are the sibling URLs, with the offsets a local scan gives; an absolute name or a `..` name is
    refused (a remote file cannot name a local file, nor leave its directory)."""
    import shutil
    from conftest import ensure_fixtures
    source = os.path.join(ensure_fixtures(), "external")
    www = os.path.join(services.www, "external-data")
    shutil.copytree(source, www, dirs_exist_ok=True)
    shutil.copy(os.path.join(os.path.dirname(source), "outside.bin"), services.www)
    base = services.http + "/external-data"
    p = scanner.scan([base + "/external-raw-data.h5"], concat=False)
    assert p.returncode == 0, p.stderr[-3000:]
    with open(p.out) as fh:
        refs = json.load(fh)["refs"]
    local = subprocess.run(list(scanner.cmd) + ["scan", os.path.join(source, "external-raw-data.h5"), "--no-cache",
                                                 "--refs", os.path.join(scanner.tmp, "external-local.json")],
                           capture_output=True, text=True, timeout=SCAN_TIMEOUT)
    assert local.returncode == 0, local.stderr
    with open(os.path.join(scanner.tmp, "external-local.json")) as fh:
        local_refs = json.load(fh)["refs"]
    chunks = {k: v for k, v in refs.items() if isinstance(v, list)}
    assert {k for k in chunks if k.startswith("multi/")} == {"multi/%d.0" % i for i in range(6)}
    for key, (url, offset, length) in chunks.items():
        lurl, loffset, llength = local_refs[key]
        assert url == base + "/" + os.path.basename(lurl), (key, url)
        assert (offset, length) == (loffset, llength), key
    assert "/unaligned left out" in p.stderr
    p = scanner.scan([base + "/external-raw-data-hostile.h5"], concat=False)
    assert p.returncode == 0, p.stderr[-3000:]
    with open(p.out) as fh:
        refs = json.load(fh)["refs"]
    assert not any(k.startswith(("absolute/", "dotdot/")) for k in refs), sorted(refs)
    assert "/absolute left out: raw data in external files: /etc/passwd cannot be used: a remote file's external files must be named relative to it" in p.stderr, p.stderr
    assert "/dotdot left out: raw data in external files: ../outside.bin (%s/../outside.bin) is not allowed: its path has . or .. segments" % base in p.stderr, p.stderr
