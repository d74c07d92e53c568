//! The end-of-run report: a table per target × served region × version, the accounting
//! sums, achieved vs requested rate, pacing lag and SLO verdicts; and the same data as
//! JSON with every histogram in HdrHistogram's V2 encoding (base64), so runs can later be
//! merged exactly.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};
use hdrhistogram::serialization::{Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::config::RunConfig;
use crate::record::{new_histogram, Accounting, GroupHist, Results};
use crate::slo::{fmt_us, Verdict};

/// Pacing p99 above which the report warns that the generator may be the bottleneck.
pub const PACING_WARN_US: u64 = 1_000;

/// Percentiles shown in the table.
pub const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
    ("p99.9", 0.999),
];

fn rate_missed(a: &Accounting) -> bool {
    a.dropped() > 0
}

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// Renders the human-readable report.
pub fn render(r: &Results, verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    if r.interrupted {
        let _ = writeln!(
            out,
            "PARTIAL REPORT: the run was interrupted after {:.1}s of measured time.\n",
            r.measured_secs
        );
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "target", "region", "version", "requests", "rps", "p50", "p90", "p95", "p99", "p99.9",
        "max", "p99 svc", "errors", "dropped",
    ]);
    let q = |h: &Histogram<u64>, p: f64| {
        if h.is_empty() {
            "-".to_string()
        } else {
            fmt_us(h.value_at_quantile(p) as f64)
        }
    };
    let max = |h: &Histogram<u64>| {
        if h.is_empty() {
            "-".to_string()
        } else {
            fmt_us(h.max() as f64)
        }
    };
    for t in &r.targets {
        // Merge status classes per (region, version).
        let mut rows: BTreeMap<(&str, &str), (GroupHist, u64)> = BTreeMap::new();
        let mut all = GroupHist::new();
        for (k, g) in r.groups.iter().filter(|(k, _)| k.target == t.name) {
            let e = rows
                .entry((k.region.as_str(), k.version.as_str()))
                .or_insert_with(|| (GroupHist::new(), 0));
            e.0.merge(g);
            if matches!(k.class.as_str(), "4xx" | "5xx" | "other") {
                e.1 += g.corrected.len();
            }
            all.merge(g);
        }
        let mut push = |region: &str,
                        version: &str,
                        g: &GroupHist,
                        requests: u64,
                        errors: u64,
                        dropped: String| {
            let mut row = vec![
                t.name.clone(),
                region.to_string(),
                version.to_string(),
                requests.to_string(),
                format!("{:.1}", per_sec(requests, r.measured_secs)),
            ];
            row.extend(QUANTILES.iter().map(|(_, p)| q(&g.corrected, *p)));
            row.push(max(&g.corrected));
            row.push(q(&g.service, 0.99));
            row.push(errors.to_string());
            row.push(dropped);
            table.add_row(row);
        };
        for ((region, version), (g, errors)) in &rows {
            push(region, version, g, g.corrected.len(), *errors, "-".into());
        }
        let a = &t.measured;
        push(
            "(all)",
            "(all)",
            &all,
            a.completed(),
            a.failed(),
            a.dropped().to_string(),
        );
    }
    for i in 3..table.column_count() {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let _ = writeln!(out, "Latency from scheduled time (corrected for coordinated omission); \"p99 svc\" is the uncorrected service time.");
    let _ = writeln!(out, "{table}");

    // Accounting.
    let mut acc = Table::new();
    acc.load_preset(UTF8_FULL_CONDENSED);
    acc.set_header(vec![
        "target",
        "phase",
        "scheduled",
        "ok",
        "http errors",
        "timeout",
        "refused",
        "reset",
        "malformed",
        "other",
        "dropped",
        "cancelled",
        "sum",
    ]);
    for t in &r.targets {
        for (phase, a) in [("measured", &t.measured), ("warm-up", &t.warmup)] {
            if phase == "warm-up" && a.scheduled == 0 {
                continue;
            }
            let http = if a.http_errors.is_empty() {
                "0".to_string()
            } else {
                a.http_errors
                    .iter()
                    .map(|(s, n)| format!("{s}:{n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let sum = a.bucket_sum();
            let check = if sum == a.scheduled {
                format!("{sum} = scheduled")
            } else {
                format!("{sum} != {} (BUG)", a.scheduled)
            };
            acc.add_row(vec![
                t.name.clone(),
                phase.to_string(),
                a.scheduled.to_string(),
                a.ok.to_string(),
                http,
                a.timeout.to_string(),
                a.refused.to_string(),
                a.reset.to_string(),
                a.malformed.to_string(),
                a.other_transport.to_string(),
                format!(
                    "{} (cap {}, behind {})",
                    a.dropped(),
                    a.dropped_cap,
                    a.dropped_behind
                ),
                a.cancelled.to_string(),
                check,
            ]);
        }
    }
    let _ = writeln!(
        out,
        "\nAccounting (every scheduled request ends in exactly one bucket):\n{acc}"
    );

    // Rate.
    for t in &r.targets {
        let a = &t.measured;
        let achieved = per_sec(a.scheduled - a.dropped(), r.measured_secs);
        if rate_missed(a) {
            let _ = writeln!(
                out,
                "target rate missed for {}: achieved {:.1} rps of {:.1} requested ({} dropped)",
                t.name,
                achieved,
                t.requested_rps,
                a.dropped()
            );
        } else {
            let _ = writeln!(
                out,
                "rate for {}: achieved {:.1} rps of {:.1} requested",
                t.name, achieved, t.requested_rps
            );
        }
        if t.folded > 0 {
            let _ = writeln!(
                out,
                "  WARNING {}: {} responses carried more distinct region/version values than --max-groups keeps; they are counted under region and version \"other\"",
                t.name, t.folded
            );
        }
        let pool = &t.pool;
        if pool.cap > 0 {
            let _ = writeln!(
                out,
                "  connections for {}: opened {}, peak {} of {} allowed; wait for a free one p99 {}",
                t.name,
                pool.opened,
                pool.peak,
                pool.cap,
                if pool.wait.is_empty() {
                    "-".to_string()
                } else {
                    fmt_us(pool.wait.value_at_quantile(0.99) as f64)
                }
            );
        }
    }
    let limits = crate::limits::limits(r);
    for l in &limits {
        let _ = writeln!(
            out,
            "\nLOADGEN LIMITED THIS RUN for {} (these numbers are partly loadgen's, not the service's):",
            l.target
        );
        for reason in &l.reasons {
            let _ = writeln!(out, "  - {reason}");
        }
        let _ = writeln!(out, "  fix: {}", l.advice);
    }
    let p = &r.pacing;
    if p.is_empty() {
        let _ = writeln!(out, "pacing lag (send - scheduled): no measured requests");
    } else {
        let _ = writeln!(
            out,
            "pacing lag (send - scheduled): p50 {} p99 {} max {} over {} requests{}",
            fmt_us(p.value_at_quantile(0.5) as f64),
            fmt_us(p.value_at_quantile(0.99) as f64),
            fmt_us(p.max() as f64),
            p.len(),
            if p.value_at_quantile(0.99) > PACING_WARN_US {
                "  (WARNING: the generator is falling behind; its own delay inflates latency)"
            } else {
                ""
            }
        );
    }
    if !verdicts.is_empty() {
        let _ = writeln!(out, "\nSLOs:");
        for v in verdicts {
            let _ = writeln!(
                out,
                "  {} {:<50} measured {}",
                if v.pass { "PASS" } else { "FAIL" },
                v.slo,
                v.detail
            );
        }
        let failed = verdicts.iter().filter(|v| !v.pass).count();
        let _ = writeln!(
            out,
            "{}",
            if failed == 0 {
                "verdict: all SLOs passed".to_string()
            } else {
                format!("verdict: {failed} of {} SLOs FAILED", verdicts.len())
            }
        );
    }
    out
}

/// Latency summary of one histogram, microseconds.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    /// HdrHistogram V2 encoding, base64.
    pub hdr: String,
}

/// Encodes a histogram as HdrHistogram V2 (uncompressed), base64.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    match V2Serializer::new().serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(&buf),
        Err(_) => String::new(),
    }
}

/// HdrHistogram V2 cookies (uncompressed and deflate-compressed).
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
/// Size of a V2 header: cookie, payload length, normalising offset, significant digits,
/// lowest, highest, integer-to-double ratio.
const V2_HEADER: usize = 40;
/// Largest encoded histogram read: one of our bounds takes at most a few hundred KiB.
pub const MAX_HDR_BYTES: usize = 4 * 1024 * 1024;

/// Decodes [`encode`]'s output. The header is checked before the decoder runs: it
/// allocates what the header claims, so a forged 70-byte histogram claiming a 4 GB
/// payload, or bounds far wider than ours, must be refused first.
pub fn decode(s: &str) -> anyhow::Result<Histogram<u64>> {
    if s.len() > MAX_HDR_BYTES / 3 * 4 + 4 {
        anyhow::bail!("encoded histogram larger than {} MiB", MAX_HDR_BYTES >> 20);
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(s)?;
    let be32 =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let be64 = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_be_bytes(b)
    };
    if bytes.len() < V2_HEADER {
        anyhow::bail!("histogram data too short ({} bytes)", bytes.len());
    }
    match be32(0) {
        V2_COOKIE => {}
        V2_COMPRESSED_COOKIE => anyhow::bail!("compressed histograms are not accepted here"),
        c => anyhow::bail!("not an HdrHistogram V2 encoding (cookie {c:#x})"),
    }
    let payload = be32(4) as usize;
    if payload > bytes.len() - V2_HEADER {
        anyhow::bail!(
            "histogram claims {payload} payload bytes but carries {}",
            bytes.len() - V2_HEADER
        );
    }
    let (digits, low, high) = (be32(12), be64(16), be64(24));
    if (low, high, digits)
        != (
            1,
            crate::record::HIGHEST_US,
            u32::from(crate::record::SIGFIG),
        )
    {
        anyhow::bail!(
            "histogram bounds ({low}, {high}, {digits} digits) are not loadgen's (1, {}, {})",
            crate::record::HIGHEST_US,
            crate::record::SIGFIG
        );
    }
    let h: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("bad HdrHistogram data: {e:?}"))?;
    let mut out = new_histogram();
    out.add(&h)
        .map_err(|e| anyhow::anyhow!("histogram out of range: {e:?}"))?;
    Ok(out)
}

fn summary(h: &Histogram<u64>) -> Summary {
    let q = |p| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    Summary {
        count: h.len(),
        min: if h.is_empty() { 0 } else { h.min() },
        mean: if h.is_empty() { 0.0 } else { h.mean() },
        p50: q(0.5),
        p90: q(0.9),
        p95: q(0.95),
        p99: q(0.99),
        p999: q(0.999),
        max: h.max(),
        hdr: encode(h),
    }
}

#[derive(Debug, Serialize)]
struct JsonTarget<'a> {
    name: &'a str,
    url: &'a str,
    requested_rps: f64,
    achieved_rps: f64,
    rate_missed: bool,
    /// loadgen itself limited this target (see `limits`).
    generator_limited: bool,
    /// Responses counted under region/version `other` (beyond --max-groups).
    groups_folded: u64,
    accounting: &'a Accounting,
    warmup: &'a Accounting,
    connections: JsonPool,
}

#[derive(Debug, Serialize)]
struct JsonPool {
    opened: u64,
    peak: u64,
    cap: u64,
    queued_at_cap: u64,
    dropped_at_cap: u64,
    /// Time requests waited for a free connection.
    wait: Summary,
}

#[derive(Debug, Serialize)]
struct JsonGroup<'a> {
    target: &'a str,
    region: &'a str,
    version: &'a str,
    status_class: &'a str,
    corrected: Summary,
    service: Summary,
}

#[derive(Debug, Serialize)]
struct JsonSettings {
    stages: Vec<(f64, f64, f64)>,
    warmup_secs: f64,
    arrival: String,
    timeout_secs: f64,
    connections: usize,
    fixed_pool: bool,
    max_in_flight: usize,
    max_lag_secs: f64,
    tick_secs: f64,
    threads: usize,
    seed: u64,
    region_header: String,
    version_header: String,
    shard: String,
}

#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    format: &'static str,
    unit: &'static str,
    histogram: (u64, u64, u8),
    settings: serde_json::Value,
    measured_secs: f64,
    interrupted: bool,
    targets: Vec<JsonTarget<'a>>,
    groups: Vec<JsonGroup<'a>>,
    pacing: Summary,
    /// Some target was limited by loadgen rather than the service: the run's outcome
    /// says so apart from the SLOs (gate on it with the SLO `generator_limited==0`).
    generator_limited: bool,
    limits: Vec<crate::limits::Limit>,
    slos: &'a [Verdict],
    exit_code: u8,
}

/// The run's settings as written in the JSON report.
pub fn settings_json(cfg: &RunConfig) -> serde_json::Value {
    let settings = JsonSettings {
        stages: cfg
            .stages
            .iter()
            .map(|s| (s.duration.as_secs_f64(), s.from, s.to))
            .collect(),
        warmup_secs: cfg.warmup.as_secs_f64(),
        arrival: format!("{:?}", cfg.arrival).to_lowercase(),
        timeout_secs: cfg.timeout.as_secs_f64(),
        connections: cfg.connections,
        fixed_pool: cfg.fixed_pool,
        max_in_flight: cfg.max_in_flight,
        max_lag_secs: cfg.max_lag.as_secs_f64(),
        tick_secs: cfg.tick.as_secs_f64(),
        threads: cfg.threads,
        seed: cfg.seed,
        region_header: cfg.region_header.to_string(),
        version_header: cfg.version_header.to_string(),
        shard: cfg.shard.to_string(),
    };
    serde_json::to_value(settings).unwrap_or_default()
}

/// The JSON report.
pub fn to_json(
    cfg: &RunConfig,
    r: &Results,
    verdicts: &[Verdict],
    exit_code: u8,
) -> anyhow::Result<String> {
    to_json_with(settings_json(cfg), r, verdicts, exit_code)
}

/// The JSON report with the given settings object (a merge carries its inputs').
pub fn to_json_with(
    settings: serde_json::Value,
    r: &Results,
    verdicts: &[Verdict],
    exit_code: u8,
) -> anyhow::Result<String> {
    let limits = crate::limits::limits(r);
    let report = JsonReport {
        format: "loadgen-report-v1",
        unit: "us",
        histogram: (1, crate::record::HIGHEST_US, crate::record::SIGFIG),
        settings,
        measured_secs: r.measured_secs,
        interrupted: r.interrupted,
        targets: r
            .targets
            .iter()
            .map(|t| JsonTarget {
                name: &t.name,
                url: &t.url,
                requested_rps: t.requested_rps,
                achieved_rps: per_sec(t.measured.scheduled - t.measured.dropped(), r.measured_secs),
                rate_missed: rate_missed(&t.measured),
                generator_limited: limits.iter().any(|l| l.target == t.name),
                groups_folded: t.folded,
                accounting: &t.measured,
                warmup: &t.warmup,
                connections: JsonPool {
                    opened: t.pool.opened,
                    peak: t.pool.peak,
                    cap: t.pool.cap,
                    queued_at_cap: t.pool.queued_at_cap,
                    dropped_at_cap: t.pool.dropped_at_cap,
                    wait: summary(&t.pool.wait),
                },
            })
            .collect(),
        groups: r
            .groups
            .iter()
            .map(|(k, g)| JsonGroup {
                target: &k.target,
                region: &k.region,
                version: &k.version,
                status_class: &k.class,
                corrected: summary(&g.corrected),
                service: summary(&g.service),
            })
            .collect(),
        pacing: summary(&r.pacing),
        generator_limited: !limits.is_empty(),
        limits,
        slos: verdicts,
        exit_code,
    };
    Ok(serde_json::to_string_pretty(&report)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn hdr_round_trip() {
        let mut h = new_histogram();
        for v in [1u64, 10, 100, 1000, 123_456, 60_000_000] {
            h.record(v).unwrap();
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }
}
