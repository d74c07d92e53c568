//! The response body type: a fixed buffer, or generated filler for the `size=` fault.
//!
//! One concrete type (rather than a boxed trait object) keeps the hot path free of an extra
//! allocation per response.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

/// Filler for `size=` responses, sent in chunks of at most this many bytes.
static FILL: [u8; 16 * 1024] = [b'x'; 16 * 1024];

/// A response body.
#[derive(Debug)]
pub enum Body {
    /// A complete body (taken on the first poll).
    Full(Option<Bytes>),
    /// `remaining` bytes of filler.
    Fill {
        /// Bytes still to send.
        remaining: u64,
    },
}

impl Body {
    /// A body holding `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Body::Full(None)
        } else {
            Body::Full(Some(bytes))
        }
    }

    /// `len` bytes of filler.
    pub fn fill(len: u64) -> Self {
        Body::Fill { remaining: len }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Fill { remaining } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(FILL.len());
                *remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&FILL[..n])))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(bytes) => bytes.is_none(),
            Body::Fill { remaining } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Fill { remaining } => SizeHint::with_exact(*remaining),
        }
    }
}
