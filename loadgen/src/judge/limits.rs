//! Did the generator, rather than the service, limit the run?
//!
//! An open-loop generator only measures the service while it can send every request when
//! it is due. Two things in loadgen itself can stop it: too few connections (requests wait
//! in loadgen's queue for a free one, and that wait would be reported as latency), and too
//! little CPU (the dispatcher falls more than `--max-lag` behind and drops requests). Both
//! are judged here from what the engine recorded, so the text report, the JSON and the
//! `generator_limited` SLO say the same thing, in words that name the flag to change.

use crate::results::{Results, TargetResult};
use crate::units::fmt_us;

/// A p99 wait for a free connection above this (microseconds) is material: it is larger
/// than most in-region service times, so it would be misread as the service's latency.
pub const WAIT_P99_LIMIT_US: u64 = 1_000;
/// Headroom on Little's law when naming the connections a rate needs.
const HEADROOM: f64 = 1.25;

/// One target on which loadgen limited the run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Limit {
    pub target: String,
    /// What was seen, in plain words.
    pub reasons: Vec<String>,
    /// What to change.
    pub advice: String,
    /// p99 wait for a free connection, microseconds.
    pub wait_p99_us: u64,
    /// The pool's cap during the run.
    pub connections_cap: u64,
    /// Connections the rate needed by Little's law (rate × mean service time, with
    /// headroom), when any response was timed.
    pub connections_needed: Option<u64>,
}

/// Mean service time of a target's responses, seconds.
fn mean_service_secs(r: &Results, target: &str) -> Option<f64> {
    let (mut n, mut sum) = (0u64, 0.0);
    for (k, g) in &r.groups {
        if k.target == target && !g.service.is_empty() {
            n += g.service.len();
            sum += g.service.mean() * g.service.len() as f64;
        }
    }
    (n > 0).then(|| sum / n as f64 / 1e6)
}

fn judge(r: &Results, t: &TargetResult) -> Option<Limit> {
    let pool = &t.pool;
    let wait_p99 = if pool.wait.is_empty() {
        0
    } else {
        pool.wait.value_at_quantile(0.99)
    };
    let needed = mean_service_secs(r, &t.name)
        .map(|s| (t.requested_rps * s * HEADROOM).ceil().max(1.0) as u64);
    let mut reasons = Vec::new();
    let mut advice = Vec::new();
    // Requests dropped at loadgen's in-flight cap were never sent, whether or not every
    // connection was busy at that moment: the accounting's bucket counts them all.
    let dropped_cap = t.measured.dropped_cap.max(pool.dropped_at_cap);
    let pool_limited = wait_p99 > WAIT_P99_LIMIT_US || dropped_cap > 0;
    if wait_p99 > WAIT_P99_LIMIT_US {
        reasons.push(format!(
            "requests waited in loadgen for a free connection: p99 {}, max {} (counted in their latency)",
            fmt_us(wait_p99 as f64),
            fmt_us(pool.wait.max() as f64)
        ));
    }
    if dropped_cap > 0 {
        reasons.push(format!(
            "{dropped_cap} requests were dropped at --max-in-flight, never sent ({} connections allowed)",
            pool.cap
        ));
    }
    if dropped_cap > 0 && wait_p99 <= WAIT_P99_LIMIT_US {
        // Nothing waited for a connection: the cap on requests under way was the limit.
        advice.push(
            "lower --rps, or raise --max-in-flight if the service keeps up (in `loadgen lab`, lower --rps)"
                .to_string(),
        );
    } else if pool_limited {
        advice.push(match needed {
            Some(n) if n > pool.cap => format!(
                "this rate needs about {n} connections ({:.0} rps x {} mean service time), the pool had {}: \
                 raise --max-connections (or --connections, if you fixed the pool) to {n} or more",
                t.requested_rps,
                fmt_us(mean_service_secs(r, &t.name).unwrap_or(0.0) * 1e6),
                pool.cap
            ),
            _ => "raise --max-connections (or --connections, if you fixed the pool), or --max-in-flight"
                .to_string(),
        });
    }
    if t.measured.dropped_behind > 0 {
        reasons.push(format!(
            "{} requests were dropped because loadgen fell more than --max-lag behind its schedule",
            t.measured.dropped_behind
        ));
        advice
            .push("give loadgen more CPU: more --threads, or --tick 1ms to batch wake-ups".into());
    }
    if reasons.is_empty() {
        return None;
    }
    Some(Limit {
        target: t.name.clone(),
        reasons,
        advice: advice.join("; "),
        wait_p99_us: wait_p99,
        connections_cap: pool.cap,
        connections_needed: needed,
    })
}

/// Every target on which loadgen limited the run (empty: the numbers are the service's).
pub fn limits(r: &Results) -> Vec<Limit> {
    r.targets.iter().filter_map(|t| judge(r, t)).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::results::{new_histogram, GroupHist, PoolStats};

    fn results(wait_us: u64, dropped_at_cap: u64, service_us: u64) -> Results {
        let mut pool = PoolStats {
            cap: 64,
            ..PoolStats::default()
        };
        for _ in 0..100 {
            pool.wait.record(wait_us).unwrap();
        }
        pool.dropped_at_cap = dropped_at_cap;
        let mut g = GroupHist::new();
        g.service.record(service_us).unwrap();
        Results::one_target(2500.0, pool, new_histogram(), g, 0)
    }

    #[test]
    fn no_wait_no_limit() {
        assert!(limits(&results(0, 0, 31_000)).is_empty());
        assert!(limits(&results(WAIT_P99_LIMIT_US, 0, 31_000)).is_empty());
    }

    #[test]
    fn a_material_wait_names_the_connections_needed() {
        let l = limits(&results(450_000, 0, 31_000));
        assert_eq!(l.len(), 1);
        // 2500 rps x 31 ms = 77.5, x 1.25 headroom = 97 (HDR rounds 31 ms up a little).
        let needed = l[0].connections_needed.unwrap();
        assert!((96..=98).contains(&needed), "{needed}");
        assert!(l[0].advice.contains("--max-connections"), "{}", l[0].advice);
        assert!(l[0].reasons[0].contains("waited in loadgen"));
    }

    #[test]
    fn drops_at_the_cap_limit_even_without_a_long_wait() {
        let l = limits(&results(0, 5, 31_000));
        assert_eq!(l.len(), 1);
        assert!(l[0].reasons[0].contains("5 requests were dropped at --max-in-flight"));
    }

    #[test]
    fn requests_dropped_at_the_in_flight_cap_are_a_generator_limit_and_name_its_flag() {
        // The lab at 50000 rps on two cores: most requests dropped at the in-flight cap,
        // though the pool itself never dropped one with every connection busy.
        let mut r = results(0, 0, 31_000);
        r.targets[0].measured.scheduled = 1000;
        r.targets[0].measured.dropped_cap = 720;
        let l = limits(&r);
        assert_eq!(l.len(), 1, "{l:?}");
        assert!(l[0].reasons[0].contains("720 requests were dropped at --max-in-flight"));
        assert!(l[0].advice.contains("--max-in-flight") && l[0].advice.contains("lower --rps"));
        assert!(
            !l[0].advice.contains("--max-connections"),
            "{}",
            l[0].advice
        );
    }
}
