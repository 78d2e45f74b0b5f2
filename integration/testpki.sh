# Test signing infrastructure for signet's keyless and transparency-log checks, sourced by
# make-vectors.sh and the e2e suite. Everything is made in the current directory:
#
#   pki_ca ISSUER EMAIL URI   root.pem -> inter.pem -> leaf-email.pem / leaf-uri.pem (Fulcio-shaped:
#                             code signing, SAN, OIDC issuer in 1.3.6.1.4.1.57264.1.1 and .1.8) for
#                             cosign's key pair leaf.key/leaf.pub; chain.pem = inter + root;
#                             other-root.pem (unrelated); a test Rekor log rekor.key/rekor.pub;
#                             trusted_root.json naming the CA and the log.
#   pki_set SIG SIGNER PAYLOAD OUT [LOGKEY]
#                             the cosign bundle annotation (Rekor SET) for a hashedrekord entry of
#                             signature file SIG by SIGNER (public key or certificate PEM) over PAYLOAD.
#
# There is no Rekor or Fulcio here; these are made with openssl and cosign (COSIGN_PASSWORD set).

pki_ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

pki_ca() {
  local issuer=$1 email=$2 uri=$3 ihex
  ihex=$(printf %s "$issuer" | od -An -tx1 | tr -d ' \n')
  cat > ext.cnf <<J
[root]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
[inter]
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
extendedKeyUsage=codeSigning
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
[email]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
subjectAltName=critical,email:$email
authorityKeyIdentifier=keyid
1.3.6.1.4.1.57264.1.1=DER:$ihex
1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:$issuer
[uri]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
subjectAltName=critical,URI:$uri
authorityKeyIdentifier=keyid
1.3.6.1.4.1.57264.1.1=DER:$ihex
1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:$issuer
J
  pki_ec root.key; pki_ec inter.key; pki_ec csr.key; pki_ec other-root.key; pki_ec rekor.key
  openssl pkey -in rekor.key -pubout -out rekor.pub
  # The leaf key is cosign's own (its import-key-pair rejects openssl EC keys); the
  # certificates are issued for its public key.
  rm -f leaf.key leaf.pub
  cosign generate-key-pair --output-key-prefix leaf >/dev/null 2>&1
  openssl req -new -x509 -key root.key -subj "/O=signet-test/CN=test root" -days 36500 \
    -extensions root -config <(cat /etc/ssl/openssl.cnf ext.cnf) -out root.pem 2>/dev/null
  openssl req -new -x509 -key other-root.key -subj "/O=signet-test/CN=unrelated root" -days 36500 \
    -extensions root -config <(cat /etc/ssl/openssl.cnf ext.cnf) -out other-root.pem 2>/dev/null
  openssl req -new -key inter.key -subj "/O=signet-test/CN=test intermediate" -out inter.csr
  openssl x509 -req -in inter.csr -CA root.pem -CAkey root.key -days 36500 -set_serial 2 \
    -extfile ext.cnf -extensions inter -out inter.pem 2>/dev/null
  openssl req -new -key csr.key -subj "/" -out leaf.csr 2>/dev/null
  local kind
  for kind in email uri; do
    openssl x509 -req -in leaf.csr -CA inter.pem -CAkey inter.key -days 36500 -set_serial "1$RANDOM" \
      -force_pubkey leaf.pub -extfile ext.cnf -extensions "$kind" -out "leaf-$kind.pem" 2>/dev/null
  done
  cat inter.pem root.pem > chain.pem
  python3 - <<'PY' > trusted_root.json
import base64, hashlib, json, subprocess
def der(args): return subprocess.run(args, capture_output=True, check=True).stdout
cert = lambda p: {"rawBytes": base64.b64encode(der(["openssl", "x509", "-in", p, "-outform", "DER"])).decode()}
rekor = der(["openssl", "pkey", "-pubin", "-in", "rekor.pub", "-outform", "DER"])
print(json.dumps({
  "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
  "tlogs": [{"baseUrl": "https://rekor.example", "hashAlgorithm": "SHA2_256",
             "publicKey": {"rawBytes": base64.b64encode(rekor).decode(), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                           "validFor": {"start": "2020-01-01T00:00:00Z"}},
             "logId": {"keyId": base64.b64encode(hashlib.sha256(rekor).digest()).decode()}}],
  "certificateAuthorities": [{"subject": {"organization": "signet-test", "commonName": "test root"},
             "uri": "https://fulcio.example",
             "certChain": {"certificates": [cert("inter.pem"), cert("root.pem")]},
             "validFor": {"start": "2020-01-01T00:00:00Z"}}],
  "ctlogs": [], "timestampAuthorities": []}, indent=2))
PY
}

pki_set() {
  python3 - "$1" "$2" "$3" "$4" "${5:-rekor.key}" <<'PY'
import base64, hashlib, json, subprocess, sys, time
sig, signer, payload, out, logkey = sys.argv[1:6]
sig = open(sig).read().strip()
signer = open(signer, "rb").read()
payload = open(payload, "rb").read()
body = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
    "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
    "signature": {"content": sig, "publicKey": {"content": base64.b64encode(signer).decode()}}}}
der = subprocess.run(["openssl", "pkey", "-in", logkey, "-pubout", "-outform", "DER"],
                     capture_output=True, check=True).stdout
entry = {"body": base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode(),
         "integratedTime": int(time.time()), "logID": hashlib.sha256(der).hexdigest(), "logIndex": 42}
canonical = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
set_ = subprocess.run(["openssl", "dgst", "-sha256", "-sign", logkey], input=canonical,
                      capture_output=True, check=True).stdout
json.dump({"SignedEntryTimestamp": base64.b64encode(set_).decode(), "Payload": entry},
          open(out, "w"), separators=(",", ":"))
PY
}
