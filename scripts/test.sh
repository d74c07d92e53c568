#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace's unit and integration
# tests (real sockets, real processes), the manifest checks, then the tests of
# the cluster path (scripts/tests: certificates with openssl, the bootstrap
# order from `task --dry`, the lab checks against a replaying kubectl, every
# PromQL expression through promtool and a real Prometheus).
# Installs what it needs first (scripts/install-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-tools.sh test
export PATH="$PWD/.venv/bin:$PATH"

echo "== cargo test (workspace)" >&2
cargo test --workspace --locked

echo "== manifests, Taskfile, Dockerfile checks" >&2
scripts/validate-manifests.sh

echo "== cluster path: certs, bootstrap order, lab checks, PromQL (pytest)" >&2
python -m pytest -q -p no:cacheprovider scripts/tests
