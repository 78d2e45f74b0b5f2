# Sourced by integration/e2e.sh: what every section checks with, and how a section runs.

OUT=
# cri_run IMAGE: run through CRI; sets OUT and returns the cri.py exit code (0 ran, 3 rejected).
# CRI_RUN_ARGS: more `cri.py run` options (e.g. --image-volume REF) for the checks that set it.
CRI_RUN_ARGS=()
cri_run() { OUT=$($CRI run "$1" "${CRI_RUN_ARGS[@]}" 2>&1); }
ok()   { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
bad()  { FAILED=$((FAILED + 1)); echo "FAIL - $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/       /'; }

expect_runs() {  # name image [log-marker]
  cri_run "$2"; local rc=$?
  if [ $rc = 0 ] && { [ -z "${3:-}" ] || grep -q "$3" <<<"$OUT"; }; then ok "$1"; else bad "$1" "rc=$rc $OUT"; fi
}
# Every expect_rejected is an attempt to start an image that must not run in enforce mode.
expect_rejected() {  # name image [text that the CRI error must contain]...
  local name=$1 image=$2; shift 2
  ATTEMPTS=$((ATTEMPTS + 1))
  cri_run "$image"; local rc=$?
  [ $rc = 0 ] && STARTED_UNVERIFIED=$((STARTED_UNVERIFIED + 1))
  if [ $rc != 3 ]; then bad "$name" "expected rejection (3), got rc=$rc: $OUT"; return; fi
  local t
  for t in "$@"; do
    grep -qF -- "$t" <<<"$OUT" || { bad "$name" "rejection message lacks '$t': $OUT"; return; }
  done
  ok "$name"
}

# wait_for SECONDS CMD...: until CMD succeeds (a condition, not a fixed sleep); 1 on timeout.
wait_for() {
  local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s%N)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}
log_has() { grep -q -- "$1" "$SIGNET_LOG"; }
# up POLICY_DIR [flags...]: this section's signet; a section whose signet does not come up ends there.
up() { start_signet "$@" || { bad "signet starts and registers with containerd $RUNTIME" "$(tail -20 "$SIGNET_LOG" 2>/dev/null)"; exit 1; }; }
# The signet CLI against this runtime's image store.
signet_cli() { local sub=$1; shift; "$SIGNET" "$sub" --containerd-socket "$CONTAINERD_SOCK" "$@"; }
# metric NAME: its value from the running signet's admin endpoint (0 when absent).
metric() { curl -s http://127.0.0.1:9180/metrics | awk -v n="$1" '$1 == n {print $2; f=1} END {if (!f) print 0}'; }

# What any section may leave behind, undone before the next one.
section_cleanup() {
  stop_signet
  [ -n "${FAULT_PID:-}" ] && kill "$FAULT_PID" 2>/dev/null
  [ -n "${TLS_PID:-}" ] && kill "$TLS_PID" 2>/dev/null
  [ -n "${FAR_PID:-}" ] && kill "$FAR_PID" 2>/dev/null
  [ -n "${OTHER_TSA_PID:-}" ] && kill "$OTHER_TSA_PID" 2>/dev/null
  rm -rf "$CONTAINERD_CERTS/faulty.local" "$CONTAINERD_CERTS/tls.local" "$CONTAINERD_CERTS/faraway.local"
  if [ -e "$NRI_PLUGIN_DIR/05-signet" ]; then
    rm -f "$NRI_PLUGIN_DIR/05-signet" /etc/signet/config.toml
    restart_containerd
  fi
  $CRI cleanup >/dev/null 2>&1
}

# key_policy DIR KEY: a signet policy requiring KEY's cosign signature on everything under probe/.
key_policy() { rm -rf "$1"; write_policy "$1" probe "$REGISTRY/probe/**" "$2"; }

# run_section NAME: the section in a subshell; its counts land in $RESULTS/$RUNTIME.NAME.
run_section() {
  local name=$1 fn=sec_${1//-/_}
  (
    PASSED=0 FAILED=0 ATTEMPTS=0 STARTED_UNVERIFIED=0
    WORK=$RUNTIME_WORK/$name; rm -rf "$WORK"; mkdir -p "$WORK"
    # (the file name is fixed now: a failing `set -u` unwinds locals before the trap runs)
    trap "section_cleanup; "'echo "$PASSED $FAILED $ATTEMPTS $STARTED_UNVERIFIED"'" > '$RESULTS/$RUNTIME.$name'" EXIT
    say "[$RUNTIME] $name"
    "$fn"
  )
  # A section that died before its trap could write is a failure too.
  [ -s "$RESULTS/$RUNTIME.$name" ] || echo "0 1 0 0" > "$RESULTS/$RUNTIME.$name"
}
