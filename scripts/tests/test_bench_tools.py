"""The smoothness tools of scripts/bench read what they claim to read: pcap_sends.py on a
capture whose send times are known (one gap planted), stall_probe.py's report shape and
its refusal of nonsense arguments."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

from conftest import ROOT

BENCH = ROOT / "scripts" / "bench"


def write_pcap(path, times, nano=True):
    """A classic pcap with one 60-byte frame per timestamp (nanosecond magic if nano)."""
    with open(path, "wb") as f:
        magic = 0xA1B23C4D if nano else 0xA1B2C3D4
        f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 96, 1))
        for t in times:
            sec = int(t)
            frac = round((t - sec) * (1e9 if nano else 1e6))
            f.write(struct.pack("<IIII", sec, frac, 60, 60))
            f.write(b"\0" * 60)


def pcap_report(path, *args):
    out = subprocess.run(
        [sys.executable, str(BENCH / "pcap_sends.py"), str(path), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_an_even_schedule_is_smooth_and_a_planted_gap_is_found(tmp_path):
    # 5000 sends per second for 4 s, every 200 us.
    start = 1_700_000_000.0
    even = [start + i * 200e-6 for i in range(20_000)]
    write_pcap(tmp_path / "even.pcap", even)
    r = pcap_report(tmp_path / "even.pcap", "--skip", "0.5")
    assert r["smooth"] is True
    assert r["gaps_over_2ms"] == 0
    assert abs(r["gap_max_ms"] - 0.2) < 0.001
    assert abs(r["rate"] - 5000) < 5
    assert r["bin_cv"] < 0.03

    # Take out 3 ms of sends (15 in a row) two seconds in: one gap of 3.2 ms.
    holed = even[:10_000] + even[10_015:]
    write_pcap(tmp_path / "holed.pcap", holed)
    r = pcap_report(tmp_path / "holed.pcap", "--skip", "0.5")
    assert r["smooth"] is False
    assert r["gaps_over_2ms"] == 1
    assert abs(r["gap_max_ms"] - 3.2) < 0.001


def test_microsecond_captures_read_the_same(tmp_path):
    start = 1_700_000_000.0
    times = [start + i * 500e-6 for i in range(8_000)]
    write_pcap(tmp_path / "us.pcap", times, nano=False)
    r = pcap_report(tmp_path / "us.pcap")
    assert abs(r["gap_max_ms"] - 0.5) < 0.002
    assert r["gaps_over_2ms"] == 0


def test_not_a_pcap_is_refused(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\x0a\x0d\x0d\x0a" + b"\0" * 40)
    out = subprocess.run(
        [sys.executable, str(BENCH / "pcap_sends.py"), str(bad)], capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "not a pcap file" in out.stderr


def test_stall_probe_reports_each_core_and_refuses_nonsense():
    out = subprocess.run(
        [sys.executable, str(BENCH / "stall_probe.py"), "--seconds", "0.3", "--cores", "0"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    r = json.loads(out.stdout)
    assert set(r["cores"]) == {"0"}
    assert r["cores"]["0"]["stalls"] >= 0
    assert r["on_every_core_at_once"] == 0
    bad = subprocess.run(
        [sys.executable, str(BENCH / "stall_probe.py"), "--seconds", "9999"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode != 0
    assert "--seconds" in bad.stderr
