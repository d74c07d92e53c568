//! Header-read deadlines without a timer per request (the slowloris guard).
//!
//! hyper's own `header_read_timeout` arms and cancels a timer for every request, which at
//! tens of thousands of requests per second is a measurable share of a request's cost. Here
//! each connection carries one atomic word instead, and one sweeper task per server walks the
//! connections a few times per timeout and closes those whose next request head is overdue.
//! A deadline is therefore enforced within `timeout * (1 + 1/SWEEPS)`.
//!
//! The semantics are hyper's: a connection must deliver a complete request head within the
//! timeout of being accepted or of its last response, so a silent client, a slowloris and an
//! idle keep-alive connection are all closed after it. The word holds one of:
//!
//! - *waiting since T*: set at accept, and refreshed by every write of a response (a response
//!   still streaming to a slow reader keeps its connection);
//! - *in service*: the service function was called, so the head is complete; a request body
//!   that arrives slowly is not cut off;
//! - *exempt*: HTTP/2, whose idle connections are kept alive by PINGs; only the first request
//!   is held to the deadline.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

const IN_SERVICE: u64 = 0;
const EXEMPT: u64 = 1;
/// Timestamps are stored offset by this so they never collide with the states above.
const STAMP_BASE: u64 = 2;
/// Sweeps per timeout.
const SWEEPS: u32 = 4;

/// One connection's deadline state, shared by its IO wrapper, its service and the sweeper.
#[derive(Debug)]
pub(crate) struct Watch {
    word: AtomicU64,
    epoch: Instant,
    close: Notify,
}

impl Watch {
    fn stamp(&self) -> u64 {
        STAMP_BASE + self.epoch.elapsed().as_millis() as u64
    }

    /// A request's head is complete (called from the service function).
    pub(crate) fn in_service(&self, http2: bool) {
        let state = if http2 { EXEMPT } else { IN_SERVICE };
        if self.word.load(Ordering::Relaxed) != state {
            self.word.store(state, Ordering::Relaxed);
        }
    }

    /// Resolves when the sweeper has found this connection's head overdue.
    pub(crate) async fn expired(&self) {
        self.close.notified().await;
    }

    fn on_write(&self) {
        if self.word.load(Ordering::Relaxed) != EXEMPT {
            self.word.store(self.stamp(), Ordering::Relaxed);
        }
    }

    fn overdue(&self, now_ms: u64, timeout_ms: u64) -> bool {
        let w = self.word.load(Ordering::Relaxed);
        w >= STAMP_BASE && now_ms.saturating_sub(w - STAMP_BASE) >= timeout_ms
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
        let w = Arc::new(Watch {
            word: AtomicU64::new(IN_SERVICE),
            epoch: self.epoch,
            close: Notify::new(),
        });
        w.word.store(w.stamp(), Ordering::Relaxed);
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
                // A stored permit: the connection task may be busy and see it next poll.
                w.close.notify_one();
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

    fn watch_at(word: u64) -> Watch {
        Watch {
            word: AtomicU64::new(word),
            epoch: Instant::now(),
            close: Notify::new(),
        }
    }

    #[test]
    fn a_head_is_overdue_only_while_the_connection_waits_for_one() {
        let w = watch_at(STAMP_BASE + 100);
        assert!(!w.overdue(150, 100));
        assert!(w.overdue(200, 100));
        w.in_service(false);
        assert!(
            !w.overdue(u64::MAX / 2, 100),
            "a request in service has no head deadline"
        );
        w.on_write();
        let since = w.word.load(Ordering::Relaxed);
        assert!(
            since >= STAMP_BASE,
            "a response restarts the wait for the next head"
        );
        assert!(w.overdue(since - STAMP_BASE + 100, 100));
    }

    #[test]
    fn http2_connections_are_exempt_after_their_first_request() {
        let w = watch_at(STAMP_BASE);
        w.in_service(true);
        w.on_write();
        assert!(!w.overdue(u64::MAX / 2, 1));
    }
}
