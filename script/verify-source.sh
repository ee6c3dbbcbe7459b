#!/usr/bin/env bash
# Writes what a block explorer's "Verify & Publish" (Solidity standard-JSON input) needs for UpgradeOperator,
# offline, and checks it: compiling the written input must give exactly the creation bytecode of this build
# (contracts/out, what `forge script script/Deploy.s.sol` deploys) and of agent/chain/abi (what `replicatoor deploy`
# deploys). See docs/deploy.md.
#
#   bash script/verify-source.sh [--out DIR] [--args] [--from-tx TX_HASH --rpc-url URL]
#
# Writes into DIR (default contracts/verify/):
#   UpgradeOperator.standard-input.json   the standard-JSON input (sources inlined, remappings resolved)
#   UpgradeOperator.verify.json           compiler version, contract name, optimizer, EVM version, license
#   UpgradeOperator.constructor-args.hex  ABI-encoded constructor arguments (hex, no 0x), with --args/--from-tx:
#     --args                 encode them from the deploy script's variables: OWNER (required: the owner at deployment),
#                            WIDENING_DELAY (86400), TCB_STATUSES (0x1), ALLOW_DEBUG (false), ALLOW_SIMULATED (false),
#                            MIN_TCB_EVALUATION_DATA_NUMBER (the deploy script's DEFAULT_MIN_TCB_EVALUATION_DATA_NUMBER)
#     --from-tx HASH         cut them from the deployment transaction's input (after checking that its creation code is
#                            exactly this build); with --args as well, both must agree
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$ROOT/.toolchain/bin:$PATH"
cd "$ROOT"

OUT="$ROOT/contracts/verify"
FROM_TX="" RPC_URL="" WITH_ARGS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --args) WITH_ARGS=1; shift ;;
    --from-tx) FROM_TX="$2"; shift 2 ;;
    --rpc-url) RPC_URL="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "verify-source: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$FROM_TX" ] && [ -z "$RPC_URL" ]; then echo "verify-source: --from-tx needs --rpc-url" >&2; exit 2; fi
for t in forge cast solc node; do
  command -v "$t" >/dev/null 2>&1 || { echo "verify-source: '$t' missing; run script/setup.sh first" >&2; exit 1; }
done
log() { printf '[verify-source] %s\n' "$*" >&2; }

TMP="$(mktemp -d -t replicatoor-verify.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT" "$TMP/empty"

# 1. Compile the contract alone with the project's settings, keeping forge's build info (it holds the exact input).
#    A separate out/cache dir leaves contracts/out alone.
log "compiling contracts/src/UpgradeOperator.sol with build info"
forge build contracts/src/UpgradeOperator.sol --build-info --out "$TMP/out" --cache-path "$TMP/cache" --quiet
BUILD_INFO="$(find "$TMP/out/build-info" -name '*.json' -print -quit)"  # not `| head`: SIGPIPE under pipefail
LONG_VERSION="$(solc --version | sed -n 's/^Version: \(.*\)$/\1/p')"

# 2. Standard-JSON input: only language/sources/settings; source names rewritten through the remappings
#    (".toolchain/node_modules/@openzeppelin/contracts/x.sol" -> "@openzeppelin/contracts/x.sol", which is what the
#    imports say), so the input needs no remappings and no file system.
node - "$BUILD_INFO" "$OUT" "$LONG_VERSION" <<'JS'
const fs = require('fs');
const [buildInfo, out, longVersion] = process.argv.slice(2);
const input = JSON.parse(fs.readFileSync(buildInfo, 'utf8')).input;
const remaps = (input.settings.remappings || []).map((r) => { const i = r.indexOf('='); return [r.slice(0, i), r.slice(i + 1)]; });
const rename = (p) => { for (const [from, to] of remaps) if (p.startsWith(to)) return from + p.slice(to.length); return p; };
const sources = {};
for (const name of Object.keys(input.sources).sort()) sources[rename(name)] = { content: input.sources[name].content };
const settings = { ...input.settings };
delete settings.remappings;
settings.outputSelection = { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object', 'metadata'] } };
const std = { language: input.language, sources, settings };
fs.writeFileSync(`${out}/UpgradeOperator.standard-input.json`, JSON.stringify(std, null, 1) + '\n');
const version = 'v' + longVersion.replace(/\.Emscripten\.clang$/, '');
const info = {
  contract: 'contracts/src/UpgradeOperator.sol:UpgradeOperator',
  compilerVersion: version,
  optimizer: settings.optimizer,
  evmVersion: settings.evmVersion,
  viaIR: settings.viaIR || false,
  license: 'Apache-2.0',
  constructor: 'constructor(address owner_, uint64 wideningDelay_, (uint16 tcbStatuses, bool allowDebug, bool allowSimulated, uint32 minTcbEvaluationDataNumber) initialPolicy)',
};
fs.writeFileSync(`${out}/UpgradeOperator.verify.json`, JSON.stringify(info, null, 1) + '\n');
JS
log "wrote $OUT/UpgradeOperator.standard-input.json"

# 3. Compile what we wrote, from an empty directory (nothing can be resolved from disk), and compare bytecode.
log "recompiling the standard-JSON input to check it"
(cd "$TMP/empty" && solc --standard-json < "$OUT/UpgradeOperator.standard-input.json" > "$TMP/compiled.json")
node - "$TMP/compiled.json" "$TMP/out/UpgradeOperator.sol/UpgradeOperator.json" "$ROOT/agent/chain/abi/UpgradeOperator.json" \
  "$TMP/creation.hex" <<'JS'
const fs = require('fs');
const [compiled, forgeArtifact, agentAbi, creationOut] = process.argv.slice(2);
const c = JSON.parse(fs.readFileSync(compiled, 'utf8'));
const errors = (c.errors || []).filter((e) => e.severity === 'error');
if (errors.length) { console.error(errors.map((e) => e.formattedMessage).join('\n')); process.exit(1); }
const got = c.contracts['contracts/src/UpgradeOperator.sol'].UpgradeOperator.evm.bytecode.object;
const strip = (s) => s.replace(/^0x/, '').toLowerCase();
const fromForge = strip(JSON.parse(fs.readFileSync(forgeArtifact, 'utf8')).bytecode.object);
if (strip(got) !== fromForge) { console.error('[verify-source] the standard-JSON input does not reproduce forge\'s bytecode'); process.exit(1); }
const agent = strip(JSON.parse(fs.readFileSync(agentAbi, 'utf8')).bytecode.object);
if (agent !== fromForge) {
  console.error('[verify-source] agent/chain/abi/UpgradeOperator.json is stale (run script/sync-abi.sh): `replicatoor deploy` would deploy other code');
  process.exit(1);
}
fs.writeFileSync(creationOut, fromForge);
console.error(`[verify-source] bytecode reproduced (${fromForge.length / 2} bytes of creation code)`);
JS

# 4. Constructor arguments.
ARGS_ENV="" ARGS_TX=""
SIG="constructor(address,uint64,(uint16,bool,bool,uint32))"
if [ "$WITH_ARGS" = 1 ]; then
  : "${OWNER:?verify-source --args: set OWNER to the owner the contract was deployed with}"
  # The floor's default is the deploy script's constant, read from it so the two cannot disagree.
  MIN_EVAL_DEFAULT="$(sed -n 's/.*DEFAULT_MIN_TCB_EVALUATION_DATA_NUMBER = \([0-9]*\);.*/\1/p' script/Deploy.s.sol)"
  [ -n "$MIN_EVAL_DEFAULT" ] || { echo "verify-source: no DEFAULT_MIN_TCB_EVALUATION_DATA_NUMBER in script/Deploy.s.sol" >&2; exit 1; }
  ARGS_ENV="$(cast abi-encode "$SIG" "$OWNER" "${WIDENING_DELAY:-86400}" \
    "($(cast to-dec "${TCB_STATUSES:-0x1}"),${ALLOW_DEBUG:-false},${ALLOW_SIMULATED:-false},${MIN_TCB_EVALUATION_DATA_NUMBER:-$MIN_EVAL_DEFAULT})")"
  ARGS_ENV="${ARGS_ENV#0x}"
fi
if [ -n "$FROM_TX" ]; then
  TO="$(cast tx "$FROM_TX" to --rpc-url "$RPC_URL")"
  case "$TO" in ""|null|0x|0x0000000000000000000000000000000000000000) ;;
    *) echo "verify-source: $FROM_TX is a call to $TO, not a contract creation" >&2; exit 1 ;; esac
  INPUT="$(cast tx "$FROM_TX" input --rpc-url "$RPC_URL")"
  INPUT="${INPUT#0x}"
  CREATION="$(cat "$TMP/creation.hex")"
  if [ "${INPUT:0:${#CREATION}}" != "$CREATION" ]; then
    echo "verify-source: the creation code of $FROM_TX is not this build of UpgradeOperator (other source or settings)" >&2
    exit 1
  fi
  ARGS_TX="${INPUT:${#CREATION}}"
  log "deployment $FROM_TX: creation code matches this build"
fi
if [ -n "$ARGS_ENV" ] && [ -n "$ARGS_TX" ] && [ "$ARGS_ENV" != "$ARGS_TX" ]; then
  echo "verify-source: the transaction's constructor arguments differ from OWNER/WIDENING_DELAY/TCB_STATUSES/ALLOW_*/MIN_TCB_EVALUATION_DATA_NUMBER:" >&2
  cast abi-decode --input "$SIG" "0x$ARGS_TX" >&2
  exit 1
fi
ARGS="${ARGS_TX:-$ARGS_ENV}"
if [ -n "$ARGS" ]; then
  printf '%s\n' "$ARGS" > "$OUT/UpgradeOperator.constructor-args.hex"
  log "wrote $OUT/UpgradeOperator.constructor-args.hex; decoded (owner, wideningDelay, policy):"
  cast abi-decode --input "$SIG" "0x$ARGS" | sed 's/^/  /' >&2
fi
