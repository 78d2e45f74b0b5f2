#!/usr/bin/env bash
# Regenerate testdata/cosign3/: what real cosign 3 writes into a registry when it signs and
# attests an image offline, as signet reads it back.
#
# cosign 3 (sid; bash integration/world.sh up extracts it) signs with a signing config naming no
# Fulcio, OIDC, Rekor or TSA, into a throwaway distribution registry on loopback (no referrers
# API, so it stores the sigstore bundles in an index under the sha256-<hex> tag). The script
# then has cosign 3's own `verify` and `verify-attestation` accept every image, and keeps the
# registry's objects (the fallback-tag index, each referrer manifest and each bundle) with the
# public keys and the test CA. Private keys are not kept.
#
#   COSIGN3=/path/to/cosign-3 bash integration/make-cosign3-vectors.sh     then commit testdata/cosign3
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
. "$HERE/testpki.sh"
COSIGN3=${COSIGN3:-$REPO/target/e2e-state/prefix/cosign-3/usr/bin/cosign}
[ -x "$COSIGN3" ] || { echo "no cosign 3 at $COSIGN3 (bash integration/world.sh up, or set COSIGN3)" >&2; exit 1; }
out=$REPO/testdata/cosign3
work=$(mktemp -d)
PORT=${PORT:-5093}
REG=127.0.0.1:$PORT
cleanup() { [ -f "$work/registry.pid" ] && kill "$(cat "$work/registry.pid")" 2>/dev/null; rm -rf "$work"; }
[ -n "${KEEP:-}" ] && echo "work dir: $work" || trap cleanup EXIT
cd "$work"
# Everything cosign keeps stays in the work dir.
export HOME=$work/home TUF_ROOT=$work/tuf COSIGN_PASSWORD=signet-test
mkdir -p "$HOME"

printf 'version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: "%s"}\n' \
  "$work/data" "$REG" > registry.yml
docker-registry serve registry.yml > registry.log 2>&1 & echo $! > registry.pid
for _ in $(seq 100); do curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && break; sleep 0.05; done

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
layer = text.encode()
cd, cs = put_blob(cfg)
ld, ls = put_blob(layer)
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}]},
               separators=(",", ":"), sort_keys=True).encode()
urllib.request.urlopen(urllib.request.Request(f"http://{reg}/v2/{name}/manifests/v1", data=m, method="PUT",
                                              headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}))
print("sha256:" + hashlib.sha256(m).hexdigest())
PY
}

"$COSIGN3" signing-config create --no-default-fulcio --no-default-oidc --no-default-rekor --no-default-tsa \
  --out signing-config.json >/dev/null 2>&1
c3() { "$COSIGN3" "$@" --allow-insecure-registry --allow-http-registry; }
c3sign() { c3 "$@" --signing-config signing-config.json -y > /dev/null 2>>cosign.log; }
"$COSIGN3" generate-key-pair >/dev/null 2>&1
issuer=https://issuer.example
subject=https://github.com/example/app/.github/workflows/release.yml@refs/heads/main
pki_ca "$issuer" builder@example.com "$subject" >/dev/null
echo '{"buildType":"https://example.com/build/v1","builder":{"id":"https://example.com/builder"}}' > predicate.json

# key: signed by the key. keyless: signed by a leaf of the test CA (the certificate in the
# bundle). attested: signed and SLSA-attested by the key. att-only: only attested.
d_key=$(push vectors/key "cosign 3 key")
d_keyless=$(push vectors/keyless "cosign 3 keyless")
d_attested=$(push vectors/attested "cosign 3 attested")
d_att_only=$(push vectors/att-only "cosign 3 attestation only")
c3sign sign --key cosign.key "$REG/vectors/key@$d_key"
c3sign sign --key leaf.key --certificate leaf-uri.pem --certificate-chain chain.pem "$REG/vectors/keyless@$d_keyless"
c3sign sign --key cosign.key "$REG/vectors/attested@$d_attested"
c3sign attest --key cosign.key --type slsaprovenance --predicate predicate.json "$REG/vectors/attested@$d_attested"
c3sign attest --key cosign.key --type slsaprovenance --predicate predicate.json "$REG/vectors/att-only@$d_att_only"

# cosign 3 itself must accept each, offline.
check() { if ! c3 "$@" >/dev/null 2>>cosign.log; then echo "cosign 3 rejected a vector: $*" >&2; tail -5 cosign.log >&2; exit 1; fi; }
refuse() { if c3 "$@" >/dev/null 2>&1; then echo "cosign 3 accepted what it must not: $*" >&2; exit 1; fi; }
check verify --key cosign.pub --insecure-ignore-tlog "$REG/vectors/key@$d_key"
check verify --key cosign.pub --insecure-ignore-tlog "$REG/vectors/attested@$d_attested"
check verify-attestation --key cosign.pub --type slsaprovenance --insecure-ignore-tlog "$REG/vectors/attested@$d_attested"
check verify-attestation --key cosign.pub --type slsaprovenance --insecure-ignore-tlog "$REG/vectors/att-only@$d_att_only"
check verify --trusted-root trusted_root.json --certificate-identity "$subject" --certificate-oidc-issuer "$issuer" \
  --insecure-ignore-sct --insecure-ignore-tlog "$REG/vectors/keyless@$d_keyless"
# cosign 3.1.1's `verify` takes the SLSA attestation bundle of att-only for a signature (it does
# not compare a new-format bundle's predicate type with sign/v1); signet refuses it. Recorded,
# not required, so a cosign that fixes it still regenerates the vectors.
att_only_as_signed=refused
c3 verify --key cosign.pub --insecure-ignore-tlog "$REG/vectors/att-only@$d_att_only" >/dev/null 2>&1 \
  && att_only_as_signed=accepted
refuse verify --key cosign.pub --insecure-ignore-tlog "$REG/vectors/keyless@$d_keyless"

# Keep what the registry holds for each image, as a client reads it.
rm -rf "$out"; mkdir -p "$out"
python3 - "$REG" "$out" "$d_key" "$d_keyless" "$d_attested" "$d_att_only" <<'PY'
import json, sys, urllib.request
reg, out, *digests = sys.argv[1:]
names = ["key", "keyless", "attested", "att-only"]
index_types = "application/vnd.oci.image.index.v1+json"
def get(path, accept=None):
    req = urllib.request.Request(f"http://{reg}{path}", headers={"Accept": accept} if accept else {})
    return urllib.request.urlopen(req).read()
images = {}
for name, digest in zip(names, digests):
    repo = f"vectors/{name}"
    tag = "sha256-" + digest.split(":")[1]
    index = get(f"/v2/{repo}/manifests/{tag}", index_types)
    open(f"{out}/{name}.index.json", "wb").write(index)
    entries = []
    for i, m in enumerate(json.loads(index)["manifests"]):
        manifest = get(f"/v2/{repo}/manifests/{m['digest']}", m["mediaType"])
        open(f"{out}/{name}.{i}.manifest.json", "wb").write(manifest)
        layer = json.loads(manifest)["layers"][0]
        open(f"{out}/{name}.{i}.bundle.json", "wb").write(get(f"/v2/{repo}/blobs/{layer['digest']}"))
        entries.append({"artifactType": m.get("artifactType"), "manifest": m["digest"], "bundle": layer["digest"]})
    images[name] = {"digest": digest, "referrers": entries}
json.dump(images, open(f"{out}/images.json", "w"), indent=2, sort_keys=True)
PY
cp cosign.pub chain.pem trusted_root.json "$out/"
version=$("$COSIGN3" version 2>&1 | awk '/GitVersion/ {print $2}')
# (Debian's build says "devel": name the package the world extracted it from instead)
if [ "$version" = devel ]; then
  deb=$(ls "$(dirname "$COSIGN3")"/../../../../debs/cosign_3*.deb 2>/dev/null | head -1)
  [ -z "$deb" ] || version=$(basename "$deb" | cut -d_ -f2)
fi
cat > "$out/README.md" <<EOF
What cosign $version wrote into a distribution registry (no referrers API) when it signed and
attested four images offline, made by \`integration/make-cosign3-vectors.sh\` (do not edit by hand).

- \`images.json\`: each image's digest and its referrers (artifact type, manifest, bundle blob).
- \`NAME.index.json\`: the index under the \`sha256-<hex>\` fallback tag; \`NAME.I.manifest.json\`
  and \`NAME.I.bundle.json\`: each referrer's manifest and its sigstore bundle.
- \`key\`: signed by \`cosign.pub\`'s key. \`keyless\`: signed by a leaf of the test CA
  (\`chain.pem\`, \`trusted_root.json\`; issuer \`$issuer\`, URI SAN \`$subject\`).
  \`attested\`: signed and SLSA-attested by the key. \`att-only\`: only attested.

When made, cosign $version's own \`verify\` (offline, \`--insecure-ignore-tlog\`) accepted
\`key\`, \`attested\` and \`keyless\` (with \`--trusted-root\`, \`--insecure-ignore-sct\`) and
\`verify-attestation --type slsaprovenance\` accepted \`attested\` and \`att-only\`; it refused
\`keyless\` under the key. cosign's \`verify --key\` $att_only_as_signed \`att-only\` as a signed
image (its only bundle is an SLSA provenance statement, not a sign/v1 one); signet refuses it.
Private keys are not kept.
EOF
echo "wrote $out ($(ls "$out" | wc -l) files)"
