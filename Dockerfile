# syntax=docker/dockerfile:1
# One image with all the Centile binaries; docker-compose.yml picks the
# binary per service with `command`.

# Not 1.85 (Cargo.toml's rust-version): Cargo.lock pins crates that need
# Rust 1.89 (clickhouse 0.15.3, uuid 1.29), and --locked keeps those pins.
ARG RUST_VERSION=1.89

FROM rust:${RUST_VERSION}-bookworm AS builder
# centile-api's build script vendors the dashboard's chart library with
# `npm ci` (pinned by crates/api/dashboard/package-lock.json).
RUN apt-get update \
 && apt-get install -y --no-install-recommends npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# --workspace: the repository root is itself a package (end-to-end tests and
# benchmarks), so without it cargo builds only that package and no service.
# rdkafka-sys compiles librdkafka with make and the C toolchain the rust image
# already has; TLS, SASL and curl are disabled, so only libz is linked.
# The target dir is a cache mount, so the binaries are copied out in this step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --workspace --bins \
 && install -D -m 0755 -t /out \
      target/release/centile-producer \
      target/release/centile-aggregator \
      target/release/centile-sink \
      target/release/centile-api \
      target/release/centile

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin centile
COPY --from=builder /out/ /usr/local/bin/
USER centile
# Metrics and health (/metrics, /healthz, /readyz) of producer, aggregator,
# sink, gateway and query API; the gateway's and the query API's HTTP ports.
EXPOSE 9464 9465 9466 9467 9468 8088 8089
CMD ["centile-sink", "run"]
