#!/usr/bin/env bash
# Profiles loadgen and echo-svc (release builds, symbols kept) under a fixed-rate load
# with `perf record -g`: echo-svc on core 0, loadgen on core 1, loopback only.
# Writes perf data and flat reports (by symbol, self time) to target/profile/.
#
#   scripts/bench/profile.sh [RATE] [SECONDS]      # default 5000 rps for 10 s
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${1:-5000}
secs=${2:-10}
target=${CARGO_TARGET_DIR:-$PWD/target}
out=$target/profile
mkdir -p "$out"
command -v perf >/dev/null || { echo "perf is not installed (linux-perf)" >&2; exit 1; }

cargo build --release --locked -p echo-svc -p loadgen

. scripts/bench/echo_core0.sh
trap 'kill "${echo_pid:-}" 2>/dev/null || true; wait "${echo_pid:-}" 2>/dev/null || true' EXIT
start_echo

perf record -q -g -o "$out/echo-svc.data" -p "$echo_pid" -- sleep $((secs + 1)) &
perf_echo=$!
perf record -q -g -o "$out/loadgen.data" -- taskset -c 1 "$target/release/loadgen" \
  --target "http://127.0.0.1:$port/" --rps "$rate" --duration "${secs}s" --no-progress \
  --json "$out/loadgen-report.json" > "$out/loadgen-report.txt"
wait "$perf_echo"

for p in loadgen echo-svc; do
  perf report -q -i "$out/$p.data" --no-children --sort dso,sym --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | awk 'NR <= 60' > "$out/$p-top.txt"
  echo "== $p: top symbols (self time), full data in $out/$p.data" >&2
  head -25 "$out/$p-top.txt" >&2
done
