#!/usr/bin/env bash
# The project's own e2e world on one Debian 12 machine (root, no systemd needed, cgroup v1 or
# v2): a local registry with byte-reproducible images signed by real cosign 2 and 3, skopeo,
# notation and oras, an RFC 3161 timestamp authority (integration/tsa.py), and two real containerd
# runtimes with NRI that the suite runs against in turn.
#
#   bash integration/world.sh up [RUNTIME...]   packages, registry, images, signatures, the
#                                              runtimes (default: all), the CRI client; idempotent
#   bash integration/world.sh env [RUNTIME]     print the env file to source for a runtime
#   bash integration/world.sh restart RUNTIME   restart one containerd (picks up plugins, config)
#   bash integration/world.sh status
#   bash integration/world.sh down [--purge]    stop what `up` started (by PID file); --purge also
#                                              deletes the state dir and the runtimes' roots
#
# RUNTIME is `1.7` (containerd 1.7.24 from trixie, NRI v0.6.1, the system package) or `2.x`
# (containerd 2 from sid, NRI v0.8.0, extracted into the state dir with its own root, state,
# sockets and shim). State lives in $WORLD_STATE (default <repo>/target/e2e-state); each
# runtime's variables are in $WORLD_STATE/env-<RUNTIME>.sh, and env.sh is the 1.7 one.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
STATE=${WORLD_STATE:-${PROBE_STATE:-$REPO/target/e2e-state}}
REG=127.0.0.1:5000
# The timestamp authority: cosign 2's --timestamp-server-url, cosign 3's signing config.
TSA_ADDR=127.0.0.1:5317
TSA_URL=http://$TSA_ADDR/api/v1/timestamp
ALL_RUNTIMES="1.7 2.x"
PREFIX=$STATE/prefix
# containerd 1.7 (NRI 0.6.1) drops a plugin that misses this deadline and creates the
# container anyway, so the verifying plugin needs real time.
NRI_REQUEST_TIMEOUT=2s
export COSIGN_PASSWORD=""
export DEBIAN_FRONTEND=noninteractive
# cosign 3 keeps its TUF cache here, never under ~/.sigstore; notation its keys and config
# here, never under ~/.config.
export TUF_ROOT=$STATE/tuf NOTATION_CONFIG=$STATE/notation

say()  { printf '=== %s\n' "$*"; }
die()  { echo "world: $*" >&2; exit 1; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# until SECONDS CMD...: poll a condition instead of sleeping a fixed time.
until_ok() {
  local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
  while ! "$@" >/dev/null 2>&1; do
    [ "$(date +%s%N)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }

# ------------------------------------------------------------------------------ packages
# Only named packages come from trixie and sid: trixie is pinned at 100 and sid below it, so
# nothing already installed is upgraded (`-t trixie` would upgrade ~100 packages and glibc).
apt_sources() {
  local changed=0
  if [ ! -f /etc/apt/sources.list.d/signet-world.sources ]; then
    cat > /etc/apt/sources.list.d/signet-world.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    changed=1
  fi
  if [ ! -f /etc/apt/preferences.d/signet-world ]; then
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n\nPackage: *\nPin: release n=sid\nPin-Priority: 50\n' \
      > /etc/apt/preferences.d/signet-world
    changed=1
  fi
  # (no grep -q on a pipe: SIGPIPE under pipefail)
  if [ $changed = 1 ] || ! apt-cache policy containerd | grep sid >/dev/null; then apt-get update -qq; fi
}

packages() {
  local need=0 p
  case "$(pkg_version containerd)" in 1.7.*) ;; *) need=1 ;; esac
  case "$(pkg_version cosign)" in 2.*) ;; *) need=1 ;; esac
  case "$(pkg_version notation)" in 1.*) ;; *) need=1 ;; esac
  case "$(pkg_version oras)" in 1.*) ;; *) need=1 ;; esac
  for p in docker-registry runc skopeo busybox-static python3-venv curl protobuf-compiler gpg openssl; do
    [ -n "$(pkg_version $p)" ] || need=1
  done
  if [ $need = 1 ]; then
    apt_sources
    # docker-registry ships an init script; package scripts must not start services here.
    local policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; policy=1; fi
    apt-get install -y -q --no-install-recommends \
      containerd/trixie cosign/trixie docker-registry/trixie notation/sid oras/trixie \
      runc skopeo busybox-static python3-venv curl protobuf-compiler gpg openssl
    [ $policy = 0 ] || rm -f /usr/sbin/policy-rc.d
  fi
  extract_second_versions
}

# extract PKG SUITE DIR: the suite's build of PKG unpacked into DIR (not installed: the system
# keeps the other version under the same package name).
extract() {
  local pkg=$1 suite=$2 dir=$3 deb
  [ -f "$dir/.extracted" ] && return 0
  apt_sources
  mkdir -p "$STATE/debs" "$dir"
  rm -f "$STATE/debs/${pkg}_"*.deb
  (cd "$STATE/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg/$suite" >/dev/null)
  deb=$(ls "$STATE/debs/${pkg}_"*.deb)
  dpkg-deb -x "$deb" "$dir"
  dpkg-deb -f "$deb" Version > "$dir/.extracted"
}

extract_second_versions() {
  extract containerd sid "$PREFIX/containerd-2"
  extract cosign sid "$PREFIX/cosign-3"
  # bookworm's skopeo 1.9 has sigstore signing patched out; trixie's 1.18 needs glibc 2.38 (one
  # symbol), so it runs under trixie's loader and libc from a private directory.
  if [ ! -f "$PREFIX/skopeo-1.18/.extracted" ]; then
    extract libc6 trixie "$PREFIX/skopeo-1.18"
    rm "$PREFIX/skopeo-1.18/.extracted"
    extract skopeo trixie "$PREFIX/skopeo-1.18"
  fi
  cat > "$PREFIX/skopeo-1.18/skopeo" <<EOF
#!/bin/sh
# trixie's skopeo under trixie's glibc (private loader), bookworm's gpgme and sqlite
L=$PREFIX/skopeo-1.18/usr/lib/x86_64-linux-gnu
exec \$L/ld-linux-x86-64.so.2 --library-path \$L:/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu $PREFIX/skopeo-1.18/usr/bin/skopeo "\$@"
EOF
  chmod +x "$PREFIX/skopeo-1.18/skopeo"
  COSIGN3=$PREFIX/cosign-3/usr/bin/cosign
  SKOPEO_SIGSTORE=$PREFIX/skopeo-1.18/skopeo
}

# ------------------------------------------------------------------------------ registry
registry_up() {
  local d=$STATE/registry
  mkdir -p "$d/data"
  printf 'version: 0.1\nlog: {level: warn}\nstorage:\n  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\nhttp: {addr: "%s"}\n' \
    "$d/data" "$REG" > "$d/config.yml"
  if ! alive "$d/registry.pid"; then
    curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && die "something not started by this world already serves $REG"
    setsid docker-registry serve "$d/config.yml" >> "$d/registry.log" 2>&1 < /dev/null &
    echo $! > "$d/registry.pid"
  fi
  until_ok 10 curl -fsS "http://$REG/v2/" || die "registry did not come up: $(tail -5 "$d/registry.log")"
}

# ------------------------------------------------------------------------------ timestamp authority
# Its keys and certificates are made once (integration/testpki.sh pki_tsa) and kept with the state.
tsa_up() {
  local d=$STATE/tsa
  mkdir -p "$d"
  [ -f "$d/tsa.cnf" ] || (cd "$d" && . "$HERE/testpki.sh" && pki_tsa)
  if ! alive "$d/tsa.pid"; then
    curl -fsS "http://$TSA_ADDR/" >/dev/null 2>&1 && die "something not started by this world already serves $TSA_ADDR"
    setsid /usr/bin/python3 "$HERE/tsa.py" "$d" --port "${TSA_ADDR##*:}" >> "$d/tsa.log" 2>&1 < /dev/null &
    echo $! > "$d/tsa.pid"
  fi
  until_ok 10 curl -fsS "http://$TSA_ADDR/" || die "timestamp authority did not come up: $(tail -5 "$d/tsa.log")"
}

# ------------------------------------------------------------------------------ images and signatures
# push_image NAME [ENTRYPOINT-JSON CMD-JSON]: build and push $REG/probe/NAME:v1; prints the digest.
push_image() {
  local name=$1 ep=${2:-null} cmd=${3:-}
  [ -n "$cmd" ] || cmd="[\"/bin/sh\",\"-c\",\"echo hello from $name; trap 'exit 0' TERM; sleep 2147483647 & wait\"]"
  rm -rf "$STATE/oci/$name"
  /usr/bin/python3 "$HERE/mkimage.py" "$STATE/oci/$name" "$name" --entrypoint "$ep" --cmd "$cmd" >/dev/null
  skopeo copy -q --dest-tls-verify=false "oci:$STATE/oci/$name:latest" "docker://$REG/probe/$name:v1"
  skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REG/probe/$name:v1"
}

COSIGN_REG=(--allow-insecure-registry --allow-http-registry)
verifies() { cosign verify --key "$1" "${COSIGN_REG[@]}" --insecure-ignore-tlog "$2" >/dev/null 2>&1; }

images_and_signatures() {
  D_SIGNED=$(push_image signed)
  D_UNSIGNED=$(push_image unsigned)
  D_PAUSE=$(push_image pause '["/bin/sleep","infinity"]' null)
  local k
  for k in keys keys2; do
    mkdir -p "$STATE/$k"
    [ -f "$STATE/$k/cosign.key" ] || (cd "$STATE/$k" && cosign generate-key-pair >/dev/null 2>&1)
  done
  # Signatures are made once: the images are reproducible, so their digests do not change.
  if ! verifies "$STATE/keys/cosign.pub" "$REG/probe/signed@$D_SIGNED"; then
    cosign sign --key "$STATE/keys/cosign.key" "${COSIGN_REG[@]}" --tlog-upload=false -y "$REG/probe/signed@$D_SIGNED" >/dev/null 2>&1
  fi
  verifies "$STATE/keys/cosign.pub" "$REG/probe/signed@$D_SIGNED" || die "cosign does not verify its own signature"
  ! verifies "$STATE/keys/cosign.pub" "$REG/probe/unsigned@$D_UNSIGNED" || die "the unsigned image verifies"

  # The second signer: skopeo's sigstore signing with the second key pair.
  mkdir -p "$STATE/registries.d"
  printf 'docker:\n  %s:\n    use-sigstore-attachments: true\n' "$REG" > "$STATE/registries.d/local.yaml"
  : > "$STATE/keys2/empty-pass"
  rm -rf "$STATE/oci/skopeo-signed"
  D_SKOPEO=$(/usr/bin/python3 "$HERE/mkimage.py" "$STATE/oci/skopeo-signed" skopeo-signed --entrypoint null \
    --cmd "[\"/bin/sh\",\"-c\",\"echo hello from skopeo-signed; trap 'exit 0' TERM; sleep 2147483647 & wait\"]")
  if ! verifies "$STATE/keys2/cosign.pub" "$REG/probe/skopeo-signed@$D_SKOPEO"; then
    "$SKOPEO_SIGSTORE" --registries.d "$STATE/registries.d" copy -q --dest-tls-verify=false \
      --sign-by-sigstore-private-key "$STATE/keys2/cosign.key" --sign-passphrase-file "$STATE/keys2/empty-pass" \
      "oci:$STATE/oci/skopeo-signed:latest" "docker://$REG/probe/skopeo-signed:v1"
  fi
  verifies "$STATE/keys2/cosign.pub" "$REG/probe/skopeo-signed@$D_SKOPEO" || die "skopeo's signature does not verify"
  ! verifies "$STATE/keys/cosign.pub" "$REG/probe/skopeo-signed@$D_SKOPEO" || die "the wrong key verifies skopeo's signature"

  # cosign 3 signs offline only with a signing config naming no Fulcio, OIDC, Rekor or TSA.
  mkdir -p "$TUF_ROOT"
  [ -f "$STATE/cosign3-offline.json" ] || HOME=$STATE "$COSIGN3" signing-config create --no-default-fulcio \
    --no-default-oidc --no-default-rekor --no-default-tsa --out "$STATE/cosign3-offline.json" >/dev/null 2>&1 \
    || die "cosign 3 could not write an offline signing config"
  # ... and one naming only the world's TSA: offline, with an RFC 3161 timestamp.
  [ -f "$STATE/cosign3-tsa.json" ] || HOME=$STATE "$COSIGN3" signing-config create --no-default-fulcio \
    --no-default-oidc --no-default-rekor --no-default-tsa --tsa-config=EXACT:1 \
    --tsa="url=$TSA_URL,api-version=1,start-time=2024-01-01T00:00:00Z,operator=signet-world" \
    --out "$STATE/cosign3-tsa.json" >/dev/null 2>&1 || die "cosign 3 could not write a signing config naming the TSA"

  # notation: a test certificate of its own, in a config dir inside the world.
  if ! notation cert ls 2>/dev/null | grep signet-world >/dev/null; then
    notation cert generate-test --default signet-world >/dev/null
  fi
}

# ------------------------------------------------------------------------------ runtimes
rt_dir() { echo "$STATE/rt-$1"; }

# Per-runtime facts: binaries, sockets and where its config says what.
rt_vars() {
  local rt=$1 d; d=$(rt_dir "$rt")
  RT_DIR=$d
  case $rt in
    1.7)
      RT_BIN=/usr/bin/containerd RT_PATH=$PATH RT_CTR=/usr/bin/ctr
      RT_SOCK=/run/containerd/containerd.sock RT_NRI=/var/run/nri/nri.sock
      RT_PLUGINS=/opt/nri/plugins RT_PLUGIN_CONF=/etc/nri/conf.d ;;
    2.x)
      RT_BIN=$PREFIX/containerd-2/usr/bin/containerd RT_CTR=$PREFIX/containerd-2/usr/bin/ctr
      # its own shim must be found before 1.7's on PATH
      RT_PATH=$PREFIX/containerd-2/usr/bin:$PATH
      RT_SOCK=$d/run/containerd.sock RT_NRI=$d/run/nri/nri.sock
      RT_PLUGINS=$d/nri/plugins RT_PLUGIN_CONF=$d/nri/conf.d ;;
    *) die "unknown runtime '$rt' (known: $ALL_RUNTIMES)" ;;
  esac
}

hosts_toml() {
  local c=$1 h
  mkdir -p "$c/$REG" "$c/localhost:5000" "$c/docker.io"
  for h in "$REG" localhost:5000; do
    printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve", "push"]\n' "$h" "$h" > "$c/$h/hosts.toml"
  done
  # docker.io/* is served by the local registry as a plain-HTTP mirror (the Hub is unreachable).
  printf 'server = "https://registry-1.docker.io"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$REG" > "$c/docker.io/hosts.toml"
}

# The NRI plugin's keys, the same in both config versions (only the table name is quoted
# differently).
nri_keys() {
  cat <<EOF
  disable = false
  disable_connections = false
  plugin_config_path = "$RT_PLUGIN_CONF"
  plugin_path = "$RT_PLUGINS"
  plugin_registration_timeout = "5s"
  plugin_request_timeout = "$NRI_REQUEST_TIMEOUT"
  socket_path = "$RT_NRI"
EOF
}


rt_config() {
  local rt=$1 snap=overlayfs restrict=true capeff
  grep -qw overlay /proc/filesystems || snap=native
  # Without CAP_SYS_RESOURCE runc cannot lower oom_score_adj for the sandbox (this VM drops it).
  capeff=$(awk '/^CapEff/{print $2}' /proc/self/status)
  if (( (0x$capeff >> 24) & 1 )); then restrict=false; fi
  rt_vars "$rt"
  mkdir -p "$RT_DIR" "$(dirname "$RT_NRI")" "$RT_PLUGINS" "$RT_PLUGIN_CONF"
  hosts_toml "$RT_DIR/certs.d"
  case $rt in
    1.7) cat <<EOF
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "$RT_SOCK"
[plugins."io.containerd.nri.v1.nri"]
$(nri_keys)
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REG/probe/pause:v1"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = $restrict
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$snap"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$RT_DIR/certs.d"
EOF
    ;;
    2.x) cat <<EOF
version = 3
root = "$RT_DIR/root"
state = "$RT_DIR/state"
[grpc]
  address = "$RT_SOCK"
[ttrpc]
  address = "$RT_SOCK.ttrpc"
[plugins.'io.containerd.nri.v1.nri']
$(nri_keys)
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "$snap"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$REG/probe/pause:v1"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$RT_DIR/certs.d"
[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = $restrict
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        # sid's runc needs glibc 2.38; bookworm's runc 1.1.5 runs 2.x's pods
        BinaryName = "/usr/sbin/runc"
        Root = "$RT_DIR/runc"
        SystemdCgroup = false
EOF
    ;;
  esac
}

cri() { env CRI_ENDPOINT="unix://$RT_SOCK" CRI_STATE="$STATE" "$STATE/venv/bin/python" "$HERE/cri.py" "$@"; }

rt_stop() {
  rt_vars "$1"
  local pidf=$RT_DIR/containerd.pid p
  alive "$pidf" || { rm -f "$pidf"; return 0; }
  # Pods first, so their shims exit with them.
  [ -x "$STATE/venv/bin/python" ] && cri cleanup >/dev/null 2>&1 || true
  p=$(cat "$pidf"); kill "$p"
  until_ok 10 bash -c "! kill -0 $p" || kill -9 "$p" 2>/dev/null || true
  rm -f "$pidf"
}

rt_start() {
  local rt=$1
  rt_vars "$rt"
  local pidf=$RT_DIR/containerd.pid
  mkdir -p "$RT_DIR"
  rt_config "$rt" > "$RT_DIR/config.toml.new"
  if alive "$pidf" && ! cmp -s "$RT_DIR/config.toml.new" "$RT_DIR/config.toml"; then rt_stop "$rt"; fi
  mv "$RT_DIR/config.toml.new" "$RT_DIR/config.toml"
  if ! alive "$pidf"; then
    if "$RT_CTR" --address "$RT_SOCK" version >/dev/null 2>&1; then die "a containerd not started by this world serves $RT_SOCK"; fi
    rm -f "$RT_NRI"
    PATH=$RT_PATH setsid "$RT_BIN" --config "$RT_DIR/config.toml" >> "$RT_DIR/containerd.log" 2>&1 < /dev/null &
    echo $! > "$pidf"
  fi
  until_ok 20 test -S "$RT_NRI" || die "containerd $rt: no NRI socket $RT_NRI: $(tail -20 "$RT_DIR/containerd.log")"
  # The gRPC socket answers before the CRI service is initialised; a pull needs it ready.
  until_ok 30 cri pull "$REG/probe/pause:v1" || die "containerd $rt: CRI not ready: $(tail -20 "$RT_DIR/containerd.log")"
}

# ------------------------------------------------------------------------------ CRI client
cri_client() {
  [ -f "$STATE/cri/api_pb2_grpc.py" ] && return 0
  local proto
  find_proto() { ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/k8s-cri-0.*/proto/v1.proto 2>/dev/null | sort -V | tail -1; }
  proto=$(find_proto || true)
  if [ -z "$proto" ]; then
    # The CRI proto as the k8s-cri crate ships it, fetched by cargo from crates.io.
    mkdir -p "$STATE/cri-fetch/src"; echo 'fn main() {}' > "$STATE/cri-fetch/src/main.rs"
    # (its own workspace: the default state dir is inside this repository's)
    printf '[package]\nname = "cri-fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nk8s-cri = "0.11"\n[workspace]\n' > "$STATE/cri-fetch/Cargo.toml"
    (cd "$STATE/cri-fetch" && cargo fetch -q)
    proto=$(find_proto)
  fi
  [ -x "$STATE/venv/bin/python" ] || /usr/bin/python3 -m venv "$STATE/venv"
  "$STATE/venv/bin/pip" install -q grpcio grpcio-tools
  mkdir -p "$STATE/cri"; cp "$proto" "$STATE/cri/api.proto"
  "$STATE/venv/bin/python" -m grpc_tools.protoc -I "$STATE/cri" --python_out="$STATE/cri" --grpc_python_out="$STATE/cri" "$STATE/cri/api.proto"
}

# ------------------------------------------------------------------------------ env files
write_env() {
  local rt=$1 version
  rt_vars "$rt"
  version=$("$RT_BIN" --version | awk '{print $3}')
  cat > "$STATE/env-$rt.sh" <<EOF
# written by integration/world.sh for runtime $rt
export WORLD_STATE=$STATE PROBE_STATE=$STATE
export RUNTIME=$rt RUNTIME_VERSION=$version
export REGISTRY=$REG
export CONTAINERD_SOCK=$RT_SOCK NRI_SOCK=$RT_NRI
export CONTAINERD_CONFIG=$RT_DIR/config.toml CONTAINERD_CERTS=$RT_DIR/certs.d
export NRI_PLUGIN_DIR=$RT_PLUGINS
export CRI_ENDPOINT=unix://$RT_SOCK
export CRI="env CRI_ENDPOINT=unix://$RT_SOCK CRI_STATE=$STATE $STATE/venv/bin/python $HERE/cri.py"
export CTR="$RT_CTR --address $RT_SOCK -n k8s.io"
export SKOPEO_SIGSTORE=$SKOPEO_SIGSTORE
export COSIGN3=$COSIGN3 COSIGN3_SIGNING_CONFIG=$STATE/cosign3-offline.json TUF_ROOT=$TUF_ROOT
export TSA_URL=$TSA_URL TSA_CHAIN=$STATE/tsa/tsa-chain.pem COSIGN3_TSA_SIGNING_CONFIG=$STATE/cosign3-tsa.json
export NOTATION_CONFIG=$NOTATION_CONFIG
export IMG_SIGNED=$REG/probe/signed:v1 IMG_SIGNED_DIGEST=$D_SIGNED
export IMG_UNSIGNED=$REG/probe/unsigned:v1 IMG_UNSIGNED_DIGEST=$D_UNSIGNED
export IMG_SKOPEO_SIGNED=$REG/probe/skopeo-signed:v1 IMG_SKOPEO_SIGNED_DIGEST=$D_SKOPEO
export IMG_PAUSE=$REG/probe/pause:v1 IMG_PAUSE_DIGEST=$D_PAUSE
export COSIGN_PUB=$STATE/keys/cosign.pub COSIGN_KEY=$STATE/keys/cosign.key
export COSIGN_PUB2=$STATE/keys2/cosign.pub COSIGN_KEY2=$STATE/keys2/cosign.key
export COSIGN_PASSWORD=
EOF
}

cmd_up() {
  [ "$(id -u)" = 0 ] || die "needs root (containerd)"
  local rts=${*:-$ALL_RUNTIMES} rt t0 t
  mkdir -p "$STATE"
  t0=$(date +%s)
  packages;              t=$(date +%s); say "packages ready ($((t - t0)) s)"
  registry_up
  tsa_up
  images_and_signatures; say "registry, images and signatures ready ($(( $(date +%s) - t )) s)"; t=$(date +%s)
  cri_client
  for rt in $rts; do
    rt_start "$rt"
    write_env "$rt"
    say "containerd $rt ($("$RT_BIN" --version | awk '{print $3}')) up: $RT_SOCK, NRI $RT_NRI"
  done
  [ -f "$STATE/env-1.7.sh" ] && cp "$STATE/env-1.7.sh" "$STATE/env.sh"
  say "world up in $(( $(date +%s) - t0 )) s; env: $STATE/env-<runtime>.sh"
}

cmd_down() {
  local rt
  for rt in $ALL_RUNTIMES; do rt_stop "$rt"; done
  local p
  for p in "$STATE/registry/registry.pid" "$STATE/tsa/tsa.pid"; do
    if alive "$p"; then kill "$(cat "$p")"; until_ok 10 bash -c "! kill -0 $(cat "$p")" || true; fi
    rm -f "$p"
  done
  # runc leaves the (empty) per-pod cgroup parents behind
  local d
  for d in /sys/fs/cgroup/*/probe-pods /sys/fs/cgroup/probe-pods; do
    [ -d "$d" ] && find "$d" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null; rmdir "$d" 2>/dev/null || true
  done
  if [ "${1:-}" = --purge ]; then
    if grep -E ' /run/containerd| /var/lib/containerd| '"$STATE" /proc/mounts >/dev/null; then die "mounts remain; not purging"; fi
    # containerd 1.7's root is the system's: never pull it from under a containerd still running.
    if ctr --address /run/containerd/containerd.sock version >/dev/null 2>&1; then
      die "a containerd not stopped by this down serves /run/containerd; not purging"
    fi
    rm -rf "$STATE" /var/lib/containerd /run/containerd /var/run/nri
  fi
  say "world down"
}

cmd_status() {
  local rt
  alive "$STATE/registry/registry.pid" && echo "registry: up ($REG)" || echo "registry: down"
  alive "$STATE/tsa/tsa.pid" && echo "timestamp authority: up ($TSA_URL)" || echo "timestamp authority: down"
  for rt in $ALL_RUNTIMES; do
    rt_vars "$rt"
    if alive "$RT_DIR/containerd.pid"; then echo "containerd $rt: up ($RT_SOCK)"; else echo "containerd $rt: down"; fi
  done
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  packages) packages ;;
  env) f=$STATE/env-${2:-1.7}.sh; [ -f "$f" ] || die "no $f: run 'world.sh up ${2:-}' first"; cat "$f" ;;
  restart) [ -n "${2:-}" ] || die "restart RUNTIME"; extract_second_versions >/dev/null; rt_stop "$2"; rt_start "$2" ;;
  *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
