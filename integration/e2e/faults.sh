# Sourced by integration/e2e.sh (sections run with the helpers of e2e/checks.sh).
# Registries that fail or attack: down, endless or dripping bodies, redirects to the node itself.

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
