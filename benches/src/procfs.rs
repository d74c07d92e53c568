//! CPU time and memory of processes and threads, read from `/proc` and `wait4`.
//!
//! CPU is user + system time. `/proc/<pid>/stat` counts it in clock ticks (10 ms at the
//! usual `CLK_TCK` of 100), so a figure read from there is only as good as the run is long;
//! `wait4`'s `rusage` has microsecond resolution and also counts the children the process
//! reaped, so a finished child is always measured that way ([`wait_child`]).

use std::fs;
use std::process::{Child, ExitStatus};
use std::time::Duration;

use anyhow::{bail, Context as _};

/// Clock ticks per second for `/proc` CPU fields.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// User + system CPU of the fields of a `stat` line (`/proc/<pid>/stat` or a task's).
fn stat_cpu(stat: &str) -> anyhow::Result<Duration> {
    // The command name is in parentheses and may hold spaces; fields follow the last `)`.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat line: no `)`")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After `)`: state is field 3 of stat(5), so utime (14) and stime (15) are at 11 and 12.
    let get = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("stat line too short")?
            .parse()
            .context("stat field is not a number")
    };
    let ticks = get(11)? + get(12)?;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / clock_ticks()))
}

/// CPU time used so far by a live process (all its threads, not its children).
pub fn process_cpu(pid: u32) -> anyhow::Result<Duration> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    stat_cpu(&s)
}

/// CPU time of the whole calling process so far (every thread, live or finished), at
/// microsecond resolution.
pub fn self_cpu() -> Duration {
    rusage_cpu(&rusage(libc::RUSAGE_SELF))
}

fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: an all-zero rusage is a valid value; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(who, &mut ru) };
    ru
}

fn rusage_cpu(ru: &libc::rusage) -> Duration {
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Memory figures of a live process, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size now.
    pub rss_kib: u64,
    /// Peak resident set size so far (`VmHWM`).
    pub hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` from `/proc/<pid>/status`.
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let s = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    parse_memory(&s)
}

fn parse_memory(status: &str) -> anyhow::Result<Memory> {
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in status"))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("bad {name} line {line:?}"))
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// How a child process ended and what it used, from `wait4`.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub status: ExitStatus,
    /// User + system CPU of the child and of every descendant it waited for.
    pub cpu: Duration,
    /// Peak RSS of the child (or of its largest waited-for descendant), KiB.
    pub max_rss_kib: u64,
    /// Wall time from spawn (as given to [`wait_child`]) to exit.
    pub wall: Duration,
    /// Voluntary context switches of the child's threads: each is a sleep that ended in a
    /// wake-up, the cost that dominates a paced client's CPU on a virtual machine.
    pub sleeps: u64,
}

/// Waits for `child` to exit (killing it after `deadline`) and returns its resource usage.
/// `started` is when the child was spawned, for the wall time.
pub fn wait_child(
    child: &mut Child,
    started: std::time::Instant,
    deadline: Duration,
) -> anyhow::Result<Usage> {
    use std::os::unix::process::ExitStatusExt as _;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; WNOHANG makes this a poll.
        let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if rc == pid {
            break;
        }
        if rc < 0 {
            bail!("wait4({pid}) failed: {}", std::io::Error::last_os_error());
        }
        if started.elapsed() > deadline {
            // Bounded runs: a peer that overruns its deadline is stopped, then reaped.
            let _ = child.kill();
            // SAFETY: as above, blocking this time; the child has been sent SIGKILL.
            let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            if rc != pid {
                bail!("cannot reap {pid} after killing it");
            }
            bail!("{pid} ran past its {deadline:?} deadline and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Usage {
        status: ExitStatus::from_raw(status),
        cpu: rusage_cpu(&ru),
        max_rss_kib: ru.ru_maxrss as u64,
        wall: started.elapsed(),
        sleeps: ru.ru_nvcsw as u64,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let line = "1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100";
        let cpu = stat_cpu(line).unwrap();
        assert_eq!(
            cpu,
            Duration::from_nanos(300 * 1_000_000_000 / clock_ticks())
        );
    }

    #[test]
    fn parses_status_memory() {
        let s = "Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t    1024 kB\n";
        let m = parse_memory(s).unwrap();
        assert_eq!(
            m,
            Memory {
                rss_kib: 1024,
                hwm_kib: 2048
            }
        );
        assert!(parse_memory("Name: x\n").is_err());
    }

    #[test]
    fn own_process_and_thread_are_readable() {
        let me = std::process::id();
        assert!(memory(me).unwrap().rss_kib > 0);
        process_cpu(me).unwrap();
    }

    #[test]
    fn waits_for_a_child_and_measures_it() {
        let started = std::time::Instant::now();
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 3",
            ])
            .spawn()
            .unwrap();
        let u = wait_child(&mut child, started, Duration::from_secs(60)).unwrap();
        assert_eq!(u.status.code(), Some(3));
        assert!(u.cpu > Duration::ZERO);
        assert!(u.max_rss_kib > 0);
        // A shell that forks and waits for a child sleeps at least once.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 0.05; true"])
            .spawn()
            .unwrap();
        let u = wait_child(
            &mut child,
            std::time::Instant::now(),
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(u.sleeps > 0);
    }

    #[test]
    fn kills_a_child_past_its_deadline() {
        let started = std::time::Instant::now();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let err = wait_child(&mut child, started, Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("deadline"), "{err}");
    }
}
