#!/usr/bin/env bash
# Demo (work in progress): sets up the toolchain and deploys UpgradeOperator to a local anvil.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash script/setup.sh
export PATH="$ROOT/.toolchain/bin:$PATH"
PORT=18545
anvil --silent --port "$PORT" --block-time 1 & ANVIL=$!
trap 'kill $ANVIL 2>/dev/null || true' EXIT
sleep 1
KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcc780a8fb6b0b6e2d9a
OWNER=$(cast wallet address --private-key $KEY)
forge create --rpc-url "http://127.0.0.1:$PORT" --private-key $KEY --broadcast \
  contracts/src/UpgradeOperator.sol:UpgradeOperator --constructor-args "$OWNER" 0 "(1,false,true)"
