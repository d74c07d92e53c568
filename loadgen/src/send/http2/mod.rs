//! HTTP/2: many requests at once on each connection, with the `h2` crate (the HTTP/2 of
//! hyper, used here without hyper's client: that one adds a dispatch task and a channel
//! per connection, and a pool the engine already has).
//!
//! A target's HTTP/2 pool follows the same rule as its HTTP/1.1 pool, with streams for
//! connections: a request due goes to an open connection with a free stream, opens a new
//! connection only when every stream of the open ones is busy (paced and capped as
//! HTTP/1.1's connects are), and waits in the target's queue otherwise, so a queue
//! still means the generator limited the run. A connection carries at most the
//! server's SETTINGS_MAX_CONCURRENT_STREAMS, capped by `--max-streams`, re-read before
//! each new stream: a server that lowers it is counted. A stream that ends takes the
//! next queued request on its connection.
//!
//! Every request still lands in exactly one bucket:
//!
//! - one the server did not process (above a graceful GOAWAY's last stream id, or a
//!   REFUSED_STREAM reset) is sent once more and counted as `refused`; refused twice, it
//!   is a `reset`. After a GOAWAY its connection takes no new streams, and leaves the
//!   pool when its last stream ends.
//! - a stream the server reset after taking it is a `reset` (and counted as such);
//! - a timeout drops the stream, which sends RST_STREAM(CANCEL): the connection stays.
//!
//! An `https://` target whose server has not yet said which protocol it speaks sends
//! its first requests through this module's opener, which offers `h2` by ALPN and hands
//! a connection that got `http/1.1` to the HTTP/1.1 path (`serve`); after that the
//! target's new connections are HTTP/1.1's.

pub(super) mod conn;
pub(super) mod exchange;

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;

use super::clock::now_ns;
use super::http1::{Conn, MAX_HEAD_BYTES};
use super::serve::{answer_end, connect, deadline_of, record_answer};
use super::state::{Job, Spoke, TargetCtx, Worker};
use crate::configured::protocol::H2Mode;
use crate::results::Failure;
use conn::{least, H2Conn, Stamped};
use exchange::StreamError;

/// Hands `job` (already counted in flight) to a connection of target `ti` with a free
/// stream, opens a new connection when every stream is busy, or queues it.
pub(super) fn place(wk: &Rc<Worker>, ti: usize, job: Job, now: u64) {
    let t = &wk.targets[ti];
    let mut st = t.state.borrow_mut();
    if let Some(c) = st
        .h2
        .iter()
        .find(|c| c.has_room(wk.rec.borrow_mut().h2(ti)))
        .cloned()
    {
        drop(st);
        c.take(wk.rec.borrow_mut().h2(ti));
        tokio::task::spawn_local(streams(wk.clone(), ti, c, job, now));
    } else if let Some(slots) = st.open_slot(t.max_conns) {
        drop(st);
        wk.rec.borrow_mut().pool_slots(ti, slots);
        tokio::task::spawn_local(open_and_serve(wk.clone(), ti, job, now));
    } else {
        drop(st);
        wk.enqueue(ti, job, now);
    }
}

/// Opens a connection for `job` (within its timeout) and serves it there, then what
/// queued meanwhile. A connect that fails takes the next queued request to try again,
/// as an HTTP/1.1 slot does.
async fn open_and_serve(wk: Rc<Worker>, ti: usize, mut job: Job, mut now: u64) {
    let t = &wk.targets[ti];
    loop {
        let failure = match deadline_of(&wk, ti, &job, now) {
            None => None,
            Some(deadline) => {
                match tokio::time::timeout_at(deadline, Box::pin(open(&wk, ti))).await {
                    Ok(Ok(Opened::H2(c))) => return adopt(wk, ti, c, job).await,
                    Ok(Ok(Opened::H1(conn))) => {
                        t.state.borrow_mut().spoke = Spoke::Http1;
                        // Its wait was recorded: from here it is an HTTP/1.1 request that
                        // found a connection at once.
                        job.queued_ns = 0;
                        return super::serve::serve(wk.clone(), ti, Some(conn), job, now_ns())
                            .await;
                    }
                    Ok(Err(f)) => Some(f),
                    Err(_) => Some(Failure::ConnectTimeout),
                }
            }
        };
        if let Some(f) = failure {
            let name = t.requests[job.req as usize].name;
            wk.rec
                .borrow_mut()
                .failure(ti, job.warmup, name, f, job.due_ns, now_ns());
        }
        wk.finished(t, &job);
        let next = t.state.borrow_mut().queue.pop_front();
        match next {
            Some(j) => (job, now) = (j, now_ns()),
            None => {
                t.state.borrow_mut().conns -= 1;
                return;
            }
        }
    }
}

/// A new connection joins the pool: it serves `job`, and as many queued requests as it
/// has streams for.
async fn adopt(wk: Rc<Worker>, ti: usize, c: Rc<H2Conn>, job: Job) {
    let t = &wk.targets[ti];
    {
        let mut st = t.state.borrow_mut();
        st.spoke = Spoke::H2;
        st.h2.push(c.clone());
    }
    {
        let mut rec = wk.rec.borrow_mut();
        let h = rec.h2(ti);
        h.conns += 1;
        h.least_limit = least(h.least_limit, c.limit.get());
    }
    c.take(wk.rec.borrow_mut().h2(ti));
    let now = now_ns();
    while c.has_room(wk.rec.borrow_mut().h2(ti)) {
        let Some(next) = t.state.borrow_mut().queue.pop_front() else {
            break;
        };
        c.take(wk.rec.borrow_mut().h2(ti));
        tokio::task::spawn_local(streams(wk.clone(), ti, c.clone(), next, now));
    }
    streams(wk, ti, c, job, now).await;
}

/// What a new connection turned out to speak.
enum Opened {
    H1(Conn),
    H2(Rc<H2Conn>),
}

/// Connects, and speaks HTTP/2 if the server chose it by ALPN (or, for h2c, always).
async fn open(wk: &Rc<Worker>, ti: usize) -> Result<Opened, Failure> {
    let t = &wk.targets[ti];
    let stream = connect(wk, ti, t, &t.dial_h2).await?;
    let h2 = t.h2_mode == H2Mode::PriorKnowledge || stream.alpn_h2();
    if !h2 {
        if t.h2_mode == H2Mode::AlpnOnly {
            let why = "the server did not choose h2 by ALPN (--http 2 offers nothing else)";
            wk.rec.borrow_mut().tls_error(ti, why.into());
            return Err(Failure::Tls);
        }
        return Ok(Opened::H1(Conn::new(stream)));
    }
    let arrived = Rc::new(Cell::new(0));
    let io = Stamped {
        inner: stream,
        arrived: arrived.clone(),
    };
    let (send, conn) = h2::client::Builder::new()
        .enable_push(false)
        .initial_max_send_streams(t.max_streams as usize)
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| match exchange::sort(&e) {
            StreamError::Failed(f) => f,
            StreamError::Tls(msg) => {
                wk.rec.borrow_mut().tls_error(ti, msg);
                Failure::Tls
            }
            StreamError::Refused { .. } | StreamError::Reset => Failure::Reset,
        })?;
    let c = Rc::new(H2Conn {
        send,
        active: Cell::new(0),
        limit: Cell::new(t.max_streams),
        cap: t.max_streams,
        closed: Cell::new(false),
        arrived,
    });
    tokio::task::spawn_local(drive(wk.clone(), ti, c.clone(), conn));
    Ok(Opened::H2(c))
}

/// Drives a connection's frames until it ends. It holds the connection weakly: once the
/// pool and its streams let go of a retired one, its handle drops and `h2` closes it. A
/// connection that ends while the pool still holds it (the server closed it) gives its
/// slot back, and a queued request opens its replacement.
async fn drive(
    wk: Rc<Worker>,
    ti: usize,
    c: Rc<H2Conn>,
    conn: h2::client::Connection<Stamped, Bytes>,
) {
    let weak = Rc::downgrade(&c);
    drop(c);
    let _ = conn.await;
    let Some(c) = weak.upgrade() else {
        return;
    };
    c.going_away(wk.rec.borrow_mut().h2(ti));
    retire(&wk, ti, &c);
}

/// Takes `c` out of its target's pool (if it is still there): its slot goes to the
/// first queued request.
fn retire(wk: &Rc<Worker>, ti: usize, c: &Rc<H2Conn>) {
    let t = &wk.targets[ti];
    let held = {
        let mut st = t.state.borrow_mut();
        let before = st.h2.len();
        st.h2.retain(|x| !Rc::ptr_eq(x, c));
        let held = st.h2.len() < before;
        st.conns -= usize::from(held);
        held
    };
    if held {
        reopen_for_queue(wk, ti, t);
    }
}

/// Opens a connection for the first queued request if the pool has a slot free (a
/// connection ended, and nothing else would take the queue up).
fn reopen_for_queue(wk: &Rc<Worker>, ti: usize, t: &TargetCtx) {
    let mut st = t.state.borrow_mut();
    if st.conns >= t.max_conns {
        return;
    }
    let Some(job) = st.queue.pop_front() else {
        return;
    };
    st.conns += 1;
    let slots = st.conns;
    drop(st);
    wk.rec.borrow_mut().pool_slots(ti, slots);
    tokio::task::spawn_local(open_and_serve(wk.clone(), ti, job, now_ns()));
}

/// Serves `job` on a stream of `c`, then queued requests while `c` has room. A
/// connection that takes no new streams leaves the pool when its last stream ends.
async fn streams(wk: Rc<Worker>, ti: usize, c: Rc<H2Conn>, mut job: Job, mut now: u64) {
    let t = &wk.targets[ti];
    loop {
        let refused;
        (now, refused) = serve_stream(&wk, ti, t, &c, &job, now).await;
        c.active.set(c.active.get() - 1);
        if refused {
            // Not processed: it goes once more, elsewhere if it can (still in flight).
            job.retried = true;
            job.queued_ns = 0;
            place(&wk, ti, job, now);
        } else {
            wk.finished(t, &job);
        }
        if !c.has_room(wk.rec.borrow_mut().h2(ti)) {
            if c.closed.get() && c.active.get() == 0 {
                retire(&wk, ti, &c);
            }
            return;
        }
        let Some(next) = t.state.borrow_mut().queue.pop_front() else {
            return;
        };
        c.take(wk.rec.borrow_mut().h2(ti));
        job = next;
    }
}

/// One request on a stream of `c`, from its hand-over (`now`) to its bucket; returns the
/// clock reading at its end, and whether the server refused it unprocessed for the
/// first time (then it is not counted yet: it goes once more).
async fn serve_stream(
    wk: &Rc<Worker>,
    ti: usize,
    t: &TargetCtx,
    c: &H2Conn,
    job: &Job,
    now: u64,
) -> (u64, bool) {
    let Some(deadline) = deadline_of(wk, ti, job, now) else {
        return (now, false);
    };
    let checks = t.checks.as_deref();
    let req = &t.requests[job.req as usize];
    let attempt =
        tokio::time::timeout_at(deadline, exchange::exchange(c, wk, ti, req, checks)).await;
    let now = now_ns();
    let failure = match attempt {
        Ok(Ok(a)) => {
            record_answer(wk, ti, job, &a, req, req.h2.size, answer_end(&a, now));
            return (now, false);
        }
        Ok(Err(StreamError::Refused { going_away })) => {
            let mut rec = wk.rec.borrow_mut();
            rec.h2(ti).refused += 1;
            if going_away {
                c.going_away(rec.h2(ti));
            }
            if !job.retried {
                return (now, true);
            }
            Failure::Reset
        }
        Ok(Err(StreamError::Reset)) => {
            wk.rec.borrow_mut().h2(ti).resets += 1;
            Failure::Reset
        }
        Ok(Err(StreamError::Failed(f))) => f,
        Ok(Err(StreamError::Tls(msg))) => {
            let msg = format!("after the handshake: {msg}");
            wk.rec.borrow_mut().tls_error(ti, msg);
            Failure::Tls
        }
        Err(_) => Failure::Timeout,
    };
    wk.rec
        .borrow_mut()
        .failure(ti, job.warmup, req.name, failure, job.due_ns, now);
    (now, false)
}
