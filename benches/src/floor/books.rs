//! What the floor's loop does besides its system calls ([`Books`]): nothing, for the floor
//! itself ([`Bare`]), or, with `benches floor --measure` ([`Measured`]), the least a client
//! that times its answers honestly must add to the same system calls. That is:
//! - the kernel's arrival stamp on every read, with loadgen's own stamped read
//!   (`loadgen::stamps::kernel`), so an answer that came in while the client slept to its
//!   next tick is timed by its arrival;
//! - wake-ups on time (1 ns timer slack) and one clock reading per send;
//! - the answer's head parsed (httparse, as loadgen does) for its status, framing and
//!   region and version labels;
//! - two latencies recorded per answer in HDR histograms: from its due time and from its
//!   send.
//!
//! The measuring variant splits loadgen's excess over the floor in two: its row over the
//! floor is what honest timing costs any client, and loadgen's row over it is what
//! loadgen's runtime and own code add.

use std::io::{self, Read as _};
use std::mem::MaybeUninit;
use std::net::TcpStream;
use std::os::fd::AsRawFd as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use loadgen::stamps::kernel;
use serde::Serialize;

/// The answers' latencies, as `--measure` recorded them.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Latency {
    /// Complete answers timed.
    pub answers: u64,
    /// Of those, answers timed by a kernel arrival stamp (the rest: when read).
    pub stamped: u64,
    /// Of those, answers that carried both the region and the version header.
    pub labelled: u64,
    /// From the due time, µs.
    pub p50_us: u64,
    pub p99_us: u64,
    /// From the send, µs.
    pub service_p50_us: u64,
}

/// How an answer at the start of a connection's buffer stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Partial,
    Complete { len: usize, status: u16 },
    Unframed,
}

/// The floor loop's work besides its system calls, per connection `conn`.
pub trait Books {
    /// A connection before the first tick.
    fn open(&mut self, stream: &TcpStream);
    /// The run starts (the first tick is due a tick from now).
    fn begin(&mut self);
    /// A request written on `conn`, due `due` after the run's start.
    fn sent(&mut self, conn: usize, due: Duration);
    /// One read of `conn` into `chunk`.
    fn read(&mut self, conn: usize, stream: &mut TcpStream, chunk: &mut [u8]) -> io::Result<usize>;
    /// Frames the answer at the start of `buf`, read from `conn`.
    fn answer(&mut self, conn: usize, buf: &[u8]) -> Answer;
    /// What was measured, if anything.
    fn latency(&self) -> Option<Latency>;
}

/// The floor itself: plain reads, framing by `Content-Length`, nothing timed.
#[derive(Debug)]
pub struct Bare;

impl Books for Bare {
    #[inline]
    fn open(&mut self, _: &TcpStream) {}

    #[inline]
    fn begin(&mut self) {}

    #[inline]
    fn sent(&mut self, _: usize, _: Duration) {}

    #[inline]
    fn read(&mut self, _: usize, stream: &mut TcpStream, chunk: &mut [u8]) -> io::Result<usize> {
        stream.read(chunk)
    }

    #[inline]
    fn answer(&mut self, _: usize, buf: &[u8]) -> Answer {
        framed(buf)
    }

    fn latency(&self) -> Option<Latency> {
        None
    }
}

/// Frames one HTTP/1.1 answer by its `Content-Length` (all the floor's server sends).
pub fn framed(buf: &[u8]) -> Answer {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Answer::Partial;
    };
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
        return Answer::Unframed;
    };
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok());
    let length = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    match (status, length) {
        (Some(status), Some(body)) => {
            let len = head_end + 4 + body;
            if buf.len() >= len {
                Answer::Complete { len, status }
            } else {
                Answer::Partial
            }
        }
        _ => Answer::Unframed,
    }
}

/// Headers parsed per answer at most (echo-svc sends six).
const MAX_HEADERS: usize = 32;

/// The least a client that times its answers must do (see the module note).
#[derive(Debug)]
pub struct Measured {
    /// `CLOCK_REALTIME` at the run's start (set by `begin`): stamps are on that clock.
    start_ns: u64,
    /// Per connection: its request's due time, its send and its last read's stamp (0: none).
    due_ns: Vec<u64>,
    sent_ns: Vec<u64>,
    stamp_ns: Vec<u64>,
    corrected: Histogram<u64>,
    service: Histogram<u64>,
    stamped: u64,
    labelled: u64,
}

impl Measured {
    /// For `connections` connections.
    pub fn new(connections: usize) -> anyhow::Result<Measured> {
        // 1 µs to 100 s at 3 significant figures, as loadgen records.
        let hist = || Histogram::new_with_bounds(1, 100_000_000, 3);
        Ok(Measured {
            start_ns: 0,
            due_ns: vec![0; connections],
            sent_ns: vec![0; connections],
            stamp_ns: vec![0; connections],
            corrected: hist()?,
            service: hist()?,
            stamped: 0,
            labelled: 0,
        })
    }

    /// Records a complete answer on `conn`, ended by its stamp (or now, without one).
    fn record(&mut self, conn: usize, labelled: bool) {
        let stamp = self.stamp_ns[conn];
        let sent = self.sent_ns[conn];
        let end = if stamp >= sent && stamp != 0 {
            self.stamped += 1;
            stamp
        } else {
            realtime_ns()
        };
        self.labelled += u64::from(labelled);
        let us = |from: u64| (end.saturating_sub(from) / 1000).max(1);
        self.corrected.saturating_record(us(self.due_ns[conn]));
        self.service.saturating_record(us(sent));
    }
}

impl Books for Measured {
    fn open(&mut self, stream: &TcpStream) {
        kernel::enable(stream.as_raw_fd());
    }

    fn begin(&mut self) {
        // Wake-ups on time, as loadgen asks for: the default 50 µs timer slack would
        // be the client's own lateness in every latency.
        // SAFETY: PR_SET_TIMERSLACK takes an integer argument and touches no memory.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
        self.start_ns = realtime_ns();
    }

    #[inline]
    fn sent(&mut self, conn: usize, due: Duration) {
        self.due_ns[conn] = self.start_ns + due.as_nanos() as u64;
        self.sent_ns[conn] = realtime_ns();
    }

    #[inline]
    fn read(&mut self, conn: usize, stream: &mut TcpStream, chunk: &mut [u8]) -> io::Result<usize> {
        // SAFETY: a `[u8]` is a valid `[MaybeUninit<u8>]` of the same length, and the read
        // writes only initialised bytes into it.
        let room = unsafe { &mut *(chunk as *mut [u8] as *mut [MaybeUninit<u8>]) };
        let (n, stamp) = kernel::recv_stamped(stream.as_raw_fd(), room)?;
        if stamp != 0 {
            self.stamp_ns[conn] = stamp;
        }
        Ok(n)
    }

    fn answer(&mut self, conn: usize, buf: &[u8]) -> Answer {
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            buf,
            &mut headers,
        ) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Answer::Partial,
            Err(_) => return Answer::Unframed,
        };
        let (mut body, mut region, mut version) = (None, false, false);
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("x-echo-region") {
                region = true;
            } else if h.name.eq_ignore_ascii_case("x-echo-version") {
                version = true;
            } else if h.name.eq_ignore_ascii_case("content-length") {
                body = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok());
            }
        }
        let (Some(status), Some(body)) = (resp.code, body) else {
            return Answer::Unframed;
        };
        if buf.len() < len + body {
            return Answer::Partial;
        }
        self.record(conn, region && version);
        Answer::Complete {
            len: len + body,
            status,
        }
    }

    fn latency(&self) -> Option<Latency> {
        Some(Latency {
            answers: self.corrected.len(),
            stamped: self.stamped,
            labelled: self.labelled,
            p50_us: self.corrected.value_at_quantile(0.5),
            p99_us: self.corrected.value_at_quantile(0.99),
            service_p50_us: self.service.value_at_quantile(0.5),
        })
    }
}

fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn frames_answers_by_content_length() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-region: us\r\n\r\nhello";
        assert_eq!(
            framed(ok),
            Answer::Complete {
                len: ok.len(),
                status: 200
            }
        );
        assert_eq!(framed(&ok[..ok.len() - 1]), Answer::Partial);
        assert_eq!(framed(b"HTTP/1.1 200 OK\r\nconte"), Answer::Partial);
        let err = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\nHTTP/1.1";
        assert_eq!(
            framed(err),
            Answer::Complete {
                len: err.len() - 8,
                status: 503
            }
        );
        assert_eq!(
            framed(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello"),
            Answer::Unframed
        );
    }

    #[test]
    fn the_measured_books_frame_alike_and_time_each_answer_once() {
        let mut m = Measured::new(2).unwrap();
        m.begin();
        // Due at the start, sent now: from the due time is never less than from the send.
        m.sent(1, Duration::ZERO);
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nx-echo-region: us\r\nX-Echo-Version: v2\r\n\r\nhelloHTTP";
        assert_eq!(m.answer(1, &ok[..20]), Answer::Partial);
        assert_eq!(m.answer(1, &ok[..ok.len() - 5]), Answer::Partial);
        let whole = Answer::Complete {
            len: ok.len() - 4,
            status: 200,
        };
        assert_eq!(m.answer(1, ok), whole);
        assert_eq!(framed(ok), whole);
        assert_eq!(
            m.answer(0, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
            Answer::Unframed
        );
        let l = m.latency().unwrap();
        // Only the complete answer was timed; it had both labels and no stamp.
        assert_eq!((l.answers, l.labelled, l.stamped), (1, 1, 0), "{l:?}");
        assert!(l.service_p50_us <= l.p50_us, "{l:?}");
    }
}
