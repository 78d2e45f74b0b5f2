#!/usr/bin/env bash
# The end-to-end suite on a real containerd 1.7.24 node (NRI v0.6.1), a real registry and
# images signed by real cosign and skopeo. Each check drives the CRI API like kubelet does
# and asserts what the node actually did. Prints "N passed, N failed"; exit 1 on any failure.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

PASSED=0 FAILED=0
FAILURES=()
ok()   { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
bad()  { FAILED=$((FAILED + 1)); FAILURES+=("$1"); echo "FAIL - $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/       /'; }

OUT=
# cri_run IMAGE: run through CRI; sets OUT and returns the cri.py exit code (0 ran, 3 rejected).
cri_run() { OUT=$($CRI run "$1" 2>&1); }

expect_runs() {  # name image [log-marker]
  cri_run "$2"; local rc=$?
  if [ $rc = 0 ] && { [ -z "${3:-}" ] || grep -q "$3" <<<"$OUT"; }; then ok "$1"; else bad "$1" "rc=$rc $OUT"; fi
}
expect_rejected() {  # name image [text that the CRI error must contain]...
  local name=$1 image=$2; shift 2
  cri_run "$image"; local rc=$?
  if [ $rc != 3 ]; then bad "$name" "expected rejection (3), got rc=$rc: $OUT"; return; fi
  local t
  for t in "$@"; do
    grep -qF -- "$t" <<<"$OUT" || { bad "$name" "rejection message lacks '$t': $OUT"; return; }
  done
  ok "$name"
}

cleanup() {
  stop_signet
  rm -f /opt/nri/plugins/05-signet /etc/signet/config.toml
  [ -n "${PREINSTALLED:-}" ] && restart_containerd
}
trap cleanup EXIT

need_tools
world_up || { echo "0 passed, 1 failed"; exit 1; }
build_signet || { echo "0 passed, 1 failed"; exit 1; }

POL1=$WORK/e2e-key1      # cosign key only
POL2=$WORK/e2e-key2      # skopeo's key only
rm -rf "$POL1" "$POL2"
write_policy "$POL1" probe "$REGISTRY/probe/**" "$COSIGN_PUB"
write_policy "$POL2" probe "$REGISTRY/probe/**" "$COSIGN_PUB2"

# Extra images made from the signed/unsigned ones, in their own repositories.
REPOINT=$REGISTRY/probe/repoint:v1
WRONGSIG=$REGISTRY/probe/wrongsig:v1
# wrongsig has content of its own: containerd's image-name annotation is the image's *first*
# reference, so content shared with another repository would be looked up there instead.
rm -rf "$WORK/oci-wrongsig"
python3 "$E2E_ENV/mkimage.py" "$WORK/oci-wrongsig" wrongsig --entrypoint null \
  --cmd '["/bin/sh","-c","echo hello from wrongsig; sleep 2147483647"]' >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$WORK/oci-wrongsig:latest" "docker://$WRONGSIG"
WRONGSIG_DIGEST=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$WRONGSIG")
# cosign's valid signature for the *signed* digest, planted where wrongsig's signature would
# be: signed by the trusted key, but the payload names another digest.
copy_image "$REGISTRY/probe/signed:$(sig_tag "$IMG_SIGNED_DIGEST")" "$REGISTRY/probe/wrongsig:$(sig_tag "$WRONGSIG_DIGEST")"

say "enforce mode, cosign key"
start_signet "$POL1" || { echo "0 passed, 1 failed"; exit 1; }
expect_runs "cosign-signed image runs" "$IMG_SIGNED" "hello from signed"
expect_rejected "unsigned image is rejected, message names image, digest, policy and cause" "$IMG_UNSIGNED" \
  "PermissionDenied" "$IMG_UNSIGNED" "$IMG_UNSIGNED_DIGEST" 'policy "probe"' "no signatures found"
expect_rejected "skopeo-signed image is rejected under a cosign-key-only policy" "$IMG_SKOPEO_SIGNED" \
  "none made by key"
expect_rejected "a valid signature for another digest is rejected" "$WRONGSIG" \
  "is for digest $IMG_SIGNED_DIGEST, not $WRONGSIG_DIGEST"

# Tag re-pointed in the registry after the node pulled the signed image.
copy_image "$IMG_SIGNED" "$REPOINT"
copy_image "$REGISTRY/probe/signed:$(sig_tag "$IMG_SIGNED_DIGEST")" "$REGISTRY/probe/repoint:$(sig_tag "$IMG_SIGNED_DIGEST")"
$CRI pull "$REPOINT" >/dev/null
copy_image "$IMG_UNSIGNED" "$REPOINT"
V=$("$SIGNET" verify "$REPOINT" --policy-dir "$POL1" --insecure-registry "$REGISTRY" --output json 2>&1)
if grep -q "\"digest\": \"$IMG_SIGNED_DIGEST\"" <<<"$V" && grep -q '"allowed": true' <<<"$V"; then
  ok "re-pointed tag: the digest comes from containerd's store (what was pulled), not the registry"
else
  bad "re-pointed tag: the digest comes from containerd's store (what was pulled), not the registry" "$V"
fi
expect_rejected "re-pointed tag, re-pulled: the unsigned content it now names is rejected" "$REPOINT" \
  "$IMG_UNSIGNED_DIGEST"
if grep -q 'hello from unsigned' <<<"$OUT"; then bad "re-pointed tag never ran unsigned content" "$OUT"; else ok "re-pointed tag never ran unsigned content"; fi

expect_runs "repeat decisions are served from the cache" "$IMG_SIGNED"
if grep -q 'result="allowed" cached=true' "$SIGNET_LOG"; then ok "cache hit logged for the repeat"; else bad "cache hit logged for the repeat" "$(grep decision "$SIGNET_LOG")"; fi

say "containerd restart"
restart_containerd
if wait_registered 2; then ok "signet re-registers after containerd restarts"; else bad "signet re-registers after containerd restarts"; fi
expect_rejected "after the restart, unsigned is still rejected" "$IMG_UNSIGNED" "no signatures found"
expect_runs "after the restart, signed still runs" "$IMG_SIGNED" "hello from signed"
stop_signet

say "enforce mode, skopeo's key"
start_signet "$POL2" || { echo "$PASSED passed, $((FAILED + 1)) failed"; exit 1; }
expect_runs "skopeo-signed image runs under a policy with key2" "$IMG_SKOPEO_SIGNED" "hello from skopeo-signed"
expect_rejected "cosign-signed image (key1) is rejected under the key2 policy" "$IMG_SIGNED" "none made by key"
stop_signet

say "warn mode"
start_signet "$POL1" --mode warn
expect_runs "warn mode lets the unsigned image run" "$IMG_UNSIGNED" "hello from unsigned"
if grep -q 'result="warned".*no signatures found' "$SIGNET_LOG"; then ok "warn mode logs the would-be denial"; else bad "warn mode logs the would-be denial" "$(cat "$SIGNET_LOG")"; fi
stop_signet

say "bad policy update keeps the last good policy"
POL3=$WORK/e2e-reload
rm -rf "$POL3"; write_policy "$POL3" probe "$REGISTRY/probe/**" "$COSIGN_PUB"
start_signet "$POL3"
echo "spec: [broken" > "$POL3/probe.yaml"
sleep 3   # > one poll interval
expect_rejected "after a corrupt policy file, unsigned is still rejected" "$IMG_UNSIGNED" "no signatures found"
expect_runs "after a corrupt policy file, signed still runs" "$IMG_SIGNED"
if grep -q 'policy update rejected; keeping the previous policy' "$SIGNET_LOG"; then ok "the rejected update is reported"; else bad "the rejected update is reported" "$(cat "$SIGNET_LOG")"; fi
stop_signet

say "registry down"
REG_PID=$(cat "$PROBE_STATE/registry/registry.pid")
kill "$REG_PID"; for _ in $(seq 1 50); do kill -0 "$REG_PID" 2>/dev/null || break; sleep 0.1; done
V=$("$SIGNET" verify "$IMG_UNSIGNED" --policy-dir "$POL1" --insecure-registry "$REGISTRY" --output json 2>&1); rc=$?
if [ $rc = 2 ] && grep -q '"error": true' <<<"$V" && grep -q 'registry request' <<<"$V" && ! grep -q 'no signatures' <<<"$V"; then
  ok "registry down: reported as a registry failure (exit 2), never as 'no signatures'"
else
  bad "registry down: reported as a registry failure (exit 2), never as 'no signatures'" "rc=$rc $V"
fi
SKIP_SMOKE=1 "$E2E_ENV/setup-env.sh" >> "$PROBE_STATE.setup.log" 2>&1   # brings the registry back

say "no plugin connected (documents the fail-open window of containerd 1.7)"
expect_runs "with signet stopped, containerd 1.7 runs unsigned images unchecked (README: closing the window)" "$IMG_UNSIGNED"
# What slipped through that window is reported when signet connects (pre-warm at Synchronize).
$CRI run "$IMG_UNSIGNED" --keep >/dev/null 2>&1
start_signet "$POL1"
for _ in $(seq 1 50); do grep -q 'pre-warm of running containers done' "$SIGNET_LOG" && break; sleep 0.1; done
if grep -q "would not be admitted now.*$IMG_UNSIGNED_DIGEST\|$IMG_UNSIGNED_DIGEST.*would not be admitted now" "$SIGNET_LOG" \
   && grep -q 'pre-warm of running containers done.*violators=1' "$SIGNET_LOG"; then
  ok "on connect, signet reports the running unsigned container (pre-warm at Synchronize)"
else
  bad "on connect, signet reports the running unsigned container (pre-warm at Synchronize)" "$(cat "$SIGNET_LOG")"
fi
stop_signet
$CRI cleanup >/dev/null 2>&1

say "pre-installed mode (/opt/nri/plugins/05-signet, launched by containerd on fd 3)"
mkdir -p /opt/nri/plugins /etc/signet
cp "$SIGNET" /opt/nri/plugins/05-signet
printf 'policy_dir = "%s"\ninsecure_registries = ["%s"]\nlog_format = "plain"\n' "$POL1" "$REGISTRY" > /etc/signet/config.toml
PREINSTALLED=1
restart_containerd
expect_rejected "pre-installed: unsigned is rejected" "$IMG_UNSIGNED" "no signatures found"
expect_runs "pre-installed: signed runs" "$IMG_SIGNED" "hello from signed"
rm -f /opt/nri/plugins/05-signet /etc/signet/config.toml
restart_containerd
PREINSTALLED=

echo
[ ${#FAILURES[@]} -gt 0 ] && printf 'failed: %s\n' "${FAILURES[@]}"
echo "e2e: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
