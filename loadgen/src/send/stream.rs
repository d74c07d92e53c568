//! A connection's byte stream: plain TCP, or TLS over it for `https://` targets.
//!
//! An enum rather than a boxed trait object: the hot path reads and writes through a
//! `match` the compiler sees through, and a plain-HTTP run pays nothing for TLS. Opening
//! a TLS stream includes the handshake, so its cost lands in the latency of the request
//! that needed the connection, exactly as the TCP connect does.

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
}

impl From<Failure> for DialError {
    fn from(failure: Failure) -> DialError {
        DialError { failure, tls: None }
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
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Connects (`TCP_NODELAY`: requests are single small writes), then shakes hands.
    pub async fn open(addr: SocketAddr, dial: &Dial) -> Result<(Stream, Handshake), DialError> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| io_failure(&e))?;
        let _ = tcp.set_nodelay(true);
        let Some((config, name)) = &dial.tls else {
            return Ok((Stream::Plain(tcp), Handshake::None));
        };
        let tls = TlsConnector::from(config.clone())
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| DialError {
                failure: Failure::Tls,
                tls: Some(e.to_string()),
            })?;
        let kind = match tls.get_ref().1.handshake_kind() {
            Some(rustls::HandshakeKind::Resumed) => Handshake::Resumed,
            _ => Handshake::Full,
        };
        Ok((Stream::Tls(Box::new(tls)), kind))
    }

    /// Whether an idle keep-alive connection is still silent. Bytes waiting on it belong
    /// to no request of ours, and EOF (or a TLS close) means the server closed it.
    pub fn idle_and_open(&mut self) -> bool {
        match self {
            Stream::Plain(s) => {
                let mut probe = [0u8; 1];
                matches!(s.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            Stream::Tls(s) => {
                // One poll without a real waker: rustls consumes what is not application
                // data (session tickets, key updates) and answers Pending if nothing
                // else is there. The next real read registers a real waker.
                let mut probe = [0u8; 1];
                let mut buf = ReadBuf::new(&mut probe);
                let mut cx = Context::from_waker(&NOOP_WAKER);
                matches!(
                    Pin::new(s.as_mut()).poll_read(&mut cx, &mut buf),
                    Poll::Pending
                )
            }
        }
    }
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
