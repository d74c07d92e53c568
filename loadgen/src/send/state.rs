//! A worker's state, shared by its dispatcher and its connection tasks (one thread, so
//! `Cell`/`RefCell`): per target, the connections and the queue of requests waiting for
//! one; per worker, the recorder and the count of requests still outstanding.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::Duration;

use http::header::HeaderName;
use tokio::sync::Notify;

use super::arrival::ArrivalWatch;
use super::dns::Dns;
use super::http1::Conn;
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
    pub(super) idle: Vec<Conn>,
    pub(super) queue: VecDeque<Job>,
    /// Intended time of the latest request handed over, to tell each tick's first.
    pub(super) last_intended_ns: u64,
}

pub(super) struct TargetCtx {
    /// Where new connections go.
    pub(super) dns: RefCell<Dns>,
    /// How they are opened (TLS or not).
    pub(super) dial: Dial,
    /// The request, serialised once.
    pub(super) request: Vec<u8>,
    /// False for `HEAD`, whose answers carry no body.
    pub(super) answer_has_body: bool,
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
    pub(super) idle: Notify,
}

impl Worker {
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
                    rec.expired_waiting(ti, j.warmup, j.due_ns, now_ns);
                } else {
                    rec.cancelled(ti, j.warmup, 1);
                }
            }
        }
    }
}
