#!/usr/bin/env bash
# Regenerate testdata/cosign/sha512-*: a self-signed code-signing certificate (EC P-256, made
# with openssl) and its key's signatures of testdata/cosign/payload.json over SHA-512 and over
# SHA-256, for policies that name the digest a certificate's key signs with (Kyverno's entry
# `signatureAlgorithm`). The private key is not kept.
#
#   bash integration/make-hash-vectors.sh     then commit testdata/cosign
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
out=$REPO/testdata/cosign
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem 2>/dev/null
printf '[leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\nsubjectAltName=email:builder@example.com\n' > ext.cnf
openssl req -new -x509 -key key.pem -subj "/O=signet-test/CN=sha512 signer" -days 36500 \
  -extensions leaf -config <(cat /etc/ssl/openssl.cnf ext.cnf) -out "$out/sha512-signer.pem" 2>/dev/null
for h in sha512 sha256; do
  openssl dgst "-$h" -sign key.pem "$out/payload.json" | base64 -w0 > "$out/sha512-signer.$h.sig"
  openssl dgst "-$h" -verify <(openssl x509 -in "$out/sha512-signer.pem" -pubkey -noout) \
    -signature <(base64 -d "$out/sha512-signer.$h.sig") "$out/payload.json" >/dev/null
done
echo "wrote $out/sha512-signer.*"
