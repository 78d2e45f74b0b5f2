#!/usr/bin/env bash
# Regenerate testdata/cosign-tsa/: what real cosign 2 and cosign 3 write into a registry when
# they sign with an RFC 3161 timestamp authority, for tests/timestamp_vectors.rs.
#
# Two test TSAs (integration/testpki.sh pki_tsa, each served by integration/tsa.py on loopback)
# and a throwaway distribution registry. cosign 3 signs with a signing config naming only the
# TSA (a sigstore bundle under the sha256-<hex> referrers tag); cosign 2 with
# --timestamp-server-url (a .sig layer with the dev.sigstore.cosign/rfc3161timestamp annotation,
# and an .att layer for an attestation). Keyless signatures use a certificate from the test CA
# that is valid for CERT_SECONDS only: the script waits until it has expired, so that only the
# timestamp shows it was valid when it signed. cosign's own verify must then accept every
# vector under the TSA and refuse the other TSA's; what it does with a missing or unchecked
# timestamp is recorded in the README. Private keys are not kept.
#
#   bash integration/make-tsa-cosign-vectors.sh     then commit testdata/cosign-tsa
#   (COSIGN3=/path/to/cosign-3; default the world's, from bash integration/world.sh up)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
. "$HERE/testpki.sh"
COSIGN3=${COSIGN3:-$REPO/target/e2e-state/prefix/cosign-3/usr/bin/cosign}
[ -x "$COSIGN3" ] || { echo "no cosign 3 at $COSIGN3 (bash integration/world.sh up, or set COSIGN3)" >&2; exit 1; }
command -v cosign >/dev/null || { echo "no cosign 2 on PATH (bash integration/world.sh up)" >&2; exit 1; }
out=$REPO/testdata/cosign-tsa
work=$(mktemp -d)
REG=127.0.0.1:${PORT:-5094}
TSA_URL=http://127.0.0.1:${TSA_PORT:-5095}/api/v1/timestamp
OTHER_URL=http://127.0.0.1:${OTHER_TSA_PORT:-5096}/api/v1/timestamp
CERT_SECONDS=${CERT_SECONDS:-40}
cleanup() {
  local p
  for p in registry tsa other-tsa; do [ -f "$work/$p.pid" ] && kill "$(cat "$work/$p.pid")" 2>/dev/null; done
  rm -rf "$work"
}
[ -n "${KEEP:-}" ] && echo "work dir: $work" || trap cleanup EXIT
cd "$work"
# Everything cosign keeps stays in the work dir.
export HOME=$work/home TUF_ROOT=$work/tuf COSIGN_PASSWORD=signet-test
mkdir -p "$HOME"

mkdir tsa other
(cd tsa && pki_tsa) && (cd other && pki_tsa)
python3 "$HERE/tsa.py" tsa --port "${TSA_PORT:-5095}" 2> tsa.log & echo $! > tsa.pid
python3 "$HERE/tsa.py" other --port "${OTHER_TSA_PORT:-5096}" 2> other-tsa.log & echo $! > other-tsa.pid
printf 'version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: "%s"}\n' \
  "$work/data" "$REG" > registry.yml
docker-registry serve registry.yml > registry.log 2>&1 & echo $! > registry.pid
for u in "http://$REG/v2/" "${TSA_URL%/api*}/" "${OTHER_URL%/api*}/"; do
  for _ in $(seq 100); do curl -fsS "$u" >/dev/null 2>&1 && break; sleep 0.05; done
  curl -fsS "$u" >/dev/null || { echo "$u did not come up" >&2; exit 1; }
done

# push NAME TEXT: a minimal OCI image (an empty config and one layer holding TEXT); prints its digest.
push() {
  python3 - "$REG" "$1" "$2" <<'PY'
import hashlib, json, sys, urllib.request
reg, name, text = sys.argv[1:]
def put_blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    r = urllib.request.urlopen(urllib.request.Request(f"http://{reg}/v2/{name}/blobs/uploads/", method="POST"))
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else f"http://{reg}{loc}"
    sep = "&" if "?" in loc else "?"
    urllib.request.urlopen(urllib.request.Request(f"{loc}{sep}digest={d}", data=data, method="PUT",
                                                  headers={"Content-Type": "application/octet-stream"}))
    return d, len(data)
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
cd, cs = put_blob(cfg)
ld, ls = put_blob(text.encode())
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}]},
               separators=(",", ":"), sort_keys=True).encode()
urllib.request.urlopen(urllib.request.Request(f"http://{reg}/v2/{name}/manifests/v1", data=m, method="PUT",
                                              headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}))
print("sha256:" + hashlib.sha256(m).hexdigest())
PY
}

issuer=https://issuer.example
subject=https://github.com/example/app/.github/workflows/release.yml@refs/heads/main
pki_ca "$issuer" builder@example.com "$subject" >/dev/null
# The short-lived leaf: Fulcio-shaped (URI SAN, OIDC issuer extensions) for cosign's leaf key.
python3 - "$issuer" "$subject" "$CERT_SECONDS" <<'PY'
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
issuer, subject, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
inter = x509.load_pem_x509_certificate(open("inter.pem", "rb").read())
inter_key = serialization.load_pem_private_key(open("inter.key", "rb").read(), None)
pub = serialization.load_pem_public_key(open("leaf.pub", "rb").read())
now = datetime.datetime.now(datetime.timezone.utc)
utf8 = lambda s: b"\x0c" + bytes([len(s)]) + s.encode()
leaf = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(inter.subject).public_key(pub)
        .serial_number(x509.random_serial_number())
        # (cosign checks the chain at the leaf's notBefore: not before the intermediate's)
        .not_valid_before(inter.not_valid_before_utc + datetime.timedelta(seconds=1))
        .not_valid_after(now + datetime.timedelta(seconds=seconds))
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(subject)]), True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()), False)
        .add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.57264.1.1"), issuer.encode()), False)
        .add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), utf8(issuer)), False)
        .sign(inter_key, hashes.SHA256()))
open("leaf-short.pem", "wb").write(leaf.public_bytes(serialization.Encoding.PEM))
PY
expires=$(( $(date +%s) + CERT_SECONDS ))
sleep 2   # (its notBefore is a second after the intermediate's, which openssl made just now)
cosign generate-key-pair >/dev/null 2>&1

# cosign 3: a signing config naming only the TSA (and one naming only the other TSA), and
# trusted roots naming the test CA with either TSA, or with none, for its own verify.
sc() { "$COSIGN3" signing-config create --no-default-fulcio --no-default-oidc --no-default-rekor --no-default-tsa \
  --tsa="url=$1,api-version=1,start-time=2024-01-01T00:00:00Z,operator=signet-test" --tsa-config=EXACT:1 --out "$2" >/dev/null 2>&1; }
sc "$TSA_URL" signing-config.json
sc "$OTHER_URL" other-signing-config.json
troot() { "$COSIGN3" trusted-root create --no-default-ctfe --no-default-fulcio --no-default-rekor --no-default-tsa \
  --fulcio="url=https://fulcio.example,certificate-chain=chain.pem" "$@" >/dev/null 2>&1; }
troot --tsa="url=$TSA_URL,certificate-chain=tsa/tsa-chain.pem" --out trusted_root.json
troot --tsa="url=$OTHER_URL,certificate-chain=other/tsa-chain.pem" --out other-trusted_root.json
troot --out no-tsa-trusted_root.json

R=(--allow-insecure-registry --allow-http-registry)
failed() { echo "cosign could not sign: $*" >&2; tail -5 cosign.log >&2; return 1; }
c3() { "$COSIGN3" "$@" "${R[@]}" -y >/dev/null 2>>cosign.log || failed "$@"; }
c2() { cosign "$@" "${R[@]}" --tlog-upload=false -y >/dev/null 2>>cosign.log || failed "$@"; }
echo '{"buildType":"https://example.com/build/v1","builder":{"id":"https://example.com/builder"}}' > predicate.json
# Keyless first, while the certificate is valid.
d_c3_keyless=$(push vectors/c3-keyless "cosign 3 keyless, timestamped")
d_c2_keyless=$(push vectors/c2-keyless "cosign 2 keyless, timestamped")
c3 sign --signing-config signing-config.json --key leaf.key --certificate leaf-short.pem --certificate-chain chain.pem \
  "$REG/vectors/c3-keyless@$d_c3_keyless"
c2 sign --timestamp-server-url "$TSA_URL" --key leaf.key --certificate leaf-short.pem --certificate-chain chain.pem \
  "$REG/vectors/c2-keyless@$d_c2_keyless"
[ "$(date +%s)" -lt "$expires" ] || { echo "signing took longer than the certificate lives (CERT_SECONDS=$CERT_SECONDS)" >&2; exit 1; }
d_c3_key=$(push vectors/c3-key "cosign 3 key, timestamped")
d_c3_key_other=$(push vectors/c3-key-other "cosign 3 key, timestamped by another TSA")
d_c2_key=$(push vectors/c2-key "cosign 2 key, timestamped")
d_c2_key_other=$(push vectors/c2-key-other "cosign 2 key, timestamped by another TSA")
d_c2_att=$(push vectors/c2-att "cosign 2 attestation, timestamped")
c3 sign --signing-config signing-config.json --key cosign.key "$REG/vectors/c3-key@$d_c3_key"
c3 sign --signing-config other-signing-config.json --key cosign.key "$REG/vectors/c3-key-other@$d_c3_key_other"
c2 sign --timestamp-server-url "$TSA_URL" --key cosign.key "$REG/vectors/c2-key@$d_c2_key"
c2 sign --timestamp-server-url "$OTHER_URL" --key cosign.key "$REG/vectors/c2-key-other@$d_c2_key_other"
c2 attest --timestamp-server-url "$TSA_URL" --key cosign.key --type slsaprovenance --predicate predicate.json \
  "$REG/vectors/c2-att@$d_c2_att"

now=$(date +%s)
[ "$now" -gt "$expires" ] || { echo "waiting $((expires - now + 2)) s for the short-lived certificate to expire"; sleep $((expires - now + 2)); }

check() { if ! "$@" "${R[@]}" >/dev/null 2>>cosign.log; then echo "cosign rejected a vector: $*" >&2; tail -5 cosign.log >&2; exit 1; fi; }
refuse() { if "$@" "${R[@]}" >/dev/null 2>&1; then echo "cosign accepted what it must not: $*" >&2; exit 1; fi; }
at() { echo "$REG/vectors/$1@$2"; }
# cosign 3: bundles verified against the trusted root's TSA (--use-signed-timestamps).
v3=("$COSIGN3" verify --insecure-ignore-tlog --use-signed-timestamps)
check "${v3[@]}" --key cosign.pub --trusted-root trusted_root.json "$(at c3-key "$d_c3_key")"
refuse "${v3[@]}" --key cosign.pub --trusted-root trusted_root.json "$(at c3-key-other "$d_c3_key_other")"
refuse "${v3[@]}" --key cosign.pub --trusted-root other-trusted_root.json "$(at c3-key "$d_c3_key")"
id3=(--certificate-identity "$subject" --certificate-oidc-issuer "$issuer" --insecure-ignore-sct)
check "${v3[@]}" "${id3[@]}" --trusted-root trusted_root.json "$(at c3-keyless "$d_c3_keyless")"
# The certificate has expired: without a TSA to trust, nothing shows when it signed.
refuse "$COSIGN3" verify --insecure-ignore-tlog "${id3[@]}" --trusted-root no-tsa-trusted_root.json \
  "$(at c3-keyless "$d_c3_keyless")"
refuse "${v3[@]}" "${id3[@]}" --trusted-root other-trusted_root.json "$(at c3-keyless "$d_c3_keyless")"
# What cosign 3 does with a key signature whose timestamp it is not asked to check.
c3_unchecked=refused
"$COSIGN3" verify --insecure-ignore-tlog --key cosign.pub --trusted-root trusted_root.json "${R[@]}" \
  "$(at c3-key-other "$d_c3_key_other")" >/dev/null 2>&1 && c3_unchecked=accepted

# cosign 2: the .sig and .att annotations, verified against the TSA chain.
v2=(cosign verify --insecure-ignore-tlog --timestamp-certificate-chain)
check "${v2[@]}" tsa/tsa-chain.pem --key cosign.pub "$(at c2-key "$d_c2_key")"
refuse "${v2[@]}" tsa/tsa-chain.pem --key cosign.pub "$(at c2-key-other "$d_c2_key_other")"
refuse "${v2[@]}" other/tsa-chain.pem --key cosign.pub "$(at c2-key "$d_c2_key")"
id2=(--certificate-chain chain.pem --certificate-identity "$subject" --certificate-oidc-issuer "$issuer" --insecure-ignore-sct)
check "${v2[@]}" tsa/tsa-chain.pem "${id2[@]}" "$(at c2-keyless "$d_c2_keyless")"
refuse cosign verify --insecure-ignore-tlog "${id2[@]}" "$(at c2-keyless "$d_c2_keyless")"
refuse "${v2[@]}" other/tsa-chain.pem "${id2[@]}" "$(at c2-keyless "$d_c2_keyless")"
check cosign verify-attestation --type slsaprovenance --insecure-ignore-tlog --timestamp-certificate-chain tsa/tsa-chain.pem \
  --key cosign.pub "$(at c2-att "$d_c2_att")"
refuse cosign verify-attestation --type slsaprovenance --insecure-ignore-tlog --timestamp-certificate-chain other/tsa-chain.pem \
  --key cosign.pub "$(at c2-att "$d_c2_att")"
# What cosign 2 does with a .sig that carries no timestamp under a TSA chain (the keyless
# image's signature is on another digest; the key image's .sig stripped of its annotation is
# what the tests serve, so check a signature made without a TSA).
d_c2_plain=$(push vectors/c2-plain "cosign 2 key, no timestamp")
c2 sign --key cosign.key "$REG/vectors/c2-plain@$d_c2_plain"
c2_untimestamped=refused
"${v2[@]}" tsa/tsa-chain.pem --key cosign.pub "${R[@]}" "$(at c2-plain "$d_c2_plain")" >/dev/null 2>&1 \
  && c2_untimestamped=accepted

# Keep what the registry holds for each image, as a client reads it.
rm -rf "$out"; mkdir -p "$out"
python3 - "$REG" "$out" \
  c3-key "$d_c3_key" c3-key-other "$d_c3_key_other" c3-keyless "$d_c3_keyless" \
  c2-key "$d_c2_key" c2-key-other "$d_c2_key_other" c2-keyless "$d_c2_keyless" c2-att "$d_c2_att" <<'PY'
import json, sys, urllib.request
reg, out, *rest = sys.argv[1:]
pairs = list(zip(rest[::2], rest[1::2]))
INDEX, MANIFEST = "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json"
def get(path, accept=None):
    req = urllib.request.Request(f"http://{reg}{path}", headers={"Accept": accept} if accept else {})
    return urllib.request.urlopen(req).read()
images = {}
for name, digest in pairs:
    repo, tag = f"vectors/{name}", "sha256-" + digest.split(":")[1]
    if name.startswith("c3-"):
        # A sigstore bundle: the fallback-tag index, each referrer manifest and its bundle.
        index = get(f"/v2/{repo}/manifests/{tag}", INDEX)
        open(f"{out}/{name}.index.json", "wb").write(index)
        for i, m in enumerate(json.loads(index)["manifests"]):
            manifest = get(f"/v2/{repo}/manifests/{m['digest']}", m["mediaType"])
            open(f"{out}/{name}.{i}.manifest.json", "wb").write(manifest)
            layer = json.loads(manifest)["layers"][0]
            open(f"{out}/{name}.{i}.bundle.json", "wb").write(get(f"/v2/{repo}/blobs/{layer['digest']}"))
        images[name] = {"digest": digest, "form": "bundle"}
    else:
        # cosign 2's tag: .sig for a signature, .att for an attestation; its manifest (the
        # timestamp is one of its layer's annotations) and the layer (payload or envelope).
        suffix = "att" if name.endswith("-att") else "sig"
        manifest = get(f"/v2/{repo}/manifests/{tag}.{suffix}", MANIFEST)
        open(f"{out}/{name}.{suffix}.manifest.json", "wb").write(manifest)
        layer = json.loads(manifest)["layers"][0]
        open(f"{out}/{name}.{suffix}.layer", "wb").write(get(f"/v2/{repo}/blobs/{layer['digest']}"))
        images[name] = {"digest": digest, "form": suffix}
json.dump(images, open(f"{out}/images.json", "w"), indent=2, sort_keys=True)
PY
cp cosign.pub chain.pem trusted_root.json "$out/"
cp tsa/tsa-chain.pem "$out/tsa-chain.pem"
cp other/tsa-chain.pem "$out/other-chain.pem"
version3=$("$COSIGN3" version 2>&1 | awk '/GitVersion/ {print $2}')
deb=$(ls "$(dirname "$COSIGN3")"/../../../../debs/cosign_3*.deb 2>/dev/null | head -1 || true)
[ "$version3" != devel ] || [ -z "$deb" ] || version3=$(basename "$deb" | cut -d_ -f2)
version2=$(dpkg-query -W -f='${Version}' cosign 2>/dev/null || cosign version 2>&1 | awk '/GitVersion/ {print $2}')
cat > "$out/README.md" <<EOF
What real cosign wrote into a distribution registry when it signed with an RFC 3161 timestamp
authority, made by \`integration/make-tsa-cosign-vectors.sh\` (do not edit by hand): cosign
$version3 (\`c3-*\`, with a signing config naming only the TSA) and cosign $version2 (\`c2-*\`,
\`--timestamp-server-url\`, \`--tlog-upload=false\`).

- \`tsa-chain.pem\`: the TSA's chain (leaf, intermediate, root; openssl's TSA behind
  \`integration/tsa.py\`), as Kyverno's \`ctlog.tsaCertChain\` holds it. \`other-chain.pem\`: an
  unrelated TSA's, with the same names and serials. \`trusted_root.json\`: the test CA and the
  TSA, as cosign 3's \`trusted-root create\` wrote it.
- \`images.json\`: each image's digest and form. \`bundle\`: \`NAME.index.json\` (the
  \`sha256-<hex>\` fallback tag), \`NAME.0.manifest.json\`, \`NAME.0.bundle.json\`. \`sig\`/\`att\`:
  \`NAME.sig.manifest.json\` (or \`.att\`; the timestamp is the layer annotation
  \`dev.sigstore.cosign/rfc3161timestamp\`) and \`NAME.sig.layer\` (the payload or envelope).
- \`c3-key\`, \`c2-key\`: signed by \`cosign.pub\`'s key, timestamped by the TSA; \`c3-key-other\`,
  \`c2-key-other\`: the same by the other TSA. \`c2-att\`: an SLSA attestation by the key,
  timestamped by the TSA. \`c3-keyless\`, \`c2-keyless\`: signed under a certificate from the
  test CA (\`chain.pem\`; issuer \`$issuer\`, URI SAN \`$subject\`) that was valid for
  $CERT_SECONDS seconds, timestamped by the TSA within them.

When made, after the certificate had expired, cosign's own verify (offline,
\`--insecure-ignore-tlog\`) accepted \`c3-key\` and \`c3-keyless\` under \`trusted_root.json\` with
\`--use-signed-timestamps\`, and \`c2-key\`, \`c2-keyless\` and (\`verify-attestation\`) \`c2-att\`
under \`--timestamp-certificate-chain tsa-chain.pem\`; it refused each under the other TSA, the
\`-other\` images under the TSA, and both keyless images without a TSA (expired certificate).
cosign 3's \`verify --key\` without \`--use-signed-timestamps\` $c3_unchecked \`c3-key-other\`
(a timestamp it is not asked to check); cosign 2 $c2_untimestamped a key-signed \`.sig\` without a
timestamp under \`--timestamp-certificate-chain\`. Private keys are not kept.
EOF
echo "wrote $out ($(ls "$out" | wc -l) files)"
