//! Requests that ended without an answer: failures, drops, expiries while waiting for a
//! connection and cancellations at the end, each in its bucket, on the timeline and in
//! `--out`'s rows.

use super::rows::{Outcome, Row, NO_GROUP};
use super::Recorder;
use crate::results::Failure;

impl Recorder {
    /// A request due at `due_ns` ended without a response; `at_ns` is when (for a drop:
    /// when it was due), placing it on the timeline.
    #[inline]
    pub fn failure(
        &mut self,
        target: usize,
        warmup: bool,
        name: u16,
        f: Failure,
        due_ns: u64,
        at_ns: u64,
    ) {
        self.acct(target, warmup).add_failure(f);
        if warmup {
            return;
        }
        if let Some(idx) = self.interval_of(at_ns) {
            let dropped = matches!(f, Failure::DroppedCap | Failure::DroppedBehind);
            self.unanswered.entry((idx, target)).or_default()[usize::from(dropped)] += 1;
        }
        if let Some(out) = &mut self.rows {
            out.push(Row {
                due_ns,
                sent_ns: 0,
                end_ns: at_ns,
                bytes: 0,
                target: target as u32,
                group: NO_GROUP,
                name,
                status: 0,
                outcome: Outcome::Failed(f),
            });
        }
    }

    /// A request's `--timeout` (from its due time) passed while it waited for a
    /// connection: it was never sent.
    pub fn expired_waiting(
        &mut self,
        target: usize,
        warmup: bool,
        name: u16,
        due_ns: u64,
        at_ns: u64,
    ) {
        self.failure(target, warmup, name, Failure::Timeout, due_ns, at_ns);
        if !warmup {
            let p = &mut self.targets[target].pool;
            p.expired_waiting = p.expired_waiting.saturating_add(1);
        }
    }

    /// `n` requests were cancelled at shutdown (their rows carry no times).
    pub fn cancelled(&mut self, target: usize, warmup: bool, n: u64) {
        self.acct(target, warmup).cancelled += n;
        if let Some(out) = self.rows.as_mut().filter(|_| !warmup) {
            for _ in 0..n {
                out.push(Row {
                    due_ns: 0,
                    sent_ns: 0,
                    end_ns: 0,
                    bytes: 0,
                    target: target as u32,
                    group: NO_GROUP,
                    // Counted in bulk at the end: which request each was is not kept.
                    name: 0,
                    status: 0,
                    outcome: Outcome::Failed(Failure::Cancelled),
                });
            }
        }
    }
}
