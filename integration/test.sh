#!/usr/bin/env bash
# The test command (README, .ci/run): unit and in-process tests, lints, manifests, then the
# end-to-end suite on the project's own world (integration/world.sh) against containerd 1.7
# and containerd 2.x, the packages, the container image, and short fuzzing runs. Needs root
# (containerd). Each part's time is printed and kept in target/test-timings.txt; a world this
# command brought up is brought down at the end.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO"
mkdir -p "${CARGO_TARGET_DIR:-$REPO/target}"
# A one-off build: incremental state would only take disk (over a gigabyte) and time.
export CARGO_INCREMENTAL=0
TIMINGS=${CARGO_TARGET_DIR:-$REPO/target}/test-timings.txt
: > "$TIMINGS"
T_START=$(date +%s) T_PART=$(date +%s) PART=

# part NAME: close the previous part's timing and open the next.
part() {
  local now; now=$(date +%s)
  [ -z "$PART" ] || printf '%-28s %5d s\n' "$PART" $((now - T_PART)) | tee -a "$TIMINGS"
  PART=$1 T_PART=$now
  [ "$PART" = end ] || say "$PART"
}

WORLD_WAS_UP=$(bash "$WORLD" status 2>/dev/null | grep -c ': up' || true)
finish() {
  local rc=$?
  part end
  printf '%-28s %5d s\n' total $(( $(date +%s) - T_START )) | tee -a "$TIMINGS"
  [ "${WORLD_WAS_UP:-0}" != 0 ] || bash "$WORLD" down >/dev/null 2>&1 || true
  exit $rc
}
trap finish EXIT

part "toolchain and build prerequisites"
need_tools
cargo --version

part "unit and in-process tests"
UNIT_LOG=${CARGO_TARGET_DIR:-$REPO/target}/unit-tests.log
# The whole workspace: signet and the nri crate.
if ! cargo test --workspace --locked > "$UNIT_LOG" 2>&1; then
  tail -100 "$UNIT_LOG"
  echo "unit tests failed (full log: $UNIT_LOG)"
  exit 1
fi
grep -E '^test result' "$UNIT_LOG"
# The peers' own tests as the measure of the importers (../shared/peer-corpus, when present).
cargo test --locked --test peer_corpus -- --nocapture 2>&1 | grep -E 'agree|peer-corpus' || true

part "lints"
cargo fmt --all --check
cargo clippy --workspace --locked --all-targets -q -- -D warnings

part "manifests"
bash "$REPO/integration/check-manifests.sh"

# The README's first command as a user meets it: a clone with no target/ and nothing beside
# it. Its world has a state dir of its own, so it runs only while no other world is up.
part "demo from a fresh clone"
if [ "$WORLD_WAS_UP" = 0 ]; then
  CLONE=$(mktemp -d)/signet
  git clone -q "$REPO" "$CLONE"
  # (with this checkout's signet, built by the manifests part: the same source, and building
  # it again under the clone's path would cost minutes)
  if ! (cd "$CLONE" && env -u WORLD_STATE -u PROBE_STATE SIGNET="$SIGNET" bash integration/demo.sh > "$CLONE.demo.log" 2>&1); then
    tail -40 "$CLONE.demo.log"; echo "the demo failed in a fresh clone ($CLONE.demo.log)"; exit 1
  fi
  grep -E 'demo done' "$CLONE.demo.log"
  # (its own state dir: this process's WORLD_STATE would point the clone's down at ours)
  env -u WORLD_STATE -u PROBE_STATE bash "$CLONE/integration/world.sh" down --purge
  if curl -fsS http://127.0.0.1:5000/v2/ >/dev/null 2>&1 || ctr version >/dev/null 2>&1; then
    echo "the fresh clone's world is still up after its down"; exit 1
  fi
  rm -rf "$(dirname "$CLONE")"
else
  echo "not run: a world is already up here (bash integration/world.sh down to include it)"
fi

part "world up"
bash "$WORLD" up
bash "$WORLD" status

# Both runtimes in one run: one summary, one exit status, one count of unverified starts each.
part "e2e (1.7 and 2.x)"
bash "$REPO/integration/e2e.sh"

part "packages"
bash "$REPO/integration/package.sh"

part "container image"
bash "$REPO/integration/image.sh"

part "fuzzing"
FUZZ_SECONDS=${FUZZ_SECONDS:-5} bash "$REPO/integration/fuzz.sh"
