#!/usr/bin/env bash
# Regenerate the checked-in verification test vectors in testdata/cosign/.
#
# Signatures and attestations are made by real cosign (offline: --tlog-upload=false), the
# test CA and its Fulcio-shaped certificates by openssl, and the Rekor entries (SETs) by a
# test Rekor key, because there is no Rekor here. Every vector is then checked by real
# cosign (`verify-blob`, offline, with SIGSTORE_REKOR_PUBLIC_KEY for the SETs), so the
# unit tests run against material cosign itself accepts. Needs cosign >= 2.2, openssl 3,
# python3. Run: bash integration/make-vectors.sh; then commit testdata/cosign.
set -euo pipefail
out=$(cd "$(dirname "$0")/.." && pwd)/testdata/cosign
work=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "work dir: $work" || trap 'rm -rf "$work"' EXIT
cd "$work"
export COSIGN_PASSWORD=signet-test
cosign() { command cosign "$@" 2>/dev/null; }

# The image the vectors are about; nothing needs to exist in a registry.
digest=sha256:$(printf 'signet test image' | sha256sum | cut -d' ' -f1)
image=registry.example/team/app
issuer=https://issuer.example
email=builder@example.com
uri=https://github.com/example/app/.github/workflows/release.yml@refs/heads/main

# --- key pair, image signature, attestation -------------------------------------------
cosign generate-key-pair >/dev/null
cosign generate "$image@$digest" > payload.json
cosign sign-blob --key cosign.key --tlog-upload=false payload.json > payload.sig
cat > predicate.json <<'J'
{"buildType":"https://example.com/build/v1","builder":{"id":"https://example.com/builder"}}
J
cosign attest-blob --key cosign.key --type slsaprovenance --predicate predicate.json \
  --hash "${digest#sha256:}" --tlog-upload=false payload.json > att-slsa.json
cosign attest-blob --key cosign.key --type custom --predicate predicate.json \
  --hash "${digest#sha256:}" --tlog-upload=false payload.json > att-custom.json

# --- test CA (root -> intermediate -> leaf), Fulcio-shaped leaves -----------------------
cat > ext.cnf <<J
[root]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
[inter]
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
extendedKeyUsage=codeSigning
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
[email]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
subjectAltName=critical,email:$email
authorityKeyIdentifier=keyid
1.3.6.1.4.1.57264.1.1=DER:$(printf %s "$issuer" | od -An -tx1 | tr -d ' \n')
1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:$issuer
[uri]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
subjectAltName=critical,URI:$uri
authorityKeyIdentifier=keyid
1.3.6.1.4.1.57264.1.1=DER:$(printf %s "$issuer" | od -An -tx1 | tr -d ' \n')
1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:$issuer
J
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ec root.key; ec inter.key; ec csr.key; ec other-root.key
# The leaf key is cosign's own (its import-key-pair rejects openssl EC keys); the
# certificate is issued for its public key.
cosign generate-key-pair --output-key-prefix leaf >/dev/null
openssl req -new -x509 -key root.key -subj "/O=signet-test/CN=test root" -days 36500 \
  -extensions root -config <(cat /etc/ssl/openssl.cnf ext.cnf) -out root.pem 2>/dev/null
openssl req -new -x509 -key other-root.key -subj "/O=signet-test/CN=unrelated root" -days 36500 \
  -extensions root -config <(cat /etc/ssl/openssl.cnf ext.cnf) -out other-root.pem 2>/dev/null
openssl req -new -key inter.key -subj "/O=signet-test/CN=test intermediate" -out inter.csr
openssl x509 -req -in inter.csr -CA root.pem -CAkey root.key -days 36500 -set_serial 2 \
  -extfile ext.cnf -extensions inter -out inter.pem 2>/dev/null
openssl req -new -key csr.key -subj "/" -out leaf.csr 2>/dev/null
for kind in email uri; do
  openssl x509 -req -in leaf.csr -CA inter.pem -CAkey inter.key -days 36500 -set_serial 1$((RANDOM)) \
    -force_pubkey leaf.pub -extfile ext.cnf -extensions "$kind" -out "leaf-$kind.pem" 2>/dev/null
done
cat inter.pem root.pem > chain.pem
cosign sign-blob --key leaf.key --tlog-upload=false payload.json > payload-leaf.sig

# --- a test Rekor log and SETs ------------------------------------------------------------
ec rekor.key
openssl pkey -in rekor.key -pubout -out rekor.pub
# $1 signature file, $2 signer PEM (public key or certificate), $3 output bundle annotation
make_set() {
  python3 - "$1" "$2" "$3" <<'PY'
import base64, hashlib, json, subprocess, sys, time
sig = open(sys.argv[1]).read().strip()
signer = open(sys.argv[2], "rb").read()
payload = open("payload.json", "rb").read()
body = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
    "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
    "signature": {"content": sig, "publicKey": {"content": base64.b64encode(signer).decode()}}}}
der = subprocess.run(["openssl", "pkey", "-pubin", "-in", "rekor.pub", "-outform", "DER"],
                     capture_output=True, check=True).stdout
entry = {"body": base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode(),
         "integratedTime": int(time.time()), "logID": hashlib.sha256(der).hexdigest(), "logIndex": 42}
canonical = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
set_ = subprocess.run(["openssl", "dgst", "-sha256", "-sign", "rekor.key"], input=canonical,
                      capture_output=True, check=True).stdout
json.dump({"SignedEntryTimestamp": base64.b64encode(set_).decode(), "Payload": entry},
          open(sys.argv[3], "w"), separators=(",", ":"))
PY
}
make_set payload.sig cosign.pub bundle-key.json
make_set payload-leaf.sig leaf-email.pem bundle-leaf-email.json
# A SET made by a key that is not the configured log's.
ec forged.key
openssl pkey -in forged.key -pubout -out forged.pub
( mv rekor.key keep.key; cp forged.key rekor.key; mv rekor.pub keep.pub; cp forged.pub rekor.pub
  make_set payload.sig cosign.pub bundle-forged.json; mv keep.key rekor.key; mv keep.pub rekor.pub )

# --- a trusted_root.json for the test CA and log ------------------------------------------
python3 - <<'PY' > trusted_root.json
import base64, hashlib, json, subprocess
def der(args): return subprocess.run(args, capture_output=True, check=True).stdout
cert = lambda p: {"rawBytes": base64.b64encode(der(["openssl", "x509", "-in", p, "-outform", "DER"])).decode()}
rekor = der(["openssl", "pkey", "-pubin", "-in", "rekor.pub", "-outform", "DER"])
print(json.dumps({
  "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
  "tlogs": [{"baseUrl": "https://rekor.example", "hashAlgorithm": "SHA2_256",
             "publicKey": {"rawBytes": base64.b64encode(rekor).decode(), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                           "validFor": {"start": "2020-01-01T00:00:00Z"}},
             "logId": {"keyId": base64.b64encode(hashlib.sha256(rekor).digest()).decode()}}],
  "certificateAuthorities": [{"subject": {"organization": "signet-test", "commonName": "test root"},
             "uri": "https://fulcio.example",
             "certChain": {"certificates": [cert("inter.pem"), cert("root.pem")]},
             "validFor": {"start": "2020-01-01T00:00:00Z"}}],
  "ctlogs": [], "timestampAuthorities": []}, indent=2))
PY

# --- cosign itself must accept every positive vector --------------------------------------
check() { if ! command cosign "$@" >/dev/null 2>&1; then echo "cosign rejected a vector: $*" >&2; exit 1; fi; }
check verify-blob --key cosign.pub --signature payload.sig payload.json --insecure-ignore-tlog
# (claims name the image digest, not payload.json's hash, so cosign checks only the signature
# and type here; the subject is checked by the unit tests.)
check verify-blob-attestation --key cosign.pub --signature att-slsa.json --type slsaprovenance \
  --check-claims=false --insecure-ignore-tlog payload.json
for kind in email uri; do
  id=$email; [ "$kind" = uri ] && id=$uri
  check verify-blob --certificate "leaf-$kind.pem" --certificate-chain chain.pem --signature payload-leaf.sig \
    --certificate-identity "$id" --certificate-oidc-issuer "$issuer" --insecure-ignore-sct --insecure-ignore-tlog \
    payload.json
done
python3 -c 'import json,sys; b=json.load(open("bundle-key.json")); print(json.dumps({"base64Signature": open("payload.sig").read().strip(), "cert": "", "rekorBundle": b}))' > blob-bundle.json
SIGSTORE_REKOR_PUBLIC_KEY=rekor.pub check verify-blob --key cosign.pub --bundle blob-bundle.json --offline payload.json
python3 -c 'import base64,json; b=json.load(open("bundle-leaf-email.json")); print(json.dumps({"base64Signature": open("payload-leaf.sig").read().strip(), "cert": base64.b64encode(open("leaf-email.pem","rb").read()).decode(), "rekorBundle": b}))' > leaf-bundle.json
SIGSTORE_REKOR_PUBLIC_KEY=rekor.pub check verify-blob --bundle leaf-bundle.json --certificate-chain chain.pem \
  --certificate-identity "$email" --certificate-oidc-issuer "$issuer" --insecure-ignore-sct --offline payload.json
if SIGSTORE_REKOR_PUBLIC_KEY=rekor.pub command cosign verify-blob --key cosign.pub --bundle <(python3 -c 'import json; b=json.load(open("bundle-forged.json")); print(json.dumps({"base64Signature": open("payload.sig").read().strip(), "cert": "", "rekorBundle": b}))') --offline payload.json >/dev/null 2>&1; then
  echo "cosign accepted the forged SET" >&2; exit 1
fi

mkdir -p "$out"
cp payload.json payload.sig payload-leaf.sig cosign.pub att-slsa.json att-custom.json root.pem other-root.pem \
  inter.pem chain.pem leaf-email.pem leaf-uri.pem rekor.pub bundle-key.json bundle-leaf-email.json \
  bundle-forged.json trusted_root.json "$out/"
cat > "$out/README.md" <<J
Test vectors for src/verify, made by \`integration/make-vectors.sh\` with cosign $(dpkg-query -W -f '${Version}' cosign 2>/dev/null || command cosign version 2>&1 | awk '/GitVersion/ {print $2}') and $(openssl version | cut -d' ' -f1-2).
Image: \`$image@$digest\`. Keyless identities: issuer \`$issuer\`, email \`$email\`, URI \`$uri\`.
Every positive vector was accepted by cosign verify-blob when generated; bundle-forged.json was rejected.
Private keys are not kept. Regenerate with \`bash integration/make-vectors.sh\`.
J
echo "vectors written to $out"
