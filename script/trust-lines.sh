#!/usr/bin/env bash
# Lines of the trust path (TRUST.md): non-blank, non-comment lines outside `#[cfg(test)]` modules.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
count() { awk '/^#\[cfg\(test\)\]/{exit} {print}' "$@" | grep -v '^\s*//' | grep -c . || true; }
sum() { local t=0 n; for f in "$@"; do n=$(count "$f"); t=$((t + n)); done; echo "$t"; }
kernel=$(sum $(find agent/core/src -name '*.rs' ! -name tests.rs | sort))
decide=$(sum agent/node/src/roles/holder/decide.rs agent/chain/src/state/proven.rs agent/chain/src/anchor.rs)
chain=$(sum agent/chain/src/{deployment,proof,layout,verified}.rs agent/chain/src/beacon/*.rs)
beacon=$(sum $(find agent/beacon/src -name '*.rs' ! -name sim.rs ! -name recorded.rs | sort))
# What the node trusts about itself: the compose reader and settings table, and the self-check that applies them.
measured=$(sum agent/compose/src/*.rs agent/node/src/config/measured.rs)
printf '%-46s %6d\n' "trust kernel (agent/core)" "$kernel" "decide step (decide.rs, proven.rs, anchor.rs)" "$decide" \
  "kernel + decide (goal <= 2500)" $((kernel + decide)) "verified chain (agent/chain)" "$chain" \
  "light client (agent/beacon)" "$beacon" "measured config (agent/compose, measured.rs)" "$measured" \
  "whole trust path (goal <= 4500)" $((kernel + decide + chain + beacon + measured))
