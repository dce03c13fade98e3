# syntax=docker/dockerfile:1
# One image with all three Centile binaries; docker-compose.yml picks the
# binary per service with `command`.

# Not 1.85 (Cargo.toml's rust-version): Cargo.lock pins crates that need
# Rust 1.89 (clickhouse 0.15.3, uuid 1.29), and --locked keeps those pins.
ARG RUST_VERSION=1.89

FROM rust:${RUST_VERSION}-bookworm AS builder
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
      target/release/centile-sink

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin centile
COPY --from=builder /out/ /usr/local/bin/
USER centile
# Metrics and health (/metrics, /healthz, /readyz) of producer, aggregator, sink.
EXPOSE 9464 9465 9466
CMD ["centile-sink", "run"]
