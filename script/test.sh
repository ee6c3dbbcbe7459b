#!/usr/bin/env bash
# The one test command (README, .ci/run): installs the toolchain if needed, then runs every test:
# contract tests (forge), ABI drift check, formatting and lints, Rust unit and end-to-end tests, and the
# container image built and run in a Docker engine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SETUP_SKIP_CARGO=1 bash script/setup.sh
export PATH="$ROOT/.toolchain/bin:$PATH"

# Each step says how long the run has taken so far (where the minutes go: .ci/run's goal is 10).
step() { printf '\n\033[1;34m== %s\033[0m (at %d s)\n' "$*" "$SECONDS"; }

step "contract tests (forge test)"
forge test

step "ABI used by the agent, and PROTOCOL.md §4.6, match the contract"
bash script/sync-abi.sh --check
bash script/abi-doc.sh --check

step "format, and the trust path's size against TRUST.md and its ceilings"
cargo fmt --all --check
forge fmt --check
bash script/trust-lines.sh --check

step "headless Chromium for the audit HTML report test"
command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

step "build every target, clippy's lints as errors"
# One build, not two: clippy-driver compiles the workspace's own crates for the test build itself (`cargo clippy`
# runs the same driver, for a check build that nothing else reuses: five more minutes on a fresh clone). rustc
# compiles the dependencies as usual. Every cargo command below and in container-test.sh runs with the same
# wrapper, so none rebuilds what this one built. --all-targets: the benches too, as `cargo clippy --all-targets`.
# No incremental compilation: a run builds each crate once, and its caches would take gigabytes of disk.
RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)"
export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" CARGO_INCREMENTAL=0
cargo test --workspace --all-targets --no-run --locked

step "Rust unit and end-to-end tests (three groups at once)"
# The anvil suites mostly wait on 1 s blocks, so the tests run in three groups at once, each with its own log,
# all printed when all are done. Groups 1 and 2 select the whole workspace (so every crate has the features the
# build above gave it, and nothing is rebuilt) and pick targets: group 1 the slowest suites, group 2 every other
# unit and integration test (listed from the folders, so that no new suite can be left out). Group 3 runs the
# doc tests, then the production build's own test (`-p replicatoor` alone: no dev features unified in), which
# builds the production binary the container step puts in its image; it starts once groups 1 and 2 are past
# cargo's build lock, and builds at a lower priority than the suites beside it.
SLOW=(faults audit deploy preflight)
SLOW_ARGS=() OTHER_ARGS=()
for f in tests/tests/*.rs agent/*/tests/*.rs; do
  n=$(basename "$f" .rs)
  if [[ " ${SLOW[*]} " == *" $n "* ]]; then SLOW_ARGS+=(--test "$n"); else OTHER_ARGS+=(--test "$n"); fi
done
[ "${#SLOW_ARGS[@]}" = $((2 * ${#SLOW[@]})) ] || { echo "a suite of SLOW is not in tests/tests" >&2; exit 1; }
LOGS="$ROOT/target/test-logs"
rm -rf "$LOGS" && mkdir -p "$LOGS"
PIDS=() NAMES=()
group() { # name command...: in the background, output to $LOGS/name.log
  local name=$1
  shift
  ("$@" >"$LOGS/$name.log" 2>&1) &
  PIDS+=("$!") NAMES+=("$name")
}
group 1-slow-suites cargo test --locked --workspace "${SLOW_ARGS[@]}" -- --show-output --test-threads 4
group 2-other-tests cargo test --locked --workspace --lib --bins "${OTHER_ARGS[@]}" -- --show-output --test-threads 4
for _ in $(seq 600); do # cargo prints "Running" once it has let go of the build lock
  grep -qs Running "$LOGS/1-slow-suites.log" && grep -qs Running "$LOGS/2-other-tests.log" && break
  sleep 0.1
done
group 3-doc-and-production bash -c 'cargo test --locked --workspace --doc &&
  nice -n 10 cargo test --locked -p replicatoor --test production -- --show-output'
failed=()
for i in "${!PIDS[@]}"; do
  wait "${PIDS[i]}" || failed+=("${NAMES[i]}")
done
for name in "${NAMES[@]}"; do
  printf '\n\033[1m-- tests, group %s\033[0m\n' "$name"
  cat "$LOGS/$name.log"
done
if [ "${#failed[@]}" != 0 ]; then
  printf '\n\033[31mfailed: %s (logs above, and in target/test-logs/)\033[0m\n' "${failed[*]}" >&2
  exit 1
fi

step "The container image, built and run (script/container-test.sh)"
bash script/container-test.sh
step "done"
