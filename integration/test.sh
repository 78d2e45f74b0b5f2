#!/usr/bin/env bash
# The test command (README, .ci/run): unit and in-process tests, then the end-to-end suite
# on a real containerd + NRI node that ../shared/e2e-env sets up. Needs root for containerd.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO"

say "toolchain and build prerequisites"
need_tools
cargo --version

say "unit and in-process tests"
cargo test --locked 2>&1 | tee "$REPO/target/unit-tests.log" | grep -E '^(test result|running|error|warning: unused)|FAILED|panicked' || true
grep -q 'test result: FAILED\|error\[' "$REPO/target/unit-tests.log" && { echo "unit tests failed"; exit 1; }
grep -q '^test result: ok' "$REPO/target/unit-tests.log" || { echo "unit tests did not run"; exit 1; }

say "lints"
cargo fmt --check
cargo clippy --locked --all-targets -q -- -D warnings

say "end-to-end on real containerd (NRI v0.6.1)"
bash "$REPO/integration/e2e.sh"
