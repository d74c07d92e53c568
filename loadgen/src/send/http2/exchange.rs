//! One HTTP/2 request and its answer, on a stream of an open connection: the request
//! built from the target's template, its body sent as the server's flow-control window
//! allows, the answer's head checked and its body read (and released back to the
//! window) as HTTP/1.1's is, and what went wrong sorted into the accounting's buckets.

use std::task::Poll;

use bytes::Bytes;
use h2::Reason;
use http::header::HeaderName;

use super::conn::H2Conn;
use crate::configured::checks::Checks;
use crate::results::Failure;
use crate::send::clock::now_ns;
use crate::send::head::Label;
use crate::send::http1::Answer;
use crate::send::state::{Sendable, Worker};
use crate::send::stream::io_failure;

/// Why a stream failed.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::send) enum StreamError {
    /// The server did not process it: safe to send again. `going_away`: its connection
    /// takes no more streams (a graceful GOAWAY, or it refused to open one), as opposed
    /// to one REFUSED_STREAM reset.
    Refused { going_away: bool },
    /// The server reset the stream after taking it.
    Reset,
    /// A failure of the connection, counted in its bucket.
    Failed(Failure),
    /// TLS failed under the connection, with what rustls said.
    Tls(String),
}

/// Sorts an `h2` error: the server's refusals and resets apart, I/O by its kind, and a
/// server breaking the protocol (bad frames, HPACK, header floods) as malformed.
pub(super) fn sort(e: &h2::Error) -> StreamError {
    let going_away = e.is_go_away() && e.reason() == Some(Reason::NO_ERROR);
    let refused = e.is_reset() && e.reason() == Some(Reason::REFUSED_STREAM);
    if e.is_remote() && (going_away || refused) {
        return StreamError::Refused { going_away };
    }
    if e.is_remote() && e.is_reset() {
        return StreamError::Reset;
    }
    if let Some(io) = e.get_io() {
        return match io.get_ref().filter(|i| i.is::<rustls::Error>()) {
            Some(tls) => StreamError::Tls(tls.to_string()),
            None => StreamError::Failed(io_failure(io)),
        };
    }
    if e.is_remote() && e.is_go_away() {
        // A GOAWAY with an error: the stream may have been processed.
        return StreamError::Failed(Failure::Reset);
    }
    if e.is_library() || e.is_go_away() {
        return StreamError::Failed(Failure::Malformed);
    }
    StreamError::Failed(Failure::OtherTransport)
}

/// Sends `req` on a new stream of `c` and reads the whole answer.
pub(in crate::send) async fn exchange(
    c: &H2Conn,
    wk: &Worker,
    ti: usize,
    req: &Sendable,
    checks: Option<&Checks>,
) -> Result<Answer, StreamError> {
    // An error before the request left (the connection going away, out of stream ids)
    // means the server never saw it.
    let refused = |_| StreamError::Refused { going_away: true };
    let mut send = c.send.clone().ready().await.map_err(refused)?;
    let sent_ns = now_ns();
    let body = req.h2.body.clone();
    let (answer, mut tx) = send
        .send_request(req.h2.build(), body.is_empty())
        .map_err(refused)?;
    if !body.is_empty() {
        // Counted when it happens: a stall that ends in a timeout never returns here.
        let stalled = || wk.rec.borrow_mut().h2(ti).flow_stalls += 1;
        send_body(&mut tx, body, stalled)
            .await
            .map_err(|e| sort(&e))?;
    }
    let answer = answer.await.map_err(|e| sort(&e))?;
    let (head, mut body) = answer.into_parts();
    let status = head.status.as_u16();
    let label = |name: &HeaderName| {
        head.headers
            .get(name)
            .map(|v| Label::from_slice(v.as_bytes()))
    };
    let passes = checks.map_or(true, |c| {
        c.status_passes(status) && c.headers_pass(|n| head.headers.get(n).map(|v| v.as_bytes()))
    });
    let capture = checks
        .filter(|c| !c.body.is_empty())
        .map_or(0, |c| c.body_bytes);
    let mut prefix = Vec::new();
    let mut received: u64 = head
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().len() + v.len() + 32) as u64)
        .sum();
    while let Some(data) = body.data().await {
        let data = data.map_err(|e| sort(&e))?;
        received += data.len() as u64;
        let room = capture.saturating_sub(prefix.len());
        prefix.extend_from_slice(&data[..data.len().min(room)]);
        // Hands the bytes back to the window, or the server stalls once it is spent.
        let _ = body.flow_control().release_capacity(data.len());
    }
    let body_passes = capture == 0 || checks.map_or(true, |c| c.body_passes(&prefix));
    Ok(Answer {
        status,
        region: label(&wk.region_header),
        version: label(&wk.version_header),
        sent_ns,
        arrived_ns: c.arrived.get(),
        received,
        check_failed: !(passes && body_passes),
    })
}

/// Sends `body` as the server's window allows; `stalled` is called the first time it has
/// to wait for the window (a flow-control stall).
async fn send_body(
    tx: &mut h2::SendStream<Bytes>,
    mut body: Bytes,
    stalled: impl FnOnce(),
) -> Result<(), h2::Error> {
    let mut stalled = Some(stalled);
    tx.reserve_capacity(body.len());
    while !body.is_empty() {
        let got = std::future::poll_fn(|cx| match tx.poll_capacity(cx) {
            Poll::Pending => {
                if let Some(f) = stalled.take() {
                    f();
                }
                Poll::Pending
            }
            ready => ready,
        })
        .await;
        match got {
            Some(Ok(0)) => {}
            Some(Ok(n)) => {
                let chunk = body.split_to(n.min(body.len()));
                tx.send_data(chunk, body.is_empty())?;
            }
            Some(Err(e)) => return Err(e),
            // The stream closed under us: the answer says why.
            None => break,
        }
    }
    Ok(())
}
