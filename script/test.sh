#!/usr/bin/env bash
# The one test command (README, .ci/run): installs the toolchain if needed, then runs every test:
# formatting and the trust path's size, contract tests (forge) and the ABI checks (beside the build), one build
# with clippy's lints, Rust unit and end-to-end tests, and the container image built and run in a Docker engine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.toolchain/bin:$PATH"
LOGS="$ROOT/target/test-logs"
rm -rf "$LOGS" && mkdir -p "$LOGS"

# Each step says how long the run has taken so far (where the minutes go: .ci/run's goal is 10).
step() { printf '\n\033[1;34m== %s\033[0m (at %d s)\n' "$*" "$SECONDS"; }

step "format, and the trust path's size against TRUST.md and its ceilings"
cargo fmt --all --check
bash script/trust-lines.sh --check

# The contract side needs none of the Rust build (the agent's ABI is committed), so it runs beside it: the
# toolchain (Foundry, solc, OpenZeppelin from npm), the contract tests, and the ABI checks against the agent's copy
# and PROTOCOL.md §4.6; and so do the Debian packages the tests run (headless Chromium renders the audit's HTML
# report, libfaketime sets a holder's wall clock back in the freshness suite, docker.io and debootstrap build and
# run the image in script/container-test.sh), installed when missing, as on a fresh machine. Their log is printed,
# and their failure fails the run, once the build is done.
step "beside the build: toolchain, forge test, forge fmt, the ABI against the agent and PROTOCOL.md §4.6; packages"
(
  SETUP_SKIP_CARGO=1 bash script/setup.sh && forge test && forge fmt --check && bash script/sync-abi.sh --check &&
    bash script/abi-doc.sh --check
) >"$LOGS/0-contracts.log" 2>&1 &
CONTRACTS=$!
(
  need=()
  command -v chromium >/dev/null || need+=(chromium)
  [ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || need+=(faketime)
  { command -v docker && command -v dockerd; } >/dev/null || need+=(docker.io)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  if [ "${#need[@]}" != 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
) >"$LOGS/0-packages.log" 2>&1 &
PACKAGES=$!

step "build every target, clippy's lints as errors"
# One build, not two: clippy-driver compiles the workspace's own crates for the test build itself (`cargo clippy`
# runs the same driver, for a check build that nothing else reuses: five more minutes on a fresh clone). rustc
# compiles the dependencies as usual. Every cargo command below and in container-test.sh runs with the same
# wrapper, so none rebuilds what this one built. --all-targets: the benches too, as `cargo clippy --all-targets`.
# No incremental compilation: a run builds each crate once, and its caches would take gigabytes of disk.
RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)"
export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" CARGO_INCREMENTAL=0
cargo test --workspace --all-targets --no-run --locked

step "the contract side and the packages (run beside the build)"
contracts_ok=0 packages_ok=0
wait "$CONTRACTS" || contracts_ok=$?
wait "$PACKAGES" || packages_ok=$?
cat "$LOGS/0-contracts.log" "$LOGS/0-packages.log"
[ "$contracts_ok" = 0 ] || { printf '\n\033[31mthe contract side failed (log above)\033[0m\n' >&2; exit 1; }
[ "$packages_ok" = 0 ] || { printf '\n\033[31minstalling the packages failed (log above)\033[0m\n' >&2; exit 1; }

step "Rust unit and end-to-end tests (four groups at once)"
# The anvil suites mostly wait on 1 s blocks, so the tests run in four groups at once, each with its own log, all
# printed when all are done. The first three select the whole workspace (so every crate has the features the build
# above gave it, and nothing is rebuilt) and pick targets: two groups of the slowest suites, balanced by their
# times, and every other unit and integration test (listed from the folders, so that no new suite can be left out).
# The fourth runs the doc tests, then the production build's own test (`-p replicatoor` alone: no dev features
# unified in), which builds the production binary the container step puts in its image; it starts once the others
# are past cargo's build lock, and builds at a lower priority than the suites beside it.
SLOW_GROUPS=("faults preflight light_client fuzz rotation" "e2e deploy audit")
declare -A GROUP_OF=()
for g in "${!SLOW_GROUPS[@]}"; do for n in ${SLOW_GROUPS[g]}; do GROUP_OF[$n]=$g; done; done
SLOW_ARGS=("" "") REST_ARGS=()
for f in tests/tests/*.rs agent/*/tests/*.rs; do
  n=$(basename "$f" .rs)
  if [ -n "${GROUP_OF[$n]:-}" ]; then
    g=${GROUP_OF[$n]}
    SLOW_ARGS[g]+=" --test $n"
    unset "GROUP_OF[$n]"
  else
    REST_ARGS+=(--test "$n")
  fi
done
[ "${#GROUP_OF[@]}" = 0 ] || { echo "no suite named ${!GROUP_OF[*]} (SLOW_GROUPS)" >&2; exit 1; }
PIDS=() NAMES=()
group() { # name command...: in the background, output to $LOGS/name.log
  local name=$1
  shift
  ("$@" >"$LOGS/$name.log" 2>&1) &
  PIDS+=("$!") NAMES+=("$name")
}
# shellcheck disable=SC2086 # each SLOW_ARGS entry is a list of --test flags
{
  group 1-slow-suites cargo test --locked --workspace ${SLOW_ARGS[0]} -- --show-output --test-threads 4
  group 2-slow-suites cargo test --locked --workspace ${SLOW_ARGS[1]} -- --show-output --test-threads 4
}
group 3-other-tests cargo test --locked --workspace --lib --bins "${REST_ARGS[@]}" -- --show-output --test-threads 4
for _ in $(seq 600); do # cargo prints "Running" once it has let go of the build lock
  running=0
  for name in "${NAMES[@]}"; do grep -qs Running "$LOGS/$name.log" && running=$((running + 1)); done
  [ "$running" = "${#NAMES[@]}" ] && break
  sleep 0.1
done
group 4-doc-and-production bash -c 'cargo test --locked --workspace --doc &&
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
