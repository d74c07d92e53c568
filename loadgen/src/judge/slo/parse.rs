//! SLO syntax: the short form (`p99<300ms`, `error_rate<1%`, `generator_limited==0`) and
//! k6 thresholds (`http_req_duration{target:eu}: p(95)<200`), each optionally scoped.

use std::fmt;

use super::{Metric, Op, Scope, Slo};
use crate::error::UsageError;

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
            "name" => &mut scope.name,
            other => {
                return Err(err(
                    text,
                    format!("unknown scope key {other:?} (use target, region, version, name)"),
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
        "checks" => Metric::Checks,
        n if n.starts_with('p') => Metric::Percentile(percentile(text, &n[1..])?),
        "" => return Err(err(text, "missing metric name")),
        n => {
            return Err(err(
                text,
                format!("unknown metric {n:?} (pNN, max, min, mean, error_rate, errors, dropped, dropped_rate, rps, requests, generator_limited, checks, or a k6 threshold)"),
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
        Metric::ErrorRate | Metric::DroppedRate | Metric::Checks => fraction(text, value),
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
            ("checks", "rate") => Metric::Checks,
            ("http_reqs", "count") => Metric::Requests,
            ("http_reqs", "rate") => Metric::Rps,
            ("dropped_iterations", "count") => Metric::Dropped,
            ("dropped_iterations", "rate") => Metric::DroppedPerSec,
            ("http_req_duration" | "http_req_failed" | "http_reqs" | "dropped_iterations" | "checks", a) => {
                return Err(err(text, format!("aggregation {a:?} is not supported for {name}")))
            }
            (n, _) => {
                return Err(err(
                    text,
                    format!("k6 metric {n:?} is not supported (http_req_duration, http_req_failed, http_reqs, dropped_iterations, checks)"),
                ))
            }
        };
        // k6 durations are bare milliseconds; rates are fractions.
        let threshold = match metric {
            Metric::ErrorRate | Metric::Checks => fraction(text, value)?,
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

/// The SLOs of a command: each `--slo` in order, then the lines of `--slo-file`.
pub fn gather(slos: &[String], file: Option<&std::path::Path>) -> Result<Vec<Slo>, UsageError> {
    let mut out = Vec::new();
    for s in slos {
        out.extend(parse(s)?);
    }
    if let Some(p) = file {
        out.extend(parse_file(&crate::error::read_input(p, "SLO file")?)?);
    }
    Ok(out)
}
