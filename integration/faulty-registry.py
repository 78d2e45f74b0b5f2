#!/usr/bin/env python3
"""A registry proxy for fault injection: forwards every request to the real registry, except
signature manifests (`.../manifests/sha256-<hex>.sig`), which it answers according to the
mode in MODE_FILE: `pass`, `slow` (wait SLOW_SECONDS, then forward), `garbage` (200 with
bytes that are not a manifest), `huge` (200 with an 8 MiB manifest), `down` (500).
With TLS_CERT and TLS_KEY set it serves HTTPS with that certificate (a registry behind a
private CA).
Usage: faulty-registry.py LISTEN_PORT UPSTREAM_HOST:PORT MODE_FILE"""
import http.server, os, ssl, sys, time, urllib.request, urllib.error

port, upstream, mode_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
SLOW_SECONDS = float(os.environ.get("SLOW_SECONDS", "4"))


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype="application/json", headers=(), length=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_one(self):
        path = self.path.split("?")[0]
        if "/manifests/sha256-" in path and path.endswith(".sig"):
            mode = open(mode_file).read().strip() if os.path.exists(mode_file) else "pass"
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
        self.reply(code, body, headers.get("Content-Type", "application/octet-stream"), keep, length)

    do_GET = do_HEAD = handle_one


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Proxy)
if os.environ.get("TLS_CERT"):
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    server.socket = tls.wrap_socket(server.socket, server_side=True)
server.serve_forever()
