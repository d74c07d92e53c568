//! What a worker's dispatcher does now and then between requests, off the per-request
//! path: re-read the wall clock's offset (kernel arrival stamps are wall-clock), review
//! whether the arrival stamps hold up, and with `--tick auto` choose the next tick.

use super::clock::{refresh_realtime_offset, OFFSET_EVERY_NS};
use super::state::Worker;
use crate::schedule::tick::AUTO_EVERY;

/// What the dispatcher does now and then between requests: re-read the wall clock's
/// offset, review the arrival stamps, and with `--tick auto` choose the tick.
pub(super) struct Chores {
    next_offset: u64,
    next_review: u64,
    next_choice: u64,
    every_ns: u64,
    tick_auto: bool,
}

impl Chores {
    pub(super) fn new(start_ns: u64, tick_auto: bool) -> Chores {
        let every_ns = AUTO_EVERY.as_nanos() as u64;
        Chores {
            next_offset: 0,
            next_review: start_ns + every_ns,
            next_choice: start_ns + every_ns,
            every_ns,
            tick_auto,
        }
    }

    /// Does whatever is due at `now` (one clock reading per pass serves all of them).
    #[inline]
    pub(super) fn tend(&mut self, wk: &Worker, now: u64, tick_ns: &mut u64) {
        if now >= self.next_offset {
            refresh_realtime_offset();
            self.next_offset = now + OFFSET_EVERY_NS;
        }
        if now >= self.next_review {
            self.next_review += self.every_ns;
            wk.arrival.review(self.every_ns);
        }
        if self.tick_auto && now >= self.next_choice {
            // Between two requests, after every request due up to the last boundary went
            // out: the ticks nest, so the next request's intended time stays at or after
            // its due time whatever the new tick.
            self.next_choice += self.every_ns;
            if let Some(p) = wk.pace.borrow_mut().as_mut() {
                *tick_ns = p.choose(*tick_ns);
            }
        }
    }
}
