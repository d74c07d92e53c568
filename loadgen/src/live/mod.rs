//! Live views of a run in progress: the progress bar ([`progress`]) and Prometheus metrics
//! ([`metrics`], `--metrics-addr`). Workers publish snapshots here every 250 ms, so the hot
//! path never touches shared memory and these views never slow it down.

pub(crate) mod metrics;
pub(crate) mod progress;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Snapshot one worker publishes for live progress every 250 ms (read only by the
/// progress bar, so the hot path never touches shared memory).
#[derive(Debug, Default)]
pub struct LiveWorker {
    pub sent: AtomicU64,
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    pub dropped: AtomicU64,
    /// Corrected latency of this worker's measured responses so far.
    pub latency: Mutex<Option<hdrhistogram::Histogram<u64>>>,
    /// Per-target accounting and per-group latency, published only when [`Live::detail`]
    /// is set (for `--metrics-addr`).
    pub detail: Mutex<Option<crate::results::Snapshot>>,
}

/// Live progress snapshots, one slot per worker.
#[derive(Debug, Default)]
pub struct Live {
    pub workers: Vec<LiveWorker>,
    /// Workers also publish per-group snapshots.
    pub detail: bool,
}

impl Live {
    pub fn new(workers: usize) -> Live {
        Live {
            workers: (0..workers).map(|_| LiveWorker::default()).collect(),
            detail: false,
        }
    }

    /// Also publish per-target and per-group snapshots (costs a histogram copy per group
    /// per publish, off the request path).
    pub fn with_detail(mut self) -> Live {
        self.detail = true;
        self
    }

    /// Sum of one counter over workers.
    pub fn total(&self, f: impl Fn(&LiveWorker) -> &AtomicU64) -> u64 {
        self.workers
            .iter()
            .map(|w| f(w).load(Ordering::Relaxed))
            .sum()
    }

    /// Answers so far per (target index, served region), from the detail snapshots
    /// (empty unless [`Live::detail`]).
    pub fn served(&self) -> std::collections::BTreeMap<(usize, String), u64> {
        let mut out = std::collections::BTreeMap::new();
        for w in &self.workers {
            if let Ok(slot) = w.detail.lock() {
                for (t, region, _, h) in slot.iter().flat_map(|s| s.groups.iter()) {
                    *out.entry((*t, region.clone())).or_default() += h.len();
                }
            }
        }
        out
    }

    /// Merged latency so far.
    pub fn latency(&self) -> hdrhistogram::Histogram<u64> {
        let mut h = crate::hist::new_histogram();
        for w in &self.workers {
            if let Ok(slot) = w.latency.lock() {
                if let Some(x) = slot.as_ref() {
                    let _ = h.add(x);
                }
            }
        }
        h
    }
}
