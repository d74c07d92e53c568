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
//!
//! A connection task serves requests back to back while the queue holds work, then parks
//! its connection in the idle list. Each request's timeout covers connecting and the whole
//! exchange; a timed-out or failed connection is closed and replaced on demand. A queued
//! request's wait counts in its corrected latency (measured from its due time), not in the
//! pacing lag: it is the server being slow, not the generator.
//!
//! When the schedule ends, in-flight requests get `--timeout` plus a second to finish; on
//! Ctrl-C/SIGTERM, queued requests are cancelled at once and active ones get a short grace.
//! Whatever is left is counted as cancelled, so every scheduled request lands in exactly one
//! accounting bucket.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use http::header::{HeaderName, HeaderValue, HOST};
use tokio::sync::{watch, Notify};

use crate::clock::{now_ns, tighten_timer_slack, PreciseTimer};
use crate::config::RunConfig;
use crate::http1::{encode_request, Answer, Conn, ExchangeError};
use crate::record::{Failure, Recorder};
use crate::schedule::{Arrivals, Due, RatePlan};

/// Grace for active requests after Ctrl-C/SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_millis(500);
/// Extra time after `--timeout` for the last requests once the schedule has ended.
const DRAIN_SLACK: Duration = Duration::from_secs(1);
/// Requests handed over before the dispatcher yields to the connection tasks.
const DISPATCH_BATCH: usize = 64;
/// A request due sooner than this is waited for by yielding to the other tasks rather than
/// by sleeping. Kept small: a thread that spins loses its wake-up priority under a busy
/// kernel scheduler, which costs more pacing precision than it saves.
const YIELD_BELOW_NS: u64 = 5_000;
/// How often workers publish counters for live progress.
const PUBLISH_EVERY_NS: u64 = 250_000_000;
/// Connects that may be under way at once per target and worker, however small the pool.
const MIN_OPENING: usize = 64;

/// Snapshot one worker publishes for live progress every 250 ms (read only by the
/// progress bar, so the hot path never touches shared memory).
#[derive(Debug, Default)]
pub struct LiveWorker {
    pub sent: AtomicU64,
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    pub dropped: AtomicU64,
    /// Corrected latency of this worker's measured responses so far.
    pub latency: Mutex<Option<hdrhistogram::Histogram<u64>>>,
    /// Per-target accounting and per-group latency, published only when [`Live::detail`]
    /// is set (for `--metrics-addr`).
    pub detail: Mutex<Option<crate::record::Snapshot>>,
}

/// Live progress snapshots, one slot per worker.
#[derive(Debug, Default)]
pub struct Live {
    pub workers: Vec<LiveWorker>,
    /// Workers also publish per-group snapshots.
    pub detail: bool,
}

impl Live {
    pub fn new(workers: usize) -> Live {
        Live {
            workers: (0..workers).map(|_| LiveWorker::default()).collect(),
            detail: false,
        }
    }

    /// Also publish per-target and per-group snapshots (costs a histogram copy per group
    /// per publish, off the request path).
    pub fn with_detail(mut self) -> Live {
        self.detail = true;
        self
    }

    /// Sum of one counter over workers.
    pub fn total(&self, f: impl Fn(&LiveWorker) -> &AtomicU64) -> u64 {
        self.workers
            .iter()
            .map(|w| f(w).load(Ordering::Relaxed))
            .sum()
    }

    /// Merged latency so far.
    pub fn latency(&self) -> hdrhistogram::Histogram<u64> {
        let mut h = crate::record::new_histogram();
        for w in &self.workers {
            if let Ok(slot) = w.latency.lock() {
                if let Some(x) = slot.as_ref() {
                    let _ = h.add(x);
                }
            }
        }
        h
    }
}

/// What the engine hands back.
#[derive(Debug)]
pub struct EngineOutput {
    pub recorders: Vec<Recorder>,
    /// When the run started and stopped (monotonic ns).
    pub start_ns: u64,
    pub stop_ns: u64,
    pub interrupted: bool,
}

/// Runs the schedule against the targets. `addrs[i]` is where `cfg.targets[i]` lives,
/// `plans[i]` its rate plan. Setting `stop` to true ends the run early.
pub fn run(
    cfg: &Arc<RunConfig>,
    addrs: &[SocketAddr],
    plans: &[Arc<RatePlan>],
    stop: watch::Receiver<bool>,
    live: Option<Arc<Live>>,
) -> anyhow::Result<EngineOutput> {
    let threads = cfg.threads;
    // Every connection is a file descriptor: the pools must fit the open-file limit, or
    // connects would fail with EMFILE and be counted against the target.
    let cfg = &Arc::new(RunConfig {
        connections: cfg.connections.min(pool_room(cfg.targets.len())),
        ..RunConfig::clone(cfg)
    });
    // A common start a little ahead lets every worker set up before the first request.
    let start_ns = now_ns() + 20_000_000;
    let stopped_at = Arc::new(AtomicU64::new(0));
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
                rt.block_on(async move { tokio::task::spawn_local(worker(setup)).await })
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
    let stopped = stopped_at.load(Ordering::Relaxed);
    let interrupted = stopped != 0;
    let stop_ns = if interrupted { stopped } else { now_ns() };
    Ok(EngineOutput {
        recorders,
        start_ns,
        stop_ns,
        interrupted,
    })
}

struct Setup {
    cfg: Arc<RunConfig>,
    w: usize,
    addrs: Vec<SocketAddr>,
    plans: Vec<Arc<RatePlan>>,
    start_ns: u64,
    stop: watch::Receiver<bool>,
    live: Option<Arc<Live>>,
    stopped_at: Arc<AtomicU64>,
}

#[derive(Clone, Copy)]
struct Job {
    due_ns: u64,
    warmup: bool,
    /// When it entered the queue for a busy pool (0: it never waited).
    queued_ns: u64,
}

#[derive(Default)]
struct TargetState {
    in_flight: usize,
    /// Of those, warm-up requests (a stop during warm-up cancels these, not measured ones).
    in_flight_warmup: usize,
    /// Connection slots: open connections plus connects under way.
    conns: usize,
    /// Of those, connects under way.
    opening: usize,
    idle: Vec<Conn>,
    queue: VecDeque<Job>,
}

struct TargetCtx {
    addr: SocketAddr,
    /// The request, serialised once.
    request: Vec<u8>,
    max_conns: usize,
    max_in_flight: usize,
    state: RefCell<TargetState>,
}

struct Worker {
    targets: Vec<TargetCtx>,
    rec: RefCell<Recorder>,
    timeout: Duration,
    region_header: HeaderName,
    version_header: HeaderName,
    /// Total queued + active across targets, and a wake-up when it reaches zero.
    outstanding: Cell<usize>,
    idle: Notify,
}

/// Descriptors kept for everything that is not a connection (stdio, timers, the runtime,
/// report files, the metrics listener).
const FD_RESERVE: u64 = 64;

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
    let room = lim.rlim_cur.saturating_sub(FD_RESERVE) / (targets.max(1) as u64);
    usize::try_from(room).unwrap_or(usize::MAX).max(1)
}

/// Share `total` among `n` workers: worker `w` gets its part, at least 1.
fn share(total: usize, n: usize, w: usize) -> usize {
    (total / n + usize::from(w < total % n)).max(1)
}

async fn worker(setup: Setup) -> anyhow::Result<Recorder> {
    let Setup {
        cfg,
        w,
        addrs,
        plans,
        start_ns,
        mut stop,
        live,
        stopped_at,
    } = setup;
    let n = cfg.threads;
    let targets = cfg
        .targets
        .iter()
        .zip(&addrs)
        .map(|(t, addr)| {
            let mut headers = cfg.headers.clone();
            if !headers.contains_key(HOST) {
                if let Ok(v) = HeaderValue::from_str(t.authority.as_str()) {
                    headers.insert(HOST, v);
                }
            }
            TargetCtx {
                addr: *addr,
                request: encode_request(&t.path, &headers),
                max_conns: share(cfg.connections, n, w),
                max_in_flight: share(cfg.max_in_flight, n, w),
                state: RefCell::new(TargetState::default()),
            }
        })
        .collect();
    let wk = Rc::new(Worker {
        targets,
        rec: RefCell::new({
            let mut r = Recorder::new(cfg.targets.len());
            for i in 0..cfg.targets.len() {
                r.pool_cap(i, share(cfg.connections, n, w));
            }
            r.max_groups(cfg.max_groups);
            let warmup_ns = (plans.first().map_or(0.0, |p| p.warmup_secs()) * 1e9) as u64;
            // Only when a report needs it: it costs a second HDR record per response.
            if cfg.exports.html.is_some() || cfg.exports.hdr_log.is_some() {
                r.keep_timeline(start_ns + warmup_ns, cfg.interval.as_nanos() as u64);
            }
            r
        }),
        timeout: cfg.timeout,
        region_header: cfg.region_header.clone(),
        version_header: cfg.version_header.clone(),
        outstanding: Cell::new(0),
        idle: Notify::new(),
    });
    let timer = PreciseTimer::new().context("cannot create a timerfd")?;
    // Keeps tokio's timer wheel holding a deadline earlier than any request timeout:
    // registering a timeout earlier than the wheel's next wake-up makes tokio wake its
    // reactor through an eventfd write, which would otherwise cost a syscall per request.
    let anchor_period =
        (cfg.timeout / 2).clamp(Duration::from_millis(1), Duration::from_millis(100));
    let anchor = tokio::task::spawn_local(async move {
        let mut tick = tokio::time::interval(anchor_period);
        loop {
            tick.tick().await;
        }
    });
    let mut streams: Vec<(usize, std::iter::Peekable<Arrivals>)> = plans
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let seed = cfg.seed.wrapping_add(i as u64 * 7919);
            // A shard runs its slice of the global workers, so shards interleave exactly.
            let (gw, gn) = cfg.shard.worker(w, n);
            (
                i,
                Arrivals::new(p.clone(), cfg.arrival, gw, gn, seed).peekable(),
            )
        })
        .collect();
    let max_lag_ns = cfg.max_lag.as_nanos() as u64;
    let tick_ns = cfg.tick.as_nanos() as u64;
    let mut batch = 0usize;
    let mut spins = 0u64;
    let mut next_publish = start_ns + PUBLISH_EVERY_NS;
    let mut interrupted = *stop.borrow();

    while !interrupted {
        // The earliest next request across this worker's targets.
        let Some((si, due)) = streams
            .iter_mut()
            .enumerate()
            .filter_map(|(si, (_, s))| s.peek().map(|d| (si, *d)))
            .min_by_key(|(_, d)| d.at_ns)
        else {
            break;
        };
        let due_abs = start_ns + due.at_ns;
        let now = now_ns();
        if due_abs > now {
            batch = 0;
            if let Some(l) = &live {
                if now >= next_publish {
                    next_publish = now + PUBLISH_EVERY_NS;
                    publish_from(&wk.rec.borrow(), l, w);
                }
            }
            if due_abs - now < YIELD_BELOW_NS {
                // Too close to be worth a sleep: a wake-up costs more CPU and arrives
                // later than this. Let the connection tasks run meanwhile, then look again.
                tokio::task::yield_now().await;
                spins += 1;
                if spins % 1024 == 0 && *stop.borrow() {
                    interrupted = true;
                }
                continue;
            }
            // A closed stop channel (sender gone) means no stop can come: that branch is
            // then simply disabled.
            tokio::select! {
                biased;
                Ok(()) = stop.changed() => { interrupted = true; break; }
                r = timer.sleep_until(wake_at(due_abs, start_ns, tick_ns)) => r.context("timer wait failed")?,
            }
            continue;
        }
        let (ti, stream) = &mut streams[si];
        stream.next();
        dispatch(&wk, *ti, due, due_abs, now, max_lag_ns);
        batch += 1;
        if batch >= DISPATCH_BATCH {
            batch = 0;
            // Behind schedule: let responses be read, and notice a stop request.
            tokio::task::yield_now().await;
            if *stop.borrow() {
                interrupted = true;
            }
        }
    }

    if interrupted {
        stopped_at.fetch_max(now_ns(), Ordering::Relaxed);
        // Queued requests never reached a connection: cancel them now.
        for (ti, t) in wk.targets.iter().enumerate() {
            let mut st = t.state.borrow_mut();
            let queued: Vec<Job> = st.queue.drain(..).collect();
            st.in_flight -= queued.len();
            st.in_flight_warmup -= queued.iter().filter(|j| j.warmup).count();
            wk.outstanding.set(wk.outstanding.get() - queued.len());
            let mut rec = wk.rec.borrow_mut();
            for j in &queued {
                rec.cancelled(ti, j.warmup, 1);
            }
        }
    }
    let grace = if interrupted {
        STOP_GRACE
    } else {
        cfg.timeout + DRAIN_SLACK
    };
    let drained = async {
        while wk.outstanding.get() > 0 {
            wk.idle.notified().await;
        }
    };
    let _ = tokio::time::timeout(grace, drained).await;

    // Whatever is still queued or active now is cancelled. Nothing else runs on this
    // thread between this count and taking the recorder, so no late response can be
    // counted twice; the remaining tasks are dropped with the runtime.
    let mut rec = wk.rec.replace(Recorder::new(0));
    for (ti, t) in wk.targets.iter().enumerate() {
        let mut st = t.state.borrow_mut();
        let queued: Vec<Job> = st.queue.drain(..).collect();
        let queued_warmup = queued.iter().filter(|j| j.warmup).count();
        let active = st.in_flight - queued.len();
        let active_warmup = st.in_flight_warmup - queued_warmup;
        for j in &queued {
            rec.cancelled(ti, j.warmup, 1);
        }
        rec.cancelled(ti, true, active_warmup as u64);
        rec.cancelled(ti, false, (active - active_warmup) as u64);
        st.in_flight = 0;
        st.in_flight_warmup = 0;
        st.idle.clear();
    }
    anchor.abort();
    if let Some(l) = &live {
        publish_from(&rec, l, w);
    }
    Ok(rec)
}

fn publish_from(rec: &Recorder, live: &Live, w: usize) {
    let detail = live.detail;
    let Some(live) = live.workers.get(w) else {
        return;
    };
    let (mut sent, mut done, mut errs, mut dropped) = (0, 0, 0, 0);
    for t in &rec.targets {
        let a = &t.measured;
        // The rate shown includes warm-up, so the bar moves from the first request.
        sent += a.scheduled - a.dropped() + t.warmup.scheduled - t.warmup.dropped();
        done += a.completed();
        errs += a.failed();
        dropped += a.dropped();
    }
    live.sent.store(sent, Ordering::Relaxed);
    live.completed.store(done, Ordering::Relaxed);
    live.errors.store(errs, Ordering::Relaxed);
    live.dropped.store(dropped, Ordering::Relaxed);
    if let Ok(mut slot) = live.latency.lock() {
        *slot = Some(rec.groups_total());
    }
    if detail {
        if let Ok(mut slot) = live.detail.lock() {
            *slot = Some(rec.snapshot());
        }
    }
}

/// When to wake for a request due at `due_abs`: then, or with a `--tick`, at the next tick
/// boundary (counted from the run's start) at or after it.
#[inline]
fn wake_at(due_abs: u64, start_ns: u64, tick_ns: u64) -> u64 {
    if tick_ns == 0 || due_abs <= start_ns {
        return due_abs;
    }
    let since = due_abs - start_ns;
    start_ns + since.div_ceil(tick_ns) * tick_ns
}

#[inline]
fn dispatch(wk: &Rc<Worker>, ti: usize, due: Due, due_abs: u64, now: u64, max_lag_ns: u64) {
    let lag = now - due_abs;
    {
        let mut rec = wk.rec.borrow_mut();
        rec.scheduled(ti, due.warmup);
        if lag > max_lag_ns {
            rec.failure(ti, due.warmup, Failure::DroppedBehind);
            return;
        }
        if !due.warmup {
            // Pacing lag: due time to hand-over (to a connection, a new connection, the
            // queue for a busy one, or the drop counter): the generator's own delay.
            rec.pacing_lag(lag);
        }
    }
    let t = &wk.targets[ti];
    let mut job = Job {
        due_ns: due_abs,
        warmup: due.warmup,
        queued_ns: 0,
    };
    let mut st = t.state.borrow_mut();
    if st.in_flight >= t.max_in_flight {
        let at_cap = st.conns >= t.max_conns;
        drop(st);
        let mut rec = wk.rec.borrow_mut();
        rec.failure(ti, due.warmup, Failure::DroppedCap);
        if at_cap {
            rec.at_cap(ti, due.warmup, true);
        }
        return;
    }
    st.in_flight += 1;
    st.in_flight_warmup += usize::from(due.warmup);
    wk.outstanding.set(wk.outstanding.get() + 1);
    if let Some(conn) = st.idle.pop() {
        tokio::task::spawn_local(serve(wk.clone(), ti, Some(conn), job));
    } else if st.conns < t.max_conns && st.opening < MIN_OPENING.max(st.conns - st.opening) {
        st.conns += 1;
        let slots = st.conns;
        drop(st);
        wk.rec.borrow_mut().pool_slots(ti, slots);
        tokio::task::spawn_local(serve(wk.clone(), ti, None, job));
    } else {
        let at_cap = st.conns >= t.max_conns;
        // Queued work is timed on the hand-over clock reading (no extra clock read).
        job.queued_ns = now;
        st.queue.push_back(job);
        drop(st);
        if at_cap {
            wk.rec.borrow_mut().at_cap(ti, due.warmup, false);
        }
    }
}

/// Serves `job`, then queued jobs of the same target, on one connection slot.
async fn serve(wk: Rc<Worker>, ti: usize, mut conn: Option<Conn>, mut job: Job) {
    let t = &wk.targets[ti];
    loop {
        let wait = if job.queued_ns == 0 {
            0
        } else {
            now_ns().saturating_sub(job.queued_ns)
        };
        wk.rec.borrow_mut().conn_wait(ti, job.warmup, wait);
        let attempt = tokio::time::timeout(wk.timeout, exchange(&wk, ti, t, &mut conn)).await;
        let done = now_ns();
        {
            let mut rec = wk.rec.borrow_mut();
            match attempt {
                Ok(Ok(resp)) => rec.response(
                    ti,
                    job.warmup,
                    resp.status,
                    resp.region.as_deref(),
                    resp.version.as_deref(),
                    job.due_ns,
                    resp.sent_ns,
                    done,
                ),
                Ok(Err(f)) => {
                    conn = None;
                    rec.failure(ti, job.warmup, f);
                }
                Err(_) => {
                    conn = None;
                    rec.failure(ti, job.warmup, Failure::Timeout);
                }
            }
        }
        let mut st = t.state.borrow_mut();
        st.in_flight -= 1;
        st.in_flight_warmup -= usize::from(job.warmup);
        let left = wk.outstanding.get() - 1;
        wk.outstanding.set(left);
        if left == 0 {
            wk.idle.notify_one();
        }
        match st.queue.pop_front() {
            Some(next) => job = next,
            None => {
                match conn {
                    Some(c) => st.idle.push(c),
                    None => st.conns -= 1,
                }
                return;
            }
        }
    }
}

/// Opens a connection, counting it as under way meanwhile (the pacing in `dispatch`).
async fn connect(wk: &Worker, ti: usize, t: &TargetCtx) -> Result<Conn, Failure> {
    t.state.borrow_mut().opening += 1;
    // Decrements on every way out, including a timeout dropping this future.
    struct Opening<'a>(&'a TargetCtx);
    impl Drop for Opening<'_> {
        fn drop(&mut self) {
            self.0.state.borrow_mut().opening -= 1;
        }
    }
    let _opening = Opening(t);
    let c = Conn::connect(t.addr).await?;
    wk.rec.borrow_mut().conn_opened(ti);
    Ok(c)
}

async fn exchange(
    wk: &Worker,
    ti: usize,
    t: &TargetCtx,
    conn: &mut Option<Conn>,
) -> Result<Answer, Failure> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(connect(wk, ti, t).await?),
    };
    let mut outcome = c
        .exchange(&t.request, &wk.region_header, &wk.version_header)
        .await;
    if matches!(outcome, Err(ExchangeError::Stale)) {
        // The server closed this idle keep-alive connection meanwhile: replace it, don't
        // blame the request.
        let c = conn.insert(connect(wk, ti, t).await?);
        outcome = c
            .exchange(&t.request, &wk.region_header, &wk.version_header)
            .await;
    }
    match outcome {
        Ok((answer, keep)) => {
            if !keep {
                *conn = None;
            }
            Ok(answer)
        }
        Err(ExchangeError::Stale) => {
            *conn = None;
            Err(Failure::Reset)
        }
        Err(ExchangeError::Failed(f)) => {
            *conn = None;
            Err(f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wake_at;

    #[test]
    fn ticks_round_wake_ups_up_to_the_next_boundary() {
        let start = 1_000_000;
        // No tick: wake exactly when due.
        assert_eq!(wake_at(start + 1234, start, 0), start + 1234);
        // 1 ms tick: never earlier than due, never a whole tick late.
        for due in [1u64, 999_999, 1_000_000, 1_000_001, 5_432_100] {
            let w = wake_at(start + due, start, 1_000_000);
            assert!(w >= start + due);
            assert!(w - (start + due) < 1_000_000);
            assert_eq!((w - start) % 1_000_000, 0);
        }
    }
}
