//! What limited the run, when it was not the service's answers: loadgen, or a target that
//! never let the requests in?
//!
//! An open-loop generator only measures the service while it can send every request when
//! it is due. Three things in loadgen itself can stop it: too few connections (requests
//! wait in loadgen's queue for a free one, and that wait would be reported as latency), too
//! little CPU (the dispatcher falls more than `--max-lag` behind and drops requests), and too
//! few file descriptors (connects fail before they leave the machine). A wait for a
//! connection is *not* loadgen's when the pool never reached its cap and connects or TLS
//! handshakes timed out: the target did not accept (a region down, a firewall dropping
//! SYNs), and no loadgen flag changes that. Both kinds are judged here from what the engine
//! recorded, so the text report, the JSON and the `generator_limited` SLO (loadgen's kind
//! only) say the same thing, in words that name the cause and what to change.

use crate::pool::PoolStats;
use crate::results::{Results, TargetResult};
use crate::units::fmt_us;

/// A p99 wait for a free connection above this (microseconds) is material: it is larger
/// than most in-region service times, so it would be misread as the service's latency.
pub const WAIT_P99_LIMIT_US: u64 = 1_000;
/// Headroom on Little's law when naming the connections a rate needs.
const HEADROOM: f64 = 1.25;

/// Whose limit it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// loadgen's own: its pool, its pace, its CPU or its descriptors.
    Loadgen,
    /// The target's: it did not accept connections.
    Target,
}

/// One target whose run was limited by something other than the service's answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Limit {
    pub target: String,
    pub by: By,
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

/// What one target's accounting and pool say, gathered once.
struct Evidence<'a> {
    pool: &'a PoolStats,
    wait_p99: u64,
    /// Requests never sent because loadgen's in-flight cap was full.
    dropped_cap: u64,
    connect_timeouts: u64,
    /// The pool reached its cap at some point (a request queued or dropped there).
    reached_cap: bool,
}

impl<'a> Evidence<'a> {
    fn of(t: &'a TargetResult) -> Self {
        let pool = &t.accounts.pool;
        Evidence {
            pool,
            wait_p99: if pool.wait.is_empty() {
                0
            } else {
                pool.wait.value_at_quantile(0.99)
            },
            dropped_cap: t.accounts.measured.dropped_cap.max(pool.dropped_at_cap),
            connect_timeouts: t
                .accounts
                .measured
                .connect_timeout
                .saturating_add(t.accounts.warmup.connect_timeout),
            reached_cap: pool.queued_at_cap > 0 || pool.dropped_at_cap > 0,
        }
    }

    fn waited(&self) -> bool {
        self.wait_p99 > WAIT_P99_LIMIT_US || self.pool.expired_waiting > 0
    }

    /// Requests waited behind connects the target never completed, with room in the pool.
    fn target_not_accepting(&self) -> bool {
        self.connect_timeouts > 0 && !self.reached_cap
    }
}

fn judge(r: &Results, t: &TargetResult) -> Option<Limit> {
    let ev = Evidence::of(t);
    let needed = mean_service_secs(r, &t.name)
        .map(|s| (t.requested_rps * s * HEADROOM).ceil().max(1.0) as u64);
    let limit = |by, reasons: Vec<String>, advice: Vec<String>| Limit {
        target: t.name.clone(),
        by,
        reasons,
        advice: advice.join("; "),
        wait_p99_us: ev.wait_p99,
        connections_cap: ev.pool.cap,
        connections_needed: needed,
    };
    if ev.target_not_accepting() {
        let (reasons, advice) = not_accepting(&ev, t);
        return Some(limit(By::Target, reasons, advice));
    }
    let (reasons, advice) = loadgen_limits(r, t, &ev, needed);
    (!reasons.is_empty()).then(|| limit(By::Loadgen, reasons, advice))
}

fn not_accepting(ev: &Evidence<'_>, t: &TargetResult) -> (Vec<String>, Vec<String>) {
    let mut reasons = vec![format!(
        "{} connects or TLS handshakes did not complete within --timeout; {} connections opened in all, \
         the pool reached {} of its {}",
        ev.connect_timeouts, ev.pool.opened, ev.pool.peak, ev.pool.cap
    )];
    if ev.wait_p99 > WAIT_P99_LIMIT_US {
        reasons.push(format!(
            "requests waited for those connections: p99 {}; their timeout ran from when they were due",
            fmt_us(ev.wait_p99 as f64)
        ));
    }
    if ev.pool.expired_waiting > 0 {
        reasons.push(format!(
            "{} requests timed out still waiting, never sent",
            ev.pool.expired_waiting
        ));
    }
    if ev.dropped_cap > 0 {
        reasons.push(format!(
            "{} requests were not sent: --max-in-flight requests were already waiting for those connections",
            ev.dropped_cap
        ));
    }
    let advice = vec![format!(
        "the target is not accepting connections (a region down, a firewall dropping SYNs, a TLS \
         endpoint that never answers): check {} is up and reachable; no loadgen flag changes this",
        t.name
    )];
    (reasons, advice)
}

fn loadgen_limits(
    r: &Results,
    t: &TargetResult,
    ev: &Evidence<'_>,
    needed: Option<u64>,
) -> (Vec<String>, Vec<String>) {
    let pool = ev.pool;
    let mut reasons = Vec::new();
    let mut advice = Vec::new();
    if ev.waited() {
        reasons.push(format!(
            "requests waited in loadgen for a free connection: p99 {}, max {} (counted in their latency)",
            fmt_us(ev.wait_p99 as f64),
            fmt_us(pool.wait.max() as f64)
        ));
    }
    if ev.dropped_cap > 0 {
        reasons.push(format!(
            "{} requests were dropped at --max-in-flight, never sent ({} connections allowed)",
            ev.dropped_cap, pool.cap
        ));
    }
    if pool.fd_exhausted > 0 || (pool.fd_limited && ev.reached_cap) {
        reasons.push(if pool.fd_exhausted > 0 {
            format!(
                "{} connects failed because loadgen had no file descriptor left",
                pool.fd_exhausted
            )
        } else {
            format!(
                "the pool's cap was lowered to {} to fit loadgen's open-files limit",
                pool.cap
            )
        });
        let wanted = match needed {
            Some(n) if n > pool.cap => {
                format!(
                    " to about {} (this rate needs {n} connections)",
                    n + crate::pool::FD_RESERVE
                )
            }
            _ => String::new(),
        };
        advice.push(format!(
            "raise the open-files limit{wanted}: `ulimit -n` before loadgen (it raises its soft \
             limit to the hard one by itself); --max-connections cannot go past it"
        ));
    } else if ev.dropped_cap > 0 && !ev.waited() {
        // Nothing waited for a connection: the cap on requests under way was the limit.
        advice.push(
            "lower --rps, or raise --max-in-flight if the service keeps up (in `loadgen lab`, lower --rps)"
                .to_string(),
        );
    } else if ev.waited() && !ev.reached_cap {
        reasons.push(format!(
            "the pool never reached its cap ({} of {}): requests waited while connections opened, \
             at most {} or as many as are open at once",
            pool.peak,
            pool.cap,
            crate::pool::MIN_OPENING
        ));
        advice.push(
            "give the pool time to grow before measuring: --warmup (a burst at the start, or a rate \
             that jumps, opens connections at that pace)"
                .to_string(),
        );
    } else if ev.waited() || ev.dropped_cap > 0 {
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
    if t.accounts.measured.dropped_behind > 0 {
        reasons.push(format!(
            "{} requests were dropped because loadgen fell more than --max-lag behind its schedule",
            t.accounts.measured.dropped_behind
        ));
        advice
            .push("give loadgen more CPU: more --threads, or --tick 1ms to batch wake-ups".into());
    }
    (reasons, advice)
}

/// Every target whose run was limited by loadgen or by the target not accepting (empty:
/// the numbers are the service's).
pub fn limits(r: &Results) -> Vec<Limit> {
    r.targets.iter().filter_map(|t| judge(r, t)).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::hist::new_histogram;
    use crate::pool::PoolStats;
    use crate::results::GroupHist;

    fn results(wait_us: u64, dropped_at_cap: u64, service_us: u64) -> Results {
        let mut pool = PoolStats {
            cap: 64,
            ..PoolStats::default()
        };
        for _ in 0..100 {
            pool.wait.record(wait_us).unwrap();
        }
        pool.dropped_at_cap = dropped_at_cap;
        // Requests wait at the cap in these runs: the pool reached it.
        pool.queued_at_cap = u64::from(wait_us > 0) * 100;
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
        r.targets[0].accounts.measured.scheduled = 1000;
        r.targets[0].accounts.measured.dropped_cap = 720;
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

    #[test]
    fn waits_behind_connects_that_time_out_are_the_targets_not_loadgens() {
        // A dead region: nothing ever connected; the pool stayed far below its cap.
        let mut r = results(0, 0, 31_000);
        r.targets[0].accounts.pool.queued_at_cap = 0;
        r.targets[0].accounts.pool.peak = 64;
        r.targets[0].accounts.pool.cap = 4096;
        r.targets[0]
            .accounts
            .pool
            .wait
            .record_n(4_000_000, 100)
            .unwrap();
        r.targets[0].accounts.measured.connect_timeout = 1000;
        let l = limits(&r);
        assert_eq!(l.len(), 1, "{l:?}");
        assert_eq!(l[0].by, By::Target);
        assert!(l[0].advice.contains("not accepting"), "{}", l[0].advice);
        assert!(!crate::judge::judge(&[], &r).generator_limited(None));
        // The same waits at the pool's cap are loadgen's again.
        r.targets[0].accounts.pool.queued_at_cap = 10;
        assert!(crate::judge::judge(&[], &r).generator_limited(Some("eu")));
    }
}
