#!/usr/bin/env bash
# The end-to-end suite on the project's own world (integration/world.sh): real containerd
# runtimes with NRI, a real registry, images signed by real cosign 2 and 3, skopeo and
# notation. Each check drives the CRI API like kubelet does and asserts what the node did.
#
#   bash integration/e2e.sh                                   every section on every runtime
#   E2E_RUNTIMES=2.x E2E_SECTIONS="enforce keyless" bash integration/e2e.sh
#   bash integration/e2e.sh --list                            the section names
#
# Each section runs in a subshell of its own with its own work dir, policies and signet
# process, and cleans up after itself; a failing section is reported and the run goes on.
# This file is the driver; the checks' helpers are e2e/checks.sh and the sections live in
# e2e/<theme>.sh (enforce, faults, languages, signers, timestamps, registries, images, kms, ivp).
# Ends with a per-runtime, per-section summary, the count of unverified images that started
# in enforce mode, and "N passed, N failed"; exits 1 on any failure.
set -uo pipefail   # (no -e: a failing check is counted and reported, not fatal)
. "$(dirname "$0")/lib.sh"

SECTIONS_ALL="enforce restart key2 warn config policy-reload registry-down faults no-plugin languages
  keyless referrers bundle-sign cosign3 timestamps notation gpg mirror sigrepo tls namespaces image-volume by-id
  policy-cli cluster preinstalled kms ivp tuf sbom"
if [ "${1:-}" = --list ]; then echo $SECTIONS_ALL; exit 0; fi
SECTIONS=${E2E_SECTIONS:-$SECTIONS_ALL}
RUNTIMES=${E2E_RUNTIMES:-1.7 2.x}
for s in $SECTIONS; do
  case " $(echo $SECTIONS_ALL) " in *" $s "*) ;; *) echo "unknown section '$s' (bash integration/e2e.sh --list)" >&2; exit 2 ;; esac
done

E2E=$(dirname "$0")/e2e
# shellcheck source=integration/e2e/checks.sh
. "$E2E/checks.sh"
for f in enforce faults languages signers timestamps registries images kms ivp; do
  # shellcheck disable=SC1090
  . "$E2E/$f.sh"
done

# ------------------------------------------------------------------------------ the run
need_tools
RESULTS=$WORLD_STATE/e2e-results; rm -rf "$RESULTS"; mkdir -p "$RESULTS"
build_signet || { echo "signet did not build"; echo "0 passed, 1 failed"; exit 1; }
for RUNTIME in $RUNTIMES; do
  export RUNTIME
  t0=$(date +%s)
  say "runtime $RUNTIME: bringing up the world"
  if ! world_up; then
    echo "FAIL - the world with containerd $RUNTIME came up"; echo "0 1 0 0" > "$RESULTS/$RUNTIME.world"; continue
  fi
  echo "containerd $RUNTIME_VERSION, NRI socket $NRI_SOCK, CRI $CONTAINERD_SOCK"
  RUNTIME_WORK=$WORLD_STATE/signet-$RUNTIME/e2e
  # New content per run and runtime for the images a section signs, so signatures from an
  # earlier run (or the other runtime's) do not pile onto the same digest.
  RUN_ID=run-$(date +%s)-$RUNTIME
  for s in $SECTIONS; do run_section "$s"; done
  echo "$(( $(date +%s) - t0 ))" > "$RESULTS/$RUNTIME.seconds"
done

TOTAL_P=0 TOTAL_F=0
echo
say "summary"
printf '%-8s %-14s %7s %7s %9s %11s\n' runtime section passed failed attempts unverified
for RUNTIME in $RUNTIMES; do
  rp=0 rf=0 ra=0 ru=0
  for s in world $SECTIONS; do
    f=$RESULTS/$RUNTIME.$s; [ -f "$f" ] || continue
    read -r p fl a u < "$f"
    printf '%-8s %-14s %7s %7s %9s %11s%s\n' "$RUNTIME" "$s" "$p" "$fl" "$a" "$u" "$([ "$fl" = 0 ] || echo '   <- FAILED')"
    rp=$((rp + p)) rf=$((rf + fl)) ra=$((ra + a)) ru=$((ru + u))
  done
  # The count that matters most: enforce-mode attempts to start unverified images that started.
  if [ "$ru" = 0 ]; then rp=$((rp + 1)); echo "ok   - [$RUNTIME] enforce mode: $ra attempts to start unverified images, none started"
  else rf=$((rf + 1)); echo "FAIL - [$RUNTIME] enforce mode: $ra attempts to start unverified images, $ru started"; fi
  echo "runtime $RUNTIME: $rp passed, $rf failed, unverified starts: $ru, $(cat "$RESULTS/$RUNTIME.seconds" 2>/dev/null || echo '?') s"
  TOTAL_P=$((TOTAL_P + rp)) TOTAL_F=$((TOTAL_F + rf))
done
echo "e2e: $TOTAL_P passed, $TOTAL_F failed"
[ "$TOTAL_F" = 0 ]
