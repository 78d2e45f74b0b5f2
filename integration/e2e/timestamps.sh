# Sourced by integration/e2e.sh (sections run with the helpers of e2e/checks.sh).
# RFC 3161 timestamps as real cosign 2 and 3 make them with the world's TSA (integration/tsa.py,
# started by world.sh up), enforced on the node by Kyverno policies naming its chain.

# tsa_kyverno FILE CHAIN: a ClusterPolicy in enforce mode: the cosign key's signatures on the
# probe/ts-* images, timestamped by the TSA whose chain is CHAIN (Kyverno's ctlog.tsaCertChain).
tsa_kyverno() {
  cat > "$1" <<YAML
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: tsa}
spec:
  validationFailureAction: Enforce
  rules:
    - name: timestamped
      match: {any: [{resources: {kinds: [Pod]}}]}
      verifyImages:
        - imageReferences: ["$REGISTRY/probe/ts-*"]
          attestors:
            - entries:
                - keys:
                    publicKeys: |
$(sed 's/^/                      /' "$COSIGN_PUB")
                    rekor: {ignoreTlog: true}
                    ctlog:
                      ignoreSCT: true
                      tsaCertChain: |
$(sed 's/^/                        /' "$2")
YAML
}

# tsa_ivp FILE CHAIN: the same as an ImageValidatingPolicy.
tsa_ivp() {
  cat > "$1" <<YAML
apiVersion: policies.kyverno.io/v1
kind: ImageValidatingPolicy
metadata: {name: tsa}
spec:
  validationActions: [Deny]
  matchImageReferences:
    - glob: "$REGISTRY/probe/ts-*"
  attestors:
    - name: cosign
      cosign:
        ctlog:
          insecureIgnoreTlog: true
          tsaCertChain: |
$(sed 's/^/            /' "$2")
        key:
          data: |
$(sed 's/^/            /' "$COSIGN_PUB")
  validations:
    - expression: >-
        images.containers.map(image, verifyImageSignatures(image, [attestors.cosign])).all(e, e > 0)
      message: not signed with a trusted timestamp
YAML
}

# tsa_tamper REPO DIGEST: shift the time inside the TSA's signed TSTInfo of the .sig layer's
# timestamp annotation and put the manifest back under its tag (the registry is writable, the
# tag mutable): the cosign signature stays good, the timestamp no longer verifies.
tsa_tamper() {
  python3 - "$REGISTRY" "$1" "$2" <<'PY'
import base64, json, sys, urllib.request
reg, repo, digest = sys.argv[1:]
MT = "application/vnd.oci.image.manifest.v1+json"
url = f"http://{reg}/v2/{repo}/manifests/sha256-{digest.split(':')[1]}.sig"
m = json.loads(urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": MT})).read())
ann = m["layers"][0]["annotations"]
inner = json.loads(ann["dev.sigstore.cosign/rfc3161timestamp"])
der = bytearray(base64.b64decode(inner["SignedRFC3161Timestamp"]))
at = next(i for i in range(len(der) - 16) if der[i] == 0x18 and der[i + 1] == 15 and der[i + 16] == ord("Z"))
der[at + 15] = ord("1") if der[at + 15] == ord("0") else ord("0")
inner["SignedRFC3161Timestamp"] = base64.b64encode(bytes(der)).decode()
ann["dev.sigstore.cosign/rfc3161timestamp"] = json.dumps(inner)
urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(m).encode(), method="PUT", headers={"Content-Type": MT}))
PY
}

sec_timestamps() {
  local log=$WORK/cosign.log
  c2() { cosign "$@" "${COSIGN_REG_FLAGS[@]}" --tlog-upload=false -y >> "$log" 2>&1; }
  c3() { HOME=$WORK "$COSIGN3" "$@" "${COSIGN_REG_FLAGS[@]}" -y >> "$log" 2>&1; }
  # Another timestamp authority: a chain of its own, on a port of this section's.
  local OTHER=$WORK/other-tsa OTHER_URL=http://127.0.0.1:5318/api/v1/timestamp
  mkdir -p "$OTHER"; (cd "$OTHER" && . "$REPO/integration/testpki.sh" && pki_tsa)
  python3 "$REPO/integration/tsa.py" "$OTHER" --port 5318 > "$WORK/other-tsa.log" 2>&1 &
  OTHER_TSA_PID=$!
  wait_for 10 curl -fsS "http://127.0.0.1:5318/" || { bad "the other timestamp authority starts" "$(cat "$WORK/other-tsa.log")"; return; }
  HOME=$WORK "$COSIGN3" signing-config create --no-default-fulcio --no-default-oidc --no-default-rekor --no-default-tsa \
    --tsa-config=EXACT:1 --tsa="url=$OTHER_URL,api-version=1,start-time=2024-01-01T00:00:00Z,operator=other" \
    --out "$WORK/other-signing-config.json" >> "$log" 2>&1

  local C2 C2O C2T C3 C3O D_C2 D_C2O D_C2T D_C3 D_C3O
  C2=$REGISTRY/probe/ts-c2; D_C2=$(new_image ts-c2 "$RUN_ID")
  C2O=$REGISTRY/probe/ts-c2-other; D_C2O=$(new_image ts-c2-other "$RUN_ID")
  C2T=$REGISTRY/probe/ts-c2-tampered; D_C2T=$(new_image ts-c2-tampered "$RUN_ID")
  C3=$REGISTRY/probe/ts-c3; D_C3=$(new_image ts-c3 "$RUN_ID")
  C3O=$REGISTRY/probe/ts-c3-other; D_C3O=$(new_image ts-c3-other "$RUN_ID")
  if c2 sign --key "$COSIGN_KEY" --timestamp-server-url "$TSA_URL" "$C2@$D_C2" \
     && c2 sign --key "$COSIGN_KEY" --timestamp-server-url "$OTHER_URL" "$C2O@$D_C2O" \
     && c2 sign --key "$COSIGN_KEY" --timestamp-server-url "$TSA_URL" "$C2T@$D_C2T" \
     && c3 sign --key "$COSIGN_KEY" --signing-config "$COSIGN3_TSA_SIGNING_CONFIG" "$C3@$D_C3" \
     && c3 sign --key "$COSIGN_KEY" --signing-config "$WORK/other-signing-config.json" "$C3O@$D_C3O"; then
    ok "cosign 2 (--timestamp-server-url) and cosign 3 (signing config) signed with the world's TSA and another"
  else
    bad "cosign 2 and cosign 3 signed with the world's TSA and another" "$(tail -20 "$log")"
  fi
  tsa_tamper probe/ts-c2-tampered "$D_C2T" || bad "the timestamp annotation was rewritten in the registry"

  # cosign's own verify agrees on each, before the node is asked.
  local verdicts="" want="c2 ok c2-other refused c2-tampered refused c3 ok c3-other refused"
  HOME=$WORK "$COSIGN3" trusted-root create --no-default-ctfe --no-default-fulcio --no-default-rekor --no-default-tsa \
    --tsa="url=$TSA_URL,certificate-chain=$TSA_CHAIN" --out "$WORK/trusted_root.json" >> "$log" 2>&1
  v2() { cosign verify --key "$COSIGN_PUB" "${COSIGN_REG_FLAGS[@]}" --insecure-ignore-tlog \
    --timestamp-certificate-chain "$TSA_CHAIN" "$1" >> "$log" 2>&1 && echo ok || echo refused; }
  v3() { HOME=$WORK "$COSIGN3" verify --key "$COSIGN_PUB" "${COSIGN_REG_FLAGS[@]}" --insecure-ignore-tlog \
    --use-signed-timestamps --trusted-root "$WORK/trusted_root.json" "$1" >> "$log" 2>&1 && echo ok || echo refused; }
  verdicts="c2 $(v2 "$C2@$D_C2") c2-other $(v2 "$C2O@$D_C2O") c2-tampered $(v2 "$C2T@$D_C2T")"
  verdicts="$verdicts c3 $(v3 "$C3@$D_C3") c3-other $(v3 "$C3O@$D_C3O")"
  if [ "$verdicts" = "$want" ]; then ok "cosign's own verify accepts the TSA's timestamps and refuses the other TSA's and the tampered one"
  else bad "cosign's own verify accepts the TSA's timestamps and refuses the other TSA's and the tampered one" "got: $verdicts"; fi

  local POL=$WORK/e2e-tsa; rm -rf "$POL"; mkdir -p "$POL"
  tsa_kyverno "$POL/cpol.yaml" "$TSA_CHAIN"
  up "$POL"
  expect_runs "timestamps: a cosign 2 signature timestamped by the policy's TSA runs" "$C2:v1" "hello from ts-c2"
  expect_runs "timestamps: a cosign 3 bundle timestamped by the policy's TSA runs" "$C3:v1" "hello from ts-c3"
  expect_rejected "timestamps: a cosign 2 signature timestamped by another TSA is rejected" "$C2O:v1" \
    'policy "kyverno:tsa/timestamped"' "timestamp is signed by another certificate than the TSA certificate"
  expect_rejected "timestamps: a cosign 3 bundle timestamped by another TSA is rejected" "$C3O:v1" \
    'policy "kyverno:tsa/timestamped"' "timestamp's signing-certificate attribute"
  expect_rejected "timestamps: a cosign 2 signature whose timestamp was tampered with is rejected" "$C2T:v1" \
    'policy "kyverno:tsa/timestamped"' "timestamp's signed attributes"
  stop_signet

  # The other TSA's chain in the policy: what passed is refused, and the other's passes.
  tsa_kyverno "$POL/cpol.yaml" "$OTHER/tsa-chain.pem"
  up "$POL"
  expect_rejected "timestamps: under another TSA's chain, the world TSA's cosign 3 timestamp is rejected" "$C3:v1" \
    'policy "kyverno:tsa/timestamped"' "timestamp"
  expect_runs "timestamps: under the other TSA's chain, its cosign 2 timestamp runs" "$C2O:v1" "hello from ts-c2-other"
  stop_signet

  rm -f "$POL/cpol.yaml"; tsa_ivp "$POL/ivp.yaml" "$TSA_CHAIN"
  up "$POL"
  expect_runs "timestamps (IVP): a cosign 3 bundle timestamped by the policy's TSA runs" "$C3:v1" "hello from ts-c3"
  expect_rejected "timestamps (IVP): a cosign 3 bundle timestamped by another TSA is rejected" "$C3O:v1" \
    'policy "kyverno-ivp:tsa"' "not signed with a trusted timestamp" "timestamp's signing-certificate attribute"
  stop_signet
}
