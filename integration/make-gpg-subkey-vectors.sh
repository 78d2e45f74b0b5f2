#!/usr/bin/env bash
# Test vectors for OpenPGP subkey validity (verify/gpg.rs): one certificate whose primary key
# only certifies, with a valid signing subkey, an expired one and a revoked one, and a
# simple-signing document signed by each. Made with gpg in a throw-away GNUPGHOME.
# Run: bash integration/make-gpg-subkey-vectors.sh; writes testdata/cosign/gpg-subkeys.*
set -euo pipefail
OUT=$(cd "$(dirname "$0")/.." && pwd)/testdata/cosign
export GNUPGHOME
GNUPGHOME=$(mktemp -d)
trap 'gpgconf --kill all >/dev/null 2>&1 || true; rm -rf "$GNUPGHOME"' EXIT
g() { gpg --batch --yes --pinentry-mode loopback --passphrase '' "$@"; }

# The document the existing GPG vectors sign: image registry.example/team/app:v1 at DIGEST.
DIGEST=sha256:479b4d26d48a0d046ea38ef2715bfa9bdc1ddff89de923a682848412d511d3a5
doc=$GNUPGHOME/doc.json
printf '{"critical":{"identity":{"docker-reference":"registry.example/team/app:v1"},"image":{"docker-manifest-digest":"%s"},"type":"atomic container signature"},"optional":{}}' "$DIGEST" > "$doc"

# Created in 2020 so a one-day subkey is long expired now.
g --faked-system-time 20200101T000000 --quick-gen-key 'subkeys <subkeys@example.com>' ed25519 cert never 2>/dev/null
fpr=$(gpg --list-keys --with-colons subkeys@example.com | awk -F: '/^fpr/ {print $10; exit}')
g --faked-system-time 20200101T000000 --quick-add-key "$fpr" ed25519 sign never 2>/dev/null
g --faked-system-time 20200101T000000 --quick-add-key "$fpr" ed25519 sign 1d 2>/dev/null
g --faked-system-time 20200101T000000 --quick-add-key "$fpr" ed25519 sign never 2>/dev/null
mapfile -t subs < <(gpg --list-keys --with-colons "$fpr" | awk -F: '/^sub/ {getline; print $10}')
[ "${#subs[@]}" = 3 ] || { echo "expected 3 subkeys, got ${#subs[@]}" >&2; exit 1; }
good=${subs[0]} expired=${subs[1]} revoked=${subs[2]}

g --faked-system-time 20200101T000100 -u "$good!" --sign --output "$OUT/gpg-subkeys-sig-good" "$doc"
g --faked-system-time 20200101T000100 -u "$expired!" --sign --output "$OUT/gpg-subkeys-sig-expired" "$doc"
g --faked-system-time 20200101T000100 -u "$revoked!" --sign --output "$OUT/gpg-subkeys-sig-revoked" "$doc"
# Revoke the third subkey (key 3 in edit-key's numbering), reason 0, no text.
printf 'key 3\nrevkey\ny\n0\n\ny\nsave\n' |
  gpg --batch --yes --pinentry-mode loopback --passphrase '' --command-fd 0 --status-fd 2 --edit-key "$fpr" 2>/dev/null
gpg --list-keys --with-colons "$fpr" | awk -F: '/^sub/ {print $2}' | grep -q '^r$' ||
  { echo "the third subkey was not revoked" >&2; exit 1; }
gpg --armor --export "$fpr" > "$OUT/gpg-subkeys.pub.asc"
echo "wrote $OUT/gpg-subkeys.pub.asc and gpg-subkeys-sig-{good,expired,revoked}"
