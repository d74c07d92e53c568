//! Time: a monotonic nanosecond clock and a high-resolution wait.
//!
//! Tokio's timer wheel has millisecond granularity, which would add up to a millisecond
//! of pacing error to every request. On Linux the dispatcher instead sleeps on a
//! `timerfd` armed with an absolute `CLOCK_MONOTONIC` deadline and registered with
//! tokio's reactor, so it wakes within microseconds of a request's due time without
//! spinning. Elsewhere (macOS has no timerfd, `clock_nanosleep` nor timer slack) it uses
//! tokio's timer: pacing is then as coarse as a millisecond, which the pacing-lag line
//! shows, and the report names the timing source ([`timing_source`]).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// Nanoseconds on `CLOCK_MONOTONIC`.
#[inline]
pub fn now_ns() -> u64 {
    read_clock(libc::CLOCK_MONOTONIC)
}

/// Nanoseconds on `CLOCK_REALTIME`, the clock the kernel's receive timestamps use.
#[inline]
fn realtime_ns() -> u64 {
    read_clock(libc::CLOCK_REALTIME)
}

#[inline]
fn read_clock(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `CLOCK_REALTIME` minus `CLOCK_MONOTONIC` as a dispatcher last read it; 0 until one has.
static REALTIME_AHEAD_NS: AtomicU64 = AtomicU64::new(0);

/// How often the dispatchers re-read the clocks' offset. A step of the wall clock moves
/// the stamps taken until the next reading; serve's checks against the send time and
/// the monotonic clock bound what such a stamp can claim.
pub const OFFSET_EVERY_NS: u64 = 100_000_000;

/// Re-reads the offset between the two clocks. It reads both itself, the monotonic one
/// between two wall-clock readings: an offset taken against an older monotonic reading
/// moves every stamp earlier by the reading's age, which once hid a whole pass of the
/// dispatcher's work (the answers it reads at send) and made stamps precede their sends.
pub fn refresh_realtime_offset() {
    REALTIME_AHEAD_NS.store(realtime_offset(), Ordering::Relaxed);
}

/// `CLOCK_REALTIME` minus `CLOCK_MONOTONIC`, from the tightest of a few bracketed
/// readings (a preemption between two readings widens one bracket, not all of them).
fn realtime_offset() -> u64 {
    let mut best = (u64::MAX, 0);
    for _ in 0..3 {
        let before = realtime_ns();
        let mono = now_ns();
        let after = realtime_ns();
        let width = after.saturating_sub(before);
        if width < best.0 {
            best = (width, (before + width / 2).saturating_sub(mono));
        }
    }
    best.1
}

/// A kernel receive stamp (`CLOCK_REALTIME`) on `CLOCK_MONOTONIC`. With the offset a
/// dispatcher keeps, this reads no clock: two clock reads per socket read were a
/// tenth of loadgen's user-space time at the maximum rate.
#[cfg(target_os = "linux")]
#[inline]
pub fn stamp_to_monotonic(stamp: u64) -> u64 {
    to_monotonic(stamp, REALTIME_AHEAD_NS.load(Ordering::Relaxed))
}

/// `ahead` is the clocks' offset, or 0 for none yet: then the stamp's age is taken off
/// the monotonic clock, at the cost of two clock reads.
#[cfg(target_os = "linux")]
fn to_monotonic(stamp: u64, ahead: u64) -> u64 {
    match ahead {
        0 => now_ns().saturating_sub(realtime_ns().saturating_sub(stamp)),
        ahead => stamp.saturating_sub(ahead),
    }
}

/// Asks the kernel for 1 ns timer slack on the calling thread (the default 50 µs slack
/// would show up as pacing lag). Failure only costs precision, so it is ignored.
#[cfg(target_os = "linux")]
pub fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}

/// No timer slack to set where there is no `prctl` (macOS coalesces timers its own way).
#[cfg(not(target_os = "linux"))]
pub fn tighten_timer_slack() {}

/// How this build waits for due times and times answers, for the report: the waits'
/// source, and whether answers carry the kernel's receive stamp or are timed when read.
pub fn timing_source() -> &'static str {
    let stamped = super::arrival::stamps_wanted();
    match (cfg!(target_os = "linux"), stamped) {
        (true, true) => "timerfd waits, kernel receive stamps (SO_TIMESTAMPNS)",
        (true, false) => "timerfd waits, answers timed when read",
        (false, _) => "tokio timer waits (1 ms granularity), answers timed when read",
    }
}

/// Blocks the calling thread until `CLOCK_MONOTONIC` reaches `deadline_ns`.
///
/// The dispatcher holds its whole single-threaded runtime in this sleep for short waits:
/// answers that arrive meanwhile wait in their sockets (the kernel stamps their arrival,
/// see `stream`) and are all read in the one wake-up that sends the next requests,
/// instead of each waking the thread on its own.
#[cfg(target_os = "linux")]
pub fn sleep_blocking_until(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as _,
        tv_nsec: (deadline_ns % 1_000_000_000) as _,
    };
    // SAFETY: `ts` is a valid timespec; a null remainder is allowed with TIMER_ABSTIME.
    // An interrupted sleep (EINTR) returns early, which the caller's clock check absorbs.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    };
}

/// Blocks the calling thread until the monotonic clock reaches `deadline_ns` (std's
/// sleep where there is no `clock_nanosleep`).
#[cfg(not(target_os = "linux"))]
pub fn sleep_blocking_until(deadline_ns: u64) {
    let left = deadline_ns.saturating_sub(now_ns());
    if left > 0 {
        std::thread::sleep(std::time::Duration::from_nanos(left));
    }
}

/// A one-shot absolute-deadline timer on the current tokio reactor: a `timerfd` on Linux,
/// tokio's own timer (to the millisecond) elsewhere.
pub struct PreciseTimer {
    #[cfg(target_os = "linux")]
    fd: tokio::io::unix::AsyncFd<Fd>,
    /// tokio's clock and ours read together, to map deadlines onto tokio's.
    #[cfg(not(target_os = "linux"))]
    epoch: (tokio::time::Instant, u64),
}

impl std::fmt::Debug for PreciseTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("PreciseTimer");
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd as _;
            d.field("fd", &self.fd.get_ref().as_raw_fd());
        }
        #[cfg(not(target_os = "linux"))]
        d.field("epoch_ns", &self.epoch.1);
        d.finish()
    }
}

/// The timerfd, owned; the AsyncFd needs an `AsRawFd` of its own.
#[cfg(target_os = "linux")]
struct Fd(std::os::fd::OwnedFd);

#[cfg(target_os = "linux")]
impl std::os::fd::AsRawFd for Fd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(target_os = "linux")]
impl PreciseTimer {
    /// Creates the timer; must be called inside a tokio runtime with I/O enabled.
    pub fn new() -> io::Result<PreciseTimer> {
        use std::os::fd::FromRawFd as _;
        // SAFETY: plain syscall; the result is checked before use.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        // SAFETY: `Fd` owns the descriptor and always returns it; it stays open for the
        // AsyncFd's lifetime because the AsyncFd owns the `Fd`.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                Fd(owned),
                tokio::io::Interest::READABLE,
            )?
        };
        Ok(PreciseTimer { fd })
    }

    /// Waits until `CLOCK_MONOTONIC` reaches `deadline_ns` (returns at once if it has).
    pub async fn sleep_until(&self, deadline_ns: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd as _;
        if now_ns() >= deadline_ns {
            return Ok(());
        }
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (deadline_ns / 1_000_000_000) as _,
                tv_nsec: (deadline_ns % 1_000_000_000) as _,
            },
        };
        let fd = self.fd.get_ref().as_raw_fd();
        // SAFETY: `spec` is a valid itimerspec and `fd` a timerfd we own.
        let rc = unsafe {
            libc::timerfd_settime(fd, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut())
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // Re-arming resets the expiry count, so the descriptor need not be read: each
        // expiry raises a fresh edge. A readiness left over from an earlier arming is
        // cleared and waited past.
        loop {
            let mut guard = self.fd.readable().await?;
            guard.clear_ready();
            if now_ns() >= deadline_ns {
                return Ok(());
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
impl PreciseTimer {
    /// Creates the timer; must be called inside a tokio runtime with timers enabled.
    pub fn new() -> io::Result<PreciseTimer> {
        Ok(PreciseTimer {
            epoch: (tokio::time::Instant::now(), now_ns()),
        })
    }

    /// Waits until the monotonic clock reaches `deadline_ns` (at once if it has).
    pub async fn sleep_until(&self, deadline_ns: u64) -> io::Result<()> {
        let (at, ns) = self.epoch;
        let target = at + std::time::Duration::from_nanos(deadline_ns.saturating_sub(ns));
        tokio::time::sleep_until(target).await;
        // tokio's clock and ours may disagree by a reading's worth; never return early.
        while now_ns() < deadline_ns {
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_realtime_stamp_lands_between_monotonic_readings() {
        // Without an offset (0: no dispatcher yet) and with one read now, a stamp of "now"
        // on the wall clock reads as now on the monotonic clock, and an old one stays old.
        let now = now_ns();
        let ahead = realtime_ns() - now;
        for offset in [0, ahead] {
            let before = now_ns();
            let mono = to_monotonic(realtime_ns(), offset);
            let after = now_ns();
            // 1 ms of slack for a wall clock slewed between the readings.
            assert!(mono + 1_000_000 >= before, "{offset}: {mono} < {before}");
            assert!(mono <= after + 1_000_000, "{offset}: {mono} > {after}");
            let age = now_ns() - to_monotonic(realtime_ns() - 5_000_000, offset);
            assert!((4_000_000..6_000_000).contains(&age), "{offset}: {age}");
        }
        // The dispatcher's refresh sets the offset that the public conversion uses.
        refresh_realtime_offset();
        let mono = stamp_to_monotonic(realtime_ns());
        assert!(mono.abs_diff(now_ns()) < 1_000_000, "{mono}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn wakes_after_the_deadline() {
        let t = PreciseTimer::new().unwrap();
        for _ in 0..20 {
            let deadline = now_ns() + 300_000;
            t.sleep_until(deadline).await.unwrap();
            assert!(now_ns() >= deadline);
        }
        // A deadline in the past returns at once.
        t.sleep_until(now_ns() - 1).await.unwrap();
    }
}
