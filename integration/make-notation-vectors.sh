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
# Needs notation 1.3 and python3. Run: bash integration/make-notation-vectors.sh; then
# commit testdata/notation.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/testdata/notation
work=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "work dir: $work" || trap 'rm -rf "$work"' EXIT
export NOTATION_CONFIG=$work/config NOTATION_EXPERIMENTAL=1
notation() { command notation "$@" 2>/dev/null; }

notation cert generate-test signet-trusted >/dev/null
notation cert generate-test signet-other >/dev/null

# image NAME: a reproducible one-layer image in its own layout; prints its manifest digest.
image() {
  python3 "$repo/integration/mkimage.py" "$work/$1" "$1" --entrypoint null --cmd '["/bin/true"]' >/dev/null
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$work/$1/index.json"
}

# sign LAYOUT DIGEST KEY [FORMAT]: sign (jws, or cose), then print the new signature
# manifest's digest.
sign() {
  local before
  before=$(python3 -c 'import json,sys; print(" ".join(m["digest"] for m in json.load(open(sys.argv[1]))["manifests"]))' "$1/index.json")
  notation sign --oci-layout "$1@$2" --key "$3" --signature-format "${4:-jws}" >/dev/null
  python3 - "$1/index.json" "$before" <<'PY'
import json, sys
old = set(sys.argv[2].split())
new = [m["digest"] for m in json.load(open(sys.argv[1]))["manifests"] if m["digest"] not in old]
assert len(new) == 1, new
print(new[0])
PY
}

blob() { cat "$1/blobs/sha256/${2#sha256:}"; }

# verify LAYOUT DIGEST CERT-NAME: notation itself must accept the signature.
verify() {
  cat > "$NOTATION_CONFIG/trustpolicy.json" <<J
{"version": "1.0", "trustPolicies": [{"name": "vectors", "registryScopes": ["*"],
  "signatureVerification": {"level": "strict"},
  "trustStores": ["ca:$3"], "trustedIdentities": ["*"]}]}
J
  notation verify --oci-layout --scope local/vectors "$1@$2" >/dev/null || {
    echo "notation does not verify $1@$2 with $3" >&2; exit 1; }
}

rm -rf "$out"; mkdir -p "$out"
d_app=$(image app)
d_other_image=$(image other-image)
s_good=$(sign "$work/app" "$d_app" signet-trusted)
s_other=$(sign "$work/app" "$d_app" signet-other)
s_elsewhere=$(sign "$work/other-image" "$d_other_image" signet-trusted)
# The same three in notation's other envelope format, COSE_Sign1 (application/cose).
c_good=$(sign "$work/app" "$d_app" signet-trusted cose)
c_other=$(sign "$work/app" "$d_app" signet-other cose)
c_elsewhere=$(sign "$work/other-image" "$d_other_image" signet-trusted cose)
verify "$work/app" "$d_app" signet-trusted
verify "$work/app" "$d_app" signet-other
verify "$work/other-image" "$d_other_image" signet-trusted

blob "$work/app" "$d_app" > "$out/image-manifest.json"
for v in "good|$work/app|$s_good|jws" "untrusted|$work/app|$s_other|jws" \
         "other-digest|$work/other-image|$s_elsewhere|jws" "good-cose|$work/app|$c_good|cose" \
         "untrusted-cose|$work/app|$c_other|cose" "other-digest-cose|$work/other-image|$c_elsewhere|cose"; do
  IFS='|' read -r name layout sig ext <<<"$v"
  blob "$layout" "$sig" > "$out/$name.manifest.json"
  layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' "$out/$name.manifest.json")
  blob "$layout" "$layer" > "$out/${name%-cose}.$ext"
done
cp "$NOTATION_CONFIG/localkeys/signet-trusted.crt" "$out/trusted.crt"
cp "$NOTATION_CONFIG/localkeys/signet-other.crt" "$out/other.crt"
cat > "$out/digests" <<E
image $d_app
other-image $d_other_image
E
echo "notation vectors written to $out"
