#!/usr/bin/env bash
# The test command (README, .ci/run): unit and in-process tests, lints, manifests, then the
# end-to-end suite on a real containerd + NRI node that ../shared/e2e-env sets up, the
# packages, the container image, and short fuzzing runs. Needs root for containerd.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO"

say "toolchain and build prerequisites"
need_tools
cargo --version

say "unit and in-process tests"
mkdir -p "$REPO/target"
if ! cargo test --locked > "$REPO/target/unit-tests.log" 2>&1; then
  tail -100 "$REPO/target/unit-tests.log"
  echo "unit tests failed (full log: target/unit-tests.log)"
  exit 1
fi
grep -E '^test result' "$REPO/target/unit-tests.log"

say "lints"
cargo fmt --check
cargo clippy --locked --all-targets -q -- -D warnings

say "manifests and generated artifacts"
bash "$REPO/integration/check-manifests.sh"

say "end-to-end on real containerd (NRI v0.6.1)"
bash "$REPO/integration/e2e.sh"

say "packages: .deb installed with dpkg, .rpm installed with rpm in a separate root"
bash "$REPO/integration/package.sh"

say "container image: built, signed, run like the DaemonSet runs it"
bash "$REPO/integration/image.sh"

say "fuzzing: a short run of every target"
FUZZ_SECONDS=${FUZZ_SECONDS:-10} bash "$REPO/integration/fuzz.sh"
