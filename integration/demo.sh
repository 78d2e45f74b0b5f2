#!/usr/bin/env bash
# The demo: bring up a real containerd 1.7 + NRI node with a local registry and signed images,
# run signet against it, and show a signed container start and an unsigned one rejected.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
trap stop_signet EXIT

say "1. the world: containerd $(containerd --version 2>/dev/null | awk '{print $3}') with NRI, registry, cosign-signed images"
need_tools
world_up
echo "signed image:   $IMG_SIGNED ($IMG_SIGNED_DIGEST)"
echo "unsigned image: $IMG_UNSIGNED ($IMG_UNSIGNED_DIGEST)"

say "2. build signet"
build_signet
"$SIGNET" version

say "3. policy: images under $REGISTRY/probe/ must carry a cosign signature by $COSIGN_PUB"
POL=$WORK/demo-policy
rm -rf "$POL"
write_policy "$POL" probe-images "$REGISTRY/probe/**" "$COSIGN_PUB"
cat "$POL/probe-images.yaml"

say "4. start signet as an NRI plugin (external mode, $NRI_SOCK)"
start_signet "$POL"
grep -E 'policy loaded|registered|configured' "$SIGNET_LOG"

say "5. a signed image starts"
$CRI run "$IMG_SIGNED"

say "6. an unsigned image is rejected before the container is created"
set +e
$CRI run "$IMG_UNSIGNED"
rc=$?
set -e
[ $rc = 3 ] || { echo "expected a rejection (exit 3), got $rc" >&2; exit 1; }

say "7. signet's decision log"
grep 'decision' "$SIGNET_LOG"
say "demo done: signed ran, unsigned was rejected"
