#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace's unit and integration
# tests (real sockets, real processes), then the manifest checks.
# Installs what it needs first (scripts/install-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-tools.sh test
export PATH="$PWD/.venv/bin:$PATH"

echo "== cargo test (workspace)" >&2
cargo test --workspace --locked

echo "== manifests, Taskfile, Dockerfile checks" >&2
scripts/validate-manifests.sh
