//! SLO gates: parsing and evaluation.
//!
//! Two syntaxes, each optionally scoped to a group with `{target:eu,region:us,version:v2}`
//! (and `name:checkout` for a request of a requests file)
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

use crate::hist::new_histogram;
use crate::judge::limits::{By, Limit};
use crate::results::Results;
use crate::units::fmt_us;

pub mod parse;

/// Which slice of the data an SLO looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scope {
    pub target: Option<String>,
    pub region: Option<String>,
    pub version: Option<String>,
    /// A request's name from a requests file.
    pub name: Option<String>,
}

impl Scope {
    fn is_group_scoped(&self) -> bool {
        self.region.is_some() || self.version.is_some() || self.name.is_some()
    }
    fn matches_target(&self, name: &str) -> bool {
        self.target.as_deref().map_or(true, |t| t == name)
    }
    /// Whether a latency group is in scope.
    pub fn matches_group(&self, k: &crate::results::GroupKey) -> bool {
        self.matches_target(&k.target)
            && self.region.as_deref().map_or(true, |x| x == k.region)
            && self.version.as_deref().map_or(true, |x| x == k.version)
            && self.name.as_deref().map_or(true, |x| x == k.name)
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
    /// Share of the answers below 400 that passed every `--check`, 0-1.
    Checks,
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
        Metric::ErrorRate | Metric::DroppedRate | Metric::Checks => format!("{:.3}%", v * 100.0),
        Metric::Rps | Metric::DroppedPerSec => format!("{v:.1}/s"),
        _ => format!("{v:.0}"),
    }
}

/// Evaluates one SLO against the results.
pub fn evaluate(slo: &Slo, r: &Results, limits: &[Limit]) -> Verdict {
    let measured = measure(slo, r, limits);
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

fn measure(slo: &Slo, r: &Results, limits: &[Limit]) -> Result<f64, String> {
    let s = &slo.scope;
    let groups: Vec<_> = r
        .groups
        .iter()
        .filter(|(k, _)| s.matches_group(k))
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
    let sum = |f: &dyn Fn(&crate::results::Accounting) -> u64| -> u64 {
        targets.iter().map(|t| f(&t.accounts.measured)).sum()
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
        Metric::Checks => {
            if s.is_group_scoped() {
                return Err("checks are counted per target; scope by target only".into());
            }
            let (passed, checked) = (sum(&|a| a.ok), sum(&|a| a.ok + a.check));
            if checked == 0 {
                return Err("no answers below 400 in scope".into());
            }
            Ok(passed as f64 / checked as f64)
        }
        Metric::GeneratorLimited => {
            if s.is_group_scoped() {
                return Err("the generator limits a target, not a served region, version or request; scope by target".into());
            }
            Ok(targets
                .iter()
                .filter(|t| {
                    limits
                        .iter()
                        .any(|l| l.by == By::Loadgen && l.target == t.name)
                })
                .count() as f64)
        }
        Metric::Dropped | Metric::DroppedRate | Metric::DroppedPerSec => {
            if s.is_group_scoped() {
                return Err(
                    "dropped requests have no served region or version; scope by target only"
                        .into(),
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
        let mut v = parse::parse(s).unwrap();
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
                version: Some("v2".into()),
                name: None,
            }
        );
        let s = one("p95{target:eu,name:checkout}<200ms");
        assert_eq!(s.scope.name.as_deref(), Some("checkout"));
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
        let several = parse::parse("http_req_duration{region:us}: p(95)<200, p(99.9)<500").unwrap();
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
            assert!(parse::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn file_with_comments() {
        let v = parse::parse_file("# gates\np99<300ms # tail\n\nerror_rate<1%\n").unwrap();
        assert_eq!(v.len(), 2);
        let e = parse::parse_file("p99<1s\nnope\n").unwrap_err().to_string();
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
            let _ = parse::parse(&s);
        }
    }
}
