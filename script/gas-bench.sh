#!/usr/bin/env bash
# Gas bench for UpgradeOperator's message bus on a throwaway local anvil.
#
# Deploys the contract (owner = anvil account 0, widening delay 0, policy (1,false,false)), sets up an OS and an
# app reference and a cluster, then measures the gas of requestSecret, deliverSecret and refuseRequest and compares
# each with its EIP-7623 calldata floor: 21000 + 10 * (zero bytes + 4 * non-zero bytes) of the transaction input.
# Prints a table and writes the same figures to bench/gas.json. A bench, not a test: no assertions on the figures.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$ROOT/.toolchain/bin:$PATH"
for t in forge anvil cast; do
  command -v "$t" >/dev/null 2>&1 || { echo "gas-bench: '$t' missing; run script/setup.sh first" >&2; exit 1; }
done

# Anvil's well-known development keys (public test keys, never use them for anything real).
OWNER_PK=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80   # account 0: owner and relayer
CLUSTER_PK=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d # account 1: the cluster key
OWNER=$(cast wallet address --private-key "$OWNER_PK")
CLUSTER=$(cast wallet address --private-key "$CLUSTER_PK")

# ------------------------------------------------------------------ anvil on a free local port

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ANVIL_PID=""
cleanup() {
  if [ -n "$ANVIL_PID" ]; then
    kill "$ANVIL_PID" 2>/dev/null || true
    wait "$ANVIL_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

RPC=""
for _ in 1 2 3 4 5; do
  PORT=$((18545 + RANDOM % 1000))
  port_busy "$PORT" && continue
  anvil --host 127.0.0.1 --port "$PORT" --silent &
  ANVIL_PID=$!
  for _ in $(seq 1 100); do
    if cast chain-id --rpc-url "http://127.0.0.1:$PORT" >/dev/null 2>&1; then RPC="http://127.0.0.1:$PORT"; break; fi
    kill -0 "$ANVIL_PID" 2>/dev/null || break # lost the port race: try another one
    sleep 0.05
  done
  [ -n "$RPC" ] && break
  cleanup
  ANVIL_PID=""
done
[ -n "$RPC" ] || { echo "gas-bench: could not start anvil" >&2; exit 1; }

# ------------------------------------------------------------------ helpers

# send SIG ARGS... -> prints the tx hash once mined; fails if the transaction reverted.
send() {
  local hash status
  hash=$(cast send --async --rpc-url "$RPC" --private-key "$OWNER_PK" "$OP" "$@")
  status=$(cast receipt --rpc-url "$RPC" "$hash" status)
  case "$status" in
    1 | 0x1 | true | *success*) echo "$hash" ;;
    *) echo "gas-bench: transaction $1 failed (status $status)" >&2; exit 1 ;;
  esac
}

call() { cast call --rpc-url "$RPC" "$OP" "$@"; }

# rand_hex N -> 0x followed by N random bytes.
rand_hex() { printf '0x%s' "$(head -c "$1" /dev/urandom | od -An -v -tx1 | tr -d ' \n')"; }

# ------------------------------------------------------------------ deploy and set up

OP=$(cd "$ROOT" && forge create --rpc-url "$RPC" --private-key "$OWNER_PK" --broadcast \
  contracts/src/UpgradeOperator.sol:UpgradeOperator \
  --constructor-args "$OWNER" 0 "(1,false,false)" | awk '/Deployed to:/ {print $3}')
[ -n "$OP" ] || { echo "gas-bench: deployment failed" >&2; exit 1; }

M=(); for i in 0 1 2 3; do M+=("$(rand_hex 48)"); done
COMPOSE_HASH=$(rand_hex 32)
send "proposeOsReference(bytes,bytes,bytes,bytes,string)" "${M[@]}" "bench os" >/dev/null
send "proposeAppReference(bytes32,string)" "$COMPOSE_HASH" "bench app" >/dev/null
OS_REF=$(call "osReferenceId(bytes,bytes,bytes,bytes)(bytes32)" "${M[@]}")
APP_REF=$(call "appReferenceId(bytes32)(bytes32)" "$COMPOSE_HASH")
send "proposeGenesis(address,bytes,bytes)" "$CLUSTER" "$(rand_hex 5000)" "$(rand_hex 3000)" >/dev/null
send "approveGenesis(uint256,bytes32,bytes32,string)" 1 "$OS_REF" "$APP_REF" "bench genesis" >/dev/null

# ------------------------------------------------------------------ measured transactions

# 1. requestSecret: 5,000-byte quote, 3,000-byte event log.
H_REQ=$(send "requestSecret(bytes32,bytes,bytes)" "$(rand_hex 32)" "$(rand_hex 5000)" "$(rand_hex 3000)")
REQ_ID=$(call "requestCount()(uint256)")

# 2. deliverSecret of a 1 KiB bundle: 32-byte encapsulated key, 1024 + 61 bytes of ciphertext (header + AEAD tag).
EK=$(rand_hex 32)
CT=$(rand_hex $((1024 + 61)))
DIGEST=$(call "deliveryDigest(uint256,bytes32,bytes32,bytes,bytes)(bytes32)" "$REQ_ID" "$OS_REF" "$APP_REF" "$EK" "$CT")
SIG=$(cast wallet sign --no-hash --private-key "$CLUSTER_PK" "$DIGEST")
H_DEL=$(send "deliverSecret(uint256,bytes32,bytes32,bytes,bytes,bytes)" "$REQ_ID" "$OS_REF" "$APP_REF" "$EK" "$CT" "$SIG")

# 3. refuseRequest of a second request (same sizes as the first).
send "requestSecret(bytes32,bytes,bytes)" "$(rand_hex 32)" "$(rand_hex 5000)" "$(rand_hex 3000)" >/dev/null
REQ2_ID=$(call "requestCount()(uint256)")
REASON=1
DIGEST=$(call "refusalDigest(uint256,uint8)(bytes32)" "$REQ2_ID" "$REASON")
SIG=$(cast wallet sign --no-hash --private-key "$CLUSTER_PK" "$DIGEST")
H_REF=$(send "refuseRequest(uint256,uint8,bytes)" "$REQ2_ID" "$REASON" "$SIG")

# ------------------------------------------------------------------ report

ROWS=()
measure() { # measure NAME HASH GOAL
  local name=$1 hash=$2 goal=$3 input hex bytes zeros gas floor ratio
  input=$(cast tx --rpc-url "$RPC" "$hash" input)
  hex=${input#0x}
  bytes=$((${#hex} / 2))
  zeros=$(printf '%s' "$hex" | fold -w2 | grep -c '^00$' || true)
  gas=$(cast receipt --rpc-url "$RPC" "$hash" gasUsed)
  gas=$(cast to-dec "$gas" 2>/dev/null || echo "$gas")
  floor=$((21000 + 10 * (zeros + 4 * (bytes - zeros))))
  ratio=$(awk -v g="$gas" -v f="$floor" 'BEGIN { printf "%.3f", g / f }')
  ROWS+=("$name|$bytes|$gas|$floor|$ratio|$goal")
}
measure requestSecret "$H_REQ" "<= 1.15"
measure deliverSecret "$H_DEL" "<= 1.15"
measure refuseRequest "$H_REF" "-"

printf '%-14s %14s %10s %10s %7s %8s\n' operation calldata_bytes gas_used floor ratio goal
for row in "${ROWS[@]}"; do
  IFS='|' read -r name bytes gas floor ratio goal <<<"$row"
  printf '%-14s %14s %10s %10s %7s %8s\n' "$name" "$bytes" "$gas" "$floor" "$ratio" "$goal"
done

mkdir -p "$ROOT/bench"
{
  printf '{\n  "note": "EIP-7623 floor = 21000 + 10 * (zero bytes + 4 * non-zero bytes) of the tx input; ratio = gas_used / floor",\n'
  printf '  "operations": [\n'
  n=${#ROWS[@]}
  for i in "${!ROWS[@]}"; do
    IFS='|' read -r name bytes gas floor ratio goal <<<"${ROWS[$i]}"
    if [ "$goal" = "-" ]; then goal_json=null; else goal_json=1.15; fi
    sep=','; [ "$i" -eq $((n - 1)) ] && sep=''
    printf '    {"operation": "%s", "calldata_bytes": %s, "gas_used": %s, "floor": %s, "ratio": %s, "goal_max_ratio": %s}%s\n' \
      "$name" "$bytes" "$gas" "$floor" "$ratio" "$goal_json" "$sep"
  done
  printf '  ]\n}\n'
} >"$ROOT/bench/gas.json"
echo "wrote bench/gas.json"
