//! Which HTTP a run speaks: `--http auto|1.1|2` (`--http2` for short) and `--max-streams`.
//!
//! | `--http` | `https://` target | `http://` target |
//! |---|---|---|
//! | `auto` (default) | ALPN offers `h2` and `http/1.1`; the server chooses | HTTP/1.1 |
//! | `1.1` | ALPN offers `http/1.1` only | HTTP/1.1 |
//! | `2` | ALPN offers `h2` only; a server that does not choose it fails the handshake | h2c with prior knowledge |
//!
//! A plain `http://` target is never upgraded (`Upgrade: h2c` is gone from RFC 9113):
//! h2c is asked for, with `--http 2`.

use crate::error::UsageError;

/// Streams per HTTP/2 connection when the server allows more (RFC 9113 recommends a
/// limit of at least 100; Envoy, Istio's sidecar, announces 2^31-1, which would put a
/// whole run on one connection).
pub const DEFAULT_MAX_STREAMS: u32 = 100;
/// The most `--max-streams` may ask for.
pub const MAX_STREAMS_CAP: u32 = 1000;

/// `--http`: the HTTP versions a run may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum HttpVersion {
    /// `https://` lets the server choose by ALPN; `http://` speaks HTTP/1.1.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    #[value(name = "1.1")]
    Http1,
    /// HTTP/2 only: by ALPN over TLS, with prior knowledge (h2c) over plain TCP.
    #[value(name = "2")]
    Http2,
}

impl HttpVersion {
    /// What the TLS handshake offers by ALPN, most wanted first.
    pub fn alpn(self) -> Vec<Vec<u8>> {
        match self {
            HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
            HttpVersion::Http2 => vec![b"h2".to_vec()],
        }
    }

    /// How a target's connections pick their protocol (`tls`: it is `https://`).
    pub fn mode(self, tls: bool) -> H2Mode {
        match (self, tls) {
            (HttpVersion::Http1, _) | (HttpVersion::Auto, false) => H2Mode::Never,
            (HttpVersion::Auto, true) => H2Mode::Alpn,
            (HttpVersion::Http2, true) => H2Mode::AlpnOnly,
            (HttpVersion::Http2, false) => H2Mode::PriorKnowledge,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Auto => "auto",
            HttpVersion::Http1 => "1.1",
            HttpVersion::Http2 => "2",
        }
    }
}

/// How one target's connections come to speak HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H2Mode {
    /// Never: HTTP/1.1.
    Never,
    /// If the server chooses `h2` by ALPN; HTTP/1.1 otherwise.
    Alpn,
    /// Only by ALPN: a server that does not choose `h2` fails the connection.
    AlpnOnly,
    /// h2c: HTTP/2 from the first byte over plain TCP.
    PriorKnowledge,
}

/// `--max-streams`: 0 takes the server's limit (up to [`DEFAULT_MAX_STREAMS`]).
pub fn max_streams(asked: u32) -> Result<u32, UsageError> {
    match asked {
        0 => Ok(DEFAULT_MAX_STREAMS),
        n if n <= MAX_STREAMS_CAP => Ok(n),
        n => Err(UsageError::new(format!(
            "--max-streams {n}: at most {MAX_STREAMS_CAP} streams per connection"
        ))),
    }
}
