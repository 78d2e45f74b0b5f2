#!/usr/bin/env bash
# Regenerate the checked-in vectors in testdata/notation-referrer/: an SBOM attached to an
# image as an OCI 1.1 referrer and signed by real notation, as Kyverno's referrer attestations
# read it (`oras attach --artifact-type sbom/cyclone-dx`, then `notation sign` of the SBOM's
# manifest).
#
# The image is byte-reproducible (integration/mkimage.py) in an OCI image layout, so no
# registry is needed. The SBOM's manifest is written here as oras 1.2 writes one: artifact
# type sbom/cyclone-dx, the empty config, one layer (the CycloneDX document, media type
# application/vnd.cyclonedx+json), the image as subject. Real notation (1.3, `--oci-layout`,
# experimental) signs it with a test certificate, "trusted"; "other" (a signer the policy does
# not trust) signs it too; and "trusted" signs the same SBOM attached to another image (its
# subject names that image), and the image itself. notation itself verifies each signature before it is written.
# Needs notation 1.3 and python3. Run: bash integration/make-notation-referrer-vectors.sh; then
# commit testdata/notation-referrer.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/testdata/notation-referrer
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export NOTATION_CONFIG=$work/config NOTATION_EXPERIMENTAL=1
notation() { command notation "$@" 2>/dev/null; }
. "$repo/integration/notation-layout.sh"
notation cert generate-test signet-trusted >/dev/null
notation cert generate-test signet-other >/dev/null

# attach LAYOUT SUBJECT-DIGEST FILE: write the SBOM artifact manifest into the layout (and its
# index), as oras attach does; prints the manifest's digest.
attach() {
  python3 - "$@" <<'PY'
import hashlib, json, os, sys
layout, subject, path = sys.argv[1:4]
def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
index = json.load(open(os.path.join(layout, "index.json")))
image = next(m for m in index["manifests"] if m["digest"] == subject)
manifest = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "artifactType": "sbom/cyclone-dx",
    "config": {"mediaType": "application/vnd.oci.empty.v1+json", **put(b"{}"), "data": "e30="},
    "layers": [{"mediaType": "application/vnd.cyclonedx+json", **put(open(path, "rb").read()),
                "annotations": {"org.opencontainers.image.title": "sbom.json"}}],
    "subject": {"mediaType": image["mediaType"], "digest": image["digest"], "size": image["size"]},
    "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
}
raw = json.dumps(manifest, separators=(",", ":")).encode()
desc = {"mediaType": manifest["mediaType"], "artifactType": manifest["artifactType"], **put(raw)}
index["manifests"].append(desc)
json.dump(index, open(os.path.join(layout, "index.json"), "w"))
print(desc["digest"])
PY
}

cat > "$work/sbom.json" <<'J'
{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"metadata":{"component":{"type":"container","name":"app"}},"components":[{"type":"library","name":"busybox","version":"1.36.1"}]}
J
mkdir -p "$out"
d_app=$(image app)
d_other=$(image other-image)
sbom=$(attach "$work/app" "$d_app" "$work/sbom.json")
elsewhere=$(attach "$work/other-image" "$d_other" "$work/sbom.json")
s_good=$(sign "$work/app" "$sbom" signet-trusted)
s_other=$(sign "$work/app" "$sbom" signet-other)
s_elsewhere=$(sign "$work/other-image" "$elsewhere" signet-trusted)
s_image=$(sign "$work/app" "$d_app" signet-trusted)
verify "$work/app" "$sbom" signet-trusted
verify "$work/app" "$d_app" signet-trusted
verify "$work/app" "$sbom" signet-other
verify "$work/other-image" "$elsewhere" signet-trusted

blob "$work/app" "$d_app" > "$out/image-manifest.json"
blob "$work/app" "$sbom" > "$out/sbom.manifest.json"
blob "$work/other-image" "$elsewhere" > "$out/elsewhere.manifest.json"
cp "$work/sbom.json" "$out/sbom.json"
for v in "good|$work/app|$s_good" "untrusted|$work/app|$s_other" "elsewhere|$work/other-image|$s_elsewhere" \
         "image|$work/app|$s_image"; do
  IFS='|' read -r name layout sig <<<"$v"
  blob "$layout" "$sig" > "$out/$name-signature.manifest.json"
  layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' "$out/$name-signature.manifest.json")
  blob "$layout" "$layer" > "$out/$name.jws"
done
cp "$NOTATION_CONFIG/localkeys/signet-trusted.crt" "$out/trusted.crt"
cp "$NOTATION_CONFIG/localkeys/signet-other.crt" "$out/other.crt"
cat > "$out/digests" <<E
image $d_app
other-image $d_other
sbom $sbom
elsewhere $elsewhere
E
echo "notation referrer vectors written to $out"
