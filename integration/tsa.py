#!/usr/bin/env python3
"""The world's RFC 3161 timestamp authority: what cosign's --timestamp-server-url and a cosign 3
signing config's `tsa` entry post to. A DER TimeStampReq in, `openssl ts -reply` out.

    python3 integration/tsa.py DIR [--port 5317]

DIR holds what integration/testpki.sh's pki_tsa made (tsa.cnf, its keys, certificates and
serial file); openssl runs there because tsa.cnf names them relative to it. Any POST path is
the timestamp endpoint (cosign 2 takes the full URL, cosign 3's signing config names one);
GET /certchain answers the chain PEM (as sigstore's timestamp-authority serves it), any other
GET a short text, for a liveness check. Python's standard library only; loopback only.
"""

import argparse
import http.server
import os
import subprocess
import sys
import tempfile
import threading

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
# A TimeStampReq is a hash and a few small fields; anything much larger is not one.
MAX_QUERY = 64 * 1024


class Handler(http.server.BaseHTTPRequestHandler):
    # One reply at a time: openssl ts -reply reads and rewrites the serial file.
    lock = threading.Lock()
    tsa_dir = "."
    section = "tsa"

    def log_message(self, fmt, *args):  # noqa: N802 (the base class's name)
        sys.stderr.write("tsa: %s %s\n" % (self.address_string(), fmt % args))

    def answer(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        if self.path.rstrip("/").endswith("/certchain"):
            with open(os.path.join(self.tsa_dir, "tsa-chain.pem"), "rb") as f:
                return self.answer(200, "application/pem-certificate-chain", f.read())
        self.answer(200, "text/plain", b"signet test timestamp authority: POST a DER TimeStampReq\n")

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != QUERY_TYPE:
            return self.answer(415, "text/plain", ("want Content-Type %s\n" % QUERY_TYPE).encode())
        if not 0 < length <= MAX_QUERY:
            return self.answer(400, "text/plain", b"no TimeStampReq, or too large\n")
        query = self.rfile.read(length)
        with self.lock, tempfile.TemporaryDirectory() as tmp:
            qf, rf = os.path.join(tmp, "query.tsq"), os.path.join(tmp, "reply.tsr")
            with open(qf, "wb") as f:
                f.write(query)
            run = subprocess.run(
                ["openssl", "ts", "-reply", "-config", "tsa.cnf", "-section", self.section,
                 "-queryfile", qf, "-out", rf],
                cwd=self.tsa_dir, capture_output=True, timeout=10)
            if run.returncode != 0 or not os.path.exists(rf):
                self.log_message("openssl ts -reply failed: %s", run.stderr.decode(errors="replace").strip())
                return self.answer(500, "text/plain", b"openssl could not answer that query\n")
            with open(rf, "rb") as f:
                reply = f.read()
        self.answer(200, REPLY_TYPE, reply)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", help="the directory pki_tsa made")
    p.add_argument("--port", type=int, default=5317)
    p.add_argument("--section", default="tsa", help="tsa.cnf's section (tsa: EC signer, rsa: RSA signer)")
    a = p.parse_args()
    Handler.tsa_dir = os.path.abspath(a.dir)
    Handler.section = a.section
    if not os.path.exists(os.path.join(Handler.tsa_dir, "tsa.cnf")):
        sys.exit("tsa: no tsa.cnf in %s (integration/testpki.sh pki_tsa makes it)" % Handler.tsa_dir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    sys.stderr.write("tsa: serving %s on http://127.0.0.1:%d\n" % (Handler.tsa_dir, a.port))
    server.serve_forever()


if __name__ == "__main__":
    main()
