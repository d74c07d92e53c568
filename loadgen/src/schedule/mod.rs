//! The schedule: when each request is due, independent of any response (open loop).
//!
//! A run is a list of segments, each moving the rate linearly from `r0` to `r1`
//! (a warm-up segment, then `--rps`/`--duration` or the `--stages` ramps). Arrivals
//! are generated in *count space*: the expected number of requests by time `t` is
//! `N(t) = ∫ rate`, and the k-th request is due at `N⁻¹(c_k)`. Fixed arrivals use
//! `c_k = k`; Poisson arrivals add exponential(1) increments to `c`, which gives a
//! Poisson process with the (time-varying) rate. Worker `w` of `n` takes counts
//! `w, w+n, w+2n, ...` (fixed) or increments of `n·Exp(1)` (Poisson, a thinned
//! process), so the union over workers is exactly the requested schedule.

pub mod shard;
pub mod tick;

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

use self::Arrival as ArrivalMode;
use crate::error::UsageError;

/// Request arrival process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Arrival {
    /// Evenly spaced requests (wrk2 style).
    #[default]
    Fixed,
    /// Exponentially distributed gaps with the same mean rate.
    Poisson,
}

/// One ramp step: over `duration`, move linearly from `from` to `to` requests/s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub from: f64,
    pub to: f64,
}

/// Parses `30s:1000,2m:5000,30s:0` (k6 style: each stage ramps from the previous target,
/// starting at 0).
pub fn parse_stages(spec: &str) -> Result<Vec<Stage>, UsageError> {
    let mut prev = 0.0;
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (d, r) = part.split_once(':').ok_or_else(|| {
            UsageError::new(format!(
                "stage {part:?}: expected DURATION:RPS, e.g. 30s:1000"
            ))
        })?;
        let duration = humantime::parse_duration(d.trim())
            .map_err(|e| UsageError::new(format!("stage {part:?}: bad duration {d:?}: {e}")))?;
        let to: f64 = r
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| {
                UsageError::new(format!("stage {part:?}: rate {r:?} is not a number >= 0"))
            })?;
        out.push(Stage {
            duration,
            from: prev,
            to,
        });
        prev = to;
    }
    if out.is_empty() {
        return Err(UsageError::new("--stages is empty"));
    }
    if out.iter().all(|s| s.duration.is_zero()) {
        return Err(UsageError::new("--stages: total duration is zero"));
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    start: f64,
    len: f64,
    r0: f64,
    r1: f64,
    /// Expected count at the segment start.
    c0: f64,
    /// Expected count within the segment.
    count: f64,
}

/// Rate as a function of time for one target, warm-up included.
#[derive(Debug, Clone)]
pub struct RatePlan {
    segments: Vec<Segment>,
    warmup_end: f64,
    end: f64,
}

impl RatePlan {
    /// `share` scales every stage (a target's fraction of the total rate).
    pub fn new(stages: &[Stage], warmup: Duration, share: f64) -> RatePlan {
        let mut segments = Vec::new();
        let (mut t, mut c) = (0.0, 0.0);
        let mut push = |len: f64, r0: f64, r1: f64| {
            let count = (r0 + r1) * 0.5 * len;
            segments.push(Segment {
                start: t,
                len,
                r0,
                r1,
                c0: c,
                count,
            });
            t += len;
            c += count;
        };
        let warmup = warmup.as_secs_f64();
        if warmup > 0.0 {
            let first = stages
                .first()
                .map(|s| if s.from > 0.0 { s.from } else { s.to })
                .unwrap_or(0.0);
            push(warmup, first * share, first * share);
        }
        for s in stages {
            push(s.duration.as_secs_f64(), s.from * share, s.to * share);
        }
        RatePlan {
            segments,
            warmup_end: warmup,
            end: t,
        }
    }

    /// Seconds of warm-up at the start.
    pub fn warmup_secs(&self) -> f64 {
        self.warmup_end
    }

    /// Total length, warm-up included, in seconds.
    pub fn end_secs(&self) -> f64 {
        self.end
    }

    /// Expected number of requests in the measured part (after warm-up).
    pub fn measured_count(&self) -> f64 {
        self.count_at(self.end) - self.count_at(self.warmup_end)
    }

    /// Expected count by time `t` (seconds).
    pub fn count_at(&self, t: f64) -> f64 {
        let mut total = 0.0;
        for s in &self.segments {
            if t >= s.start + s.len {
                total = s.c0 + s.count;
            } else if t > s.start {
                let x = t - s.start;
                let a = if s.len > 0.0 {
                    (s.r1 - s.r0) / s.len
                } else {
                    0.0
                };
                return s.c0 + s.r0 * x + 0.5 * a * x * x;
            } else {
                break;
            }
        }
        total
    }

    /// Time (seconds) at which the expected count reaches `c`, or `None` past the end.
    /// `hint` is a segment cursor that only moves forward.
    fn time_at_count(&self, c: f64, hint: &mut usize) -> Option<f64> {
        while let Some(s) = self.segments.get(*hint) {
            if c < s.c0 + s.count {
                let x = c - s.c0;
                if x <= 0.0 {
                    return Some(s.start);
                }
                let a = if s.len > 0.0 {
                    (s.r1 - s.r0) / s.len
                } else {
                    0.0
                };
                // Root of a/2·t² + r0·t = x in the form that stays exact when a → 0.
                let disc = (s.r0 * s.r0 + 2.0 * a * x).max(0.0);
                let denom = s.r0 + disc.sqrt();
                let dt = if denom > 0.0 { 2.0 * x / denom } else { 0.0 };
                return Some(s.start + dt.min(s.len));
            }
            *hint += 1;
        }
        None
    }
}

/// One scheduled request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// When it is due, nanoseconds after the run start (the engine adds the start; the
    /// name stays `due_ns` through to the recorder).
    pub due_ns: u64,
    /// Falls in the warm-up (left out of results).
    pub warmup: bool,
}

/// The arrivals of one target handled by one worker.
#[derive(Debug)]
pub struct Arrivals {
    plan: Arc<RatePlan>,
    mode: ArrivalMode,
    stride: f64,
    next_c: f64,
    cursor: usize,
    rng: SmallRng,
}

impl Arrivals {
    /// Arrivals for `worker` of `workers`; `seed` drives Poisson gaps.
    pub fn new(
        plan: Arc<RatePlan>,
        mode: ArrivalMode,
        worker: usize,
        workers: usize,
        seed: u64,
    ) -> Arrivals {
        let workers = workers.max(1);
        let mut rng =
            SmallRng::seed_from_u64(seed ^ (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let stride = workers as f64;
        let next_c = match mode {
            ArrivalMode::Fixed => worker as f64,
            ArrivalMode::Poisson => stride * exp1(&mut rng),
        };
        Arrivals {
            plan,
            mode,
            stride,
            next_c,
            cursor: 0,
            rng,
        }
    }
}

fn exp1(rng: &mut SmallRng) -> f64 {
    let u: f64 = rng.random();
    -(1.0 - u).ln()
}

impl Iterator for Arrivals {
    type Item = Due;

    fn next(&mut self) -> Option<Due> {
        let t = self.plan.time_at_count(self.next_c, &mut self.cursor)?;
        self.next_c += match self.mode {
            ArrivalMode::Fixed => self.stride,
            ArrivalMode::Poisson => self.stride * exp1(&mut self.rng),
        };
        Some(Due {
            due_ns: (t * 1e9) as u64,
            warmup: t < self.plan.warmup_end,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    fn constant(rps: f64, secs: f64) -> Vec<Stage> {
        vec![Stage {
            duration: Duration::from_secs_f64(secs),
            from: rps,
            to: rps,
        }]
    }

    #[test]
    fn parses_k6_stages() {
        let s = parse_stages("30s:1000, 2m:5000,30s:0").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].from, s[0].to), (0.0, 1000.0));
        assert_eq!((s[1].from, s[1].to), (1000.0, 5000.0));
        assert_eq!(s[1].duration, Duration::from_secs(120));
        assert_eq!((s[2].from, s[2].to), (5000.0, 0.0));
        for bad in ["", "30s", "x:10", "10s:-1", "10s:abc", "0s:10"] {
            assert!(parse_stages(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fixed_constant_rate_is_evenly_spaced() {
        let plan = Arc::new(RatePlan::new(
            &constant(1000.0, 2.0),
            Duration::from_secs(1),
            1.0,
        ));
        let all: Vec<Due> = Arrivals::new(plan, ArrivalMode::Fixed, 0, 1, 0).collect();
        assert_eq!(all.len(), 3000);
        assert_eq!(all.iter().filter(|d| d.warmup).count(), 1000);
        for w in all.windows(2) {
            let gap = w[1].due_ns - w[0].due_ns;
            assert!((999_000..=1_001_000).contains(&gap), "gap {gap}");
        }
    }

    #[test]
    fn ramp_counts_follow_the_area() {
        // 0 -> 1000 over 10 s: 5000 requests, 1/4 of them in the first half.
        let stages = parse_stages("10s:1000").unwrap();
        let plan = Arc::new(RatePlan::new(&stages, Duration::ZERO, 1.0));
        let all: Vec<Due> = Arrivals::new(plan, ArrivalMode::Fixed, 0, 1, 0).collect();
        assert!((4999..=5001).contains(&all.len()), "{}", all.len());
        let first_half = all.iter().filter(|d| d.due_ns < 5_000_000_000).count();
        assert!((1249..=1251).contains(&first_half), "{first_half}");
    }

    #[test]
    fn poisson_mean_rate() {
        let plan = Arc::new(RatePlan::new(&constant(2000.0, 10.0), Duration::ZERO, 1.0));
        let n = Arrivals::new(plan, ArrivalMode::Poisson, 0, 1, 42).count();
        // 20000 expected, sd ~141.
        assert!((19_000..=21_000).contains(&n), "{n}");
    }

    proptest! {
        #[test]
        fn workers_partition_the_schedule(
            rates in proptest::collection::vec(0.0f64..3000.0, 1..4),
            secs in 0.1f64..2.0,
            workers in 1usize..4,
            warm in 0.0f64..0.5,
        ) {
            let spec: Vec<String> = rates.iter().map(|r| format!("{}ms:{r}", (secs * 1000.0) as u64 + 1)).collect();
            let stages = parse_stages(&spec.join(",")).unwrap();
            let plan = Arc::new(RatePlan::new(&stages, Duration::from_secs_f64(warm), 1.0));
            let single: Vec<Due> = Arrivals::new(plan.clone(), ArrivalMode::Fixed, 0, 1, 0).collect();
            let mut merged: Vec<Due> = (0..workers)
                .flat_map(|w| Arrivals::new(plan.clone(), ArrivalMode::Fixed, w, workers, 0).collect::<Vec<_>>())
                .collect();
            merged.sort_by_key(|d| d.due_ns);
            prop_assert_eq!(merged.len(), single.len());
            let total = plan.count_at(plan.end_secs());
            prop_assert!((single.len() as f64 - total).abs() <= 1.0 + 1e-6);
            prop_assert!(single.windows(2).all(|w| w[0].due_ns <= w[1].due_ns));
            prop_assert!(single.iter().all(|d| d.due_ns as f64 <= plan.end_secs() * 1e9 + 1.0));
        }
    }
}
