#!/usr/bin/env bash
# The demo: bring up the project's own world (integration/world.sh: containerd with NRI, a
# local registry, cosign-signed images), run signet against it, and show a signed container
# start and an unsigned one rejected. RUNTIME=2.x runs it against containerd 2 instead of 1.7;
# SIGNET=PATH demos that binary (an installed package, say) instead of building this checkout.
# The world stays up afterwards for trying things by hand; the last lines say how to use and
# stop it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
trap stop_signet EXIT

say "1. the world: containerd with NRI, a registry, cosign-signed images (integration/world.sh up $RUNTIME)"
need_tools
world_up
echo "containerd:     $RUNTIME_VERSION (NRI socket $NRI_SOCK)"
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
cat <<EOF
The world is still up. To use it by hand:
  . <(bash integration/world.sh env $RUNTIME)     # REGISTRY, IMG_*, COSIGN_*, CRI, CTR, NRI_SOCK ...
  \$CRI run "\$IMG_SIGNED"                          # 0 ran, 3 rejected by the runtime
  $SIGNET run --policy-dir $POL --insecure-registry $REGISTRY --nri-socket $NRI_SOCK --containerd-socket $CONTAINERD_SOCK
  bash integration/world.sh status
Stop it:   bash integration/world.sh down           (--purge also deletes its state)
EOF
