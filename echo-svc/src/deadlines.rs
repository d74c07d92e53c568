//! Connection deadlines without a timer per request (the slowloris guard), and each
//! connection's share of the `/echo` body budget.
//!
//! hyper's own `header_read_timeout` arms and cancels a timer for every request, which at
//! tens of thousands of requests per second is a measurable share of a request's cost. Here
//! each connection carries a few atomics instead, and one sweeper task per server walks the
//! connections a few times per timeout and closes those that are overdue. A deadline is
//! therefore enforced within `timeout * (1 + 1/SWEEPS)`.
//!
//! A connection is overdue when, for the whole timeout, it has
//!
//! - had no request in service since it was accepted or since its last answer was handed
//!   over (an HTTP/1 keep-alive or HTTP/2 connection gone idle, a silent client, a
//!   slowloris); or
//! - over HTTP/1, been sending an answer that made no progress (a client that stopped
//!   reading).
//!
//! What counts is the service's own progress, never a raw write: an HTTP/2 PING ACK or an
//! HTTP/1 `100 Continue` does not keep a connection. A request in service (its body still
//! arriving, a delay fault running) is held to `--body-read-timeout` and the fault caps
//! instead; an HTTP/2 stream's unread `/echo` answer to [`crate::echo`]'s send deadline.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// Sweeps per timeout.
const SWEEPS: u32 = 4;

/// One connection's state, shared by its IO wrapper, its service and the sweeper.
#[derive(Debug)]
pub(crate) struct Watch {
    /// Requests whose service was called and whose answer body is not yet dropped.
    active: AtomicU32,
    /// HTTP/1 only: the one active request's answer is being written.
    sending: AtomicBool,
    /// Milliseconds since `epoch` of the last progress: accept, an answer handed over, or
    /// (while `sending`) a write.
    since: AtomicU64,
    epoch: Instant,
    close: Notify,
    /// Bytes of the `/echo` body budget this connection holds.
    pub(crate) body_bytes: AtomicUsize,
}

impl Watch {
    fn new(epoch: Instant) -> Self {
        let w = Watch {
            active: AtomicU32::new(0),
            sending: AtomicBool::new(false),
            since: AtomicU64::new(0),
            epoch,
            close: Notify::new(),
            body_bytes: AtomicUsize::new(0),
        };
        w.touch();
        w
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.since.store(now, Ordering::Relaxed);
    }

    /// A request's head is complete: the service was called. The returned guard, moved into
    /// the answer's body, ends the request when hyper drops that body.
    pub(crate) fn begin(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.sending.store(false, Ordering::Relaxed);
        Active(self.clone())
    }

    /// Close this connection at the next poll of its task (a send deadline passed).
    pub(crate) fn close_now(&self) {
        // A stored permit: the connection task may be busy and see it next poll.
        self.close.notify_one();
    }

    /// Resolves when this connection is to be closed.
    pub(crate) async fn expired(&self) {
        self.close.notified().await;
    }

    fn on_write(&self) {
        if self.sending.load(Ordering::Relaxed) {
            self.touch();
        }
    }

    fn overdue(&self, now_ms: u64, timeout_ms: u64) -> bool {
        let waiting =
            self.active.load(Ordering::Relaxed) == 0 || self.sending.load(Ordering::Relaxed);
        let since = self.since.load(Ordering::Relaxed);
        waiting && now_ms.saturating_sub(since) >= timeout_ms
    }
}

/// One request in service on a connection; see [`Watch::begin`].
#[derive(Debug)]
pub(crate) struct Active(Arc<Watch>);

impl Active {
    /// The service returned its answer. Over HTTP/1 the connection now waits on the client
    /// reading it; HTTP/2 streams are paced by flow control, which has its own deadline.
    pub(crate) fn answered(&self, http2: bool) {
        if !http2 {
            self.0.touch();
            self.0.sending.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.sending.store(false, Ordering::Relaxed);
        if self.0.active.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.touch();
        }
    }
}

/// An answer body that ends its request's [`Active`] when hyper drops it.
#[derive(Debug)]
pub(crate) struct Tracked<B> {
    inner: B,
    _active: Active,
}

impl<B> Tracked<B> {
    pub(crate) fn new(inner: B, active: Active) -> Self {
        Self {
            inner,
            _active: active,
        }
    }
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connections of one server and their sweeper.
#[derive(Debug)]
pub(crate) struct Deadlines {
    timeout: Duration,
    epoch: Instant,
    conns: Mutex<Vec<Weak<Watch>>>,
}

impl Deadlines {
    /// Starts the sweeper on the current runtime; it ends when the last `Arc` is dropped.
    pub(crate) fn start(timeout: Duration) -> Arc<Self> {
        let this = Arc::new(Self {
            timeout,
            epoch: Instant::now(),
            conns: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&this);
        let every = (timeout / SWEEPS).max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(d) => d.sweep(),
                    None => return,
                }
            }
        });
        this
    }

    /// Registers a freshly accepted connection; its first head is due from now.
    pub(crate) fn watch(&self) -> Arc<Watch> {
        let w = Arc::new(Watch::new(self.epoch));
        if let Ok(mut conns) = self.conns.lock() {
            conns.push(Arc::downgrade(&w));
        }
        w
    }

    fn sweep(&self) {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let timeout_ms = self.timeout.as_millis() as u64;
        let Ok(mut conns) = self.conns.lock() else {
            return;
        };
        conns.retain(|weak| match weak.upgrade() {
            Some(w) if w.overdue(now_ms, timeout_ms) => {
                w.close_now();
                false
            }
            Some(_) => true,
            None => false,
        });
    }
}

/// A connection's stream, reporting writes to its [`Watch`].
#[derive(Debug)]
pub(crate) struct Watched<S> {
    inner: S,
    watch: Arc<Watch>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, watch: Arc<Watch>) -> Self {
        Self { inner, watch }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.on_write();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.on_write();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overdue_after(w: &Watch, ms: u64) -> bool {
        w.overdue(w.since.load(Ordering::Relaxed) + ms, 100)
    }

    #[test]
    fn a_connection_is_overdue_only_while_it_waits_for_a_request() {
        let w = Arc::new(Watch::new(Instant::now()));
        assert!(!overdue_after(&w, 50));
        assert!(overdue_after(&w, 100));
        let active = w.begin();
        assert!(
            !overdue_after(&w, u64::MAX / 4),
            "a request in service has no head deadline"
        );
        w.on_write();
        assert!(
            !overdue_after(&w, u64::MAX / 4),
            "a write during service (100 Continue) does not restart the wait"
        );
        drop(active);
        assert!(
            overdue_after(&w, 100),
            "the answer handed over starts the wait"
        );
    }

    #[test]
    fn writes_keep_only_an_answer_being_sent() {
        let w = Arc::new(Watch::new(Instant::now()));
        let active = w.begin();
        active.answered(false);
        assert!(overdue_after(&w, 100), "an answer not read for the timeout");
        w.on_write();
        assert!(!overdue_after(&w, 50));
        drop(active);
        w.on_write();
        assert!(
            overdue_after(&w, 100),
            "a write while idle (a PING ACK) keeps nothing"
        );
    }

    #[test]
    fn http2_connections_are_free_while_streams_are_open_and_timed_when_idle() {
        let w = Arc::new(Watch::new(Instant::now()));
        let a = w.begin();
        let b = w.begin();
        a.answered(true);
        drop(a);
        assert!(!overdue_after(&w, u64::MAX / 4), "one stream still open");
        drop(b);
        assert!(overdue_after(&w, 100));
    }
}
