#!/usr/bin/env bash
# What `--out csv=FILE` costs: loadgen with and without it, alternating, against one
# echo-svc (core 0) with loadgen on core 1; whole-process CPU (user + system, so the
# writer thread counts) per answered request, and the ratio within each round (which
# goes first alternates from round to round).
#
#   scripts/bench/out_cost.sh [RATE] [ROUNDS]      # 5000 rps, 3 rounds, 8 s each
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${1:-5000}
rounds=${2:-3}
target=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release -q -p loadgen -p echo-svc
work=$(mktemp -d)
port=18384
taskset -c 0 "$target/release/echo-svc" --port "$port" --bind 127.0.0.1 --workers 1 \
  --log-level warn --drain-delay 0s &
echo_pid=$!
trap 'kill "$echo_pid" 2>/dev/null; rm -rf "$work"' EXIT
sleep 1
cpu_per_req() {  # $1: json report, $2: "user sys" seconds
  python3 - "$1" "$2" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["targets"][0]
n = t["accounting"]["ok"] + t["warmup"]["ok"]
u, s = map(float, sys.argv[2].split())
print(f"{(u + s) * 1e6 / n:.2f}")
PY
}
for round in $(seq "$rounds"); do
  line="round $round, $rate rps:"
  # Which goes first alternates, so a drift within a round does not favour either.
  order="plain out"
  [ $((round % 2)) -eq 0 ] && order="out plain"
  for mode in $order; do
    extra=()
    [ "$mode" = out ] && extra=(--out "csv=$work/rows.csv")
    times=$( { /usr/bin/time -f "%U %S" taskset -c 1 "$target/release/loadgen" --no-progress \
      --target "l=http://127.0.0.1:$port/" --rps "$rate" --duration 8s --warmup 1s \
      --json "$work/$mode.json" "${extra[@]}" >/dev/null; } 2>&1 | tail -1)
    us=$(cpu_per_req "$work/$mode.json" "$times")
    line="$line $mode $us µs/req"
    eval "cpu_$mode=$us"
  done
  # shellcheck disable=SC2154  # set by the eval above
  echo "$line, out/plain $(python3 -c "print(f'{$cpu_out / $cpu_plain:.2f}')")"
done
echo "rows in the last file: $(($(wc -l < "$work/rows.csv") - 1))"
