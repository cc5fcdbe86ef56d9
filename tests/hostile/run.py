#!/usr/bin/env python3
"""run.py - the hostile regression table: sends each case of tests/hostile/cases/ to a running
antennad over raw TLS and checks the answer. Never changes a case's expectation at run time and
never reports a case it could not run as passing.

Usage: run.py --url https://127.0.0.1:PORT --ca CA.pem --vars VARS.json [--only REGEX]
              [--results FILE] [--pace SECONDS] CASES_DIR

VARS.json maps names to values: tokens ("token.admin", "token.alice", ...) and anything a case
refers to as {name} in its target, headers, body or raw bytes (e.g. {alice_job}, {host}).

One case = one JSON file (see tests/hostile/README.md for every field):
  {"about": "...", "as": "none|admin|alice|bob|manager|garbage|revoked-now|...",
   "method": "GET", "target": "/v1/jobs/{alice_job}", "headers": [["Name", "value"], ...],
   "json": ..., "body": "...", "repeat": {"text": "a", "times": N}, "raw": "...",
   "kind": "http|tls|slowloris|burst|stream|headers_only",
   "expect": {"status": 404 or [400, 505], "code": "not_found", "no_body": true, ...},
   "hole": "issue 8: ..."}
Prints a table (case, expected, got, ok) and exits 1 when a case fails.
"""
import argparse
import json
import os
import re
import socket
import ssl
import sys
import time
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)  # TLS 1.0/1.1 are probed on purpose

TIMEOUT = 10.0


class Outcome(Exception):
    """Raised with what was observed when a case cannot get an HTTP answer."""


def subst(text, env):
    """Replaces {name} with env[name]; an unknown name is an error (the case is wrong)."""
    def one(m):
        key = m.group(1)
        if key not in env:
            raise KeyError("unknown variable {%s}" % key)
        return str(env[key])
    return re.sub(r"\{([a-z][a-z0-9_.]*)\}", one, text)


def expand(value, env):
    """Decodes a case string: {name} variables, then {repeat:N:TEXT} runs."""
    value = subst(value, env)
    return re.sub(r"\[\[repeat:(\d+):(.*?)\]\]", lambda m: m.group(2) * int(m.group(1)), value,
                  flags=re.S)


class Target:
    def __init__(self, url, ca):
        m = re.match(r"https://([^:/]+):(\d+)", url)
        if not m:
            raise SystemExit("run.py: --url must be https://HOST:PORT")
        self.host, self.port = m.group(1), int(m.group(2))
        self.ca = ca

    def context(self, minv=None, maxv=None, ciphers=None):
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.check_hostname = False  # the dev certificate names localhost; the CA is pinned
        if minv is not None or maxv is not None:
            # Python's default context refuses TLS < 1.2; the probe must be able to offer it.
            ctx.minimum_version = minv or ssl.TLSVersion.MINIMUM_SUPPORTED
            ctx.maximum_version = maxv or ssl.TLSVersion.MAXIMUM_SUPPORTED
            if minv is not None and minv < ssl.TLSVersion.TLSv1_2:
                ctx.set_ciphers("ALL:@SECLEVEL=0")
        if ciphers:
            ctx.set_ciphers(ciphers)
        return ctx

    def connect(self, peer, ctx=None):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(TIMEOUT)
        if peer:
            raw.bind((peer, 0))
        raw.connect((self.host, self.port))
        return (ctx or self.context()).wrap_socket(raw, server_hostname="localhost")


def read_response(sock, deadline=TIMEOUT):
    """Reads one HTTP answer; returns (status, headers{lower: value}, body bytes)."""
    sock.settimeout(deadline)
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            chunk = sock.recv(65536)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
            raise Outcome("closed (%s)" % type(e).__name__) from e
        except socket.timeout as e:
            raise Outcome("no answer in %.0f s" % deadline) from e
        if not chunk:
            raise Outcome("closed without an answer" if not buf else "truncated answer")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        raise Outcome("not an HTTP answer: %r" % lines[0][:60])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(m.group(1))
    want = int(headers.get("content-length", "0") or 0)
    if status != 204:
        while len(body) < want:
            try:
                chunk = sock.recv(65536)
            except (ssl.SSLError, OSError, socket.timeout):
                break
            if not chunk:
                break
            body += chunk
    return status, headers, body


def build_request(case, env):
    """The request bytes of a case: its raw bytes, or a request built from its fields."""
    if "raw" in case:
        return expand(case["raw"], env).encode("latin-1")
    method = case.get("method", "GET")
    target = expand(case.get("target", "/"), env)
    version = case.get("version", "HTTP/1.1")
    headers = [("Host", env.get("host", "localhost"))]
    token = token_of(case, env)
    if token:
        headers.append(("Authorization", "Bearer " + token))
    body = b""
    if "json" in case:
        body = json.dumps(case["json"]).encode()
    elif "body" in case:
        body = expand(case["body"], env).encode("utf-8")
    if "repeat" in case:
        r = case["repeat"]
        body = (expand(r.get("before", ""), env) + expand(r["text"], env) * r["times"] +
                expand(r.get("after", ""), env)).encode("utf-8")
    if body and not case.get("no_content_type"):
        headers.append(("Content-Type", "application/json"))
    for name, value in case.get("headers", []):
        headers.append((name, expand(value, env)))
    if body and not any(n.lower() in ("content-length", "transfer-encoding") for n, _ in headers):
        headers.append(("Content-Length", str(len(body))))
    headers.append(("Connection", "close"))
    lines = ["%s %s %s" % (method, target, version)] + ["%s: %s" % h for h in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def token_of(case, env):
    who = case.get("as", "none")
    if who == "none":
        return None
    key = "token." + who
    if key not in env:
        raise KeyError("no token for %r (VARS has no %s)" % (who, key))
    return env[key]


def send_all(sock, data):
    """Sends data; a server that answers early and closes may cut it short (not an error)."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
        return False


# --- kinds ---------------------------------------------------------------------------------------

def run_http(t, case, env, peer):
    sock = t.connect(peer)
    try:
        send_all(sock, build_request(case, env))
        return read_response(sock)
    finally:
        sock.close()


def run_headers_only(t, case, env, peer):
    """Sends the request without its body (only the headers, which announce one) and waits for an
    answer within expect.within seconds."""
    req = build_request(case, env)
    head = req.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    sock = t.connect(peer)
    try:
        send_all(sock, head)
        return read_response(sock, case["expect"].get("within", 3))
    finally:
        sock.close()


def run_stream(t, case, env, peer):
    """Sends the headers and `stream.first` (raw, optional), then the chunk `stream.chunk`
    (expanded) up to `stream.total` bytes, each framed as a chunk unless stream.raw; reads the
    answer (the server may answer before the end)."""
    s = case["stream"]
    req = build_request(case, env)
    head = req.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    first = expand(s.get("first", ""), env).encode("latin-1")
    piece = expand(s["chunk"], env).encode("latin-1")
    framed = piece if s.get("raw") else b"%x\r\n%s\r\n" % (len(piece), piece)
    sock = t.connect(peer)
    try:
        send_all(sock, head + first)
        sent = 0
        while sent < s["total"]:
            if not send_all(sock, framed):
                break
            sent += len(piece)
        else:
            if not s.get("raw"):
                send_all(sock, b"0\r\n\r\n")
        return read_response(sock)
    finally:
        sock.close()


def run_burst(t, case, env, peer):
    """Sends the request `burst` times (one connection each) and returns the last answer; with
    `burst_until` (a status), stops at the first answer with that status (a limit counted per
    calendar minute may reset in the middle of a burst: give burst room for two windows)."""
    answer = None
    until = case.get("burst_until")
    for _ in range(case["burst"]):
        try:
            answer = run_http(t, case, env, peer)
        except Outcome as e:
            answer = e
        if until is not None and isinstance(answer, tuple) and answer and answer[0] == until:
            break
    if isinstance(answer, Outcome):
        raise answer
    return answer


def run_tls(t, case, env, peer):
    """A handshake with the versions/ciphers of case.tls; returns "handshake ok" or "handshake
    failed" as the observation."""
    spec = case["tls"]
    versions = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
                "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
    v = versions[spec["version"]]
    try:
        ctx = t.context(minv=v, maxv=v, ciphers=spec.get("ciphers"))
    except ssl.SSLError as e:  # not a verdict on the server: the case fails
        return "the client cannot offer it (%s)" % e.reason
    try:
        sock = t.connect(peer, ctx)
    except ssl.SSLError as e:
        return "handshake failed (%s)" % (e.reason or e)
    except (ConnectionResetError, OSError) as e:
        return "handshake failed (%s)" % type(e).__name__
    try:
        return "handshake ok (%s, %s)" % (sock.version(), sock.cipher()[0])
    finally:
        sock.close()


def run_slowloris(t, case, env, peer):
    """Trickles the request (one byte every `slow.every` seconds, never finishing the headers) and
    reports when the server closed, or that it was still open after `slow.limit` seconds."""
    s = case["slow"]
    data = build_request(case, env)
    sock = t.connect(peer)
    start = time.monotonic()
    try:
        for i in range(len(data) - 4):  # never the final CRLFCRLF
            if time.monotonic() - start > s["limit"]:
                return "still open after %d s" % s["limit"]
            if not send_all(sock, data[i:i + 1]):
                return "closed after %.0f s" % (time.monotonic() - start)
            sock.settimeout(s["every"])
            try:
                got = sock.recv(4096)
                if not got:
                    return "closed after %.0f s" % (time.monotonic() - start)
                if got.startswith(b"HTTP/1."):
                    return "answered %s and closed after %.0f s" % (
                        got[9:12].decode(), time.monotonic() - start)
            except socket.timeout:
                pass
            except (ssl.SSLError, ConnectionResetError, OSError):
                return "closed after %.0f s" % (time.monotonic() - start)
        return "still open after sending it all"
    finally:
        sock.close()


KINDS = {"http": run_http, "headers_only": run_headers_only, "stream": run_stream,
         "burst": run_burst, "tls": run_tls, "slowloris": run_slowloris}


# --- checking ------------------------------------------------------------------------------------

def expected_text(exp):
    if "observe" in exp:
        return exp["observe"]
    st = exp.get("status")
    s = "/".join(map(str, st)) if isinstance(st, list) else str(st)
    if exp.get("code"):
        s += " " + exp["code"]
    if exp.get("no_body"):
        s += " no body"
    if exp.get("not_status"):
        s = "not %s" % exp["not_status"] + ("" if st is None else " " + s)
    return s


def check(case, got):
    """Returns (ok, got_text)."""
    exp = case["expect"]
    if isinstance(got, str):
        ok = "observe" in exp and re.match(exp["observe"], got) is not None
        return ok, got
    status, headers, body = got
    code = ""
    try:
        code = json.loads(body.decode("utf-8")).get("error", {}).get("code", "")
    except (ValueError, AttributeError, UnicodeDecodeError):
        pass
    text = "%d %s" % (status, code) if code else str(status)
    if "observe" in exp:
        return False, text
    ok = True
    want = exp.get("status")
    if want is not None:
        ok &= status in want if isinstance(want, list) else status == want
    if "not_status" in exp:
        ok &= status != exp["not_status"]
    if exp.get("code"):
        ok &= code == exp["code"]
    if exp.get("no_body"):
        ok &= len(body) == 0 and "content-length" in headers
        if body:
            text += " with %d body bytes" % len(body)
    for name, value in exp.get("headers", {}).items():
        have = headers.get(name.lower())
        ok &= have is not None and (value == "*" or have == value)
        if have is None:
            text += " no " + name
    if exp.get("absent") and exp["absent"].encode() in body:
        ok = False
        text += " (body has %r)" % exp["absent"]
    if exp.get("contains") and exp["contains"].encode() not in body:
        ok = False
        text += " (body lacks %r)" % exp["contains"]
    return ok, text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--vars", required=True)
    ap.add_argument("--only")
    ap.add_argument("--results", help="also write one line per case: ok|FAIL NAME")
    ap.add_argument("--pace", type=float, default=0.05, help="seconds between cases")
    ap.add_argument("cases")
    args = ap.parse_args()
    t = Target(args.url, args.ca)
    with open(args.vars) as f:
        env = json.load(f)
    env.setdefault("host", "%s:%d" % (t.host, t.port))
    names = sorted(n for n in os.listdir(args.cases) if n.endswith(".json"))
    if args.only:
        names = [n for n in names if re.search(args.only, n)]
    rows, failed = [], []
    for i, name in enumerate(names):
        with open(os.path.join(args.cases, name)) as f:
            case = json.load(f)
        # Each case speaks from its own loopback address, so that per-peer limits (failed
        # authentications, connections) of one case never decide another case's answer.
        peer = case.get("peer", "127.0.1.%d" % (i % 250 + 1))
        if t.host != "127.0.0.1":
            peer = None
        try:
            got = KINDS[case.get("kind", "http")](t, case, env, peer)
        except Outcome as e:
            got = str(e)
        except (OSError, KeyError) as e:
            got = "error: %s" % e
        ok, text = check(case, got)
        label = name[:-5] + (" [hole]" if case.get("hole") else "")
        rows.append((label, expected_text(case["expect"]), text, "ok" if ok else "FAIL"))
        if not ok:
            failed.append(label)
        time.sleep(args.pace)
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = min(max(len(r[2]) for r in rows), 48)
    print("  %-*s  %-*s  %-*s  %s" % (w0, "case", w1, "expected", w2, "got", "ok"))
    for r in rows:
        print("  %-*s  %-*s  %-*s  %s" % (w0, r[0], w1, r[1], w2, r[2][:200], r[3]))
    print("hostile: %d cases, %d passed, %d failed" % (len(rows), len(rows) - len(failed),
                                                        len(failed)))
    if args.results:
        with open(args.results, "w") as f:
            for r in rows:
                f.write("%s %s (expected %s, got %s)\n" % (r[3], r[0], r[1], r[2][:120]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
