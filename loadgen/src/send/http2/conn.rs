//! The parts of an HTTP/2 connection the worker's state holds: the connection with its
//! streams' count and limit, the request template, and the byte stream that keeps the
//! kernel's arrival stamps. Nothing here drives a request (that is `http2` and its
//! `exchange`), so the state can hold these without depending on the engine's tasks.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::HeaderMap;
use http::{Method, Request, Uri};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::pool::H2Stats;
use crate::send::stream::Stream;

/// One open HTTP/2 connection of a target's pool.
pub(in crate::send) struct H2Conn {
    pub(super) send: h2::client::SendRequest<Bytes>,
    /// Streams in flight on it.
    pub(super) active: Cell<u32>,
    /// Its stream limit as last read (the server's, capped by `cap`).
    pub(super) limit: Cell<u32>,
    /// `--max-streams`.
    pub(super) cap: u32,
    /// It takes no new streams: its connection ended, or the server refused a stream.
    pub(super) closed: Cell<bool>,
    /// When the data of its latest read arrived (kernel stamp, monotonic ns; 0 unstamped).
    pub(super) arrived: Rc<Cell<u64>>,
}

impl H2Conn {
    /// Whether it can take one more stream now. A limit lower than the streams it
    /// carries is a server lowering it, and counted.
    pub(super) fn has_room(&self, h: &mut H2Stats) -> bool {
        if self.closed.get() {
            return false;
        }
        let server = u32::try_from(self.send.current_max_send_streams()).unwrap_or(u32::MAX);
        let limit = server.min(self.cap);
        if limit != self.limit.get() {
            h.limit_lowered += u64::from(limit < self.limit.get() && self.active.get() > limit);
            h.least_limit = least(h.least_limit, limit);
            self.limit.set(limit);
        }
        self.active.get() < limit
    }

    /// The server said it takes no more streams: none go to it, and the server ending
    /// it is counted once.
    pub(super) fn going_away(&self, h: &mut H2Stats) {
        if !self.closed.replace(true) {
            h.server_closed += 1;
        }
    }

    /// One more stream on it.
    pub(super) fn take(&self, h: &mut H2Stats) {
        let n = self.active.get() + 1;
        self.active.set(n);
        h.peak_streams = h.peak_streams.max(u64::from(n));
    }
}

/// The lesser limit, 0 standing for none seen yet.
pub(super) fn least(known: u64, limit: u32) -> u64 {
    match known {
        0 => u64::from(limit),
        k => k.min(u64::from(limit)),
    }
}

/// A target's request as HTTP/2 sends it: built once, copied per request (`http`'s
/// request type is not `Clone`).
#[derive(Debug, Clone)]
pub(in crate::send) struct H2Request {
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    /// The head's size as HPACK counts it (RFC 7541 4.1: name, value and 32 per field)
    /// plus the body: what `bytes_sent` counts per request (frames' own bytes left out).
    pub(in crate::send) size: u64,
}

/// Headers HTTP/2 forbids (RFC 9113 8.2.2); `Host` becomes the `:authority` of the URI.
const CONNECTION_HEADERS: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
];

impl H2Request {
    pub(in crate::send) fn new(
        method: Method,
        uri: Uri,
        mut headers: HeaderMap,
        body: Option<&[u8]>,
    ) -> H2Request {
        for name in CONNECTION_HEADERS {
            headers.remove(name);
        }
        let body = Bytes::copy_from_slice(body.unwrap_or(&[]));
        let pseudo = method.as_str().len() + uri.to_string().len() + 32 * 4;
        let head: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        H2Request {
            size: (pseudo + head + body.len()) as u64,
            method,
            uri,
            headers,
            body,
        }
    }

    pub(super) fn build(&self) -> Request<()> {
        let mut r = Request::new(());
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.uri.clone();
        *r.headers_mut() = self.headers.clone();
        r
    }
}

/// A connection's stream for `h2`, keeping the kernel's arrival stamp of the latest read
/// where the streams' tasks can see it (the connection's task does the reading).
pub(super) struct Stamped {
    pub(super) inner: Stream,
    pub(super) arrived: Rc<Cell<u64>>,
}

impl AsyncRead for Stamped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_read(cx, buf);
        if r.is_ready() {
            me.arrived.set(me.inner.arrived_ns());
        }
        r
    }
}

impl AsyncWrite for Stamped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
