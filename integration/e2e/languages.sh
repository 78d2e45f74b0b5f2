# Sourced by integration/e2e.sh (sections run with the helpers of e2e/checks.sh).
# The policy languages, namespaces, the policy CLI and the cluster sync.

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
