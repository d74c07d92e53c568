#!/usr/bin/env python3
"""Smoothness of a schedule on the wire: reads a pcap of request segments (one per
request; smoothness.sh captures loadgen's PSH segments to the server's port) and reports
the 10 ms bins' coefficient of variation and the largest gap between consecutive sends.

    pcap_sends.py FILE [--skip SECONDS] [--bin-ms 10]
"""
import argparse
import json
import statistics
import struct
import sys


def timestamps(path):
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            sys.exit(f"{path}: not a pcap file (too short)")
        magic = struct.unpack("<I", head[:4])[0]
        if magic == 0xA1B2C3D4:
            endian, scale = "<", 1e-6
        elif magic == 0xA1B23C4D:
            endian, scale = "<", 1e-9
        elif magic == 0xD4C3B2A1:
            endian, scale = ">", 1e-6
        elif magic == 0x4D3CB2A1:
            endian, scale = ">", 1e-9
        else:
            sys.exit(f"{path}: not a pcap file (magic {magic:#x}; pcapng is not read)")
        out = []
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return out
            sec, frac, incl, _orig = struct.unpack(endian + "IIII", rec)
            f.seek(incl, 1)
            out.append(sec + frac * scale)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pcap")
    ap.add_argument("--skip", type=float, default=1.0, help="seconds left out at the start (warm-up)")
    ap.add_argument("--bin-ms", type=float, default=10.0)
    a = ap.parse_args()
    ts = timestamps(a.pcap)
    if len(ts) < 100:
        sys.exit(f"{a.pcap}: only {len(ts)} sends captured")
    t0 = ts[0] + a.skip
    # The last bin may be partial: leave out the final half second.
    t1 = ts[-1] - 0.5
    ts = [t for t in ts if t0 <= t < t1]
    width = a.bin_ms / 1e3
    n_bins = int((t1 - t0) / width)
    bins = [0] * n_bins
    for t in ts:
        i = int((t - t0) / width)
        if i < n_bins:
            bins[i] += 1
    mean = statistics.fmean(bins)
    cv = statistics.pstdev(bins) / mean if mean > 0 else float("inf")
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    gaps.sort()
    report = {
        "sends": len(ts),
        "seconds": round(t1 - t0, 3),
        "rate": round(len(ts) / (t1 - t0), 1),
        "bin_ms": a.bin_ms,
        "bins": n_bins,
        "bin_mean": round(mean, 2),
        "bin_min": min(bins),
        "bin_max": max(bins),
        "bin_cv": round(cv, 4),
        "gap_p99_ms": round(gaps[int(0.99 * (len(gaps) - 1))] * 1e3, 3),
        "gap_max_ms": round(gaps[-1] * 1e3, 3),
        "gaps_over_2ms": sum(1 for g in gaps if g > 0.002),
        "smooth": cv <= 0.10 and gaps[-1] <= 0.002,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
