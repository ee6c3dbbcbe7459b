#!/usr/bin/env bash
# The one test command (README, .ci/run): installs the toolchain if needed, then runs every test:
# contract tests (forge), ABI drift check, formatting and lints, Rust unit and end-to-end tests, and the
# container image built and run in a Docker engine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SETUP_SKIP_CARGO=1 bash script/setup.sh
export PATH="$ROOT/.toolchain/bin:$PATH"

step() { printf '\n\033[1;34m== %s\033[0m\n' "$*"; }

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
# The anvil suites mostly wait on 1 s blocks: four test threads on two cores cut their wall time.
cargo test --workspace -- --show-output --test-threads 4

step "The container image, built and run (script/container-test.sh)"
bash script/container-test.sh
