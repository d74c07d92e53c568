# syntax=docker/dockerfile:1.7
#
# One image per binary, chosen by build target:
#   docker build --target echo-svc -t ghcr.io/<owner>/echo-svc:<tag> .
#   docker build --target loadgen  -t ghcr.io/<owner>/loadgen:<tag> .
# (`task image` does both for this machine; `task image:push` builds
# linux/amd64 and linux/arm64 with buildx and pushes them.) Binaries are
# static (musl), so the runtime is distroless/static: no shell, no libc, no
# package manager, user 65532.
#
# Multi-arch without emulation, from either kind of build machine (a Linux
# amd64 runner, an Apple-silicon Mac): the build stages run on the build
# machine's own platform (BUILDARCH) and compile for TARGETARCH (amd64 ->
# x86_64-unknown-linux-musl, arm64 -> aarch64-unknown-linux-musl). Where the
# two differ, Debian's cross gcc for the target links and compiles ring's C;
# where they match, the native gcc does. /cargo-env names them for cargo.
# Only COPY runs in the target platform's stages.

ARG RUST_VERSION=1.95

# --- toolchain with cargo-chef, which turns the workspace's manifests into a
# recipe so dependencies build in their own cached layer.
FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS chef
ARG TARGETARCH
ARG BUILDARCH
# hadolint ignore=DL3008,SC2086
RUN set -eu; \
    case "${TARGETARCH:-amd64}" in \
      amd64) target=x86_64-unknown-linux-musl; env_target=X86_64_UNKNOWN_LINUX_MUSL; cc_target=x86_64_unknown_linux_musl; \
             gnu=x86_64-linux-gnu; cross="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;; \
      arm64) target=aarch64-unknown-linux-musl; env_target=AARCH64_UNKNOWN_LINUX_MUSL; cc_target=aarch64_unknown_linux_musl; \
             gnu=aarch64-linux-gnu; cross="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}" >&2; exit 1 ;; \
    esac; \
    cc=gcc; \
    if [ "${BUILDARCH:-amd64}" != "${TARGETARCH:-amd64}" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends $cross; \
      rm -rf /var/lib/apt/lists/*; \
      cc="$gnu-gcc"; \
    fi; \
    echo "$target" > /rust-target; \
    printf 'export CARGO_TARGET_%s_LINKER=%s CC_%s=%s\n' "$env_target" "$cc" "$cc_target" "$cc" > /cargo-env; \
    rustup target add "$target"; \
    cargo install cargo-chef --locked --version ^0.1
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- dependencies (rebuilt only when Cargo.toml/Cargo.lock change), then ours.
FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
# (cook takes no --locked: the recipe carries Cargo.lock; the build below checks it.)
RUN . /cargo-env && cargo chef cook --release --target "$(cat /rust-target)" --recipe-path recipe.json
COPY . .
RUN . /cargo-env && target="$(cat /rust-target)" \
    && cargo build --release --locked --target "$target" -p echo-svc -p loadgen --bins \
    && mkdir /out \
    && cp "target/$target/release/echo-svc" "target/$target/release/loadgen" /out/

# --- runtime: shared by both images.
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
# `task image` passes the Git URL from deploy/config.env.
ARG SOURCE=unknown
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
