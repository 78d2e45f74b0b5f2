#!/usr/bin/env bash
# Validate everything a user applies or installs: Kubernetes manifests against the
# Kubernetes schemas (kubernetes-validate, strict), signet policy examples against the
# generated CRD schema and with `signet policy check`, including the baseline embedded in
# the DaemonSet's ConfigMap. Exit 1 on the first invalid file.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO"

VENV=$REPO/target/manifest-venv
if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q kubernetes-validate==1.37.0
fi
K8S=packaging/kubernetes
"$VENV/bin/kubernetes-validate" --strict --quiet -k 1.32.0 "$K8S/rbac.yaml" "$K8S/daemonset.yaml" "$K8S/crd.yaml"
echo "kubernetes schemas: rbac.yaml daemonset.yaml crd.yaml valid"

cargo build -q --bin signet
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
"$VENV/bin/python" - "$K8S/crd.yaml" "$K8S/daemonset.yaml" "$TMP" "$K8S"/examples/*.yaml <<'PY'
import sys, yaml, jsonschema
crd_path, ds_path, tmp, examples = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
crd = next(d for d in yaml.safe_load_all(open(crd_path)) if d)
schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
# The node baseline shipped inside the DaemonSet's ConfigMap is policy too.
for doc in yaml.safe_load_all(open(ds_path)):
    if doc and doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "signet-node-policies":
        for name, text in doc["data"].items():
            open(f"{tmp}/configmap-{name}", "w").write(text)
            examples.append(f"{tmp}/configmap-{name}")
for path in examples:
    for doc in yaml.safe_load_all(open(path)):
        if doc and doc.get("apiVersion") == "signet.dev/v1alpha1":
            jsonschema.validate(doc, schema)
    print(f"CRD schema: {path} valid")
PY
"$REPO/target/debug/signet" policy check "$K8S"/examples/*.yaml "$TMP"/configmap-*.yaml > /dev/null
# The packaged example names a key file the node would have; give it one.
printf -- '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nhEhaiVh+bIH3LE3x1ae2+Rsdom\nn6jj4T408Ki/F10p17R/R2YobGd7XDaa6PR2vfSDiAfBvxSCmvFGmEf35w==\n-----END PUBLIC KEY-----\n' > "$TMP/release.pub"
sed "s#/etc/signet/keys/release.pub#$TMP/release.pub#" packaging/policies/example.yaml.disabled > "$TMP/packaged-example.yaml"
"$REPO/target/debug/signet" policy check "$TMP/packaged-example.yaml" > /dev/null
echo "manifests: all valid"
