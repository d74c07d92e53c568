//! Regression gate against a stored baseline (`loadgen compare base.json new.json`).
//!
//! Groups are compared per target × served region × version (status classes merged, as in
//! the report's table), on the corrected p95 and p99. A group regressed when a percentile
//! grew by more than the allowed fraction. Groups present on one side only are listed but
//! do not fail the gate on their own; if no group is present on both sides the gate fails,
//! because a gate that compared nothing must not pass.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;

use crate::configured::cli::CompareArgs;
use crate::error::UsageError;
use crate::results::{GroupHist, Results};
use crate::units::fmt_us;

/// Percentiles the gate looks at.
pub const GATED: [(&str, f64); 2] = [("p95", 0.95), ("p99", 0.99)];

/// Parses `10%`, `0.1` or `10 %` into a fraction.
pub fn parse_bound(s: &str) -> Result<f64, UsageError> {
    let t = s.trim();
    let bad = || {
        UsageError::new(format!(
            "bad --max-regression {s:?}: expected a percentage like 10% or a fraction like 0.1"
        ))
    };
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => t.parse::<f64>().map_err(|_| bad())?,
    };
    if !v.is_finite() || v < 0.0 {
        return Err(bad());
    }
    Ok(v)
}

/// One percentile of one group, on both sides.
#[derive(Debug, Clone)]
pub struct Delta {
    pub group: (String, String, String),
    pub percentile: &'static str,
    pub base_us: u64,
    pub new_us: u64,
    /// (new - base) / base; infinite when the baseline was 0 and new is not.
    pub change: f64,
    pub regressed: bool,
}

/// The outcome of a comparison.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub deltas: Vec<Delta>,
    pub only_base: Vec<(String, String, String)>,
    pub only_new: Vec<(String, String, String)>,
}

impl Comparison {
    /// The gate passes when something was compared and nothing regressed.
    pub fn pass(&self) -> bool {
        !self.deltas.is_empty() && self.deltas.iter().all(|d| !d.regressed)
    }
}

type Row = (String, String, String);

fn by_row(r: &Results) -> BTreeMap<Row, GroupHist> {
    let mut out: BTreeMap<Row, GroupHist> = BTreeMap::new();
    for (k, g) in &r.groups {
        out.entry((k.target_label(), k.region.clone(), k.version.clone()))
            .or_default()
            .merge(g);
    }
    out.retain(|_, g| !g.corrected.is_empty());
    out
}

/// Compares `new` against `base` with the given allowed growth (fraction).
pub fn compare(base: &Results, new: &Results, max_regression: f64) -> Comparison {
    let (b, n) = (by_row(base), by_row(new));
    let mut out = Comparison::default();
    for (row, bg) in &b {
        let Some(ng) = n.get(row) else {
            out.only_base.push(row.clone());
            continue;
        };
        for (name, q) in GATED {
            let base_us = bg.corrected.value_at_quantile(q);
            let new_us = ng.corrected.value_at_quantile(q);
            let change = if base_us == 0 {
                if new_us == 0 {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else {
                (new_us as f64 - base_us as f64) / base_us as f64
            };
            out.deltas.push(Delta {
                group: row.clone(),
                percentile: name,
                base_us,
                new_us,
                change,
                regressed: change > max_regression,
            });
        }
    }
    out.only_new = n.keys().filter(|k| !b.contains_key(*k)).cloned().collect();
    out
}

/// Human-readable comparison.
pub fn render(c: &Comparison, max_regression: f64) -> String {
    let mut out = String::new();
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "target",
        "region",
        "version",
        "percentile",
        "baseline",
        "new",
        "change",
        "verdict",
    ]);
    for d in &c.deltas {
        t.add_row(vec![
            d.group.0.clone(),
            d.group.1.clone(),
            d.group.2.clone(),
            d.percentile.to_string(),
            fmt_us(d.base_us as f64),
            fmt_us(d.new_us as f64),
            format!("{:+.1}%", d.change * 100.0),
            if d.regressed { "REGRESSED" } else { "ok" }.to_string(),
        ]);
    }
    let _ = writeln!(
        out,
        "Corrected latency, baseline vs new (allowed growth {:.1}%):\n{t}",
        max_regression * 100.0
    );
    for (label, rows) in [
        ("only in the baseline", &c.only_base),
        ("only in the new run", &c.only_new),
    ] {
        for (tg, rg, v) in rows {
            let _ = writeln!(
                out,
                "group {label} (not compared): target={tg} region={rg} version={v}"
            );
        }
    }
    let regressed = c.deltas.iter().filter(|d| d.regressed).count();
    let _ = writeln!(
        out,
        "{}",
        if c.deltas.is_empty() {
            "verdict: FAILED: no group is present in both runs, nothing was compared".to_string()
        } else if regressed == 0 {
            "verdict: no regression".to_string()
        } else {
            format!("verdict: {regressed} percentile(s) REGRESSED beyond the bound")
        }
    );
    out
}

/// `loadgen compare`: prints the comparison and returns 0 (pass) or 99 (regressed).
pub fn run_compare(args: &CompareArgs) -> anyhow::Result<u8> {
    let bound = parse_bound(&args.max_regression)?;
    let base = crate::report::json::read::load(&args.base)?;
    let new = crate::report::json::read::load(&args.new)?;
    let c = compare(&base.results, &new.results, bound);
    crate::report::console::out(&render(&c, bound));
    Ok(if c.pass() {
        crate::judge::EXIT_OK
    } else {
        crate::judge::EXIT_SLO_FAILED
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::results::GroupKey;

    fn results(groups: &[(&str, &str, u64)]) -> Results {
        let mut r = Results::new(vec![]);
        r.measured_secs = 1.0;
        for (t, v, lat) in groups {
            let mut g = GroupHist::new();
            for i in 0..100 {
                g.corrected.record(lat + i).unwrap();
            }
            r.groups.insert(GroupKey::new(t, t, v, "2xx"), g);
        }
        r
    }

    #[test]
    fn bound_parses() {
        assert_eq!(parse_bound("10%").unwrap(), 0.1);
        assert_eq!(parse_bound("0.25").unwrap(), 0.25);
        assert!(parse_bound("-1%").is_err());
        assert!(parse_bound("ten").is_err());
    }

    #[test]
    fn flags_regression_and_one_sided_groups() {
        let base = results(&[("us", "v1", 10_000), ("eu", "v1", 20_000)]);
        let new = results(&[("us", "v1", 10_500), ("eu", "v1", 30_000), ("us", "v2", 1)]);
        let c = compare(&base, &new, 0.10);
        assert!(!c.pass());
        let eu: Vec<_> = c.deltas.iter().filter(|d| d.group.0 == "eu").collect();
        assert!(eu.iter().all(|d| d.regressed));
        let us: Vec<_> = c.deltas.iter().filter(|d| d.group.0 == "us").collect();
        assert!(us.iter().all(|d| !d.regressed));
        assert_eq!(c.only_new, vec![("us".into(), "us".into(), "v2".into())]);
        assert!(compare(&base, &new, 0.6).pass());
        // Nothing in common: the gate fails.
        assert!(!compare(&base, &results(&[("x", "v9", 1)]), 1.0).pass());
        assert!(render(&c, 0.1).contains("REGRESSED"));
    }
}
