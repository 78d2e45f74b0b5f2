#!/usr/bin/env bash
# signet's container image: build it from the release binary (packaging/image/build-image.py,
# no container engine or base image needed), push it to the e2e registry, sign it with cosign,
# and run it the way the DaemonSet does — host network, the host's NRI and containerd sockets
# mounted — with ctr. Then check through the CRI API that the containerised signet enforces.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO"

PASSED=0 FAILED=0
ok()  { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
bad() { FAILED=$((FAILED + 1)); echo "FAIL - $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/       /'; }
CTR="ctr -n k8s.io"
cleanup() {
  $CTR task kill -s SIGTERM signet-ds >/dev/null 2>&1
  for _ in $(seq 1 50); do $CTR task ls 2>/dev/null | grep -q '^signet-ds ' || break; sleep 0.1; done
  $CTR task rm -f signet-ds >/dev/null 2>&1; $CTR container rm signet-ds >/dev/null 2>&1
  true
}
trap cleanup EXIT

need_tools
world_up || exit 1
cargo build --release --locked -q --bin signet
VERSION=$(target/release/signet version | awk '{print $2}')
IMG=$REGISTRY/signet/signet:$VERSION
rm -rf target/image
D1=$(python3 packaging/image/build-image.py target/release/signet target/image "$VERSION")
D2=$(python3 packaging/image/build-image.py target/release/signet target/image-again "$VERSION")
[ "$D1" = "$D2" ] && ok "the image build is reproducible ($D1)" || bad "the image build is reproducible" "$D1 vs $D2"
rm -rf target/image-again
skopeo copy -q --dest-tls-verify=false "oci:target/image:$VERSION" "docker://$IMG"
cosign sign --key "$COSIGN_KEY" "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y "$REGISTRY/signet/signet@$D1" >/dev/null 2>&1
cleanup
$CTR images pull --plain-http "$IMG" >/dev/null

POL=$WORK/image-policy; rm -rf "$POL"
write_policy "$POL" probe "$REGISTRY/probe/**" "$COSIGN_PUB"
LOG=$WORK/image-signet.log; rm -f "$LOG"
$CTR run -d --net-host \
  --mount type=bind,src=/var/run/nri,dst=/var/run/nri,options=rbind:rw \
  --mount type=bind,src=/run/containerd,dst=/run/containerd,options=rbind:rw \
  --mount "type=bind,src=$POL,dst=/etc/signet/policies,options=rbind:ro" \
  --mount "type=bind,src=$(dirname "$COSIGN_PUB"),dst=$(dirname "$COSIGN_PUB"),options=rbind:ro" \
  --log-uri "file://$LOG" \
  "$IMG" signet-ds /usr/bin/signet run --insecure-registry "$REGISTRY" --log-format plain >/dev/null
for _ in $(seq 1 100); do grep -q 'registered with the runtime' "$LOG" 2>/dev/null && break; sleep 0.1; done
if grep -q 'registered with the runtime' "$LOG" 2>/dev/null; then
  ok "the image runs signet, which registers with containerd over the host's NRI socket"
else
  bad "the image runs signet, which registers with containerd over the host's NRI socket" "$(cat "$LOG" 2>&1)"
fi
OUT=$($CRI run "$IMG_UNSIGNED" 2>&1); rc=$?
if [ $rc = 3 ] && grep -q 'no signatures found' <<<"$OUT"; then
  ok "containerised signet rejects the unsigned image"
else
  bad "containerised signet rejects the unsigned image" "rc=$rc $OUT"
fi
OUT=$($CRI run "$IMG_SIGNED" 2>&1); rc=$?
if [ $rc = 0 ] && grep -q 'hello from signed' <<<"$OUT"; then
  ok "containerised signet admits the signed image (digest from containerd's store via the mounted socket)"
else
  bad "containerised signet admits the signed image (digest from containerd's store via the mounted socket)" "rc=$rc $OUT"
fi
echo "image: $PASSED passed, $FAILED failed ($IMG)"
[ "$FAILED" = 0 ]
