# t_http.sh - sourced by run.sh on its cluster and daemon: the HTTP bounds and strictness of
# issue 8 against the real antennad (default limits: 32 connections per peer, 5 s handshakes,
# 10 s requests, 1 MiB unsent per connection), with raw TLS clients in python3's ssl module.
# Never leaves a connection open behind it (each client closes its sockets before it returns).
echo "== http: bounds and strictness"

th_port=${ANTENNA_URL##*:}
# th_py SCRIPT: runs python3 with the port, the CA, alice's token and antennad's pid in env.
th_py() {
    TH_PORT=$th_port TH_CA=$ANTENNA_CA TH_TOKEN=$alice TH_ADMIN=$admin TH_PID=$(cat "$work/antennad.pid") \
        python3 -c "$1"
}
th_lib='
import os, socket, ssl, time
port, ca, tok, pid = int(os.environ["TH_PORT"]), os.environ["TH_CA"], os.environ["TH_TOKEN"], os.environ["TH_PID"]
admin = os.environ["TH_ADMIN"]
ctx = ssl.create_default_context(cafile=ca)
def tls(timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(s, server_hostname="localhost")
def rss_kib():
    for l in open("/proc/%s/status" % pid):
        if l.startswith("VmRSS:"): return int(l.split()[1])
def answer(s, limit=65536):
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        b = s.recv(4096)
        if not b: break
        data += b
    return data.decode("latin-1")
def closed_within(s, secs):
    s.settimeout(secs)
    try:
        while True:
            if not s.recv(4096): return True
    except (socket.timeout, TimeoutError): return False
    except (OSError, ssl.SSLError): return True
'

# One connection pipelines requests for ~300 MiB of answers and never reads: antennad reads
# and answers only while its unsent bytes stay under the bound, so its memory stays flat.
out=$(th_py "$th_lib"'
s = tls()
req = ("GET /v1/jobs?limit=1000 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n\r\n" % admin).encode()
s.sendall(req)
first = answer(s)
size = int([l for l in first.split("\r\n") if l.lower().startswith("content-length:")][0].split(":")[1])
s.close()
n = min(20000, max(200, (300 << 20) // max(size, 1)))
before = rss_kib()
s = tls()
s.setblocking(False)
sent, blob = 0, req * n
t0 = time.time()
while sent < len(blob) and time.time() - t0 < 4:
    try: sent += s.send(blob[sent:])
    except (ssl.SSLWantWriteError, BlockingIOError): time.sleep(0.05)
time.sleep(2)
after = rss_kib()
s.close()
print(n, size, (after - before) // 1024)
')
read -r th_n th_size th_grew <<< "$out"
check "a client pipelining $th_n x ${th_size:-?}-byte answers without reading grows antennad by ${th_grew:-?} MiB (< 64)" \
    test "${th_grew:-999}" -lt 64

sleep 1 # the connections above are gone
# Per-peer cap: of 40 connections from one address, at most 32 finish their handshake.
out=$(th_py "$th_lib"'
ok, socks = 0, []
for i in range(40):
    try:
        socks.append(tls(timeout=3)); ok += 1
    except (OSError, ssl.SSLError):
        pass
for x in socks: x.close()
print(ok)
')
check "per-peer cap: $out of 40 connections from one address got in (wanted 32)" test "${out:-0}" -eq 32
sleep 0.5
expect_api "a new connection gets in once the others are closed" 200 ok "" GET /healthz

# Handshake timeout: a TCP connection that never says hello is closed after ~5 s (idle is 30 s).
out=$(th_py "$th_lib"'
s = socket.create_connection(("127.0.0.1", port), timeout=20)
t0 = time.time()
try: s.recv(16)
except OSError: pass
print(int((time.time() - t0) * 1000))
s.close()
')
check "a silent TCP connection is closed by the handshake timeout (${out:-?} ms, wanted 4000-9000)" \
    test "${out:-0}" -ge 4000 -a "${out:-99999}" -le 9000

# Slowloris: headers trickled one byte a second are cut by the 10 s request timeout.
out=$(th_py "$th_lib"'
s = tls()
s.sendall(b"GET /v1/jobs HTTP/1.1\r\nHost: localhost\r\n")
t0, closed = time.time(), False
while time.time() - t0 < 20 and not closed:
    try: s.sendall(b"X")
    except (OSError, ssl.SSLError): closed = True; break
    closed = closed_within(s, 1)
print(int((time.time() - t0) * 1000) if closed else -1)
s.close()
')
check "trickled headers are closed by the request timeout (${out:-?} ms, wanted 9000-14000)" \
    test "${out:-0}" -ge 9000 -a "${out:-99999}" -le 14000

# 401 before the body: 1 MB announced, none sent, no token.
out=$(th_py "$th_lib"'
s = tls()
t0 = time.time()
s.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
a = answer(s)
print(a.split("\r\n")[0], "close" if "Connection: close" in a else "keep", int((time.time() - t0) * 1000))
s.close()
')
check "a token-less 1 MB upload is answered 401 before its body ($out)" \
    bash -c '[[ "$1" == "HTTP/1.1 401 "*" close "* ]] && [ "${1##* }" -lt 2000 ]' _ "$out"

# HEAD is served wherever GET is: same status and Content-Length, no body.
th_get_len=$(curl -sS --cacert "$ANTENNA_CA" -o /dev/null -w '%{size_download}' "$ANTENNA_URL/healthz")
th_head=$(curl -sS --cacert "$ANTENNA_CA" -I "$ANTENNA_URL/healthz" | tr -d '\r')
check "HEAD /healthz answers 200 with GET's Content-Length ($th_get_len)" \
    bash -c '[[ "$1" == "HTTP/1.1 200 "* ]] && grep -qi "^content-length: $2\$" <<< "$1"' _ "$th_head" "$th_get_len"
th_head=$(curl -sS --cacert "$ANTENNA_CA" -H "Authorization: Bearer $alice" -I "$ANTENNA_URL/v1/jobs?limit=5" | tr -d '\r')
check "HEAD /v1/jobs answers 200 with a Content-Length" \
    bash -c '[[ "$1" == "HTTP/1.1 200 "* ]] && grep -qi "^content-length: [1-9]" <<< "$1"' _ "$th_head"

# Strictness on the wire.
out=$(th_py "$th_lib"'
def first_line(raw):
    s = tls(); s.sendall(raw); a = answer(s); s.close(); return a.split("\r\n")[0].split(" ")[1] if a else "-"
print(first_line(b"GET /healthz HTTP/9.9\r\nHost: localhost\r\n\r\n"),
      first_line(("GET https://evil.example:%d/healthz HTTP/1.1\r\nHost: localhost\r\n\r\n" % port).encode()),
      first_line(("GET https://127.0.0.1:%d/healthz HTTP/1.1\r\nHost: localhost\r\n\r\n" % port).encode()),
      first_line(("GET /v1/jobs HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nAuthorization: Bearer x\r\n\r\n" % tok).encode()),
      first_line(b"POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}"))
')
check "HTTP/9.9 505, another host 400, this server 200, two Authorization 400, two Content-Length 400 ($out)" \
    test "$out" = "505 400 200 400 400"
expect_api "a %2F in the path is not a separator" 404 not_found "$alice" GET "/v1/jobs%2F1"
expect_api "application/jsonx is not JSON" 415 unsupported_media_type "$alice" POST /v1/jobs \
    -H "Content-Type: application/jsonx" -d '{"script":"#!/bin/bash\n","dry_run":true}'
check "antennad still answers /healthz after all this" bash -c 'curl -fsS --cacert "$1" "$2/healthz" > /dev/null' _ "$ANTENNA_CA" "$ANTENNA_URL"

# The token is checked once, at the headers; a token revoked while the body is on its way is still
# refused when the request is served (the identity found at the headers is looked up again).
th_tok_json=$(api "$admin" POST /v1/tokens -H 'Content-Type: application/json' -d '{"user":"alice","label":"revoked-mid-body"}')
th_tok=$(sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' <<< "${th_tok_json#* }")
th_tok_id=$(sed -n 's/.*"id": *\([0-9]*\).*/\1/p' <<< "${th_tok_json#* }" | head -1)
out=$(TH_MID=$th_tok TH_REVOKE="curl -sS --cacert $ANTENNA_CA -o /dev/null -w %{http_code} -X DELETE -H 'Authorization: Bearer $admin' $ANTENNA_URL/v1/tokens/$th_tok_id" \
    th_py "$th_lib"'
import subprocess
body = b"{\"script\":\"#!/bin/bash\\n\",\"dry_run\":true}"
s = tls()
s.sendall(("POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (os.environ["TH_MID"], len(body))).encode())
time.sleep(0.3)
revoked = subprocess.run(os.environ["TH_REVOKE"], shell=True, capture_output=True, text=True).stdout
s.sendall(body)
a = answer(s)
s.close()
print(revoked, a.split("\r\n")[0].split(" ")[1] if a else "-")
')
check "a token revoked while its request's body is on the way: revoke 200, request 401 ($out)" \
    test "$out" = "200 401"
