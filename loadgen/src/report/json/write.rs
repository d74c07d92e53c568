//! Writing the JSON report.

use serde::Serialize;

use super::{encode, FORMAT};
use crate::judge::slo::Verdict;
use crate::judge::Judgement;
use crate::results::{Accounting, Results};
use hdrhistogram::Histogram;

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
    /// What its connections spoke: `http/1.1`, `h2`, `h2c`, or `h2 and http/1.1`.
    protocol: &'static str,
    connections: JsonPool<'a>,
    /// Corrected latency of each tick's first request (empty in exact mode): the
    /// reference of `tick_check`.
    first_of_tick: Summary,
    /// Measured requests per tick they were sent at (several with `--tick auto`).
    ticks: Vec<JsonTicks>,
    /// Whether the kernel's arrival stamps were receipt times (see the text report).
    arrival_stamps: &'a crate::stamps::StampCounts,
}

#[derive(Debug, Serialize)]
struct JsonTicks {
    tick_us: f64,
    requests: u64,
}

#[derive(Debug, Serialize)]
struct JsonPool<'a> {
    opened: u64,
    peak: u64,
    cap: u64,
    queued_at_cap: u64,
    dropped_at_cap: u64,
    /// Requests whose timeout passed while they waited for a connection.
    expired_waiting: u64,
    /// Connects refused by loadgen's own open-files limit.
    fd_exhausted: u64,
    /// The cap was lowered to fit loadgen's open-files limit.
    fd_limited: bool,
    /// Idle connections that held an answer nobody asked for.
    unasked: u64,
    /// Time requests waited for a free connection.
    wait: Summary,
    dns_lookups: u64,
    dns_failures: u64,
    dns_changes: u64,
    tls_handshakes: u64,
    tls_resumed: u64,
    /// The last TLS handshake error, if any failed.
    tls_error: Option<&'a str>,
    /// Bytes of the measured requests that got an answer, and of those answers.
    bytes_sent: u64,
    bytes_received: u64,
    /// What its HTTP/2 connections went through.
    h2: &'a crate::pool::H2Stats,
}

#[derive(Debug, Serialize)]
struct JsonGroup<'a> {
    target: &'a str,
    region: &'a str,
    version: &'a str,
    status_class: &'a str,
    /// The request's name from a requests file (absent when unnamed).
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    corrected: Summary,
    service: Summary,
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
    /// The schedule's tick (0: exact pacing, each request at its own due time; otherwise
    /// requests are sent at, and timed from, tick boundaries).
    tick_us: f64,
    /// `--tick auto` chose the ticks, second by second: `tick_us` is the one most requests
    /// went at, and each target's `ticks` has them all.
    tick_auto: bool,
    /// How loadgen waited for due times and timed answers on the machine that ran it.
    timing: &'a str,
    /// `--out`: the file, its rows and any it lacks (absent without `--out`).
    #[serde(skip_serializing_if = "Option::is_none")]
    per_request_output: Option<&'a crate::results::RowStats>,
    /// Some target was limited by loadgen rather than the service: the run's outcome
    /// says so apart from the SLOs (gate on it with the SLO `generator_limited==0`).
    generator_limited: bool,
    limits: &'a [crate::judge::limits::Limit],
    /// Per target, whether the tick's bursts moved the median (absent in exact mode).
    tick_check: &'a [crate::judge::tick::TickCheck],
    slos: &'a [Verdict],
    exit_code: u8,
}

/// The JSON report with the given settings object (a merge carries its inputs').
pub fn to_json_with(
    settings: serde_json::Value,
    r: &Results,
    judgement: &Judgement,
) -> anyhow::Result<String> {
    let report = JsonReport {
        format: FORMAT,
        unit: "us",
        histogram: (1, crate::hist::HIGHEST_US, crate::hist::SIGFIG),
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
                achieved_rps: r
                    .per_sec(t.accounts.measured.scheduled - t.accounts.measured.dropped()),
                rate_missed: t.accounts.measured.rate_missed(),
                generator_limited: judgement.generator_limited(Some(&t.name)),
                groups_folded: t.accounts.folded,
                accounting: &t.accounts.measured,
                warmup: &t.accounts.warmup,
                connections: JsonPool {
                    opened: t.accounts.pool.opened,
                    peak: t.accounts.pool.peak,
                    cap: t.accounts.pool.cap,
                    queued_at_cap: t.accounts.pool.queued_at_cap,
                    dropped_at_cap: t.accounts.pool.dropped_at_cap,
                    expired_waiting: t.accounts.pool.expired_waiting,
                    fd_exhausted: t.accounts.pool.fd_exhausted,
                    fd_limited: t.accounts.pool.fd_limited,
                    unasked: t.accounts.pool.unasked,
                    wait: summary(&t.accounts.pool.wait),
                    dns_lookups: t.accounts.pool.lookups,
                    dns_failures: t.accounts.pool.lookup_failures,
                    dns_changes: t.accounts.pool.address_changes,
                    tls_handshakes: t.accounts.pool.handshakes,
                    tls_resumed: t.accounts.pool.resumed,
                    tls_error: t.accounts.pool.tls_error.as_deref(),
                    bytes_sent: t.accounts.pool.bytes_sent,
                    bytes_received: t.accounts.pool.bytes_received,
                    h2: &t.accounts.pool.h2,
                },
                protocol: crate::pool::protocol(&t.accounts.pool, t.url.starts_with("https:")),
                first_of_tick: summary(&t.accounts.lead),
                ticks: t
                    .accounts
                    .ticks
                    .iter()
                    .map(|(tick, requests)| JsonTicks {
                        tick_us: tick as f64 / 1000.0,
                        requests,
                    })
                    .collect(),
                arrival_stamps: &t.accounts.stamps,
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
                name: &k.name,
                corrected: summary(&g.corrected),
                service: summary(&g.service),
            })
            .collect(),
        pacing: summary(&r.pacing),
        tick_us: r.tick_ns as f64 / 1000.0,
        tick_auto: r.tick_auto,
        timing: &r.timing,
        per_request_output: r.rows.as_ref(),
        generator_limited: judgement.generator_limited(None),
        limits: &judgement.limits,
        tick_check: &judgement.ticks,
        slos: &judgement.verdicts,
        exit_code: judgement.exit_code,
    };
    Ok(serde_json::to_string_pretty(&report)?)
}
