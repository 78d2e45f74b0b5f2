#!/usr/bin/env bash
# Regenerate the checked-in verification test vectors in testdata/cosign/.
#
# Signatures and attestations are made by real cosign (offline: --tlog-upload=false), the
# test CA and its Fulcio-shaped certificates by openssl, and the Rekor entries (SETs) by a
# test Rekor key, because there is no Rekor here. Every vector is then checked by real
# cosign (`verify-blob`, offline, with SIGSTORE_REKOR_PUBLIC_KEY for the SETs), so the
# unit tests run against material cosign itself accepts. Needs cosign >= 2.2, openssl 3,
# python3 (with the cryptography package), gpg, skopeo. Run: bash integration/make-vectors.sh;
# then commit testdata/cosign.
set -euo pipefail
. "$(dirname "$0")/testpki.sh"
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
cosign attest-blob --key cosign.key --type slsaprovenance --predicate predicate.json --new-bundle-format \
  --hash "${digest#sha256:}" --tlog-upload=false --bundle bundle-v03-slsa.json payload.json >/dev/null
cosign attest-blob --key cosign.key --type custom --predicate predicate.json \
  --hash "${digest#sha256:}" --tlog-upload=false payload.json > att-custom.json
# cosign 3 signs images this way by default: a bundle holding a statement of the sign
# predicate type, with an empty predicate, about the image digest.
echo '{}' > empty.json
cosign attest-blob --key cosign.key --type https://sigstore.dev/cosign/sign/v1 --predicate empty.json \
  --new-bundle-format --hash "${digest#sha256:}" --tlog-upload=false --bundle bundle-v03-sign.json payload.json >/dev/null

# --- test CA, Fulcio-shaped leaves, test Rekor log, SETs (integration/testpki.sh) ---------
pki_ca "$issuer" "$email" "$uri"
pki_sct_leaf "$issuer" "$email"
cosign sign-blob --key leaf.key --tlog-upload=false payload.json > payload-leaf.sig
pki_set payload.sig cosign.pub payload.json bundle-key.json
pki_set payload-leaf.sig leaf-email.pem payload.json bundle-leaf-email.json
# A SET made by a key that is not the configured log's.
pki_ec forged.key
pki_set payload.sig cosign.pub payload.json bundle-forged.json forged.key
# cosign 3 signature bundles with a Rekor v1 dsse entry: by the key, by a keyless leaf, and
# one whose SET is not the log's.
pki_bundle_log bundle-v03-sign.json cosign.pub bundle-v03-sign-logged.json
cosign attest-blob --key leaf.key --certificate leaf-email.pem --certificate-chain chain.pem \
  --type https://sigstore.dev/cosign/sign/v1 --predicate empty.json --new-bundle-format \
  --hash "${digest#sha256:}" --tlog-upload=false --bundle bundle-v03-sign-leaf.json payload.json >/dev/null
pki_bundle_log bundle-v03-sign-leaf.json leaf-email.pem bundle-v03-sign-leaf-logged.json
pki_bundle_log bundle-v03-sign.json cosign.pub bundle-v03-sign-forged.json forged.key
# The Rekor intoto entry cosign 2 stores with an attestation it logged.
pki_set_intoto att-slsa.json cosign.pub att-slsa-rekor.json

# --- GPG simple signing (skopeo standalone-sign), for Portieris/Red Hat style policies ----
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg_key() {  # NAME EMAIL TYPE
  printf '%%no-protection\nKey-Type: %s\nKey-Length: 3072\nName-Real: %s\nName-Email: %s\nExpire-Date: 0\n%%commit\n' \
    "$3" "$1" "$2" | gpg --batch --gen-key 2>/dev/null
  gpg --list-keys --with-colons "$2" 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}'
}
gpg_fpr=$(gpg_key "signet release" release@example.com RSA)
other_fpr=$(gpg_key "someone else" other@example.com RSA)
gpg --armor --export "$gpg_fpr" > gpg.pub.asc
gpg --armor --export "$other_fpr" > gpg-other.pub.asc
printf 'signet test image' > manifest.bin   # its sha256 is $digest
skopeo standalone-sign manifest.bin "$image:v1" "$gpg_fpr" --output gpg-signature-1

# --- cosign itself must accept every positive vector --------------------------------------
check() { if ! command cosign "$@" >/dev/null 2>&1; then echo "cosign rejected a vector: $*" >&2; exit 1; fi; }
check verify-blob --key cosign.pub --signature payload.sig payload.json --insecure-ignore-tlog
# (claims name the image digest, not payload.json's hash, so cosign checks only the signature
# and type here; the subject is checked by the unit tests.)
check verify-blob-attestation --key cosign.pub --signature att-slsa.json --type slsaprovenance \
  --check-claims=false --insecure-ignore-tlog payload.json
# Bundles: the blob whose hash is the image digest stands in for the image, so cosign checks
# the subject too. cosign 2.5 does not compare a bundle's predicate type with --type
# (GHSA-w6c6-c85g-mmv6, fixed later upstream); the unit tests check the types.
printf 'signet test image' > subject.bin
for b in bundle-v03-slsa.json:slsaprovenance bundle-v03-sign.json:https://sigstore.dev/cosign/sign/v1; do
  check verify-blob-attestation --key cosign.pub --new-bundle-format --trusted-root trusted_root.json \
    --bundle "${b%%:*}" --type "${b#*:}" --insecure-ignore-tlog subject.bin
done
for kind in email uri; do
  id=$email; [ "$kind" = uri ] && id=$uri
  check verify-blob --certificate "leaf-$kind.pem" --certificate-chain chain.pem --signature payload-leaf.sig \
    --certificate-identity "$id" --certificate-oidc-issuer "$issuer" --insecure-ignore-sct --insecure-ignore-tlog \
    payload.json
done
# The SCT is checked by cosign here (no --insecure-ignore-sct), with the test CT log's key.
SIGSTORE_CT_LOG_PUBLIC_KEY_FILE=ctlog.pub check verify-blob --certificate leaf-sct.pem --certificate-chain chain.pem \
  --signature payload-leaf.sig --certificate-identity "$email" --certificate-oidc-issuer "$issuer" \
  --insecure-ignore-tlog payload.json
if SIGSTORE_CT_LOG_PUBLIC_KEY_FILE=ctlog.pub command cosign verify-blob --certificate leaf-email.pem \
    --certificate-chain chain.pem --signature payload-leaf.sig --certificate-identity "$email" \
    --certificate-oidc-issuer "$issuer" --insecure-ignore-tlog payload.json >/dev/null 2>&1; then
  echo "cosign accepted a certificate without an SCT" >&2; exit 1
fi
python3 -c 'import json,sys; b=json.load(open("bundle-key.json")); print(json.dumps({"base64Signature": open("payload.sig").read().strip(), "cert": "", "rekorBundle": b}))' > blob-bundle.json
SIGSTORE_REKOR_PUBLIC_KEY=rekor.pub check verify-blob --key cosign.pub --bundle blob-bundle.json --offline payload.json
python3 -c 'import base64,json; print(json.dumps({"base64Signature": base64.b64encode(open("att-slsa.json").read().strip().encode()).decode(), "cert": "", "rekorBundle": json.load(open("att-slsa-rekor.json"))}))' > att-bundle.json
SIGSTORE_REKOR_PUBLIC_KEY=rekor.pub check verify-blob-attestation --key cosign.pub --bundle att-bundle.json \
  --type slsaprovenance --check-claims=false --offline payload.json
# (and skopeo its own GPG signature)
if ! skopeo standalone-verify manifest.bin "$image:v1" "$gpg_fpr" gpg-signature-1 >/dev/null 2>&1; then
  echo "skopeo rejected its GPG signature vector" >&2; exit 1
fi
python3 -c 'import base64,json; b=json.load(open("bundle-leaf-email.json")); print(json.dumps({"base64Signature": open("payload-leaf.sig").read().strip(), "cert": base64.b64encode(open("leaf-email.pem","rb").read()).decode(), "rekorBundle": b}))' > leaf-bundle.json
SIGSTORE_REKOR_PUBLIC_KEY=rekor.pub check verify-blob --bundle leaf-bundle.json --certificate-chain chain.pem \
  --certificate-identity "$email" --certificate-oidc-issuer "$issuer" --insecure-ignore-sct --offline payload.json
if SIGSTORE_REKOR_PUBLIC_KEY=rekor.pub command cosign verify-blob --key cosign.pub --bundle <(python3 -c 'import json; b=json.load(open("bundle-forged.json")); print(json.dumps({"base64Signature": open("payload.sig").read().strip(), "cert": "", "rekorBundle": b}))') --offline payload.json >/dev/null 2>&1; then
  echo "cosign accepted the forged SET" >&2; exit 1
fi

mkdir -p "$out"
cp payload.json payload.sig payload-leaf.sig cosign.pub att-slsa.json att-custom.json root.pem other-root.pem \
  inter.pem chain.pem leaf-email.pem leaf-uri.pem leaf-sct.pem ctlog.pub rekor.pub gpg.pub.asc gpg-other.pub.asc gpg-signature-1 bundle-v03-slsa.json bundle-v03-sign.json bundle-v03-sign-logged.json \
  bundle-v03-sign-leaf-logged.json bundle-v03-sign-forged.json att-slsa-rekor.json bundle-key.json bundle-leaf-email.json \
  bundle-forged.json trusted_root.json "$out/"
cat > "$out/README.md" <<J
Test vectors for src/verify, made by \`integration/make-vectors.sh\` with cosign $(dpkg-query -W -f '${Version}' cosign 2>/dev/null || command cosign version 2>&1 | awk '/GitVersion/ {print $2}') and $(openssl version | cut -d' ' -f1-2).
Image: \`$image@$digest\`. Keyless identities: issuer \`$issuer\`, email \`$email\`, URI \`$uri\`.
Every positive vector was accepted by cosign verify-blob when generated (leaf-sct.pem with its SCT checked
against ctlog.pub; gpg-signature-1, by skopeo standalone-sign, checked by skopeo standalone-verify);
bundle-forged.json, and leaf-email.pem when an SCT is required, were rejected. The
bundle-v03-sign-*-logged.json and -forged.json Rekor dsse entries follow Rekor's dsse 0.0.1 schema;
cosign cannot check them offline (it wants an inclusion proof in v0.3 bundles; signet checks the SET).
Private keys are not kept. Regenerate with \`bash integration/make-vectors.sh\`.
J
echo "vectors written to $out"
