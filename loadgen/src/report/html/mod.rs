//! The self-contained HTML report (`--html FILE`), in the order a reader asks: what
//! happened (a scenario's events and, per target, answers per second by the region that
//! served them), whether it passed (SLO verdicts and what limited the run), latency over
//! time, latency per target × version with a percentile spectrum per group, and the
//! settings last. Plots are inline SVG drawn here, so the file needs nothing from the
//! network; every piece of user-controlled text (target names, URLs, header values, SLO
//! texts) is HTML-escaped. Each plot's title stands above it.
//!
//! The plots are drawn by `plot`; those over time share one axis (`over_time`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use html_escape::encode_text as esc;

use crate::judge::limits::By;
use crate::judge::Judgement;
use crate::results::{GroupHist, Results};
use crate::timeline::Timeline;
use crate::units::fmt_us;

mod over_time;
mod plot;
use over_time::OverTime;
use plot::spectrum_svg;

/// Target, served region, version.
type Row = (String, String, String);

/// One setting for people: durations as `1s` rather than `max_lag_secs 1.0`, stages as
/// ramps, requests as `POST, 12 B body`; anything else as written.
fn human_setting(key: &str, v: &serde_json::Value) -> (String, String) {
    use serde_json::Value;
    let secs = |x: &Value| {
        x.as_f64().filter(|s| s.is_finite() && *s >= 0.0).map(|s| {
            humantime::format_duration(Duration::from_micros((s * 1e6).round() as u64)).to_string()
        })
    };
    if let Some(name) = key.strip_suffix("_secs") {
        if let Some(d) = secs(v) {
            return (name.replace('_', " "), d);
        }
    }
    let text = match (key, v) {
        ("stages", Value::Array(stages)) => stages
            .iter()
            .filter_map(|st| {
                let st = st.as_array()?;
                let (d, from, to) = (
                    secs(st.first()?)?,
                    st.get(1)?.as_f64()?,
                    st.get(2)?.as_f64()?,
                );
                Some(if from == to {
                    format!("{d} at {from} rps")
                } else {
                    format!("{d} from {from} to {to} rps")
                })
            })
            .collect::<Vec<_>>()
            .join(", then "),
        ("requests", Value::Object(per)) => per
            .iter()
            .map(|(t, r)| {
                let method = r.get("method").and_then(Value::as_str).unwrap_or("GET");
                match r.get("body_bytes").and_then(Value::as_u64) {
                    Some(n) if n > 0 => format!("{t}: {method}, {n} B body"),
                    _ => format!("{t}: {method}"),
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    };
    (key.replace('_', " "), text)
}

const HEAD: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>loadgen report</title><style>body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}.pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}.plots{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}figcaption{font-weight:bold;font-size:0.9em;margin:0 0 0.3em 0}</style></head><body>\n<h1>loadgen report</h1>\n";

/// Renders the report. `settings` is the run's settings object (as in the JSON report);
/// `timeline`, when the run kept one, adds the plots over time.
pub fn render(
    settings: &serde_json::Value,
    r: &Results,
    timeline: Option<&Timeline>,
    events: &[crate::events::Event],
    judgement: &Judgement,
) -> String {
    let mut o = String::from(HEAD);
    if r.interrupted {
        o.push_str("<p class=\"fail\">Partial report: the run was interrupted.</p>\n");
    }
    let over_time = timeline.and_then(|tl| OverTime::new(r, tl, events));
    if let Some(ot) = &over_time {
        happened(&mut o, ot, events);
    }
    verdicts(&mut o, judgement);
    if let Some(ot) = &over_time {
        let _ = write!(
            o,
            "<h2>Latency over time</h2>\n<p>Per {:.3} s interval: the generator's own pacing lag, then latency from each request's scheduled time per target, region and version (a line breaks where its group had no answers).</p>\n<div class=\"plots\">",
            timeline.map_or(0.0, |t| t.interval_secs)
        );
        ot.latency(&mut o);
        o.push_str("</div>\n");
    }
    let rows = rows(r);
    latency_table(&mut o, r, &rows);
    spectra(&mut o, &rows);
    settings_table(&mut o, r, settings);
    o.push_str("</body></html>\n");
    o
}

/// What happened: the events, numbered as on the plots, and per target the answers per
/// second by the region and version that served them (a failover or a canary shift).
fn happened(o: &mut String, ot: &OverTime<'_>, events: &[crate::events::Event]) {
    o.push_str("<h2>What happened</h2>\n");
    if !events.is_empty() {
        o.push_str("<p>Events, numbered on every plot over time:</p>\n<ol class=\"events\">");
        for e in events {
            let _ = write!(o, "<li>t={:.1} s: {}</li>", ot.event_secs(e), esc(&e.what));
        }
        o.push_str("</ol>\n");
    }
    o.push_str("<p>Answers per second by the region and version that served them, with HTTP errors, requests that got no answer and drops, by completion time from the start of the measured window.</p>\n<div class=\"plots\">");
    ot.answers(o);
    o.push_str("</div>\n");
}

/// The SLO verdicts and what limited the run, as the judge decided them.
fn verdicts(o: &mut String, judgement: &Judgement) {
    o.push_str("<h2>SLO verdicts</h2>\n");
    if judgement.verdicts.is_empty() {
        o.push_str("<p>No SLOs were given.</p>\n");
    } else {
        o.push_str("<table><tr><th>SLO</th><th>measured</th><th>verdict</th></tr>");
        for v in &judgement.verdicts {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                esc(&v.slo),
                esc(&v.detail),
                if v.pass { "pass" } else { "fail" },
                if v.pass { "PASS" } else { "FAIL" }
            );
        }
        o.push_str("</table>\n");
    }
    for l in &judgement.limits {
        let what = match l.by {
            By::Loadgen => "Loadgen limited this run for",
            By::Target => "Target not accepting connections:",
        };
        let _ = write!(o, "<p class=\"fail\">{what} {}</p>\n<ul>", esc(&l.target));
        for reason in &l.reasons {
            let _ = write!(o, "<li>{}</li>", esc(reason));
        }
        let _ = writeln!(o, "<li>fix: {}</li></ul>", esc(&l.advice));
    }
}

/// Each target × served region × version's histograms (status classes added) and its
/// HTTP errors.
fn rows(r: &Results) -> BTreeMap<Row, (GroupHist, u64)> {
    let mut rows: BTreeMap<Row, (GroupHist, u64)> = BTreeMap::new();
    for (k, g) in &r.groups {
        let e = rows
            .entry((k.target_label(), k.region.clone(), k.version.clone()))
            .or_insert_with(|| (GroupHist::new(), 0));
        e.0.merge(g);
        if matches!(k.class.as_str(), "4xx" | "5xx" | "other") {
            e.1 += g.corrected.len();
        }
    }
    rows
}

/// Latency per target × region × version, then each target's accounting.
fn latency_table(o: &mut String, r: &Results, rows: &BTreeMap<Row, (GroupHist, u64)>) {
    o.push_str("<h2>Latency per target × version</h2>\n<p>From each request's scheduled time (corrected for coordinated omission).</p>\n<table><tr><th>target</th><th>region</th><th>version</th><th>requests</th><th>rps</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th><th>errors</th></tr>");
    for ((t, rg, v), (g, errors)) in rows {
        let h = &g.corrected;
        let q = |p: f64| fmt_us(h.value_at_quantile(p) as f64);
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{errors}</td></tr>",
            esc(t),
            esc(rg),
            esc(v),
            h.len(),
            r.per_sec(h.len()),
            q(0.5),
            q(0.9),
            q(0.95),
            q(0.99),
            q(0.999),
            fmt_us(h.max() as f64)
        );
    }
    o.push_str("</table>\n");
    for t in &r.targets {
        let a = &t.accounts.measured;
        let checks = if a.check > 0 {
            format!(", failed a check {}", a.check)
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "<p>{}: scheduled {}, ok {}{checks}, failed {}, dropped {}, cancelled {}</p>",
            esc(&t.name),
            a.scheduled,
            a.ok,
            a.failed(),
            a.dropped(),
            a.cancelled
        );
    }
}

/// A percentile spectrum per group, its title above it.
fn spectra(o: &mut String, rows: &BTreeMap<Row, (GroupHist, u64)>) {
    o.push_str("<h2>Percentile spectrum per group</h2>\n<div class=\"plots\">");
    for ((t, rg, v), (g, _)) in rows {
        if g.corrected.is_empty() {
            continue;
        }
        let title = format!("target {t}, region {rg}, version {v}");
        let _ = write!(
            o,
            "<figure><figcaption>{}</figcaption>{}</figure>",
            esc(&title),
            spectrum_svg(&g.corrected, &title)
        );
    }
    o.push_str("</div>\n");
}

/// The run's settings in human units, last: a reader looks them up, not at them.
fn settings_table(o: &mut String, r: &Results, settings: &serde_json::Value) {
    o.push_str("<h2>Run settings</h2>\n<table>");
    let _ = write!(
        o,
        "<tr><th>measured time</th><td>{:.1} s</td></tr>",
        r.measured_secs
    );
    for t in &r.targets {
        let _ = write!(
            o,
            "<tr><th>target {}</th><td>{} ({:.1} rps requested)</td></tr>",
            esc(&t.name),
            esc(&t.url),
            t.requested_rps
        );
    }
    if let serde_json::Value::Object(m) = settings {
        for (k, v) in m {
            let (k, v) = human_setting(k, v);
            let _ = write!(o, "<tr><th>{}</th><td>{}</td></tr>", esc(&k), esc(&v));
        }
    }
    o.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_read_in_human_units() {
        let h = |k: &str, v: serde_json::Value| human_setting(k, &v);
        assert_eq!(
            h("max_lag_secs", json!(1.0)),
            ("max lag".into(), "1s".into())
        );
        assert_eq!(
            h("tick_secs", json!(0.0002)),
            ("tick".into(), "200us".into())
        );
        assert_eq!(
            h(
                "stages",
                json!([[30.0, 0.0, 1000.0], [120.0, 1000.0, 1000.0]])
            )
            .1,
            "30s from 0 to 1000 rps, then 2m at 1000 rps"
        );
        assert_eq!(
            h(
                "requests",
                json!({"eu": {"method": "POST", "body_bytes": 12}, "us": {"method": "GET", "body_bytes": 0}})
            )
            .1,
            "eu: POST, 12 B body; us: GET"
        );
        // What is not a duration stays as written.
        assert_eq!(
            h("timeout_secs", json!("x")),
            ("timeout secs".into(), "x".into())
        );
        assert_eq!(h("seed", json!(7)), ("seed".into(), "7".into()));
    }
}
