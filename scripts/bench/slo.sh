#!/usr/bin/env bash
# The end-to-end SLO bench: echo-svc us/eu × v1/v2 and loadgen in one process, fixed
# rates, gated on p99, errors, dropped and CPU per request. Exit 99 when a gate fails.
#
#   scripts/bench/slo.sh --short     # the CI version (debug build, about 25 s of load)
#   scripts/bench/slo.sh             # longer steps at higher rates
#   scripts/bench/slo.sh --release   # release build (its own, tighter default thresholds)
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=()
args=()
for a in "$@"; do
  if [ "$a" = --release ]; then profile=(--release); else args+=("$a"); fi
done
exec cargo run --locked "${profile[@]}" -p benches --bin benches -- slo "${args[@]}"
