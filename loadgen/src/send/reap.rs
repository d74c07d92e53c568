//! Answers read in the wake-up that sends.
//!
//! After a held sleep (see `worker`) the answers to the requests written ahead on parked
//! connections (`state::Parked`) wait in their sockets, stamped by the kernel. Before the
//! reactor polls, the dispatcher reads them itself, one non-blocking stamped read per
//! connection: a whole answer is recorded here and its connection goes back to the idle
//! list, so its task is neither woken nor polled, and the reactor, finding the data gone,
//! has nothing to report for it. This is the hot path's largest saving after the write
//! ahead: a task wake-up and poll per answer, which tokio's general machinery makes
//! dearer than the read itself (`benches/notes/2026-12-07-answers-read-at-send.md`).
//!
//! Anything but a whole answer in one read (nothing yet, part of one, a body to stream,
//! chunks, body checks, an interim head, a close, an error) is left to the connection's
//! task, which goes on from what was read, exactly as if it had read it itself; so every
//! guarantee of `serve` holds here by construction, and the task's timer still bounds
//! every request.

use std::rc::Rc;

use super::clock::now_ns;
use super::http1::{Answer, Reaped};
use super::serve::{answer_end, record_answer, record_wait};
use super::state::{Handed, Parked, TargetCtx, Worker};

/// Reads what has arrived for every request written ahead and still awaited.
pub(super) fn reap(wk: &Rc<Worker>) {
    for (ti, t) in wk.targets.iter().enumerate() {
        let mut list = std::mem::take(&mut t.state.borrow_mut().awaiting);
        if list.is_empty() {
            t.state.borrow_mut().awaiting = list;
            continue;
        }
        // One clock reading for all the answers of this pass, taken after the first read.
        let mut now = 0;
        list.retain(|p| still_awaited(wk, ti, t, p, &mut now));
        // Requests handed over meanwhile (queued ones, to the connections freed here)
        // joined a fresh list.
        let mut st = t.state.borrow_mut();
        if st.awaiting.is_empty() {
            st.awaiting = list;
        } else {
            st.awaiting.append(&mut list);
        }
    }
}

/// Reads `parked`'s answer; false when it is off the list (answered here, left to its
/// task, or taken by its task already).
fn still_awaited(
    wk: &Rc<Worker>,
    ti: usize,
    t: &TargetCtx,
    parked: &Rc<Parked>,
    now: &mut u64,
) -> bool {
    let Some((handed, got)) = parked.reap(t, wk) else {
        parked.awaited.set(false);
        return false;
    };
    match got {
        Reaped::Nothing => true,
        Reaped::Started => {
            parked.awaited.set(false);
            false
        }
        Reaped::Whole(answer) => {
            parked.awaited.set(false);
            if *now == 0 {
                *now = now_ns();
            }
            answered(wk, ti, t, parked, &handed, &answer, *now);
            false
        }
    }
}

/// What the connection's task does with a whole answer (`serve`): record it, close the
/// request, then serve the target's next queued request or wait idle.
fn answered(
    wk: &Rc<Worker>,
    ti: usize,
    t: &TargetCtx,
    parked: &Rc<Parked>,
    handed: &Handed,
    answer: &Answer,
    now: u64,
) {
    let job = &handed.job;
    let req = &t.requests[job.req as usize];
    record_wait(wk, ti, job, handed.now);
    let done = answer_end(answer, now);
    record_answer(wk, ti, job, answer, req, req.h1.len() as u64, done);
    wk.rec.borrow_mut().read_at_send(ti);
    wk.finished(t, job);
    let queued = t.state.borrow_mut().queue.pop_front();
    match queued {
        Some(next) => wk.hand_over(t, parked.clone(), next, now),
        None => t.state.borrow_mut().idle.push(parked.clone()),
    }
}
