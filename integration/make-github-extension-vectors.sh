#!/usr/bin/env bash
# Regenerate testdata/keyless-github/: a Fulcio-shaped keyless certificate for a GitHub Actions
# workflow, carrying Fulcio's first GitHub extensions (1.3.6.1.4.1.57264.1.2 to .1.6: workflow
# trigger, SHA, name, repository, ref, raw strings as Fulcio wrote them before the .1.8+ set),
# made by integration/testpki.sh (pki_ca's leaf-github.pem), with its chain and root. Kyverno
# ClusterPolicy `keyless.additionalExtensions` checks these. Needs openssl and cosign.
# Run: bash integration/make-github-extension-vectors.sh; then commit testdata/keyless-github.
set -euo pipefail
. "$(dirname "$0")/testpki.sh"
out=$(cd "$(dirname "$0")/.." && pwd)/testdata/keyless-github
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export COSIGN_PASSWORD=signet-test
pki_ca https://token.actions.githubusercontent.com builder@example.com \
  "https://github.com/$PKI_GH_REPO/.github/workflows/$PKI_GH_NAME.yml@$PKI_GH_REF"
mkdir -p "$out"
cp leaf-github.pem "$out/leaf.pem"
cp chain.pem root.pem "$out/"
cat > "$out/extensions" <<E
githubWorkflowTrigger $PKI_GH_TRIGGER
githubWorkflowSha $PKI_GH_SHA
githubWorkflowName $PKI_GH_NAME
githubWorkflowRepository $PKI_GH_REPO
githubWorkflowRef $PKI_GH_REF
E
echo "GitHub extension vectors written to $out"
