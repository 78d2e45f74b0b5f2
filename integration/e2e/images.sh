# Sourced by integration/e2e.sh (sections run with the helpers of e2e/checks.sh).
# Images the node meets outside a plain pull: image volumes, images by ID, images already in
# the store.

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

sec_by_id() {
  # kubelet creates a container by the image ID PullImage answered, with the pod spec's
  # reference beside it (ImageSpec.user_specified_image, which containerd >= 2.0 puts in the
  # image-name annotation). A direct CRI caller can send any reference beside any ID: the
  # node must check the content that runs, never the name it is told.
  local POL=$WORK/key1; key_policy "$POL" "$COSIGN_PUB"
  up "$POL"
  CRI_RUN_ARGS=(--by-id)
  expect_runs "by ID as kubelet sends it: a signed image runs" "$IMG_SIGNED" "hello from signed"
  expect_rejected "by ID as kubelet sends it: an unsigned image is rejected" "$IMG_UNSIGNED" "no signatures"
  CRI_RUN_ARGS=(--by-id --claim "$IMG_SIGNED")
  # (containerd 1.7 ignores the name sent and reports the content's own; 2.x passes it on)
  local why=; [ "$RUNTIME" = 1.7 ] || why="root filesystem is not the content of $IMG_SIGNED"
  expect_rejected "by ID: unsigned content sent with a signed image's name beside it is rejected" "$IMG_UNSIGNED" \
    ${why:+"$why"}
  CRI_RUN_ARGS=()
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
