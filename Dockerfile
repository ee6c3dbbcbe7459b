# syntax=docker/dockerfile:1
# The Replicatoor agent, to run next to an app (examples/dstack/docker-compose.yml, docs/operations.md).
#
#   docker build -t replicatoor .        (from the repository root)
#
# No secret is baked in: the sender key and the RPC URL come from the environment at run time (in Dstack,
# encrypted environment variables). The agent's state (cluster key, HPKE key, checkpoint) lives in the volume
# /var/lib/replicatoor; the secret file goes where REPLICATOOR_SECRET_FILE says (/secret/app.key by default
# here, a directory to share with the app). Pin the image by digest in the app's compose file: the compose
# file is part of the compose hash that the contract approves.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ------------------------------------------------------------------ build
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
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

# ------------------------------------------------------------------ runtime
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

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

COPY --from=builder /out/replicatoor /usr/local/bin/replicatoor

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
# this check). Readiness (secret installed) is /readyz: see examples/dstack/docker-compose.yml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/bin/bash", "-c", "a=${REPLICATOOR_HTTP_ADDR:-127.0.0.1:9090}; h=${a%:*}; h=${h#[}; h=${h%]}; [ \"$h\" = 0.0.0.0 ] && h=127.0.0.1; exec 3<>/dev/tcp/$h/${a##*:} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["replicatoor"]
CMD ["run"]
