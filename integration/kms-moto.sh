#!/usr/bin/env bash
# AWS KMS through signet's own path against a real KMS API: moto's server mode (PyPI
# moto[server] 5.2.5, in a venv under target/) on loopback over https, the way cosign
# reaches it (awskms://127.0.0.1:PORT/KEYID, the certificate trusted by AWS_CA_BUNDLE).
#
#   bash integration/kms-moto.sh        venv, moto, an ECC_NIST_P256 key, cosign, then
#                                       cargo test --test kms_moto against it
#
# Sourced (by integration/e2e/kms.sh), it only defines kms_moto_up / kms_moto_down.
# Needs python3 with venv, openssl, curl; cosign (2.x, /usr/bin/cosign) when present.

KMS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KMS_MOTO_DIR=${KMS_MOTO_DIR:-${CARGO_TARGET_DIR:-$KMS_REPO/target}/kms-moto}
KMS_MOTO_VERSION=5.2.5
KMS_MOTO_PID=

# kms_moto_up: moto serving KMS; exports KMS_URI, KMS_KEY_ID, KMS_ENDPOINT, AWS_CA_BUNDLE
# and test credentials (moto accepts any).
kms_moto_up() {
  mkdir -p "$KMS_MOTO_DIR"
  if ! "$KMS_MOTO_DIR/venv/bin/python" -c "import moto; assert moto.__version__ == '$KMS_MOTO_VERSION'" 2>/dev/null; then
    python3 -m venv "$KMS_MOTO_DIR/venv" || return 1
    "$KMS_MOTO_DIR/venv/bin/pip" install -q "moto[server]==$KMS_MOTO_VERSION" > "$KMS_MOTO_DIR/pip.log" 2>&1 \
      || { tail -5 "$KMS_MOTO_DIR/pip.log" >&2; return 1; }
  fi
  # A CA and a server certificate it issues: rustls (webpki) refuses a self-signed CA
  # certificate presented as the server's own, as it should.
  if [ ! -f "$KMS_MOTO_DIR/ca.pem" ]; then
    local d=$KMS_MOTO_DIR
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/ca.key" -out "$d/ca.pem" \
      -days 3650 -subj "/CN=signet kms test CA" -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign >/dev/null 2>&1 || return 1
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/key.pem" -out "$d/server.csr" \
      -subj /CN=127.0.0.1 >/dev/null 2>&1 || return 1
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$d/server.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
      -extfile "$d/server.ext" -out "$d/cert.pem" >/dev/null 2>&1 || return 1
  fi
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$KMS_MOTO_DIR/venv/bin/moto_server" -H 127.0.0.1 -p "$port" -c "$KMS_MOTO_DIR/cert.pem" -k "$KMS_MOTO_DIR/key.pem" \
    > "$KMS_MOTO_DIR/moto.log" 2>&1 &
  KMS_MOTO_PID=$!
  local i
  for i in $(seq 1 100); do
    curl -s --cacert "$KMS_MOTO_DIR/ca.pem" -o /dev/null "https://127.0.0.1:$port/moto-api/" && break
    kill -0 "$KMS_MOTO_PID" 2>/dev/null || { cat "$KMS_MOTO_DIR/moto.log" >&2; return 1; }
    sleep 0.1
  done
  export AWS_CA_BUNDLE=$KMS_MOTO_DIR/ca.pem AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
  export KMS_ENDPOINT=127.0.0.1:$port
  KMS_KEY_ID=$("$KMS_MOTO_DIR/venv/bin/python" - "$KMS_ENDPOINT" <<'PY'
import sys, boto3
kms = boto3.client("kms", endpoint_url=f"https://{sys.argv[1]}", region_name="us-east-1")
key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Description="signet test signer")
print(key["KeyMetadata"]["KeyId"])
PY
  ) || return 1
  # The key by its ARN (moto's account is 123456789012): policy-controller refuses an
  # endpoint-form awskms:// URI that names the key by bare id.
  export KMS_KEY_ID KMS_URI=awskms://$KMS_ENDPOINT/arn:aws:kms:us-east-1:123456789012:key/$KMS_KEY_ID
}

kms_moto_down() {
  [ -n "$KMS_MOTO_PID" ] || return 0
  kill "$KMS_MOTO_PID" 2>/dev/null
  wait "$KMS_MOTO_PID" 2>/dev/null
  KMS_MOTO_PID=
}

kms_moto_main() {
  set -euo pipefail
  kms_moto_up || { echo "moto did not come up" >&2; exit 1; }
  trap kms_moto_down EXIT
  echo "moto serves $KMS_URI"
  if command -v cosign >/dev/null; then
    local payload=$KMS_MOTO_DIR/payload.json
    # The simple-signing payload tests/kms_moto.rs verifies (its DIGEST).
    printf '%s' '{"critical":{"identity":{"docker-reference":"registry.example.com/app"},"image":{"docker-manifest-digest":"sha256:4a5b1e2c7d3f9a8b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b"},"type":"cosign container image signature"},"optional":null}' > "$payload"
    cosign public-key --key "$KMS_URI" > "$KMS_MOTO_DIR/cosign.pub"
    cosign sign-blob --key "$KMS_URI" --tlog-upload=false --yes "$payload" > "$KMS_MOTO_DIR/payload.sig" 2>"$KMS_MOTO_DIR/cosign.log" \
      || { cat "$KMS_MOTO_DIR/cosign.log" >&2; exit 1; }
    export SIGNET_MOTO_COSIGN_PUBLIC_KEY=$KMS_MOTO_DIR/cosign.pub
    export SIGNET_MOTO_COSIGN_PAYLOAD=$payload SIGNET_MOTO_COSIGN_SIG=$KMS_MOTO_DIR/payload.sig
  else
    echo "cosign not found: only moto's own Sign API is checked"
  fi
  export SIGNET_MOTO_ENDPOINT=$KMS_ENDPOINT SIGNET_MOTO_KEY_ID=$KMS_KEY_ID
  (cd "$KMS_REPO" && cargo test --locked --test kms_moto -- --nocapture)
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then kms_moto_main "$@"; fi
