# Sourced by integration/e2e.sh (sections run with the helpers of e2e/checks.sh).
# What signers write: keyless certificates and Rekor, OCI referrers, bundles, cosign 3, GPG simple signing, notation.

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

  # Kyverno certificates attestor (cosign --certificate --certificate-chain): the keyless
  # image's signatures are by the leaf's key; the policy pins that certificate and its chain.
  local CERTS=$WORK/e2e-certificates; rm -rf "$CERTS"; mkdir -p "$CERTS"
  cat > "$CERTS/cpol.yaml" <<YAML
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: pinned}
spec:
  validationFailureAction: Enforce
  rules:
    - name: certificate
      match: {any: [{resources: {kinds: [Pod]}}]}
      verifyImages:
        - imageReferences: ["$REGISTRY/probe/keyless:*", "$REGISTRY/probe/signed:*"]
          attestors:
            - entries:
                - certificates:
                    cert: |
$(sed 's/^/                      /' "$PKI/leaf-uri.pem")
                    certChain: |
$(sed 's/^/                      /' "$PKI/chain.pem")
                    rekor: {ignoreTlog: true}
                    ctlog: {ignoreSCT: true}
YAML
  up "$CERTS"
  expect_runs "Kyverno certificates: a signature by the pinned certificate's key, chaining to certChain" \
    "$REGISTRY/probe/keyless:v1" "hello from keyless"
  expect_rejected "Kyverno certificates: a signature by another key is rejected" "$IMG_SIGNED" \
    'policy "kyverno:pinned/certificate"' "none made by certificate"
  stop_signet
  sed -i '/ignoreSCT/d' "$CERTS/cpol.yaml"
  up "$CERTS"
  expect_rejected "Kyverno certificates: with certChain, an SCT is required by default" "$REGISTRY/probe/keyless:v1" \
    'policy "kyverno:pinned/certificate"' "SCT"
  stop_signet

  # Kyverno keyless additionalExtensions: a certificate with Fulcio's GitHub workflow extensions
  # (testpki's leaf-github.pem: trigger push, repository example/app, ref refs/heads/main).
  local GH_DIGEST; GH_DIGEST=$(new_image github-ext "$RUN_ID")
  cosign sign --key "$PKI/leaf.key" --certificate "$PKI/leaf-github.pem" --certificate-chain "$PKI/chain.pem" \
    "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y "$REGISTRY/probe/github-ext@$GH_DIGEST" >/dev/null 2>&1
  local EXT=$WORK/e2e-extensions; rm -rf "$EXT"; mkdir -p "$EXT"
  gh_policy() {  # REF: a ClusterPolicy requiring the workflow repository and REF
    cat > "$EXT/cpol.yaml" <<YAML
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: workflow}
spec:
  validationFailureAction: Enforce
  rules:
    - name: github
      match: {any: [{resources: {kinds: [Pod]}}]}
      verifyImages:
        - imageReferences: ["$REGISTRY/probe/github-ext:*", "$REGISTRY/probe/keyless:*"]
          attestors:
            - entries:
                - keyless:
                    issuer: "$ISSUER"
                    subject: "https://github.com/example/*"
                    additionalExtensions:
                      githubWorkflowRepository: example/app
                      githubWorkflowRef: "$1"
                      githubWorkflowTrigger: push
                    roots: |
$(sed 's/^/                      /' "$PKI/root.pem")
                    rekor: {ignoreTlog: true}
                    ctlog: {ignoreSCT: true}
YAML
  }
  gh_policy refs/heads/main
  up "$EXT"
  expect_runs "Kyverno keyless additionalExtensions: the workflow's repository, ref and trigger match" \
    "$REGISTRY/probe/github-ext:v1" "hello from github-ext"
  expect_rejected "Kyverno keyless additionalExtensions: a certificate without the extensions is rejected" \
    "$REGISTRY/probe/keyless:v1" 'policy "kyverno:workflow/github"' "githubWorkflowRepository none"
  stop_signet
  gh_policy "refs/heads/release*"
  up "$EXT"
  expect_rejected "Kyverno keyless additionalExtensions: another ref is rejected, naming the certificate's" \
    "$REGISTRY/probe/github-ext:v1" 'policy "kyverno:workflow/github"' 'githubWorkflowRef "refs/heads/main"'
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

sec_notation() {
  # notation (sid) signs into the world with its own test certificate. Under a cosign policy
  # such an image must be refused, not waved through because the registry holds *a* signature
  # for it; under a Kyverno ImageValidatingPolicy notary attestor trusting that certificate it
  # runs, and an unsigned or cosign-only image does not.
  local N=$REGISTRY/probe/notation-signed D_N
  D_N=$(new_image notation-signed "$RUN_ID")
  notation sign --insecure-registry --key signet-world "$N@$D_N" > "$WORK/notation.log" 2>&1
  notation ls --insecure-registry "$N@$D_N" >> "$WORK/notation.log" 2>&1
  # notation's other envelope format: COSE_Sign1.
  local NC=$REGISTRY/probe/notation-cose D_NC
  D_NC=$(new_image notation-cose "$RUN_ID")
  notation sign --insecure-registry --key signet-world --signature-format cose "$NC@$D_NC" >> "$WORK/notation.log" 2>&1
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
  expect_runs "IVP notary attestor: a notation COSE-signed image runs" "$NC:v1" "hello from notation-cose"
  expect_rejected "IVP notary attestor: the unsigned image is rejected" "$IMG_UNSIGNED" \
    'policy "kyverno-ivp:notary"' "failed to verify image with notary cert" "no notation signatures found"
  expect_rejected "IVP notary attestor: a cosign-only image is rejected" "$IMG_SIGNED" \
    'policy "kyverno-ivp:notary"' "no notation signatures found"
  stop_signet

  # A Kyverno ClusterPolicy rule of type Notary: its certificates are the notation trust store.
  local CPOL=$WORK/e2e-notary-cpol; rm -rf "$CPOL"; mkdir -p "$CPOL"
  cat > "$CPOL/cpol.yaml" <<YAML
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: notary}
spec:
  validationFailureAction: Enforce
  rules:
    - name: notation
      match: {any: [{resources: {kinds: [Pod]}}]}
      verifyImages:
        - type: Notary
          imageReferences: ["$REGISTRY/probe/*"]
          attestors:
            - entries:
                - certificates:
                    cert: |
$(sed 's/^/                      /' "$NOTATION_CONFIG/localkeys/signet-world.crt")
YAML
  up "$CPOL"
  expect_runs "ClusterPolicy type: Notary: the notation-signed image runs" "$N:v1" "hello from notation-signed"
  expect_rejected "ClusterPolicy type: Notary: the unsigned image is rejected" "$IMG_UNSIGNED" \
    'policy "kyverno:notary/notation"' "no notation signatures found"
  stop_signet
}
