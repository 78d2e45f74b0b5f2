#!/usr/bin/env bash
# Regenerate testdata/tsa/: RFC 3161 timestamps from a test timestamp authority made with
# openssl (integration/testpki.sh pki_tsa), for src/verify/timestamp.rs's tests. Each response
# covers the bytes of testdata/tsa/message. Private keys are not kept.
#
#   bash integration/make-tsa-vectors.sh     then commit testdata/tsa
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
. "$HERE/testpki.sh"
out=$REPO/testdata/tsa
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
pki_tsa
# An unrelated authority, to show a timestamp is trusted only under its own roots.
mkdir other && (cd other && pki_tsa)
printf 'the raw bytes of a signature' > message
pki_timestamp message good.tsr
TSA_DIGEST=sha512 pki_timestamp message sha512.tsr
TSA_NO_CERT=1 pki_timestamp message no-cert.tsr
pki_timestamp message rsa.tsr rsa
# The token alone (what a response carries), as some clients keep it.
openssl ts -reply -in good.tsr -token_out -out good.token 2>/dev/null
# A Fulcio-shaped certificate valid for ten minutes from now, with a signature of
# testdata/cosign/payload.json by its key and the TSA's timestamp of that signature: once the
# ten minutes are over, only the timestamp shows the certificate was valid when it signed.
python3 - "$REPO/testdata/cosign/payload.json" <<'PY'
import base64, datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
now = datetime.datetime.now(datetime.timezone.utc)
name = lambda cn: x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "signet-test"),
                             x509.NameAttribute(NameOID.COMMON_NAME, cn)])
ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
ca = (x509.CertificateBuilder().subject_name(name("short-lived CA")).issuer_name(name("short-lived CA"))
      .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
      .not_valid_after(now + datetime.timedelta(days=36500))
      .add_extension(x509.BasicConstraints(True, None), True)
      .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), True)
      .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
      .sign(ca_key, hashes.SHA256()))
issuer = "https://issuer.example"
utf8 = lambda s: b"\x0c" + bytes([len(s)]) + s.encode()
leaf = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.subject)
        .public_key(leaf_key.public_key()).serial_number(2).not_valid_before(now - datetime.timedelta(seconds=5))
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("builder@example.com")]), True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)
        .add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.57264.1.1"), issuer.encode()), False)
        .add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), utf8(issuer)), False)
        .sign(ca_key, hashes.SHA256()))
open("short-ca.pem", "wb").write(ca.public_bytes(serialization.Encoding.PEM))
open("short-leaf.pem", "wb").write(leaf.public_bytes(serialization.Encoding.PEM))
sig = leaf_key.sign(open(sys.argv[1], "rb").read(), ec.ECDSA(hashes.SHA256()))
open("short.sig.raw", "wb").write(sig)
open("short.sig", "w").write(base64.b64encode(sig).decode())
# A cosign 3 style image signature by the same key: a DSSE envelope holding an in-toto
# statement of the sign predicate type about the digest of testdata/cosign/payload.json's image.
import json
digest = json.load(open(sys.argv[1]))["critical"]["image"]["docker-manifest-digest"]
statement = json.dumps({"_type": "https://in-toto.io/Statement/v1",
                        "subject": [{"name": "registry.example/team/app", "digest": {"sha256": digest.split(":")[1]}}],
                        "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}}).encode()
ptype = b"application/vnd.in-toto+json"
pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(statement), statement)
esig = leaf_key.sign(pae, ec.ECDSA(hashes.SHA256()))
open("short.envelope.sig.raw", "wb").write(esig)
json.dump({"payloadType": ptype.decode(), "payload": base64.b64encode(statement).decode(),
           "signatures": [{"sig": base64.b64encode(esig).decode()}]}, open("short.envelope.json", "w"))
PY
pki_timestamp short.sig.raw short.sig.tsr
pki_timestamp short.envelope.sig.raw short.envelope.tsr
# A trusted_root.json naming the test TSA (its chain, leaf first), as a private Sigstore
# instance's would.
python3 - <<'PY' > trusted_root-tsa.json
import base64, json, subprocess
der = lambda p: base64.b64encode(subprocess.run(["openssl", "x509", "-in", p, "-outform", "DER"],
                                                capture_output=True, check=True).stdout).decode()
print(json.dumps({"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                  "tlogs": [], "certificateAuthorities": [], "ctlogs": [],
                  "timestampAuthorities": [{"subject": {"organization": "signet-test", "commonName": "test TSA"},
                                            "uri": "http://127.0.0.1/tsa",
                                            "certChain": {"certificates": [{"rawBytes": der(p)} for p in
                                                          ["tsa.pem", "tsa-inter.pem", "tsa-root.pem"]]},
                                            "validFor": {"start": "2020-01-01T00:00:00Z"}}]}, indent=2))
PY
# The same for the key-signed testdata/cosign/payload.sig.
base64 -d "$REPO/testdata/cosign/payload.sig" > payload.sig.raw
pki_timestamp payload.sig.raw payload.sig.tsr
rm -rf "$out"; mkdir -p "$out"
cp message good.tsr sha512.tsr no-cert.tsr rsa.tsr good.token \
  tsa-chain.pem tsa-root.pem tsa-inter.pem tsa.pem tsa-noncritical.pem \
  short-ca.pem short-leaf.pem short.sig short.sig.tsr payload.sig.tsr \
  short.envelope.json short.envelope.tsr trusted_root-tsa.json "$out/"
cp other/tsa-chain.pem "$out/other-chain.pem"
cat > "$out/README.md" <<'MD'
RFC 3161 timestamps from a test timestamp authority, made by `integration/make-tsa-vectors.sh`
with openssl (`openssl ts -reply`). Every response covers the bytes of `message`.

- `tsa-root.pem` -> `tsa-inter.pem` -> `tsa.pem` (critical extended key usage timeStamping);
  `tsa-chain.pem` is the three, leaf first, as Kyverno's `tsaCertChain` holds them.
- `good.tsr`: SHA-256 imprint, the signer certificate in the token; `good.token`: its token alone.
- `sha512.tsr`: a SHA-512 imprint. `no-cert.tsr`: no certificate in the token (the chain's leaf signs).
- `tsa-noncritical.pem`: the leaf's key with the timeStamping purpose not critical (openssl refuses
  to sign timestamps under it, as RFC 3161 says a TSA must).
- `rsa.tsr`: signed by an RSA key under the same intermediate.
- `other-chain.pem`: an unrelated authority's chain.
- `short-leaf.pem` (under `short-ca.pem`): a Fulcio-shaped certificate (issuer
  `https://issuer.example`, email `builder@example.com`) valid for ten minutes from when the
  vectors were made; `short.sig`: its key's signature of `testdata/cosign/payload.json`;
  `short.sig.tsr`: the TSA's timestamp of that signature, made inside the ten minutes.
- `payload.sig.tsr`: the TSA's timestamp of `testdata/cosign/payload.sig` (the key-signed one).
- `short.envelope.json`: a cosign 3 style image signature by the short-lived key (a DSSE
  envelope, an in-toto statement of the sign predicate type about the same digest);
  `short.envelope.tsr`: the TSA's timestamp of its signature.
- `trusted_root-tsa.json`: a Sigstore trusted root naming only the test TSA.
MD
echo "wrote $out"
