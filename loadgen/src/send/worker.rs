//! One worker thread: open-loop dispatch on its share of the schedule, its own
//! connection pools, and the connection tasks that serve requests back to back. Nothing
//! here is shared with another thread (single-threaded runtime, `Rc`/`RefCell`), so the
//! hot path takes no locks.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;

use super::chores::Chores;
use super::clock::{now_ns, sleep_blocking_until, PreciseTimer};
use super::state::{Job, Worker};
use super::{
    Setup, DISPATCH_BATCH, DRAIN_SLACK, HOLD_BELOW_NS, PUBLISH_EVERY_NS, STOP_GRACE, YIELD_BELOW_NS,
};
use crate::live::Live;
use crate::record::Recorder;
use crate::results::Failure;
use crate::schedule::{Arrivals, Due};

/// One worker thread's whole run, in three phases: [`build`] its targets and recorder,
/// [`dispatch_on_schedule`] until the schedule ends or a stop arrives, then [`wind_down`]:
/// let what is in flight finish (or cancel it) so every request lands in one bucket.
pub(super) async fn worker(setup: Setup) -> anyhow::Result<Recorder> {
    let wk = super::targets::build(&setup);
    // Keeps tokio's timer wheel holding a deadline earlier than any request timeout:
    // registering a timeout earlier than the wheel's next wake-up makes tokio wake its
    // reactor through an eventfd write, which would otherwise cost a syscall per request.
    let anchor_period =
        (setup.cfg.timeout / 2).clamp(Duration::from_millis(1), Duration::from_millis(100));
    let anchor = tokio::task::spawn_local(async move {
        let mut tick = tokio::time::interval(anchor_period);
        loop {
            tick.tick().await;
        }
    });
    let interrupted = dispatch_on_schedule(&wk, &setup).await?;
    let rec = wind_down(&wk, &setup, interrupted).await;
    anchor.abort();
    if let Some(l) = &setup.live {
        publish_from(&rec, l, setup.w);
    }
    Ok(rec)
}

/// This worker's arrivals per target, each with its own seed; a shard runs its slice of
/// the global workers, so shards interleave exactly.
fn arrival_streams(setup: &Setup) -> Vec<(usize, std::iter::Peekable<Arrivals>)> {
    let cfg = &setup.cfg;
    let (gw, gn) = cfg.shard.worker(setup.w, cfg.threads);
    setup
        .plans
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let seed = cfg.seed.wrapping_add(i as u64 * 7919);
            (
                i,
                Arrivals::new(p.clone(), cfg.arrival, gw, gn, seed).peekable(),
            )
        })
        .collect()
}

/// Hands every request to the engine when it is due; `Ok(true)` when a stop ended it.
async fn dispatch_on_schedule(wk: &Rc<Worker>, setup: &Setup) -> anyhow::Result<bool> {
    let (cfg, start_ns) = (&setup.cfg, setup.start_ns);
    let mut waits = Waits {
        wk,
        setup,
        stop: setup.stop.clone(),
        timer: PreciseTimer::new().context("cannot create a timerfd")?,
        slept_ns: 0,
        spins: 0,
        next_publish: start_ns + PUBLISH_EVERY_NS,
        turn_due: false,
    };
    let mut streams = arrival_streams(setup);
    let max_lag_ns = cfg.max_lag.as_nanos() as u64;
    let mut tick_ns = cfg.tick.as_nanos() as u64;
    let mut chores = Chores::new(start_ns, cfg.tick_auto);
    let mut batch = 0usize;
    let mut interrupted = *waits.stop.borrow();

    while !interrupted {
        // One clock reading per pass serves the tick's choice and the due-time check.
        let now = now_ns();
        waits.woke(now);
        chores.tend(wk, now, &mut tick_ns);
        // The earliest next request across this worker's targets.
        let Some((si, due)) = streams
            .iter_mut()
            .enumerate()
            .filter_map(|(si, (_, s))| s.peek().map(|d| (si, *d)))
            .min_by_key(|(_, d)| d.due_ns)
        else {
            break;
        };
        // The schedule counts from the run's start; from here on due_ns is absolute. With
        // a tick, the request's intended time *is* the tick boundary it is sent at (the
        // schedule is coarsened, not delayed), so waiting for the tick never counts as
        // latency or pacing lag.
        let due_ns = intended_at(start_ns + due.due_ns, start_ns, tick_ns);
        if due_ns > now {
            batch = 0;
            interrupted = waits.toward(due_ns, now).await?;
            continue;
        }
        let (ti, stream) = &mut streams[si];
        stream.next();
        waits.turn_due = true;
        dispatch(wk, *ti, due, due_ns, now, max_lag_ns, tick_ns);
        batch += 1;
        if batch >= DISPATCH_BATCH {
            batch = 0;
            // Behind schedule: let responses be read, and notice a stop request.
            tokio::task::yield_now().await;
            interrupted = stop_asked(&waits.stop);
        }
    }

    Ok(interrupted)
}

/// The dispatcher's waits between requests, and what it carries from one to the next.
struct Waits<'a> {
    wk: &'a Rc<Worker>,
    setup: &'a Setup,
    stop: tokio::sync::watch::Receiver<bool>,
    timer: PreciseTimer,
    /// When the held sleep the last pass ended began (0: the last pass held none).
    slept_ns: u64,
    spins: u64,
    next_publish: u64,
    /// Requests were handed over since the runtime's last turn: it is owed one before
    /// the next held sleep.
    turn_due: bool,
}

impl Waits<'_> {
    /// After a held sleep that ended at `now`: reads the answers that came in meanwhile,
    /// before the reactor looks, so that they wake no task. Reading them after this
    /// wake-up's sends would leave the sends sooner, but the answers to those sends that
    /// come back before the reads end then cost a wasted read each, or a task's wake-up
    /// (`benches/notes/2026-12-07-answers-read-at-send.md`).
    fn woke(&mut self, now: u64) {
        if self.slept_ns != 0 {
            self.wk.arrival.woke(self.slept_ns, now);
            self.slept_ns = 0;
            super::reap::reap(self.wk);
        }
    }

    /// Waits toward `due_ns` from `now` the cheapest way its distance allows: a yield, a
    /// sleep that holds the thread, or the reactor. True when a stop was asked for.
    async fn toward(&mut self, due_ns: u64, now: u64) -> anyhow::Result<bool> {
        let wk = self.wk;
        if let Some(l) = &self.setup.live {
            if now >= self.next_publish {
                self.next_publish = now + PUBLISH_EVERY_NS;
                publish_from(&wk.rec.borrow(), l, self.setup.w);
            }
        }
        if due_ns - now < YIELD_BELOW_NS {
            // Too close to be worth a sleep: a wake-up costs more CPU and arrives
            // later than this. Let the connection tasks run meanwhile, then look again.
            tokio::task::yield_now().await;
            self.spins += 1;
            return Ok(self.spins % 1024 == 0 && stop_asked(&self.stop));
        }
        if due_ns - now <= HOLD_BELOW_NS && wk.may_hold && wk.arrival.holding() {
            if std::mem::take(&mut self.turn_due) {
                // First let the connection tasks write what was just handed over and
                // read the answers that are in; then look at the clock again.
                tokio::task::yield_now().await;
                return Ok(false);
            }
            // A short wait holds the thread: answers arriving meanwhile are read (by
            // their kernel stamps) in the wake-up that sends the next requests, one
            // wake-up for both instead of one per answer.
            self.slept_ns = now;
            sleep_blocking_until(due_ns);
            return Ok(stop_asked(&self.stop));
        }
        wk.arrival.unheld();
        // A closed stop channel (sender gone) means no stop can come: that branch is
        // then simply disabled.
        tokio::select! {
            biased;
            Ok(()) = self.stop.changed() => return Ok(true),
            r = self.timer.sleep_until(due_ns) => r.context("timer wait failed")?,
        }
        Ok(false)
    }
}

/// Whether a stop was asked for, checked once per held sleep: an atomic load unless a
/// value was sent (`borrow` takes the channel's lock, a cost on every tick).
#[inline]
fn stop_asked(stop: &tokio::sync::watch::Receiver<bool>) -> bool {
    stop.has_changed().unwrap_or(false) && *stop.borrow()
}

/// After the schedule: at a stop, cancel what is queued and give the rest a short grace;
/// otherwise wait up to `--timeout` for the last answers. Whatever is left is cancelled.
async fn wind_down(wk: &Rc<Worker>, setup: &Setup, interrupted: bool) -> Recorder {
    let (cfg, stopped_at) = (&setup.cfg, &setup.stopped_at);
    if interrupted {
        stopped_at.fetch_max(now_ns(), Ordering::Relaxed);
        // Queued requests never reached a connection: cancel them now.
        let mut rec = wk.rec.borrow_mut();
        wk.cancel_queued(&mut rec, now_ns());
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
    wk.cancel_queued(&mut rec, now_ns());
    for (ti, t) in wk.targets.iter().enumerate() {
        let mut st = t.state.borrow_mut();
        // Only active requests are left: each phase's are cancelled in its own bucket.
        let active_warmup = st.in_flight_warmup;
        rec.cancelled(ti, true, active_warmup as u64);
        rec.cancelled(ti, false, (st.in_flight - active_warmup) as u64);
        st.in_flight = 0;
        st.in_flight_warmup = 0;
        st.idle.clear();
        st.awaiting.clear();
        st.h2.clear();
    }
    rec
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

/// A request's intended send time: its due time, or with a `--tick`, the first tick
/// boundary (counted from the run's start) at or after it. Every request of one tick
/// window then shares one wake-up and one intended time, and the count per window is the
/// schedule's, so the rate is unchanged.
#[inline]
fn intended_at(due_ns: u64, start_ns: u64, tick_ns: u64) -> u64 {
    if tick_ns == 0 || due_ns <= start_ns {
        return due_ns;
    }
    let since = due_ns - start_ns;
    start_ns + since.div_ceil(tick_ns) * tick_ns
}

#[inline]
fn dispatch(
    wk: &Rc<Worker>,
    ti: usize,
    due: Due,
    due_ns: u64,
    now: u64,
    max_lag_ns: u64,
    tick_ns: u64,
) {
    let t = &wk.targets[ti];
    // The first request of a tick to this target: nothing of its own tick is ahead of it.
    let lead = tick_ns > 0 && {
        let mut st = t.state.borrow_mut();
        let first = st.last_intended_ns != due_ns;
        st.last_intended_ns = due_ns;
        first
    };
    let lag = now - due_ns;
    let req = t.pick.borrow_mut().next();
    let name = t.requests[req as usize].name;
    {
        let mut rec = wk.rec.borrow_mut();
        rec.scheduled(ti, due.warmup);
        if lag > max_lag_ns {
            rec.failure(ti, due.warmup, name, Failure::DroppedBehind, due_ns, due_ns);
            return;
        }
        if !due.warmup {
            rec.targets[ti].ticks.count(tick_ns);
            // Pacing lag: due time to hand-over (to a connection, a new connection, the
            // queue for a busy one, or the drop counter): the generator's own delay.
            rec.pacing_lag(lag, now);
        }
    }
    let job = Job {
        due_ns,
        warmup: due.warmup,
        queued_ns: 0,
        lead,
        retried: false,
        req,
    };
    let via_h2 = t.via_h2();
    let mut st = t.state.borrow_mut();
    if st.in_flight >= t.max_in_flight {
        let at_cap = st.conns >= t.max_conns;
        drop(st);
        let mut rec = wk.rec.borrow_mut();
        rec.failure(ti, due.warmup, name, Failure::DroppedCap, due_ns, due_ns);
        if at_cap {
            rec.at_cap(ti, due.warmup, true);
        }
        return;
    }
    st.in_flight += 1;
    st.in_flight_warmup += usize::from(due.warmup);
    wk.outstanding.set(wk.outstanding.get() + 1);
    if via_h2 {
        drop(st);
        super::http2::place(wk, ti, job, now);
    } else if let Some(parked) = st.idle.pop() {
        drop(st);
        wk.hand_over(t, parked, job, now);
    } else if let Some(slots) = st.open_slot(t.max_conns) {
        drop(st);
        wk.rec.borrow_mut().pool_slots(ti, slots);
        tokio::task::spawn_local(super::serve::serve(wk.clone(), ti, None, job, now));
    } else {
        drop(st);
        wk.enqueue(ti, job, now);
    }
}

#[cfg(test)]
mod tests {
    use super::intended_at;

    #[test]
    fn ticks_round_wake_ups_up_to_the_next_boundary() {
        let start = 1_000_000;
        // No tick: wake exactly when due.
        assert_eq!(intended_at(start + 1234, start, 0), start + 1234);
        // 1 ms tick: never earlier than due, never a whole tick late.
        for due in [1u64, 999_999, 1_000_000, 1_000_001, 5_432_100] {
            let w = intended_at(start + due, start, 1_000_000);
            assert!(w >= start + due);
            assert!(w - (start + due) < 1_000_000);
            assert_eq!((w - start) % 1_000_000, 0);
        }
    }
}
