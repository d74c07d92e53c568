//! The schedule's lines of the text report: how coarse the ticks were (fixed, or what
//! `--tick auto` chose) and, per target, what the tick check found (`judge::tick`).

use std::fmt::Write as _;

use crate::judge::slo::fmt_us;
use crate::judge::tick;
use crate::results::Results;

/// Appends the schedule's lines (nothing in exact mode).
pub fn lines(out: &mut String, r: &Results) {
    if r.tick_auto {
        let _ = writeln!(
            out,
            "schedule: --tick auto chose {}\n  (ticks follow the nearest target's service time; requests timed from their tick)",
            tick_shares(r)
        );
    } else if r.tick_ns > 0 {
        let _ = writeln!(
            out,
            "schedule: coarsened to {} ticks, each request timed from its tick (--tick 0s: exact)",
            fmt_us(r.tick_ns as f64 / 1000.0)
        );
    }
    if r.tick_ns > 0 {
        for c in tick::checks(r) {
            let _ = writeln!(out, "  {}", tick::describe(&c));
        }
    }
}

/// `2.00ms for 96% of requests, 500µs for 4%`: the ticks `--tick auto` chose, most used first.
fn tick_shares(r: &Results) -> String {
    let mut all: Vec<(u64, u64)> = Vec::new();
    for t in &r.targets {
        crate::schedule::tick::add(&mut all, &t.ticks);
    }
    let total: u64 = all.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return "no measured requests".into();
    }
    all.sort_by_key(|&(t, n)| (std::cmp::Reverse(n), t));
    all.iter()
        .enumerate()
        .map(|(i, &(t, n))| {
            format!(
                "{} for {:.0}%{}",
                fmt_us(t as f64 / 1000.0),
                n as f64 * 100.0 / total as f64,
                if i == 0 { " of requests" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
