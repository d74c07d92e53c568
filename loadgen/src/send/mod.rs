//! The engine: open-loop dispatch over pooled HTTP/1.1 connections.
//!
//! Each worker thread runs a single-threaded tokio runtime (no cross-thread hops on the
//! hot path) with its own share of every target's schedule, its own connections and its
//! own [`Recorder`], so the hot path takes no locks and touches no shared memory. The
//! runtime is a `LocalRuntime`: `!Send` tasks are spawned on it directly, and a task
//! woken by the reactor goes straight to the run queue (a `LocalSet` would add an
//! eventfd write per wake-up).
//!
//! One dispatcher task per worker sleeps on a [`PreciseTimer`] until the next request is
//! due, then hands over *every* request that is due, recording the pacing lag (hand-over
//! time minus due time) of each:
//!
//! - if the target already has `--max-in-flight` requests queued or active (this worker's
//!   share of the cap), the request is dropped (counted);
//! - if the dispatcher fell more than `--max-lag` behind the request's due time (the
//!   generator itself is the bottleneck), it is dropped (counted) rather than sent late;
//! - otherwise it goes to an idle connection, opens a new one, or waits in the target's
//!   queue for the next free connection.
//!
//! The pool grows on demand: a new connection is opened whenever a request is due and
//! every connection is busy, up to this worker's share of the cap (`--max-connections`, or
//! a fixed `--connections`), so it settles where Little's law puts it (rate × service
//! time). Opening is paced: at most `max(MIN_OPENING, established)` connects are under way
//! at once per target, so a slow or dead target does not get a storm of connects, while a
//! healthy one can double its pool every round trip. Time a request spends in the queue is
//! recorded on its own (`PoolStats::wait`): with enough connections it stays near zero, and
//! when it does not, the generator, not the service, limited the run, and the report says so.
//! New connections take the target's addresses in turn, and its name is looked up again in
//! the background as they open (`dns`). A connection is plain TCP or TLS over it
//! (`stream`); the handshake is part of the connect, so of the latency of the request
//! that needed the connection.
//!
//! A connection task lives as long as its connection: it serves requests back to back
//! while the queue holds work, then waits in the idle list with its connection parked. A
//! request for a parked plain-TCP connection is written by the dispatcher itself, and the
//! task wakes only for the answer (`serve`, `state::Parked`); after a held sleep the
//! dispatcher reads a whole answer itself, and the task does not wake at all (`reap`). Each request's timeout runs
//! from its due time and covers any wait for a connection, connecting and the whole exchange; one whose timeout passed
//! while it waited is not sent, and a connect or TLS handshake still under way when it
//! passes is a connect timeout (its own bucket: the target did not accept). A timed-out or
//! failed connection is closed and replaced on demand. A queued request's wait counts in its
//! corrected latency (measured from its due time), not in the pacing lag: it is the server
//! being slow, not the generator.
//!
//! When the schedule ends, in-flight requests get `--timeout` plus a second to finish; on
//! Ctrl-C/SIGTERM, queued requests are cancelled at once and active ones get a short grace.
//! Whatever is left is counted as cancelled, so every scheduled request lands in exactly one
//! accounting bucket.

mod arrival;
mod chores;
pub(crate) mod clock;
mod dns;
mod head;
pub(crate) mod http1;
mod http2;
mod pick;
mod reap;
mod serve;
mod state;
mod stream;
mod targets;
mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::configured::config::RunConfig;
use crate::hist::new_histogram;
use crate::live::Live;
use crate::record::Recorder;
use crate::results::{GroupHist, GroupKey, Results, TargetResult};
use crate::schedule::RatePlan;
use crate::timeline::Timeline;
use clock::{now_ns, tighten_timer_slack};

/// Grace for active requests after Ctrl-C/SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_millis(500);
/// Extra time after `--timeout` for the last requests once the schedule has ended.
pub(super) const DRAIN_SLACK: Duration = Duration::from_secs(1);
/// Requests handed over before the dispatcher yields to the connection tasks.
pub(super) const DISPATCH_BATCH: usize = 64;
/// A request due sooner than this is waited for by yielding to the other tasks rather than
/// by sleeping. Kept small: a thread that spins loses its wake-up priority under a busy
/// kernel scheduler, which costs more pacing precision than it saves.
pub(super) const YIELD_BELOW_NS: u64 = 5_000;
/// Waits up to this long hold the worker thread in a plain sleep (answers wait in their
/// sockets, stamped by the kernel, for as long as `arrival` finds the stamps are receipt
/// times); longer ones sleep in the reactor, woken by answers.
pub(super) const HOLD_BELOW_NS: u64 = 2_000_000;
/// How often workers publish counters for live progress.
pub(super) const PUBLISH_EVERY_NS: u64 = 250_000_000;

/// What the engine hands back.
#[derive(Debug)]
pub struct EngineOutput {
    pub recorders: Vec<Recorder>,
    /// When the run started and stopped (monotonic ns).
    pub start_ns: u64,
    pub stop_ns: u64,
    pub interrupted: bool,
    /// What `--out` wrote.
    pub rows: Option<crate::results::RowStats>,
}

/// Runs the schedule against the targets. `addrs[i]` are the addresses `cfg.targets[i]`
/// resolved to at the start (none if its name did not resolve),
/// `plans[i]` its rate plan. Setting `stop` to true ends the run early.
pub fn drive(
    cfg: &Arc<RunConfig>,
    addrs: &[Vec<SocketAddr>],
    plans: &[Arc<RatePlan>],
    stop: watch::Receiver<bool>,
    live: Option<Arc<Live>>,
) -> anyhow::Result<EngineOutput> {
    let threads = cfg.threads;
    // Every connection is a file descriptor: the pools must fit the open-file limit, or
    // connects would fail with EMFILE and be counted against the target.
    let room = pool_room(cfg.targets.len());
    let fd_limited = room < cfg.connections;
    let cfg = &Arc::new(RunConfig {
        connections: cfg.connections.min(room),
        ..RunConfig::clone(cfg)
    });
    // A common start a little ahead lets every worker set up before the first request.
    let start_ns = now_ns() + 20_000_000;
    let stopped_at = Arc::new(AtomicU64::new(0));
    let writer = match &cfg.out {
        Some(spec) => {
            let warmup_ns = cfg.warmup.as_nanos() as u64;
            let names = cfg.targets.iter().map(|t| t.name.clone()).collect();
            let request_names = cfg
                .targets
                .iter()
                .map(|t| crate::configured::requests_file::names(&t.endpoints))
                .collect();
            Some(crate::record::rows::start(
                spec,
                names,
                request_names,
                start_ns + warmup_ns,
            )?)
        }
        None => None,
    };
    let mut handles = Vec::with_capacity(threads);
    for w in 0..threads {
        let setup = Setup {
            cfg: cfg.clone(),
            w,
            addrs: addrs.to_vec(),
            plans: plans.to_vec(),
            start_ns,
            stop: stop.clone(),
            live: live.clone(),
            stopped_at: stopped_at.clone(),
            fd_limited,
            rows: std::cell::Cell::new(writer.as_ref().map(|wr| wr.for_worker(w))),
        };
        let h = std::thread::Builder::new()
            .name(format!("loadgen-worker-{w}"))
            .spawn(move || -> anyhow::Result<Recorder> {
                tighten_timer_slack();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build_local(tokio::runtime::LocalOptions::default())
                    .context("cannot start a worker runtime")?;
                // Spawned rather than driven by block_on: wake-ups of a spawned task stay
                // on the local run queue.
                rt.block_on(async move { tokio::task::spawn_local(worker::worker(setup)).await })
                    .context("a worker task panicked")?
            })
            .context("cannot start a worker thread")?;
        handles.push(h);
    }
    let mut recorders = Vec::with_capacity(threads);
    for h in handles {
        match h.join() {
            Ok(r) => recorders.push(r?),
            Err(_) => anyhow::bail!("a worker thread panicked"),
        }
    }
    let mut produced = 0;
    for r in &mut recorders {
        if let Some(out) = r.rows.take() {
            produced += out.finish().0;
        }
    }
    let rows = writer.map(|wr| wr.finish(produced));
    let stopped = stopped_at.load(Ordering::Relaxed);
    let interrupted = stopped != 0;
    let stop_ns = if interrupted { stopped } else { now_ns() };
    Ok(EngineOutput {
        recorders,
        start_ns,
        stop_ns,
        interrupted,
        rows,
    })
}

pub(super) struct Setup {
    cfg: Arc<RunConfig>,
    w: usize,
    addrs: Vec<Vec<SocketAddr>>,
    plans: Vec<Arc<RatePlan>>,
    start_ns: u64,
    stop: watch::Receiver<bool>,
    live: Option<Arc<Live>>,
    stopped_at: Arc<AtomicU64>,
    /// The pools' cap was lowered to fit the open-files limit.
    fd_limited: bool,
    /// This worker's side of `--out`, taken by its recorder.
    rows: std::cell::Cell<Option<crate::record::rows::RowOut>>,
}

/// Connections per target the open-file limit leaves room for, after raising the soft
/// limit to the hard one (as a server would; the default soft limit is often 1024).
fn pool_room(targets: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return usize::MAX;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        return usize::MAX;
    }
    let room = lim.rlim_cur.saturating_sub(crate::pool::FD_RESERVE) / (targets.max(1) as u64);
    usize::try_from(room).unwrap_or(usize::MAX).max(1)
}

/// Share `total` among `n` workers: worker `w` gets its part, at least 1.
pub(super) fn share(total: usize, n: usize, w: usize) -> usize {
    (total / n + usize::from(w < total % n)).max(1)
}

impl EngineOutput {
    /// The run's results, the workers' recorders merged: measured window, rates per
    /// target and the timeline's wall-clock origin.
    pub fn into_results(self, cfg: &RunConfig, plans: &[Arc<RatePlan>]) -> (Results, Timeline) {
        let out = self;
        let names: Vec<String> = cfg.targets.iter().map(|t| t.name.clone()).collect();
        let warmup_ns = (plans.first().map(|p| p.warmup_secs()).unwrap_or(0.0) * 1e9) as u64;
        let end_ns = (plans.first().map(|p| p.end_secs()).unwrap_or(0.0) * 1e9) as u64;
        let measured_start = out.start_ns + warmup_ns;
        let measured_end = if out.interrupted {
            out.stop_ns.min(out.start_ns + end_ns)
        } else {
            out.start_ns + end_ns
        };
        let measured_secs = measured_end.saturating_sub(measured_start) as f64 / 1e9;

        let mut targets: Vec<TargetResult> = cfg
            .targets
            .iter()
            .map(|t| TargetResult::new(&t.name, &t.url.to_string()))
            .collect();
        let mut groups: std::collections::BTreeMap<GroupKey, GroupHist> = Default::default();
        let mut pacing = new_histogram();
        let mut timeline = Timeline::default();
        for rec in out.recorders {
            let got = rec.into_recorded(&names);
            timeline.merge(got.timeline);
            for (t, a) in targets.iter_mut().zip(got.targets) {
                t.accounts.merge(&a);
            }
            for (k, h) in got.groups {
                groups.entry(k).or_default().merge(&h);
            }
            let _ = pacing.add(&got.pacing);
        }
        // Wall-clock time of the measured start: now, minus how long ago it was on the
        // monotonic clock the engine uses.
        let ago = now_ns().saturating_sub(measured_start) as f64 / 1e9;
        timeline.origin_unix_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
            - ago;
        // With `--tick auto`, the tick most requests went at (at least where it started).
        let tick_ns = if cfg.tick_auto {
            crate::results::TickCounts::of_all(&targets)
                .main()
                .max(cfg.tick.as_nanos() as u64)
        } else {
            cfg.tick.as_nanos() as u64
        };
        for t in &mut targets {
            t.requested_rps = if measured_secs > 0.0 {
                t.accounts.measured.scheduled as f64 / measured_secs
            } else {
                0.0
            };
        }
        (
            Results {
                targets,
                groups,
                pacing,
                measured_secs,
                interrupted: out.interrupted,
                tick_ns,
                tick_auto: cfg.tick_auto,
                timing: clock::timing_source().to_string(),
                rows: out.rows,
            },
            timeline,
        )
    }
}
