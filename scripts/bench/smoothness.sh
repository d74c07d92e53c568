#!/usr/bin/env bash
# Is loadgen's schedule smooth on the wire? echo-svc on core 0, loadgen on core 1, and
# tcpdump on loopback capturing every request segment (PSH to the server's port); then
# scripts/bench/pcap_sends.py reports the 10 ms bins' coefficient of variation and the
# largest gap between consecutive sends (targets: CV <= 10%, no gap over 2 ms). First,
# scripts/bench/stall_probe.py measures the machine's own stalls for as long as the run:
# a send gap is the generator's only if the machine idles without one.
#
#   scripts/bench/smoothness.sh [RATE] [SECONDS] [extra loadgen flags...]   # 5000 rps, 10 s
#   scripts/bench/smoothness.sh 5000 10 --tick 0s                           # exact mode
#
# Needs tcpdump and the right to capture on lo (root or CAP_NET_RAW).
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${1:-5000}
secs=${2:-10}
shift $(( $# < 2 ? $# : 2 ))
target=${CARGO_TARGET_DIR:-$PWD/target}
work=$(mktemp -d)
command -v tcpdump >/dev/null || { echo "tcpdump is not installed (scripts/install-tools.sh bench)" >&2; exit 1; }

cargo build --release --locked -p echo-svc -p loadgen >&2
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
taskset -c 0 "$target/release/echo-svc" --bind 127.0.0.1 --port "$port" --workers 1 \
  --drain-delay 0s --log-level warn &
echo_pid=$!
tcpdump_pid=
cleanup() {
  [ -n "$tcpdump_pid" ] && kill "$tcpdump_pid" 2>/dev/null || true
  kill "$echo_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done

echo "machine alone (stall_probe.py, ${secs}s, both cores):" >&2
python3 scripts/bench/stall_probe.py --seconds "$secs" --cores 0,1

# Start the capture and wait until tcpdump says it is listening.
mkfifo "$work/tcpdump.err"
tcpdump -i lo -n -s 96 -U --time-stamp-precision=nano -w "$work/sends.pcap" \
  "tcp dst port $port and (tcp[tcpflags] & tcp-push != 0)" 2>"$work/tcpdump.err" &
tcpdump_pid=$!
exec 4<"$work/tcpdump.err"
while IFS= read -r -t 10 line <&4; do
  case $line in *listening*) break ;; esac
done

taskset -c 1 "$target/release/loadgen" --target "http://127.0.0.1:$port/" --rps "$rate" \
  --duration "${secs}s" --warmup 1s --no-progress --json "$work/report.json" "$@" >/dev/null
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null || true
tcpdump_pid=
python3 - "$work/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({"loadgen_tick_us": r.get("tick_us"), "pacing_p99_us": r["pacing"]["p99"]}))
PY
python3 scripts/bench/pcap_sends.py "$work/sends.pcap" --skip 1.0
