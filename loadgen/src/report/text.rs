//! The terminal report: a table per target × served region × version, the accounting
//! sums, achieved vs requested rate, connection pools, what limited the run, pacing lag
//! and SLO verdicts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use hdrhistogram::Histogram;

use crate::judge::limits::{By, Limit};
use crate::judge::slo::Verdict;
use crate::judge::Judgement;
use crate::results::{GroupHist, Results};
use crate::units::fmt_us;

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

/// Renders the human-readable report.
pub fn render(r: &Results, judgement: &Judgement) -> String {
    render_styled(r, judgement, &Style::default())
}

/// How the report is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Every column and the full accounting table.
    pub wide: bool,
    /// Columns available; tables wrap inside their cells to fit.
    pub width: u16,
}

impl Default for Style {
    fn default() -> Style {
        Style {
            wide: false,
            width: 100,
        }
    }
}

impl Style {
    /// The style for stdout: the terminal's width when there is one.
    pub fn for_stdout(wide: bool) -> Style {
        let width = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            Table::new().width().unwrap_or(100)
        } else {
            100
        };
        Style {
            wide,
            width: width.max(40),
        }
    }
}

/// Renders the human-readable report in `style`: a list of sections, top to bottom.
pub fn render_styled(r: &Results, judgement: &Judgement, style: &Style) -> String {
    let mut out = String::new();
    if r.interrupted {
        let _ = writeln!(
            out,
            "PARTIAL REPORT: the run was interrupted after {:.1}s of measured time.\n",
            r.measured_secs
        );
    }
    if style.wide {
        let _ = writeln!(out, "Latency from scheduled time (corrected for coordinated omission); \"p99 svc\" is the uncorrected service time.");
    } else {
        let _ = writeln!(
            out,
            "Latency from each request's scheduled time (coordinated omission corrected).\n\
             --wide adds p90, p99.9 and the uncorrected service time."
        );
    }
    let _ = writeln!(out, "{}", latency_table(r, style));
    super::accounting::write(&mut out, r, style.wide, style.width);
    target_lines(&mut out, r);
    limit_lines(&mut out, &judgement.limits);
    super::timing::lines(&mut out, r, &judgement.ticks);
    pacing_line(&mut out, r);
    rows_line(&mut out, r);
    verdict_lines(&mut out, &judgement.verdicts);
    out
}

/// Latency per target (and request name, from a requests file), served region and version,
/// and each target's total.
fn latency_table(r: &Results, style: &Style) -> Table {
    let wide = style.wide;
    // The compact report fits `width`, wrapping inside cells if it must; --wide takes
    // the width every column needs.
    let fit = |t: &mut Table| {
        if !wide {
            t.set_content_arrangement(ContentArrangement::Dynamic);
            t.set_width(style.width);
        }
    };
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    if wide {
        table.set_header(vec![
            "target", "region", "version", "requests", "rps", "p50", "p90", "p95", "p99", "p99.9",
            "max", "p99 svc", "errors", "dropped",
        ]);
    } else {
        table.set_header(vec![
            "target", "region", "version", "reqs", "rps", "p50", "p95", "p99", "max", "err", "drop",
        ]);
    }
    fit(&mut table);
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
        // Merge status classes per (request name, region, version).
        let mut rows: BTreeMap<(String, &str, &str), (GroupHist, u64)> = BTreeMap::new();
        let mut all = GroupHist::new();
        for (k, g) in r.groups.iter().filter(|(k, _)| k.target == t.name) {
            let e = rows
                .entry((k.target_label(), k.region.as_str(), k.version.as_str()))
                .or_insert_with(|| (GroupHist::new(), 0));
            e.0.merge(g);
            if matches!(k.class.as_str(), "4xx" | "5xx" | "other") {
                e.1 += g.corrected.len();
            }
            all.merge(g);
        }
        let mut push = |label: &str,
                        region: &str,
                        version: &str,
                        g: &GroupHist,
                        requests: u64,
                        errors: u64,
                        dropped: String| {
            let mut row = vec![
                label.to_string(),
                region.to_string(),
                version.to_string(),
                requests.to_string(),
                format!("{:.1}", r.per_sec(requests)),
            ];
            if wide {
                row.extend(QUANTILES.iter().map(|(_, p)| q(&g.corrected, *p)));
                row.push(max(&g.corrected));
                row.push(q(&g.service, 0.99));
            } else {
                row.extend([0.5, 0.95, 0.99].iter().map(|p| q(&g.corrected, *p)));
                row.push(max(&g.corrected));
            }
            row.push(errors.to_string());
            row.push(dropped);
            table.add_row(row);
        };
        for ((label, region, version), (g, errors)) in &rows {
            push(
                label,
                region,
                version,
                g,
                g.corrected.len(),
                *errors,
                "-".into(),
            );
        }
        let a = &t.accounts.measured;
        push(
            &t.name,
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
    table
}

/// Per target: the rate achieved, how its connections and lookups went, and its warnings.
fn target_lines(out: &mut String, r: &Results) {
    for t in &r.targets {
        let a = &t.accounts.measured;
        let achieved = r.per_sec(a.scheduled - a.dropped());
        if a.rate_missed() {
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
        // Sent on time is not answered: say so when most requests got no answer at all.
        let answered = a.answered();
        if a.scheduled > 0 && answered * 2 < a.scheduled - a.dropped() {
            let _ = writeln!(
                out,
                "  but only {:.1} rps answered: {answered} of {} scheduled requests got an answer ({} timeouts, {} transport errors, {} dropped)",
                r.per_sec(answered),
                a.scheduled,
                a.timeouts(),
                a.transport_total(),
                a.dropped()
            );
        }
        if t.accounts.folded > 0 {
            let _ = writeln!(
                out,
                "  WARNING {}: {} responses carried more distinct region/version values than --max-groups keeps; they are counted under region and version \"other\"",
                t.name, t.accounts.folded
            );
        }
        let pool = &t.accounts.pool;
        if pool.cap > 0 {
            let _ = writeln!(
                out,
                "  connections for {} ({}): opened {}, peak {} of {} allowed; wait for a free one p99 {}",
                t.name,
                crate::pool::protocol(pool, t.url.starts_with("https:")),
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
        if pool.h2.conns > 0 {
            h2_line(out, &t.name, &pool.h2);
        }
        if pool.handshakes > 0 || pool.tls_error.is_some() {
            let _ = writeln!(
                out,
                "  TLS for {}: {} handshakes ({} resumed), timed in the requests that opened them",
                t.name, pool.handshakes, pool.resumed
            );
        }
        if let Some(e) = &pool.tls_error {
            let failed = t.accounts.measured.tls + t.accounts.warmup.tls;
            let _ = writeln!(
                out,
                "  TLS FAILED for {}: {failed} requests failed in TLS; last error: {e}",
                t.name
            );
        }
        if pool.unasked > 0 {
            let _ = writeln!(
                out,
                "  WARNING {}: {} times an idle connection held an answer nobody asked for: the server answers some requests twice or late. HTTP/1.1 cannot tell whose an answer is, so answers counted here may belong to other requests (one that arrives after the next request went out is taken for its answer)",
                t.name, pool.unasked
            );
        }
        if t.accounts.measured.dns + t.accounts.warmup.dns > 0 {
            let _ = writeln!(
                out,
                "  DNS FAILED for {}: {} requests found no address to connect to",
                t.name,
                t.accounts.measured.dns + t.accounts.warmup.dns
            );
        }
        if pool.lookups > 0 {
            let _ = writeln!(
                out,
                "  DNS for {}: looked up again {} times, {} failed (last addresses kept), {} changed the addresses",
                t.name, pool.lookups, pool.lookup_failures, pool.address_changes
            );
        }
    }
}

/// What a target's HTTP/2 connections went through: their streams, and what the
/// server did to them, each said only when it happened.
fn h2_line(out: &mut String, name: &str, h: &crate::pool::H2Stats) {
    let mut parts = vec![format!(
        "up to {} streams at once on a connection (limit {})",
        h.peak_streams, h.least_limit
    )];
    let said = [
        (h.server_closed, "connections the server ended"),
        (h.refused, "requests refused unprocessed (sent once more)"),
        (h.resets, "streams the server reset"),
        (h.limit_lowered, "times the server lowered its stream limit"),
        (
            h.flow_stalls,
            "request bodies that waited for its flow-control window",
        ),
    ];
    for (n, what) in said {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let _ = writeln!(out, "  HTTP/2 for {name}: {}", parts.join("; "));
}

/// What limited the run, when it was not the service's answers (the judge decides).
fn limit_lines(out: &mut String, limits: &[Limit]) {
    for l in limits {
        let _ = match l.by {
            By::Loadgen => writeln!(
                out,
                "\nLOADGEN LIMITED THIS RUN for {} (these numbers are partly loadgen's, not the service's):",
                l.target
            ),
            By::Target => writeln!(
                out,
                "\nTARGET NOT ACCEPTING CONNECTIONS: {} (not loadgen's limit: requests waited for connections it never completed):",
                l.target
            ),
        };
        for reason in &l.reasons {
            let _ = writeln!(out, "  - {reason}");
        }
        let _ = writeln!(out, "  fix: {}", l.advice);
    }
}

/// What `--out` wrote, and loudly what its file lacks.
fn rows_line(out: &mut String, r: &Results) {
    let Some(o) = &r.rows else {
        return;
    };
    let total = o.written + o.lost;
    let _ = if o.lost == 0 && o.error.is_none() {
        writeln!(
            out,
            "per-request output: {} rows ({}) in {}; the writer's CPU {:.0} ms ({:.2} µs a row)",
            o.written,
            o.format,
            o.path,
            o.writer_cpu_secs * 1e3,
            o.writer_cpu_secs * 1e6 / o.written.max(1) as f64
        )
    } else {
        writeln!(
            out,
            "WARNING per-request output: {} of {total} rows are not in {}{}; the measurements \
             above are whole (rows are never waited for, so a slow disk cannot slow the run)",
            o.lost,
            o.path,
            o.error.as_deref().map_or_else(
                || ": the disk could not keep up".to_string(),
                |e| format!(": {e}")
            )
        )
    };
}

/// The generator's own pacing lag.
fn pacing_line(out: &mut String, r: &Results) {
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
                "\n  WARNING: the generator is falling behind; its own delay inflates latency"
            } else {
                ""
            }
        );
    }
}

/// The SLO verdicts and the overall one.
fn verdict_lines(out: &mut String, verdicts: &[Verdict]) {
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
}
