#!/usr/bin/env bash
# The drop-in container, built and run for real (script/test.sh runs it after the cargo tests).
#
#  1. A Docker engine: Debian's docker.io is installed when missing; when no engine answers, dockerd is
#     started (root, vfs storage, no bridge: every container here uses the host's loopback) and stopped
#     again at the end.
#  2. A base image made from Debian packages, once (no image registry is needed): debootstrap a minbase
#     tree, keep only what the binary and the health check run on (glibc's libraries, libgcc_s, bash,
#     the CA bundle, user 10001), `docker import` it. Cached under its tag.
#  3. Two images from the repository's Dockerfile with BINARY_FROM=host on that base:
#       replicatoor:local           the production binary (no cargo features; dev profile), size reported;
#       replicatoor:dev-simulated   the tests' replicatoor-dev (features simulated + failpoints): the only
#                                   way to make quotes without TDX. Never ship it.
#  4. End to end, as script/demo.sh does with host processes: anvil, the contract, the simulated beacon,
#     the app's compose with the pin and every security setting in it (script/dev-compose.sh, approved on
#     chain), and a simulated Dstack guest agent (`replicatoor dev guest-agent`) serving that compose whose
#     socket is mounted at /var/run/dstack.sock; a genesis node and a new node run AS CONTAINERS (--network
#     host, --read-only, uid 10001, the `dstack` quote provider), given transport only and taking every
#     security setting from their measured compose; the secret is delivered into the new node's volume (0600,
#     uid 10001) and an app container reads it; both pass the image's HEALTHCHECK and the compose
#     example's /readyz probe, and `docker stop` (SIGTERM) ends them with exit code 0.
#  5. The production image starts as uid 10001 and refuses the simulated switches.
# Fails (non-zero) on any broken step; removes its containers and volumes on exit.
#
# Environment: CONTAINER_TEST_PORT (anvil; +1 the beacon, +101 and +102 the agents; default: free ports),
# CONTAINER_TEST_KEEP=1 keeps containers, volumes and a dockerd it started, for inspection.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.toolchain/bin:$PATH"
T0=$SECONDS

OUT="$ROOT/target/container"
mkdir -p "$OUT"
say() { printf '\n\033[1;34m[container]\033[0m %s\n' "$*"; }
PASSED=0
ok() { PASSED=$((PASSED + 1)); printf '  \033[32m✔\033[0m %s\n' "$*"; }
fail() { printf '  \033[31m✘ %s\033[0m\n' "$*" >&2; exit 1; }

# Containers and volumes carry this label with the run's id, so that concurrent runs on one engine clean up
# only their own; images carry it with the value 1.
LABEL=replicatoor-container-test
RUN=$$
DOCKERD_PID=
PIDS=()
WORK="$(mktemp -d -t replicatoor-container.XXXXXX)"
cleanup() {
  local code=$?
  if [ "$code" != 0 ] && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    for c in $(docker ps -aq --filter "label=$LABEL=$RUN" 2>/dev/null); do
      echo "---- logs of $(docker inspect -f '{{.Name}}' "$c") (last 40 lines)" >&2
      docker logs --tail 40 "$c" >&2 2>&1 || true
    done
    [ -s "$WORK/beacon.log" ] && { echo "---- simulated beacon log" >&2; tail -20 "$WORK/beacon.log" >&2; }
  fi
  if [ "${CONTAINER_TEST_KEEP:-}" != 1 ] && docker info >/dev/null 2>&1; then
    docker ps -aq --filter "label=$LABEL=$RUN" | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker volume ls -q --filter "label=$LABEL=$RUN" | xargs -r docker volume rm >/dev/null 2>&1 || true
  fi
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null || true; done
  # The engine this run started stays up while another run's containers use it.
  if [ -n "$DOCKERD_PID" ] && [ "${CONTAINER_TEST_KEEP:-}" != 1 ] && [ -z "$(docker ps -q --filter "label=$LABEL" 2>/dev/null)" ]; then
    kill "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  wait 2>/dev/null || true
  rm -rf "$WORK"
  # The plain closing line CI reads: every check is one ✔; a failure ends the run at the first ✘.
  printf 'container: %d passed, %d failed\n' "$PASSED" "$([ "$code" = 0 ] && echo 0 || echo 1)"
  exit "$code"
}
trap cleanup EXIT

# ------------------------------------------------------------------ 1. the engine
say "Docker engine"
if ! command -v docker >/dev/null || ! command -v dockerd >/dev/null; then
  echo "  installing Debian's docker.io"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || fail "no Docker engine answers, and starting one needs root"
  # vfs: works inside any container or VM (no overlay mounts); no bridge, no iptables: the tests use the
  # host's network namespace only.
  dockerd --storage-driver vfs --bridge none --iptables=false --ip-masq=false \
    >"$OUT/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { tail -20 "$OUT/dockerd.log" >&2; fail "dockerd did not start (log: $OUT/dockerd.log)"; }
  ok "started dockerd (vfs; log target/container/dockerd.log); stopped again at the end"
else
  ok "an engine answers: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
fi

# BuildKit is needed (stage selection by build argument, RUN --mount). A client with the buildx plugin, or
# one older than 23 (Debian's docker.io), which drives the engine's built-in BuildKit itself.
BUILD=()
while read -r client; do
  if "$client" buildx version >/dev/null 2>&1; then BUILD=("$client" buildx build --load); break; fi
  major=$("$client" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1 || true)
  if [[ "$major" =~ ^[0-9]+$ ]] && [ "$major" -lt 23 ]; then BUILD=(env DOCKER_BUILDKIT=1 "$client" build); break; fi
done < <(type -ap docker | awk '!seen[$0]++')
[ ${#BUILD[@]} -gt 0 ] || fail "no docker client can use BuildKit (install the buildx plugin)"
build() { "${BUILD[@]}" --progress plain "$@" >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log" >&2; fail "docker build $*"; }; }

# ------------------------------------------------------------------ 2. the base image
# Bump the tag's suffix whenever what goes into the base changes.
BASE=replicatoor-base:bookworm-1
say "Base image $BASE"
if docker image inspect "$BASE" >/dev/null 2>&1; then
  ok "cached ($(docker image inspect --format '{{.Size}}' "$BASE" | awk '{printf "%.1f MB", $1/1e6}'))"
else
  command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  ROOTFS="$OUT/debootstrap-bookworm"
  rm -rf "$ROOTFS"
  echo "  debootstrap --variant=minbase bookworm (a minute or two)"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$ROOTFS" http://deb.debian.org/debian \
    >"$OUT/debootstrap.log" 2>&1 || { tail -20 "$OUT/debootstrap.log" >&2; fail "debootstrap"; }
  TREE="$OUT/base-tree"
  rm -rf "$TREE"
  mkdir -p "$TREE"/{usr/bin,usr/lib/x86_64-linux-gnu,usr/lib64,usr/local/bin,etc/ssl/certs,tmp,var/lib}
  # The tree is merged-/usr like bookworm's.
  for d in bin lib lib64; do ln -s "usr/$d" "$TREE/$d"; done
  chmod 1777 "$TREE/tmp"
  # glibc's shared libraries (not its gconv modules, locales or tools), libgcc_s (Rust's unwinder), and
  # bash with libtinfo for the health check; every file as the Debian package installed it.
  pkgfiles() { dpkg-query --admindir="$ROOTFS/var/lib/dpkg" -L "$@"; }
  { pkgfiles libc6 | grep -E '^/(usr/)?lib(64)?/(x86_64-linux-gnu/)?[^/]+\.so[.0-9]*$'
    pkgfiles libgcc-s1 libtinfo6 | grep -E '\.so[.0-9]*$'
    echo /bin/bash
  } | sed -E 's#^/(lib|lib64|bin)/#/usr/\1/#' | sort -u | while read -r f; do
    [ -e "$ROOTFS$f" ] || [ -L "$ROOTFS$f" ] || continue
    cp -a "$ROOTFS$f" "$TREE$f"
  done
  cp "$ROOTFS/etc/ssl/certs/ca-certificates.crt" "$TREE/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nreplicatoor:x:10001:10001::/var/lib/replicatoor:/usr/sbin/nologin\n' >"$TREE/etc/passwd"
  printf 'root:x:0:\nreplicatoor:x:10001:\n' >"$TREE/etc/group"
  install -d -o 10001 -g 10001 -m 0700 "$TREE/var/lib/replicatoor"
  install -d -o 10001 -g 10001 -m 0750 "$TREE/secret"
  tar -C "$TREE" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --message "glibc, libgcc_s, bash, CA bundle and user 10001 from Debian bookworm packages" - "$BASE" >/dev/null
  # The image is the cache from now on; the trees take 220 MB.
  rm -rf "$ROOTFS" "$TREE"
  ok "built from Debian packages ($(docker image inspect --format '{{.Size}}' "$BASE" | awk '{printf "%.1f MB", $1/1e6}'))"
fi

# ------------------------------------------------------------------ 3. the images
# The production binary is the agent built alone (`-p replicatoor`: no dev features unified in from the tests
# crate), by the build of its own test of what a production build refuses (agent/node/tests/production.rs), which
# script/test.sh has just run: the same cargo command finds it built. The dev profile: this step checks the image
# and what the binary refuses, not its speed (a release build from scratch took 7.5 min here; release figures are
# script/bench.sh's). The path comes from cargo's own report of the build.
PROD_BIN="$OUT/replicatoor-production"
DEV_BIN="$ROOT/target/debug/replicatoor-dev"
say "Binaries: the production agent (no cargo features) and the tests' replicatoor-dev (simulated)"
built=$(cargo test --locked -p replicatoor --test production --no-run --message-format=json-render-diagnostics |
  python3 -c 'import json, sys
for m in map(json.loads, sys.stdin):
    t = m.get("target", {})
    if m.get("reason") == "compiler-artifact" and t.get("name") == "replicatoor" and "bin" in t.get("kind", []):
        print(m["executable"])')
[ -x "$built" ] || fail "cargo reported no production binary ($built)"
cp "$built" "$PROD_BIN"
cargo build --locked -p replicatoor-tests --bin replicatoor-dev
# Whatever the base lacks of what the binary links is a broken image: check before building.
base_files=$(docker run --rm --entrypoint /bin/bash "$BASE" -c 'echo /usr/lib/x86_64-linux-gnu/* /usr/lib64/*')
for lib in $(ldd "$PROD_BIN" "$DEV_BIN" | awk '/=>|ld-linux/ {print $1}' | xargs -n1 basename | sort -u); do
  [[ "$lib" == linux-vdso* ]] && continue
  [[ " $base_files " == *"/$lib "* ]] || fail "the base lacks $lib, which the binary links (ldd)"
done
ok "the base holds every library the binaries link ($(ldd "$PROD_BIN" | awk '/=>|ld-linux/ {print $1}' | xargs -n1 basename | tr '\n' ' '))"

PROD=replicatoor:local
DEV=replicatoor:dev-simulated
image() { # tag binary
  local ctx="$OUT/context-${1#*:}"
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$2" "$ctx/replicatoor"
  local t=$SECONDS
  build -f "$ROOT/Dockerfile" --build-arg BINARY_FROM=host --build-arg RUNTIME_BASE="$BASE" --label "$LABEL=1" -t "$1" "$ctx"
  ok "$1 built in $((SECONDS - t)) s from $(realpath --relative-to="$ROOT" "$2")"
}
say "Images from the Dockerfile (BINARY_FROM=host, RUNTIME_BASE=$BASE)"
image "$PROD" "$PROD_BIN"
image "$DEV" "$DEV_BIN"
# Disk: vfs keeps full copies of every layer. Drop the images these replaced, the build contexts, and, on
# an engine this script started (nobody else's cache), the build cache.
docker image prune -f --filter "label=$LABEL=1" >/dev/null
rm -rf "$OUT"/context-*
[ -z "$DOCKERD_PID" ] || docker builder prune -af >/dev/null
docker image inspect "$DEV" >/dev/null

# ------------------------------------------------------------------ 4. end to end, as containers
KEYS=(0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
      0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
      0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a)
OWNER_KEY=${KEYS[0]}
# Loopback ports: anvil, +1 the beacon, +101 and +102 the agents; free ones unless CONTAINER_TEST_PORT says.
# Below the kernel's ephemeral range: an outgoing connection takes its local port there, and once took an
# agent's port between this check and the agent's bind (its health endpoint then never came up).
in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$EPHEMERAL_LOW" -gt 11000 ] 2>/dev/null || EPHEMERAL_LOW=32768
PORT="${CONTAINER_TEST_PORT:-}"
for _ in $(seq 50); do
  [ -n "${CONTAINER_TEST_PORT:-}" ] && break
  PORT=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000 - 103)))
  in_use "$PORT" || in_use $((PORT + 1)) || in_use $((PORT + 101)) || in_use $((PORT + 102)) || break
done
RPC="http://127.0.0.1:$PORT"
say "Chain, contract and simulated beacon on the host (as script/demo.sh)"
anvil --silent --port "$PORT" --block-time 1 & PIDS+=($!)
for _ in $(seq 50); do cast block-number --rpc-url "$RPC" >/dev/null 2>&1 && break; sleep 0.2; done
cast block-number --rpc-url "$RPC" >/dev/null 2>&1 || fail "anvil did not start on port $PORT"
# Floor 17: the simulated PKI's TCB evaluation (`deploy`'s default, the newest real one, is above it).
read -r CONTRACT START < <("$DEV_BIN" deploy --rpc-url "$RPC" --sender-key "$OWNER_KEY" --allow-simulated --widening-delay 0 \
  --min-tcb-evaluation-data-number 17 --json \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(j.address,j.block)})')
[ -n "${START:-}" ] || fail "the contract was not deployed"
admin() { "$DEV_BIN" admin "$@" --rpc-url "$RPC" --contract "$CONTRACT" --sender-key "$OWNER_KEY"; }
admin propose-os --simulated --note "simulated Dstack OS image" >/dev/null
"$DEV_BIN" dev beacon --rpc-url "$RPC" --listen "127.0.0.1:$((PORT + 1))" --contract "$CONTRACT" --start-block "$START" \
  --pin-file "$WORK/deployment.toml" >"$WORK/beacon.log" 2>&1 & PIDS+=($!)
for _ in $(seq 120); do [ -s "$WORK/deployment.toml" ] && break; sleep 0.25; done
[ -s "$WORK/deployment.toml" ] || fail "the simulated beacon did not start"
ok "contract $CONTRACT (block $START); beacon pinned"
# The app's compose, as the owner approves it: the pin and every security setting literal (measured), the
# image's own paths and the socket where Dstack mounts it; transport and the role left to the operator.
bash "$ROOT/script/dev-compose.sh" "$WORK/deployment.toml" /var/run/dstack.sock /var/lib/replicatoor /secret/app.key \
  example/app:1.0 >"$WORK/app-compose.json"
admin propose-app --compose "$WORK/app-compose.json" --note "container test app" >/dev/null 2>&1
# The CVM's guest agent, simulated: the containers get their quotes, and their measured compose (Info), over
# its socket as in Dstack.
"$DEV_BIN" dev guest-agent --socket "$WORK/dstack.sock" --compose "$WORK/app-compose.json" >"$WORK/guest-agent.log" 2>&1 & PIDS+=($!)
for _ in $(seq 80); do [ -S "$WORK/dstack.sock" ] && break; sleep 0.25; done
[ -S "$WORK/dstack.sock" ] || fail "the simulated guest agent did not start"
ok "simulated Dstack guest agent on $WORK/dstack.sock (serving the approved compose, pin included)"

# The compose example's readiness probe, taken from examples/dstack/docker-compose.yml (Compose's `$$` is
# a literal `$`), on a given port.
readyz_probe() {
  sed -n 's/^ *- \(exec 3<>.*\/readyz .*\)$/\1/p' "$ROOT/examples/dstack/docker-compose.yml" \
    | sed -e 's/\$\$/$/g' -e "s#/127.0.0.1/9090 #/127.0.0.1/$1 #"
}
[ -n "$(readyz_probe 1)" ] || fail "no /readyz probe found in examples/dstack/docker-compose.yml"
# A node as in script/demo.sh's node_run, in a container: its volumes named, the health check polled every
# second, quotes and its measured compose from the guest agent's socket mounted where Dstack mounts it (the
# `dstack` provider, as in examples/dstack/docker-compose.yml). The operator gives transport and the role
# only: every security setting (pin, contract, confirmations, paths, simulated quotes) comes from the compose.
node() { # name key http-port extra-args...
  local name=$1 key=$2 port=$3; shift 3
  docker volume create --label "$LABEL=$RUN" "rct$RUN-$name-state" >/dev/null
  docker volume create --label "$LABEL=$RUN" "rct$RUN-$name-secret" >/dev/null
  docker run -d --name "rct$RUN-$name" --label "$LABEL=$RUN" --network host --read-only \
    --health-interval 1s --health-timeout 5s --health-retries 3 --health-start-period 5s \
    -v "rct$RUN-$name-state:/var/lib/replicatoor" -v "rct$RUN-$name-secret:/secret" \
    -v "$WORK/dstack.sock:/var/run/dstack.sock" \
    -e REPLICATOOR_BEACON_URL="http://127.0.0.1:$((PORT + 1))" \
    -e REPLICATOOR_HTTP_ADDR="127.0.0.1:$port" -e REPLICATOOR_SENDER_KEY="$key" \
    "$DEV" run --rpc-url "$RPC" "$@" >/dev/null
}
wait_for() { # what seconds command...
  local what=$1 n=$2; shift 2
  for _ in $(seq $((n * 4))); do "$@" && return 0; sleep 0.25; done
  fail "timed out after $n s waiting for $what"
}
healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "rct$RUN-$1")" = healthy ]; }
running() { [ "$(docker inspect -f '{{.State.Running}}' "rct$RUN-$1")" = true ] || fail "container rct$RUN-$1 exited"; }
proposed() { running genesis; [ "$(cast call "$CONTRACT" 'genesisCount()(uint256)' --rpc-url "$RPC")" = 1 ]; }
ready() { running "$1"; curl -sf -o /dev/null "http://127.0.0.1:$2/readyz"; }
now_ms() { date +%s%3N; }

say "Genesis node (container) founds the cluster; the owner approves it"
GEN_PORT=$((PORT + 101)); NODE_PORT=$((PORT + 102))
node genesis "${KEYS[1]}" "$GEN_PORT" --genesis --generate-secret 64
wait_for "the genesis proposal" 60 proposed
admin approve-genesis --proposal 1 --allow-simulated-quotes --note "container test genesis" >/dev/null
wait_for "the genesis node to be ready" 60 ready genesis "$GEN_PORT"
wait_for "the genesis container to be healthy (image HEALTHCHECK, /healthz)" 30 healthy genesis
ok "genesis ready and healthy"

say "A new node (container) asks for the secret; the genesis node delivers it"
t=$(now_ms)
node node "${KEYS[2]}" "$NODE_PORT"
wait_for "the new node's /readyz (secret delivered)" 120 ready node "$NODE_PORT"
COLD_MS=$(( $(now_ms) - t ))
wait_for "the new node to be healthy (image HEALTHCHECK, /healthz)" 30 healthy node
ok "delivered: docker run → /readyz 200 in $COLD_MS ms"

say "What the containers did"
for n in genesis node; do
  running "$n"
  docker exec "rct$RUN-$n" /bin/bash -c "$(readyz_probe "$([ $n = genesis ] && echo "$GEN_PORT" || echo "$NODE_PORT")")" \
    || fail "$n: the compose example's /readyz probe fails inside the container"
  ids=$(awk '/^(Uid|Gid):/ {printf "%s%s", sep, $2; sep=":"}' "/proc/$(docker inspect -f '{{.State.Pid}}' "rct$RUN-$n")/status")
  [ "$ids" = "10001:10001" ] || fail "$n's agent runs as uid:gid $ids, not 10001:10001"
  [ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "rct$RUN-$n")" = true ] || fail "$n: root filesystem not read-only"
  docker exec "rct$RUN-$n" /bin/bash -c ': >/usr/local/bin/w' 2>/dev/null && fail "$n could write to its root filesystem"
  f="$(docker volume inspect -f '{{.Mountpoint}}' "rct$RUN-$n-secret")/app.key"
  [ -f "$f" ] || fail "$n: no secret file in its volume"
  [ "$(stat -c '%a %u %g' "$f")" = "600 10001 10001" ] || fail "$n: secret file is $(stat -c '%a %u %g' "$f"), not 600 10001 10001"
  [ "$(stat -c %s "$f")" = 64 ] || fail "$n: secret has $(stat -c %s "$f") bytes, not 64"
done
ok "both: compose /readyz probe answers inside, healthy through the image's HEALTHCHECK"
ok "both: uid/gid 10001, read-only root filesystem (a write fails)"
ok "both: /secret/app.key in the shared volume is mode 0600, owner 10001, 64 bytes"
sums=$(for n in genesis node; do sha256sum "$(docker volume inspect -f '{{.Mountpoint}}' "rct$RUN-$n-secret")/app.key" | cut -d' ' -f1; done | sort -u | wc -l)
[ "$sums" = 1 ] || fail "the two copies of the secret differ"
ok "the new node's secret equals the genesis node's (sha256)"
logs=$(docker logs "rct$RUN-node" 2>&1)
grep -q "secret installed" <<<"$logs" || fail "no delivery in the new node's log"
grep -q 'SIMULATED QUOTES: this node attests' <<<"$logs" \
  && fail "the new node made its own quotes instead of asking the guest agent"
grep -q "security settings are the measured compose's" <<<"$logs" \
  || fail "the new node did not take its settings from its measured compose"
curl -sf "http://127.0.0.1:$NODE_PORT/metrics" >"$WORK/node.metrics" || fail "no /metrics from the new node"
grep -qx 'replicatoor_config_self_measured 1' "$WORK/node.metrics" || fail "the new node does not report a self-measured configuration"
grep -q 'replicatoor_trust_mode{mode="simulated-beacon"} 1' "$WORK/node.metrics" \
  || fail "the new node does not run on the compose's pin"
served=$(grep -c "simulated quote served" "$WORK/guest-agent.log" || true)
[ "$served" -ge 2 ] || fail "the guest agent served $served quotes; the genesis node and the new node each need one"
ok "both nodes took their quotes from the simulated guest agent's socket ($served served)"
ok "the new node took its security settings (pin included) from its measured compose: /metrics says so"
# The app, as in the compose example: another container, uid 10001, the secret volume mounted read-only.
docker run --rm --label "$LABEL=$RUN" --network none --read-only --user 10001:10001 -v "rct$RUN-node-secret:/secret:ro" \
  --entrypoint /bin/bash "$DEV" -c 'exec 3</secret/app.key && ! { : >>/secret/app.key; } 2>/dev/null' \
  || fail "an app container (uid 10001, volume read-only) cannot read the secret, or can write it"
ok "an app container (uid 10001) reads /secret/app.key from the shared volume, mounted read-only"

say "docker stop (SIGTERM)"
for n in node genesis; do
  t=$(now_ms)
  docker stop -t 20 "rct$RUN-$n" >/dev/null
  ms=$(( $(now_ms) - t ))
  code=$(docker inspect -f '{{.State.ExitCode}}' "rct$RUN-$n")
  [ "$code" = 0 ] || fail "$n exited with code $code after SIGTERM"
  [ "$ms" -lt 10000 ] || fail "$n took $ms ms to stop (docker stop's SIGKILL comes at 20 s)"
  ok "$n: exit code 0, $ms ms"
done

# ------------------------------------------------------------------ 5. the production image
say "Production image $PROD (no cargo features)"
[ "$(docker image inspect -f '{{.Config.User}}' "$PROD")" = "10001:10001" ] || fail "$PROD does not run as 10001:10001"
docker run --rm --read-only "$PROD" --version >/dev/null || fail "$PROD does not start"
[ "$(docker run --rm --read-only --entrypoint /bin/bash "$PROD" -c 'echo $EUID')" = 10001 ] || fail "$PROD runs as root"
# A node as above but for its image (the dstack provider: no socket is needed before the refusal).
out=$(docker run --rm --read-only --network host -v "$ROOT/examples/app-compose.json:/etc/replicatoor/app-compose.json:ro" \
  "$PROD" run --rpc-url "$RPC" --contract "$CONTRACT" --start-block "$START" --sender-key "${KEYS[2]}" \
  --app-compose /etc/replicatoor/app-compose.json --allow-simulated-quotes 2>&1) && fail "$PROD accepted --allow-simulated-quotes"
grep -q 'allow_simulated_quotes.*built without the `simulated` feature' <<<"$out" || fail "$PROD's refusal does not say why: $out"
# Every dev command: refused with exit code 1 (a failed command) and the reason, whatever its arguments.
for dev in "dev guest-agent --socket /tmp/s --compose /nonexistent" \
  "dev beacon --rpc-url $RPC --contract $CONTRACT --listen 127.0.0.1:0"; do
  code=0
  # shellcheck disable=SC2086 # the words of $dev are the command's arguments
  out=$(docker run --rm --read-only --network host "$PROD" $dev 2>&1) || code=$?
  [ "$code" = 1 ] || fail "$PROD $dev: exit code $code, expected 1 (refused): $out"
  grep -q 'built without the `simulated` feature' <<<"$out" || fail "$PROD $dev does not say why: $out"
done
ok "starts (--version), runs as uid 10001, refuses --allow-simulated-quotes, dev guest-agent and dev beacon (exit 1): built without the simulated feature"

SIZE=$(docker image inspect --format '{{.Size}}' "$PROD")
say "Figures"
printf '  %-20s %7.1f MB  (%s, a dev-profile binary: the release image is script/bench.sh'"'"'s figure)\n' \
  "image size" "$(awk "BEGIN {print $SIZE / 1e6}")" "$PROD"
printf '  %-20s %7.1f s   goal <= 60 s (docker run of a new node until /readyz 200: its secret installed)\n' \
  "cold start to ready" "$(awk "BEGIN {print $COLD_MS / 1e3}")"
printf '  %-20s %7d s\n' "this script" "$((SECONDS - T0))"
[ "$COLD_MS" -le 60000 ] || fail "cold start to ready is over its goal"
