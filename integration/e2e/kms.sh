# The e2e section for KMS keys (#18): an image signed by an AWS KMS key (moto's KMS API on
# loopback over https, reached as awskms://127.0.0.1:PORT/KEYID exactly as cosign names it),
# enforced by signet on real containerd under a policy-controller ClusterImagePolicy with
# `key.kms`; then again with the provider gone (the resolved-key cache), and from the
# config's kms_keys alone.
#
# Sourced by integration/e2e.sh; uses e2e/checks.sh's helpers (up, expect_runs,
# expect_rejected, ok, bad, wait_for, log_has) and lib.sh's (new_image, stop_signet,
# COSIGN_REG_FLAGS).
#
# Why the signature is made with KMS Sign (MessageType RAW) and attached with cosign rather
# than by `cosign sign --key awskms://…`: cosign asks KMS to sign the payload's SHA-256
# (MessageType DIGEST), which moto 5.2.5 does not implement; it hashes the digest again, and
# the signature it returns verifies for nobody, cosign's own verify-blob included
# (tests/kms_moto.rs pins this). Against AWS itself `cosign sign --key awskms://…` is the path.

# shellcheck source=integration/kms-moto.sh
. "$(dirname "${BASH_SOURCE[0]}")/../kms-moto.sh"

# kms_sign REF@DIGEST: cosign's payload for the image, signed by the KMS key, attached by cosign.
kms_sign() {
  local ref=$1 payload=$WORK/kms-payload.json sig=$WORK/kms-payload.sig
  cosign generate "${COSIGN_REG_FLAGS[@]}" "$ref" > "$payload" || return 1
  "$KMS_MOTO_DIR/venv/bin/python" - "$KMS_ENDPOINT" "$KMS_KEY_ID" "$payload" > "$sig" <<'PY' || return 1
import base64, sys, boto3
endpoint, key_id, payload = sys.argv[1:4]
kms = boto3.client("kms", endpoint_url=f"https://{endpoint}", region_name="us-east-1")
out = kms.sign(KeyId=key_id, Message=open(payload, "rb").read(), MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")
print(base64.b64encode(out["Signature"]).decode())
PY
  cosign attach signature "${COSIGN_REG_FLAGS[@]}" --payload "$payload" --signature "$sig" "$ref" >/dev/null 2>&1
}

# kms_policy DIR: policy-controller's ClusterImagePolicy as the field writes it for KMS.
kms_policy() {
  mkdir -p "$1"
  printf 'apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: kms}\nspec:\n  images: [{glob: "%s/probe/kms-*"}]\n  authorities:\n    - key:\n        kms: %s\n' \
    "$REGISTRY" "$KMS_URI" > "$1/kms.yaml"
}

# The snapshot that compiles the KMS key: resolution happens beside the request path, so the
# section waits for it rather than racing it.
kms_resolved() { log_has "KMS key resolved" && [ "$(grep -c 'policy snapshot published' "$SIGNET_LOG")" -ge 2 ]; }

sec_kms() {
  if ! kms_moto_up; then bad "moto serves the AWS KMS API on loopback" "$(tail -5 "$KMS_MOTO_DIR/moto.log" 2>/dev/null)"; return; fi
  local POL=$WORK/kms STATE_DIR=$WORK/state CONF=$WORK/config.toml D_SIGNED D_UNSIGNED
  D_SIGNED=$(new_image kms-signed "$(date +%s%N)")
  D_UNSIGNED=$(new_image kms-unsigned "$(date +%s%N)")
  local SIGNED=$REGISTRY/probe/kms-signed:v1 UNSIGNED=$REGISTRY/probe/kms-unsigned:v1
  if kms_sign "$REGISTRY/probe/kms-signed@$D_SIGNED"; then ok "image signed by the KMS key ($KMS_URI)"; else bad "image signed by the KMS key ($KMS_URI)"; kms_moto_down; return; fi
  cosign public-key --key "$KMS_URI" > "$WORK/kms.pub"
  kms_policy "$POL"
  printf 'state_dir = "%s"\n' "$STATE_DIR" > "$CONF"

  up "$POL" --config "$CONF"
  if wait_for 20 kms_resolved; then ok "signet resolves $KMS_URI through AWS GetPublicKey"; else bad "signet resolves $KMS_URI through AWS GetPublicKey" "$(grep -i kms "$SIGNET_LOG")"; fi
  expect_runs "an image signed by the KMS key runs under key.kms" "$SIGNED" "hello from kms-signed"
  expect_rejected "an unsigned image under the KMS policy is rejected" "$UNSIGNED" 'policy "sigstore:kms"' "no signatures found"
  if [ -s "$STATE_DIR/kms-keys.json" ] && grep -q "$KMS_KEY_ID" "$STATE_DIR/kms-keys.json"; then ok "the resolved key is kept in the state directory"; else bad "the resolved key is kept in the state directory" "$(ls -l "$STATE_DIR" 2>&1)"; fi
  local CHECK
  CHECK=$("$SIGNET" policy check --state-dir "$STATE_DIR" --offline "$POL/kms.yaml" 2>&1)
  if grep -q "kms: $KMS_URI: resolved" <<<"$CHECK" && grep -q "cached in" <<<"$CHECK"; then ok "policy check says the KMS key resolved, and from where"; else bad "policy check says the KMS key resolved, and from where" "$CHECK"; fi
  stop_signet

  # The provider gone (air-gapped boot, API down): the cached key still enforces.
  kms_moto_down
  up "$POL" --config "$CONF"
  expect_runs "with the KMS provider down, the cached key still verifies" "$SIGNED" "hello from kms-signed"
  expect_rejected "with the KMS provider down, unsigned is still rejected" "$UNSIGNED" "no signatures found"
  stop_signet

  # A node that never reaches the provider: config kms_keys, no cache.
  rm -f "$STATE_DIR/kms-keys.json"
  printf 'state_dir = "%s"\n[kms_keys]\n"%s" = "%s"\n' "$STATE_DIR" "$KMS_URI" "$WORK/kms.pub" > "$CONF"
  up "$POL" --config "$CONF"
  expect_runs "config kms_keys serves a node that never reaches the provider" "$SIGNED" "hello from kms-signed"
  stop_signet

  # Neither provider, cache nor kms_keys: the authority fails closed and says why.
  rm -f "$STATE_DIR/kms-keys.json"
  printf 'state_dir = "%s"\n' "$STATE_DIR" > "$CONF"
  up "$POL" --config "$CONF"
  expect_rejected "an unresolvable KMS key fails closed, naming the key" "$SIGNED" "$KMS_URI"
  stop_signet
}
