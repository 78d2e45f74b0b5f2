#!/usr/bin/env bash
# Short coverage-guided fuzzing runs (cargo-fuzz / libFuzzer with AddressSanitizer) of every
# parser that sees untrusted input: NRI mux headers, NRI messages, policy YAML of every kind,
# signature manifests, signed payloads (with the digest-binding property asserted), and signed
# attestation statements (subject and predicate type asserted), GPG simple-signing blobs, and
# notation envelopes (JWS and COSE).
# FUZZ_SECONDS per target (default 20). Crashes are left under fuzz/artifacts/<target>/.
#
# This machine has only a stable toolchain; cargo-fuzz needs -Z flags, so RUSTC_BOOTSTRAP=1
# lets stable rustc accept them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked -q
export RUSTC_BOOTSTRAP=1
SECS=${FUZZ_SECONDS:-20}
TARGETS=(mux_frames nri_create_container policy_documents signature_manifest signature_payload attestation gpg_signature
  notary_envelope timestamp)
cargo fuzz build -O
for t in "${TARGETS[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  seeds=()
  [ "$t" = policy_documents ] && seeds=(testdata/importers packaging/kubernetes/examples)
  [ "$t" = attestation ] && seeds=(testdata/fuzz-seeds/attestation)
  [ "$t" = gpg_signature ] && seeds=(testdata/fuzz-seeds/gpg_signature)
  # (a directory of its own: libFuzzer reads every file of a seed directory)
  if [ "$t" = notary_envelope ]; then
    mkdir -p "fuzz/seeds/$t"; cp testdata/notation/*.jws testdata/notation/*.cose "fuzz/seeds/$t/"; seeds=("fuzz/seeds/$t")
  fi
  if [ "$t" = timestamp ]; then
    mkdir -p "fuzz/seeds/$t"; cp testdata/tsa/*.tsr testdata/tsa/*.token "fuzz/seeds/$t/"; seeds=("fuzz/seeds/$t")
  fi
  echo "fuzz: $t for ${SECS}s"
  cargo fuzz run -O "$t" "fuzz/corpus/$t" "${seeds[@]}" -- -max_total_time="$SECS" -rss_limit_mb=2048 \
    -print_final_stats=1 2>&1 | grep -E '^(stat::number_of_executed_units|Done|==[0-9]+==ERROR|SUMMARY)' || true
  # (find, not ls: under pipefail, ls of a glob that matches nothing fails the pipeline and
  # hid a crash once.)
  if [ -n "$(find "fuzz/artifacts/$t" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' -o -name 'timeout-*' \) 2>/dev/null)" ]; then
    echo "fuzz: $t found a failing input:"; ls "fuzz/artifacts/$t"
    exit 1
  fi
done
echo "fuzz: all targets ran ${SECS}s without a failure"
