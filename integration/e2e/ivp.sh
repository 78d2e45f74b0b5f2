# e2e section "ivp": Kyverno ImageValidatingPolicy (policies.kyverno.io) enforced on the node.
# Sourced by integration/e2e.sh; uses e2e/checks.sh's helpers (up, expect_runs, expect_rejected, stop_signet) and the world's images:
# $IMG_SIGNED (cosign, key 1), $IMG_SKOPEO_SIGNED (key 2), $IMG_UNSIGNED, all under
# $REGISTRY/probe/ and signed without a Rekor entry. CRI pods run in namespace "probe".

# ivp_policy FILE NAME KEY [MATCH-CONSTRAINT-LINES]: an IVP requiring KEY's cosign signature on
# probe/*, Kyverno's own shape (conformance test standard/cosign), tlog ignored as air-gapped
# users write it; the optional lines go into matchConstraints (indented four spaces).
ivp_policy() {
  local file=$1 name=$2 key=$3 extra=${4:-}
  cat > "$file" <<YAML
apiVersion: policies.kyverno.io/v1
kind: ImageValidatingPolicy
metadata: {name: $name}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules:
      - {apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["pods"]}
$extra
  matchImageReferences:
    - glob: "$REGISTRY/probe/*"
  attestors:
    - name: cosign
      cosign:
        ctlog: {insecureIgnoreTlog: true}
        key:
          data: |
$(sed 's/^/            /' "$key")
  validations:
    - expression: >-
        images.containers.map(image, verifyImageSignatures(image, [attestors.cosign])).all(e, e > 0)
      message: failed the image signature verification
YAML
}

sec_ivp() {
  local POL=$WORK/e2e-ivp; rm -rf "$POL"; mkdir -p "$POL"
  ivp_policy "$POL/ivp.yaml" cosign-key "$COSIGN_PUB"
  C=$("$SIGNET" policy check "$POL/ivp.yaml" 2>&1); rc=$?
  if [ $rc = 0 ] && grep -q 'name: kyverno-ivp:cosign-key' <<<"$C" && grep -q '0 part(s) fail closed' <<<"$C"; then
    ok "policy check: the IVP is read, every part evaluated on the node"
  else
    bad "policy check: the IVP is read, every part evaluated on the node" "rc=$rc $C"
  fi
  up "$POL"
  expect_runs "IVP cosign key: the signed image runs" "$IMG_SIGNED" "hello from signed"
  expect_rejected "IVP cosign key: the unsigned image is rejected with the validation's message and the attestor's reason" \
    "$IMG_UNSIGNED" 'policy "kyverno-ivp:cosign-key"' "failed the image signature verification" "attestor cosign" \
    "no signatures found"
  expect_rejected "IVP cosign key: an image signed by another key is rejected" "$IMG_SKOPEO_SIGNED" "none made by key"
  stop_signet

  # Audit only: warn mode, the unsigned image runs and the would-be denial is logged.
  sed -i 's/validationActions: \[Deny\]/validationActions: [Audit]/' "$POL/ivp.yaml"
  up "$POL"
  expect_runs "IVP Audit: the unsigned image runs" "$IMG_UNSIGNED" "hello from unsigned"
  if grep -q 'result="warned".*failed the image signature verification' "$SIGNET_LOG"; then
    ok "IVP Audit: the would-be denial is logged"
  else
    bad "IVP Audit: the would-be denial is logged" "$(tail -20 "$SIGNET_LOG")"
  fi
  stop_signet

  # A validation the node cannot evaluate (request.userInfo is not in NRI) fails closed, named.
  ivp_policy "$POL/ivp.yaml" user-check "$COSIGN_PUB"
  printf '    - expression: request.userInfo.username != "intruder"\n' >> "$POL/ivp.yaml"
  up "$POL"
  expect_rejected "IVP: an expression over request fields fails closed, naming the expression" "$IMG_SIGNED" \
    "validations[1]: request is not known on the node"
  stop_signet

  # A namespaceSelector by name: pods run in "probe"; a selector for another namespace leaves
  # the image to the node's no-match action.
  ivp_policy "$POL/ivp.yaml" elsewhere "$COSIGN_PUB" "    namespaceSelector:
      matchExpressions:
        - {key: kubernetes.io/metadata.name, operator: In, values: [payments]}"
  up "$POL" --no-match allow
  expect_runs "IVP namespaceSelector for another namespace does not apply" "$IMG_UNSIGNED"
  stop_signet
  sed -i 's/values: \[payments\]/values: [probe]/' "$POL/ivp.yaml"
  up "$POL" --no-match allow
  expect_rejected "IVP namespaceSelector naming the pod's namespace applies" "$IMG_UNSIGNED" \
    'policy "kyverno-ivp:elsewhere"'
  stop_signet

  # A namespaceSelector on other labels: from local files the node knows no namespace labels,
  # so the selector selects (the policy applies, stricter than skipping it), and policy check
  # says so.
  ivp_policy "$POL/ivp.yaml" by-label "$COSIGN_PUB" "    namespaceSelector:
      matchLabels: {team: payments}"
  C=$("$SIGNET" policy check "$POL/ivp.yaml" 2>&1)
  if grep -q "namespace labels come from the cluster; where they are not known" <<<"$C"; then
    ok "policy check: a label namespaceSelector says it applies where labels are unknown"
  else
    bad "policy check: a label namespaceSelector says it applies where labels are unknown" "$C"
  fi
  up "$POL" --no-match allow
  expect_rejected "IVP namespaceSelector on labels the node does not know applies" "$IMG_UNSIGNED" \
    'policy "kyverno-ivp:by-label"'
  expect_runs "IVP namespaceSelector on unknown labels: the signed image runs" "$IMG_SIGNED"
  stop_signet

  # A match condition on the namespace's name, which NRI gives the node: pods run in "probe".
  ivp_policy "$POL/ivp.yaml" not-probe "$COSIGN_PUB"
  sed -i "s/^  validations:$/  matchConditions:\n    - {name: not-probe, expression: \"object.metadata.namespace != 'probe'\"}\n  validations:/" "$POL/ivp.yaml"
  up "$POL"
  expect_runs "IVP matchConditions on the namespace: false for the pod's namespace, not applied" "$IMG_UNSIGNED"
  stop_signet
  sed -i "s/!= 'probe'/!= 'elsewhere'/" "$POL/ivp.yaml"
  up "$POL"
  expect_rejected "IVP matchConditions on the namespace: true, the validations apply" "$IMG_UNSIGNED" \
    'policy "kyverno-ivp:not-probe"'
  stop_signet

  # The pod's own labels, which NRI carries: an objectSelector selects by them, and a match
  # condition reads them (object.metadata.labels); an annotation satisfies a validation.
  ivp_policy "$POL/ivp.yaml" opted-in "$COSIGN_PUB" "    objectSelector:
      matchLabels: {signet.test/verify: \"true\"}"
  up "$POL" --no-match allow
  CRI_RUN_ARGS=(--label signet.test/verify=true)
  expect_rejected "IVP objectSelector: a pod with the selected label is checked" "$IMG_UNSIGNED" \
    'policy "kyverno-ivp:opted-in"' "failed the image signature verification"
  CRI_RUN_ARGS=(--label signet.test/verify=false)
  expect_runs "IVP objectSelector: a pod without the selected label is left alone" "$IMG_UNSIGNED"
  CRI_RUN_ARGS=()
  stop_signet
  ivp_policy "$POL/ivp.yaml" waivers "$COSIGN_PUB"
  sed -i "s/^  validations:$/  matchConditions:\n    - {name: not-batch, expression: \"object.metadata.labels.tier != 'batch'\"}\n  validations:/" "$POL/ivp.yaml"
  printf '%s\n' "    - expression: \"object.metadata.annotations['signet.test/waiver'] == 'granted'\"" \
    "      message: the pod has no waiver" >> "$POL/ivp.yaml"
  C=$("$SIGNET" policy check "$POL/ivp.yaml" 2>&1); rc=$?
  if [ $rc = 0 ] && grep -q '0 part(s) fail closed' <<<"$C"; then
    ok "policy check: pod labels and annotations are evaluated on the node"
  else
    bad "policy check: pod labels and annotations are evaluated on the node" "rc=$rc $C"
  fi
  up "$POL"
  CRI_RUN_ARGS=(--label tier=batch)
  expect_runs "IVP matchConditions on a pod label: false for the pod, not applied" "$IMG_UNSIGNED"
  CRI_RUN_ARGS=(--label tier=web --annotation signet.test/waiver=granted)
  expect_runs "IVP validation on a pod annotation: signed with the waiver, runs" "$IMG_SIGNED"
  CRI_RUN_ARGS=(--label tier=web --annotation signet.test/waiver=refused)
  expect_rejected "IVP validation on a pod annotation: signed without the waiver, rejected with its message" \
    "$IMG_SIGNED" 'policy "kyverno-ivp:waivers"' "the pod has no waiver"
  CRI_RUN_ARGS=(--label tier=web --annotation signet.test/waiver=granted)
  expect_rejected "IVP matchConditions on a pod label: true, the unsigned image is rejected" "$IMG_UNSIGNED" \
    "failed the image signature verification"
  CRI_RUN_ARGS=()
  stop_signet

  # A Kyverno ClusterPolicy match entry for Pods with a selector reads the same labels.
  rm -f "$POL/ivp.yaml"
  cat > "$POL/cpol.yaml" <<YAML
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: opted-in}
spec:
  validationFailureAction: Enforce
  rules:
    - name: signed
      match: {any: [{resources: {kinds: [Pod], selector: {matchLabels: {signet.test/verify: "true"}}}}]}
      verifyImages:
        - imageReferences: ["$REGISTRY/probe/*"]
          attestors:
            - entries:
                - keys:
                    rekor: {ignoreTlog: true}
                    publicKeys: |-
$(sed 's/^/                      /' "$COSIGN_PUB")
YAML
  up "$POL" --no-match allow
  CRI_RUN_ARGS=(--label signet.test/verify=true)
  expect_rejected "ClusterPolicy Pod selector: a pod with the selected label is checked" "$IMG_UNSIGNED" \
    'policy "kyverno:opted-in/signed"'
  expect_runs "ClusterPolicy Pod selector: the signed image runs in a selected pod" "$IMG_SIGNED"
  CRI_RUN_ARGS=()
  expect_runs "ClusterPolicy Pod selector: a pod without the label is left alone" "$IMG_UNSIGNED"
  stop_signet
  rm -f "$POL/cpol.yaml"

  # The namespaced kind governs its own namespace.
  ivp_policy "$POL/ivp.yaml" team "$COSIGN_PUB"
  sed -i 's/^kind: ImageValidatingPolicy$/kind: NamespacedImageValidatingPolicy/; s/^metadata: {name: team}$/metadata: {name: team, namespace: probe}/' "$POL/ivp.yaml"
  up "$POL"
  expect_runs "NamespacedImageValidatingPolicy in the pod's namespace: the signed image runs" "$IMG_SIGNED"
  expect_rejected "NamespacedImageValidatingPolicy in the pod's namespace: the unsigned image is rejected" \
    "$IMG_UNSIGNED" 'policy "kyverno-ivp:probe/team"'
  stop_signet
}

# e2e section "tuf": an ImageValidatingPolicy keyless attestor whose trust root comes from a
# TUF repository (Kyverno cosign.tuf), served over HTTP on a port of this section's. The node
# has no trust root of its own here: only the repository's trusted_root.json names the test
# CA, so an image runs only when signet fetched and verified it.
sec_tuf() {
  . "$REPO/integration/testpki.sh"
  local PKI=$WORK/pki ISSUER=https://issuer.example SUBJECT=https://github.com/example/app/.github/workflows/release.yml@refs/heads/main
  mkdir -p "$PKI"; (cd "$PKI" && pki_ca "$ISSUER" builder@example.com "$SUBJECT")
  local IMG=$REGISTRY/probe/tuf D
  D=$(new_image tuf "$RUN_ID")
  cosign sign --key "$PKI/leaf.key" --certificate "$PKI/leaf-uri.pem" --certificate-chain "$PKI/chain.pem" \
    "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y "$IMG@$D" >/dev/null 2>&1
  # The repository (tough's editor, crates/tuf-testrepo) and another one signed by another key.
  (cd "$REPO" && cargo build -q -p tuf-testrepo) || { bad "the TUF test repository tool builds" ""; return; }
  local TOOL=$REPO/target/debug/tuf-testrepo
  "$TOOL" "$WORK/repo" "$WORK/repo.key" "$PKI/trusted_root.json" > /dev/null \
    && "$TOOL" "$WORK/other" "$WORK/other.key" "$PKI/trusted_root.json" > /dev/null \
    || { bad "the TUF test repositories are made" ""; return; }
  python3 -m http.server 5319 --bind 127.0.0.1 --directory "$WORK/repo" > "$WORK/http.log" 2>&1 &
  FAULT_PID=$!   # (section_cleanup stops it)
  wait_for 10 curl -fsS "http://127.0.0.1:5319/1.root.json" -o /dev/null \
    || { bad "the TUF mirror serves" "$(cat "$WORK/http.log")"; return; }
  tuf_policy() {  # FILE ROOT.JSON [MIRROR]
    cat > "$1" <<YAML
apiVersion: policies.kyverno.io/v1
kind: ImageValidatingPolicy
metadata: {name: tuf}
spec:
  validationActions: [Deny]
  matchImageReferences:
    - glob: "$REGISTRY/probe/*"
  attestors:
    - name: ci
      cosign:
        ctlog: {insecureIgnoreTlog: true, insecureIgnoreSCT: true}
        tuf:
          mirror: ${3:-http://127.0.0.1:5319}
          root: {data: $(base64 -w0 "$2")}
        keyless:
          identities:
            - {issuer: "$ISSUER", subject: "$SUBJECT"}
  validations:
    - expression: images.containers.map(i, verifyImageSignatures(i, [attestors.ci])).all(e, e > 0)
      message: not signed by CI under the TUF repository's trust root
YAML
  }
  # wait_fetched: until the daemon says the repository verified (it fetches off the request path).
  wait_fetched() { wait_for 20 grep -q 'TUF repository trust root fetched and verified' "$SIGNET_LOG"; }
  local POL=$WORK/policy; mkdir -p "$POL"
  tuf_policy "$POL/tuf.yaml" "$WORK/repo/1.root.json"
  C=$("$SIGNET" policy check --state-dir "$WORK/check-state" "$POL/tuf.yaml" 2>&1)
  if grep -q 'tuf: http://127.0.0.1:5319: trusted_root.json verified, targets version 1' <<<"$C"; then
    ok "policy check: the TUF repository is fetched and verified"
  else
    bad "policy check: the TUF repository is fetched and verified" "$C"
  fi
  printf 'state_dir = "%s"\n' "$WORK/state" > "$WORK/node.toml"
  up "$POL" --config "$WORK/node.toml"
  wait_fetched || bad "signet fetches the TUF repository" "$(tail -20 "$SIGNET_LOG")"
  expect_runs "TUF: a certificate under the CA the repository's trusted_root.json names runs" "$IMG:v1" "hello from tuf"
  expect_rejected "TUF: the unsigned image is rejected" "$IMG_UNSIGNED" 'policy "kyverno-ivp:tuf"' \
    "not signed by CI under the TUF repository's trust root"
  stop_signet
  # A node booting with the mirror down enforces the root it last verified (the cache file).
  kill "$FAULT_PID"; wait "$FAULT_PID" 2>/dev/null; FAULT_PID=
  up "$POL" --config "$WORK/node.toml"
  expect_runs "TUF: with the mirror down, the last verified trust root (cached) still admits" "$IMG:v1"
  stop_signet
  # With nothing cached and the mirror down, the attestor fails closed naming the mirror.
  printf 'state_dir = "%s"\n' "$WORK/state2" > "$WORK/node2.toml"
  up "$POL" --config "$WORK/node2.toml"
  wait_for 20 grep -q 'TUF repository not refreshed' "$SIGNET_LOG" \
    || bad "TUF: the daemon tries the mirror that is down" "$(tail -5 "$SIGNET_LOG")"
  expect_rejected "TUF: nothing verified yet and the mirror down: rejected, naming the repository" "$IMG:v1" \
    'policy "kyverno-ivp:tuf"' "TUF repository http://127.0.0.1:5319"
  stop_signet
  # Entered through another repository's root: the mirror's metadata does not verify.
  python3 -m http.server 5319 --bind 127.0.0.1 --directory "$WORK/repo" > "$WORK/http.log" 2>&1 &
  FAULT_PID=$!
  wait_for 10 curl -fsS "http://127.0.0.1:5319/1.root.json" -o /dev/null \
    || { bad "the TUF mirror serves again" "$(cat "$WORK/http.log")"; return; }
  tuf_policy "$POL/tuf.yaml" "$WORK/other/1.root.json"
  printf 'state_dir = "%s"\n' "$WORK/state3" > "$WORK/node3.toml"
  up "$POL" --config "$WORK/node3.toml"
  if wait_for 20 grep -q 'TUF repository not refreshed.*Signature threshold' "$SIGNET_LOG"; then
    ok "TUF: the daemon refuses the repository under another root (signature threshold not met)"
  else
    bad "TUF: the daemon refuses the repository under another root (signature threshold not met)" "$(tail -5 "$SIGNET_LOG")"
  fi
  expect_rejected "TUF: a repository that does not verify under the policy's root is not trusted" "$IMG:v1" \
    'policy "kyverno-ivp:tuf"' "TUF repository http://127.0.0.1:5319"
  stop_signet
  # A target changed on the mirror (same name, other bytes): the signed hash refuses it.
  tuf_policy "$POL/tuf.yaml" "$WORK/repo/1.root.json"
  local T; T=$(ls "$WORK/repo/targets/"*trusted_root.json | head -1)
  sed -i 's/"tlogs"/"TLOGS"/' "$T"
  printf 'state_dir = "%s"\n' "$WORK/state4" > "$WORK/node4.toml"
  up "$POL" --config "$WORK/node4.toml"
  if wait_for 20 grep -q 'TUF repository not refreshed.*Hash mismatch' "$SIGNET_LOG"; then
    ok "TUF: the daemon refuses the tampered target (hash mismatch)"
  else
    bad "TUF: the daemon refuses the tampered target (hash mismatch)" "$(tail -5 "$SIGNET_LOG")"
  fi
  expect_rejected "TUF: a tampered trusted_root.json on the mirror is refused" "$IMG:v1" \
    'policy "kyverno-ivp:tuf"' "TUF repository http://127.0.0.1:5319"
  stop_signet
}

# e2e section "sbom": Kyverno's referrer attestations. Real oras attaches a CycloneDX SBOM to a
# notation-signed image (`oras attach --artifact-type sbom/cyclone-dx`), real notation signs the
# SBOM, and the node enforces Kyverno's own sample validations (verifyAttestationSignatures and
# `extractPayload(...).bomFormat == 'CycloneDX'`). The world's registry has no referrers API: oras
# and notation keep the fallback tag, which whoever can push also writes.
sec_sbom() {
  local R=$REGISTRY/probe/sbom D_S D_U D_X D_M
  # sbom_image NAME TAG: a new image in probe/sbom under TAG, notation-signed; prints its digest.
  sbom_image() {
    python3 "$REPO/integration/mkimage.py" "$WORK/oci-$1" "$1" --entrypoint null \
      --cmd "[\"/bin/sh\",\"-c\",\"echo hello from $1 $RUN_ID; sleep 2147483647\"]" >/dev/null
    skopeo copy -q --dest-tls-verify=false "oci:$WORK/oci-$1:latest" "docker://$R:$2"
    local d; d=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R:$2")
    notation sign --insecure-registry --key signet-world "$R@$d" >> "$WORK/notation.log" 2>&1
    echo "$d"
  }
  # attach DIGEST FILE [sign]: oras attaches FILE as a CycloneDX SBOM; prints the SBOM's digest.
  attach() {
    local a
    a=$(cd "$WORK" && oras attach --plain-http --artifact-type sbom/cyclone-dx --format json "$R@$1" \
      "$2:application/vnd.cyclonedx+json" 2>>"$WORK/oras.log" | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
    [ -z "${3:-}" ] || notation sign --insecure-registry --key signet-world "$R@$a" >> "$WORK/notation.log" 2>&1
    echo "$a"
  }
  printf '{"bomFormat":"CycloneDX","specVersion":"1.5","version":1}\n' > "$WORK/cyclonedx.json"
  printf '{"bomFormat":"SPDX","spdxVersion":"SPDX-2.3"}\n' > "$WORK/spdx.json"
  D_S=$(sbom_image sbom-signed signed); D_U=$(sbom_image sbom-unsigned unsigned)
  D_X=$(sbom_image sbom-spdx spdx); D_M=$(sbom_image sbom-moved moved)
  local A_S A_U A_X
  A_S=$(attach "$D_S" cyclonedx.json sign); A_U=$(attach "$D_U" cyclonedx.json); A_X=$(attach "$D_X" spdx.json sign)
  # (discover's output kept whole: `| grep -q` under pipefail fails when grep's early exit
  # breaks oras's pipe, as it did once in CI)
  if [ -n "$A_S" ] && [ -n "$A_U" ] && [ -n "$A_X" ] \
      && oras discover --plain-http "$R@$A_S" > "$WORK/discover.txt" 2>>"$WORK/oras.log" \
      && grep -q 'application/vnd.cncf.notary.signature' "$WORK/discover.txt"; then
    ok "oras $(oras version | awk '/^Version/ {print $2}') attached the SBOMs and notation signed them"
  else
    bad "oras attached the SBOMs and notation signed them" \
      "SBOMs: ${A_S:-none} ${A_U:-none} ${A_X:-none}; discover: $(cat "$WORK/discover.txt" 2>/dev/null) $(cat "$WORK/oras.log" "$WORK/notation.log")"
    return
  fi
  # The signed SBOM of sbom-signed listed among sbom-moved's referrers too, by a registry writer
  # (the fallback tag is an ordinary tag): its signature verifies, its subject is the other image.
  python3 - "$REGISTRY" probe/sbom "$D_M" "$D_S" "$A_S" <<'PY' || bad "the SBOM is listed for another image" ""
import json, sys, urllib.request
reg, repo, victim, source, sbom = sys.argv[1:6]
def index(d):
    req = urllib.request.Request(f"http://{reg}/v2/{repo}/manifests/{d.replace(':', '-')}",
                                 headers={"Accept": "application/vnd.oci.image.index.v1+json"})
    return json.load(urllib.request.urlopen(req))
entry = next(m for m in index(source)["manifests"] if m["digest"] == sbom)
moved = index(victim)
moved["manifests"].append(entry)
urllib.request.urlopen(urllib.request.Request(
    f"http://{reg}/v2/{repo}/manifests/{victim.replace(':', '-')}", data=json.dumps(moved).encode(), method="PUT",
    headers={"Content-Type": "application/vnd.oci.image.index.v1+json"}))
PY
  local IVP=$WORK/policy; rm -rf "$IVP"; mkdir -p "$IVP"
  # Kyverno's sample (test/cli/test-image-validating-policy/sample-policy), with the world's cert.
  cat > "$IVP/ivp.yaml" <<YAML
apiVersion: policies.kyverno.io/v1
kind: ImageValidatingPolicy
metadata: {name: sbom}
spec:
  validationActions: [Deny]
  validationConfigurations: {verifyDigest: false}
  matchImageReferences:
    - glob: "$REGISTRY/probe/*"
  attestors:
    - name: notary
      notary:
        certs:
          value: |
$(sed 's/^/            /' "$NOTATION_CONFIG/localkeys/signet-world.crt")
  attestations:
    - name: sbom
      referrer:
        type: sbom/cyclone-dx
  validations:
    - expression: >-
        images.containers.map(image, verifyImageSignatures(image, [attestors.notary])).all(e, e > 0)
      message: failed to verify image with notary cert
    - expression: >-
        images.containers.map(image, verifyAttestationSignatures(image, attestations.sbom ,[attestors.notary])).all(e, e > 0)
      message: failed to verify attestation with notary cer
    - expression: >-
        images.containers.map(image, extractPayload(image, attestations.sbom).bomFormat == 'CycloneDX').all(e, e)
      message: sbom is not a cyclone dx sbom
YAML
  up "$IVP"
  expect_runs "SBOM: a notation-signed image with a notation-signed CycloneDX SBOM runs" "$R:signed" "hello from sbom-signed"
  expect_rejected "SBOM: the SBOM attached but not signed is rejected" "$R:unsigned" 'policy "kyverno-ivp:sbom"' \
    "failed to verify attestation with notary cer" "it has no notation signature"
  expect_rejected "SBOM: a signed SBOM that is not CycloneDX is rejected by the payload check" "$R:spdx" \
    'policy "kyverno-ivp:sbom"' "sbom is not a cyclone dx sbom"
  expect_rejected "SBOM: another image's signed SBOM listed for this one is rejected (its subject)" "$R:moved" \
    'policy "kyverno-ivp:sbom"' "failed to verify attestation with notary cer" "not to the image"
  expect_rejected "SBOM: an image with no SBOM is rejected" "$IMG_UNSIGNED" 'policy "kyverno-ivp:sbom"' \
    "failed to verify image with notary cert"
  stop_signet
  # The same SBOMs under Kyverno's older form: a ClusterPolicy `type: Notary` attestation (no
  # conditions: any notation-signed JSON object of the type, the first one listed).
  # notary_cpol RULE [CONDITIONS]: that ClusterPolicy, its rule named RULE, with CONDITIONS
  # (YAML at the attestation's indent) when given.
  notary_cpol() {
    cat > "$IVP/cpol.yaml" <<YAML
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: sbom}
spec:
  validationFailureAction: Enforce
  rules:
    - name: $1
      match: {any: [{resources: {kinds: [Pod]}}]}
      verifyImages:
        - imageReferences: ["$R:*"]
          type: Notary
          attestations:
            - type: sbom/cyclone-dx
              attestors:
                - entries:
                    - certificates:
                        cert: |
$(sed 's/^/                          /' "$NOTATION_CONFIG/localkeys/signet-world.crt")
${2:-}
YAML
  }
  rm -f "$IVP/ivp.yaml"
  notary_cpol notary
  up "$IVP"
  expect_runs "SBOM (ClusterPolicy type: Notary): an image with a notation-signed SBOM runs" "$R:signed" \
    "hello from sbom-signed"
  expect_runs "SBOM (ClusterPolicy type: Notary): without conditions, a signed SPDX document of the type counts" \
    "$R:spdx" "hello from sbom-spdx"
  expect_rejected "SBOM (ClusterPolicy type: Notary): the unsigned SBOM is rejected" "$R:unsigned" \
    'policy "kyverno:sbom/notary"' "it has no notation signature"
  expect_rejected "SBOM (ClusterPolicy type: Notary): another image's signed SBOM listed for this one is rejected" \
    "$R:moved" 'policy "kyverno:sbom/notary"' "not to the image"
  stop_signet
  # With conditions, judged on the node over the verified SBOM (the payload is the variables'
  # root, as in Kyverno): CycloneDX holds, the signed SPDX document does not.
  notary_cpol cyclonedx '              conditions:
                - all:
                    - key: "{{ bomFormat }}"
                      operator: Equals
                      value: CycloneDX
                      message: the SBOM is not CycloneDX
                    - key: "{{ to_number(specVersion) }}"
                      operator: GreaterThanOrEquals
                      value: 1.4
                      message: CycloneDX before 1.4'
  up "$IVP"
  expect_runs "SBOM (ClusterPolicy conditions): a signed CycloneDX 1.5 SBOM satisfies the conditions and runs" \
    "$R:signed" "hello from sbom-signed"
  expect_rejected "SBOM (ClusterPolicy conditions): a signed SPDX document fails the conditions, named" "$R:spdx" \
    'policy "kyverno:sbom/cyclonedx"' "the conditions do not hold: the SBOM is not CycloneDX"
  stop_signet
}
