//! The self-contained HTML report (`--html FILE`): run settings, the per target × version
//! table, a percentile-spectrum plot per group and the SLO verdicts. Plots are inline SVG
//! drawn here, so the file needs nothing from the network; every piece of user-controlled
//! text (target names, URLs, header values, SLO texts) is HTML-escaped.
//!
//! The plots themselves (percentile spectrum, values over time with a scenario's events
//! marked) are drawn by `plot`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use html_escape::encode_text as esc;

use crate::judge::slo::Verdict;
use crate::results::{GroupHist, Results, Timeline};
use crate::units::fmt_us;

mod plot;
use plot::{over_time_svg, spectrum_svg, Mark, Series};

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

/// Renders the report. `settings` is the run's settings object (as in the JSON report);
/// `timeline`, when the run kept one, adds latency-over-time plots.
pub fn render(
    settings: &serde_json::Value,
    r: &Results,
    timeline: Option<&Timeline>,
    events: &[crate::events::Event],
    verdicts: &[Verdict],
) -> String {
    let mut o = String::new();
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>loadgen report</title><style>body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}.pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}.plots{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}</style></head><body>\n<h1>loadgen report</h1>\n");
    if r.interrupted {
        o.push_str("<p class=\"fail\">Partial report: the run was interrupted.</p>\n");
    }
    // Verdicts first: the question a run answers is whether it passed.
    o.push_str("<h2>SLO verdicts</h2>\n");
    if verdicts.is_empty() {
        o.push_str("<p>No SLOs were given.</p>\n");
    } else {
        o.push_str("<table><tr><th>SLO</th><th>measured</th><th>verdict</th></tr>");
        for v in verdicts {
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
    // Settings.
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

    // Table per target × region × version.
    let mut rows: BTreeMap<(String, String, String), (GroupHist, u64)> = BTreeMap::new();
    for (k, g) in &r.groups {
        let e = rows
            .entry((k.target.clone(), k.region.clone(), k.version.clone()))
            .or_insert_with(|| (GroupHist::new(), 0));
        e.0.merge(g);
        if matches!(k.class.as_str(), "4xx" | "5xx" | "other") {
            e.1 += g.corrected.len();
        }
    }
    o.push_str("<h2>Latency per target × version</h2>\n<p>From each request's scheduled time (corrected for coordinated omission).</p>\n<table><tr><th>target</th><th>region</th><th>version</th><th>requests</th><th>rps</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th><th>errors</th></tr>");
    for ((t, rg, v), (g, errors)) in &rows {
        let h = &g.corrected;
        let q = |p: f64| fmt_us(h.value_at_quantile(p) as f64);
        let rps = if r.measured_secs > 0.0 {
            h.len() as f64 / r.measured_secs
        } else {
            0.0
        };
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{rps:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{errors}</td></tr>",
            esc(t),
            esc(rg),
            esc(v),
            h.len(),
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
        let _ = writeln!(
            o,
            "<p>{}: scheduled {}, ok {}, failed {}, dropped {}, cancelled {}</p>",
            esc(&t.name),
            a.scheduled,
            a.ok,
            a.failed(),
            a.dropped(),
            a.cancelled
        );
    }

    // Spectrum plots.
    o.push_str("<h2>Percentile spectrum per group</h2>\n<div class=\"plots\">");
    for ((t, rg, v), (g, _)) in &rows {
        if g.corrected.is_empty() {
            continue;
        }
        let title = format!("target {t}, region {rg}, version {v}");
        let _ = write!(
            o,
            "<figure>{}<figcaption>{}</figcaption></figure>",
            spectrum_svg(&g.corrected, &title),
            esc(&title)
        );
    }
    o.push_str("</div>\n");

    // Latency over time.
    if let Some(tl) = timeline.filter(|t| !t.slices.is_empty() && t.interval_secs > 0.0) {
        let _ = write!(
            o,
            "<h2>Over time</h2>\n<p>Per {:.3} s interval, by completion time from the start of the measured window: answers per second by the region and version that served them (a failover or a canary shift shows here), with HTTP errors, requests that got no answer and drops; the generator's pacing lag; then latency per group.</p>\n<div class=\"plots\">",
            tl.interval_secs
        );
        if !events.is_empty() {
            o.push_str("</div>\n<p>Events, numbered on the plots:</p>\n<ol class=\"events\">");
            for e in events {
                let _ = write!(
                    o,
                    "<li>t={:.1} s: {}</li>",
                    // A step at t=0 lands a hair early; -0.0 reads oddly.
                    (e.at_unix_secs - tl.origin_unix_secs).max(0.0),
                    esc(&e.what)
                );
            }
            o.push_str("</ol>\n<div class=\"plots\">");
        }
        let mut per: BTreeMap<Row, BTreeMap<u64, Vec<Vec<u8>>>> = BTreeMap::new();
        // Per target: answers per second by served region/version, and HTTP errors.
        let mut rates: BTreeMap<String, BTreeMap<String, BTreeMap<u64, u64>>> = BTreeMap::new();
        for ((idx, k), parts) in &tl.slices {
            per.entry((k.target.clone(), k.region.clone(), k.version.clone()))
                .or_default()
                .entry(*idx)
                .or_default()
                .extend(parts.iter().cloned());
            let n = Timeline::histogram(parts).len();
            let by = rates.entry(k.target.clone()).or_default();
            *by.entry(format!("{}/{}", k.region, k.version))
                .or_default()
                .entry(*idx)
                .or_default() += n;
            if k.class == "4xx" || k.class == "5xx" {
                *by.entry(format!("{} errors", k.class))
                    .or_default()
                    .entry(*idx)
                    .or_default() += n;
            }
        }
        for ((idx, t), [failed, dropped]) in &tl.unanswered {
            let by = rates.entry(t.clone()).or_default();
            for (name, n) in [("no answer", *failed), ("dropped", *dropped)] {
                if n > 0 {
                    *by.entry(name.into()).or_default().entry(*idx).or_default() += n;
                }
            }
        }
        let at = |idx: u64| (idx as f64 + 1.0) * tl.interval_secs;
        let marks: Vec<Mark> = events
            .iter()
            .map(|e| (e.at_unix_secs - tl.origin_unix_secs, e.what.clone()))
            .collect();
        for (t, by) in &rates {
            // Every whole interval of the measured window, so a region that stops
            // answering drops to 0; the ragged tail (answers completing after the window,
            // or a part-interval) would read as a fall in the rate, so it is left out.
            let whole = (r.measured_secs / tl.interval_secs + 1e-6).floor() as u64;
            let intervals: std::collections::BTreeSet<u64> = by
                .values()
                .flat_map(|m| m.keys().copied())
                .filter(|i| *i < whole)
                .collect();
            let series: Vec<Series> = by
                .iter()
                .map(|(name, counts)| {
                    let pts = intervals
                        .iter()
                        .map(|i| {
                            let n = counts.get(i).copied().unwrap_or(0);
                            (at(*i), n as f64 / tl.interval_secs)
                        })
                        .collect();
                    (name.clone(), pts)
                })
                .collect();
            let title = format!("target {t}: answers per second by served region/version");
            let _ = write!(
                o,
                "<figure>{}<figcaption>{}</figcaption></figure>",
                over_time_svg(&series, "rps", &title, &marks),
                esc(&title)
            );
        }
        if !tl.pacing_max_us.is_empty() {
            let lag: Vec<(f64, f64)> = tl
                .pacing_max_us
                .iter()
                .map(|(i, us)| (at(*i), *us as f64 / 1000.0))
                .collect();
            let title = "pacing lag: the generator's own delay, largest per interval";
            let _ = write!(
                o,
                "<figure>{}<figcaption>{}</figcaption></figure>",
                over_time_svg(&[("max lag".into(), lag)], "ms", title, &marks),
                esc(title)
            );
        }
        for ((t, rg, v), slices) in &per {
            let mut series: Vec<Series> = ["p50", "p99", "max"]
                .iter()
                .map(|n| (n.to_string(), Vec::new()))
                .collect();
            for (idx, parts) in slices {
                let h = Timeline::histogram(parts);
                let ms = |us: u64| us as f64 / 1000.0;
                let vals = [
                    ms(h.value_at_quantile(0.5)),
                    ms(h.value_at_quantile(0.99)),
                    ms(h.max()),
                ];
                for (s, v) in series.iter_mut().zip(vals) {
                    s.1.push((at(*idx), v));
                }
            }
            let title = format!("target {t}, region {rg}, version {v}");
            let _ = write!(
                o,
                "<figure>{}<figcaption>{} latency over time</figcaption></figure>",
                over_time_svg(&series, "ms", &title, &marks),
                esc(&title)
            );
        }
        o.push_str("</div>\n");
    }

    o.push_str("</body></html>\n");
    o
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
