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

step "ABI used by the agent matches the contract"
bash script/sync-abi.sh --check

step "format and lints"
cargo fmt --all --check
forge fmt --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "headless Chromium for the audit HTML report test"
command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

step "Rust unit and end-to-end tests"
cargo test --workspace --no-run
# The anvil suites mostly wait on 1 s blocks: four test threads on two cores cut their wall time, and the
# container step's release build (minutes of CPU) runs beside them at the lowest priority, in the target
# directory script/container-test.sh builds it in (target/image), which then finds it done.
nice -n 19 env CARGO_TARGET_DIR="$ROOT/target/image" cargo build --release --locked --quiet \
  >"$ROOT/target/image-build.log" 2>&1 &
IMAGE_BUILD=$!
trap 'kill "$IMAGE_BUILD" 2>/dev/null || true' EXIT
cargo test --workspace -- --show-output --test-threads 4
# A failed background build is built again, with its errors shown, by the container step.
wait "$IMAGE_BUILD" || echo "(the background release build failed; the container step builds it again)"
trap - EXIT

step "The container image, built and run (script/container-test.sh)"
bash script/container-test.sh
step "done"
