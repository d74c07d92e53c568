# syntax=docker/dockerfile:1.7
#
# One image per binary, chosen by build target:
#   docker build --target echo-svc -t ghcr.io/training-mesh/echo-svc:0.1.0 .
#   docker build --target loadgen  -t ghcr.io/training-mesh/loadgen:0.1.0 .
# (`task image` does both.) Binaries are static (musl), so the runtime is
# distroless/static: no shell, no libc, no package manager, user 65532.
# x86_64 only: the course clusters are amd64.

ARG RUST_VERSION=1.95

# --- toolchain with cargo-chef, which turns the workspace's manifests into a
# recipe so dependencies build in their own cached layer.
FROM rust:${RUST_VERSION}-bookworm AS chef
RUN rustup target add x86_64-unknown-linux-musl \
    && cargo install cargo-chef --locked --version ^0.1
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- dependencies (rebuilt only when Cargo.toml/Cargo.lock change), then ours.
FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
# (cook takes no --locked: the recipe carries Cargo.lock; the build below checks it.)
RUN cargo chef cook --release --target x86_64-unknown-linux-musl --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
        -p echo-svc -p loadgen --bins \
    && mkdir /out \
    && cp target/x86_64-unknown-linux-musl/release/echo-svc \
          target/x86_64-unknown-linux-musl/release/loadgen /out/

# --- runtime: shared by both images.
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/training-mesh/echo
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="training-mesh"
# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532

FROM runtime AS loadgen
LABEL org.opencontainers.image.title="loadgen" \
      org.opencontainers.image.description="Open-loop HTTP load generator with HDR latency and SLO gates"
COPY --from=build --chown=0:0 --chmod=0555 /out/loadgen /usr/local/bin/loadgen
ENTRYPOINT ["/usr/local/bin/loadgen"]

# Last, so a plain `docker build .` gives the service.
FROM runtime AS echo-svc
LABEL org.opencontainers.image.title="echo-svc" \
      org.opencontainers.image.description="Region- and version-aware HTTP echo workload"
COPY --from=build --chown=0:0 --chmod=0555 /out/echo-svc /usr/local/bin/echo-svc
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/echo-svc"]
