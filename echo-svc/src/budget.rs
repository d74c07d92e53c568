//! `/echo`'s memory budget: bytes of request bodies, and of the answers built from them,
//! held at once, shared by every connection and at most a quarter of it (or one largest
//! body) per connection, reserved as bytes arrive and given back when the answer is sent
//! or dropped. See [`crate::echo`] for why.
//!
//! The send deadline is a timer per held answer; `/echo` is not the hot path.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::deadlines::Watch;

/// How long a request waits for budget before it is turned away.
const BUDGET_WAIT: Duration = Duration::from_secs(1);

/// The server's budget.
#[derive(Debug)]
pub(crate) struct Budget {
    bytes: Arc<Semaphore>,
    per_connection: usize,
}

/// Why a request got no more budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The whole budget stayed taken for [`BUDGET_WAIT`].
    Busy,
    /// Its connection holds its share already.
    ConnectionShare,
}

/// Budget held by one request; given back, to the server and to its connection, on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    held: usize,
    conn: Arc<Watch>,
    send_deadline: Option<tokio::task::AbortHandle>,
}

impl Budget {
    /// `largest` bytes per body, `bodies` of them in all.
    pub(crate) fn new(largest: u64, bodies: usize) -> Self {
        let largest = usize::try_from(largest).unwrap_or(usize::MAX);
        let total = largest.saturating_mul(bodies).min(Semaphore::MAX_PERMITS);
        Budget {
            bytes: Arc::new(Semaphore::new(total)),
            per_connection: (total / 4).max(largest).min(total),
        }
    }

    /// An empty reservation for a request on `conn`.
    pub(crate) fn open(&self, conn: &Arc<Watch>) -> Reservation {
        Reservation {
            permit: None,
            held: 0,
            conn: conn.clone(),
            send_deadline: None,
        }
    }

    /// Adds `n` bytes to `held`, waiting at most [`BUDGET_WAIT`] for them.
    pub(crate) async fn reserve(&self, held: &mut Reservation, n: usize) -> Result<(), Refused> {
        if n == 0 {
            return Ok(());
        }
        let before = held.conn.body_bytes.fetch_add(n, Ordering::Relaxed);
        held.held += n;
        if before + n > self.per_connection {
            return Err(Refused::ConnectionShare);
        }
        let n32 = u32::try_from(n).map_err(|_| Refused::Busy)?;
        let acquire = self.bytes.clone().acquire_many_owned(n32);
        let permit = match tokio::time::timeout(BUDGET_WAIT, acquire).await {
            Ok(Ok(p)) => p,
            _ => return Err(Refused::Busy),
        };
        match &mut held.permit {
            Some(p) => p.merge(permit),
            None => held.permit = Some(permit),
        }
        Ok(())
    }
}

impl Reservation {
    /// Closes the connection if the answer holding this is not sent `within` (the timer
    /// stops when the answer's body is dropped, sent or not).
    pub(crate) fn send_within(&mut self, within: Duration) {
        let conn = Arc::downgrade(&self.conn);
        let timer = tokio::spawn(async move {
            tokio::time::sleep(within).await;
            if let Some(conn) = conn.upgrade() {
                conn.close_now();
            }
        });
        self.send_deadline = Some(timer.abort_handle());
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.conn.body_bytes.fetch_sub(self.held, Ordering::Relaxed);
        if let Some(timer) = &self.send_deadline {
            timer.abort();
        }
    }
}
