# Sourced by integration/e2e.sh (sections run with the helpers of e2e/checks.sh).
# The daemon's own behaviour: enforce and warn modes, restarts, a second key, config and policy reload, a runtime with no plugin.

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
