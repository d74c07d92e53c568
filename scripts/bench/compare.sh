#!/usr/bin/env bash
# Side-by-side comparison of loadgen and echo-svc with k6, oha, autocannon, hey, wrk,
# h2load and nginx, on loopback, server and client each pinned to one core. Builds the release
# binaries, runs `benches compare` and writes the results table into benches/README.md.
#
#   scripts/bench/compare.sh                     # full run, 3 rounds (about 20 minutes, 200 s memory run included)
#   scripts/bench/compare.sh --memory-long 0s    # without the memory-over-time runs
#   scripts/bench/compare.sh --skip k6,autocannon --no-readme
#   scripts/bench/compare.sh --skip peers,ticks,max,servers,memory --no-readme   # HTTP/2 rows only
#
# Peers come from `scripts/install-tools.sh bench`; a missing one shows as "not installed".
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$HOME/.cargo/bin:$PATH"
target=${CARGO_TARGET_DIR:-$PWD/target}

echo "== release build of echo-svc and loadgen" >&2
cargo build --release --locked -p echo-svc -p loadgen
# Release too: the harness runs the floor client (`benches floor`) as one of the rows, and
# a debug build would overstate the least a client can spend.
echo "== harness build" >&2
cargo build --release --locked -p benches --bin benches

echo "== load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exec "$target/release/benches" compare \
  --echo-bin "$target/release/echo-svc" \
  --loadgen-bin "$target/release/loadgen" \
  "$@"
