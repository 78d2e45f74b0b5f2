# Sourced by integration/e2e.sh (sections run with the helpers of e2e/checks.sh).
# How the node reaches registries: hosts.toml mirrors and TLS.

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

# Signatures kept in another repository (cosign's COSIGN_REPOSITORY), where a policy says they
# are (Kyverno's verifyImages repository): read there, and only there, for the digest that runs.
sec_sigrepo() {
  local SR=$REGISTRY/probe/signatures POL=$WORK/e2e-sigrepo
  SR_DIGEST=$(new_image sigrepo "$RUN_ID")
  COSIGN_REPOSITORY=$SR cosign sign --key "$COSIGN_KEY" "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y \
    "$REGISTRY/probe/sigrepo@$SR_DIGEST" >/dev/null 2>&1
  OWN_DIGEST=$(new_image sigrepo-own "$RUN_ID")
  cosign sign --key "$COSIGN_KEY" "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y \
    "$REGISTRY/probe/sigrepo-own@$OWN_DIGEST" >/dev/null 2>&1
  rm -rf "$POL"; mkdir -p "$POL"
  cat > "$POL/kyverno.yaml" <<YAML
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: sigrepo}
spec:
  validationFailureAction: Enforce
  rules:
  - name: sigrepo
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["$REGISTRY/probe/sigrepo*"]
      repository: $SR
      attestors:
      - entries:
        - keys:
            publicKeys: |-
$(sed 's/^/              /' "$COSIGN_PUB")
            rekor: {ignoreTlog: true}
YAML
  up "$POL"
  expect_runs "signature repository: an image cosign signed into another repository (COSIGN_REPOSITORY) runs under a policy naming it" \
    "$REGISTRY/probe/sigrepo:v1" "hello from sigrepo"
  expect_rejected "signature repository: an image signed only in its own repository is refused by that policy" \
    "$REGISTRY/probe/sigrepo-own:v1" "$SR"
  stop_signet

  # A tag prefix (cosign --attachment-tag-prefix; ImageValidatingPolicy source.tagPrefix): the
  # .sig tag is ci-sha256-<hex>.sig, in the image's own repository.
  local TP_DIGEST; TP_DIGEST=$(new_image tagprefix "$RUN_ID")
  cosign sign --key "$COSIGN_KEY" --attachment-tag-prefix ci- "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y \
    "$REGISTRY/probe/tagprefix@$TP_DIGEST" >/dev/null 2>&1
  if cosign verify --key "$COSIGN_PUB" --attachment-tag-prefix ci- --insecure-ignore-tlog "${COSIGN_REG_FLAGS[@]}" \
      "$REGISTRY/probe/tagprefix@$TP_DIGEST" >/dev/null 2>&1; then
    ok "cosign verifies its own signature under the tag prefix"
  else
    bad "cosign verifies its own signature under the tag prefix" ""
  fi
  rm -f "$POL"/*.yaml
  cat > "$POL/ivp.yaml" <<YAML
apiVersion: policies.kyverno.io/v1
kind: ImageValidatingPolicy
metadata: {name: tagprefix}
spec:
  validationActions: [Deny]
  matchImageReferences:
    - glob: "$REGISTRY/probe/tagprefix"
    - glob: "$REGISTRY/probe/sigrepo-own"
  attestors:
    - name: ci
      cosign:
        source: {tagPrefix: ci-}
        ctlog: {insecureIgnoreTlog: true}
        key:
          data: |
$(sed 's/^/            /' "$COSIGN_PUB")
  validations:
    - expression: images.containers.map(i, verifyImageSignatures(i, [attestors.ci])).all(e, e > 0)
      message: not signed under the ci- tags
YAML
  up "$POL"
  expect_runs "tag prefix: an image cosign signed with --attachment-tag-prefix runs under source.tagPrefix" \
    "$REGISTRY/probe/tagprefix:v1" "hello from tagprefix"
  expect_rejected "tag prefix: an image signed under cosign's plain tag only is refused by that policy" \
    "$REGISTRY/probe/sigrepo-own:v1" 'policy "kyverno-ivp:tagprefix"' "ci-sha256-"
  stop_signet
}
