#!/usr/bin/env bash
# Regenerate testdata/tsa-ess/: a test timestamp authority (integration/testpki.sh pki_tsa) and
# a second certificate for its key, for the ESS signing-certificate tests of
# src/verify/timestamp.rs. Private keys are not kept.
#
# - tsa-chain.pem: the authority's chain, leaf first; message: the bytes every response covers.
# - good.tsr: a timestamp whose ESS signingCertificateV2 attribute names tsa.pem (SHA-256).
# - v1.tsr: the same authority with ess_cert_id_alg = sha1: an ESS signingCertificate (v1).
# - reissued.pem: another certificate for the same key, issuer and serial (other validity), so
#   a token whose embedded certificate is swapped for it still verifies by signature; only the
#   signed ESS attribute tells it is not the certificate the TSA signed with.
#
#   bash integration/make-tsa-ess-vectors.sh     then commit testdata/tsa-ess
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
. "$HERE/testpki.sh"
out=$REPO/testdata/tsa-ess
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
pki_tsa
openssl x509 -req -in tsa.csr -CA tsa-inter.pem -CAkey tsa-inter.key -days 3650 -set_serial 3 \
  -extfile tsa-ext.cnf -extensions leaf -out reissued.pem 2>/dev/null
sed -n '/^\[tsa\]/,/^ess_cert_id_alg/p' tsa.cnf | sed 's/^\[tsa\]/[v1]/; s/^ess_cert_id_alg = sha256/ess_cert_id_alg = sha1/' >> tsa.cnf
printf 'the raw bytes of a signature' > message
pki_timestamp message good.tsr
pki_timestamp message v1.tsr v1
rm -rf "$out"; mkdir -p "$out"
cp tsa-chain.pem reissued.pem message good.tsr v1.tsr "$out/"
cat > "$out/README.md" <<'MD'
ESS signing-certificate vectors, made by `integration/make-tsa-ess-vectors.sh` with openssl.

- `tsa-chain.pem`: a test TSA's chain, leaf first; `message`: what every response covers.
- `good.tsr`: its timestamp, an ESS `signingCertificateV2` (SHA-256) naming its certificate.
- `v1.tsr`: the same with an ESS `signingCertificate` (v1, SHA-1).
- `reissued.pem`: another certificate for the TSA's key, issuer and serial: swapped into a
  token it keeps the signature valid, and only the ESS attribute refuses it.
MD
echo "wrote $out"
