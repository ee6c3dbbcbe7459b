#!/usr/bin/env bash
# Bounded fuzzing of every parser of untrusted input: runs each proptest target of tests/tests/fuzz.rs for
# SECONDS (default 30) with structured mutations, prints executions per target, exits non-zero on
# the first failure (the minimal failing input is printed; make it a named regression test).
#
#   bash script/fuzz.sh [SECONDS]        PROPTEST_CASES=N caps executions per target (default 10^7)
#   FUZZ_RELEASE=1 bash script/fuzz.sh   optimised build: many more executions, longer first build
#
# cargo-fuzz (libFuzzer, coverage-guided) would need a nightly toolchain and cargo-fuzz installed;
# these targets use stable proptest so they also run in CI as part of `cargo test`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ -d .toolchain/bin ] && export PATH="$ROOT/.toolchain/bin:$PATH"

SECONDS_PER_TARGET="${1:-30}"
case "$SECONDS_PER_TARGET" in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
profile=()
[ "${FUZZ_RELEASE:-0}" = 1 ] && profile=(--release)

cargo test "${profile[@]}" -p replicatoor-tests --test fuzz --no-run --quiet
targets=$(cargo test "${profile[@]}" -p replicatoor-tests --test fuzz --quiet -- --list 2>/dev/null | sed -n 's/: test$//p')
[ -n "$targets" ] || { echo "no fuzz targets found" >&2; exit 1; }

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
failed=()
printf '%-40s %s\n' "target" "result"
for t in $targets; do
  if FUZZ_SECONDS="$SECONDS_PER_TARGET" PROPTEST_CASES="${PROPTEST_CASES:-10000000}" \
    cargo test "${profile[@]}" -p replicatoor-tests --test fuzz --quiet -- --exact "$t" --nocapture --test-threads=1 >"$log" 2>&1; then
    printf '%-40s %s\n' "$t" "$(grep '^fuzz ' "$log" | tail -n 1)"
  else
    printf '%-40s %s\n' "$t" "FAILED"
    # awk reads to the end (unlike head), so sed never dies of SIGPIPE under pipefail.
    grep -v '^\s*[0-9]*: \|^\s*at ' "$log" | sed -n '/panicked/,/^failures:/p' | awk 'NR <= 60' || true
    failed+=("$t")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all targets passed"
