# syntax=docker/dockerfile:1
# One image for every role of Odradek: `odradek broker | operator | processor | crdgen ...`.
#
#   docker build -t odradek:dev .
#   docker run --rm odradek:dev --help
#
# The operator runs broker and processor pods from this image with `args: [broker]` or `[processor]`,
# so the entrypoint is the binary itself.

# --- build ---------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder

# librdkafka is built from source by rdkafka's cmake-build feature; its headers also want curl.h.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake pkg-config libcurl4-openssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# The registry and target caches survive between builds on the same builder (BuildKit cache mounts);
# the binary is copied out of the cached target directory because cache mounts are not in the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p odradek-cli \
    && install -D -m 0755 target/release/odradek /out/odradek

# --- runtime -------------------------------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates for TLS to brokers and the API server; the binary links glibc and zlib only, both in
# the base image. uid/gid 65532 is the conventional non-root user of distroless images; the pods run as
# it too (runAsUser 65532, fsGroup 65532 on the data volume).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 odradek \
    && useradd --uid 65532 --gid 65532 --home-dir /var/lib/odradek --create-home --shell /usr/sbin/nologin odradek

COPY --from=builder /out/odradek /usr/local/bin/odradek

USER 65532:65532
WORKDIR /var/lib/odradek
# Kafka, broker HTTP (/metrics, /healthz, /readyz), operator HTTP.
EXPOSE 9092 9644 8080
ENTRYPOINT ["/usr/local/bin/odradek"]
CMD ["--help"]

LABEL org.opencontainers.image.title="odradek" \
      org.opencontainers.image.description="Kubernetes-native, Kafka-wire-compatible log cluster: broker, operator, stream processor" \
      org.opencontainers.image.source="https://github.com/odradek-dev/odradek" \
      org.opencontainers.image.licenses="Apache-2.0"
