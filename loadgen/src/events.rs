//! Events a scenario marks during a run ("us pods stop", "v2 at 50%"), shared by whoever
//! causes them (the lab) and the report that places them on the run's timeline.
//!
//! Events carry wall-clock time because the report's timeline is anchored to the wall-clock
//! start of the measured window; the recorder and the scenario never share a monotonic clock.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// One marked moment of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub at_unix_secs: f64,
    /// What happened, for people: `us: every pod stops`.
    pub what: String,
}

/// A run's events, appended to while it runs; clones share one log.
#[derive(Debug, Clone, Default)]
pub struct EventLog(Arc<Mutex<Vec<Event>>>);

impl EventLog {
    /// Marks `what` as happening now.
    pub fn record(&self, what: impl Into<String>) {
        let at_unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let event = Event {
            at_unix_secs,
            what: what.into(),
        };
        if let Ok(mut v) = self.0.lock() {
            v.push(event);
        }
    }

    /// Every event so far, in the order they were marked.
    pub fn snapshot(&self) -> Vec<Event> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}
