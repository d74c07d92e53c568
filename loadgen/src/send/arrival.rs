//! Whether the kernel's arrival stamps can be trusted, and what the worker does when not.
//!
//! A short wait holds the worker thread in a plain sleep (see `worker`): answers that
//! arrive meanwhile wait in their sockets and are timed by the stamp the kernel took on
//! receipt (`stream`). That is only honest while the kernel does stamp on receipt. When it
//! does not (Linux stamps loopback and received segments only while its global timestamp
//! switch is on, and stamps at `recvmsg` otherwise), every such answer is timed when read,
//! up to a whole wait late, and nothing else in the report can see it: every request moves
//! alike.
//!
//! So every answer to a request sent before the latest held sleep ended is checked: by its
//! stamp, it must have arrived before that wake-up, unless it came in during the short
//! moment the worker has been awake since. Once a second, if nearly all such answers
//! arrived "after" the wake-up while the thread slept most of the second, the stamps are
//! not receipt times, and the worker stops holding its sleeps for the rest of the run:
//! it then waits in the reactor, and each answer wakes it and is read, and timed, as it
//! arrives. That costs a wake-up per answer; the report says when it happened and why.
//!
//! `LOADGEN_ARRIVAL_STAMPS=off` leaves sockets unstamped, which is how the tests and a
//! doubtful user make the fallback happen on demand.

use crate::stamps::Stamp;
use std::cell::Cell;

/// A check needs this many answers read after a held sleep in its second.
const MIN_CHECKED: u64 = 50;
/// Late answers, in tenths of those checked, that condemn the stamps (legitimately late
/// ones arrive while the worker is awake, a small share of a second it mostly slept).
const LATE_TENTHS: u64 = 9;

/// One worker's watch over its answers' stamps (one thread: `Cell`s).
#[derive(Debug)]
pub struct ArrivalWatch {
    /// The platform stamps arrivals (Linux). Without, the worker never holds a sleep, and
    /// its answers are not "unheld" (read after it stopped holding): they are unchecked.
    kernel_stamps: bool,
    holding: Cell<bool>,
    /// Monotonic ns at which the latest held sleep ended; 0 while none is the latest wait.
    woke_ns: Cell<u64>,
    checked: Cell<u64>,
    late: Cell<u64>,
    /// Time spent in held sleeps in the current second.
    held_ns: Cell<u64>,
}

impl Default for ArrivalWatch {
    fn default() -> ArrivalWatch {
        ArrivalWatch::new(cfg!(target_os = "linux"))
    }
}

impl ArrivalWatch {
    /// A watch for a platform with (`true`) or without kernel receive stamps.
    fn new(kernel_stamps: bool) -> ArrivalWatch {
        ArrivalWatch {
            kernel_stamps,
            // Without kernel stamps a held sleep would time answers late.
            holding: Cell::new(kernel_stamps),
            woke_ns: Cell::new(0),
            checked: Cell::new(0),
            late: Cell::new(0),
            held_ns: Cell::new(0),
        }
    }

    /// Whether a short wait may still hold the thread.
    #[inline]
    pub fn holding(&self) -> bool {
        self.holding.get()
    }

    /// A held sleep begun at `slept_ns` ended at `now`.
    #[inline]
    pub fn woke(&self, slept_ns: u64, now: u64) {
        self.woke_ns.set(now);
        self.held_ns
            .set(self.held_ns.get() + now.saturating_sub(slept_ns));
    }

    /// The worker waits in the reactor: answers now wake it, and are read on arrival.
    #[inline]
    pub fn unheld(&self) {
        self.woke_ns.set(0);
    }

    /// Judges the stamp of an answer to a request sent at `sent_ns` (`arrived_ns`: the
    /// stamp on the monotonic clock, 0 when there was none).
    #[inline]
    pub fn judge(&self, sent_ns: u64, arrived_ns: u64) -> Stamp {
        if !self.holding.get() {
            return if self.kernel_stamps {
                Stamp::Unheld
            } else {
                Stamp::Unchecked
            };
        }
        let woke = self.woke_ns.get();
        if woke == 0 || sent_ns >= woke {
            return Stamp::Unchecked;
        }
        self.checked.set(self.checked.get() + 1);
        if arrived_ns != 0 && arrived_ns < woke {
            Stamp::OnTime
        } else {
            self.late.set(self.late.get() + 1);
            Stamp::Late
        }
    }

    /// Once a second (`window_ns` long): stops holding if this second's stamps were not
    /// receipt times. Returns true when it stopped holding just now.
    pub fn review(&self, window_ns: u64) -> bool {
        let (checked, late, held) = (self.checked.get(), self.late.get(), self.held_ns.get());
        self.checked.set(0);
        self.late.set(0);
        self.held_ns.set(0);
        let condemned = self.holding.get()
            && checked >= MIN_CHECKED
            && late * 10 >= checked * LATE_TENTHS
            && held * 2 >= window_ns;
        if condemned {
            self.holding.set(false);
            self.woke_ns.set(0);
        }
        condemned
    }
}

/// Whether sockets ask for arrival stamps (`LOADGEN_ARRIVAL_STAMPS=off`: no; never where
/// the kernel has no `SO_TIMESTAMPNS`).
pub fn stamps_wanted() -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    static WANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WANTED.get_or_init(|| {
        !std::env::var("LOADGEN_ARRIVAL_STAMPS").is_ok_and(|v| v.trim().eq_ignore_ascii_case("off"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    /// A watch that holds its sleeps, as on Linux, whatever the platform of the test.
    fn watch() -> ArrivalWatch {
        ArrivalWatch::new(true)
    }

    #[test]
    fn without_kernel_stamps_nothing_is_held_and_no_answer_counts_as_unheld() {
        // macOS: no sleep is held, so an answer is neither checked nor "read after the
        // worker stopped holding" (which the report would take for failed stamps).
        let w = ArrivalWatch::new(false);
        assert!(!w.holding());
        assert_eq!(w.judge(SECOND, 0), Stamp::Unchecked);
        assert!(!w.review(SECOND));
        // After a condemnation on Linux, the same answer counts as unheld.
        let linux = watch();
        linux.holding.set(false);
        assert_eq!(linux.judge(SECOND, 0), Stamp::Unheld);
    }

    /// One second of held 500 µs sleeps, `late_every`-th answer stamped after its wake-up.
    fn second(w: &ArrivalWatch, start: u64, late_every: u64) -> Vec<Stamp> {
        let mut seen = Vec::new();
        for k in 0..2000u64 {
            let slept = start + k * 500_000;
            let woke = slept + 480_000;
            w.woke(slept, woke);
            // Sent in the previous wake-up, answered 100 µs later, read now.
            let sent = slept - 10_000;
            let arrived = if k % late_every == 0 {
                woke + 2_000
            } else {
                sent + 100_000
            };
            seen.push(w.judge(sent, arrived));
            // Sent in this wake-up: nothing to check.
            seen.push(w.judge(woke + 1_000, woke + 50_000));
        }
        seen
    }

    #[test]
    fn honest_stamps_keep_the_thread_held() {
        let w = watch();
        let seen = second(&w, SECOND, 5);
        assert_eq!(seen.iter().filter(|s| **s == Stamp::Late).count(), 400);
        assert_eq!(seen.iter().filter(|s| **s == Stamp::OnTime).count(), 1600);
        assert_eq!(
            seen.iter().filter(|s| **s == Stamp::Unchecked).count(),
            2000
        );
        assert!(!w.review(SECOND), "a fifth late is not condemning");
        assert!(w.holding());
    }

    #[test]
    fn stamps_taken_at_read_end_the_holding_for_good() {
        let w = watch();
        second(&w, SECOND, 1);
        assert!(w.review(SECOND));
        assert!(!w.holding());
        // From then on answers are read as they arrive, whatever their stamps say.
        assert_eq!(w.judge(1, 0), Stamp::Unheld);
        assert!(!w.review(SECOND), "it stops once");
    }

    #[test]
    fn unstamped_answers_count_as_late() {
        let w = watch();
        w.woke(100, 1_000);
        assert_eq!(w.judge(50, 0), Stamp::Late);
        assert_eq!(w.judge(50, 999), Stamp::OnTime);
    }

    #[test]
    fn a_thread_mostly_awake_or_few_answers_prove_nothing() {
        // Every answer late, but the thread slept a tenth of the second: answers arriving
        // while it works are late by right.
        let w = watch();
        for k in 0..100u64 {
            let slept = SECOND + k * 10_000_000;
            w.woke(slept, slept + 1_000_000);
            w.judge(slept - 1, slept + 2_000_000);
        }
        assert!(!w.review(SECOND));
        // A slept second with only a few answers.
        w.woke(0, SECOND / 2 + 10);
        for _ in 0..MIN_CHECKED - 1 {
            w.judge(1, 0);
        }
        w.woke(SECOND / 2 + 10, SECOND);
        assert!(!w.review(SECOND));
        assert!(w.holding());
    }

    #[test]
    fn waiting_in_the_reactor_checks_nothing() {
        let w = watch();
        w.woke(0, 1_000);
        w.unheld();
        assert_eq!(w.judge(10, 5_000), Stamp::Unchecked);
    }
}
