#!/usr/bin/env bash
# Writes the app-compose.json of a dev cluster (script/demo.sh, script/container-test.sh): an app and the
# replicatoor agent beside it, as examples/dstack/docker-compose.yml runs them, with every security setting
# written literally (so measured) and only transport and the node's role left to the operator. The simulated
# guest agent (`replicatoor dev guest-agent --compose`) serves this document through `Info` and measures its
# hash into every quote, so each node takes its settings from it, as in a Dstack CVM.
#
#   bash script/dev-compose.sh PIN_FILE SOCKET STATE_DIR SECRET_FILE APP_IMAGE > app-compose.json
#
# PIN_FILE: the deployment pin (`replicatoor dev beacon --pin-file`); SOCKET: the guest agent's socket as the
# agent sees it; STATE_DIR, SECRET_FILE: as the agent sees them (relative paths resolve in each node's
# working directory, so processes on one machine share one compose); APP_IMAGE: the app's image (another
# image is another compose hash: another app version).
set -euo pipefail
[ $# -eq 5 ] || { grep -m1 '^#   bash script/dev-compose.sh' "$0" >&2; exit 2; }
PIN_FILE=$1 SOCKET=$2 STATE_DIR=$3 SECRET_FILE=$4 APP_IMAGE=$5
CONTRACT=$(sed -n 's/^contract = "\(0x[0-9a-fA-F]*\)"$/\1/p' "$PIN_FILE")
START=$(sed -n 's/^start_block = \([0-9]*\)$/\1/p' "$PIN_FILE")
[ -n "$CONTRACT" ] && [ -n "$START" ] || { echo "dev-compose: $PIN_FILE has no contract or start_block" >&2; exit 1; }
yaml=$(cat <<EOF
services:
  replicatoor:
    image: replicatoor:dev-simulated
    environment:
      REPLICATOOR_CONTRACT: "$CONTRACT"
      REPLICATOOR_START_BLOCK: "$START"
      REPLICATOOR_DEPLOYMENT: |
$(sed 's/^/        /' "$PIN_FILE")
      REPLICATOOR_CONFIRMATIONS: "1"
      REPLICATOOR_POLL_INTERVAL_MS: "250"
      REPLICATOOR_QUOTE_PROVIDER: dstack
      REPLICATOOR_DSTACK_SOCKET: $SOCKET
      REPLICATOOR_ALLOW_SIMULATED_QUOTES: "true"
      REPLICATOOR_STATE_DIR: $STATE_DIR
      REPLICATOOR_SECRET_FILE: $SECRET_FILE
      REPLICATOOR_RPC_URL: \${REPLICATOOR_RPC_URL}
      REPLICATOOR_SENDER_KEY: \${REPLICATOOR_SENDER_KEY}
      REPLICATOOR_BEACON_URL: \${REPLICATOOR_BEACON_URL}
      REPLICATOOR_HTTP_ADDR: \${REPLICATOOR_HTTP_ADDR}
      REPLICATOOR_GENESIS: \${REPLICATOOR_GENESIS:-false}
      REPLICATOOR_GENERATE_SECRET:
  app:
    image: $APP_IMAGE
EOF
)
YAML="$yaml" node -e '
  const doc = { manifest_version: 2, name: "replicatoor-dev-app", runner: "docker-compose",
    docker_compose_file: process.env.YAML + "\n", allowed_envs: ["REPLICATOOR_RPC_URL", "REPLICATOOR_SENDER_KEY",
    "REPLICATOOR_BEACON_URL", "REPLICATOOR_HTTP_ADDR", "REPLICATOOR_GENESIS", "REPLICATOOR_GENERATE_SECRET"],
    kms_enabled: false, gateway_enabled: false, public_logs: true, public_sysinfo: true, no_instance_id: false };
  process.stdout.write(JSON.stringify(doc, null, 2) + "\n");'
