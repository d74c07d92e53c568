//! A connection's byte stream: plain TCP, or TLS over it for `https://` targets.
//!
//! An enum rather than a boxed trait object: the hot path reads and writes through a
//! `match` the compiler sees through, and a plain-HTTP run pays nothing for TLS. Opening
//! a TLS stream includes the handshake, so its cost lands in the latency of the request
//! that needed the connection, exactly as the TCP connect does.
//!
//! Every TCP socket asks the kernel to stamp each segment's arrival (`SO_TIMESTAMPNS`)
//! and reads with `recvmsg`, keeping the arrival time of the last segment each read
//! consumed. The dispatcher may leave answers in their sockets while it sleeps until the
//! next send (one wake-up for both, see `worker`); the stamp keeps that wait out of the
//! measured latency. tokio's `TcpStream` cannot return control messages, hence the
//! hand-written read (`Tcp::poll_read`). That is Linux only: elsewhere (macOS has no
//! `SO_TIMESTAMPNS`) reads go through tokio's own, answers are timed when read, and the
//! worker never holds its sleeps (`arrival`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::results::Failure;

/// Maps an I/O error to its accounting bucket.
pub fn io_failure(e: &io::Error) -> Failure {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => Failure::Refused,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            Failure::Reset
        }
        K::InvalidData => Failure::Malformed,
        K::TimedOut => Failure::Timeout,
        _ => Failure::OtherTransport,
    }
}

/// Where and how to open a target's connections.
#[derive(Debug, Clone)]
pub struct Dial {
    pub tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub struct DialError {
    pub failure: Failure,
    /// The TLS error, for the report's one line about it.
    pub tls: Option<String>,
    /// loadgen itself had no file descriptor left for the socket.
    pub fd_exhausted: bool,
}

impl DialError {
    /// A failed TCP connect: the kernel giving up on a SYN is a connect timeout, and no
    /// descriptor for the socket is loadgen's own limit, not the target's doing.
    fn connect(e: &io::Error) -> DialError {
        let fd_exhausted = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
        let failure = match e.kind() {
            io::ErrorKind::TimedOut => Failure::ConnectTimeout,
            _ => io_failure(e),
        };
        DialError {
            failure,
            tls: None,
            fd_exhausted,
        }
    }
}

/// How a TLS handshake went, for the report's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    None,
    Full,
    Resumed,
}

#[derive(Debug)]
pub enum Stream {
    Plain(Tcp),
    Tls(Box<TlsStream<Tcp>>),
}

/// A TCP stream whose reads carry the kernel's arrival time of the data they return.
#[derive(Debug)]
pub struct Tcp {
    inner: TcpStream,
    /// Monotonic ns at which the last segment consumed by the latest read arrived; 0
    /// until a stamped read.
    arrived_ns: u64,
}

impl Tcp {
    fn new(inner: TcpStream) -> Tcp {
        #[cfg(target_os = "linux")]
        if super::arrival::stamps_wanted() {
            crate::stamps::kernel::enable(std::os::fd::AsRawFd::as_raw_fd(&inner));
        }
        Tcp {
            inner,
            arrived_ns: 0,
        }
    }
}

#[cfg(target_os = "linux")]
impl AsyncRead for Tcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        stamped_read::poll_read(self.get_mut(), cx, buf)
    }
}

/// Without kernel stamps: tokio's read, and the answer timed when read.
#[cfg(not(target_os = "linux"))]
impl AsyncRead for Tcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

/// Linux's reads through tokio's readiness that keep the kernel's arrival stamp
/// (`stamps::kernel`).
#[cfg(target_os = "linux")]
mod stamped_read {
    use std::io;
    use std::os::fd::AsRawFd as _;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;

    use super::Tcp;

    /// A read that keeps the arrival stamp of the data it returns.
    pub(super) fn poll_read(
        me: &mut Tcp,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            std::task::ready!(me.inner.poll_read_ready(cx))?;
            let fd = me.inner.as_raw_fd();
            // SAFETY: recvmsg only writes initialised bytes into the part it reports.
            let unfilled = unsafe { buf.unfilled_mut() };
            let room = unfilled.len();
            // A short read drained the socket: it is reported as WouldBlock so that tokio
            // clears the readiness now (as its own TcpStream does), and the idle probe
            // before the next request costs no syscall. Data arriving later raises a
            // fresh readiness at the next poll, which that clear does not touch.
            let mut drained = None;
            let read = me.inner.try_io(tokio::io::Interest::READABLE, || {
                let (n, stamp) = crate::stamps::kernel::recv_stamped(fd, unfilled)?;
                if n > 0 && n < room {
                    drained = Some((n, stamp));
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok((n, stamp))
            });
            let read = match (read, drained) {
                (_, Some(got)) => Ok(got),
                (r, None) => r,
            };
            match read {
                Ok((n, stamp)) => {
                    // SAFETY: the kernel wrote `n` bytes at the start of `unfilled`.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    if stamp != 0 {
                        me.arrived_ns = crate::send::clock::stamp_to_monotonic(stamp);
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// See [`Stream::read_now`].
    pub(super) fn read_now(me: &mut Tcp, buf: &mut Vec<u8>) -> Option<io::Result<usize>> {
        let fd = me.inner.as_raw_fd();
        let have = buf.len();
        match crate::stamps::kernel::recv_stamped(fd, buf.spare_capacity_mut()) {
            Ok((n, stamp)) => {
                // SAFETY: the kernel wrote `n` bytes at the start of the spare room.
                unsafe { buf.set_len(have + n) };
                if stamp != 0 {
                    me.arrived_ns = crate::send::clock::stamp_to_monotonic(stamp);
                }
                Some(Ok(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Stream {
    /// Connects (`TCP_NODELAY`: requests are single small writes), then shakes hands.
    pub async fn open(addr: SocketAddr, dial: &Dial) -> Result<(Stream, Handshake), DialError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| DialError::connect(&e))?;
        let _ = tcp.set_nodelay(true);
        let tcp = Tcp::new(tcp);
        let Some((config, name)) = &dial.tls else {
            return Ok((Stream::Plain(tcp), Handshake::None));
        };
        let tls = TlsConnector::from(config.clone())
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| DialError {
                failure: Failure::Tls,
                tls: Some(alpn_hint(e.to_string())),
                fd_exhausted: false,
            })?;
        let kind = match tls.get_ref().1.handshake_kind() {
            Some(rustls::HandshakeKind::Resumed) => Handshake::Resumed,
            _ => Handshake::Full,
        };
        Ok((Stream::Tls(Box::new(tls)), kind))
    }

    /// Whether the server chose HTTP/2 by ALPN.
    pub fn alpn_h2(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(s) => s.get_ref().1.alpn_protocol() == Some(b"h2".as_slice()),
        }
    }

    /// When the data of the latest read arrived (monotonic ns), or 0 if not stamped.
    pub fn arrived_ns(&self) -> u64 {
        match self {
            Stream::Plain(s) => s.arrived_ns,
            Stream::Tls(s) => s.get_ref().0.arrived_ns,
        }
    }

    /// Registers the task polling with `cx` for this idle connection's next readiness:
    /// true when it now waits for it (nothing arrived since its last read drained the
    /// socket), so the answer to a request written meanwhile wakes that task. TLS
    /// connections never take requests written ahead (`Conn::write_ahead`).
    pub fn listen(&self, cx: &mut Context<'_>) -> bool {
        match self {
            Stream::Plain(s) => s.inner.poll_read_ready(cx).is_pending(),
            Stream::Tls(_) => false,
        }
    }

    /// Reads what a plain socket holds now into `buf`'s spare room, with its arrival
    /// stamp, without the reactor (see `reap`): `None` when nothing is there yet, or on
    /// TLS, or where reads carry no stamps (not Linux). Reading before the reactor polls
    /// leaves it nothing to report for this socket: its edge-triggered epoll skips a
    /// socket whose data is gone, so the connection's task is not woken for it.
    pub fn read_now(&mut self, buf: &mut Vec<u8>) -> Option<io::Result<usize>> {
        match self {
            #[cfg(target_os = "linux")]
            Stream::Plain(s) => stamped_read::read_now(s, buf),
            _ => {
                let _ = buf;
                None
            }
        }
    }

    /// Writes what the socket takes of `bytes` at once, on plain TCP only; the count
    /// written (0 for none, an error included: the connection's task meets it again).
    pub fn write_now(&self, bytes: &[u8]) -> usize {
        match self {
            Stream::Plain(s) => s.inner.try_write(bytes).unwrap_or(0),
            Stream::Tls(_) => 0,
        }
    }

    /// What an idle keep-alive connection holds before it is reused. On plain TCP this costs
    /// a syscall only when the reactor has seen the socket become readable since its last
    /// read drained it (see `Tcp::poll_read`); otherwise it is a readiness check in memory.
    pub fn idle_state(&mut self) -> Idle {
        match self {
            Stream::Plain(s) => {
                let mut probe = [0u8; 1];
                match s.inner.try_read(&mut probe) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Idle::Silent,
                    Ok(n) if n > 0 => Idle::Unasked,
                    _ => Idle::Closed,
                }
            }
            Stream::Tls(s) => {
                // One poll without a real waker: rustls consumes what is not application
                // data (session tickets, key updates) and answers Pending if nothing
                // else is there. The next real read registers a real waker.
                let mut probe = [0u8; 1];
                let mut buf = ReadBuf::new(&mut probe);
                let mut cx = Context::from_waker(&NOOP_WAKER);
                match Pin::new(s.as_mut()).poll_read(&mut cx, &mut buf) {
                    Poll::Pending => Idle::Silent,
                    Poll::Ready(Ok(())) if !buf.filled().is_empty() => Idle::Unasked,
                    Poll::Ready(_) => Idle::Closed,
                }
            }
        }
    }
}

/// A handshake refused for want of a common ALPN protocol says which flag decides it.
fn alpn_hint(msg: String) -> String {
    if msg.contains("NoApplicationProtocol") {
        format!("{msg} (the server speaks none of the protocols --http offers)")
    } else {
        msg
    }
}

/// What an idle connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Nothing: it can carry the next request.
    Silent,
    /// The server closed it (the usual keep-alive race).
    Closed,
    /// Bytes nobody asked for: the server answered a request twice, or late.
    Unasked,
}

/// A waker that does nothing, for the one-poll idle probe (`Waker::noop` needs a newer
/// Rust than the workspace's minimum).
static NOOP_WAKER: std::sync::LazyLock<std::task::Waker> = std::sync::LazyLock::new(|| {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    std::task::Waker::from(Arc::new(Noop))
});

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
