//! The response body type: a fixed buffer, or generated filler for the `size=` fault.
//!
//! One concrete type (rather than a boxed trait object) keeps the hot path free of an extra
//! allocation per response. A body can hold a permit from a semaphore until it has been
//! sent (or its connection is gone): that is how `/echo` bounds the memory of answers a
//! client is slow to read, not only of the requests being read.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

/// Filler for `size=` responses, sent in chunks of at most this many bytes.
static FILL: [u8; 16 * 1024] = [b'x'; 16 * 1024];

/// A held body is handed to hyper in slices of this size: hyper asks for the next slice
/// only once its write buffer has room, so the rest (and the permit) stays here until the
/// client has read nearly all of it.
const HELD_SLICE: usize = 64 * 1024;

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
    /// A complete body that keeps a permit until it is dropped.
    Held {
        /// What is still to send.
        bytes: Bytes,
        /// Kept only for its drop, which frees the slot.
        _permit: tokio::sync::OwnedSemaphorePermit,
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

    /// A body holding `bytes` and `permit` until it is sent or dropped.
    pub fn held(bytes: impl Into<Bytes>, permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        Body::Held {
            bytes: bytes.into(),
            _permit: permit,
        }
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
            Body::Held { bytes, .. } => {
                if bytes.is_empty() {
                    return Poll::Ready(None);
                }
                // Zero-copy: the slice shares the buffer.
                let n = bytes.len().min(HELD_SLICE);
                Poll::Ready(Some(Ok(Frame::data(bytes.split_to(n)))))
            }
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
            Body::Held { bytes, .. } => bytes.is_empty(),
            Body::Fill { remaining } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Held { bytes, .. } => SizeHint::with_exact(bytes.len() as u64),
            Body::Fill { remaining } => SizeHint::with_exact(*remaining),
        }
    }
}
