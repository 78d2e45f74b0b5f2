#!/usr/bin/env bash
# Regenerate the checked-in notation test vectors in testdata/notation/.
#
# Real notation (1.3) signs a byte-reproducible image (integration/mkimage.py) in an OCI
# image layout, so no registry is needed: `notation sign --oci-layout` is experimental but
# writes the same signature manifest and JWS envelope as a registry signing does (the
# manifest's config media type is application/vnd.cncf.notary.signature, its one layer the
# application/jose+json envelope, its subject the image). Two test certificates are made
# with `notation cert generate-test`: "trusted" signs the image, "other" signs it too (an
# untrusted signer), and "trusted" signs a second image (a signature for another digest).
# Each signature is checked by `notation verify` against a trust policy for its certificate.
# "trusted" also signs the image with an RFC 3161 timestamp from a test TSA on loopback
# (integration/testpki.sh pki_tsa, answered by `openssl ts -reply`), verified by notation
# under a trust policy naming the TSA's root (`tsa` trust store).
# Needs notation 1.3, openssl and python3. Run: bash integration/make-notation-vectors.sh; then
# commit testdata/notation.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/testdata/notation
work=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "work dir: $work"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
export NOTATION_CONFIG=$work/config NOTATION_EXPERIMENTAL=1
notation() { command notation "$@" 2>/dev/null; }
. "$repo/integration/notation-layout.sh"

notation cert generate-test signet-trusted >/dev/null
notation cert generate-test signet-other >/dev/null

# A test TSA on loopback: each POSTed TimeStampReq is answered by openssl's TSA.
. "$repo/integration/testpki.sh"
mkdir -p "$work/tsa" && (cd "$work/tsa" && pki_tsa)
TSA_PORT=${TSA_PORT:-5097}
python3 - "$work/tsa" "$TSA_PORT" > "$work/tsa.log" 2>&1 <<'PY' &
import http.server, os, subprocess, sys, tempfile
os.chdir(sys.argv[1])
class TSA(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        query = self.rfile.read(int(self.headers["Content-Length"]))
        with tempfile.NamedTemporaryFile(dir=".") as q:
            q.write(query); q.flush()
            reply = subprocess.run(["openssl", "ts", "-reply", "-config", "tsa.cnf", "-section", "tsa",
                                    "-queryfile", q.name], capture_output=True, check=True).stdout
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[2])), TSA).serve_forever()
PY
tsa_pid=$!
trap 'kill $tsa_pid 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$TSA_PORT) 2>/dev/null && break; sleep 0.05; done

# stamp: notation sign's arguments for a timestamp from the test TSA.
stamp() { echo --timestamp-url "http://127.0.0.1:$TSA_PORT" --timestamp-root-cert "$work/tsa/tsa-root.pem"; }

# (other files here are made by make-notary-ku-vector.py and by hand: README.md)
mkdir -p "$out"
d_app=$(image app)
d_other_image=$(image other-image)
s_good=$(sign "$work/app" "$d_app" signet-trusted)
s_other=$(sign "$work/app" "$d_app" signet-other)
s_elsewhere=$(sign "$work/other-image" "$d_other_image" signet-trusted)
# The same three in notation's other envelope format, COSE_Sign1 (application/cose).
c_good=$(sign "$work/app" "$d_app" signet-trusted --signature-format cose)
c_other=$(sign "$work/app" "$d_app" signet-other --signature-format cose)
c_elsewhere=$(sign "$work/other-image" "$d_other_image" signet-trusted --signature-format cose)
verify "$work/app" "$d_app" signet-trusted
verify "$work/app" "$d_app" signet-other
verify "$work/other-image" "$d_other_image" signet-trusted
# Timestamped, in both formats, in an image layout of their own (notation verify must see
# only them under the TSA policy: it refuses an untimestamped signature there).
cp -r "$work/app" "$work/app-tsa"
python3 - "$work/app-tsa/index.json" "$d_app" <<'PY'
import json, sys
index = json.load(open(sys.argv[1]))
index["manifests"] = [m for m in index["manifests"] if m["digest"] == sys.argv[2]]
json.dump(index, open(sys.argv[1], "w"))
PY
notation cert add --type tsa --store signet-tsa "$work/tsa/tsa-root.pem" >/dev/null
t_good=$(sign "$work/app-tsa" "$d_app" signet-trusted $(stamp))
t_cose=$(sign "$work/app-tsa" "$d_app" signet-trusted --signature-format cose $(stamp))
verify "$work/app-tsa" "$d_app" signet-trusted signet-tsa

blob "$work/app" "$d_app" > "$out/image-manifest.json"
for v in "good|$work/app|$s_good|jws" "untrusted|$work/app|$s_other|jws" \
         "other-digest|$work/other-image|$s_elsewhere|jws" "good-cose|$work/app|$c_good|cose" \
         "untrusted-cose|$work/app|$c_other|cose" "other-digest-cose|$work/other-image|$c_elsewhere|cose" \
         "timestamped|$work/app-tsa|$t_good|jws" "timestamped-cose|$work/app-tsa|$t_cose|cose"; do
  IFS='|' read -r name layout sig ext <<<"$v"
  blob "$layout" "$sig" > "$out/$name.manifest.json"
  layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' "$out/$name.manifest.json")
  blob "$layout" "$layer" > "$out/${name%-cose}.$ext"
done
cp "$NOTATION_CONFIG/localkeys/signet-trusted.crt" "$out/trusted.crt"
cp "$NOTATION_CONFIG/localkeys/signet-other.crt" "$out/other.crt"
cp "$work/tsa/tsa-root.pem" "$out/tsa-root.crt"
# (the timestamped ones' signer, kept apart so they can be regenerated alone)
cp "$NOTATION_CONFIG/localkeys/signet-trusted.crt" "$out/timestamped.crt"
# Another TSA's root, which must not trust those timestamps.
mkdir -p "$work/other-tsa" && (cd "$work/other-tsa" && pki_tsa) && cp "$work/other-tsa/tsa-root.pem" "$out/other-tsa-root.crt"
cat > "$out/digests" <<E
image $d_app
other-image $d_other_image
E
echo "notation vectors written to $out"
