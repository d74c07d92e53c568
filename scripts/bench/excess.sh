#!/usr/bin/env bash
# Where loadgen's CPU above the floor goes, by kind, in rotating rounds.
#
# Whole-process CPU ratios against `benches floor` swing by ±10 % from round to round on
# a shared VM, and the swing is almost all in the kernel's TCP and scheduler time, which
# every client pays alike. This script samples three clients with `perf record` (echo-svc
# on core 0, the client on core 1, loopback only): the floor, the floor with `--measure`
# (the same loop plus the least that honest timing needs) and loadgen's default. It sorts
# every sample into a kind (tokio, HTTP parsing, histograms, own code, libc and the vDSO,
# the kernel's stamped reads, the rest of the kernel) and prints, per kind, samples per
# 1000 requests for each client, then what timing adds (measured floor - floor) and what
# loadgen adds to that (loadgen - measured floor), as shares of the floor's total: median
# [min to max] over the rounds. Which client goes first rotates from round to round.
#
#   scripts/bench/excess.sh [RATE] [ROUNDS] [SECONDS]   # 5000 rps, 3 rounds, 8 s each
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${1:-5000}
rounds=${2:-3}
secs=${3:-8}
target=${CARGO_TARGET_DIR:-$PWD/target}
command -v perf >/dev/null || { echo "perf is not installed (linux-perf)" >&2; exit 1; }
cargo build --release -q --locked -p loadgen -p echo-svc -p benches
work=$(mktemp -d)
. scripts/bench/echo_core0.sh
trap 'kill "${echo_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
start_echo

sample() {  # $1: name, $2: round; the client's command follows
  local name=$1 round=$2
  shift 2
  perf record -q -F 4999 -o "$work/$name.data" -- taskset -c 1 "$@" >/dev/null 2>&1
  perf report -q -i "$work/$name.data" --no-children --sort sym --stdio -F sample,sym \
    2>/dev/null >"$work/$name.$round.txt"
}
floor() {
  sample floor "$1" "$target/release/benches" floor --url "http://127.0.0.1:$port/" \
    --rps "$rate" --duration "${secs}s" --connections 50 --tick 500us
}
measured() {
  sample measured "$1" "$target/release/benches" floor --url "http://127.0.0.1:$port/" \
    --rps "$rate" --duration "${secs}s" --connections 50 --tick 500us --measure
}
loadgen() {
  sample loadgen "$1" "$target/release/loadgen" --target "http://127.0.0.1:$port/" \
    --rps "$rate" --duration "${secs}s" --connections 50 --threads 1 --no-progress \
    --json "$work/report.json"
}
for round in $(seq "$rounds"); do
  case $((round % 3)) in
    1) floor "$round"; measured "$round"; loadgen "$round" ;;
    2) measured "$round"; loadgen "$round"; floor "$round" ;;
    0) loadgen "$round"; floor "$round"; measured "$round" ;;
  esac
done

python3 - "$work" "$rounds" "$((rate * secs))" <<'PY'
import statistics, sys

work, rounds, requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# The kernel's part of a stamped read (recvmsg and its control message) that a plain
# read does not pay.
STAMPED = {"____sys_recvmsg", "___sys_recvmsg", "__sys_recvmsg", "__x64_sys_recvmsg",
           "put_cmsg", "tcp_recv_timestamp", "copy_msghdr_from_user", "import_iovec",
           "__import_iovec", "ns_to_timespec64", "ktime_get_with_offset"}
KINDS = ["tokio", "httparse", "hdrhistogram", "own code (and std)", "libc, vdso",
         "kernel: stamped reads", "kernel: the rest"]

def kind(line):
    count, _, sym = line.strip().partition(" ")
    sym = sym.strip()
    name = sym.split("] ", 1)[-1]
    if sym.startswith("[k]"):
        return float(count), "kernel: stamped reads" if name in STAMPED else "kernel: the rest"
    for k in ("tokio", "httparse", "hdrhistogram"):
        if k + "::" in name:
            return float(count), k
    if "::" in name:
        return float(count), "own code (and std)"
    return float(count), "libc, vdso"

def kinds(path):
    out = dict.fromkeys(KINDS, 0.0)
    for line in open(path):
        if line.strip():
            n, k = kind(line)
            out[k] += n * 1000 / requests
    return out

CLIENTS = ["floor", "measured", "loadgen"]
rows = {k: [] for k in KINDS + ["total"]}
for r in range(1, rounds + 1):
    got = {c: kinds(f"{work}/{c}.{r}.txt") for c in CLIENTS}
    for c in CLIENTS:
        got[c]["total"] = sum(got[c].values())
    base = got["floor"]["total"]
    for k in rows:
        f, m, l = (got[c][k] for c in CLIENTS)
        rows[k].append((f, m, l, (m - f) * 100 / base, (l - m) * 100 / base))

def spread(xs):
    return f"{statistics.median(xs):+.1f} [{min(xs):+.1f} to {max(xs):+.1f}]"

print(f"samples (4999 Hz) per 1000 requests, medians of {rounds} rounds; the differences "
      "as % of the floor's total, median [min to max]")
print(f"{'kind':<24} {'floor':>6} {'+measure':>8} {'loadgen':>8}  {'timing adds':<24} loadgen adds")
for k, rs in rows.items():
    f, m, l, dm, dl = zip(*rs)
    med = statistics.median
    print(f"{k:<24} {med(f):6.1f} {med(m):8.1f} {med(l):8.1f}  {spread(dm):<24} {spread(dl)}")
PY
