//! How coarse the schedule is: `--tick auto` (the default), a fixed tick, or `0s` (exact).
//!
//! On a virtual machine a paced client's CPU is mostly wake-ups (about 60 µs each on the
//! 2-core VM of benches/README.md, against about 30 µs of work per request), so a coarser
//! tick is cheaper. What it may cost is honesty: the requests of one tick leave together,
//! and those behind the first can queue behind it. How much that matters depends on the
//! latency being measured. Against a one-thread server on loopback (p50 about 150 µs) a
//! 2 ms tick moved p50 by +328 µs, far outside the 50 µs allowed; against a server 30 ms
//! away it moved p50 by +768 µs, inside the 10 % (3 ms) allowed there, at 0.66x the CPU
//! of the 500 µs tick.
//!
//! So `auto` sizes the tick by what it measures. Once a second each worker takes the
//! median service time of each of its targets over that second. The tick is then the
//! largest of 500 µs, 1 ms and 2 ms that is at most a fifteenth of the smallest of those
//! medians. That leaves a fourfold margin on the far server's measured shift, and
//! loopback and in-region targets keep 500 µs. The ticks nest (each is twice the one
//! below, counted from the run's start), so a change moves no request's intended time
//! before its due time. Every run's tick check (`judge::tick`) still verifies the outcome.

use std::time::Duration;

use hdrhistogram::Histogram;

/// `--tick`: chosen per second from the service time, fixed, or exact (`0s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    Auto,
    Fixed(Duration),
}

/// The finest tick `auto` uses, and where it starts.
pub const AUTO_MIN: Duration = Duration::from_micros(500);
/// The coarsest: above it, the gaps between sends on the wire would pass 2 ms.
pub const AUTO_MAX: Duration = Duration::from_millis(2);
/// How often `auto` looks again.
pub const AUTO_EVERY: Duration = Duration::from_secs(1);
/// The tick is at most the nearest target's median service time over this.
const MEDIAN_OVER_TICK: u64 = 15;
/// A target's median counts once it has this many answers in the window.
const MIN_ANSWERS: u64 = 5;

/// Parses `auto` or a duration (`500us`, `2ms`, `0s`).
pub fn parse_tick(s: &str) -> Result<Tick, String> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(Tick::Auto);
    }
    humantime::parse_duration(s.trim())
        .map(Tick::Fixed)
        .map_err(|e| format!("{e} (expected `auto` or a duration such as 500us, 2ms or 0s)"))
}

/// One worker's `auto` choice: service times per target over the current second.
#[derive(Debug)]
pub struct AutoTick {
    windows: Vec<Histogram<u32>>,
}

impl AutoTick {
    pub fn new(targets: usize) -> AutoTick {
        // One significant digit is plenty to compare a median with 7.5, 15 or 30 ms.
        let h = || match Histogram::new_with_bounds(1, crate::hist::HIGHEST_US, 1) {
            Ok(h) => h,
            // Constant bounds that hdrhistogram accepts; this arm cannot run.
            Err(e) => unreachable!("histogram bounds are valid constants: {e:?}"),
        };
        AutoTick {
            windows: (0..targets).map(|_| h()).collect(),
        }
    }

    /// One answer's service time (sent to answered), microseconds.
    #[inline]
    pub fn observe(&mut self, target: usize, service_us: u64) {
        if let Some(h) = self.windows.get_mut(target) {
            h.saturating_record(service_us.max(1));
        }
    }

    /// The tick for the next second, in ns (`current` when no target answered enough),
    /// and a fresh window.
    pub fn choose(&mut self, current_ns: u64) -> u64 {
        let nearest = self
            .windows
            .iter()
            .filter(|h| h.len() >= MIN_ANSWERS)
            .map(|h| h.value_at_quantile(0.5))
            .min();
        for h in &mut self.windows {
            h.reset();
        }
        let Some(median_us) = nearest else {
            return current_ns;
        };
        let limit_ns = median_us.saturating_mul(1000) / MEDIAN_OVER_TICK;
        let max_ns = AUTO_MAX.as_nanos() as u64;
        let mut tick = AUTO_MIN.as_nanos() as u64;
        while tick * 2 <= limit_ns.min(max_ns) {
            tick *= 2;
        }
        tick
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn choose_for(medians_us: &[u64]) -> u64 {
        let mut a = AutoTick::new(medians_us.len());
        for (t, &m) in medians_us.iter().enumerate() {
            for _ in 0..20 {
                a.observe(t, m);
            }
        }
        a.choose(500_000)
    }

    #[test]
    fn the_tick_follows_the_nearest_target() {
        // Loopback and in-region: the finest tick.
        assert_eq!(choose_for(&[150]), 500_000);
        assert_eq!(choose_for(&[8_000]), 500_000);
        // 15 ms and more: 1 ms; 30 ms and more: 2 ms, and never coarser.
        assert_eq!(choose_for(&[16_000]), 1_000_000);
        assert_eq!(choose_for(&[31_000]), 2_000_000);
        assert_eq!(choose_for(&[900_000]), 2_000_000);
        // A near target and a far one: the near one decides.
        assert_eq!(choose_for(&[31_000, 300]), 500_000);
    }

    #[test]
    fn too_few_answers_keep_the_tick_and_each_second_starts_afresh() {
        let mut a = AutoTick::new(2);
        a.observe(0, 31_000);
        assert_eq!(a.choose(1_000_000), 1_000_000, "one answer says nothing");
        for _ in 0..10 {
            a.observe(0, 31_000);
        }
        // The near target had no answers this second: the far one decides.
        assert_eq!(a.choose(500_000), 2_000_000);
        assert_eq!(a.choose(2_000_000), 2_000_000, "an empty window keeps it");
    }

    #[test]
    fn parses_auto_and_durations() {
        assert_eq!(parse_tick("auto").unwrap(), Tick::Auto);
        assert_eq!(parse_tick(" AUTO ").unwrap(), Tick::Auto);
        assert_eq!(
            parse_tick("2ms").unwrap(),
            Tick::Fixed(Duration::from_millis(2))
        );
        assert_eq!(parse_tick("0s").unwrap(), Tick::Fixed(Duration::ZERO));
        let e = parse_tick("fast").unwrap_err();
        assert!(e.contains("expected `auto`"), "{e}");
    }
}
