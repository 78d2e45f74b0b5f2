# Test signing infrastructure for signet's keyless and transparency-log checks, sourced by
# make-vectors.sh and the e2e suite. Everything is made in the current directory:
#
#   pki_ca ISSUER EMAIL URI   root.pem -> inter.pem -> leaf-email.pem / leaf-uri.pem (Fulcio-shaped:
#                             code signing, SAN, OIDC issuer in 1.3.6.1.4.1.57264.1.1 and .1.8) /
#                             leaf-github.pem (leaf-uri.pem's, with Fulcio's GitHub workflow
#                             extensions .1.2 to .1.6 holding $PKI_GH_TRIGGER, _SHA, _NAME, _REPO, _REF) for
#                             cosign's key pair leaf.key/leaf.pub; chain.pem = inter + root;
#                             other-root.pem (unrelated); a test Rekor log rekor.key/rekor.pub;
#                             trusted_root.json naming the CA and the log.
#   pki_sct_leaf ISSUER EMAIL
#                             leaf-sct.pem: like leaf-email.pem, with an SCT from the test CT log
#                             (ctlog.key/ctlog.pub, made by pki_ca) embedded as Fulcio does.
#                             Needs a python with the cryptography package ($PKI_PYTHON, default python3).
#   pki_set SIG SIGNER PAYLOAD OUT [LOGKEY]
#                             the cosign bundle annotation (Rekor SET) for a hashedrekord entry of
#                             signature file SIG by SIGNER (public key or certificate PEM) over PAYLOAD.
#   pki_set_intoto ENVELOPE SIGNER OUT [LOGKEY]
#                             the same for cosign 2's attestation entry (intoto 0.0.2) of a DSSE envelope.
#   pki_bundle_log BUNDLE SIGNER OUT [LOGKEY]
#                             a sigstore bundle with a dsse 0.0.1 entry for its envelope and the SET.
#                             (All three: integrated now, signed by LOGKEY, default rekor.key;
#                             integration/rekor-entry.py makes them.)
#   pki_tsa                   an RFC 3161 timestamp authority: tsa-root.pem -> tsa-inter.pem ->
#                             tsa.pem (critical extended key usage timeStamping, key tsa.key; the
#                             intermediate limited to timeStamping too, which cosign 2.5 requires);
#                             tsa-chain.pem = leaf + inter + root (Kyverno's tsaCertChain);
#                             tsa-noncritical.pem (the same purpose, not critical: openssl will
#                             not sign under it), tsa-rsa.pem (an RSA signer) and tsa.cnf for
#                             `openssl ts -reply` (sections tsa, rsa).
#   pki_timestamp FILE OUT [SECTION]
#                             OUT: the TSA's DER TimeStampResp for FILE's bytes (imprint
#                             $TSA_DIGEST, default sha256; the signer certificate in the token
#                             unless $TSA_NO_CERT), from tsa.cnf's SECTION (default tsa).
#
# There is no Rekor or Fulcio here; these are made with openssl and cosign (COSIGN_PASSWORD set).

PKI_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PKI_GH_TRIGGER=push PKI_GH_SHA=0123456789abcdef0123456789abcdef01234567 PKI_GH_NAME=release
PKI_GH_REPO=example/app PKI_GH_REF=refs/heads/main
pki_hex() { printf %s "$1" | od -v -An -tx1 | tr -d ' \n'; }

pki_ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

pki_ca() {
  local issuer=$1 email=$2 uri=$3 ihex
  ihex=$(pki_hex "$issuer")
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
[github]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
subjectAltName=critical,URI:$uri
authorityKeyIdentifier=keyid
1.3.6.1.4.1.57264.1.1=DER:$ihex
1.3.6.1.4.1.57264.1.2=DER:$(pki_hex "$PKI_GH_TRIGGER")
1.3.6.1.4.1.57264.1.3=DER:$(pki_hex "$PKI_GH_SHA")
1.3.6.1.4.1.57264.1.4=DER:$(pki_hex "$PKI_GH_NAME")
1.3.6.1.4.1.57264.1.5=DER:$(pki_hex "$PKI_GH_REPO")
1.3.6.1.4.1.57264.1.6=DER:$(pki_hex "$PKI_GH_REF")
1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:$issuer
J
  pki_ec root.key; pki_ec inter.key; pki_ec csr.key; pki_ec other-root.key; pki_ec rekor.key; pki_ec ctlog.key
  openssl pkey -in rekor.key -pubout -out rekor.pub
  openssl pkey -in ctlog.key -pubout -out ctlog.pub
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
  for kind in email uri github; do
    openssl x509 -req -in leaf.csr -CA inter.pem -CAkey inter.key -days 36500 -set_serial "1$RANDOM" \
      -force_pubkey leaf.pub -extfile ext.cnf -extensions "$kind" -out "leaf-$kind.pem" 2>/dev/null
  done
  cat inter.pem root.pem > chain.pem
  python3 - <<'PY' > trusted_root.json
import base64, hashlib, json, subprocess
def der(args): return subprocess.run(args, capture_output=True, check=True).stdout
cert = lambda p: {"rawBytes": base64.b64encode(der(["openssl", "x509", "-in", p, "-outform", "DER"])).decode()}
rekor = der(["openssl", "pkey", "-pubin", "-in", "rekor.pub", "-outform", "DER"])
ctlog = der(["openssl", "pkey", "-pubin", "-in", "ctlog.pub", "-outform", "DER"])
log = lambda key, url: {"baseUrl": url, "hashAlgorithm": "SHA2_256",
             "publicKey": {"rawBytes": base64.b64encode(key).decode(), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                           "validFor": {"start": "2020-01-01T00:00:00Z"}},
             "logId": {"keyId": base64.b64encode(hashlib.sha256(key).digest()).decode()}}
print(json.dumps({
  "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
  "tlogs": [log(rekor, "https://rekor.example")],
  "certificateAuthorities": [{"subject": {"organization": "signet-test", "commonName": "test root"},
             "uri": "https://fulcio.example",
             "certChain": {"certificates": [cert("inter.pem"), cert("root.pem")]},
             "validFor": {"start": "2020-01-01T00:00:00Z"}}],
  "ctlogs": [log(ctlog, "https://ctfe.example")], "timestampAuthorities": []}, indent=2))
PY
}

pki_sct_leaf() {
  "${PKI_PYTHON:-python3}" - "$1" "$2" <<'PY'
import datetime, hashlib, struct, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
issuer_url, email = sys.argv[1:3]
load_key = lambda p: serialization.load_pem_private_key(open(p, "rb").read(), None)
inter, inter_key, ct_key = x509.load_pem_x509_certificate(open("inter.pem", "rb").read()), load_key("inter.key"), load_key("ctlog.key")
leaf_pub = serialization.load_pem_public_key(open("leaf.pub", "rb").read())
now = datetime.datetime.now(datetime.timezone.utc)
utf8 = lambda s: b"\x0c" + bytes([len(s)]) + s.encode()
def build(last):
    b = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(inter.subject)
         .public_key(leaf_pub).serial_number(4242).not_valid_before(inter.not_valid_before_utc + datetime.timedelta(seconds=1))
         .not_valid_after(now + datetime.timedelta(days=36500))
         .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
         .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), True)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()), False)
         .add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.57264.1.1"), issuer_url.encode()), False)
         .add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), utf8(issuer_url)), False))
    return b.add_extension(last, False).sign(inter_key, hashes.SHA256())
der_len = lambda n: bytes([n]) if n < 128 else bytes([0x80 | len(n.to_bytes((n.bit_length() + 7) // 8, "big"))]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
sct_ext = lambda lst: x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2"), b"\x04" + der_len(len(lst)) + lst)
# What the log signs is the TBS without the SCT list (the precertificate with its poison
# removed), which does not depend on the list itself.
tbs = build(sct_ext(b"\x00\x00")).tbs_precertificate_bytes
issuer_key_hash = hashlib.sha256(inter.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest()
ts = int(now.timestamp() * 1000)
signed = b"\x00\x00" + struct.pack(">Q", ts) + b"\x00\x01" + issuer_key_hash + struct.pack(">I", len(tbs))[1:] + tbs + b"\x00\x00"
sig = ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
log_id = hashlib.sha256(ct_key.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest()
sct = b"\x00" + log_id + struct.pack(">Q", ts) + b"\x00\x00" + b"\x04\x03" + struct.pack(">H", len(sig)) + sig
lst = struct.pack(">H", len(sct) + 2) + struct.pack(">H", len(sct)) + sct
leaf = build(sct_ext(lst))
assert leaf.tbs_precertificate_bytes == tbs, "precertificate TBS differs from the final certificate's"
open("leaf-sct.pem", "wb").write(leaf.public_bytes(serialization.Encoding.PEM))
PY
}

pki_set() { python3 "$PKI_HERE/rekor-entry.py" hashedrekord "$1" "$2" "$3" "$4" "${5:-rekor.key}"; }
pki_set_intoto() { python3 "$PKI_HERE/rekor-entry.py" intoto "$1" "$2" "$3" "${4:-rekor.key}"; }
pki_bundle_log() { python3 "$PKI_HERE/rekor-entry.py" dsse "$1" "$2" "$3" "${4:-rekor.key}"; }

pki_tsa() {
  cat > tsa-ext.cnf <<'J'
[root]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
[inter]
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
extendedKeyUsage=timeStamping
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
[leaf]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=critical,timeStamping
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
[noncritical]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=timeStamping
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
J
  pki_ec tsa-root.key; pki_ec tsa-inter.key; pki_ec tsa.key
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out tsa-rsa.key 2>/dev/null
  openssl req -new -x509 -key tsa-root.key -subj "/O=signet-test/CN=test TSA root" -days 36500 \
    -extensions root -config <(cat /etc/ssl/openssl.cnf tsa-ext.cnf) -out tsa-root.pem 2>/dev/null
  openssl req -new -key tsa-inter.key -subj "/O=signet-test/CN=test TSA intermediate" -out tsa-inter.csr
  openssl x509 -req -in tsa-inter.csr -CA tsa-root.pem -CAkey tsa-root.key -days 36500 -set_serial 2 \
    -extfile tsa-ext.cnf -extensions inter -out tsa-inter.pem 2>/dev/null
  openssl req -new -key tsa.key -subj "/O=signet-test/CN=test TSA" -out tsa.csr
  openssl x509 -req -in tsa.csr -CA tsa-inter.pem -CAkey tsa-inter.key -days 36500 -set_serial 3 \
    -extfile tsa-ext.cnf -extensions leaf -out tsa.pem 2>/dev/null
  openssl x509 -req -in tsa.csr -CA tsa-inter.pem -CAkey tsa-inter.key -days 36500 -set_serial 4 \
    -extfile tsa-ext.cnf -extensions noncritical -out tsa-noncritical.pem 2>/dev/null
  openssl req -new -key tsa-rsa.key -subj "/O=signet-test/CN=test TSA (RSA)" -out tsa-rsa.csr
  openssl x509 -req -in tsa-rsa.csr -CA tsa-inter.pem -CAkey tsa-inter.key -days 36500 -set_serial 5 \
    -extfile tsa-ext.cnf -extensions leaf -out tsa-rsa.pem 2>/dev/null
  cat tsa.pem tsa-inter.pem tsa-root.pem > tsa-chain.pem
  : > tsa-index.txt
  local section
  for section in tsa rsa; do
    local cert=tsa.pem key=tsa.key
    [ $section = tsa ] || { cert=tsa-rsa.pem; key=tsa-rsa.key; }
    cat >> tsa.cnf <<J
[$section]
dir = .
serial = ./tsa-serial
crypto_device = builtin
signer_cert = ./$cert
certs = ./tsa-inter.pem
signer_key = ./$key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ess_cert_id_alg = sha256
J
  done
  echo 01 > tsa-serial
}

pki_timestamp() {
  openssl ts -query -data "$1" "-${TSA_DIGEST:-sha256}" ${TSA_NO_CERT:+-no_nonce} $([ -n "${TSA_NO_CERT:-}" ] || echo -cert) \
    -out "$2.tsq" 2>/dev/null
  openssl ts -reply -config tsa.cnf -section "${3:-tsa}" -queryfile "$2.tsq" -out "$2" 2>/dev/null
  rm -f "$2.tsq"
}
