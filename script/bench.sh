#!/usr/bin/env bash
# The whole benchmark in one command, on a fresh machine: installs what it needs, then measures
#   1. gas of every message against its EIP-7623 calldata floor (script/gas-bench.sh),
#   2. holder pipeline throughput without the chain (cargo bench --bench pipeline),
#   3. end to end on anvil (1 s blocks) with real `replicatoor run` holders: one request, then a burst,
#   4. catch-up over ~100,000 blocks of history, and holder memory (RSS),
#   5. the peer baseline: the Python replicatoor's per-request crypto path (PyNaCl + dcap-qvl),
# prints one table (figure, value, goal, met?) and writes bench/results.json (+ bench/results.md).
# A bench, not a test: nothing fails on a figure. Knobs: BENCH_BURST (200), BENCH_MINE (20000; anvil 1.7.1
# mines in time that grows with the chain's length, so 100,000 blocks take over 20 minutes on 2 cores),
# BENCH_SECONDS (1.5 s per pipeline case), BENCH_PARTS ("pipeline python gas e2e", a subset to rerun; add
# "flood" for the junk flood of issue 26, BENCH_FLOOD_SECONDS long, 180 by default; "image" for the production
# image's size with a release binary).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
T_START=$(date +%s)
BURST=${BENCH_BURST:-200}
MINE=${BENCH_MINE:-20000}
export BENCH_SECONDS=${BENCH_SECONDS:-1.5}
PARTS=" ${BENCH_PARTS:-pipeline python gas e2e} "
part() { [[ "$PARTS" == *" $1 "* ]]; }
OUT="$ROOT/bench/tmp"
[ -z "${BENCH_PARTS:-}" ] && rm -rf "$OUT"
mkdir -p "$OUT"
cut -d' ' -f1-3 /proc/loadavg >"$OUT/loadavg-start.txt" # other work on the machine skews timings
log() { printf '\033[1;34m[bench %3ss]\033[0m %s\n' "$(($(date +%s) - T_START))" "$*" >&2; }

# ------------------------------------------------------------------ install and build

# BENCH_SKIP_SETUP=1: the toolchain and contracts are already in place (a shared .toolchain/).
[ "${BENCH_SKIP_SETUP:-0}" = 1 ] || SETUP_SKIP_CARGO=1 bash script/setup.sh
export PATH="$ROOT/.toolchain/bin:$PATH"
for t in curl python3; do command -v "$t" >/dev/null || { echo "bench: '$t' is required" >&2; exit 1; }; done
if part python; then # the Python baseline's packages; no other part needs them
  if [ ! -x bench/.venv/bin/python ]; then
    log "creating bench/.venv"
    python3 -m venv bench/.venv
  fi
  log "installing the Python baseline's packages (bench/requirements.txt)"
  bench/.venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
fi
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  # One invocation, in the bench profile (= release, same target/release directory), so that
  # `cargo bench` below reuses the library instead of building it a second time with LTO.
  log "building (bench profile = release): replicatoor-dev (simulated quotes), the bench_chain example, the pipeline bench"
  cargo build --profile bench -p replicatoor-tests --bin replicatoor-dev --example bench_chain
  cargo build --profile bench -p replicatoor-core --bench pipeline
fi
BIN="$ROOT/target/release/replicatoor-dev"
CHAINB="$ROOT/target/release/examples/bench_chain"
T_BUILT=$(date +%s)

# ------------------------------------------------------------------ 2 and 5: off-chain throughput

if part pipeline; then
  log "pipeline bench (single thread, ${BENCH_SECONDS} s per case)"
  PIPELINE_BENCH_OUT="$OUT/pipeline.json" cargo bench --quiet -p replicatoor-core --bench pipeline
fi
if part python; then
  log "Python baseline (PyNaCl sealed box + dcap-qvl from PyPI)"
  bench/.venv/bin/python bench/python_baseline.py --seconds "$BENCH_SECONDS" --out "$OUT/python.json" >/dev/null
fi

# Run figures (key=value) for the report; defined for every BENCH_PARTS subset.
E2E="$OUT/e2e.env"
: >"$E2E"
kv() { echo "$1=$2" >>"$E2E"; }

# ------------------------------------------------------------------ 1: gas

if part gas; then
  log "gas bench"
  GAS_BENCH_OUT="$OUT/gas.json" GAS_BENCH_SKIP_BUILD=1 bash script/gas-bench.sh
fi

# ------------------------------------------------------------------ 3 and 4: end to end on anvil

# anvil, the contract, both references, a simulated beacon every agent is pinned to, and the helpers
# the end-to-end parts share (start_agent, metric, rss_kb, ...).
setup_net() {
  # anvil's well-known development keys (public test keys, never use them for anything real).
  K0=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 # deployer and owner
  K1=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d # genesis holder
  K2=0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a # second holder
  COMPOSE="$ROOT/examples/app-compose.json"
  rm -rf "$OUT/holder-a" "$OUT/holder-b" "$OUT"/rss-burst.txt "$OUT"/catchup-progress.txt "$OUT/deployment.toml"
  [ -n "${PIDS+x}" ] || PIDS=()
  cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null || true; done
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do wait "${PIDS[i]}" 2>/dev/null || true; done
  }
  trap cleanup EXIT

  port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
  # Below the kernel's ephemeral range, where outgoing connections take their local ports.
  free_port() {
    local p low
    low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$low" -gt 11000 ] 2>/dev/null || low=32768
    while :; do
      p=$((10000 + RANDOM % (low - 10000)))
      port_busy "$p" || { echo "$p"; return; }
    done
  }

  RPC=""
  for _ in 1 2 3 4 5; do
    PORT=$(free_port)
    # Cancun (the contract's EVM target): anvil mines empty blocks ~5x faster than under Prague, which
    # the catch-up history needs; gas is measured separately (gas-bench.sh) under anvil's default fork.
    anvil --host 127.0.0.1 --port "$PORT" --block-time 1 --hardfork cancun --silent &
    ANVIL_PID=$!
    for _ in $(seq 1 100); do
      if cast chain-id --rpc-url "http://127.0.0.1:$PORT" >/dev/null 2>&1; then RPC="http://127.0.0.1:$PORT"; break; fi
      kill -0 "$ANVIL_PID" 2>/dev/null || break
      sleep 0.05
    done
    [ -n "$RPC" ] && { PIDS+=("$ANVIL_PID"); break; }
    kill "$ANVIL_PID" 2>/dev/null || true
  done
  [ -n "$RPC" ] || { echo "bench: could not start anvil" >&2; exit 1; }
  log "anvil (1 s blocks) on $RPC"

  # Floor 17: the simulated PKI's TCB evaluation (`deploy`'s default, the newest real one, is above it).
  read -r CONTRACT START < <("$BIN" deploy --rpc-url "$RPC" --sender-key "$K0" --allow-simulated --widening-delay 0 \
    --min-tcb-evaluation-data-number 17 --json |
    python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["address"], j["block"])')
  admin() { "$BIN" admin "$@" --rpc-url "$RPC" --contract "$CONTRACT" --sender-key "$K0" >/dev/null; }
  admin propose-os --simulated --note "simulated Dstack OS image"
  admin propose-app --compose "$COMPOSE" --note "bench app"
  log "contract $CONTRACT deployed at block $START, references approved"

  # Every agent is pinned to a simulated beacon: the figures include the verified chain view (light
  # client sync, storage and receipt proofs), as production nodes run it.
  BEACON_PORT=$(free_port)
  "$BIN" dev beacon --rpc-url "$RPC" --listen "127.0.0.1:$BEACON_PORT" --contract "$CONTRACT" --start-block "$START" \
    --pin-file "$OUT/deployment.toml" >"$OUT/beacon.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 120); do [ -s "$OUT/deployment.toml" ] && break; sleep 0.25; done
  [ -s "$OUT/deployment.toml" ] || { cat "$OUT/beacon.log" >&2; echo "bench: the simulated beacon did not start" >&2; exit 1; }
  REPLICATOOR_DEPLOYMENT="$(cat "$OUT/deployment.toml")"
  export REPLICATOOR_DEPLOYMENT REPLICATOOR_BEACON_URL="http://127.0.0.1:$BEACON_PORT"
  log "agents pinned to a simulated beacon on $REPLICATOOR_BEACON_URL"

  # start_agent NAME KEY HTTP_PORT [extra flags...]: the real binary, release build; sets AGENT_PID.
  start_agent() {
    local name=$1 key=$2 http=$3
    shift 3
    mkdir -p "$OUT/$name"
    REPLICATOOR_SENDER_KEY="$key" "$BIN" run --rpc-url "$RPC" --contract "$CONTRACT" --start-block "$START" \
      --state-dir "$OUT/$name/state" --secret-file "$OUT/$name/secret.bin" \
      --quote-provider simulated --allow-simulated-quotes --app-compose "$COMPOSE" \
      --confirmations 1 --poll-interval-ms 200 --http-addr "127.0.0.1:$http" "$@" >>"$OUT/$name/agent.log" 2>&1 &
    AGENT_PID=$!
    PIDS+=("$AGENT_PID")
  }
  wait_for() { # wait_for SECONDS WHAT COMMAND...
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 10; i++)); do "$@" && return 0; sleep 0.1; done
    echo "bench: timed out waiting for $what" >&2
    exit 1
  }
  metric() { # metric PORT NAME -> value (empty if the endpoint is down)
    curl -s --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null | awk -v n="$2" '$1 == n { print $2 }' || true
  }
  reached() { # reached PORT BLOCK: the holder's last processed block is at least BLOCK
    local cp
    cp=$(metric "$1" replicatoor_last_processed_block)
    [ -n "$cp" ] && [ "$cp" -ge "$2" ]
  }
  genesis_proposed() { [ "$(cast call "$CONTRACT" 'genesisCount()(uint256)' --rpc-url "$RPC")" = 1 ]; }
  # Captured, then searched: `curl | grep -q` under pipefail fails on curl's SIGPIPE once grep exits early.
  serving() { local m; m=$(curl -s "http://127.0.0.1:$1/metrics") && grep -q 'role="holder"' <<<"$m"; }
  rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
  hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
  stop_agent() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
}

run_e2e() {
  setup_net
  HTTP_A=$(free_port)
  start_agent holder-a "$K1" "$HTTP_A" --genesis --generate-secret 64
  PID_A=$AGENT_PID
  wait_for 60 "the genesis proposal" genesis_proposed
  admin approve-genesis --proposal 1 --allow-simulated-quotes --note "bench genesis"
  wait_for 60 "the genesis holder's secret" test -s "$OUT/holder-a/secret.bin"
  HTTP_B=$(free_port)
  while [ "$HTTP_B" = "$HTTP_A" ]; do HTTP_B=$(free_port); done
  start_agent holder-b "$K2" "$HTTP_B"
  PID_B=$AGENT_PID
  wait_for 90 "the second holder's secret" test -s "$OUT/holder-b/secret.bin"
  wait_for 30 "holder-b serving" serving "$HTTP_B"
  log "two holders serving (pids $PID_A, $PID_B)"

  log "one request"
  "$CHAINB" --rpc-url "$RPC" burst --contract "$CONTRACT" --compose "$COMPOSE" --n 1 --timeout-secs 60 \
    --out "$OUT/single.json" >/dev/null
  # A holder learns the other holders from their answers (a running cluster's steady state). Until
  # holder-b has answered one request the genesis holder races it for every request: one at a time
  # until it has (each request's first holder is fixed by its id, so a few tries suffice).
  served_b() { [ "$(metric "$HTTP_B" replicatoor_requests_served_total)" -ge 1 ] 2>/dev/null; }
  for i in 1 2 3 4 5 6 7 8; do
    served_b && break
    "$CHAINB" --rpc-url "$RPC" burst --contract "$CONTRACT" --compose "$COMPOSE" --n 1 --timeout-secs 60 \
      --out "$OUT/warmup.json" >/dev/null
  done
  kv warmup_requests "$((i - 1))"
  sleep 2 # holder-b's answer reaches the genesis holder's follower

  log "burst of $BURST requests from $BURST new identities"
  LOST0=$(($(metric "$HTTP_A" replicatoor_requests_lost_race_total) + $(metric "$HTTP_B" replicatoor_requests_lost_race_total)))
  ( # sample both holders' RSS while the burst lasts
    while :; do echo "$(rss_kb "$PID_A") $(rss_kb "$PID_B")" >>"$OUT/rss-burst.txt"; sleep 0.5; done
  ) &
  SAMPLER=$!
  PIDS+=("$SAMPLER")
  "$CHAINB" --rpc-url "$RPC" burst --contract "$CONTRACT" --compose "$COMPOSE" --n "$BURST" --timeout-secs 480 \
    --out "$OUT/burst.json" >/dev/null
  kill "$SAMPLER" 2>/dev/null || true
  sleep 2 # holders record an answer when its receipt reaches their next step, after the chain shows it
  kv burst_rss_end_kb_a "$(rss_kb "$PID_A")"
  kv burst_rss_end_kb_b "$(rss_kb "$PID_B")"
  kv burst_rss_max_kb "$(awk '{ for (i = 1; i <= NF; i++) if ($i > m) m = $i } END { print m + 0 }' "$OUT/rss-burst.txt")"
  kv burst_hwm_kb_a "$(hwm_kb "$PID_A")"
  kv burst_lost_race "$(($(metric "$HTTP_A" replicatoor_requests_lost_race_total) + $(metric "$HTTP_B" replicatoor_requests_lost_race_total) - LOST0))"
  kv burst_served_a "$(metric "$HTTP_A" replicatoor_requests_served_total)"
  kv burst_served_b "$(metric "$HTTP_B" replicatoor_requests_served_total)"
  kv burst_deferred "$(($(metric "$HTTP_A" replicatoor_requests_deferred_total) + $(metric "$HTTP_B" replicatoor_requests_deferred_total)))"

  log "catch-up: holders stopped; requests posted around $MINE mined blocks"
  HEAD=$(cast block-number --rpc-url "$RPC")
  wait_for 60 "holder-a to finish the burst's blocks" reached "$HTTP_A" $((HEAD - 2))
  CP_BEFORE=$(metric "$HTTP_A" replicatoor_last_processed_block)
  stop_agent "$PID_A"
  stop_agent "$PID_B"
  "$CHAINB" --rpc-url "$RPC" post --contract "$CONTRACT" --compose "$COMPOSE" --n 5 --out "$OUT/sprinkle-before.json" >/dev/null
  T0=$(date +%s.%N)
  curl -s --max-time 3600 -H 'content-type: application/json' "$RPC" \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"anvil_mine\",\"params\":[\"$(printf '0x%x' "$MINE")\"]}" >/dev/null
  kv mine_seconds "$(python3 -c "import time; print(round(time.time() - $T0, 2))")"
  "$CHAINB" --rpc-url "$RPC" post --contract "$CONTRACT" --compose "$COMPOSE" --n 5 --out "$OUT/sprinkle-after.json" >/dev/null
  HEAD=$(cast block-number --rpc-url "$RPC")
  kv catchup_from_block "$CP_BEFORE"
  kv catchup_head_at_start "$HEAD"
  T0=$(date +%s.%N)
  start_agent holder-a "$K1" "$HTTP_A"
  PID_A=$AGENT_PID
  : >"$OUT/catchup-progress.txt"
  CAUGHT=""
  for _ in $(seq 1 3000); do # at most ~300 s
    cp=$(metric "$HTTP_A" replicatoor_last_processed_block)
    now=$(date +%s.%N)
    [ -n "$cp" ] && echo "$now $cp" >>"$OUT/catchup-progress.txt"
    if [ -n "$cp" ] && [ "$cp" -ge $((HEAD - 1)) ]; then CAUGHT=$now; break; fi
    sleep 0.1
  done
  if [ -n "$CAUGHT" ]; then
    kv catchup_seconds "$(python3 -c "print(round($CAUGHT - $T0, 2))")"
  else
    kv catchup_seconds ""
  fi
  "$CHAINB" --rpc-url "$RPC" wait --contract "$CONTRACT" --compose "$COMPOSE" --no-failed-scan --timeout-secs 300 \
    --requests "$OUT/sprinkle-before.json" --requests "$OUT/sprinkle-after.json" --out "$OUT/sprinkle.json" >/dev/null
  kv catchup_deferred "$(metric "$HTTP_A" replicatoor_requests_deferred_total)"
  sleep 5 # idle: caught up, every request answered
  kv idle_rss_kb "$(rss_kb "$PID_A")"
  kv idle_hwm_kb "$(hwm_kb "$PID_A")"
  stop_agent "$PID_A"
}
part e2e && run_e2e

# ------------------------------------------------------------------ junk flood (opt-in: BENCH_PARTS=flood)

# Issue 26's attacker: junk requests (half garbage, half simulated quotes bound to another requester)
# posted for BENCH_FLOOD_SECONDS (180) as fast as anvil takes them, from 8 accounts, against one
# pinned holder (release build, default budgets); a genuine request halfway through. Figures: the
# genuine request's post-to-delivery time during the flood against the same without it (goal: at most
# 3x), the holder's peak RSS (goal: 64 MiB), junk evaluated per second of the holder's triage (goal:
# 1,000), and the refusal gas it spent. A shorter run: BENCH_FLOOD_SECONDS=60 BENCH_PARTS=flood.
run_flood() {
  local secs=${BENCH_FLOOD_SECONDS:-180} http pid sampler
  setup_net
  rm -rf "$OUT/flood-holder" "$OUT"/rss-flood.txt
  http=$(free_port)
  start_agent flood-holder "$K1" "$http" --genesis --generate-secret 64
  pid=$AGENT_PID
  wait_for 60 "the genesis proposal" genesis_proposed
  admin approve-genesis --proposal 1 --allow-simulated-quotes --note "bench flood genesis"
  wait_for 60 "the flood holder's secret" test -s "$OUT/flood-holder/secret.bin"
  wait_for 30 "the flood holder serving" serving "$http"
  log "flood: one genuine request without the flood"
  "$CHAINB" --rpc-url "$RPC" burst --contract "$CONTRACT" --compose "$COMPOSE" --n 1 --timeout-secs 120 \
    --out "$OUT/flood-baseline.json" >/dev/null
  ( while :; do rss_kb "$pid" >>"$OUT/rss-flood.txt"; sleep 0.5; done ) &
  sampler=$!
  PIDS+=("$sampler")
  log "flood: junk for ${secs} s, a genuine request after $((secs / 2)) s"
  "$CHAINB" --rpc-url "$RPC" junk --contract "$CONTRACT" --compose "$COMPOSE" --seconds "$secs" \
    --out "$OUT/flood-junk.json" >"$OUT/flood-junk.log" 2>&1 &
  local junk_pid=$!
  PIDS+=("$junk_pid")
  sleep $((secs / 2))
  "$CHAINB" --rpc-url "$RPC" burst --contract "$CONTRACT" --compose "$COMPOSE" --n 1 --timeout-secs 900 \
    --out "$OUT/flood-genuine.json" >/dev/null
  wait "$junk_pid" || { cat "$OUT/flood-junk.log" >&2; echo "bench: the junk poster failed" >&2; exit 1; }
  sleep 3 # the last junk reaches the holder's intake
  kill "$sampler" 2>/dev/null || true
  kv flood_seconds "$secs"
  kv flood_rss_max_kb "$(awk '$1 > m { m = $1 } END { print m + 0 }' "$OUT/rss-flood.txt")"
  kv flood_hwm_kb "$(hwm_kb "$pid")"
  for m in requests_triaged_total junk_triaged_total triage_microseconds_total refusal_gas_total \
    refusal_gas_budget_spent_total junk_queue junk_dropped_total; do
    kv "flood_$m" "$(metric "$http" "replicatoor_$m")"
  done
  kv flood_refused_total "$(curl -s "http://127.0.0.1:$http/metrics" | awk '/^replicatoor_requests_refused_total/ { s += $2 } END { print s + 0 }')"
  stop_agent "$pid"
}
part flood && run_flood

# ------------------------------------------------------------------ the production image (opt-in: BENCH_PARTS=image)

# The release binary without features, as the Dockerfile builds it, and the image it makes on the Debian base that
# script/container-test.sh builds (the image is the base plus one layer holding the binary). The container test
# itself runs a dev-profile binary, so its image size is not this figure.
if part image; then
  log "production binary: cargo build --release -p replicatoor (the Dockerfile's build)"
  cargo build --release --locked -p replicatoor
  kv release_binary_bytes "$(stat -c %s target/release/replicatoor)"
  base=$(docker image inspect --format '{{.Size}}' replicatoor-base:bookworm-1 2>/dev/null || true)
  if [ -n "$base" ]; then kv image_base_bytes "$base"; else log "no replicatoor-base image (run script/container-test.sh once): binary size only"; fi
fi

# ------------------------------------------------------------------ report

T_END=$(date +%s)
kv build_seconds $((T_BUILT - T_START))
kv total_seconds $((T_END - T_START))
python3 bench/report.py "$OUT" "$ROOT/bench/results.json" "$ROOT/bench/results.md"
log "done in $((T_END - T_START)) s (build and install $((T_BUILT - T_START)) s); logs in bench/tmp/"
