//! k6-compatible summary JSON (`--summary-export FILE`), so tooling that reads
//! `k6 run --summary-export` output keeps working.
//!
//! The shape follows k6's: `{"metrics": {...}, "root_group": {...}}`, with
//! - `http_req_duration` (and sub-metrics `http_req_duration{target:us}` and
//!   `http_req_duration{target:us,version:v1}`, plus any scope an SLO uses): `avg`, `min`,
//!   `med`, `max`, `p(90)`, `p(95)`, `p(99)` in milliseconds, from the corrected latency;
//! - `http_reqs`: `count`, `rate` (completed requests per measured second);
//! - `http_req_failed`: `value` (the failure rate, also as `rate`), `passes` and `fails`
//!   with k6's meaning: `passes` counts requests for which "failed" was true;
//! - `dropped_iterations`: `count`, `rate`;
//! - `iterations`: `count`, `rate` (one request is one iteration of k6's open model);
//! - `http_req_duration{expected_response:true}`: the trend of responses below 400, as k6
//!   always exports it;
//! - `data_sent`/`data_received`: `count` (bytes) and `rate` (bytes per second) of the
//!   measured requests that got an answer and of their answers, HTTP framing included (k6
//!   counts on the socket, so with TLS its figures also hold the record overhead).
//!
//! Thresholds are exactly k6's: `"thresholds": {"p(95)<200": false}`, a bare boolean keyed
//! by the expression, `true` when the threshold **failed** (k6 1.x's `--summary-export`
//! convention), so tools reading k6 files read ours the same way. What loadgen cannot fill
//! honestly is left out: `vus` and `vus_max` (there are no virtual users), and k6's per-phase timings.

use serde_json::{json, Map, Value};

use crate::hist::new_histogram;
use crate::judge::slo::{Metric, Scope, Slo, Verdict};
use crate::results::Results;

fn scope_key(name: &str, s: &Scope) -> String {
    let mut tags = Vec::new();
    if let Some(t) = &s.target {
        tags.push(format!("target:{t}"));
    }
    if let Some(r) = &s.region {
        tags.push(format!("region:{r}"));
    }
    if let Some(v) = &s.version {
        tags.push(format!("version:{v}"));
    }
    if let Some(n) = &s.name {
        tags.push(format!("name:{n}"));
    }
    if tags.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", tags.join(","))
    }
}

fn trend(r: &Results, s: &Scope) -> Value {
    trend_where(r, |k| s.matches_group(k))
}

fn trend_where(r: &Results, hit: impl Fn(&crate::results::GroupKey) -> bool) -> Value {
    let mut h = new_histogram();
    for (k, g) in &r.groups {
        if hit(k) {
            let _ = h.add(&g.corrected);
        }
    }
    let ms = |us: f64| us / 1000.0;
    if h.is_empty() {
        return json!({"avg": 0.0, "min": 0.0, "med": 0.0, "max": 0.0,
            "p(90)": 0.0, "p(95)": 0.0, "p(99)": 0.0});
    }
    let q = |p: f64| ms(h.value_at_quantile(p) as f64);
    json!({
        "avg": ms(h.mean()),
        "min": ms(h.min() as f64),
        "med": q(0.5),
        "max": ms(h.max() as f64),
        "p(90)": q(0.9),
        "p(95)": q(0.95),
        "p(99)": q(0.99),
    })
}

/// The k6 metric an SLO belongs to, and the threshold expression k6 would show.
fn threshold_home(slo: &Slo) -> (String, String) {
    let base = match slo.metric {
        Metric::Percentile(_) | Metric::Max | Metric::Min | Metric::Mean => "http_req_duration",
        Metric::ErrorRate | Metric::Errors => "http_req_failed",
        // k6's own sign that the generator ran short (too few VUs) is dropped_iterations.
        Metric::Dropped
        | Metric::DroppedRate
        | Metric::DroppedPerSec
        | Metric::GeneratorLimited => "dropped_iterations",
        Metric::Rps | Metric::Requests => "http_reqs",
        Metric::Checks => "checks",
    };
    // k6 syntax keeps its own expression; the short form is shown as written.
    let expr = match slo.text.split_once(": ") {
        Some((_, e)) if slo.text.starts_with(base) => e.trim().to_string(),
        _ => slo.text.clone(),
    };
    (scope_key(base, &slo.scope), expr)
}

/// Builds the summary. `slos[i]` was judged by `verdicts[i]`.
pub fn build(r: &Results, slos: &[Slo], verdicts: &[Verdict]) -> Value {
    let secs = r.measured_secs;
    let rate = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let completed: u64 = r
        .targets
        .iter()
        .map(|t| t.accounts.measured.completed())
        .sum();
    let failed: u64 = r.targets.iter().map(|t| t.accounts.measured.failed()).sum();
    let dropped: u64 = r
        .targets
        .iter()
        .map(|t| t.accounts.measured.dropped())
        .sum();
    let fail_rate = if completed > 0 {
        failed as f64 / completed as f64
    } else {
        0.0
    };

    let mut metrics = Map::new();
    metrics.insert("http_req_duration".into(), trend(r, &Scope::default()));
    let mut scopes: Vec<Scope> = Vec::new();
    for k in r.groups.keys() {
        for s in [
            Scope {
                target: Some(k.target.clone()),
                ..Scope::default()
            },
            Scope {
                target: Some(k.target.clone()),
                version: Some(k.version.clone()),
                ..Scope::default()
            },
            Scope {
                target: Some(k.target.clone()),
                name: (!k.name.is_empty()).then(|| k.name.clone()),
                ..Scope::default()
            },
        ] {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
    }
    for s in slos.iter().map(|s| &s.scope) {
        if *s != Scope::default() && !scopes.contains(s) {
            scopes.push(s.clone());
        }
    }
    for s in &scopes {
        metrics.insert(scope_key("http_req_duration", s), trend(r, s));
    }
    metrics.insert(
        "http_reqs".into(),
        json!({"count": completed, "rate": rate(completed)}),
    );
    metrics.insert(
        "http_req_failed".into(),
        json!({"value": fail_rate, "rate": fail_rate, "passes": failed, "fails": completed - failed}),
    );
    metrics.insert(
        "dropped_iterations".into(),
        json!({"count": dropped, "rate": rate(dropped)}),
    );
    // k6's `checks` rate: the answers below 400 that passed every `--check`.
    let (passed, checked) = r.targets.iter().fold((0, 0), |(p, c), t| {
        let a = &t.accounts.measured;
        (p + a.ok, c + a.ok + a.check)
    });
    // Shown when checks were judged: some failed, or an SLO asks about them.
    let judged = r.targets.iter().any(|t| t.accounts.measured.check > 0)
        || slos.iter().any(|s| s.metric == Metric::Checks);
    if judged {
        let value = if checked > 0 {
            passed as f64 / checked as f64
        } else {
            0.0
        };
        metrics.insert(
            "checks".into(),
            json!({"value": value, "rate": value, "passes": passed, "fails": checked - passed}),
        );
    }
    metrics.insert(
        "iterations".into(),
        json!({"count": completed, "rate": rate(completed)}),
    );
    let (sent, received) = r.targets.iter().fold((0, 0), |(s, rc), t| {
        (
            s + t.accounts.pool.bytes_sent,
            rc + t.accounts.pool.bytes_received,
        )
    });
    metrics.insert(
        "data_sent".into(),
        json!({"count": sent, "rate": rate(sent)}),
    );
    metrics.insert(
        "data_received".into(),
        json!({"count": received, "rate": rate(received)}),
    );
    metrics.insert(
        "http_req_duration{expected_response:true}".into(),
        trend_where(r, |k| matches!(k.class.as_str(), "1xx" | "2xx" | "3xx")),
    );

    for (slo, v) in slos.iter().zip(verdicts) {
        let (metric, expr) = threshold_home(slo);
        let entry = metrics
            .entry(metric)
            .or_insert_with(|| json!({"count": 0, "rate": 0.0}));
        if let Value::Object(m) = entry {
            let th = m
                .entry("thresholds")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(th) = th {
                // k6's convention: true means the threshold failed. The same expression
                // under the same metric twice fails if either did.
                let failed = !v.pass || th.get(&expr).and_then(Value::as_bool).unwrap_or(false);
                th.insert(expr, Value::Bool(failed));
            }
        }
    }

    json!({
        "root_group": {"name": "", "path": "", "id": "d41d8cd98f00b204e9800998ecf8427e",
            "groups": {}, "checks": {}},
        "metrics": metrics,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::results::{GroupHist, GroupKey, TargetResult};

    #[test]
    fn thresholds_are_k6s_booleans_and_submetrics_exist() {
        let mut g = GroupHist::new();
        for v in 1..=1000u64 {
            g.corrected.record(v * 100).unwrap();
        }
        let mut t = TargetResult::new("us", "http://127.0.0.1/");
        t.requested_rps = 1000.0;
        let mut r = Results::new(vec![t]);
        r.measured_secs = 1.0;
        r.targets[0].accounts.measured.scheduled = 1000;
        r.targets[0].accounts.measured.ok = 1000;
        r.groups.insert(GroupKey::new("us", "us", "v1", "2xx"), g);
        let mut slos = crate::judge::slo::parse::parse("p95<200ms").unwrap();
        slos.extend(
            crate::judge::slo::parse::parse("http_req_duration{target:us}: p(99)<50").unwrap(),
        );
        let verdicts = crate::judge::judge(&slos, &r).verdicts;
        assert!(verdicts[0].pass && !verdicts[1].pass);
        let v = build(&r, &slos, &verdicts);
        let m = &v["metrics"];
        // true = failed, as k6 writes it.
        assert_eq!(m["http_req_duration"]["thresholds"]["p95<200ms"], false);
        assert_eq!(
            m["http_req_duration{target:us}"]["thresholds"]["p(99)<50"],
            true
        );
        assert_eq!(m["iterations"]["count"], 1000);
        assert!(
            m["http_req_duration{expected_response:true}"]["p(95)"]
                .as_f64()
                .unwrap()
                > 90.0
        );
        let p95 = m["http_req_duration{target:us,version:v1}"]["p(95)"]
            .as_f64()
            .unwrap();
        assert!((94.0..=96.0).contains(&p95), "{p95}");
        assert_eq!(m["http_reqs"]["count"], 1000);
        assert_eq!(m["http_req_failed"]["passes"], 0);
        assert!(m.get("checks").is_none(), "no checks were judged");
    }
}
