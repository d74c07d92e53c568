#!/usr/bin/env python3
"""How often does this machine stop a sleeping process for longer than a gap allows?

One probe process per core, pinned, each sleeping 200 us at a time for SECONDS and noting
every wake-up that came more than --over-ms late. A stall seen on both cores at once is
most likely the whole VM paused by its host; one on a single core is something on that
core, such as a kernel thread. smoothness.sh runs this before loadgen, so the largest send gap
on the wire can be read against the machine's own.

    stall_probe.py [--seconds 10] [--cores 0,1] [--over-ms 2]
"""
import argparse
import json
import os
import sys
import time


def probe(core, seconds, over_s, out_fd):
    os.sched_setaffinity(0, {core})
    late = []
    prev = time.monotonic()
    end = prev + seconds
    while prev < end:
        time.sleep(0.0002)
        now = time.monotonic()
        if now - prev > over_s:
            late.append((prev, now - prev))
        prev = now
    os.write(out_fd, json.dumps(late).encode())
    os.close(out_fd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--cores", default="0,1")
    ap.add_argument("--over-ms", type=float, default=2.0)
    a = ap.parse_args()
    cores = [int(c) for c in a.cores.split(",") if c.strip()]
    if not cores or a.seconds <= 0 or a.seconds > 600:
        sys.exit("stall_probe: --cores needs at least one core and --seconds 0-600")
    kids = []
    for core in cores:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            probe(core, a.seconds, a.over_ms / 1e3, w)
            os._exit(0)
        os.close(w)
        kids.append((core, pid, r))
    per_core = {}
    for core, pid, r in kids:
        chunks = []
        while True:
            b = os.read(r, 65536)
            if not b:
                break
            chunks.append(b)
        os.close(r)
        os.waitpid(pid, 0)
        per_core[core] = json.loads(b"".join(chunks) or b"[]")
    # Monotonic time is one clock for every process, so stalls can be matched across cores.
    both = 0
    if len(cores) > 1:
        first, rest = per_core[cores[0]], [per_core[c] for c in cores[1:]]
        for start, length in first:
            if all(any(abs(s - start) < max(length, l) for s, l in other) for other in rest):
                both += 1
    report = {
        "seconds": a.seconds,
        "over_ms": a.over_ms,
        "cores": {
            str(c): {
                "stalls": len(per_core[c]),
                "max_ms": round(max((l for _, l in per_core[c]), default=0.0) * 1e3, 3),
            }
            for c in cores
        },
        "on_every_core_at_once": both,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
