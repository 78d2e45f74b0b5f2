#!/usr/bin/env bash
# The end-to-end suite on the project's own world (integration/world.sh): real containerd
# runtimes with NRI, a real registry, images signed by real cosign 2 and 3, skopeo and
# notation. Each check drives the CRI API like kubelet does and asserts what the node did.
#
#   bash integration/e2e.sh                                   every section on every runtime
#   E2E_RUNTIMES=2.x E2E_SECTIONS="enforce keyless" bash integration/e2e.sh
#   bash integration/e2e.sh --list                            the section names
#
# Each section runs in a subshell of its own with its own work dir, policies and signet
# process, and cleans up after itself; a failing section is reported and the run goes on.
# Ends with a per-runtime, per-section summary, the count of unverified images that started
# in enforce mode, and "N passed, N failed"; exits 1 on any failure.
set -uo pipefail   # (no -e: a failing check is counted and reported, not fatal)
. "$(dirname "$0")/lib.sh"

SECTIONS_ALL="enforce restart key2 warn config policy-reload registry-down faults no-plugin languages
  keyless referrers bundle-sign cosign3 notation gpg mirror tls namespaces image-volume policy-cli cluster preinstalled
  kms ivp"
if [ "${1:-}" = --list ]; then echo $SECTIONS_ALL; exit 0; fi
SECTIONS=${E2E_SECTIONS:-$SECTIONS_ALL}
RUNTIMES=${E2E_RUNTIMES:-1.7 2.x}
for s in $SECTIONS; do
  case " $(echo $SECTIONS_ALL) " in *" $s "*) ;; *) echo "unknown section '$s' (bash integration/e2e.sh --list)" >&2; exit 2 ;; esac
done

OUT=
# cri_run IMAGE: run through CRI; sets OUT and returns the cri.py exit code (0 ran, 3 rejected).
# CRI_RUN_ARGS: more `cri.py run` options (e.g. --image-volume REF) for the checks that set it.
CRI_RUN_ARGS=()
cri_run() { OUT=$($CRI run "$1" "${CRI_RUN_ARGS[@]}" 2>&1); }
ok()   { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
bad()  { FAILED=$((FAILED + 1)); echo "FAIL - $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/       /'; }

expect_runs() {  # name image [log-marker]
  cri_run "$2"; local rc=$?
  if [ $rc = 0 ] && { [ -z "${3:-}" ] || grep -q "$3" <<<"$OUT"; }; then ok "$1"; else bad "$1" "rc=$rc $OUT"; fi
}
# Every expect_rejected is an attempt to start an image that must not run in enforce mode.
expect_rejected() {  # name image [text that the CRI error must contain]...
  local name=$1 image=$2; shift 2
  ATTEMPTS=$((ATTEMPTS + 1))
  cri_run "$image"; local rc=$?
  [ $rc = 0 ] && STARTED_UNVERIFIED=$((STARTED_UNVERIFIED + 1))
  if [ $rc != 3 ]; then bad "$name" "expected rejection (3), got rc=$rc: $OUT"; return; fi
  local t
  for t in "$@"; do
    grep -qF -- "$t" <<<"$OUT" || { bad "$name" "rejection message lacks '$t': $OUT"; return; }
  done
  ok "$name"
}

# wait_for SECONDS CMD...: until CMD succeeds (a condition, not a fixed sleep); 1 on timeout.
wait_for() {
  local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s%N)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}
log_has() { grep -q -- "$1" "$SIGNET_LOG"; }
# up POLICY_DIR [flags...]: this section's signet; a section whose signet does not come up ends there.
up() { start_signet "$@" || { bad "signet starts and registers with containerd $RUNTIME" "$(tail -20 "$SIGNET_LOG" 2>/dev/null)"; exit 1; }; }
# The signet CLI against this runtime's image store.
signet_cli() { local sub=$1; shift; "$SIGNET" "$sub" --containerd-socket "$CONTAINERD_SOCK" "$@"; }
# metric NAME: its value from the running signet's admin endpoint (0 when absent).
metric() { curl -s http://127.0.0.1:9180/metrics | awk -v n="$1" '$1 == n {print $2; f=1} END {if (!f) print 0}'; }

# What any section may leave behind, undone before the next one.
section_cleanup() {
  stop_signet
  [ -n "${FAULT_PID:-}" ] && kill "$FAULT_PID" 2>/dev/null
  [ -n "${TLS_PID:-}" ] && kill "$TLS_PID" 2>/dev/null
  [ -n "${FAR_PID:-}" ] && kill "$FAR_PID" 2>/dev/null
  rm -rf "$CONTAINERD_CERTS/faulty.local" "$CONTAINERD_CERTS/tls.local" "$CONTAINERD_CERTS/faraway.local"
  if [ -e "$NRI_PLUGIN_DIR/05-signet" ]; then
    rm -f "$NRI_PLUGIN_DIR/05-signet" /etc/signet/config.toml
    restart_containerd
  fi
  $CRI cleanup >/dev/null 2>&1
}

# key_policy DIR KEY: a signet policy requiring KEY's cosign signature on everything under probe/.
key_policy() { rm -rf "$1"; write_policy "$1" probe "$REGISTRY/probe/**" "$2"; }

# run_section NAME: the section in a subshell; its counts land in $RESULTS/$RUNTIME.NAME.
run_section() {
  local name=$1 fn=sec_${1//-/_}
  (
    PASSED=0 FAILED=0 ATTEMPTS=0 STARTED_UNVERIFIED=0
    WORK=$RUNTIME_WORK/$name; rm -rf "$WORK"; mkdir -p "$WORK"
    # (the file name is fixed now: a failing `set -u` unwinds locals before the trap runs)
    trap "section_cleanup; "'echo "$PASSED $FAILED $ATTEMPTS $STARTED_UNVERIFIED"'" > '$RESULTS/$RUNTIME.$name'" EXIT
    say "[$RUNTIME] $name"
    "$fn"
  )
  # A section that died before its trap could write is a failure too.
  [ -s "$RESULTS/$RUNTIME.$name" ] || echo "0 1 0 0" > "$RESULTS/$RUNTIME.$name"
}

# ------------------------------------------------------------------------------ sections
sec_enforce() {
  local POL1=$WORK/key1; key_policy "$POL1" "$COSIGN_PUB"
  # Extra images made from the signed/unsigned ones, in their own repositories.
  local REPOINT=$REGISTRY/probe/repoint:v1 WRONGSIG=$REGISTRY/probe/wrongsig:v1 WRONGSIG_DIGEST
  # wrongsig has content of its own: containerd's image-name annotation is the image's *first*
  # reference, so content shared with another repository would be looked up there instead.
  rm -rf "$WORK/oci-wrongsig"
  python3 "$REPO/integration/mkimage.py" "$WORK/oci-wrongsig" wrongsig --entrypoint null \
    --cmd '["/bin/sh","-c","echo hello from wrongsig; sleep 2147483647"]' >/dev/null
  skopeo copy -q --dest-tls-verify=false "oci:$WORK/oci-wrongsig:latest" "docker://$WRONGSIG"
  WRONGSIG_DIGEST=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$WRONGSIG")
  # cosign's valid signature for the *signed* digest, planted where wrongsig's signature would
  # be: signed by the trusted key, but the payload names another digest.
  copy_image "$REGISTRY/probe/signed:$(sig_tag "$IMG_SIGNED_DIGEST")" "$REGISTRY/probe/wrongsig:$(sig_tag "$WRONGSIG_DIGEST")"

  up "$POL1"
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
  V=$(signet_cli verify "$REPOINT" --policy-dir "$POL1" --insecure-registry "$REGISTRY" --output json 2>&1)
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

  M=$(curl -s http://127.0.0.1:9180/metrics)
  if grep -q 'signet_decisions_total{result="denied",cached="false"}' <<<"$M" \
     && grep -q 'signet_cache_lookups_total{outcome="hit"}' <<<"$M" && grep -q '^signet_nri_connected 1' <<<"$M"; then
    ok "metrics: decisions by result, cache hits, NRI connection state"
  else
    bad "metrics: decisions by result, cache hits, NRI connection state" "$M"
  fi
  if [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9180/readyz)" = 200 ]; then ok "readyz: ready when registered with a policy loaded"; else bad "readyz: ready when registered with a policy loaded" "$(curl -s http://127.0.0.1:9180/readyz)"; fi
}

sec_restart() {
  local POL1=$WORK/key1; key_policy "$POL1" "$COSIGN_PUB"
  up "$POL1"
  restart_containerd
  if wait_registered 2; then ok "signet re-registers after containerd restarts"; else bad "signet re-registers after containerd restarts"; fi
  expect_rejected "after the restart, unsigned is still rejected" "$IMG_UNSIGNED" "no signatures found"
  expect_runs "after the restart, signed still runs" "$IMG_SIGNED" "hello from signed"
  stop_signet
}

sec_key2() {
  local POL2=$WORK/key2; key_policy "$POL2" "$COSIGN_PUB2"
  up "$POL2"
  expect_runs "skopeo-signed image runs under a policy with key2" "$IMG_SKOPEO_SIGNED" "hello from skopeo-signed"
  expect_rejected "cosign-signed image (key1) is rejected under the key2 policy" "$IMG_SIGNED" "none made by key"
  stop_signet
}

sec_warn() {
  local POL1=$WORK/key1; key_policy "$POL1" "$COSIGN_PUB"
  up "$POL1" --mode warn
  expect_runs "warn mode lets the unsigned image run" "$IMG_UNSIGNED" "hello from unsigned"
  if grep -q 'result="warned".*no signatures found' "$SIGNET_LOG"; then ok "warn mode logs the would-be denial"; else bad "warn mode logs the would-be denial" "$(cat "$SIGNET_LOG")"; fi
  stop_signet
}

sec_config() {
  local POL1=$WORK/key1; key_policy "$POL1" "$COSIGN_PUB"
  CFG=$WORK/reload.toml
  printf 'mode = "enforce"\ncontainerd_config = "%s"\n' "$CONTAINERD_CONFIG" > "$CFG"
  up "$POL1" --config "$CFG"
  for _ in $(seq 1 50); do grep -q 'sandbox (pause) image' "$SIGNET_LOG" && break; sleep 0.1; done
  if grep -q "sandbox (pause) image would not be admitted.*$REGISTRY/probe/pause" "$SIGNET_LOG"; then
    ok "the sandbox image from containerd's config is verified at start (unsigned pause reported)"
  else
    bad "the sandbox image from containerd's config is verified at start (unsigned pause reported)" "$(cat "$SIGNET_LOG")"
  fi
  expect_rejected "config mode enforce: unsigned is rejected" "$IMG_UNSIGNED" "no signatures found"
  printf 'mode = "warn"\nplugin_index = "07"\ncontainerd_config = "%s"\n' "$CONTAINERD_CONFIG" > "$CFG"
  for _ in $(seq 1 50); do grep -q 'mode changed by config reload' "$SIGNET_LOG" && break; sleep 0.1; done
  expect_runs "config changed to warn: applied live, unsigned runs" "$IMG_UNSIGNED" "hello from unsigned"
  if grep -q 'take effect only after a restart.*plugin_index\|plugin_index.*take effect only after a restart' "$SIGNET_LOG"; then
    ok "a change that needs a restart is named in the log"
  else
    bad "a change that needs a restart is named in the log" "$(cat "$SIGNET_LOG")"
  fi
  echo 'mode = [' > "$CFG"
  for _ in $(seq 1 50); do grep -q 'config change rejected' "$SIGNET_LOG" && break; sleep 0.1; done
  if grep -q "config change rejected.*reload.toml" "$SIGNET_LOG"; then ok "an invalid config is rejected and the running settings kept"; else bad "an invalid config is rejected and the running settings kept" "$(cat "$SIGNET_LOG")"; fi
  stop_signet
}

sec_policy_reload() {
  POL3=$WORK/e2e-reload
  rm -rf "$POL3"; write_policy "$POL3" probe "$REGISTRY/probe/**" "$COSIGN_PUB"
  up "$POL3"
  echo "spec: [broken" > "$POL3/probe.yaml"
  # The directory is polled; the rejection is logged once the poll has seen the file.
  wait_for 10 log_has 'policy update rejected; keeping the previous policy'
  expect_rejected "after a corrupt policy file, unsigned is still rejected" "$IMG_UNSIGNED" "no signatures found"
  expect_runs "after a corrupt policy file, signed still runs" "$IMG_SIGNED"
  if grep -q 'policy update rejected; keeping the previous policy' "$SIGNET_LOG"; then ok "the rejected update is reported"; else bad "the rejected update is reported" "$(cat "$SIGNET_LOG")"; fi
  stop_signet
}

sec_registry_down() {
  local POL1=$WORK/key1; key_policy "$POL1" "$COSIGN_PUB"
  # verify resolves the tag in containerd's store, so the image must have been pulled here.
  $CRI pull "$IMG_UNSIGNED" >/dev/null
  REG_PID=$(cat "$WORLD_STATE/registry/registry.pid")
  kill "$REG_PID"; for _ in $(seq 1 50); do kill -0 "$REG_PID" 2>/dev/null || break; sleep 0.1; done
  V=$(signet_cli verify "$IMG_UNSIGNED" --policy-dir "$POL1" --insecure-registry "$REGISTRY" --output json 2>&1); rc=$?
  if [ $rc = 2 ] && grep -q '"error": true' <<<"$V" && grep -q 'registry request' <<<"$V" && ! grep -q 'no signatures' <<<"$V"; then
    ok "registry down: reported as a registry failure (exit 2), never as 'no signatures'"
  else
    bad "registry down: reported as a registry failure (exit 2), never as 'no signatures'" "rc=$rc $V"
  fi
  bash "$WORLD" up "$RUNTIME" >> "$WORLD_STATE/up-$RUNTIME.log" 2>&1   # brings the registry back
}

sec_faults() {
  # faulty.local is served through integration/faulty-registry.py, which forwards to the real
  # registry but answers signature manifests according to $FAULT_MODE.
  FAULT_MODE=$WORK/fault-mode; echo pass > "$FAULT_MODE"
  SLOW_SECONDS=4 python3 "$REPO/integration/faulty-registry.py" 5099 "$REGISTRY" "$FAULT_MODE" & FAULT_PID=$!
  mkdir -p "$CONTAINERD_CERTS/faulty.local"
  printf 'server = "http://127.0.0.1:5099"\n\n[host."http://127.0.0.1:5099"]\n  capabilities = ["pull", "resolve"]\n' \
    > "$CONTAINERD_CERTS/faulty.local/hosts.toml"
  FT_DIGEST=$(new_image faulty "$RUN_ID")
  cosign sign --key "$COSIGN_KEY" "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y "$REGISTRY/probe/faulty@$FT_DIGEST" >/dev/null 2>&1
  POL9=$WORK/e2e-faults; rm -rf "$POL9"; write_policy "$POL9" faulty "faulty.local/probe/**" "$COSIGN_PUB"
  FAULTY=faulty.local/probe/faulty:v1
  printf 'containerd_config = "%s"\n' "$CONTAINERD_CONFIG" > "$WORK/mirror.toml"
  fault() {  # mode name expected-text...
    echo "$1" > "$FAULT_MODE"; local name=$2; shift 2
    up "$POL9" --config "$WORK/mirror.toml"
    expect_rejected "$name" "$FAULTY" "$@"
  }
  fault down "registry failing (HTTP 500): rejected as a registry error, not as unsigned" "registry request" "injected failure"
  stop_signet
  fault garbage "registry returning garbage for the signature manifest: rejected, named malformed" "is malformed"
  stop_signet
  fault huge "registry returning an 8 MiB signature manifest: rejected at the size limit" "over the 1048576 byte limit"
  stop_signet
  # bounded WHAT: signet's peak RSS (VmHWM) under 64 MiB, and still connected to containerd.
  bounded() {
    local hwm; hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$SIGNET_PID/status" 2>/dev/null)
    if [ -n "$hwm" ] && [ "$hwm" -lt $((64 * 1024)) ] \
       && curl -s http://127.0.0.1:9180/metrics | grep -q '^signet_nri_connected 1'; then
      ok "after $1, signet's peak memory stayed under 64 MiB ($((hwm / 1024)) MiB) and it stayed connected"
    else
      bad "after $1, signet's peak memory stayed under 64 MiB and it stayed connected" "VmHWM=${hwm:-?} kB"
    fi
  }
  # Hostile bodies (#14): endless, or announced as 10 GiB; each refused at its cap, naming the
  # host, with signet's memory bounded and the plugin still connected.
  for mode in endless lying; do
    fault "$mode" "registry streaming an $mode signature manifest: rejected at the limit, naming the host" \
      "faulty.local" "byte limit"
    bounded "the $mode manifest"
    stop_signet
  done
  fault endless-index "an endless referrers index (and no .sig tag): rejected at the limit, naming the host" \
    "registry answer for faulty.local/probe/faulty" "referrers" "byte limit"
  bounded "the endless index"; stop_signet
  fault endless-blob "an endless signature blob: rejected at the payload limit, naming the host" \
    "signature payload" "faulty.local/probe/faulty" "byte limit"
  bounded "the endless blob"; stop_signet
  fault endless-token "a 401 whose Bearer realm streams an endless token reply: rejected at the limit, naming the host" \
    "registry answer for faulty.local/probe/faulty" "token reply from 127.0.0.1:5099" "byte limit"
  bounded "the endless token reply"; stop_signet
  # A slow drip: the .sig manifest one byte every 0.1 s, so no read waits long; the
  # whole-request deadline (registry_timeout_ms, 1 s here, inside the runtime's 1.5 s decision
  # budget) cuts it, and the denial is a registry error, not "still verifying".
  printf 'containerd_config = "%s"\nregistry_timeout_ms = 1000\n' "$CONTAINERD_CONFIG" > "$WORK/drip.toml"
  echo drip > "$FAULT_MODE"
  up "$POL9" --config "$WORK/drip.toml"
  expect_rejected "a slow drip of the signature manifest: cut by the whole-request deadline, a registry error naming the host" \
    "$FAULTY" "registry request for faulty.local/probe/faulty" "127.0.0.1:5099"
  if grep -q 'did not finish within' <<<"$OUT"; then bad "the drip was cut inside the decision budget" "$OUT"; else ok "the drip was cut inside the decision budget"; fi
  bounded "the slow drip"; stop_signet
  # An endless referrers list: the .sig tag alone still decides (it is asked at the same time).
  echo endless-referrers > "$FAULT_MODE"
  up "$POL9" --config "$WORK/mirror.toml"
  expect_runs "an endless referrers list does not stop the .sig signature from counting" "$FAULTY" "hello from faulty"
  stop_signet
  fault slow "registry slower than the runtime's deadline: rejected in time, the plugin stays connected" \
    "did not finish within"
  if [ "$(grep -c 'registered with the runtime' "$SIGNET_LOG")" = 1 ] \
     && curl -s http://127.0.0.1:9180/metrics | grep -q '^signet_nri_connected 1'; then
    ok "after the slow registry, signet was not dropped by containerd (still connected, no re-registration)"
  else
    bad "after the slow registry, signet was not dropped by containerd (still connected, no re-registration)" "$(cat "$SIGNET_LOG")"
  fi
  # The background verification (SLOW_SECONDS=4) finishes and is cached.
  wait_for 15 bash -c '[ "$(curl -s http://127.0.0.1:9180/metrics | awk '"'"'$1 == "signet_verification_duration_seconds_count" {print $2}'"'"')" -ge 1 ] 2>/dev/null'
  expect_runs "the runtime's retry after the slow fetch gets the finished verification" "$FAULTY" "hello from faulty"
  stop_signet
  echo pass > "$FAULT_MODE"
  up "$POL9" --config "$WORK/mirror.toml"
  expect_runs "with the faults removed, the same image runs through the proxy" "$FAULTY" "hello from faulty"
  stop_signet
  sec_faults_redirects
  kill "$FAULT_PID" 2>/dev/null; FAULT_PID=
}

# Redirects to this node's loopback from a registry that is not on loopback (#14), by address
# and by a name that resolves to loopback. The world is all on loopback, so the registry here
# (faraway.local, a second faulty-registry.py) listens on this machine's own non-loopback
# address: the first global address of `ip addr`, 192.0.2.2 on eth0 on this machine kind
# (gVisor, which has no dummy interfaces). The traffic stays on the machine. Its signature
# blobs are answered with a 307 to the loopback proxy on 127.0.0.1:5099, which serves the real
# blob: a signet that followed would verify the image and run it. The image has content of
# its own: containerd names shared content by its first reference, which would be faulty's.
sec_faults_redirects() {
  local NONLOOP LOOPNAME POLF=$WORK/e2e-faraway FAR_MODE=$WORK/far-mode FARAWAY=faraway.local/probe/faraway:v1 FA_DIGEST
  NONLOOP=$(ip -4 -o addr show scope global 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}')
  if [ -z "$NONLOOP" ]; then
    bad "a non-loopback address for the redirect checks" "$(ip addr 2>&1)"; return
  fi
  echo pass > "$FAR_MODE"
  LISTEN_HOST=$NONLOOP python3 "$REPO/integration/faulty-registry.py" 5098 "$REGISTRY" "$FAR_MODE" & FAR_PID=$!
  mkdir -p "$CONTAINERD_CERTS/faraway.local"
  printf 'server = "http://%s:5098"\n\n[host."http://%s:5098"]\n  capabilities = ["pull", "resolve"]\n' \
    "$NONLOOP" "$NONLOOP" > "$CONTAINERD_CERTS/faraway.local/hosts.toml"
  FA_DIGEST=$(new_image faraway "$RUN_ID")
  cosign sign --key "$COSIGN_KEY" "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y "$REGISTRY/probe/faraway@$FA_DIGEST" >/dev/null 2>&1
  rm -rf "$POLF"; write_policy "$POLF" faraway "faraway.local/probe/**" "$COSIGN_PUB"
  wait_for 10 curl -sf "http://$NONLOOP:5098/v2/"
  up "$POLF" --config "$WORK/mirror.toml"
  expect_runs "through $NONLOOP (not loopback) with no faults, the signed image runs" "$FARAWAY" "hello from faraway"
  stop_signet
  echo "redirect:http://127.0.0.1:5099" > "$FAR_MODE"
  up "$POLF" --config "$WORK/mirror.toml"
  expect_rejected "a signature blob redirected from $NONLOOP to 127.0.0.1: refused, naming the host" "$FARAWAY" \
    "registry answer for faraway.local/probe/faraway" "$NONLOOP:5098 leads to 127.0.0.1:5099" "loopback"
  bounded "the redirect to loopback"; stop_signet
  # A name for loopback: this machine's hostname where /etc/hosts maps it there (it does on
  # this machine kind: "127.0.0.1 vm").
  LOOPNAME=$(hostname)
  if getent ahostsv4 "$LOOPNAME" 2>/dev/null | awk '{print $1}' | grep -qv '^127\.' \
     || ! getent ahostsv4 "$LOOPNAME" >/dev/null 2>&1; then
    echo "skip - no name for loopback here ($LOOPNAME does not resolve only to 127/8)"
  else
    echo "redirect:http://$LOOPNAME:5099" > "$FAR_MODE"
    up "$POLF" --config "$WORK/mirror.toml"
    expect_rejected "a signature blob redirected from $NONLOOP to $LOOPNAME, a name for 127.0.0.1: refused, naming the host" \
      "$FARAWAY" "registry answer for faraway.local/probe/faraway" "$LOOPNAME resolves to 127." "loopback"
    bounded "the redirect to a loopback name"; stop_signet
  fi
  kill "$FAR_PID" 2>/dev/null; FAR_PID=
}

sec_no_plugin() {
  local POL1=$WORK/key1; key_policy "$POL1" "$COSIGN_PUB"
  expect_runs "with signet stopped, containerd 1.7 runs unsigned images unchecked (README: closing the window)" "$IMG_UNSIGNED"
  # What slipped through that window is reported when signet connects (pre-warm at Synchronize).
  $CRI run "$IMG_UNSIGNED" --keep >/dev/null 2>&1
  up "$POL1"
  for _ in $(seq 1 50); do grep -q 'pre-warm of running containers done' "$SIGNET_LOG" && break; sleep 0.1; done
  if grep -q "would not be admitted now.*$IMG_UNSIGNED_DIGEST\|$IMG_UNSIGNED_DIGEST.*would not be admitted now" "$SIGNET_LOG" \
     && grep -q 'pre-warm of running containers done.*violators=1' "$SIGNET_LOG"; then
    ok "on connect, signet reports the running unsigned container (pre-warm at Synchronize)"
  else
    bad "on connect, signet reports the running unsigned container (pre-warm at Synchronize)" "$(cat "$SIGNET_LOG")"
  fi
  stop_signet
  $CRI cleanup >/dev/null 2>&1
}

sec_languages() {
  POL4=$WORK/e2e-languages; rm -rf "$POL4"; mkdir -p "$POL4"
  # sigstore policy-controller: the cosign key covers probe/signed and probe/unsigned (and
  # probe/repoint: the unsigned content was first pulled under that name above, and
  # containerd names an image by its first reference).
  sigstore_key_policy "$POL4/sigstore.yaml" cosign-images \
    "$REGISTRY/probe/signed:* $REGISTRY/probe/unsigned:* $REGISTRY/probe/repoint:*"
  # Kyverno: skopeo's key, tlog explicitly ignored (as air-gapped users write it).
  cat > "$POL4/kyverno.yaml" <<YAML
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: skopeo-images}
spec:
  validationFailureAction: Enforce
  rules:
    - name: skopeo-key
      match: {any: [{resources: {kinds: [Pod]}}]}
      verifyImages:
        - imageReferences: ["$REGISTRY/probe/skopeo-*"]
          attestors:
            - entries:
                - keys:
                    rekor: {ignoreTlog: true}
                    publicKeys: |-
$(sed 's/^/                      /' "$COSIGN_PUB2")
YAML
  up "$POL4"
  expect_runs "sigstore ClusterImagePolicy: cosign-signed image runs" "$IMG_SIGNED" "hello from signed"
  expect_rejected "sigstore ClusterImagePolicy: unsigned image is rejected, policy named" "$IMG_UNSIGNED" \
    'policy "sigstore:cosign-images"' "no signatures found"
  expect_runs "Kyverno verifyImages: skopeo-signed image runs" "$IMG_SKOPEO_SIGNED" "hello from skopeo-signed"
  stop_signet

  # Kyverno's default requires a Rekor entry. These signatures were made without one, so the
  # key alone must not be enough: the signed image is refused, with the reason.
  sed -i '/rekor: {ignoreTlog: true}/d' "$POL4/kyverno.yaml"
  up "$POL4"
  expect_rejected "Kyverno key without ignoreTlog requires a transparency-log entry" "$IMG_SKOPEO_SIGNED" \
    "transparency-log entry is required"
  stop_signet
}

sec_keyless() {
  # integration/testpki.sh: a test CA with Fulcio-shaped certificates, a test Rekor key, and a
  # trusted_root.json naming both. Signatures and attestations are made by real cosign.
  . "$REPO/integration/testpki.sh"
  PKI=$WORK/e2e-pki; rm -rf "$PKI"; mkdir -p "$PKI"
  ISSUER=https://issuer.example
  SUBJECT=https://github.com/example/app/.github/workflows/release.yml@refs/heads/main
  # The SCT-bearing certificate is built with python's cryptography package.
  PKI_PYTHON=python3
  if ! python3 -c 'import cryptography' 2>/dev/null; then
    [ -x "$WORK/pki-venv/bin/python" ] || { python3 -m venv "$WORK/pki-venv" && "$WORK/pki-venv/bin/pip" install -q cryptography; }
    PKI_PYTHON=$WORK/pki-venv/bin/python
  fi
  export PKI_PYTHON
  (cd "$PKI" && pki_ca "$ISSUER" builder@example.com "$SUBJECT" && pki_sct_leaf "$ISSUER" builder@example.com)
  KL_DIGEST=$(new_image keyless "$RUN_ID")
  cosign sign --key "$PKI/leaf.key" --certificate "$PKI/leaf-uri.pem" --certificate-chain "$PKI/chain.pem" \
    "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y "$REGISTRY/probe/keyless@$KL_DIGEST" >/dev/null 2>&1
  echo '{"buildType":"https://example.com/build/v1","builder":{"id":"https://example.com/builder"}}' > "$PKI/predicate.json"
  # A second signature by the same key, under a certificate with an embedded SCT (which cosign
  # checks while signing, with the test CT log's key).
  SIGSTORE_CT_LOG_PUBLIC_KEY_FILE=$PKI/ctlog.pub cosign sign --key "$PKI/leaf.key" --certificate "$PKI/leaf-sct.pem" --certificate-chain "$PKI/chain.pem" \
    "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y "$REGISTRY/probe/keyless@$KL_DIGEST" >/dev/null 2>&1
  cosign attest --key "$COSIGN_KEY" --type slsaprovenance --predicate "$PKI/predicate.json" \
    "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y "$REGISTRY/probe/keyless@$KL_DIGEST" >/dev/null 2>&1
  TL_DIGEST=$(new_image tlog)
  cosign generate "$REGISTRY/probe/tlog@$TL_DIGEST" > "$PKI/tlog-payload.json" 2>/dev/null
  cosign sign-blob --key "$COSIGN_KEY" --tlog-upload=false "$PKI/tlog-payload.json" > "$PKI/tlog.sig" 2>/dev/null
  (cd "$PKI" && pki_set tlog.sig "$COSIGN_PUB" tlog-payload.json tlog-bundle.json)
  push_signature probe/tlog "$TL_DIGEST" "$PKI/tlog-payload.json" "$PKI/tlog.sig" "$PKI/tlog-bundle.json"
  # An attestation as cosign 2 stores one it logged: its Rekor intoto entry in the .att layer.
  AL_DIGEST=$(new_image attlog "$RUN_ID")
  cosign attest --key "$COSIGN_KEY" --type slsaprovenance --predicate "$PKI/predicate.json" \
    "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y "$REGISTRY/probe/attlog@$AL_DIGEST" >/dev/null 2>&1
  python3 - "$REGISTRY" "$AL_DIGEST" > "$PKI/attlog-envelope.json" <<'PY'
import json, sys, urllib.request
reg, digest = sys.argv[1:3]
get = lambda path, accept="*/*": urllib.request.urlopen(urllib.request.Request(f"http://{reg}/v2/probe/attlog/{path}",
                                                                                  headers={"Accept": accept})).read()
m = json.loads(get("manifests/sha256-" + digest.split(":", 1)[1] + ".att", "application/vnd.oci.image.manifest.v1+json"))
sys.stdout.write(get("blobs/" + m["layers"][0]["digest"]).decode())
PY
  (cd "$PKI" && pki_set_intoto attlog-envelope.json "$COSIGN_PUB" attlog-bundle.json)
  push_signature probe/attlog "$AL_DIGEST" "$PKI/attlog-envelope.json" /dev/null "$PKI/attlog-bundle.json" att
  AN_DIGEST=$(new_image attnolog "$RUN_ID")
  cosign attest --key "$COSIGN_KEY" --type slsaprovenance --predicate "$PKI/predicate.json" \
    "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y "$REGISTRY/probe/attnolog@$AN_DIGEST" >/dev/null 2>&1
  POL7=$WORK/e2e-breadth; rm -rf "$POL7"; mkdir -p "$POL7"
  keyless_policy "$POL7/keyless.yaml" keyless "$REGISTRY/probe/keyless" "$PKI/root.pem"
  sigstore_key_policy "$POL7/provenance.yaml" provenance "$REGISTRY/probe/keyless:*" "$SLSA_ATTESTATION"
  cat > "$POL7/tlog.yaml" <<YAML
apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: logged}
spec:
  images: [{glob: "$REGISTRY/probe/tlog"}, {glob: "$REGISTRY/probe/signed"}]
  authorities:
    - key: {path: $COSIGN_PUB}
      ctlog: {url: "https://rekor.example"}
YAML
  sigstore_key_policy "$POL7/attlog.yaml" logged-provenance "$REGISTRY/probe/attlog:* $REGISTRY/probe/attnolog:*" \
    'ctlog: {url: "https://rekor.example"}' "$SLSA_ATTESTATION"
  printf 'trust_root = "%s"\n' "$PKI/trusted_root.json" > "$WORK/trust.toml"
  up "$POL7" --config "$WORK/trust.toml"
  expect_runs "keyless: a certificate from the policy's CA with a matching identity (regexp), plus its SLSA attestation" \
    "$REGISTRY/probe/keyless:v1" "hello from keyless"
  expect_runs "transparency log: the signature's Rekor entry is verified offline with the trust root's log key" \
    "$REGISTRY/probe/tlog:v1" "hello from tlog"
  expect_rejected "transparency log required: a signature without an entry is rejected" "$IMG_SIGNED" \
    'policy "logged"' "no transparency-log entry"
  expect_runs "transparency log: an attestation's Rekor intoto entry (cosign 2 .att) is verified offline" \
    "$REGISTRY/probe/attlog:v1" "hello from attlog"
  expect_rejected "transparency log required: an attestation without an entry is rejected" "$REGISTRY/probe/attnolog:v1" \
    'policy "sigstore:logged-provenance"' "no transparency-log entry"
  stop_signet
  sed -i 's#github\\.com/example/#github\\.com/other-org/#' "$POL7/keyless.yaml"
  up "$POL7" --config "$WORK/trust.toml"
  expect_rejected "keyless: an identity regexp that does not match is applied, not ignored" "$REGISTRY/probe/keyless:v1" \
    'policy "keyless"' "matches no trusted identity" "github.com/example/app"
  stop_signet
  sed -i 's#github\\.com/other-org/#github\\.com/example/#; /insecureIgnoreSCT/d' "$POL7/keyless.yaml"
  sed -i 's#https://slsa.dev/provenance/v0.2#https://spdx.dev/Document#' "$POL7/provenance.yaml"
  up "$POL7" --config "$WORK/trust.toml"
  expect_rejected "attestation of another predicate type does not satisfy; SCT required by default" \
    "$REGISTRY/probe/keyless:v1" "predicate type https://slsa.dev/provenance/v0.2, not https://spdx.dev/Document" "SCT"
  stop_signet
  rm "$POL7/provenance.yaml"
  sed -i "s#subjectRegExp: .*}]#subject: builder@example.com}]#" "$POL7/keyless.yaml"
  up "$POL7" --config "$WORK/trust.toml"
  expect_runs "keyless with the SCT check on: the certificate's SCT verifies with the trust root's CT log" \
    "$REGISTRY/probe/keyless:v1" "hello from keyless"
  stop_signet
}

sec_referrers() {
  local PKI=$WORK
  echo '{"buildType":"https://example.com/build/v1","builder":{"id":"https://example.com/builder"}}' > "$PKI/predicate.json"
  # cosign attest --new-bundle-format attaches a bundle as a referrer; distribution 2.8 has no
  # referrers API, so cosign uses the sha256-<hex> tag schema, which signet reads too.
  BD_DIGEST=$(new_image bundled "$RUN_ID")
  cosign attest --key "$COSIGN_KEY" --new-bundle-format --type slsaprovenance --predicate "$PKI/predicate.json" \
    "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y "$REGISTRY/probe/bundled@$BD_DIGEST" >/dev/null 2>&1
  POL11=$WORK/e2e-referrers; rm -rf "$POL11"; mkdir -p "$POL11"
  sigstore_key_policy "$POL11/provenance.yaml" bundled-provenance "$REGISTRY/probe/bundled:*" "$SLSA_ATTESTATION"
  up "$POL11"
  expect_runs "referrers: an SLSA attestation in a sigstore bundle (OCI 1.1 referrer) satisfies the policy" \
    "$REGISTRY/probe/bundled:v1" "hello from bundled"
  stop_signet
  sed -i 's#https://slsa.dev/provenance/v0.2#https://spdx.dev/Document#' "$POL11/provenance.yaml"
  up "$POL11"
  expect_rejected "referrers: a bundle of another predicate type does not" "$REGISTRY/probe/bundled:v1" \
    "predicate type https://slsa.dev/provenance/v0.2, not https://spdx.dev/Document"
  stop_signet
}

sec_bundle_sign() {
  # cosign 3 signs this way by default, with no .sig tag. cosign 2.5 here has no bundle
  # signing; its attest --new-bundle-format with the sign predicate type writes the same artifact.
  echo '{}' > "$WORK/empty-predicate.json"
  C3_DIGEST=$(new_image cosign3 "$RUN_ID")
  echo '{"buildType":"https://example.com/build/v1","builder":{"id":"https://example.com/builder"}}' > "$WORK/predicate.json"
  BA_DIGEST=$(new_image bsign-att "$RUN_ID")
  cosign attest --key "$COSIGN_KEY" --new-bundle-format --type slsaprovenance --predicate "$WORK/predicate.json" \
    "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y "$REGISTRY/probe/bsign-att@$BA_DIGEST" >/dev/null 2>&1
  cosign attest --key "$COSIGN_KEY" --new-bundle-format --type https://sigstore.dev/cosign/sign/v1 \
    --predicate "$WORK/empty-predicate.json" "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y \
    "$REGISTRY/probe/cosign3@$C3_DIGEST" >/dev/null 2>&1
  POLC3=$WORK/e2e-cosign3; rm -rf "$POLC3"; write_policy "$POLC3" probe "$REGISTRY/probe/**" "$COSIGN_PUB"
  up "$POLC3"
  expect_runs "cosign 3: an image signed with a bundle (a referrer, no .sig tag) runs" \
    "$REGISTRY/probe/cosign3:v1" "hello from cosign3"
  expect_rejected "cosign 3: a bundle attestation of another type is not a signature" "$REGISTRY/probe/bsign-att:v1" \
    "predicate type https://slsa.dev/provenance/v0.2, not https://sigstore.dev/cosign/sign/v1"
  stop_signet
}

sec_gpg() {
  # skopeo signs with a GPG key and writes the signature to a lookaside directory named in a
  # containers registries.d file; signet reads the same file to find it.
  export GNUPGHOME=$WORK/gnupg; rm -rf "$GNUPGHOME" "$WORK/lookaside"; mkdir -m 700 "$GNUPGHOME"
  printf '%%no-protection\nKey-Type: RSA\nKey-Length: 3072\nName-Real: e2e release\nName-Email: release@example.com\nExpire-Date: 0\n%%commit\n' \
    | gpg --batch --gen-key >/dev/null 2>&1
  GPG_FPR=$(gpg --list-keys --with-colons 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')
  gpg --armor --export "$GPG_FPR" > "$WORK/gpg.pub.asc"
  RD=$WORK/registries.d; mkdir -p "$RD"
  printf 'default-docker:\n  lookaside: file://%s\n  lookaside-staging: file://%s\n' "$WORK/lookaside" "$WORK/lookaside" > "$RD/default.yaml"
  new_image gpgsigned "$RUN_ID" >/dev/null
  skopeo --registries.d "$RD" copy -q --src-tls-verify=false --dest-tls-verify=false --sign-by "$GPG_FPR" \
    "docker://$REGISTRY/probe/gpgsigned:v1" "docker://$REGISTRY/probe/gpgsigned:v1"
  POL10=$WORK/e2e-gpg; rm -rf "$POL10"; mkdir -p "$POL10"
  cat > "$POL10/gpg.yaml" <<YAML
apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: gpg-release}
spec:
  images: [{glob: "$REGISTRY/probe/**"}]
  authorities:
    - name: release-gpg
      gpg: {path: $WORK/gpg.pub.asc}
YAML
  printf 'registries_d = "%s"\n' "$RD" > "$WORK/gpg.toml"
  up "$POL10" --config "$WORK/gpg.toml"
  expect_runs "GPG: an image signed by skopeo --sign-by (lookaside signature) runs" "$REGISTRY/probe/gpgsigned:v1" \
    "hello from gpgsigned"
  expect_rejected "GPG: an image without a lookaside signature is rejected" "$IMG_UNSIGNED" \
    'policy "gpg-release"' "no signatures found at file://$WORK/lookaside/probe/"
  expect_rejected "GPG: a cosign signature does not satisfy a GPG authority" "$IMG_SIGNED" 'policy "gpg-release"'
  stop_signet
  unset GNUPGHOME
}

sec_mirror() {
  # containerd's hosts.toml sends docker.io to the local registry; docker.io itself is not
  # reachable from here. An image pulled as docker.io/... must find its signature the same way.
  MR_DIGEST=$(new_image mirrored "$RUN_ID")
  cosign sign --key "$COSIGN_KEY" "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y "$REGISTRY/probe/mirrored@$MR_DIGEST" >/dev/null 2>&1
  POL8=$WORK/e2e-mirror; rm -rf "$POL8"; write_policy "$POL8" hub "docker.io/probe/**" "$COSIGN_PUB"
  printf 'containerd_config = "%s"\n' "$CONTAINERD_CONFIG" > "$WORK/mirror.toml"
  up "$POL8" --config "$WORK/mirror.toml"
  expect_runs "an image pulled through a docker.io mirror is verified with signatures fetched through the mirror" \
    docker.io/probe/mirrored:v1 "hello from mirrored"
  new_image mirrored-unsigned >/dev/null
  # The mirror has no signature and docker.io cannot be asked: a registry failure that says so,
  # not "unsigned" (the upstream might have one).
  expect_rejected "through the mirror, an unsigned image is rejected, naming where it was not found" \
    docker.io/probe/mirrored-unsigned:v1 'policy "hub"' "not found at $REGISTRY"
  stop_signet
}

sec_tls() {
  printf 'containerd_config = "%s"\n' "$CONTAINERD_CONFIG" > "$WORK/mirror.toml"
  # tls.local is served over HTTPS by the proxy with a certificate from a CA that only the
  # registry's hosts.toml names; neither the system roots nor signet's flags know it.
  TLSD=$WORK/tls; rm -rf "$TLSD"; mkdir -p "$TLSD"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=signet-e2e-registry-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
    -keyout "$TLSD/ca.key" -out "$TLSD/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$TLSD/tls.key" -out "$TLSD/tls.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > "$TLSD/ext.cnf"
  openssl x509 -req -in "$TLSD/tls.csr" -CA "$TLSD/ca.pem" -CAkey "$TLSD/ca.key" -CAcreateserial -days 2 \
    -extfile "$TLSD/ext.cnf" -out "$TLSD/tls.pem" 2>/dev/null
  echo pass > "$TLSD/mode"
  TLS_CERT=$TLSD/tls.pem TLS_KEY=$TLSD/tls.key python3 "$REPO/integration/faulty-registry.py" 5443 "$REGISTRY" "$TLSD/mode" &
  TLS_PID=$!
  mkdir -p "$CONTAINERD_CERTS/tls.local"
  cp "$TLSD/ca.pem" "$CONTAINERD_CERTS/tls.local/ca.pem"
  # containerd 1.7.24 ignores a hosts.toml without a [host] table ("invalid `host` tree").
  # TLS settings belong to the host they are written under, as containerd scopes them: the
  # server (top level) and the [host] entry each name the CA.
  printf 'server = "https://127.0.0.1:5443"\nca = "ca.pem"\n\n[host."https://127.0.0.1:5443"]\n  capabilities = ["pull", "resolve"]\n  ca = "ca.pem"\n' \
    > "$CONTAINERD_CERTS/tls.local/hosts.toml"
  TL_DIGEST=$(new_image tls-signed "$RUN_ID")
  cosign sign --key "$COSIGN_KEY" "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y "$REGISTRY/probe/tls-signed@$TL_DIGEST" >/dev/null 2>&1
  new_image tls-unsigned "$RUN_ID" >/dev/null
  POLTLS=$WORK/e2e-tls; rm -rf "$POLTLS"; write_policy "$POLTLS" private-ca "tls.local/probe/**" "$COSIGN_PUB"
  up "$POLTLS" --config "$WORK/mirror.toml"
  expect_runs "a signed image from a registry with a private CA runs: its signature was fetched over TLS" \
    tls.local/probe/tls-signed:v1 "hello from tls-signed"
  expect_rejected "an unsigned image from that registry is rejected as unsigned (the TLS fetch worked)" \
    tls.local/probe/tls-unsigned:v1 'policy "private-ca"' "no signatures found"
  stop_signet
  kill "$TLS_PID" 2>/dev/null; TLS_PID=
}

sec_namespaces() {
  POL5=$WORK/e2e-namespaces; rm -rf "$POL5"; write_policy "$POL5" probe "$REGISTRY/probe/**" "$COSIGN_PUB"
  sed -i 's/^spec:$/spec:\n  namespaces: {exclude: [probe]}/' "$POL5/probe.yaml"
  up "$POL5" --no-match allow
  expect_runs "policy excluding the pod's namespace does not apply (no-match allow)" "$IMG_UNSIGNED"
  stop_signet
  sed -i 's/exclude: \[probe\]/include: [probe]/' "$POL5/probe.yaml"
  up "$POL5" --no-match allow
  expect_rejected "policy including the pod's namespace applies" "$IMG_UNSIGNED" 'policy "probe"'
  stop_signet
}

sec_image_volume() {
  # A Kubernetes image volume (CRI Mount.image): containerd >= 2.1 unpacks another image and
  # bind-mounts it into the container. Its content is as much the pod's as the container's
  # image, so a signed container must not carry an unsigned image in with it.
  if [ "$RUNTIME" = 1.7 ]; then echo "skip - containerd 1.7 has no image volumes"; return; fi
  local POL=$WORK/key1; key_policy "$POL" "$COSIGN_PUB"
  up "$POL"
  CRI_RUN_ARGS=(--image-volume "$IMG_SIGNED")
  expect_runs "image volume: a signed container with a signed image volume runs" "$IMG_SIGNED" "hello from signed"
  CRI_RUN_ARGS=(--image-volume "$IMG_UNSIGNED")
  expect_rejected "image volume: a signed container with an unsigned image volume is rejected" "$IMG_SIGNED" \
    "image volume at /volumes/0" "${IMG_UNSIGNED_DIGEST}" "no signatures"
  CRI_RUN_ARGS=(--image-volume "$IMG_SIGNED" --image-volume "$IMG_UNSIGNED")
  expect_rejected "image volume: one unsigned volume among signed ones is rejected" "$IMG_SIGNED" \
    "image volume at /volumes/1"
  CRI_RUN_ARGS=()
  stop_signet
}

sec_policy_cli() {
  local POL4=$WORK/languages; rm -rf "$POL4"; mkdir -p "$POL4"
  sigstore_key_policy "$POL4/sigstore.yaml" cosign-images "$REGISTRY/probe/signed:* $REGISTRY/probe/unsigned:*"
  BAD=$WORK/e2e-bad; rm -rf "$BAD"; mkdir -p "$BAD"
  printf 'apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: a}\nspec:\n  images: [{glob: x}]\n  authorites: []\n' > "$BAD/a.yaml"
  printf 'apiVersion: signing.apps.tanzu.vmware.com/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: t}\nspec:\n  verification:\n    images: [{namePattern: "r/*", keys: [{name: nokey}]}]\n' > "$BAD/b.yaml"
  C=$("$SIGNET" policy check "$BAD/a.yaml" "$BAD/b.yaml" 2>&1); rc=$?
  if [ $rc = 1 ] && grep -q 'authorites' <<<"$C" && grep -q 'nokey' <<<"$C" && grep -q '2 policy error' <<<"$C"; then
    ok "policy check: exit 1, every error listed with file and field"
  else
    bad "policy check: exit 1, every error listed with file and field" "rc=$rc $C"
  fi
  C=$("$SIGNET" policy check "$POL4/sigstore.yaml" 2>/dev/null); rc=$?
  if [ $rc = 0 ] && grep -q 'name: sigstore:cosign-images' <<<"$C" && grep -q 'policyControllerGlob:' <<<"$C"; then
    ok "policy check: a valid file prints the normalised policy"
  else
    bad "policy check: a valid file prints the normalised policy" "rc=$rc $C"
  fi
  X=$("$SIGNET" policy explain --policy-dir "$POL4" --output json "$IMG_UNSIGNED" 2>&1)
  if python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["matched"]==["sigstore:cosign-images"] and d["action"]=="verify", d' <<<"$X"; then
    ok "policy explain --output json: matched policies and action"
  else
    bad "policy explain --output json: matched policies and action" "$X"
  fi
}

sec_cluster() {
  POL6=$WORK/e2e-cluster; STATE6=$WORK/e2e-state-dir; rm -rf "$POL6" "$STATE6"; mkdir -p "$POL6" "$STATE6"
  printf 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n' > "$WORK/unreachable.kubeconfig"
  printf 'cluster_policy = true\nstate_dir = "%s"\nno_match = "allow"\nnode_name = "e2e"\n' "$STATE6" > "$WORK/cluster.toml"
  KUBECONFIG=$WORK/unreachable.kubeconfig up "$POL6" --config "$WORK/cluster.toml"
  expect_rejected "no snapshot and no API server: unmatched images are denied despite no-match allow" "$IMG_SIGNED" \
    "no policy matches"
  stop_signet
  # The snapshot a previous complete sync left behind is enforced from the first request.
  python3 - "$COSIGN_PUB" "$REGISTRY" "$STATE6/cluster-policy.json" <<'PY'
import json, sys
pem, reg, out = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
policy = {"name": "from-cluster", "origin": "signet.dev/v1alpha1 ClusterImagePolicy from-cluster",
          "images": [{"glob": reg + "/probe/**"}], "mode": "enforce",
          "requirements": [{"count": 1, "authorities": [{"name": "k", "key": {"pem": pem}}]}]}
import hashlib
policies = json.dumps([policy])  # the integrity hash is over this text exactly as stored
digest = hashlib.sha256(policies.encode()).hexdigest()
open(out, "w").write('{"format": 2, "written_at": "2026-01-01T00:00:00Z", "sha256": "%s", "policies": %s}' % (digest, policies))
PY
  KUBECONFIG=$WORK/unreachable.kubeconfig up "$POL6" --config "$WORK/cluster.toml"
  expect_rejected "API server down at boot: the last-known-good cluster policy rejects unsigned" "$IMG_UNSIGNED" \
    'policy "from-cluster"' "no signatures found"
  expect_runs "API server down at boot: the last-known-good cluster policy admits signed" "$IMG_SIGNED" "hello from signed"
  stop_signet
}

sec_preinstalled() {
  # containerd launches $NRI_PLUGIN_DIR/05-signet on fd 3 with only NRI_PLUGIN_* set, so the
  # runtime's socket comes from the config file.
  local POL1=$WORK/key1; key_policy "$POL1" "$COSIGN_PUB"
  mkdir -p "$NRI_PLUGIN_DIR" /etc/signet
  cp "$SIGNET" "$NRI_PLUGIN_DIR/05-signet"
  printf 'policy_dir = "%s"\ninsecure_registries = ["%s"]\nlog_format = "plain"\ncontainerd_socket = "%s"\n' \
    "$POL1" "$REGISTRY" "$CONTAINERD_SOCK" > /etc/signet/config.toml
  restart_containerd
  expect_rejected "pre-installed: unsigned is rejected" "$IMG_UNSIGNED" "no signatures found"
  expect_runs "pre-installed: signed runs" "$IMG_SIGNED" "hello from signed"
  rm -f "$NRI_PLUGIN_DIR/05-signet" /etc/signet/config.toml
  restart_containerd
}

sec_cosign3() {
  # cosign 3 (sid) as it is used offline: a signing config naming no Fulcio, OIDC, Rekor or TSA.
  # It writes sigstore bundles as OCI 1.1 referrers; distribution 2.8 has no referrers API, so
  # they land in the index under the sha256-<hex> tag. HOME is a fresh dir so that anything
  # cosign would keep under ~/.sigstore is seen: TUF_ROOT must keep it inside the world.
  local HOME3=$WORK/home; mkdir -p "$HOME3"
  c3() { HOME=$HOME3 "$COSIGN3" "$@" "${COSIGN_REG_FLAGS[@]}" --signing-config "$COSIGN3_SIGNING_CONFIG" -y >> "$WORK/cosign3.log" 2>&1; }
  . "$REPO/integration/testpki.sh"
  local PKI=$WORK/pki ISSUER=https://issuer.example
  local SUBJECT=https://github.com/example/app/.github/workflows/release.yml@refs/heads/main
  mkdir -p "$PKI"; (cd "$PKI" && pki_ca "$ISSUER" builder@example.com "$SUBJECT")
  echo '{"buildType":"https://example.com/build/v1","builder":{"id":"https://example.com/builder"}}' > "$PKI/predicate.json"
  local K D_K KL D_KL AT D_AT AO D_AO
  K=$REGISTRY/probe/c3-key; D_K=$(new_image c3-key "$RUN_ID")
  KL=$REGISTRY/probe/c3-keyless; D_KL=$(new_image c3-keyless "$RUN_ID")
  AT=$REGISTRY/probe/c3-attested; D_AT=$(new_image c3-attested "$RUN_ID")
  AO=$REGISTRY/probe/c3-att-only; D_AO=$(new_image c3-att-only "$RUN_ID")
  if c3 sign --key "$COSIGN_KEY" "$K@$D_K" \
     && c3 sign --key "$PKI/leaf.key" --certificate "$PKI/leaf-uri.pem" --certificate-chain "$PKI/chain.pem" "$KL@$D_KL" \
     && c3 sign --key "$COSIGN_KEY" "$AT@$D_AT" \
     && c3 attest --key "$COSIGN_KEY" --type slsaprovenance --predicate "$PKI/predicate.json" "$AT@$D_AT" \
     && c3 attest --key "$COSIGN_KEY" --type slsaprovenance --predicate "$PKI/predicate.json" "$AO@$D_AO"; then
    ok "cosign $(ls "$WORLD_STATE"/debs/cosign_3*.deb 2>/dev/null | sed -n '1s/.*cosign_\([^_]*\)_.*/\1/p') signed and attested offline with its signing config"
  else
    bad "cosign 3 signed and attested offline with its signing config" "$(tail -20 "$WORK/cosign3.log")"
  fi
  local tags; tags=$(curl -s "http://$REGISTRY/v2/probe/c3-key/tags/list")
  if grep -q "\"sha256-${D_K#sha256:}\"" <<<"$tags" && ! grep -q '\.sig"' <<<"$tags"; then
    ok "cosign 3 stored the signature as a bundle under the sha256-<hex> referrers tag, with no .sig tag"
  else
    bad "cosign 3 stored the signature as a bundle under the sha256-<hex> referrers tag, with no .sig tag" "$tags"
  fi
  if [ ! -e "$HOME3/.sigstore" ]; then ok "cosign 3 wrote nothing under ~/.sigstore (TUF_ROOT is inside the world)"
  else bad "cosign 3 wrote nothing under ~/.sigstore (TUF_ROOT is inside the world)" "$(find "$HOME3/.sigstore" | head)"; fi

  local POL=$WORK/policies; mkdir -p "$POL"
  cat > "$POL/key.yaml" <<YAML
apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: c3-key}
spec:
  images: [{glob: "$K"}, {glob: "$AT"}, {glob: "$AO"}]
  authorities: [{name: key1, key: {path: $COSIGN_PUB}}]
YAML
  # A v0.3 bundle holds the leaf certificate only (cosign 2's .sig layer carried the chain):
  # the intermediate comes from the policy's CA bundle, as with policy-controller.
  keyless_policy "$POL/keyless.yaml" c3-keyless "$KL" "$PKI/chain.pem"
  sigstore_key_policy "$POL/provenance.yaml" c3-provenance "$AT:*" "$SLSA_ATTESTATION"
  printf 'trust_root = "%s"\n' "$PKI/trusted_root.json" > "$WORK/trust.toml"
  up "$POL" --config "$WORK/trust.toml"
  expect_runs "cosign 3: a key signature (bundle, referrers tag) runs" "$K:v1" "hello from c3-key"
  expect_runs "cosign 3: a keyless signature with a certificate from the test CA runs" "$KL:v1" "hello from c3-keyless"
  expect_runs "cosign 3: signed and SLSA-attested satisfies a policy requiring the attestation" "$AT:v1" "hello from c3-attested"
  expect_rejected "cosign 3: an image with only an attestation does not pass as signed" "$AO:v1" \
    'policy "c3-key"' "not https://sigstore.dev/cosign/sign/v1"
  stop_signet
  sed -i 's#github\\.com/example/#github\\.com/other-org/#' "$POL/keyless.yaml"
  sed -i 's#https://slsa.dev/provenance/v0.2#https://spdx.dev/Document#' "$POL/provenance.yaml"
  up "$POL" --config "$WORK/trust.toml"
  expect_rejected "cosign 3: a keyless signature whose identity the policy does not name is rejected" "$KL:v1" \
    'policy "c3-keyless"' "matches no trusted identity"
  expect_rejected "cosign 3: an attestation of another predicate type does not satisfy" "$AT:v1" \
    "not https://spdx.dev/Document"
  stop_signet
}

sec_notation() {
  # notation (sid) signs into the world with its own test certificate. Under a cosign policy
  # such an image must be refused, not waved through because the registry holds *a* signature
  # for it; under a Kyverno ImageValidatingPolicy notary attestor trusting that certificate it
  # runs, and an unsigned or cosign-only image does not.
    local N=$REGISTRY/probe/notation-signed D_N
  D_N=$(new_image notation-signed "$RUN_ID")
  notation sign --insecure-registry --key signet-world "$N@$D_N" > "$WORK/notation.log" 2>&1
  notation ls --insecure-registry "$N@$D_N" >> "$WORK/notation.log" 2>&1
  if grep -q 'application/vnd.cncf.notary.signature' "$WORK/notation.log"; then
    ok "notation $(notation version 2>/dev/null | awk '/^Version/ {print $2}') signed the image (its signature is in the registry)"
  else
    bad "notation signed the image (its signature is in the registry)" "$(cat "$WORK/notation.log")"
  fi
  local POL=$WORK/key1; key_policy "$POL" "$COSIGN_PUB"
  up "$POL"
  expect_rejected "a notation-only image is rejected under a cosign-key policy" "$N:v1" 'policy "probe"' "$D_N"
  stop_signet

  local IVP=$WORK/e2e-notary; rm -rf "$IVP"; mkdir -p "$IVP"
  cat > "$IVP/ivp.yaml" <<YAML
apiVersion: policies.kyverno.io/v1
kind: ImageValidatingPolicy
metadata: {name: notary}
spec:
  validationActions: [Deny]
  matchImageReferences:
    - glob: "$REGISTRY/probe/*"
  attestors:
    - name: notary
      notary:
        certs:
          value: |
$(sed 's/^/            /' "$NOTATION_CONFIG/localkeys/signet-world.crt")
  validations:
    - expression: >-
        images.containers.map(image, verifyImageSignatures(image, [attestors.notary])).all(e, e > 0)
      message: failed to verify image with notary cert
YAML
  up "$IVP"
  expect_runs "IVP notary attestor: the notation-signed image runs" "$N:v1" "hello from notation-signed"
  expect_rejected "IVP notary attestor: the unsigned image is rejected" "$IMG_UNSIGNED" \
    'policy "kyverno-ivp:notary"' "failed to verify image with notary cert" "no notation signatures found"
  expect_rejected "IVP notary attestor: a cosign-only image is rejected" "$IMG_SIGNED" \
    'policy "kyverno-ivp:notary"' "no notation signatures found"
  stop_signet
}

# Sections kept in files of their own: KMS keys (moto's AWS KMS API on loopback) and
# Kyverno's ImageValidatingPolicy.
# shellcheck source=integration/e2e-kms.sh
. "$(dirname "$0")/e2e-kms.sh"
# shellcheck source=integration/e2e-ivp.sh
. "$(dirname "$0")/e2e-ivp.sh"

# ------------------------------------------------------------------------------ the run
need_tools
RESULTS=$WORLD_STATE/e2e-results; rm -rf "$RESULTS"; mkdir -p "$RESULTS"
build_signet || { echo "signet did not build"; echo "0 passed, 1 failed"; exit 1; }
for RUNTIME in $RUNTIMES; do
  export RUNTIME
  t0=$(date +%s)
  say "runtime $RUNTIME: bringing up the world"
  if ! world_up; then
    echo "FAIL - the world with containerd $RUNTIME came up"; echo "0 1 0 0" > "$RESULTS/$RUNTIME.world"; continue
  fi
  echo "containerd $RUNTIME_VERSION, NRI socket $NRI_SOCK, CRI $CONTAINERD_SOCK"
  RUNTIME_WORK=$WORLD_STATE/signet-$RUNTIME/e2e
  # New content per run and runtime for the images a section signs, so signatures from an
  # earlier run (or the other runtime's) do not pile onto the same digest.
  RUN_ID=run-$(date +%s)-$RUNTIME
  for s in $SECTIONS; do run_section "$s"; done
  echo "$(( $(date +%s) - t0 ))" > "$RESULTS/$RUNTIME.seconds"
done

TOTAL_P=0 TOTAL_F=0
echo
say "summary"
printf '%-8s %-14s %7s %7s %9s %11s\n' runtime section passed failed attempts unverified
for RUNTIME in $RUNTIMES; do
  rp=0 rf=0 ra=0 ru=0
  for s in world $SECTIONS; do
    f=$RESULTS/$RUNTIME.$s; [ -f "$f" ] || continue
    read -r p fl a u < "$f"
    printf '%-8s %-14s %7s %7s %9s %11s%s\n' "$RUNTIME" "$s" "$p" "$fl" "$a" "$u" "$([ "$fl" = 0 ] || echo '   <- FAILED')"
    rp=$((rp + p)) rf=$((rf + fl)) ra=$((ra + a)) ru=$((ru + u))
  done
  # The count that matters most: enforce-mode attempts to start unverified images that started.
  if [ "$ru" = 0 ]; then rp=$((rp + 1)); echo "ok   - [$RUNTIME] enforce mode: $ra attempts to start unverified images, none started"
  else rf=$((rf + 1)); echo "FAIL - [$RUNTIME] enforce mode: $ra attempts to start unverified images, $ru started"; fi
  echo "runtime $RUNTIME: $rp passed, $rf failed, unverified starts: $ru, $(cat "$RESULTS/$RUNTIME.seconds" 2>/dev/null || echo '?') s"
  TOTAL_P=$((TOTAL_P + rp)) TOTAL_F=$((TOTAL_F + rf))
done
echo "e2e: $TOTAL_P passed, $TOTAL_F failed"
[ "$TOTAL_F" = 0 ]
