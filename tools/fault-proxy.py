#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1 in front of one upstream server (stdlib only).

    tools/fault-proxy.py --upstream http://127.0.0.1:PORT [--port 0] [--seed N] [--log FILE] [faults]

Prints `listening on PORT` on stdout once it accepts connections. Clients talk to it as to the
upstream itself (origin-form request targets, the Host header passed through unchanged, so S3
signatures made for the proxy's address stay as they were). Keep-alive and pipelined requests
are served in order on one upstream keep-alive connection per client connection.

Faults, each decided per request from one seeded random stream (rates are probabilities):
  --delay-rate R --delay-ms A[-B]   wait A (or uniformly A..B) ms before answering
  --delay-target TEXT               delay only requests whose target contains TEXT
  --delay-after N                   delay only requests after the first N (a listing, say)
  --rate-503 R [--retry-after S]    503 Service Unavailable (with `Retry-After: S` when given)
  --rate-5xx R                      500, 502 or 504
  --rate-slowdown R                 503 with an S3 <Code>SlowDown</Code> XML body
  --rate-reset R                    the upstream's headers and part of its body, then a TCP reset
  --rate-truncate R                 the upstream's headers (Content-Length / Content-Range intact)
                                    and part of its body, then a clean close
  --rate-whole R                    forward a GET without its Range header: the upstream's 200 with the
                                    whole object instead of a 206
  --rate-wrong-length R             a 206 whose body is shorter or longer than its Content-Range
                                    (Content-Length set to match the damaged body, so only the
                                    ranges tell)
  --sequence K1,K2,...              force these faults (503, 5xx, slowdown, reset, truncate, whole,
                                    wrong-length) on the
                                    first requests each applies to, before the random ones
  --max-faults-per-request N        a request (method, target, Range) is faulted at most N times
                                    (default 2), so a client that retries enough always succeeds
  --always STATUS                   answer every request with STATUS (403 and 404 with S3 XML errors)
  --fail-first N --status STATUS    answer the first N requests with STATUS, then pass through
  --only-methods GET,HEAD           fault only these methods (default: all)
  --strip-header NAME               leave this response header out of every answer (repeatable),
                                    e.g. ETag and Last-Modified for a server without either
Reset and truncate apply only to responses with a body of at least 2 bytes.

--log FILE writes one JSON line per request as it arrives: {"t", "conn", "seq", "method",
"target", "version", "headers": [[name, value], ...], "fault"} (headers exactly as received, in
order), flushed at once. The proxy exits after --max-seconds (default 600) and prints a summary
of the faults it injected on stderr.
"""
import argparse
import asyncio
import json
import os
import random
import signal
import socket
import struct
import sys
import time
import urllib.parse

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
              "expect"}
REASONS = {200: "OK", 206: "Partial Content", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
FAULT_KINDS = ("503", "5xx", "slowdown", "reset", "truncate", "whole", "wrong-length")
MAX_HEADER_BYTES = 64 * 1024


class BadRequest(Exception):
    pass


class Message:
    def __init__(self, start, headers):
        self.start = start          # request or status line, without CRLF
        self.headers = headers      # [(name, value)] as received

    def get(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def tokens(self, name):
        return {t.strip().lower() for k, v in self.headers if k.lower() == name.lower() for t in v.split(",")}


async def read_head(reader):
    """Read a request/status line and headers; None at a clean EOF before any byte."""
    lines = []
    size = 0
    while True:
        line = await reader.readline()
        if not line:
            if lines:
                raise BadRequest("connection closed inside a message head")
            return None
        size += len(line)
        if size > MAX_HEADER_BYTES:
            raise BadRequest("message head too large")
        if not line.endswith(b"\n"):
            raise BadRequest("connection closed inside a message head")
        line = line.rstrip(b"\r\n").decode("latin-1")
        if not lines and not line:
            continue  # tolerate stray CRLF between pipelined messages (RFC 9112 2.2)
        if not line:
            break
        lines.append(line)
    headers = []
    for h in lines[1:]:
        if h[:1] in (" ", "\t") and headers:  # obsolete line folding
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + h.strip())
            continue
        if ":" not in h:
            raise BadRequest("malformed header line %r" % h)
        k, v = h.split(":", 1)
        headers.append((k.strip(), v.strip()))
    return Message(lines[0], headers)


async def read_body(reader, msg, is_response=False, request_method=None, status=None):
    """The complete body of MSG (de-chunked). For responses without a length, reads to EOF."""
    if is_response:
        if request_method == "HEAD" or status in (204, 304) or 100 <= (status or 0) < 200:
            return b"", True
    te = msg.tokens("transfer-encoding")
    if "chunked" in te:
        out = bytearray()
        while True:
            line = await reader.readline()
            if not line.endswith(b"\n"):
                raise BadRequest("connection closed inside a chunked body")
            n = int(line.split(b";")[0].strip() or b"0", 16)
            if n == 0:
                while True:  # trailers
                    t = await reader.readline()
                    if not t.endswith(b"\n"):
                        raise BadRequest("connection closed inside chunked trailers")
                    if t in (b"\r\n", b"\n"):
                        break
                return bytes(out), True
            out += await reader.readexactly(n)
            await reader.readexactly(2)
    cl = msg.get("content-length")
    if cl is not None:
        n = int(cl)
        return (await reader.readexactly(n)) if n else b"", True
    if is_response:
        return await reader.read(), False  # delimited by close
    return b"", True


def s3_error(status, code, message, resource=""):
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            '<Resource>%s</Resource><RequestId>FAULTPROXY0000001</RequestId></Error>' % (code, message, resource))
    return status, [("Content-Type", "application/xml")], body.encode()


def canned(status, target, retry_after=None):
    path = urllib.parse.urlsplit(target).path
    if status == 403:
        st, hdrs, body = s3_error(403, "AccessDenied", "Access Denied", path)
    elif status == 404:
        st, hdrs, body = s3_error(404, "NoSuchKey", "The specified key does not exist.", path)
    elif status == "slowdown":
        st, hdrs, body = s3_error(503, "SlowDown", "Please reduce your request rate.", path)
    elif status == 503:
        st, hdrs, body = s3_error(503, "ServiceUnavailable", "Service is unable to handle request.", path)
    else:
        st, hdrs, body = s3_error(status, "InternalError", "We encountered an internal error. Please try again.",
                                  path)
    if retry_after is not None and st in (503, 429):
        hdrs.append(("Retry-After", str(retry_after)))
    return st, hdrs, body


class Proxy:
    def __init__(self, args):
        self.args = args
        up = urllib.parse.urlsplit(args.upstream)
        if up.scheme != "http" or not up.hostname:
            sys.exit("fault-proxy: --upstream must be http://HOST:PORT")
        self.up_host, self.up_port = up.hostname, up.port or 80
        self.rng = random.Random(args.seed)
        self.sequence = [s for s in (args.sequence.split(",") if args.sequence else []) if s]
        for s in self.sequence:
            if s not in FAULT_KINDS:
                sys.exit("fault-proxy: --sequence: unknown fault %r (one of %s)" % (s, ", ".join(FAULT_KINDS)))
        self.only = {m.strip().upper() for m in args.only_methods.split(",")} if args.only_methods else None
        self.strip = {name.lower() for name in args.strip_header}
        self.faults_per_key = {}
        self.counts = {}
        self.requests = 0
        self.conn_ids = 0
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.writers = set()

    # ---------------------------------------------------------------- decisions

    def count(self, kind):
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def decide(self, req, method, target):
        """(fault, delay seconds). fault: None, "always", "fail-first", or one of FAULT_KINDS;
        reset/truncate are only tentative here (they need a body) and confirmed in apply."""
        a = self.args
        self.requests += 1
        if a.always:
            return "always", 0.0
        if a.fail_first and self.requests <= a.fail_first:
            return "fail-first", 0.0
        # draw every random number every time so one request's outcome does not shift the next's
        r_delay, r_fault, r_kind, r_ms = (self.rng.random() for _ in range(4))
        delay = 0.0
        if r_delay < a.delay_rate and self.requests > a.delay_after and (not a.delay_target or a.delay_target in target):
            lo, hi = a.delay_range
            delay = (lo + (hi - lo) * r_ms) / 1000.0
        if self.only is not None and method not in self.only:
            return None, delay
        key = (method, target, req.get("range"))
        if self.faults_per_key.get(key, 0) >= a.max_faults_per_request:
            return None, delay
        fault = None
        for i, s in enumerate(self.sequence):
            if s in ("reset", "truncate") and method == "HEAD":
                continue
            fault = self.sequence.pop(i)
            break
        if fault is None:
            rates = [("503", a.rate_503), ("5xx", a.rate_5xx), ("slowdown", a.rate_slowdown),
                     ("reset", a.rate_reset), ("truncate", a.rate_truncate), ("whole", a.rate_whole),
                     ("wrong-length", a.rate_wrong_length)]
            acc = 0.0
            for kind, rate in rates:
                acc += rate
                if r_fault < acc:
                    fault = kind
                    break
        if fault in ("reset", "truncate", "whole", "wrong-length") and method == "HEAD":
            fault = None
        if fault == "whole" and req.get("range") is None:
            fault = None
        if fault:
            self.faults_per_key[key] = self.faults_per_key.get(key, 0) + 1
        return fault, delay

    # ---------------------------------------------------------------- connections

    async def handle(self, creader, cwriter):
        self.conn_ids += 1
        conn = self.conn_ids
        self.writers.add(cwriter)
        up = None  # (reader, writer) to the upstream, kept alive across requests
        seq = 0
        try:
            while True:
                try:
                    req = await read_head(creader)
                except (BadRequest, ConnectionError, asyncio.IncompleteReadError):
                    break
                if req is None:
                    break
                seq += 1
                parts = req.start.split(" ")
                if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                    await self.send_simple(cwriter, 400, [], b"bad request line\n", close=True)
                    break
                method, target, version = parts
                if req.get("expect", "").lower() == "100-continue":
                    cwriter.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                try:
                    body, _ = await read_body(creader, req)
                except (BadRequest, ValueError, asyncio.IncompleteReadError, ConnectionError):
                    break
                fault, delay = self.decide(req, method, target)
                if self.log:
                    self.log.write(json.dumps({"t": round(time.time(), 6), "conn": conn, "seq": seq, "method": method,
                                               "target": target, "version": version, "headers": req.headers,
                                               "fault": fault, "delay_ms": round(delay * 1000, 3)}) + "\n")
                client_close = ("close" in req.tokens("connection")) or (
                    version == "HTTP/1.0" and "keep-alive" not in req.tokens("connection"))
                if delay:
                    self.count("delay")
                    await asyncio.sleep(delay)
                a = self.args
                if fault in ("always", "fail-first", "503", "5xx", "slowdown"):
                    if fault == "always":
                        status = a.always
                    elif fault == "fail-first":
                        status = a.status
                    elif fault == "503":
                        status = 503
                    elif fault == "5xx":
                        status = self.rng.choice((500, 502, 504))
                    else:
                        status = "slowdown"
                    st, hdrs, rbody = canned(status, target, a.retry_after)
                    self.count(fault if fault in FAULT_KINDS else "status-%d" % st)
                    if method == "HEAD":
                        hdrs = hdrs + [("Content-Length", str(len(rbody)))]
                        rbody = None
                    await self.send_simple(cwriter, st, hdrs, rbody, close=client_close)
                    if client_close:
                        break
                    continue
                # pass through (possibly damaging the body)
                try:
                    if up is None:
                        up = await asyncio.open_connection(self.up_host, self.up_port)
                    sent = req
                    if fault == "whole":
                        self.count(fault)
                        sent = Message(req.start, [(k, v) for k, v in req.headers if k.lower() != "range"])
                    resp, rbody, up_keep = await self.forward(up, sent, method, target, body)
                except (OSError, BadRequest, ValueError, asyncio.IncompleteReadError) as e:
                    if up:
                        up[1].close()
                    up = None
                    await self.send_simple(cwriter, 502, [("Content-Type", "text/plain")],
                                           ("fault-proxy: upstream error: %s\n" % e).encode(), close=True)
                    break
                if not up_keep:
                    up[1].close()
                    up = None
                status = int(resp.start.split(" ")[1])
                hdrs = [(k, v) for k, v in resp.headers if k.lower() not in HOP_BY_HOP and k.lower() not in self.strip]
                if not any(k.lower() == "content-length" for k, _ in hdrs) and rbody is not None:
                    if not (method == "HEAD" or status in (204, 304)):
                        hdrs.append(("Content-Length", str(len(rbody))))
                if fault in ("reset", "truncate") and (method == "HEAD" or len(rbody) < 2):
                    fault = None  # nothing to cut; not counted
                if fault == "wrong-length":
                    if status == 206 and rbody and len(rbody) >= 2:
                        self.count(fault)
                        if self.rng.random() < 0.5:
                            rbody = rbody[:self.rng.randint(1, len(rbody) - 1)]
                        else:
                            rbody = rbody + bytes(self.rng.randint(1, 64))
                        hdrs = [(k, v) for k, v in hdrs if k.lower() != "content-length"] + [("Content-Length", str(len(rbody)))]
                    fault = None
                if fault in ("reset", "truncate"):
                    self.count(fault)
                    cut = self.rng.randint(1, len(rbody) - 1) if len(rbody) > 2 else 1
                    cwriter.write(self.head_bytes(resp.start, hdrs, close=False) + rbody[:cut])
                    try:
                        await cwriter.drain()
                    except ConnectionError:
                        pass
                    if fault == "reset":
                        self.reset(cwriter)
                    else:
                        cwriter.close()
                    return
                cwriter.write(self.head_bytes(resp.start, hdrs, close=client_close))
                if rbody and method != "HEAD":
                    cwriter.write(rbody)
                await cwriter.drain()
                if client_close:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.writers.discard(cwriter)
            if up:
                up[1].close()
            if not cwriter.is_closing():
                cwriter.close()

    async def forward(self, up, req, method, target, body):
        reader, writer = up
        hdrs = [(k, v) for k, v in req.headers if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
        if body or method in ("PUT", "POST"):
            hdrs.append(("Content-Length", str(len(body))))
        out = ["%s %s HTTP/1.1" % (method, target)] + ["%s: %s" % kv for kv in hdrs] + ["Connection: keep-alive", "", ""]
        writer.write("\r\n".join(out).encode("latin-1") + body)
        await writer.drain()
        while True:
            resp = await read_head(reader)
            if resp is None:
                raise BadRequest("upstream closed the connection without answering")
            status = int(resp.start.split(" ")[1])
            if 100 <= status < 200:
                continue
            break
        rbody, delimited = await read_body(reader, resp, is_response=True, request_method=method, status=status)
        keep = delimited and "close" not in resp.tokens("connection") and resp.start.startswith("HTTP/1.1")
        return resp, rbody, keep

    @staticmethod
    def head_bytes(start, hdrs, close):
        lines = [start] + ["%s: %s" % kv for kv in hdrs] + ["Connection: %s" % ("close" if close else "keep-alive"), "", ""]
        return "\r\n".join(lines).encode("latin-1")

    async def send_simple(self, writer, status, hdrs, body, close):
        hdrs = list(hdrs)
        if body is not None:
            hdrs.append(("Content-Length", str(len(body))))
        writer.write(self.head_bytes("HTTP/1.1 %d %s" % (status, REASONS.get(status, "Error")), hdrs, close) + (body or b""))
        try:
            await writer.drain()
        except ConnectionError:
            pass
        if close:
            writer.close()

    @staticmethod
    def reset(writer):
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        writer.transport.abort()

    def summary(self):
        parts = ["%s %d" % kv for kv in sorted(self.counts.items())]
        return "fault-proxy: %d requests; injected: %s" % (self.requests, ", ".join(parts) or "nothing")


def parse_delay(text):
    if "-" in text:
        a, b = text.split("-", 1)
        return float(a), float(b)
    return float(text), float(text)


async def run(args):
    proxy = Proxy(args)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", args.port, limit=MAX_HEADER_BYTES * 2,
                                        backlog=1024)
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as fh:
            fh.write("%d\n" % port)
        os.replace(args.port_file + ".tmp", args.port_file)
    print("listening on %d" % port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.max_seconds)
    except asyncio.TimeoutError:
        sys.stderr.write("fault-proxy: --max-seconds %g reached; exiting\n" % args.max_seconds)
    server.close()
    for w in list(proxy.writers):
        w.transport.abort()
    sys.stderr.write(proxy.summary() + "\n")
    if proxy.log:
        proxy.log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--upstream", required=True, metavar="http://127.0.0.1:PORT")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: any free port)")
    ap.add_argument("--port-file", help="also write the port to this file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", metavar="FILE", help="JSON lines, one per request")
    ap.add_argument("--max-seconds", type=float, default=600.0)
    ap.add_argument("--delay-rate", type=float, default=0.0)
    ap.add_argument("--delay-ms", type=parse_delay, default=(0.0, 0.0), dest="delay_range", metavar="A[-B]")
    ap.add_argument("--delay-target", default="", metavar="TEXT")
    ap.add_argument("--delay-after", type=int, default=0, metavar="N")
    ap.add_argument("--rate-503", type=float, default=0.0)
    ap.add_argument("--retry-after", type=int, default=None, metavar="S")
    ap.add_argument("--rate-5xx", type=float, default=0.0)
    ap.add_argument("--rate-slowdown", type=float, default=0.0)
    ap.add_argument("--rate-reset", type=float, default=0.0)
    ap.add_argument("--rate-truncate", type=float, default=0.0)
    ap.add_argument("--rate-whole", type=float, default=0.0)
    ap.add_argument("--rate-wrong-length", type=float, default=0.0)
    ap.add_argument("--sequence", default="", metavar="K1,K2,...")
    ap.add_argument("--max-faults-per-request", type=int, default=2, metavar="N")
    ap.add_argument("--always", type=int, default=0, metavar="STATUS")
    ap.add_argument("--fail-first", type=int, default=0, metavar="N")
    ap.add_argument("--status", type=int, default=503, help="status of --fail-first (default 503)")
    ap.add_argument("--only-methods", default="", metavar="GET,HEAD")
    ap.add_argument("--strip-header", action="append", default=[], metavar="NAME")
    args = ap.parse_args()
    total = (args.rate_503 + args.rate_5xx + args.rate_slowdown + args.rate_reset + args.rate_truncate + args.rate_whole
             + args.rate_wrong_length)
    if total > 1.0:
        ap.error("fault rates add up to more than 1")
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
