# The Replicatoor agent, to run next to an app (examples/dstack/docker-compose.yml, docs/operations.md).
#
#   docker build -t replicatoor .        (from the repository root)
#
# No secret is baked in: the sender key and the RPC URL come from the environment at run time (in Dstack,
# encrypted environment variables). The agent's state (cluster key, HPKE key, checkpoint) lives in the volume
# /var/lib/replicatoor; the secret file goes where REPLICATOOR_SECRET_FILE says (/secret/app.key by default
# here, a directory to share with the app). Pin the image by digest in the app's compose file: the compose
# file is part of the compose hash that the contract approves.
#
# Build arguments (the defaults build everything from source on official images):
#   BINARY_FROM=source    the binary is built in the rust image below (release, no cargo features).
#   BINARY_FROM=host      the binary is taken from the build context instead, at HOST_BINARY: for machines
#                         whose containers cannot install a Rust toolchain. Build it as the source stage
#                         does (release, no cargo features) and give a build context holding only that
#                         file (script/container-test.sh does).
#   RUNTIME_BASE          the image the binary runs on. Default: the stage runtime-debian-slim below
#                         (debian slim + ca-certificates + the agent's user). Any other image must provide
#                         what that stage provides: glibc and libgcc_s, bash (the health check), the system
#                         trust store, user and group 10001, /var/lib/replicatoor (0700) and /secret (0750)
#                         owned by them. script/container-test.sh builds such a base from Debian packages.
# The syntax directive is left out on purpose: the builder's built-in Dockerfile frontend suffices (RUN
# --mount), and fetching a frontend image needs a registry.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
ARG BINARY_FROM=source
ARG RUNTIME_BASE=runtime-debian-slim

# ------------------------------------------------------------------ binary, built from source (default)
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS binary-source
WORKDIR /src

# The workspace: the agent's crates (and the contract ABI their bindings come from). The test crate is
# not built here; only its manifest is needed for cargo to load the workspace. Release builds leave the
# `simulated` and `failpoints` features off: this image can neither make nor trust a simulated quote.
COPY Cargo.toml Cargo.lock ./
COPY agent agent
COPY tests/Cargo.toml tests/Cargo.toml
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    mkdir -p tests/src/bin \
    && touch tests/src/lib.rs \
    && echo 'fn main() {}' > tests/src/bin/replicatoor-dev.rs \
    && cargo build --release --locked -p replicatoor --bin replicatoor \
    && install -D -m 0755 target/release/replicatoor /out/replicatoor

# ------------------------------------------------------------------ binary, built on the host
FROM scratch AS binary-host
ARG HOST_BINARY=replicatoor
COPY ${HOST_BINARY} /out/replicatoor

# ------------------------------------------------------------------ the selected binary
# hadolint ignore=DL3006
FROM binary-${BINARY_FROM} AS binary

# ------------------------------------------------------------------ runtime base (default)
FROM debian:${DEBIAN_RELEASE}-slim AS runtime-debian-slim

# ca-certificates: the RPC client verifies https against the system trust store.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 replicatoor \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/replicatoor \
       --shell /usr/sbin/nologin replicatoor \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/replicatoor \
    && install -d -o 10001 -g 10001 -m 0750 /secret

# ------------------------------------------------------------------ runtime
# hadolint ignore=DL3006
FROM ${RUNTIME_BASE} AS runtime

COPY --from=binary /out/replicatoor /usr/local/bin/replicatoor

# Defaults only; every setting can be overridden (flags > environment > --config file).
# REPLICATOOR_SECRET_FILE is where the secret is installed (a path, not a secret value).
# hadolint ignore=DL3064
ENV REPLICATOOR_STATE_DIR=/var/lib/replicatoor \
    REPLICATOOR_SECRET_FILE=/secret/app.key \
    REPLICATOOR_LOG_FORMAT=json

VOLUME ["/var/lib/replicatoor"]
USER 10001:10001
WORKDIR /var/lib/replicatoor

# Liveness: /healthz on the agent's health endpoint (--http-addr, default 127.0.0.1:9090; with `off` disable
# this check). Readiness (secret installed) is /readyz: see examples/dstack/docker-compose.yml. Bash builtins
# only (no curl, head or grep in the image).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/bin/bash", "-c", "a=${REPLICATOOR_HTTP_ADDR:-127.0.0.1:9090}; h=${a%:*}; h=${h#[}; h=${h%]}; [ \"$h\" = 0.0.0.0 ] && h=127.0.0.1; exec 3<>/dev/tcp/$h/${a##*:} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r s <&3 && [[ $s == *' 200 '* ]]"]

ENTRYPOINT ["replicatoor"]
CMD ["run"]
