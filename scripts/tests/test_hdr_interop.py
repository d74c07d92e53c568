"""loadgen's JSON histograms are the standard form: HdrHistogram's own Python decoder
(PyPI `hdrhistogram`) reads every one as it is, with the same count, and the values at
the report's percentile ranks are the report's.

The rank is the one difference between implementations: loadgen (the Rust crate) takes
the value at rank ceil(q x count), HdrHistogram's Java and Python round q x count half
up, so at small counts their p99 can be the neighbouring rank's value. The test reads
the decoded histogram at loadgen's rank, which proves the histogram itself is the same.
"""

from __future__ import annotations

import json
import subprocess

from hdrh.histogram import HdrHistogram

from conftest import loadgen_bin, start_echo


import math


def same_bucket(h: HdrHistogram, a: int, b: int) -> bool:
    return h.get_lowest_equivalent_value(a) == h.get_lowest_equivalent_value(b)


def value_at_rank(h: HdrHistogram, q: float) -> int:
    """The value at rank ceil(q x count), walking the decoded histogram's buckets."""
    rank = max(1, math.ceil(q * h.get_total_count()))
    seen = 0
    for item in h.get_recorded_iterator():
        seen += item.count_added_in_this_iter_step
        if seen >= rank:
            return h.get_highest_equivalent_value(item.value_iterated_to)
    raise AssertionError("rank past the end")


def test_every_histogram_decodes_with_hdrhistograms_own_decoder(tmp_path):
    us, eu = start_echo("us", "v1"), start_echo("eu", "v2", "--faults", "delay=5ms:20&status=503:10")
    report = tmp_path / "r.json"
    try:
        proc = subprocess.run([str(loadgen_bin()), "--target", f"us=http://127.0.0.1:{us.port}/",
                               "--target", f"eu=http://127.0.0.1:{eu.port}/", "--rps", "200",
                               "--duration", "2s", "--no-progress", "--json", str(report)],
                              capture_output=True, text=True, timeout=120)
    finally:
        us.stop()
        eu.stop()
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(report.read_text())
    checked = 0
    summaries = [(f"group {g['target']}/{g['region']}/{g['version']}/{g['status_class']} {kind}", g[kind])
                 for g in doc["groups"] for kind in ("corrected", "service")]
    summaries.append(("pacing", doc["pacing"]))
    summaries += [(f"{t['name']} connection wait", t["connections"]["wait"]) for t in doc["targets"]]
    for what, s in summaries:
        h = HdrHistogram.decode(s["hdr"])
        assert h.get_total_count() == s["count"], what
        if s["count"] == 0:
            continue
        for q, key in ((0.5, "p50"), (0.99, "p99")):
            got = value_at_rank(h, q)
            assert same_bucket(h, got, s[key]), (what, q, got, s[key])
            # HdrHistogram's own percentile: the same or the neighbouring rank's value.
            theirs = h.get_value_at_percentile(q * 100)
            lo = value_at_rank(h, max(0.0, q - 1.0 / h.get_total_count()))
            assert lo <= theirs <= got or same_bucket(h, theirs, got), (what, q, theirs, got)
        assert same_bucket(h, h.get_max_value(), s["max"]), what
        checked += 1
    # us v1 2xx, eu v2 2xx and 5xx (two kinds each), pacing, two waits.
    assert checked >= 7, checked
