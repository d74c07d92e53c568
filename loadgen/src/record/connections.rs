//! What the connection pools tell the recorder: the pool's shape and events, the waits
//! for a connection, TLS handshakes and DNS lookups ([`crate::pool::PoolStats`]).

use super::Recorder;
use crate::hist::record_us;

impl Recorder {
    /// An idle connection held bytes nobody asked for.
    pub fn unasked(&mut self, target: usize) {
        let p = &mut self.targets[target].pool;
        p.unasked = p.unasked.saturating_add(1);
    }

    /// A connect failed for want of a file descriptor (loadgen's open-files limit).
    pub fn fd_exhausted(&mut self, target: usize) {
        let p = &mut self.targets[target].pool;
        p.fd_exhausted = p.fd_exhausted.saturating_add(1);
    }

    /// This worker's share of a target's connection cap (`fd_limited`: lowered to fit
    /// the open-files limit).
    pub fn pool_cap(&mut self, target: usize, cap: usize, fd_limited: bool) {
        let p = &mut self.targets[target].pool;
        p.cap = cap as u64;
        p.fd_limited = fd_limited;
    }

    pub fn conn_opened(&mut self, target: usize) {
        self.targets[target].pool.opened += 1;
    }

    /// A TLS handshake completed on a new connection (`resumed`: an earlier session was
    /// taken up again).
    pub fn tls_handshake(&mut self, target: usize, resumed: bool) {
        let p = &mut self.targets[target].pool;
        p.handshakes += 1;
        p.resumed += u64::from(resumed);
    }

    /// A TLS handshake failed; the request is counted by [`Recorder::failure`], this
    /// keeps what went wrong for the report.
    pub fn tls_error(&mut self, target: usize, error: String) {
        self.targets[target].pool.tls_error = Some(error);
    }

    /// The target's name was looked up again: `found` whether it gave addresses,
    /// `changed` whether they differ from the ones in use. Counted in warm-up too: a
    /// failover is news whenever it happens.
    pub fn dns_lookup(&mut self, target: usize, found: bool, changed: bool) {
        // A lookup may finish after the run's recorder was taken (and replaced by an
        // empty one): nothing to count it in then.
        let Some(t) = self.targets.get_mut(target) else {
            return;
        };
        let p = &mut t.pool;
        p.lookups += 1;
        p.lookup_failures += u64::from(!found);
        p.address_changes += u64::from(changed);
    }

    /// The target now has `slots` connection slots (open or opening).
    #[inline]
    pub fn pool_slots(&mut self, target: usize, slots: usize) {
        let p = &mut self.targets[target].pool;
        p.peak = p.peak.max(slots as u64);
    }

    /// A request waited `wait_ns` for a free connection before its exchange began.
    #[inline]
    pub fn conn_wait(&mut self, target: usize, warmup: bool, wait_ns: u64) {
        if !warmup {
            record_us(&mut self.targets[target].pool.wait, wait_ns / 1000);
        }
    }

    /// A measured request found the pool at its cap: it queued, or (`dropped`) it was
    /// dropped at the in-flight cap.
    #[inline]
    pub fn at_cap(&mut self, target: usize, warmup: bool, dropped: bool) {
        if !warmup {
            let p = &mut self.targets[target].pool;
            if dropped {
                p.dropped_at_cap += 1;
            } else {
                p.queued_at_cap += 1;
            }
        }
    }

    /// What an HTTP/2 connection went through ([`crate::pool::H2Stats`]).
    #[inline]
    pub fn h2(&mut self, target: usize) -> &mut crate::pool::H2Stats {
        &mut self.targets[target].pool.h2
    }
}
