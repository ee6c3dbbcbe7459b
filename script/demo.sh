#!/usr/bin/env bash
# The demo: a local chain, the contract, one genesis node and two new nodes handing a secret on
# through the contract alone; then a node running an unapproved app version is refused; then that
# version is approved, the first one revoked, and the cluster rotates to a new key and secret.
# Quotes are SIMULATED (this machine has no TDX); the contract's policy says so on chain.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SETUP_SKIP_CARGO=1 bash script/setup.sh
# The shipped binary with its `simulated` feature: this machine has no TDX (a release build has none).
printf '\033[1;34m[demo]\033[0m building replicatoor with the simulated feature (minutes on a fresh machine)\n' >&2
cargo build -p replicatoor --features simulated --bin replicatoor
export PATH="$ROOT/.toolchain/bin:$ROOT/target/debug:$PATH"

say() { printf '\n\033[1;32m▶ %s\033[0m\n' "$*"; }
WORK="$(mktemp -d -t replicatoor-demo.XXXXXX)"
PORT="${DEMO_PORT:-18545}"
RPC="http://127.0.0.1:$PORT"
PIDS=()
# Stop the agents first (SIGTERM: graceful), then the chain.
cleanup() { for ((i=${#PIDS[@]}-1; i>=0; i--)); do kill "${PIDS[i]}" 2>/dev/null || true; sleep 0.1; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# anvil's well-known development keys (never use them anywhere else).
KEYS=(0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
      0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
      0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a
      0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6
      0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a)
OWNER_KEY=${KEYS[0]}

say "Starting a local chain (anvil, 1 s blocks) on $RPC"
anvil --silent --port "$PORT" --block-time 1 & PIDS+=($!)
for _ in $(seq 50); do cast block-number --rpc-url "$RPC" >/dev/null 2>&1 && break; sleep 0.2; done

say "Deploying UpgradeOperator (policy: UpToDate TCB only, SIMULATED quotes allowed, no timelock: demo settings)"
# The collateral floor is the simulated PKI's TCB evaluation (17): `deploy`'s default, the newest real one, is above it.
read -r CONTRACT START < <(replicatoor deploy --rpc-url "$RPC" --sender-key "$OWNER_KEY" --allow-simulated --widening-delay 0 \
  --min-tcb-evaluation-data-number 17 --json \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(j.address,j.block)})')
echo "contract $CONTRACT (block $START)"
admin() { replicatoor admin "$@" --rpc-url "$RPC" --contract "$CONTRACT" --sender-key "$OWNER_KEY"; }

say "Starting a SIMULATED beacon for the chain: agents are pinned to it and decide only on proven state"
replicatoor dev beacon --rpc-url "$RPC" --listen "127.0.0.1:$((PORT + 1))" --contract "$CONTRACT" --start-block "$START" \
  --pin-file "$WORK/deployment.toml" >"$WORK/beacon.log" 2>&1 & PIDS+=($!)
for _ in $(seq 120); do [ -s "$WORK/deployment.toml" ] && break; sleep 0.25; done
[ -s "$WORK/deployment.toml" ] || { cat "$WORK/beacon.log" >&2; echo "the simulated beacon did not start" >&2; exit 1; }
sed 's/^/  /' "$WORK/deployment.toml"

say "The app's compose: the app and the agent beside it, the pin and every security setting written in it (measured)"
# Two versions: v1 (approved below) and v2 (never approved). Each runs in its own simulated CVM: a guest
# agent that serves the compose through Info and measures its hash into every quote. Nodes take their
# security settings from it (relative paths: each node runs in its own directory) and only transport
# (RPC, sender key, beacon URL, health port) and their role from the operator.
bash script/dev-compose.sh "$WORK/deployment.toml" "$WORK/v1.sock" state secret.bin example/app:1.0 >"$WORK/app-v1.json"
bash script/dev-compose.sh "$WORK/deployment.toml" "$WORK/v2.sock" state secret.bin example/app:2.0 >"$WORK/app-v2.json"
replicatoor measure --compose "$WORK/app-v1.json" | grep -E '^(compose_hash|trust_mode|agent_service|self_measured)' | sed 's/^/  /'
for v in v1 v2; do
  replicatoor dev guest-agent --socket "$WORK/$v.sock" --compose "$WORK/app-$v.json" >"$WORK/guest-agent-$v.log" 2>&1 & PIDS+=($!)
done
for v in v1 v2; do for _ in $(seq 80); do [ -S "$WORK/$v.sock" ] && break; sleep 0.25; done; done

say "Owner approves the reference values: the (simulated) OS image and the app's compose v1"
admin propose-os --simulated --note "simulated Dstack OS image"
admin propose-app --compose "$WORK/app-v1.json" --note "demo app v1.0" 2>/dev/null
replicatoor admin list --rpc-url "$RPC" --contract "$CONTRACT" 2>/dev/null | sed 's/^/  /'

# Each node's health/metrics port, by name: node_run runs in a background subshell, so a counter it
# incremented would not carry over to the next node.
http_port() { case $1 in genesis) echo $((PORT + 101)) ;; node-a) echo $((PORT + 102)) ;; node-b) echo $((PORT + 103)) ;; *) echo $((PORT + 104)) ;; esac; }
node_run() { # name key app-version extra-args...
  local name=$1 key=$2 version=$3; shift 3
  mkdir -p "$WORK/$name" && cd "$WORK/$name"
  REPLICATOOR_RPC_URL="$RPC" REPLICATOOR_SENDER_KEY="$key" REPLICATOOR_BEACON_URL="http://127.0.0.1:$((PORT + 1))" \
    REPLICATOOR_HTTP_ADDR="127.0.0.1:$(http_port "$name")" \
    exec replicatoor run --dstack-socket "$WORK/$version.sock" "$@" >"$WORK/$name/agent.log" 2>&1
}
wait_file() { for _ in $(seq 240); do [ -s "$1" ] && return 0; sleep 0.25; done; echo "timed out waiting for $1" >&2; exit 1; }

say "Genesis node creates the cluster key and a random secret, and proposes genesis with its quote"
node_run genesis "${KEYS[1]}" v1 --genesis --generate-secret 64 & PIDS+=($!)
for _ in $(seq 120); do [ "$(cast call "$CONTRACT" 'genesisCount()(uint256)' --rpc-url "$RPC")" = 1 ] && break; sleep 0.25; done
say "Owner verifies the genesis quote and approves it"
admin approve-genesis --proposal 1 --allow-simulated-quotes --note "demo genesis"
wait_file "$WORK/genesis/secret.bin"

say "Two new nodes request the secret; holders verify their quotes and deliver it through the contract"
node_run node-a "${KEYS[2]}" v1 & PIDS+=($!)
node_run node-b "${KEYS[3]}" v1 & PIDS+=($!)
wait_file "$WORK/node-a/secret.bin"; wait_file "$WORK/node-b/secret.bin"

say "Every copy of the secret (sha256 only; the secret itself is never printed):"
for n in genesis node-a node-b; do printf '  %-8s %s\n' "$n" "$(sha256sum "$WORK/$n/secret.bin" | cut -d' ' -f1)"; done
[ "$(sha256sum "$WORK"/{genesis,node-a,node-b}/secret.bin | cut -d' ' -f1 | sort -u | wc -l)" = 1 ] \
  && echo "  ✔ all three nodes hold the same secret" || { echo "  ✘ copies differ"; exit 1; }
# The holder logs a delivery once its receipt is back, which can be just after the new node installed it.
for _ in $(seq 40); do [ "$(cat "$WORK"/*/agent.log | grep -c "secret delivered" || true)" -ge 2 ] && break; sleep 0.25; done
grep -h -m 2 "secret delivered" "$WORK"/*/agent.log | sed 's/^/  /' || true
echo "  genesis node metrics (http://127.0.0.1:$((PORT + 101))/metrics):"
metrics=$(curl -s "http://127.0.0.1:$((PORT + 101))/metrics" || true)
grep -E '^replicatoor_(requests_(seen|served)_total|role|trust_mode|config_self_measured)' <<<"$metrics" | sed 's/^/    /' || true

grep -h -m 1 "security settings are the measured compose's" "$WORK/node-a/agent.log" | sed 's/^/  /' || true

say "Second wave: a node running an UNAPPROVED app version (compose v2) asks for the secret"
set +e
(node_run node-c "${KEYS[4]}" v2 --exit-after-install)
code=$?
set -e
echo "  node-c exited with code $code (3 = refused)"
grep -h -m 2 "REFUSED\|refusing request" "$WORK"/*/agent.log | sed 's/^/  /' || true
[ -e "$WORK/node-c/secret.bin" ] && { echo "  ✘ node-c got a secret file"; exit 1; } || echo "  ✔ node-c has no secret file"

say "Third wave: v2 is approved and a v2 node joins; then v1 is found vulnerable, revoked, and the owner rotates"
admin propose-app --compose "$WORK/app-v2.json" --note "demo app v2.0" 2>/dev/null
node_run node-d "${KEYS[4]}" v2 & PIDS+=($!)
wait_file "$WORK/node-d/secret.bin"
echo "  node-d (v2) holds the epoch-1 secret"
v1_ref=$(replicatoor measure --compose "$WORK/app-v1.json" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).app_reference_id))')
admin revoke --id "$v1_ref" --note "v1.0 is vulnerable" 2>/dev/null
# A holder on an allowed build (node-d) makes a new cluster key and a new secret in its TD, and proposes them with
# its quote and the current cluster key's endorsement; the v1 holders, revoked, propose nothing.
admin rotate start --note "after revoking v1.0" 2>/dev/null
for _ in $(seq 240); do [ "$(cast call "$CONTRACT" 'genesisCount()(uint256)' --rpc-url "$RPC")" = 2 ] && break; sleep 0.25; done
say "Owner verifies the rotation proposal (its record, the endorsement, its quote) and approves it: in force at once"
admin rotate approve 2 --allow-simulated-quotes --note "rotate away from v1.0"
for _ in $(seq 240); do grep -q "rotation approved" "$WORK/node-d/agent.log" && break; sleep 0.25; done
echo "  epoch $(cast call "$CONTRACT" 'epoch()(uint64)' --rpc-url "$RPC"), cluster $(cast call "$CONTRACT" 'cluster()(address)' --rpc-url "$RPC")"
echo "  node-d's app sees (examples/keyring-app):"
python3 examples/keyring-app/app.py --secret-file "$WORK/node-d/secret.bin" status | sed 's/^/    /'
[ "$(sha256sum "$WORK"/{genesis,node-d}/secret.bin | cut -d' ' -f1 | sort -u | wc -l)" = 2 ] \
  && echo "  ✔ node-d holds a new secret; the old one is in its keyring" || { echo "  ✘ no new secret"; exit 1; }
# The v1 holders stop serving and ask for epoch 2 like new nodes: refused, their build is revoked.
for n in genesis node-a node-b; do
  for _ in $(seq 240); do grep -q "REFUSED" "$WORK/$n/agent.log" && break; sleep 0.25; done
  grep -q "REFUSED" "$WORK/$n/agent.log" && printf '  ✔ %-8s (v1) refused epoch 2; it keeps only the epoch-1 secret\n' "$n" \
    || { echo "  ✘ $n was not refused"; exit 1; }
done
say "Done. Logs and state are in $WORK"
