//! The floor: the least CPU per request any paced HTTP/1.1 client can spend on this
//! machine at a given tick, measured by running one that does nothing else.
//!
//! Why it exists: on a virtual machine most of a paced client's CPU is the kernel's
//! (the timer wake-up, the wake-up of the server's idle core that the first send of a
//! tick causes, loopback TCP). Whether a target such as "0.15x k6's CPU per request"
//! can be met at a tick is then a property of the machine as much as of loadgen. The
//! floor answers it in the same run: per tick it makes exactly the system calls a tick
//! needs (one sleep to the tick's deadline, one write per request due, one `epoll_wait(0)`,
//! one read per answer in) and times nothing, records nothing and never reconnects. A client that
//! measures latency can only cost more; loadgen's row over this one is what its own
//! bookkeeping costs. `--measure` (see `books`) adds to the same loop only what honest
//! timing needs, which splits that row in two: timing, and loadgen's runtime and code.
//!
//! It is written on non-blocking std sockets and a bare `epoll` (`libc`), not tokio, on
//! purpose: any runtime would add work that the floor is meant to leave out. It talks to loopback only,
//! for a bounded time, and prints one JSON object.

use std::io::{ErrorKind, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::os::fd::AsRawFd as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::cli::FloorArgs;
use books::{Answer, Bare, Books, Latency, Measured};

mod books;

/// How long answers still in flight after the last tick are waited for.
const DRAIN: Duration = Duration::from_secs(1);
/// The finest tick the floor takes.
const MIN_TICK: Duration = Duration::from_micros(10);
/// Largest answer the floor reads (echo-svc's are well under 1 KiB).
const MAX_ANSWER: usize = 64 * 1024;

/// What the floor did, printed as JSON.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct FloorReport {
    pub tick_us: u64,
    /// Requests written.
    pub sent: u64,
    /// Complete answers read (any status).
    pub responses: u64,
    /// Answers with status >= 400, unreadable answers, connections lost mid-request, and
    /// failed writes (whose request then goes to the next idle connection).
    pub errors: u64,
    /// Requests due while every connection was busy: not sent (the floor never queues).
    pub skipped: u64,
    /// Requests still unanswered when the drain ended.
    pub unanswered: u64,
    /// With `--measure`: the answers' latencies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
}

/// `benches floor`: runs the floor client and prints its report.
pub fn measure(a: &FloorArgs) -> anyhow::Result<u8> {
    if !(a.rps > 0.0 && a.rps.is_finite()) {
        bail!("--rps must be a positive number");
    }
    if a.connections == 0 || a.connections > 4096 {
        bail!("--connections must be 1-4096");
    }
    // Below this a tick is no longer a wake-up to coalesce into, and the loop would spin.
    if a.tick < MIN_TICK {
        bail!("--tick must be at least {MIN_TICK:?} (the floor always coalesces)");
    }
    let (addr, host, path) = loopback_target(&a.url)?;
    let report = if a.measure {
        drive(addr, &host, &path, a, &mut Measured::new(a.connections)?)?
    } else {
        drive(addr, &host, &path, a, &mut Bare)?
    };
    // A closed pipe is an error to report, not a panic.
    writeln!(std::io::stdout(), "{}", serde_json::to_string(&report)?)
        .context("cannot write the report to stdout")?;
    Ok(0)
}

/// `http://HOST:PORT/PATH` on loopback only: the floor is a benchmark's reference.
fn loopback_target(url: &str) -> anyhow::Result<(SocketAddr, String, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: the floor speaks plain http:// only"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let has_port = match authority.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => authority.contains(':'),
    };
    let with_port = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .with_context(|| format!("{url}: cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{url}: {authority} resolves to nothing"))?;
    if !addr.ip().is_loopback() {
        bail!(
            "{url}: {} is not a loopback address; the floor sends to loopback only",
            addr.ip()
        );
    }
    Ok((addr, authority.to_string(), path.to_string()))
}

/// One connection: its stream and what has arrived of its current answer.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    busy: bool,
    dead: bool,
}

/// The loop, with `books` doing whatever it adds to the system calls (see `books`);
/// generic so that the floor's own (`Bare`) adds no instruction.
fn drive<B: Books>(
    addr: SocketAddr,
    host: &str,
    path: &str,
    a: &FloorArgs,
    books: &mut B,
) -> anyhow::Result<FloorReport> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes();
    let ep = Epoll::new()?;
    let mut conns = Vec::with_capacity(a.connections);
    for i in 0..a.connections {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        stream.set_nonblocking(true).context("O_NONBLOCK")?;
        books.open(&stream);
        ep.add(stream.as_raw_fd(), i as u64)?;
        conns.push(Conn {
            stream,
            buf: Vec::with_capacity(1024),
            busy: false,
            dead: false,
        });
    }
    let mut idle: Vec<usize> = (0..conns.len()).rev().collect();
    let tick_ns = a.tick.as_nanos() as u64;
    let ticks = (a.duration.as_nanos() as u64).div_ceil(tick_ns);
    let mut rep = FloorReport {
        tick_us: a.tick.as_micros() as u64,
        ..FloorReport::default()
    };
    // The books' clock is read first, so that a due time on it is never after the send.
    books.begin();
    let start = Instant::now();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; conns.len()];
    for k in 1..=ticks {
        // Each deadline counts from the start, so late wake-ups do not add up.
        let at = Duration::from_nanos(tick_ns.saturating_mul(k));
        if let Some(wait) = at.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let due = (a.rps * at.as_secs_f64()) as u64;
        while rep.sent + rep.skipped < due {
            // A connection lost while idle stays in the list until its turn: pass it by.
            while idle.last().is_some_and(|&i| conns[i].dead) {
                idle.pop();
            }
            let Some(i) = idle.pop() else {
                rep.skipped += 1;
                continue;
            };
            let c = &mut conns[i];
            books.sent(i, at);
            match c.stream.write(&request) {
                Ok(n) if n == request.len() => {
                    c.busy = true;
                    rep.sent += 1;
                }
                // A short or failed write on an idle keep-alive connection: lost.
                _ => {
                    c.dead = true;
                    rep.errors += 1;
                }
            }
        }
        let n = ep.wait(&mut events, 0)?;
        read_ready(&mut conns, &events[..n], &mut idle, &mut rep, books);
    }
    let drain_until = Instant::now() + DRAIN;
    while conns.iter().any(|c| c.busy && !c.dead) {
        let Some(left) = drain_until.checked_duration_since(Instant::now()) else {
            break;
        };
        let ms = left.as_millis().clamp(1, 100) as i32;
        let n = ep.wait(&mut events, ms)?;
        read_ready(&mut conns, &events[..n], &mut idle, &mut rep, books);
    }
    rep.unanswered = conns.iter().filter(|c| c.busy && !c.dead).count() as u64;
    rep.latency = books.latency();
    Ok(rep)
}

/// Reads what the ready connections have; a complete answer frees its connection.
fn read_ready<B: Books>(
    conns: &mut [Conn],
    ready: &[libc::epoll_event],
    idle: &mut Vec<usize>,
    rep: &mut FloorReport,
    books: &mut B,
) {
    let mut chunk = [0u8; 8192];
    for ev in ready {
        let i = ev.u64 as usize;
        let Some(c) = conns.get_mut(i) else { continue };
        if c.dead {
            continue;
        }
        loop {
            match books.read(i, &mut c.stream, &mut chunk) {
                Ok(0) => {
                    c.dead = true;
                    rep.errors += u64::from(c.busy);
                    break;
                }
                Ok(n) => {
                    c.buf.extend_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    c.dead = true;
                    rep.errors += u64::from(c.busy);
                    break;
                }
            }
        }
        if c.dead {
            continue;
        }
        if !c.busy {
            // Bytes nobody asked for: give the connection up.
            c.dead = !c.buf.is_empty();
            continue;
        }
        match books.answer(i, &c.buf) {
            Answer::Partial if c.buf.len() <= MAX_ANSWER => {}
            Answer::Complete { len, status } => {
                c.buf.drain(..len);
                c.busy = false;
                rep.responses += 1;
                rep.errors += u64::from(status >= 400);
                idle.push(i);
            }
            // Too large or unframed: give the connection up.
            _ => {
                c.dead = true;
                rep.errors += 1;
            }
        }
    }
}

/// An epoll instance, closed on drop.
#[derive(Debug)]
struct Epoll(libc::c_int);

impl Epoll {
    fn new() -> anyhow::Result<Epoll> {
        // SAFETY: plain system call with a flag argument.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            bail!("epoll_create1: {}", std::io::Error::last_os_error());
        }
        Ok(Epoll(fd))
    }

    fn add(&self, fd: libc::c_int, key: u64) -> anyhow::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: key,
        };
        // SAFETY: both descriptors are open and `ev` is a valid event.
        if unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
            bail!("epoll_ctl: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> anyhow::Result<usize> {
        loop {
            // SAFETY: `events` is valid for `events.len()` entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.0,
                    events.as_mut_ptr(),
                    events.len() as libc::c_int,
                    timeout_ms,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                return Err(e).context("epoll_wait");
            }
        }
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::loopback_target;

    #[test]
    fn sends_to_loopback_only() {
        let (addr, host, path) = loopback_target("http://127.0.0.1:8080/x?y=1").unwrap();
        assert_eq!(addr.port(), 8080);
        assert_eq!((host.as_str(), path.as_str()), ("127.0.0.1:8080", "/x?y=1"));
        let (addr, _, path) = loopback_target("http://[::1]:81").unwrap();
        assert!(addr.ip().is_loopback());
        assert_eq!((addr.port(), path.as_str()), (81, "/"));
        assert_eq!(loopback_target("http://127.0.0.2").unwrap().0.port(), 80);
        let e = loopback_target("http://192.0.2.1:80/").unwrap_err();
        assert!(format!("{e:#}").contains("not a loopback"), "{e:#}");
        assert!(loopback_target("https://127.0.0.1/").is_err());
    }
}
