#!/usr/bin/env bash
# Copies the contract's ABI and bytecode from forge's artifact into agent/chain/abi/, where `sol!` reads them.
# The agent builds without Foundry; a test checks that this committed copy matches a fresh `forge build`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/contracts/out/UpgradeOperator.sol/UpgradeOperator.json"
DST="$ROOT/agent/chain/abi/UpgradeOperator.json"
mkdir -p "$(dirname "$DST")"
CHECK="${1:-}"
node -e '
const fs = require("fs");
const check = process.argv[3] === "--check";
const a = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
const out = { abi: a.abi, bytecode: { object: a.bytecode.object }, deployedBytecode: { object: a.deployedBytecode.object } };
const text = JSON.stringify(out, null, 1) + "\n";
const prev = fs.existsSync(process.argv[2]) ? fs.readFileSync(process.argv[2], "utf8") : "";
if (prev !== text) {
  if (check) { console.error("[sync-abi] agent/chain/abi/UpgradeOperator.json is stale: run script/sync-abi.sh and commit it"); process.exit(1); }
  fs.writeFileSync(process.argv[2], text); console.error("[sync-abi] updated " + process.argv[2]);
} else if (check) { console.error("[sync-abi] agent ABI matches the contract"); }
' "$SRC" "$DST" "$CHECK"
