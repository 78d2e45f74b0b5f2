# Shared helpers for the demo, the e2e suite, the benchmarks and the image test: bring up the
# project's own world (integration/world.sh: registry, signed images, containerd 1.7 and 2.x
# with NRI), build signet, write policies, start and stop signet. Sourced, not run; needs root.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORLD=$REPO/integration/world.sh
export WORLD_STATE=${WORLD_STATE:-${PROBE_STATE:-$REPO/target/e2e-state}}
export PROBE_STATE=$WORLD_STATE
# The runtime this process drives (1.7 or 2.x); world_up loads its env file.
RUNTIME=${RUNTIME:-1.7}
# SIGNET=PATH runs that binary (say an installed package's) instead of building this checkout.
SIGNET_GIVEN=${SIGNET:+1}
SIGNET=${SIGNET:-${CARGO_TARGET_DIR:-$REPO/target}/debug/signet}
WORK=$WORLD_STATE/signet-$RUNTIME
SIGNET_PID=
SIGNET_LOG=

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

need_tools() {
  # protoc: containerd-client generates its gRPC code at build time.
  if ! command -v protoc >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q protobuf-compiler >/dev/null
  fi
}

# world_up: the world (started if it is not up, idempotent), then this runtime's variables.
world_up() {
  mkdir -p "$WORLD_STATE"
  bash "$WORLD" up "$RUNTIME" > "$WORLD_STATE/up-$RUNTIME.log" 2>&1 || {
    tail -30 "$WORLD_STATE/up-$RUNTIME.log" >&2; return 1; }
  # shellcheck disable=SC1090
  . "$WORLD_STATE/env-$RUNTIME.sh"
  mkdir -p "$WORK"
}

build_signet() {
  if [ -n "$SIGNET_GIVEN" ]; then [ -x "$SIGNET" ] || { echo "SIGNET=$SIGNET is not executable" >&2; return 1; }; return 0; fi
  (cd "$REPO" && cargo build -q --bin signet)
}

# write_policy DIR NAME GLOB PUBKEY|static:pass
write_policy() {
  local dir=$1 name=$2 glob=$3 key=$4
  mkdir -p "$dir"
  if [ "${key#static:}" != "$key" ]; then
    printf 'apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: %s\nspec:\n  images:\n    - glob: "%s"\n  authorities:\n    - static: {action: %s}\n' \
      "$name" "$glob" "${key#static:}" > "$dir/$name.yaml"
  else
    printf 'apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: %s\nspec:\n  images:\n    - glob: "%s"\n  authorities:\n    - name: %s\n      key:\n        path: %s\n' \
      "$name" "$glob" "$(basename "$(dirname "$key")")" "$key" > "$dir/$name.yaml"
  fi
}

# start_signet POLICY_DIR [extra flags...]: start the daemon, wait until registered.
start_signet() {
  local dir=$1; shift
  SIGNET_LOG=$WORK/signet-$(date +%s%N).log
  "$SIGNET" run --policy-dir "$dir" --insecure-registry "$REGISTRY" --log-format plain \
    --nri-socket "$NRI_SOCK" --containerd-socket "$CONTAINERD_SOCK" "$@" > "$SIGNET_LOG" 2>&1 &
  SIGNET_PID=$!
  wait_registered 1
}

# wait_registered N: until the log shows N registrations (re-registration after restarts).
wait_registered() {
  local want=$1 n
  for _ in $(seq 1 100); do
    n=$(grep -c 'registered with the runtime' "$SIGNET_LOG" 2>/dev/null || true)
    [ "${n:-0}" -ge "$want" ] && return 0
    kill -0 "$SIGNET_PID" 2>/dev/null || { echo "signet exited:" >&2; cat "$SIGNET_LOG" >&2; return 1; }
    sleep 0.1
  done
  echo "signet did not register (wanted $want):" >&2; cat "$SIGNET_LOG" >&2; return 1
}

stop_signet() {
  [ -n "$SIGNET_PID" ] || return 0
  kill -TERM "$SIGNET_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$SIGNET_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SIGNET_PID" 2>/dev/null || true   # (safe under set -e: it has usually exited)
  wait "$SIGNET_PID" 2>/dev/null || true
  SIGNET_PID=
}

restart_containerd() {
  bash "$WORLD" restart "$RUNTIME" >> "$WORLD_STATE/up-$RUNTIME.log" 2>&1
}

# copy_image SRC DST (registry-local refs, digest preserved)
# sigstore_key_policy FILE NAME "GLOB..." [LINE...]: a policy.sigstore.dev ClusterImagePolicy
# with the cosign key inline, as policy-controller users write it; each LINE (say `ctlog: ...`
# or $SLSA_ATTESTATION) is added to the key authority.
SLSA_ATTESTATION='attestations: [{name: slsa, predicateType: "https://slsa.dev/provenance/v0.2"}]'
sigstore_key_policy() {
  local file=$1 name=$2 globs=$3 g list=""
  shift 3
  for g in $globs; do list="$list{glob: \"$g\"}, "; done
  {
    printf 'apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: %s}\nspec:\n' "$name"
    printf '  images: [%s]\n  authorities:\n    - key:\n        data: |\n' "${list%, }"
    sed 's/^/          /' "$COSIGN_PUB"
    for g in "$@"; do printf '      %s\n' "$g"; done
  } > "$file"
}

# keyless_policy FILE NAME GLOB CA_BUNDLE: the example workflow's certificates from the
# test CA ($ISSUER, a github.com/example subject), no SCT required.
keyless_policy() {
  cat > "$1" <<YAML
apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: $2}
spec:
  images: [{glob: "$3"}]
  authorities:
    - name: release-workflow
      keyless:
        ca-cert: {path: $4}
        identities: [{issuer: "$ISSUER", subjectRegExp: '^https://github\.com/example/'}]
        insecureIgnoreSCT: true
YAML
}

copy_image() {
  skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$1" "docker://$2"
}

sig_tag() { echo "sha256-${1#sha256:}.sig"; }

COSIGN_REG_FLAGS=(--allow-insecure-registry --allow-http-registry)

# new_image NAME [NONCE]: build an image with content of its own (containerd names content by
# its first reference) and push it as $REGISTRY/probe/NAME:v1; prints its digest. A NONCE
# makes new content, so signatures added in this run do not pile onto a previous run's.
new_image() {
  rm -rf "$WORK/oci-$1"
  python3 "$REPO/integration/mkimage.py" "$WORK/oci-$1" "$1" --entrypoint null \
    --cmd "[\"/bin/sh\",\"-c\",\"echo hello from $1 ${2:-}; sleep 2147483647\"]" >/dev/null
  skopeo copy -q --dest-tls-verify=false "oci:$WORK/oci-$1:latest" "docker://$REGISTRY/probe/$1:v1"
  skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REGISTRY/probe/$1:v1"
}

# push_signature REPO DIGEST PAYLOAD SIGFILE BUNDLE [att]: write a cosign-layout .sig manifest
# whose one layer is PAYLOAD with its signature and Rekor bundle annotations; with `att`, an
# .att manifest whose layer is the DSSE envelope PAYLOAD (SIGFILE unused). (cosign can make the
# signature offline but cannot attach a bundle it did not get from a Rekor.)
push_signature() {
  python3 - "$REGISTRY" "$@" <<'PY'
import hashlib, json, sys, urllib.request
reg, repo, digest, payload, sigfile, bundle = sys.argv[1:7]
att = sys.argv[7:8] == ["att"]
def blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = urllib.request.urlopen(urllib.request.Request(f"http://{reg}/v2/{repo}/blobs/uploads/", method="POST")).headers["Location"]
    sep = "&" if "?" in loc else "?"
    url = loc if loc.startswith("http") else f"http://{reg}{loc}"
    urllib.request.urlopen(urllib.request.Request(f"{url}{sep}digest={d}", data=data, method="PUT",
                                                  headers={"Content-Type": "application/octet-stream"}))
    return {"digest": d, "size": len(data)}
body = open(payload, "rb").read()
config = blob(b"{}")
layer = blob(body)
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
            "layers": [dict(layer, mediaType="application/vnd.dsse.envelope.v1+json" if att
                                else "application/vnd.dev.cosign.simplesigning.v1+json", annotations={
                "dev.cosignproject.cosign/signature": "" if att else open(sigfile).read().strip(),
                "dev.sigstore.cosign/bundle": open(bundle).read().strip()})]}
tag = "sha256-" + digest.split(":", 1)[1] + (".att" if att else ".sig")
urllib.request.urlopen(urllib.request.Request(f"http://{reg}/v2/{repo}/manifests/{tag}", method="PUT",
    data=json.dumps(manifest).encode(), headers={"Content-Type": manifest["mediaType"]}))
PY
}
