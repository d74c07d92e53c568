//! Run-time switches shared by all connections: readiness, draining, the fault switch and the
//! stall switch. All are atomics so the hot path reads them without locking.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The switches of one server instance.
#[derive(Debug)]
pub(crate) struct Switches {
    ready: AtomicBool,
    draining: AtomicBool,
    fault: AtomicBool,
    /// End of the current stall in nanoseconds after `base`; 0 means no stall.
    stall_until: AtomicU64,
    base: Instant,
}

impl Switches {
    pub fn new() -> Self {
        Switches {
            ready: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            fault: AtomicBool::new(false),
            stall_until: AtomicU64::new(0),
            base: Instant::now(),
        }
    }

    /// Ready to receive traffic: the toggle is on and no shutdown has begun.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.draining.load(Ordering::Relaxed)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    #[inline]
    pub fn fault_on(&self) -> bool {
        self.fault.load(Ordering::Relaxed)
    }

    pub fn set_fault(&self, on: bool) {
        self.fault.store(on, Ordering::Relaxed);
    }

    /// Stall every request arriving in the next `d`; zero ends a stall early.
    pub fn stall_for(&self, d: Duration) {
        if d.is_zero() {
            self.stall_until.store(0, Ordering::Release);
            return;
        }
        // Saturating: a stall past the clock's end is "until further notice".
        let until = Instant::now()
            .checked_add(d)
            .map_or(Duration::MAX, |at| at.duration_since(self.base));
        let nanos = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.stall_until.store(nanos, Ordering::Release);
    }

    /// Time left in the current stall.
    pub fn stall_remaining(&self) -> Duration {
        match self.stall_deadline() {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => Duration::ZERO,
        }
    }

    fn stall_deadline(&self) -> Option<Instant> {
        match self.stall_until.load(Ordering::Acquire) {
            0 => None,
            nanos => Some(self.base + Duration::from_nanos(nanos)),
        }
    }

    /// Hold the caller until any stall in progress has ended (re-checking, since a stall may
    /// be extended while we wait). Returns whether the request was held.
    #[inline]
    pub async fn hold_while_stalled(&self) -> bool {
        let mut held = false;
        while let Some(deadline) = self.stall_deadline() {
            if Instant::now() >= deadline {
                break;
            }
            held = true;
            tokio::time::sleep_until(deadline).await;
        }
        held
    }
}
