//! What the tick cost: did sending each tick's requests together move the latency?
//!
//! With a `--tick`, a tick's requests leave in one burst, and those behind the first can
//! queue behind it, in loadgen's own sends and in the server. Exact pacing has no such
//! bursts, but costs a wake-up per request. Rather than ask the user to trust a benchmark
//! run elsewhere, every run checks itself: the first request of each tick to a target has
//! nothing of its tick ahead of it, so its median stands for what exact pacing would
//! report, and the gap to the target's overall median is the tick's own effect. It is
//! judged against the bound the default is held to: 50 µs or 10 % of the median,
//! whichever is larger.
//!
//! It is a lower bound on the tick's effect: a server may take a tick's requests in any
//! order, so the first sent is not always the first served. Against a one-thread server on
//! loopback at 2 ms ticks it read +123 µs where exact mode's run differed by +328 µs
//! (benches/README.md); both were far outside the bound, and it warned.

use crate::results::Results;
use crate::units::fmt_us;

/// The shift allowed before the report warns: this absolute floor, or
const FLOOR_US: f64 = 50.0;
/// this share of the overall median, whichever is larger.
const SHARE: f64 = 0.10;
/// Fewer first-of-tick answers than this say nothing reliable about a median.
const MIN_LEADS: u64 = 100;

/// One target's check.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TickCheck {
    pub target: String,
    /// Median corrected latency of each tick's first request, and of every request, µs.
    pub first_p50_us: u64,
    pub all_p50_us: u64,
    /// `all - first`: what the bursts added to the median.
    pub shift_us: i64,
    /// The larger of 50 µs and 10 % of `all_p50_us`.
    pub bound_us: u64,
    pub within: bool,
    /// First-of-tick answers the check rests on.
    pub first_count: u64,
}

/// The check for every target with enough first-of-tick answers (none in exact mode).
pub fn checks(r: &Results) -> Vec<TickCheck> {
    if r.tick_ns == 0 {
        return Vec::new();
    }
    r.targets
        .iter()
        .filter_map(|t| {
            if t.accounts.lead.len() < MIN_LEADS {
                return None;
            }
            let mut all = crate::hist::new_histogram();
            for (k, g) in &r.groups {
                if k.target == t.name {
                    let _ = all.add(&g.corrected);
                }
            }
            if all.is_empty() {
                return None;
            }
            let first = t.accounts.lead.value_at_quantile(0.5);
            let overall = all.value_at_quantile(0.5);
            let shift = overall as i64 - first as i64;
            let bound = (overall as f64 * SHARE).max(FLOOR_US).round() as u64;
            Some(TickCheck {
                target: t.name.clone(),
                first_p50_us: first,
                all_p50_us: overall,
                shift_us: shift,
                bound_us: bound,
                within: shift.unsigned_abs() <= bound,
                first_count: t.accounts.lead.len(),
            })
        })
        .collect()
}

/// The report's line for one check.
pub fn describe(c: &TickCheck) -> String {
    let sign = if c.shift_us >= 0 { "+" } else { "-" };
    let head = format!(
        "tick check for {}: p50 {} for each tick's first request, {} for all ({sign}{}, bound {})",
        c.target,
        fmt_us(c.first_p50_us as f64),
        fmt_us(c.all_p50_us as f64),
        fmt_us(c.shift_us.unsigned_abs() as f64),
        fmt_us(c.bound_us as f64),
    );
    if c.within {
        head
    } else {
        format!(
            "{head}\n  WARNING: sending each tick's requests together moved the median; \
             --tick 0s times every request on its own (more CPU), a smaller --tick splits the bursts"
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::hist::new_histogram;
    use crate::results::GroupHist;

    fn results(tick_ns: u64, firsts: &[u64], all: &[u64]) -> Results {
        let mut lead = new_histogram();
        for &v in firsts {
            lead.record(v).unwrap();
        }
        let mut g = GroupHist::default();
        for &v in all {
            g.corrected.record(v).unwrap();
        }
        Results::one_target(5000.0, Default::default(), lead, g, tick_ns)
    }

    #[test]
    fn a_small_shift_passes_and_a_large_one_warns() {
        // Firsts at 150 µs, everyone at 170: +20 µs, inside 50.
        let r = results(500_000, &[150; 200], &[170; 500]);
        let c = &checks(&r)[0];
        assert_eq!((c.first_p50_us, c.all_p50_us), (150, 170));
        assert_eq!(c.shift_us, 20);
        assert!(c.within);
        assert!(!describe(c).contains("WARNING"));
        // Everyone at 260: +110 µs, outside 50 µs (10 % of 260 is less).
        let r = results(500_000, &[150; 200], &[260; 500]);
        let c = &checks(&r)[0];
        assert!(!c.within && c.bound_us == 50);
        assert!(describe(c).contains("WARNING"), "{}", describe(c));
    }

    #[test]
    fn a_far_target_gets_ten_percent_and_exact_mode_no_check() {
        // 30 ms away: +1 ms is inside 10 % (3 ms).
        let r = results(2_000_000, &[30_000; 200], &[31_000; 500]);
        let c = &checks(&r)[0];
        // HDR keeps three significant digits, so the bound is 10 % of about 31 ms.
        assert!((3_090..=3_110).contains(&c.bound_us), "{c:?}");
        assert!(c.within);
        assert!(checks(&results(0, &[150; 200], &[900; 500])).is_empty());
        // Too few firsts to say anything.
        assert!(checks(&results(500_000, &[150; 20], &[900; 500])).is_empty());
    }
}
