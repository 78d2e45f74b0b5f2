#!/usr/bin/env python3
"""A registry proxy for fault injection: forwards every request to the real registry, except
signature manifests (`.../manifests/sha256-<hex>.sig`), which it answers according to the
mode in MODE_FILE: `pass`, `slow` (wait SLOW_SECONDS, then forward), `garbage` (200 with
bytes that are not a manifest), `huge` (200 with an 8 MiB manifest), `down` (500),
`endless` (200, chunked, never ending), `lying` (200 with a 10 GiB Content-Length, then
bytes until the client hangs up). `endless-referrers` answers the referrers API and its
fallback tag (`.../manifests/sha256-<hex>`) with an endless body instead. `delay:MS` holds
every request (any path) MS milliseconds before forwarding it, so that a client's
dependent round trips show in its wall time (rounds ~= time / MS).
Hostile modes on the paths only signature fetches use (containerd's pulls still pass):
`endless-index` answers the .sig tag 404 and the referrers API and fallback tag with an
endless body (the index alone decides); `endless-blob` streams the blobs that .sig manifests
name without end; `endless-token` answers signature paths without credentials 401 with a
Bearer challenge whose realm (/token here) streams without end; `drip` sends the .sig
manifest one byte every DRIP_SECONDS, so that no single read waits long; `redirect:BASE`
answers the blobs that .sig manifests name with a 307 to BASE + the same path.
With TLS_CERT and TLS_KEY set it serves HTTPS with that certificate (a registry behind a
private CA). LISTEN_HOST (default 127.0.0.1) is the address it listens on.
With REQUEST_LOG set it appends one JSON line per connection accepted
(`{"ev": "conn", "conn": N, "t": T}`) and per request answered (`{"ev": "req", "conn": N,
"m": METHOD, "path": PATH, "status": CODE, "t0": ARRIVED, "t1": ANSWERED}`), times in Unix
seconds: `ARRIVED` when the request's headers were read (before any delay), `ANSWERED` when the
last byte of the reply was written. integration/bench.sh counts requests, `GET /v2/` probes,
connections and dependent depth from it.
Usage: faulty-registry.py LISTEN_PORT UPSTREAM_HOST:PORT MODE_FILE"""
import http.server, itertools, json, os, socket, ssl, sys, threading, time, urllib.request, urllib.error

port, upstream, mode_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
SLOW_SECONDS = float(os.environ.get("SLOW_SECONDS", "4"))
DRIP_SECONDS = float(os.environ.get("DRIP_SECONDS", "0.1"))
# Digests of the layers of the .sig manifests forwarded so far: the signature blobs.
SIGNATURE_BLOBS, LOCK = set(), threading.Lock()
REQUEST_LOG = os.environ.get("REQUEST_LOG")
log_lock, conn_ids = threading.Lock(), itertools.count(1)
log_file = open(REQUEST_LOG, "a", buffering=1) if REQUEST_LOG else None


def log(**event):
    if log_file:
        with log_lock:
            log_file.write(json.dumps(event) + "\n")


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        # A reply is written as its headers, then its body. With Nagle's algorithm the body
        # waits for the client's delayed ACK of the headers (40 ms on Linux): a stall of this
        # proxy's own, which registries do not have (Go, distribution's language, turns it off).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = next(conn_ids)
        log(ev="conn", conn=self.conn, t=time.time())

    def send_response(self, code, message=None):
        self.status = code
        super().send_response(code, message)

    def handle_one(self):
        arrived, self.status = time.time(), None
        try:
            self.answer()
        finally:
            log(ev="req", conn=self.conn, m=self.command, path=self.path, status=self.status,
                t0=arrived, t1=time.time())

    def reply(self, code, body, ctype="application/json", headers=(), length=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                self.close_connection = True  # a client that stopped reading at its cap

    def endless(self, lying=False, ctype="application/vnd.oci.image.manifest.v1+json"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if lying:
            self.send_header("Content-Length", str(10 << 30))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        block = b"{" * (64 << 10)
        chunk = block if lying else b"%x\r\n%s\r\n" % (len(block), block)
        try:
            while True:
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    def answer(self):
        path = self.path.split("?")[0]
        mode = open(mode_file).read().strip() if os.path.exists(mode_file) else "pass"
        if mode.startswith("delay:"):
            time.sleep(float(mode.split(":", 1)[1]) / 1000)
        referrers = "/referrers/" in path or ("/manifests/sha256-" in path and not path.endswith((".sig", ".att")))
        sig = "/manifests/sha256-" in path and path.endswith(".sig")
        signature_path = referrers or ("/manifests/sha256-" in path and path.endswith((".sig", ".att")))
        signature_blob = "/blobs/" in path and path.rsplit("/", 1)[-1] in SIGNATURE_BLOBS
        if mode == "endless-referrers" and referrers:
            return self.endless()
        if mode == "endless-index":
            if referrers:
                return self.endless(ctype="application/vnd.oci.image.index.v1+json")
            if sig:
                return self.reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
        if mode == "endless-blob" and signature_blob:
            return self.endless(ctype="application/octet-stream")
        if mode == "endless-token":
            if path == "/token":
                return self.endless(ctype="application/json")
            if signature_path and "Authorization" not in self.headers:
                host = self.headers.get("Host", f"127.0.0.1:{port}")
                challenge = f'Bearer realm="http://{host}/token",service="faulty"'
                return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', headers=[("WWW-Authenticate", challenge)])
        if mode.startswith("redirect:") and signature_blob:
            return self.reply(307, b"", headers=[("Location", mode.split(":", 1)[1] + self.path)])
        if "/manifests/sha256-" in path and path.endswith(".sig"):
            if mode in ("endless", "lying"):
                return self.endless(lying=mode == "lying")
            if mode == "slow":
                time.sleep(SLOW_SECONDS)
            elif mode == "garbage":
                return self.reply(200, b"\x00\xffnot a manifest{{{" * 64, "application/vnd.oci.image.manifest.v1+json")
            elif mode == "huge":
                return self.reply(200, b"{" + b" " * (8 << 20) + b"}", "application/vnd.oci.image.manifest.v1+json")
            elif mode == "down":
                return self.reply(500, b'{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}')
        req = urllib.request.Request(f"http://{upstream}{self.path}", method=self.command,
                                     headers={k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization")})
        try:
            with urllib.request.urlopen(req) as r:
                code, body, headers = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            code, body, headers = e.code, e.read(), e.headers
        keep = [(k, v) for k, v in headers.items() if k.lower() in ("docker-content-digest", "www-authenticate", "location")]
        length = headers.get("Content-Length") if self.command == "HEAD" else None
        if sig and code == 200:
            try:
                with LOCK:
                    SIGNATURE_BLOBS.update(l["digest"] for l in json.loads(body).get("layers", []))
            except (ValueError, KeyError, TypeError, AttributeError):
                pass
        if mode == "drip" and sig and code == 200 and self.command == "GET":
            return self.drip(code, body, headers.get("Content-Type", "application/octet-stream"))
        self.reply(code, body, headers.get("Content-Type", "application/octet-stream"), keep, length)

    def drip(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(DRIP_SECONDS)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    do_GET = do_HEAD = handle_one


class Server(http.server.ThreadingHTTPServer):
    # The default backlog of 5 drops the SYNs of a burst of new connections, which the
    # client then retries a second later: a cost of the proxy, not of the client measured.
    request_queue_size = 256
    daemon_threads = True


server = Server((os.environ.get("LISTEN_HOST", "127.0.0.1"), port), Proxy)
if os.environ.get("TLS_CERT"):
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    server.socket = tls.wrap_socket(server.socket, server_side=True)
server.serve_forever()
