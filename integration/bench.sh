#!/usr/bin/env bash
# The fetch benchmark of issue #14 on the project's world; rewrites BENCHMARKS.md. Cold
# verification of cosign 2.5 (`.sig`) and cosign 3.1.1 (bundle under the referrers fallback
# tag) images through a proxy that delays every registry request by D ms (D = 0, 20, 100),
# by the signet daemon over NRI, by `signet verify`, and by cosign 2.5 and 3.1.1 in the same
# run; the burst of 200 at D = 100 ms; start-up; idle RSS. Targets are checked and reported in
# BENCHMARKS.md, never asserted in tests. Needs root and the world (integration/world.sh; it
# brings up what is missing, and on a machine shared with other users of the world, hold
# whatever lock they use from `up` to `down`). About 9 minutes after the release build on a
# shared 2-core machine, world start and the first signing of its 33 images included.
#
#   bash integration/bench.sh            BENCH_DELAYS="0 20 100" by default
#
# The measuring and the report are integration/bench.py; the proxy is
# integration/faulty-registry.py (its `delay:MS` mode and REQUEST_LOG).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO"

DELAYS=${BENCH_DELAYS:-"0 20 100"}
N_COLD=6       # images of each kind for the cold measures (medians over these)
N_BURST=20     # images of the burst, half of each kind
BURST=200

need_tools
world_up
say "release build (signet, and the NRI driver of the nri crate)"
cargo build --release --locked -q --bin signet
# An example of the nri crate, so that its `testing` feature (the runtime's side) is never
# compiled into the signet binary measured.
cargo build --release --locked -q -p nri --features testing --example nri_bench
REL=$REPO/target/release/signet
DRIVER=$REPO/target/release/examples/nri_bench

B=$WORK/bench; rm -rf "$B"; mkdir -p "$B/policies" "$B/home"
PROXY_PORT=5097 PROXY=127.0.0.1:5097
MODE=$B/mode; echo pass > "$MODE"
REQUEST_LOG=$B/requests.jsonl python3 "$REPO/integration/faulty-registry.py" "$PROXY_PORT" "$REGISTRY" "$MODE" &
PROXY_PID=$!
# containerd pulls the bench images through the proxy (plain HTTP), under the proxy's name.
mkdir -p "$CONTAINERD_CERTS/$PROXY"
printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$PROXY" "$PROXY" \
  > "$CONTAINERD_CERTS/$PROXY/hosts.toml"
BENCH_PID=
cleanup_bench() {
  [ -z "$BENCH_PID" ] || { kill -TERM "$BENCH_PID" 2>/dev/null; wait "$BENCH_PID" 2>/dev/null || true; }
  kill "$PROXY_PID" 2>/dev/null || true
  rm -rf "${CONTAINERD_CERTS:?}/$PROXY"
  $CTR images ls -q 2>/dev/null | grep "^$PROXY/bench/" | xargs -r $CTR images rm >/dev/null 2>&1 || true
  $CTR snapshots ls 2>/dev/null | awk '$1 ~ /^bench-rootfs-/ {print $1}' | xargs -r $CTR snapshots rm >/dev/null 2>&1 || true
}
trap cleanup_bench EXIT
for _ in $(seq 1 50); do curl -fsS -o /dev/null "http://$PROXY/v2/" 2>/dev/null && break; sleep 0.1; done

# ---------------------------------------------------------------------------------- fixtures
# fixture NAME sig|bundle: an image of its own content (mkimage.py is reproducible, so a re-run
# finds the same digest and its signature already there), signed once by cosign 2.5 or 3.1.1
# straight at the registry, then pulled by containerd through the proxy. Prints its digest.
c3() { HOME=$B/home "$COSIGN3" "$@" "${COSIGN_REG_FLAGS[@]}" --signing-config "$COSIGN3_SIGNING_CONFIG" -y; }
fixture() {
  local name=$1 kind=$2 d tag
  rm -rf "$B/oci-$name"
  python3 "$REPO/integration/mkimage.py" "$B/oci-$name" "bench-$name" --entrypoint null \
    --cmd "[\"/bin/sh\",\"-c\",\"echo hello from bench-$name; sleep 2147483647\"]" >/dev/null
  skopeo copy -q --dest-tls-verify=false "oci:$B/oci-$name:latest" "docker://$REGISTRY/bench/$name:v1"
  d=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REGISTRY/bench/$name:v1")
  tag=sha256-${d#sha256:}; [ "$kind" = sig ] && tag=$tag.sig
  if ! curl -fsS -o /dev/null -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json' \
       "http://$REGISTRY/v2/bench/$name/manifests/$tag"; then
    case $kind in
      sig) cosign sign --key "$COSIGN_KEY" "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y "$REGISTRY/bench/$name@$d" ;;
      bundle) c3 sign --key "$COSIGN_KEY" "$REGISTRY/bench/$name@$d" ;;
    esac >> "$B/sign.log" 2>&1 || { echo "signing bench/$name failed:" >&2; tail -20 "$B/sign.log" >&2; exit 1; }
  fi
  $CRI pull "$PROXY/bench/$name:v1" >/dev/null
  echo "$d"
}
say "fixtures: $N_COLD + $N_COLD cold images, $N_BURST burst images, 100 policies"
{
  echo '{'
  for kind in sig bundle; do
    echo "\"$kind\": ["
    for i in $(seq 1 "$N_COLD"); do
      d=$(fixture "$kind-$i" "$kind")
      printf '{"tag_ref": "%s", "digest_ref": "%s"}%s\n' "$PROXY/bench/$kind-$i:v1" "$PROXY/bench/$kind-$i@$d" \
        "$([ "$i" = "$N_COLD" ] || echo ,)"
    done
    echo '],'
  done
  d=$(fixture first sig)
  printf '"first": {"tag_ref": "%s", "digest_ref": "%s"},\n' "$PROXY/bench/first:v1" "$PROXY/bench/first@$d"
  echo '"burst": ['
  for i in $(seq 1 "$N_BURST"); do
    kind=sig; [ $((i % 2)) = 0 ] && kind=bundle
    fixture "burst-$i" "$kind" >/dev/null
    printf '"%s"%s\n' "$PROXY/bench/burst-$i:v1" "$([ "$i" = "$N_BURST" ] || echo ,)"
  done
  echo ']}'
} > "$B/fixtures.json"
python3 -m json.tool "$B/fixtures.json" >/dev/null
for i in $(seq 1 99); do write_policy "$B/policies" "other-$i" "registry-$i.example.com/**" "$COSIGN_PUB"; done
write_policy "$B/policies" bench "$PROXY/bench/**" "$COSIGN_PUB"

# ---------------------------------------------------------------------------------- runs
# fixtures KIND...: the tag references of those fixtures; first_digest: the first's by digest.
fixtures() { python3 -c 'import json, sys; f = json.load(open(sys.argv[1])); f["first_digest"] = [f["first"]["digest_ref"]]
print(" ".join(i if isinstance(i, str) else i["tag_ref"] for k in sys.argv[2:] for i in f[k]))' "$B/fixtures.json" "$@"; }
# Each image with a rootfs snapshot made from its layers, as the CRI prepares a container's
# before it asks plugins: signet checks that the container runs the content it verified.
rootfs() { python3 "$REPO/integration/bench.py" rootfs "$@"; }
SEQ=$(rootfs $(fixtures sig bundle))
BURST_IMAGES=$(rootfs $(fixtures burst))
FIRST=$(rootfs "$PROXY/bench/first:v1")
export REL COSIGN3 COSIGN_PUB PROXY POLICIES=$B/policies BENCH_HOME=$B/home TUF_ROOT
for D in $DELAYS; do
  say "D = $D ms: the daemon over NRI, then signet verify, cosign 2.5 and cosign 3.1.1"
  mkdir -p "$B/d$D"; echo "delay:$D" > "$MODE"
  "$REL" run --policy-dir "$B/policies" --insecure-registry "$PROXY" --nri-socket "$B/nri.sock" \
    --containerd-socket "$CONTAINERD_SOCK" --admin-address "" --log-format plain > "$B/d$D/signet.log" 2>&1 &
  BENCH_PID=$!
  burst=0; [ "$D" = 100 ] && burst=$BURST
  # Warm decisions (cached) at D = 0 only: by tag (containerd's store is asked) and by digest.
  warm=; [ "$D" = 0 ] && warm="$FIRST $(rootfs $(fixtures first_digest))"
  NRI_BENCH_FIRST=$FIRST NRI_BENCH_SEQUENTIAL=$SEQ NRI_BENCH_WARM=$warm \
    NRI_BENCH_BURST=$burst NRI_BENCH_BURST_IMAGES=$BURST_IMAGES \
    "$DRIVER" "$B/nri.sock" "$BENCH_PID" > "$B/d$D/nri.json" 2> "$B/d$D/nri.err" \
    || { cat "$B/d$D/nri.err" >&2; tail -20 "$B/d$D/signet.log" >&2; exit 1; }
  kill -TERM "$BENCH_PID"; wait "$BENCH_PID" 2>/dev/null || true; BENCH_PID=
  python3 "$REPO/integration/bench.py" cli "$B/d$D"
done
echo pass > "$MODE"

say "BENCHMARKS.md"
python3 "$REPO/integration/bench.py" report "$B" "$REPO/BENCHMARKS.md"
cat "$REPO/BENCHMARKS.md"
