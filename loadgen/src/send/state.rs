//! A worker's state, shared by its dispatcher and its connection tasks (one thread, so
//! `Cell`/`RefCell`): per target, the connections and the queue of requests waiting for
//! one; per worker, the recorder and the count of requests still outstanding.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future as _;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use http::header::HeaderName;
use tokio::sync::Notify;
use tokio::time::Sleep;

use super::arrival::ArrivalWatch;
use super::dns::Dns;
use super::http1::{Conn, Reaped, Written};
use super::stream::Dial;
use crate::record::Recorder;
use crate::schedule::tick::AutoTick;

#[derive(Clone, Copy)]
pub(super) struct Job {
    pub(super) due_ns: u64,
    pub(super) warmup: bool,
    /// When it entered the queue for a busy pool (0: it never waited).
    pub(super) queued_ns: u64,
    /// The first of its tick to its target (only with a `--tick`).
    pub(super) lead: bool,
    /// An HTTP/2 server refused it unprocessed once already (it is sent once more only).
    pub(super) retried: bool,
    /// Which of its target's requests it is.
    pub(super) req: u32,
}

/// One of a target's requests, ready to send either way.
pub(super) struct Sendable {
    /// Serialised once for HTTP/1.1.
    pub(super) h1: Vec<u8>,
    /// As HTTP/2 sends it.
    pub(super) h2: super::http2::conn::H2Request,
    /// False for `HEAD`, whose answers carry no body.
    pub(super) answer_has_body: bool,
    /// Its name's index among the target's names (0: unnamed).
    pub(super) name: u16,
}

/// What a target's connections turned out to speak (see `http2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Spoke {
    /// No connection has said yet: new ones go through the HTTP/2 opener, which takes
    /// what the server chooses.
    #[default]
    Unknown,
    /// The server chose HTTP/1.1: new connections are HTTP/1.1's.
    Http1,
    /// HTTP/2.
    H2,
}

/// Where an idle HTTP/1.1 connection's task waits for its next request, its connection
/// parked here meanwhile. The task lives as long as its connection: handing it a request
/// is a store and a wake-up, where a task spawned per request cost an allocation and the
/// runtime's task bookkeeping each time (about 3% of the CPU at 5000 rps,
/// `benches/notes/2026-12-07-profile-before-issue-30.md`).
#[derive(Default)]
pub(super) struct Parked {
    next: Cell<Option<Handed>>,
    waker: Cell<Option<Waker>>,
    conn: RefCell<Option<Conn>>,
    /// The waiting task will be woken by its connection's next readiness.
    listening: Cell<bool>,
    /// When the waiting task's timer goes off (monotonic ns; 0: it is not set).
    armed_ns: Cell<u64>,
    /// It is in its target's `awaiting` list.
    pub(super) awaited: Cell<bool>,
}

/// A request handed to a waiting connection task.
#[derive(Clone, Copy)]
pub(super) struct Handed {
    pub(super) job: Job,
    /// The dispatcher's clock reading at the hand-over.
    pub(super) now: u64,
    /// What the dispatcher already wrote of it.
    pub(super) ahead: Option<Written>,
}

impl Parked {
    /// Gives the waiting task `job`, whose request is `request` and whose timeout falls
    /// at `deadline_ns`, at the clock reading `now`. When the task listens for its
    /// connection's readiness and its timer goes off by that deadline, the request is
    /// written here and, when the socket took all of it, the task is not woken: the
    /// answer wakes it (or, if none comes, the timer). That saves a wake-up and a poll of
    /// the task per request.
    ///
    /// True when the request went out whole and the task sleeps on: its answer may then be
    /// read by `reap`.
    pub(super) fn hand(&self, job: Job, now: u64, request: &[u8], deadline_ns: u64) -> bool {
        let armed = self.armed_ns.get();
        let ahead = if self.listening.get() && armed > now && armed <= deadline_ns {
            self.conn
                .borrow_mut()
                .as_mut()
                .and_then(|c| c.write_ahead(request))
        } else {
            None
        };
        self.next.set(Some(Handed { job, now, ahead }));
        // Not written, or only in part: the task writes (the rest).
        let whole = ahead.is_some_and(|w| w.bytes == request.len());
        if !whole {
            self.wake();
        }
        whole
    }

    fn wake(&self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// For `reap`: reads the answer to the request written ahead that the waiting task
    /// has not taken yet, as far as it is here (`Conn::reap`). A whole answer is taken
    /// from the task; anything else read is left to it, and it is woken to go on. `None`
    /// when the task took the request already.
    pub(super) fn reap(&self, t: &TargetCtx, wk: &Worker) -> Option<(Handed, Reaped)> {
        let handed = self.next.get()?;
        let ahead = handed.ahead?;
        let got = {
            let mut conn = self.conn.borrow_mut();
            let req = &t.requests[handed.job.req as usize];
            conn.as_mut()?.reap(
                ahead,
                req.answer_has_body,
                &wk.region_header,
                &wk.version_header,
                t.checks.as_deref(),
            )
        };
        match got {
            Reaped::Nothing => {}
            Reaped::Whole(_) => self.next.set(None),
            Reaped::Started => self.wake(),
        }
        Some((handed, got))
    }

    /// Parks `conn` until a request is handed over, listening meanwhile for its
    /// readiness and for `timer` (which goes off at `armed_ns`, 0 if it is not set).
    /// Returns the connection and what was handed over.
    pub(super) async fn wait(
        &self,
        conn: Conn,
        mut timer: Pin<&mut Sleep>,
        armed_ns: u64,
    ) -> (Option<Conn>, Handed) {
        *self.conn.borrow_mut() = Some(conn);
        self.armed_ns.set(armed_ns);
        let handed = std::future::poll_fn(|cx| {
            if let Some(handed) = self.next.take() {
                return Poll::Ready(handed);
            }
            // The same task parks here every time: keep its waker rather than clone it.
            let keep = self.waker.take().filter(|w| w.will_wake(cx.waker()));
            self.waker
                .set(Some(keep.unwrap_or_else(|| cx.waker().clone())));
            // Readiness with nothing handed over (the server closed the connection or
            // spoke out of turn) is left to the hand-over's check of the idle connection.
            let listens = self.conn.borrow().as_ref().is_some_and(|c| c.listen(cx));
            self.listening.set(listens);
            if self.armed_ns.get() != 0 && timer.as_mut().poll(cx).is_ready() {
                self.armed_ns.set(0);
            }
            Poll::Pending
        })
        .await;
        self.listening.set(false);
        self.armed_ns.set(0);
        (self.conn.borrow_mut().take(), handed)
    }
}

#[derive(Default)]
pub(super) struct TargetState {
    pub(super) in_flight: usize,
    /// Of those, warm-up requests (a stop during warm-up cancels these, not measured ones).
    pub(super) in_flight_warmup: usize,
    /// Connection slots: open connections plus connects under way.
    pub(super) conns: usize,
    /// Of those, connects under way.
    pub(super) opening: usize,
    /// The tasks of idle HTTP/1.1 connections, each waiting for its next request.
    pub(super) idle: Vec<Rc<Parked>>,
    /// Waiting tasks handed a request written ahead whole, whose answer `reap` may read
    /// (each once: `Parked::awaited`).
    pub(super) awaiting: Vec<Rc<Parked>>,
    /// Open HTTP/2 connections, each carrying up to its limit of streams.
    pub(super) h2: Vec<Rc<super::http2::conn::H2Conn>>,
    pub(super) spoke: Spoke,
    pub(super) queue: VecDeque<Job>,
    /// Intended time of the latest request handed over, to tell each tick's first.
    pub(super) last_intended_ns: u64,
}

pub(super) struct TargetCtx {
    /// Where new connections go.
    pub(super) dns: RefCell<Dns>,
    /// How HTTP/1.1 connections are opened (TLS or not).
    pub(super) dial: Dial,
    /// How connections that may speak HTTP/2 are opened (ALPN as `--http` says).
    pub(super) dial_h2: Dial,
    /// Whether and how it speaks HTTP/2.
    pub(super) h2_mode: crate::configured::protocol::H2Mode,
    /// HTTP/2 streams per connection at most.
    pub(super) max_streams: u32,
    /// Its requests (one unless a requests file gave more), and which goes next.
    pub(super) requests: Vec<Sendable>,
    pub(super) pick: RefCell<super::pick::Picker>,
    /// What its answers must say (`--check`).
    pub(super) checks: Option<std::sync::Arc<crate::configured::checks::Checks>>,
    pub(super) max_conns: usize,
    pub(super) max_in_flight: usize,
    pub(super) state: RefCell<TargetState>,
}

pub(super) struct Worker {
    pub(super) targets: Vec<TargetCtx>,
    pub(super) rec: RefCell<Recorder>,
    pub(super) timeout: Duration,
    /// `--resolve-every` (zero: names are looked up once).
    pub(super) resolve_every: Duration,
    /// This worker's index, so workers start their round-robin on different addresses.
    pub(super) index: usize,
    pub(super) region_header: HeaderName,
    pub(super) version_header: HeaderName,
    /// One instant on both clocks, so a deadline on tokio's clock comes from a
    /// [`now_ns`](super::clock::now_ns) reading already taken.
    pub(super) epoch: (tokio::time::Instant, u64),
    /// Total queued + active across targets, and a wake-up when it reaches zero.
    pub(super) outstanding: Cell<usize>,
    /// With `--tick auto`, this second's service times, for the next tick's choice.
    pub(super) pace: RefCell<Option<AutoTick>>,
    /// Whether the answers' arrival stamps are receipt times, so short waits may hold.
    pub(super) arrival: ArrivalWatch,
    /// Short waits may hold the thread (see `worker`): not when a target may speak
    /// HTTP/2, whose reads can carry many answers under one arrival stamp.
    pub(super) may_hold: bool,
    pub(super) idle: Notify,
}

impl TargetState {
    /// Takes a slot for a new connection if the pool may open one now (under its cap of
    /// `max_conns`, and within the opening pace): the slots in use after, for the peak.
    pub(super) fn open_slot(&mut self, max_conns: usize) -> Option<usize> {
        let pace = crate::pool::MIN_OPENING.max(self.conns - self.opening);
        if self.conns < max_conns && self.opening < pace {
            self.conns += 1;
            Some(self.conns)
        } else {
            None
        }
    }
}

impl TargetCtx {
    /// Whether a new request goes the HTTP/2 way: the target may speak it and its
    /// server has not chosen HTTP/1.1.
    pub(super) fn via_h2(&self) -> bool {
        use crate::configured::protocol::H2Mode;
        match self.h2_mode {
            H2Mode::Never => false,
            H2Mode::PriorKnowledge | H2Mode::AlpnOnly => true,
            H2Mode::Alpn => self.state.borrow().spoke != Spoke::Http1,
        }
    }
}

impl Worker {
    /// Queues `job` for target `ti`'s next free connection (or stream), timed from the
    /// hand-over clock reading `now` (no extra clock read); counted when the pool is at
    /// its cap.
    pub(super) fn enqueue(&self, ti: usize, mut job: Job, now: u64) {
        let t = &self.targets[ti];
        let mut st = t.state.borrow_mut();
        let at_cap = st.conns >= t.max_conns;
        job.queued_ns = now;
        st.queue.push_back(job);
        drop(st);
        if at_cap {
            self.rec.borrow_mut().at_cap(ti, job.warmup, false);
        }
    }

    /// Hands `job` (handed over at the clock reading `now`) to `parked`, a waiting task of
    /// target `t`; when its request went out whole, its answer is awaited by `reap`.
    pub(super) fn hand_over(&self, t: &TargetCtx, parked: Rc<Parked>, job: Job, now: u64) {
        let deadline_ns = job.due_ns.saturating_add(self.timeout.as_nanos() as u64);
        let request = &t.requests[job.req as usize].h1;
        if parked.hand(job, now, request, deadline_ns) && !parked.awaited.replace(true) {
            t.state.borrow_mut().awaiting.push(parked);
        }
    }

    /// A request of target `t` is done (answered, failed or not sent): it leaves the
    /// in-flight counts, and the drain at the end is woken when nothing is left.
    pub(super) fn finished(&self, t: &TargetCtx, job: &Job) {
        let mut st = t.state.borrow_mut();
        st.in_flight -= 1;
        st.in_flight_warmup -= usize::from(job.warmup);
        let left = self.outstanding.get() - 1;
        self.outstanding.set(left);
        if left == 0 {
            self.idle.notify_one();
        }
    }

    /// Takes every queued request out (they never reached a connection): at `now_ns`,
    /// those whose `--timeout` has passed since they were due timed out, the rest are
    /// cancelled, each in its own phase's bucket.
    pub(super) fn cancel_queued(&self, rec: &mut Recorder, now_ns: u64) {
        let timeout_ns = self.timeout.as_nanos() as u64;
        for (ti, t) in self.targets.iter().enumerate() {
            let mut st = t.state.borrow_mut();
            let queued: Vec<Job> = st.queue.drain(..).collect();
            st.in_flight -= queued.len();
            st.in_flight_warmup -= queued.iter().filter(|j| j.warmup).count();
            self.outstanding.set(self.outstanding.get() - queued.len());
            for j in &queued {
                if j.due_ns.saturating_add(timeout_ns) <= now_ns {
                    let name = t.requests[j.req as usize].name;
                    rec.expired_waiting(ti, j.warmup, name, j.due_ns, now_ns);
                } else {
                    rec.cancelled(ti, j.warmup, 1);
                }
            }
        }
    }
}
