# Helpers for the notation vector scripts (make-notation-vectors.sh,
# make-notation-referrer-vectors.sh): real notation signing into OCI image layouts, no
# registry. Sourced; needs $repo (the checkout), $work (a scratch dir) and NOTATION_CONFIG,
# NOTATION_EXPERIMENTAL=1 exported.

# image NAME: a reproducible one-layer image in its own layout; prints its manifest digest.
image() {
  python3 "$repo/integration/mkimage.py" "$work/$1" "$1" --entrypoint null --cmd '["/bin/true"]' >/dev/null
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$work/$1/index.json"
}

# sign LAYOUT DIGEST KEY [NOTATION-SIGN-ARGS...]: sign, then print the new signature
# manifest's digest.
sign() {
  local layout=$1 digest=$2 key=$3 before; shift 3
  before=$(python3 -c 'import json,sys; print(" ".join(m["digest"] for m in json.load(open(sys.argv[1]))["manifests"]))' "$layout/index.json")
  command notation sign --oci-layout "$layout@$digest" --key "$key" "$@" >/dev/null 2>&1
  python3 - "$layout/index.json" "$before" <<'PY'
import json, sys
old = set(sys.argv[2].split())
new = [m["digest"] for m in json.load(open(sys.argv[1]))["manifests"] if m["digest"] not in old]
assert len(new) == 1, new
print(new[0])
PY
}

blob() { cat "$1/blobs/sha256/${2#sha256:}"; }

# verify LAYOUT DIGEST CERT-NAME [TSA-STORE]: notation itself must accept the signature (with a
# tsa trust store, its timestamp too).
verify() {
  local stores="\"ca:$3\""
  [ -z "${4:-}" ] || stores="$stores, \"tsa:$4\""
  cat > "$NOTATION_CONFIG/trustpolicy.json" <<J
{"version": "1.0", "trustPolicies": [{"name": "vectors", "registryScopes": ["*"],
  "signatureVerification": {"level": "strict"},
  "trustStores": [$stores], "trustedIdentities": ["*"]}]}
J
  command notation verify --oci-layout --scope local/vectors "$1@$2" >/dev/null 2>&1 || {
    echo "notation does not verify $1@$2 with $3" >&2; exit 1; }
}
