#!/usr/bin/env bash
# Installs the project's toolchain into .toolchain/ (git-ignored) and builds everything.
# Idempotent: a second run only checks stamps and rebuilds what changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TC="$ROOT/.toolchain"
FOUNDRY_VERSION=1.7.1
SOLC_VERSION=0.8.30
OZ_VERSION=5.4.0
STAMP="foundry=$FOUNDRY_VERSION solc=$SOLC_VERSION oz=$OZ_VERSION"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }

need() { command -v "$1" >/dev/null 2>&1 || { echo "setup: '$1' is required but not installed" >&2; exit 1; }; }
need node; need npm; need cargo

mkdir -p "$TC/bin"
if [ "$(cat "$TC/.stamp" 2>/dev/null)" != "$STAMP" ]; then
  log "installing Foundry $FOUNDRY_VERSION, solc $SOLC_VERSION and OpenZeppelin $OZ_VERSION from npm into .toolchain/"
  [ -f "$TC/package.json" ] || echo '{"name":"replicatoor-toolchain","private":true}' > "$TC/package.json"
  (cd "$TC" && npm install --no-audit --no-fund --loglevel=error \
    "@foundry-rs/forge-linux-amd64@$FOUNDRY_VERSION" \
    "@foundry-rs/anvil-linux-amd64@$FOUNDRY_VERSION" \
    "@foundry-rs/cast-linux-amd64@$FOUNDRY_VERSION" \
    "solc@$SOLC_VERSION" "@openzeppelin/contracts@$OZ_VERSION")
  for t in forge anvil cast; do
    chmod +x "$TC/node_modules/@foundry-rs/$t-linux-amd64/bin/$t"
    ln -sf "$TC/node_modules/@foundry-rs/$t-linux-amd64/bin/$t" "$TC/bin/$t"
  done
  echo "$STAMP" > "$TC/.stamp"
else
  log "toolchain up to date ($STAMP)"
fi
# forge calls solc through this shim (no native solc download works here).
install -m 0755 "$ROOT/script/solc-shim.js" "$TC/bin/solc"
export PATH="$TC/bin:$PATH"

log "building contracts (forge build)"
(cd "$ROOT" && forge build --quiet)
"$ROOT/script/sync-abi.sh"

if [ "${SETUP_SKIP_CARGO:-0}" != 1 ]; then
  # Cargo's own progress bar shows: a cold build takes minutes on two cores.
  log "building the workspace (cargo build; minutes on a fresh machine)"
  (cd "$ROOT" && cargo build --workspace --all-targets)
fi
log "done"
