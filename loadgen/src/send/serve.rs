//! The connection task: serves a request, then the queued requests of the same target,
//! back to back on one connection slot, opening (and re-opening) its connection as needed;
//! with nothing queued it parks its connection (`Parked`) until the dispatcher hands it
//! the next request, and it ends only when its connection does. On a plain connection the
//! dispatcher writes that request itself and the task wakes for the answer alone.

use std::cell::Cell;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::clock::now_ns;
use super::http1::{Answer, Conn, ExchangeError, Written};
use super::state::{Handed, Job, Parked, Sendable, TargetCtx, Worker};
use super::stream::{Dial, Handshake, Stream};
use crate::record::Answered;
use crate::results::Failure;

/// Serves `job`, then queued jobs of the same target, on one connection slot. `now` is
/// the dispatcher's clock reading at the hand-over; after that, each exchange's closing
/// reading serves the next job, so a request costs one clock read here.
pub(super) async fn serve(wk: Rc<Worker>, ti: usize, mut conn: Option<Conn>, job: Job, now: u64) {
    let t = &wk.targets[ti];
    let parked = Rc::new(Parked::default());
    // One timer for the task's whole life (see `within_deadline`); already due, so its
    // first poll sets it.
    let mut timer = pin!(tokio::time::sleep_until(Instant::now()));
    let mut cur = Handed {
        job,
        now,
        ahead: None,
    };
    loop {
        let now = serve_one(&wk, ti, t, &mut conn, &cur, timer.as_mut()).await;
        wk.finished(t, &cur.job);
        let queued = t.state.borrow_mut().queue.pop_front();
        if let Some(job) = queued {
            cur = Handed {
                job,
                now,
                ahead: None,
            };
            continue;
        }
        // Nothing queued: without a connection the slot is given up, with one it waits.
        let Some(c) = conn.take() else {
            t.state.borrow_mut().conns -= 1;
            return;
        };
        t.state.borrow_mut().idle.push(parked.clone());
        let armed_ns = set_at(&wk, timer.as_ref());
        (conn, cur) = parked.wait(c, timer.as_mut(), armed_ns).await;
    }
}

/// When `timer` goes off, on the `now_ns` clock (0 if it went off already).
fn set_at(wk: &Worker, timer: Pin<&Sleep>) -> u64 {
    if timer.is_elapsed() {
        return 0;
    }
    let (epoch, epoch_ns) = wk.epoch;
    epoch_ns + timer.deadline().saturating_duration_since(epoch).as_nanos() as u64
}

/// Runs `work` until `deadline` on `timer`, which moves only when it fires: each
/// request's deadline is later than the last one's, so a timer set for an earlier
/// request is simply moved on when it goes off, once per `--timeout` rather than once
/// per request (moving a timer is a removal and an insertion in the runtime's wheel).
/// `None` when the deadline passed first.
async fn within_deadline<F: std::future::Future>(
    mut timer: Pin<&mut Sleep>,
    deadline: Instant,
    work: F,
) -> Option<F::Output> {
    // Queued requests may come out of order by a little: a later timer is moved back.
    if timer.deadline() > deadline {
        timer.as_mut().reset(deadline);
    }
    let mut work = pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return Some(out),
            () = timer.as_mut() => {
                if Instant::now() >= deadline {
                    return None;
                }
                timer.as_mut().reset(deadline);
            }
        }
    }
}

/// One request, from its hand-over to its bucket; returns the clock reading at its end.
/// Its `--timeout` runs from its due time, so a request that waited for a connection
/// (behind connects a dead target never completes) times out like any other, and one
/// whose timeout passed while it waited is not sent at all.
async fn serve_one(
    wk: &Rc<Worker>,
    ti: usize,
    t: &TargetCtx,
    conn: &mut Option<Conn>,
    handed: &Handed,
    timer: Pin<&mut Sleep>,
) -> u64 {
    let Handed { job, now, ahead } = *handed;
    let job = &job;
    let Some(deadline) = deadline_of(wk, ti, job, now) else {
        // A request written ahead would leave its answer unread on the connection.
        if ahead.is_some() {
            *conn = None;
        }
        return now;
    };
    let connecting = Cell::new(false);
    let req = &t.requests[job.req as usize];
    let work = exchange(wk, ti, t, req, conn, ahead, &connecting);
    let attempt = within_deadline(timer, deadline, work).await;
    let now = now_ns();
    let done = match &attempt {
        Some(Ok(a)) => answer_end(a, now),
        _ => now,
    };
    match attempt {
        Some(Ok(resp)) => record_answer(wk, ti, job, &resp, req, req.h1.len() as u64, done),
        Some(Err(f)) => {
            *conn = None;
            wk.rec
                .borrow_mut()
                .failure(ti, job.warmup, req.name, f, job.due_ns, done);
        }
        None => {
            *conn = None;
            let f = if connecting.get() {
                Failure::ConnectTimeout
            } else {
                Failure::Timeout
            };
            wk.rec
                .borrow_mut()
                .failure(ti, job.warmup, req.name, f, job.due_ns, done);
        }
    }
    now
}

/// When an answer ended: its arrival, which the kernel stamped (the dispatcher may have
/// slept past it to save a wake-up, see `worker`), unless the stamp is missing or from
/// before the send; `now` otherwise.
pub(super) fn answer_end(resp: &Answer, now: u64) -> u64 {
    if resp.arrived_ns >= resp.sent_ns && resp.arrived_ns != 0 {
        resp.arrived_ns.min(now)
    } else {
        now
    }
}

/// Records the answer to `req` (`sent_bytes` of it on the wire) of target `ti`, which
/// ended at `done`.
pub(super) fn record_answer(
    wk: &Worker,
    ti: usize,
    job: &Job,
    resp: &Answer,
    req: &Sendable,
    sent_bytes: u64,
    done: u64,
) {
    if let Some(pace) = wk.pace.borrow_mut().as_mut() {
        pace.observe(ti, done.saturating_sub(resp.sent_ns) / 1000);
    }
    let mut rec = wk.rec.borrow_mut();
    // A stamp before the send is no receipt time either.
    let stamp = Some(resp.arrived_ns).filter(|&a| a >= resp.sent_ns);
    if stamp.is_none() && resp.arrived_ns != 0 {
        rec.stamp_before_send(ti);
    }
    rec.stamp(ti, wk.arrival.judge(resp.sent_ns, stamp.unwrap_or(0)));
    rec.response(
        ti,
        job.warmup,
        &Answered {
            status: resp.status,
            region: resp.region.as_deref(),
            version: resp.version.as_deref(),
            due_ns: job.due_ns,
            sent_ns: resp.sent_ns,
            done_ns: done,
            sent_bytes,
            received_bytes: resp.received,
            check_failed: resp.check_failed,
            lead: job.lead,
            name: req.name,
        },
    );
}

/// Where a request starts on a connection at `now`: its wait for one is recorded, and
/// its deadline returned, unless its `--timeout` (from its due time) has passed: then
/// it is not sent, and counted so.
pub(super) fn deadline_of(wk: &Worker, ti: usize, job: &Job, now: u64) -> Option<Instant> {
    record_wait(wk, ti, job, now);
    let deadline_ns = job.due_ns.saturating_add(wk.timeout.as_nanos() as u64);
    if now >= deadline_ns {
        let name = wk.targets[ti].requests[job.req as usize].name;
        wk.rec
            .borrow_mut()
            .expired_waiting(ti, job.warmup, name, job.due_ns, now);
        return None;
    }
    let (epoch, epoch_ns) = wk.epoch;
    Some(epoch + Duration::from_nanos(deadline_ns.saturating_sub(epoch_ns)))
}

/// Records how long `job` waited for a connection, to its start on one at `now`.
pub(super) fn record_wait(wk: &Worker, ti: usize, job: &Job, now: u64) {
    let wait = if job.queued_ns == 0 {
        0
    } else {
        now.saturating_sub(job.queued_ns)
    };
    wk.rec.borrow_mut().conn_wait(ti, job.warmup, wait);
}

/// Opens a connection by `dial`, counting it as under way meanwhile (the pacing in
/// `dispatch`).
pub(super) async fn connect(
    wk: &Rc<Worker>,
    ti: usize,
    t: &TargetCtx,
    dial: &Dial,
) -> Result<Stream, Failure> {
    t.state.borrow_mut().opening += 1;
    // Decrements on every way out, including a timeout dropping this future.
    struct Opening<'a>(&'a TargetCtx);
    impl Drop for Opening<'_> {
        fn drop(&mut self) {
            self.0.state.borrow_mut().opening -= 1;
        }
    }
    let _opening = Opening(t);
    refresh_if_due(wk, ti);
    let addr = t.dns.borrow_mut().pick(wk.index).ok_or(Failure::Dns)?;
    match Stream::open(addr, dial).await {
        Ok((stream, handshake)) => {
            let mut rec = wk.rec.borrow_mut();
            rec.conn_opened(ti);
            if handshake != Handshake::None {
                rec.tls_handshake(ti, handshake == Handshake::Resumed);
            }
            Ok(stream)
        }
        Err(e) => {
            let mut rec = wk.rec.borrow_mut();
            if let Some(msg) = e.tls {
                rec.tls_error(ti, msg);
            }
            if e.fd_exhausted {
                rec.fd_exhausted(ti);
            }
            Err(e.failure)
        }
    }
}

/// Opens a connection with `connecting` set meanwhile: a timeout that drops this future
/// leaves it set, so the request is a connect timeout.
async fn open(
    wk: &Rc<Worker>,
    ti: usize,
    t: &TargetCtx,
    connecting: &Cell<bool>,
) -> Result<Conn, Failure> {
    connecting.set(true);
    let c = Conn::new(Box::pin(connect(wk, ti, t, &t.dial)).await?);
    connecting.set(false);
    Ok(c)
}

/// `connecting` is true while a connection is being opened, so a timeout can say whether
/// the target ever accepted; `ahead`, what the dispatcher already wrote on `conn`.
async fn exchange(
    wk: &Rc<Worker>,
    ti: usize,
    t: &TargetCtx,
    req: &Sendable,
    conn: &mut Option<Conn>,
    ahead: Option<Written>,
    connecting: &Cell<bool>,
) -> Result<Answer, Failure> {
    let c = match conn {
        Some(c) => c,
        // Boxed: opening a connection (TLS handshake state included) is rare, and kept
        // inline it doubles every request's task (1864 bytes instead of 936).
        None => conn.insert(open(wk, ti, t, connecting).await?),
    };
    let mut outcome = send_on(c, wk, t, req, ahead).await;
    if matches!(outcome, Err(ExchangeError::Unasked)) {
        wk.rec.borrow_mut().unasked(ti);
    }
    if matches!(outcome, Err(ExchangeError::Stale | ExchangeError::Unasked)) {
        // The server closed this idle keep-alive connection meanwhile (or spoke out of
        // turn on it): replace it, don't blame the request.
        let c = conn.insert(open(wk, ti, t, connecting).await?);
        outcome = send_on(c, wk, t, req, None).await;
    }
    match outcome {
        Ok((answer, keep)) => {
            if !keep {
                *conn = None;
            }
            Ok(answer)
        }
        Err(ExchangeError::Stale | ExchangeError::Unasked) => {
            *conn = None;
            Err(Failure::Reset)
        }
        Err(ExchangeError::Failed(f)) => {
            *conn = None;
            Err(f)
        }
        Err(ExchangeError::Tls(msg)) => {
            *conn = None;
            wk.rec
                .borrow_mut()
                .tls_error(ti, format!("after the handshake: {msg}"));
            Err(Failure::Tls)
        }
    }
}

/// One of the target's requests on `c`, its answer read with the run's region and version headers.
#[inline]
async fn send_on(
    c: &mut Conn,
    wk: &Worker,
    t: &TargetCtx,
    req: &Sendable,
    ahead: Option<Written>,
) -> Result<(Answer, bool), ExchangeError> {
    c.exchange(
        &req.h1,
        ahead,
        req.answer_has_body,
        &wk.region_header,
        &wk.version_header,
        t.checks.as_deref(),
    )
    .await
}

/// Starts a background lookup of target `ti`'s name if one is due (see `dns`).
fn refresh_if_due(wk: &Rc<Worker>, ti: usize) {
    let Some((host, port)) = wk.targets[ti]
        .dns
        .borrow_mut()
        .start_lookup(now_ns(), wk.resolve_every)
    else {
        return;
    };
    let wk = wk.clone();
    tokio::task::spawn_local(async move {
        let found = super::dns::lookup(host, port).await;
        let ok = !found.is_empty();
        let changed = wk.targets[ti].dns.borrow_mut().update(now_ns(), found);
        wk.rec.borrow_mut().dns_lookup(ti, ok, changed);
    });
}
