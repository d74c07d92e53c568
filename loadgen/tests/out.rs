//! `--out csv=FILE` and `--out jsonl=FILE` over real runs against echo-svc: one row per
//! measured scheduled request, outcomes that sum to the accounting, latencies that match
//! the HDR percentiles, and a file the disk refuses said so in the report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use loadgen::results::{Accounting, GroupKey};

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("loadgen-out-{}-{name}", std::process::id()))
}

/// Nearest-rank percentile of sorted values, as HdrHistogram picks its sample.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Outcome counts as the accounting has them.
fn buckets(a: &Accounting) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (k, v) in [
        ("ok", a.ok),
        ("http_error", a.http_error_total()),
        ("timeout", a.timeout),
        ("connect_timeout", a.connect_timeout),
        ("refused", a.refused),
        ("reset", a.reset),
        ("malformed", a.malformed),
        ("dropped_cap", a.dropped_cap),
        ("dropped_behind", a.dropped_behind),
        ("cancelled", a.cancelled),
    ] {
        if v > 0 {
            m.insert(k.to_string(), v);
        }
    }
    m
}

#[test]
fn a_csv_row_per_scheduled_request_with_the_hdr_latencies() {
    let csv = temp("run.csv");
    let spec = format!("csv={}", csv.display());
    // One answer in ten a 503, some slow: both outcomes and a spread of latencies.
    let out = run_against(
        "us",
        "status=503:10&delay=5ms:20",
        &["--rps", "400", "--duration", "2s", "--out", &spec],
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    std::fs::remove_file(&csv).ok();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("due_us,sent_us,end_us,latency_us,target,name,region,version,status,bytes,outcome")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let a = &out.results.targets[0].accounts.measured;
    assert_eq!(
        rows.len() as u64,
        a.scheduled,
        "one row per scheduled request"
    );
    let mut outcomes = BTreeMap::new();
    for r in &rows {
        assert_eq!(r.len(), 11, "{r:?}");
        *outcomes.entry(r[10].to_string()).or_insert(0u64) += 1;
    }
    assert_eq!(outcomes, buckets(a));
    // The 2xx answers' latencies are the 2xx group's HDR histogram, sample for sample.
    let mut ok: Vec<u64> = rows
        .iter()
        .filter(|r| r[10] == "ok")
        .map(|r| {
            let named = (r[4], r[5], r[6], r[7], r[8]);
            assert_eq!(named, ("us", "", "us", "v1", "200"), "{r:?}");
            let (due, end): (i64, i64) = (r[0].parse().unwrap(), r[2].parse().unwrap());
            let sent: i64 = r[1].parse().unwrap();
            assert!(due <= sent && sent <= end, "{r:?}");
            r[3].parse().unwrap()
        })
        .collect();
    ok.sort_unstable();
    let h = &out.results.groups[&GroupKey::new("us", "us", "v1", "2xx")].corrected;
    assert_eq!(ok.len() as u64, h.len());
    for q in [0.5, 0.9, 0.99, 1.0] {
        let (from_rows, from_hdr) = (percentile(&ok, q), h.value_at_quantile(q));
        // HdrHistogram at 3 significant digits: its value is within 0.1% of a sample's.
        let slack = (from_rows / 500).max(1);
        assert!(
            from_rows.abs_diff(from_hdr) <= slack,
            "p{q}: rows {from_rows}µs, HDR {from_hdr}µs"
        );
    }
    let stats = out.results.rows.as_ref().unwrap();
    assert_eq!((stats.written, stats.lost), (a.scheduled, 0));
    let report = loadgen::report::text::render(&out.results, &out.judgement);
    assert!(
        report.contains(&format!("per-request output: {} rows (csv)", a.scheduled)),
        "{report}"
    );
}

#[test]
fn jsonl_rows_cover_answers_and_requests_that_got_none() {
    let rt = server_runtime();
    let e = echo(&rt, "us", "v1", "");
    // Port 1 on loopback: nothing listens, every connect is refused.
    let (us, dead) = (
        format!("us=http://{}/", e.addr()),
        "dead=http://127.0.0.1:1/",
    );
    let jsonl = temp("run.jsonl");
    let spec = format!("jsonl={}", jsonl.display());
    let cfg = config(&[
        "--target",
        &us,
        "--target",
        dead,
        "--rps",
        "200",
        "--duration",
        "1s",
        "--out",
        &spec,
    ]);
    let out = loadgen::execute(cfg, false).unwrap();
    rt.block_on(e.shutdown()).unwrap();
    let text = std::fs::read_to_string(&jsonl).unwrap();
    std::fs::remove_file(&jsonl).ok();
    let mut per: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let outcome = v["outcome"].as_str().unwrap().to_string();
        if outcome == "refused" {
            assert!(v["status"].is_null() && v["region"].is_null(), "{v}");
            assert!(v["due_us"].as_i64().is_some(), "{v}");
        } else {
            assert_eq!(v["status"], 200, "{v}");
            assert_eq!(v["region"], "us", "{v}");
        }
        *per.entry(v["target"].as_str().unwrap().to_string())
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }
    for t in &out.results.targets {
        assert_eq!(per[&t.name], buckets(&t.accounts.measured), "{}", t.name);
    }
    assert!(per["dead"].contains_key("refused"));
}

/// Linux's /dev/full stands for a full disk (macOS has none).
#[cfg(target_os = "linux")]
#[test]
fn a_disk_that_refuses_the_rows_is_named_and_the_run_is_whole() {
    // /dev/full takes the open and refuses every write (ENOSPC).
    let out = run_against(
        "us",
        "",
        &["--rps", "200", "--duration", "1s", "--out", "csv=/dev/full"],
    );
    let a = &out.results.targets[0].accounts.measured;
    assert_eq!(a.ok, a.scheduled, "the measurements are whole: {a:?}");
    let stats = out.results.rows.as_ref().unwrap();
    assert_eq!(stats.written + stats.lost, a.scheduled);
    assert!(stats.lost > 0 && stats.error.is_some(), "{stats:?}");
    let report = loadgen::report::text::render(&out.results, &out.judgement);
    assert!(
        report.contains("WARNING per-request output:")
            && report.contains("rows are not in /dev/full"),
        "{report}"
    );
}

#[test]
fn a_bad_out_flag_is_a_usage_error_before_any_request() {
    for (arg, says) in [
        ("xml=/tmp/x", "the formats are csv and jsonl"),
        ("/tmp/x.csv", "expected csv=FILE"),
        ("csv=/no/such/folder/x.csv", "no such folder"),
    ] {
        common::assert_usage_error(&["--out", arg], says);
    }
}
