//! SLO gates: parsing and evaluation.
//!
//! Two syntaxes, each optionally scoped to a group with `{target:eu,region:us,version:v2}`
//! (`=` works in place of `:`):
//!
//! - short form `METRIC[{scope}] OP VALUE`: `p99<300ms`, `p95<=0.25s`, `p99.9<1s`,
//!   `max<2s`, `mean<50ms`, `error_rate<1%`, `errors==0`, `dropped==0`,
//!   `dropped_rate<0.1%`, `rps>=4900`, `requests>1000`, `generator_limited==0` (the number
//!   of targets on which loadgen itself, not the service, limited the run; see `limits`).
//!   A bare latency number is milliseconds.
//! - k6 thresholds `METRIC[{tags}]: EXPR[, EXPR...]` for `http_req_duration`
//!   (`avg`, `min`, `med`, `max`, `p(N)`; milliseconds), `http_req_failed` (`rate`),
//!   `http_reqs` (`count`, `rate`) and `dropped_iterations` (`count`, `rate`).
//!
//! Latency is the coordinated-omission-corrected latency of every HTTP response in scope
//! (any status). Errors are responses with status >= 400, timeouts and transport errors;
//! timeouts, transport errors and dropped requests belong to a target but to no served
//! region or version, so a region/version scope counts HTTP responses only. A threshold
//! that matches no data fails.

use std::fmt;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::config::UsageError;
use crate::record::{new_histogram, Results};
pub use crate::units::fmt_us;

/// Which slice of the data an SLO looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scope {
    pub target: Option<String>,
    pub region: Option<String>,
    pub version: Option<String>,
}

impl Scope {
    fn is_group_scoped(&self) -> bool {
        self.region.is_some() || self.version.is_some()
    }
    fn matches_target(&self, name: &str) -> bool {
        self.target.as_deref().map_or(true, |t| t == name)
    }
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Metric {
    /// Latency percentile, 0-100.
    Percentile(f64),
    Max,
    Min,
    Mean,
    ErrorRate,
    Errors,
    Dropped,
    DroppedRate,
    DroppedPerSec,
    Rps,
    Requests,
    /// Targets in scope that loadgen itself limited (`crate::limits`).
    GeneratorLimited,
}

impl Metric {
    fn is_latency(self) -> bool {
        matches!(
            self,
            Metric::Percentile(_) | Metric::Max | Metric::Min | Metric::Mean
        )
    }
}

/// Comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// A parsed SLO. Latency thresholds are in microseconds, rates are fractions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slo {
    /// As the user wrote it (one expression of a k6 threshold).
    pub text: String,
    pub scope: Scope,
    pub metric: Metric,
    pub op: Op,
    pub threshold: f64,
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn err(text: &str, why: impl fmt::Display) -> UsageError {
    UsageError::new(format!("bad SLO {text:?}: {why}"))
}

/// Splits `name{k:v,...}` into the name and its scope; returns the rest of the string.
fn split_scope<'a>(text: &str, s: &'a str) -> Result<(&'a str, Scope, &'a str), UsageError> {
    let s = s.trim_start();
    let name_end = s
        .find(|c: char| {
            !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '(' || c == ')')
        })
        .unwrap_or(s.len());
    let (name, rest) = s.split_at(name_end);
    let rest = rest.trim_start();
    let Some(inner) = rest.strip_prefix('{') else {
        return Ok((name, Scope::default(), rest));
    };
    let close = inner.find('}').ok_or_else(|| err(text, "missing `}`"))?;
    let mut scope = Scope::default();
    for pair in inner[..close]
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair
            .split_once([':', '='])
            .ok_or_else(|| err(text, format!("scope entry {pair:?} must be key:value")))?;
        let v = v.trim().trim_matches('"').to_string();
        if v.is_empty() {
            return Err(err(
                text,
                format!("scope entry {pair:?} has an empty value"),
            ));
        }
        let slot = match k.trim() {
            "target" | "cluster" => &mut scope.target,
            "region" => &mut scope.region,
            "version" => &mut scope.version,
            other => {
                return Err(err(
                    text,
                    format!("unknown scope key {other:?} (use target, region, version)"),
                ))
            }
        };
        *slot = Some(v);
    }
    Ok((name, scope, &inner[close + 1..]))
}

fn split_op(s: &str) -> Option<(Op, &str)> {
    let s = s.trim_start();
    for (tok, op) in [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
        ("=", Op::Eq),
    ] {
        if let Some(rest) = s.strip_prefix(tok) {
            return Some((op, rest.trim()));
        }
    }
    None
}

fn number(text: &str, s: &str) -> Result<f64, UsageError> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| err(text, format!("{s:?} is not a number")))
}

/// Latency value to microseconds; a bare number is milliseconds.
fn latency_us(text: &str, s: &str) -> Result<f64, UsageError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let factor = match unit.trim() {
        "" | "ms" => 1e3,
        "us" | "µs" => 1.0,
        "ns" => 1e-3,
        "s" => 1e6,
        "m" | "min" => 60e6,
        u => {
            return Err(err(
                text,
                format!("unknown time unit {u:?} (use us, ms, s, m)"),
            ))
        }
    };
    let v = number(text, num)?;
    if v < 0.0 {
        return Err(err(text, "latency must be >= 0"));
    }
    Ok(v * factor)
}

/// Rate as a fraction; `1%` or `0.01`.
fn fraction(text: &str, s: &str) -> Result<f64, UsageError> {
    let s = s.trim();
    let v = match s.strip_suffix('%') {
        Some(p) => number(text, p)? / 100.0,
        None => number(text, s)?,
    };
    if !(0.0..=1.0).contains(&v) {
        return Err(err(text, "a rate must be between 0 and 1 (or 0% and 100%)"));
    }
    Ok(v)
}

fn percentile(text: &str, p: &str) -> Result<f64, UsageError> {
    let v = number(text, p)?;
    if !(0.0..=100.0).contains(&v) {
        return Err(err(text, "percentile must be between 0 and 100"));
    }
    Ok(v)
}

/// Parses one `--slo` value (a k6 threshold may hold several expressions).
pub fn parse(text: &str) -> Result<Vec<Slo>, UsageError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(err(text, "empty"));
    }
    let (name, scope, rest) = split_scope(text, t)?;
    if let Some(exprs) = rest.trim_start().strip_prefix(':') {
        let head = t[..t.len() - rest.len()].trim_end();
        return parse_k6(text, head, name, scope, exprs);
    }
    let (op, value) =
        split_op(rest).ok_or_else(|| err(text, "expected an operator: < <= > >= == !="))?;
    let metric = match name {
        "max" => Metric::Max,
        "min" => Metric::Min,
        "mean" | "avg" => Metric::Mean,
        "median" | "med" => Metric::Percentile(50.0),
        "error_rate" => Metric::ErrorRate,
        "errors" => Metric::Errors,
        "dropped" => Metric::Dropped,
        "dropped_rate" => Metric::DroppedRate,
        "rps" => Metric::Rps,
        "requests" => Metric::Requests,
        "generator_limited" => Metric::GeneratorLimited,
        n if n.starts_with('p') => Metric::Percentile(percentile(text, &n[1..])?),
        "" => return Err(err(text, "missing metric name")),
        n => {
            return Err(err(
                text,
                format!("unknown metric {n:?} (pNN, max, min, mean, error_rate, errors, dropped, dropped_rate, rps, requests, generator_limited, or a k6 threshold)"),
            ))
        }
    };
    let threshold = threshold_for(text, metric, value)?;
    Ok(vec![Slo {
        text: t.to_string(),
        scope,
        metric,
        op,
        threshold,
    }])
}

fn threshold_for(text: &str, metric: Metric, value: &str) -> Result<f64, UsageError> {
    if value.is_empty() {
        return Err(err(text, "missing value"));
    }
    match metric {
        m if m.is_latency() => latency_us(text, value),
        Metric::ErrorRate | Metric::DroppedRate => fraction(text, value),
        _ => {
            let v = number(text, value)?;
            if v < 0.0 {
                return Err(err(text, "value must be >= 0"));
            }
            Ok(v)
        }
    }
}

fn parse_k6(
    text: &str,
    head: &str,
    name: &str,
    scope: Scope,
    exprs: &str,
) -> Result<Vec<Slo>, UsageError> {
    let mut out = Vec::new();
    for expr in exprs
        .split([',', ';'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let agg_end = expr
            .find(['<', '>', '=', '!'])
            .ok_or_else(|| err(text, format!("{expr:?}: expected an operator")))?;
        let agg = expr[..agg_end].trim();
        let (op, value) = split_op(&expr[agg_end..])
            .ok_or_else(|| err(text, format!("{expr:?}: bad operator")))?;
        let metric = match (name, agg) {
            ("http_req_duration", "avg") => Metric::Mean,
            ("http_req_duration", "min") => Metric::Min,
            ("http_req_duration", "max") => Metric::Max,
            ("http_req_duration", "med") => Metric::Percentile(50.0),
            ("http_req_duration", a) if a.starts_with("p(") && a.ends_with(')') => {
                Metric::Percentile(percentile(text, &a[2..a.len() - 1])?)
            }
            ("http_req_failed", "rate") => Metric::ErrorRate,
            ("http_reqs", "count") => Metric::Requests,
            ("http_reqs", "rate") => Metric::Rps,
            ("dropped_iterations", "count") => Metric::Dropped,
            ("dropped_iterations", "rate") => Metric::DroppedPerSec,
            ("http_req_duration" | "http_req_failed" | "http_reqs" | "dropped_iterations", a) => {
                return Err(err(text, format!("aggregation {a:?} is not supported for {name}")))
            }
            (n, _) => {
                return Err(err(
                    text,
                    format!("k6 metric {n:?} is not supported (http_req_duration, http_req_failed, http_reqs, dropped_iterations)"),
                ))
            }
        };
        // k6 durations are bare milliseconds; rates are fractions.
        let threshold = match metric {
            Metric::ErrorRate => fraction(text, value)?,
            m if m.is_latency() => number(text, value)? * 1e3,
            _ => number(text, value)?,
        };
        out.push(Slo {
            text: format!("{head}: {expr}"),
            scope: scope.clone(),
            metric,
            op,
            threshold,
        });
    }
    if out.is_empty() {
        return Err(err(text, "no threshold expression after `:`"));
    }
    if out.len() == 1 {
        out[0].text = text.trim().to_string();
    }
    Ok(out)
}

/// Parses an SLO file: one SLO per line, `#` starts a comment.
pub fn parse_file(text: &str) -> Result<Vec<Slo>, UsageError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        out.extend(
            parse(line).map_err(|e| UsageError::new(format!("SLO file line {}: {e}", i + 1)))?,
        );
    }
    Ok(out)
}

/// Outcome of one SLO.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub slo: String,
    /// Measured value in the SLO's unit (microseconds, fraction, count or rps); `None`
    /// when nothing matched.
    pub measured: Option<f64>,
    pub threshold: f64,
    pub pass: bool,
    /// Human-readable measured value or why there is none.
    pub detail: String,
}

fn fmt_value(metric: Metric, v: f64) -> String {
    match metric {
        m if m.is_latency() => fmt_us(v),
        Metric::ErrorRate | Metric::DroppedRate => format!("{:.3}%", v * 100.0),
        Metric::Rps | Metric::DroppedPerSec => format!("{v:.1}/s"),
        _ => format!("{v:.0}"),
    }
}

/// Evaluates one SLO against the results.
pub fn evaluate(slo: &Slo, r: &Results) -> Verdict {
    let measured = measure(slo, r);
    let (pass, detail) = match &measured {
        Ok(v) => (slo.op.holds(*v, slo.threshold), fmt_value(slo.metric, *v)),
        Err(why) => (false, format!("no data: {why}")),
    };
    Verdict {
        slo: slo.text.clone(),
        measured: measured.ok(),
        threshold: slo.threshold,
        pass,
        detail,
    }
}

fn measure(slo: &Slo, r: &Results) -> Result<f64, String> {
    let s = &slo.scope;
    let groups: Vec<_> = r
        .groups
        .iter()
        .filter(|(k, _)| {
            s.matches_target(&k.target)
                && s.region.as_deref().map_or(true, |x| x == k.region)
                && s.version.as_deref().map_or(true, |x| x == k.version)
        })
        .collect();
    let targets: Vec<_> = r
        .targets
        .iter()
        .filter(|t| s.matches_target(&t.name))
        .collect();
    if targets.is_empty() {
        return Err(format!(
            "no target named {:?}",
            s.target.as_deref().unwrap_or("")
        ));
    }
    let responses = |only_errors: bool| -> u64 {
        groups
            .iter()
            .filter(|(k, _)| !only_errors || matches!(k.class.as_str(), "4xx" | "5xx" | "other"))
            .map(|(_, g)| g.corrected.len())
            .sum()
    };
    let sum = |f: &dyn Fn(&crate::record::Accounting) -> u64| -> u64 {
        targets.iter().map(|t| f(&t.measured)).sum()
    };
    match slo.metric {
        m if m.is_latency() => {
            let mut h: Histogram<u64> = new_histogram();
            for (_, g) in &groups {
                let _ = h.add(&g.corrected);
            }
            if h.is_empty() {
                return Err("no responses in scope".into());
            }
            Ok(match m {
                Metric::Percentile(p) => h.value_at_quantile(p / 100.0) as f64,
                Metric::Max => h.max() as f64,
                Metric::Min => h.min() as f64,
                _ => h.mean(),
            })
        }
        Metric::ErrorRate | Metric::Errors | Metric::Requests | Metric::Rps => {
            let (errors, total) = if s.is_group_scoped() {
                (responses(true), responses(false))
            } else {
                (sum(&|a| a.failed()), sum(&|a| a.completed()))
            };
            if total == 0 {
                return Err("no requests completed in scope".into());
            }
            Ok(match slo.metric {
                Metric::ErrorRate => errors as f64 / total as f64,
                Metric::Errors => errors as f64,
                Metric::Requests => total as f64,
                _ => {
                    if r.measured_secs <= 0.0 {
                        return Err("no measured time".into());
                    }
                    total as f64 / r.measured_secs
                }
            })
        }
        Metric::GeneratorLimited => {
            if s.is_group_scoped() {
                return Err("the generator limits a target, not a served region or version; scope by target".into());
            }
            let limited = crate::limits::limits(r);
            Ok(targets
                .iter()
                .filter(|t| limited.iter().any(|l| l.target == t.name))
                .count() as f64)
        }
        Metric::Dropped | Metric::DroppedRate | Metric::DroppedPerSec => {
            if s.is_group_scoped() {
                return Err(
                    "dropped requests have no served region or version; scope by target".into(),
                );
            }
            let scheduled = sum(&|a| a.scheduled);
            if scheduled == 0 {
                return Err("nothing was scheduled in scope".into());
            }
            let dropped = sum(&|a| a.dropped());
            Ok(match slo.metric {
                Metric::Dropped => dropped as f64,
                Metric::DroppedRate => dropped as f64 / scheduled as f64,
                _ => {
                    if r.measured_secs <= 0.0 {
                        return Err("no measured time".into());
                    }
                    dropped as f64 / r.measured_secs
                }
            })
        }
        _ => Err("unsupported metric".into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    fn one(s: &str) -> Slo {
        let mut v = parse(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v.remove(0)
    }

    #[test]
    fn short_forms() {
        let s = one("p99<300ms");
        assert_eq!(
            (s.metric, s.op, s.threshold),
            (Metric::Percentile(99.0), Op::Lt, 300_000.0)
        );
        let s = one("p95<=0.25s");
        assert_eq!(
            (s.metric, s.op, s.threshold),
            (Metric::Percentile(95.0), Op::Le, 250_000.0)
        );
        assert_eq!(one("p99.9 < 1s").metric, Metric::Percentile(99.9));
        assert_eq!(one("error_rate<1%").threshold, 0.01);
        assert_eq!(one("error_rate<0.02").threshold, 0.02);
        let s = one("dropped==0");
        assert_eq!(
            (s.metric, s.op, s.threshold),
            (Metric::Dropped, Op::Eq, 0.0)
        );
        let s = one("rps>=4900");
        assert_eq!((s.metric, s.op, s.threshold), (Metric::Rps, Op::Ge, 4900.0));
        assert_eq!(one("max<250").threshold, 250_000.0);
        let s = one("p95{target:eu,version=v2}<200ms");
        assert_eq!(
            s.scope,
            Scope {
                target: Some("eu".into()),
                region: None,
                version: Some("v2".into())
            }
        );
    }

    #[test]
    fn k6_forms() {
        let s = one("http_req_duration{target:eu,version:v2}: p(95)<200");
        assert_eq!(s.metric, Metric::Percentile(95.0));
        assert_eq!(s.threshold, 200_000.0);
        assert_eq!(s.scope.target.as_deref(), Some("eu"));
        assert_eq!(s.scope.version.as_deref(), Some("v2"));
        assert_eq!(s.text, "http_req_duration{target:eu,version:v2}: p(95)<200");
        let s = one("http_req_failed: rate<0.01");
        assert_eq!((s.metric, s.threshold), (Metric::ErrorRate, 0.01));
        assert_eq!(one("http_req_duration: avg<100").metric, Metric::Mean);
        assert_eq!(
            one("http_req_duration: med<100").metric,
            Metric::Percentile(50.0)
        );
        assert_eq!(one("http_reqs: rate>=100").metric, Metric::Rps);
        assert_eq!(one("dropped_iterations: count==0").metric, Metric::Dropped);
        let several = parse("http_req_duration{region:us}: p(95)<200, p(99.9)<500").unwrap();
        assert_eq!(several.len(), 2);
        assert_eq!(several[1].text, "http_req_duration{region:us}: p(99.9)<500");
        assert_eq!(several[1].scope.region.as_deref(), Some("us"));
    }

    #[test]
    fn rejects_bad_slos() {
        for bad in [
            "",
            "p99",
            "p99<",
            "p99<abc",
            "p99<5parsecs",
            "p101<1s",
            "error_rate<150%",
            "foo<1",
            "p95{zone:a}<1s",
            "p95{target}<1s",
            "p95{target:eu<1s",
            "http_req_duration: p(95)",
            "http_req_waiting: p(95)<200",
            "http_req_failed: avg<1",
            "rps>=-1",
            "<5",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn file_with_comments() {
        let v = parse_file("# gates\np99<300ms # tail\n\nerror_rate<1%\n").unwrap();
        assert_eq!(v.len(), 2);
        let e = parse_file("p99<1s\nnope\n").unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    proptest! {
        #[test]
        fn latency_units_scale(v in 0u32..100_000, unit in prop::sample::select(vec![("us", 1.0), ("ms", 1e3), ("s", 1e6)])) {
            let s = one(&format!("p90<{v}{}", unit.0));
            prop_assert!((s.threshold - v as f64 * unit.1).abs() < 1e-6 * (1.0 + s.threshold));
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = parse(&s);
        }
    }
}
