//! A lean HTTP/1.1 client connection for the engine's hot path.
//!
//! A general-purpose client (hyper's) splits each connection into a request handle and a
//! driver task joined by a channel, and builds a `Request` and a `HeaderMap` per request. At
//! tens of thousands of requests per second on one thread that bookkeeping costs as much as
//! the system calls. The generator only ever sends one fixed request per target, so here:
//!
//! - the request is serialised once per target ([`encode_request`]) and written with one
//!   `write` per exchange;
//! - the response head is parsed in place with `httparse`, picking out only the status and
//!   the two attribution headers;
//! - the body is read and discarded (`Content-Length`, chunked, or until close), so memory
//!   stays flat whatever the server sends;
//! - one request is in flight per connection (no pipelining), and one task drives it.
//!
//! A connection is kept for the next request only when the exchange ended cleanly on a
//! message boundary and the server did not ask to close it, and it is reused only if
//! nothing arrived on it meanwhile: a late or unsolicited response must never be taken
//! for the next request's answer.
//!
//! Framing follows RFC 9112: a status outside 100-599, a `Content-Length` that is not
//! all digits, two different lengths, `Transfer-Encoding` together with `Content-Length`
//! (a smuggling pattern), and chunk sizes that overflow are malformed responses.

use std::io;

use http::header::{HeaderMap, HeaderName};
use http::uri::PathAndQuery;
use http::Method;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::head::{parse_head, BodyLen, Head, Label};
use super::stream::{io_failure, Idle, Stream};
use crate::configured::checks::Checks;
use crate::configured::request::RequestSpec;
use crate::results::Failure;

mod body;

/// Largest response head accepted; a longer one is a malformed response.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Read buffer size; bodies larger than this stream through it.
const READ_CHUNK: usize = 16 * 1024;

/// Serialises `spec` for `path` with `headers` (which carry `Host`), body included.
/// A body, and any method that usually carries one, gets a `Content-Length`.
pub fn encode_request(spec: &RequestSpec, path: &PathAndQuery, headers: &HeaderMap) -> Vec<u8> {
    let body = spec.body.as_deref().unwrap_or(&[]);
    let mut out = Vec::with_capacity(64 + headers.len() * 32 + body.len());
    out.extend_from_slice(spec.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_str().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let framed =
        spec.body.is_some() || matches!(spec.method, Method::POST | Method::PUT | Method::PATCH);
    if framed {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// What one exchange yields.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub region: Option<Label>,
    pub version: Option<Label>,
    /// When the request was written (monotonic ns).
    pub sent_ns: u64,
    /// When the answer's last bytes reached this host, stamped by the kernel (monotonic
    /// ns; 0 if unstamped).
    pub arrived_ns: u64,
    /// Bytes read for this answer (head and body).
    pub received: u64,
    /// The answer failed a `--check`.
    pub check_failed: bool,
}

/// A request written ahead by the dispatcher (`Conn::write_ahead`).
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// When it was written (monotonic ns).
    pub sent_ns: u64,
    /// How many of its bytes the socket took.
    pub bytes: usize,
}

/// Why an exchange failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ExchangeError {
    /// The server had closed this (reused) connection before answering a single byte:
    /// the usual race with a keep-alive timeout. Safe to retry on a fresh connection.
    Stale,
    /// This (reused) connection held bytes nobody asked for: the server answered some
    /// request twice. Retried on a fresh connection, and counted: the answer taken before
    /// on this connection may not have been its own.
    Unasked,
    /// A real failure, to be counted.
    Failed(Failure),
    /// TLS failed after the handshake (an alert, bytes that are not TLS): counted as `tls`,
    /// with what rustls said for the report's line.
    Tls(String),
}

/// A reset on a kept-alive connection before any byte of the answer is the server having
/// closed it while idle: [`ExchangeError::Stale`], so the request is retried on a new one.
fn stale_or(reused: bool, f: Failure, got_bytes: bool) -> ExchangeError {
    if reused && !got_bytes && matches!(f, Failure::Reset) {
        ExchangeError::Stale
    } else {
        ExchangeError::Failed(f)
    }
}

/// An I/O error of an exchange: TLS's own errors apart, with their message.
fn io_error(e: &io::Error) -> ExchangeError {
    match e.get_ref().filter(|inner| inner.is::<rustls::Error>()) {
        Some(tls) => ExchangeError::Tls(tls.to_string()),
        None => ExchangeError::Failed(io_failure(e)),
    }
}

/// One open connection.
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    /// Whether a request has completed on it (so a silent close is a stale keep-alive).
    used: bool,
    /// Bytes read during the current exchange.
    received: u64,
    /// The body's first bytes, kept for the body checks (empty without any).
    prefix: Vec<u8>,
    /// What [`Conn::reap`] read is the start of the current answer: the next exchange
    /// goes on from it instead of starting afresh.
    resume: bool,
    /// The error [`Conn::reap`] met (a socket error is reported once), for the exchange
    /// that goes on from it.
    held: Option<io::Error>,
}

/// What [`Conn::reap`] found.
#[derive(Debug)]
pub enum Reaped {
    /// Nothing has arrived yet.
    Nothing,
    /// A whole answer, on a connection that may carry the next request.
    Whole(Answer),
    /// The start of an answer, or one the exchange must finish (a body to read, stream
    /// or check, an interim head, a close, an error): the next exchange goes on from it.
    Started,
}

impl Conn {
    /// Wraps a freshly opened stream.
    pub fn new(stream: Stream) -> Conn {
        Conn {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
            used: false,
            received: 0,
            prefix: Vec::new(),
            resume: false,
            held: None,
        }
    }

    /// Reads the answer to a request written ahead (`ahead`) if it is all here now,
    /// without the reactor and without a task (see `reap`): a whole answer when its head
    /// and its `Content-Length` body (or no body) came in one read that ended exactly at
    /// its end, and the connection stays open. Anything else read is left for the
    /// exchange to go on from.
    pub fn reap(
        &mut self,
        ahead: Written,
        answer_has_body: bool,
        region_header: &HeaderName,
        version_header: &HeaderName,
        checks: Option<&Checks>,
    ) -> Reaped {
        self.buf.clear();
        // Room for a whole answer: a read into no room would look like a close.
        self.buf.reserve(READ_CHUNK);
        self.received = 0;
        let n = match self.stream.read_now(&mut self.buf) {
            None => return Reaped::Nothing,
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                self.held = Some(e);
                self.resume = true;
                return Reaped::Started;
            }
        };
        self.received = n as u64;
        self.resume = true;
        // Body checks read the body through the exchange's own path.
        if checks.is_some_and(|c| !c.body.is_empty()) {
            return Reaped::Started;
        }
        let Ok(Some(head)) = parse_head(&self.buf, region_header, version_header, checks) else {
            return Reaped::Started;
        };
        let body = match head.body {
            _ if !answer_has_body || head.status == 204 || head.status == 304 => 0,
            BodyLen::None => 0,
            BodyLen::Length(n) => n,
            BodyLen::Chunked | BodyLen::UntilClose => return Reaped::Started,
        };
        let whole = head.status >= 200 && head.keep && (self.buf.len() - head.len) as u64 == body;
        if !whole {
            return Reaped::Started;
        }
        self.resume = false;
        self.used = true;
        self.buf.clear();
        Reaped::Whole(Answer {
            status: head.status,
            region: head.region,
            version: head.version,
            sent_ns: ahead.sent_ns,
            arrived_ns: self.stream.arrived_ns(),
            received: self.received,
            check_failed: !head.passes,
        })
    }

    /// Writes `request` now if this kept-alive connection is plain TCP and silent (see
    /// `Parked::hand`): when, and how much of it the socket took. `None` leaves the whole
    /// exchange to [`Conn::exchange`].
    pub fn write_ahead(&mut self, request: &[u8]) -> Option<Written> {
        if !self.used || self.resume || self.stream.idle_state() != Idle::Silent {
            return None;
        }
        let sent_ns = crate::send::clock::now_ns();
        let bytes = self.stream.write_now(request);
        (bytes > 0).then_some(Written { sent_ns, bytes })
    }

    /// See [`Stream::listen`].
    pub fn listen(&self, cx: &mut std::task::Context<'_>) -> bool {
        self.stream.listen(cx)
    }

    /// Sends `request` (the rest of it, if `ahead` wrote its start) and reads the whole
    /// response. On `Ok`, the flag says whether the connection may carry another request;
    /// on `Err` it must be dropped.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        ahead: Option<Written>,
        answer_has_body: bool,
        region_header: &HeaderName,
        version_header: &HeaderName,
        checks: Option<&Checks>,
    ) -> Result<(Answer, bool), ExchangeError> {
        let reused = self.used;
        // Unless `reap` read the start of this answer already.
        if !std::mem::take(&mut self.resume) {
            self.buf.clear();
            self.received = 0;
        }
        let sent_ns = self.send(request, ahead).await?;
        let head = self
            .read_head(reused, region_header, version_header, checks)
            .await?;
        let Head {
            status,
            region,
            version,
            len: head_len,
            body,
            keep,
            passes,
        } = head;
        let body = if !answer_has_body || status == 204 || status == 304 {
            BodyLen::None
        } else {
            body
        };
        // The body checks read a prefix; without them the body is only skipped.
        let capture = checks
            .filter(|c| !c.body.is_empty())
            .map_or(0, |c| c.body_bytes);
        self.prefix.clear();
        let keep = keep & self.read_body(body, head_len, capture).await?;
        let body_passes = capture == 0 || checks.map_or(true, |c| c.body_passes(&self.prefix));
        self.used = true;
        Ok((
            Answer {
                status,
                region,
                version,
                sent_ns,
                arrived_ns: self.stream.arrived_ns(),
                received: self.received,
                check_failed: !(passes && body_passes),
            },
            keep,
        ))
    }

    /// Writes `request`, or what `ahead` left of it; returns when it was sent.
    async fn send(&mut self, request: &[u8], ahead: Option<Written>) -> Result<u64, ExchangeError> {
        let reused = self.used;
        let (sent_ns, from) = match ahead {
            Some(w) => (w.sent_ns, w.bytes.min(request.len())),
            None => {
                if reused {
                    match self.stream.idle_state() {
                        Idle::Silent => {}
                        Idle::Closed => return Err(ExchangeError::Stale),
                        Idle::Unasked => return Err(ExchangeError::Unasked),
                    }
                }
                (crate::send::clock::now_ns(), 0)
            }
        };
        // Flush: a no-op on TCP, and what pushes TLS records out.
        let written = match self.stream.write_all(&request[from..]).await {
            Ok(()) => self.stream.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            return Err(match io_error(&e) {
                ExchangeError::Failed(f) => stale_or(reused, f, false),
                other => other,
            });
        }
        Ok(sent_ns)
    }

    /// Reads until a final (non-1xx) response head is complete, and parses it.
    #[inline]
    async fn read_head(
        &mut self,
        reused: bool,
        region_header: &HeaderName,
        version_header: &HeaderName,
        checks: Option<&Checks>,
    ) -> Result<Head, ExchangeError> {
        loop {
            match parse_head(&self.buf, region_header, version_header, checks) {
                Ok(Some(h)) if (100..200).contains(&h.status) => {
                    if h.status == 101 {
                        // We never ask to switch protocols.
                        return Err(ExchangeError::Failed(Failure::Malformed));
                    }
                    // Interim response (e.g. 100 Continue): drop it, look at what follows.
                    self.buf.drain(..h.len);
                }
                Ok(Some(h)) => return Ok(h),
                Ok(None) => {
                    if self.buf.len() > MAX_HEAD_BYTES {
                        return Err(ExchangeError::Failed(Failure::Malformed));
                    }
                    let had = !self.buf.is_empty();
                    let got = self.read_more().await.map_err(|e| match io_error(&e) {
                        ExchangeError::Failed(f) => stale_or(reused, f, had),
                        other => other,
                    })?;
                    if got == 0 {
                        return Err(stale_or(reused, Failure::Reset, had));
                    }
                }
                Err(()) => return Err(ExchangeError::Failed(Failure::Malformed)),
            }
        }
    }

    /// Appends what the socket has to the buffer; 0 means the peer closed.
    async fn read_more(&mut self) -> io::Result<usize> {
        if let Some(e) = self.held.take() {
            return Err(e);
        }
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(READ_CHUNK);
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        self.received += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::net::SocketAddr;
    use tokio::net::TcpListener;

    const REGION: HeaderName = HeaderName::from_static("x-echo-region");
    const VERSION: HeaderName = HeaderName::from_static("x-echo-version");

    /// Serves each of `replies` (raw bytes) in turn to requests on one connection,
    /// reading one request head before each; returns the address.
    async fn scripted(replies: Vec<Vec<u8>>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = Vec::new();
            for r in replies {
                loop {
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                    let mut tmp = [0u8; 1024];
                    let n = s.read(&mut tmp).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                }
                buf.clear();
                s.write_all(&r).await.unwrap();
            }
        });
        addr
    }

    async fn plain(addr: std::net::SocketAddr) -> Conn {
        let dial = crate::send::stream::Dial { tls: None };
        Conn::new(Stream::open(addr, &dial).await.unwrap().0)
    }

    fn req() -> Vec<u8> {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, "t".parse().unwrap());
        encode_request(
            &RequestSpec::default(),
            &PathAndQuery::from_static("/x?y=1"),
            &h,
        )
    }

    #[test]
    fn request_is_serialised_once_and_exactly() {
        assert_eq!(req(), b"GET /x?y=1 HTTP/1.1\r\nhost: t\r\n\r\n".to_vec());
    }

    #[tokio::test]
    async fn reads_length_chunked_and_keeps_the_connection() {
        let addr = scripted(vec![
            b"HTTP/1.1 200 OK\r\nx-echo-region: eu\r\nX-Echo-Version: v2\r\ncontent-length: 5\r\n\r\nhello"
                .to_vec(),
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                .to_vec(),
            b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n".to_vec(),
        ])
        .await;
        let mut c = plain(addr).await;
        let (a, keep) = c
            .exchange(&req(), None, true, &REGION, &VERSION, None)
            .await
            .unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.region.as_deref(), Some(&b"eu"[..]));
        assert_eq!(a.version.as_deref(), Some(&b"v2"[..]));
        assert!(keep);
        let (a, keep) = c
            .exchange(&req(), None, true, &REGION, &VERSION, None)
            .await
            .unwrap();
        assert_eq!(a.status, 503);
        assert_eq!(a.region, None);
        assert!(keep);
        let (a, keep) = c
            .exchange(&req(), None, true, &REGION, &VERSION, None)
            .await
            .unwrap();
        assert_eq!(a.status, 204);
        assert!(!keep, "connection: close must end reuse");
    }

    #[test]
    fn a_body_is_framed_and_follows_the_head() {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, "t".parse().unwrap());
        let spec = RequestSpec {
            method: Method::POST,
            body: Some(std::sync::Arc::from(&b"{\"a\":1}"[..])),
            ..Default::default()
        };
        let got = encode_request(&spec, &PathAndQuery::from_static("/echo"), &h);
        assert_eq!(
            got,
            b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 7\r\n\r\n{\"a\":1}".to_vec()
        );
        // A bodiless PUT still says so, or a server may wait for a body.
        let put = RequestSpec {
            method: Method::PUT,
            ..Default::default()
        };
        let got = encode_request(&put, &PathAndQuery::from_static("/"), &h);
        assert!(got.ends_with(b"content-length: 0\r\n\r\n"));
    }

    #[tokio::test]
    async fn a_head_answer_has_no_body_whatever_its_length_says() {
        let addr = scripted(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n".to_vec(),
        ])
        .await;
        let mut c = plain(addr).await;
        for _ in 0..2 {
            let (a, keep) = c
                .exchange(&req(), None, false, &REGION, &VERSION, None)
                .await
                .unwrap();
            assert_eq!(a.status, 200);
            assert!(keep, "the next answer starts right after the head");
        }
    }

    #[tokio::test]
    async fn a_large_body_streams_through_a_small_buffer() {
        let body = vec![b'z'; 1_000_000];
        let mut reply =
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
        reply.extend_from_slice(&body);
        let addr = scripted(vec![reply.clone(), reply]).await;
        let mut c = plain(addr).await;
        for _ in 0..2 {
            let (a, keep) = c
                .exchange(&req(), None, true, &REGION, &VERSION, None)
                .await
                .unwrap();
            assert_eq!(a.status, 200);
            assert!(keep);
            assert!(c.buf.capacity() <= 4 * READ_CHUNK, "{}", c.buf.capacity());
        }
    }

    #[tokio::test]
    async fn garbage_and_truncation_are_classified() {
        let addr = scripted(vec![b"SSH-2.0-nope\r\n\r\n".to_vec()]).await;
        let mut c = plain(addr).await;
        assert_eq!(
            c.exchange(&req(), None, true, &REGION, &VERSION, None)
                .await
                .unwrap_err(),
            ExchangeError::Failed(Failure::Malformed)
        );

        // Closed mid-body on a fresh connection: a reset, not a stale keep-alive.
        let addr = scripted(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc".to_vec()
        ])
        .await;
        let mut c = plain(addr).await;
        assert_eq!(
            c.exchange(&req(), None, true, &REGION, &VERSION, None)
                .await
                .unwrap_err(),
            ExchangeError::Failed(Failure::Reset)
        );
    }

    #[tokio::test]
    async fn silent_close_of_a_used_connection_is_stale() {
        let addr = scripted(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec()
        ])
        .await;
        let mut c = plain(addr).await;
        c.exchange(&req(), None, true, &REGION, &VERSION, None)
            .await
            .unwrap();
        // The scripted server has no more replies and closes.
        assert_eq!(
            c.exchange(&req(), None, true, &REGION, &VERSION, None)
                .await
                .unwrap_err(),
            ExchangeError::Stale
        );
    }

    #[tokio::test]
    async fn body_until_close_is_read_and_ends_reuse() {
        let addr = scripted(vec![b"HTTP/1.0 200 OK\r\n\r\nall of it".to_vec()]).await;
        let mut c = plain(addr).await;
        let (a, keep) = c
            .exchange(&req(), None, true, &REGION, &VERSION, None)
            .await
            .unwrap();
        assert_eq!(a.status, 200);
        assert!(!keep);
    }
}
