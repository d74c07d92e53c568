//! The response body type: a fixed buffer, or generated filler for the `size=` fault.
//!
//! One concrete type (rather than a boxed trait object) keeps the hot path free of an extra
//! allocation per response. A body can hold `/echo` budget until it has been sent (or its
//! connection is gone): that is how `/echo` bounds the memory of answers a client is slow to
//! read, not only of the requests being read. The small text and JSON responses every
//! handler builds live here too.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use hyper::body::{Frame, SizeHint};

use crate::budget::Reservation;

pub(crate) const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");
pub(crate) const CLOSE: HeaderValue = HeaderValue::from_static("close");

/// Filler for `size=` responses, sent in chunks of at most this many bytes.
static FILL: [u8; 16 * 1024] = [b'x'; 16 * 1024];

/// A held body is handed to hyper in slices of this size: hyper asks for the next slice
/// only once its write buffer has room, so the rest (and the budget) stays here until the
/// client has read nearly all of it.
const HELD_SLICE: usize = 64 * 1024;

/// A response body.
#[derive(Debug)]
pub(crate) enum Body {
    /// A complete body (taken on the first poll).
    Full(Option<Bytes>),
    /// `remaining` bytes of filler.
    Fill {
        /// Bytes still to send.
        remaining: u64,
    },
    /// A complete body that keeps its budget until it is dropped.
    Held {
        /// What is still to send.
        bytes: Bytes,
        /// Kept only for its drop, which gives the budget back.
        _budget: Reservation,
    },
}

impl Body {
    /// A body holding `bytes`.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Body::Full(None)
        } else {
            Body::Full(Some(bytes))
        }
    }

    /// `len` bytes of filler.
    pub(crate) fn fill(len: u64) -> Self {
        Body::Fill { remaining: len }
    }

    /// A body holding `bytes` and `budget` until it is sent or dropped.
    pub(crate) fn held(bytes: impl Into<Bytes>, budget: Reservation) -> Self {
        Body::Held {
            bytes: bytes.into(),
            _budget: budget,
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

#[inline]
pub(crate) fn with_type(mut resp: Response<Body>, content_type: HeaderValue) -> Response<Body> {
    resp.headers_mut().insert(CONTENT_TYPE, content_type);
    resp
}

pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = with_type(
        Response::new(Body::full(Bytes::from_static(body.as_bytes()))),
        TEXT,
    );
    *resp.status_mut() = status;
    resp
}

pub(crate) fn text_owned(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = with_type(Response::new(Body::full(body)), TEXT);
    *resp.status_mut() = status;
    resp
}
