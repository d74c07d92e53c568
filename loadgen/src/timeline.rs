//! A run's intervals: corrected latency per interval and group, what got no answer and
//! the generator's own lag, for the plots over time (HTML), the "what happened" story and
//! the HdrHistogram interval log.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::hist::new_histogram;
use crate::results::GroupKey;

/// Corrected latency per interval and group: for latency over time (HTML) and the
/// HdrHistogram interval log. Each slice holds one compressed (V2 deflate) histogram per
/// worker that saw responses in it; they add up to the group's totals. Intervals are
/// counted from the start of the measured window, by response completion time.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub interval_secs: f64,
    /// Wall-clock start of the measured window, seconds since the Unix epoch.
    pub origin_unix_secs: f64,
    pub slices: BTreeMap<(u64, GroupKey), Vec<Vec<u8>>>,
    /// Measured requests that got no answer, per interval and target name: `[failed,
    /// dropped]` (transport errors and timeouts by when they ended, drops by when they
    /// were due).
    pub unanswered: BTreeMap<(u64, String), [u64; 2]>,
    /// Largest pacing lag (the generator's own delay) per interval, microseconds.
    pub pacing_max_us: BTreeMap<u64, u64>,
}

impl Timeline {
    /// Adds another worker's (or shard's) timeline.
    pub fn merge(&mut self, o: Timeline) {
        if self.interval_secs == 0.0 {
            self.interval_secs = o.interval_secs;
        }
        for (k, v) in o.slices {
            self.slices.entry(k).or_default().extend(v);
        }
        for (k, us) in o.pacing_max_us {
            let e = self.pacing_max_us.entry(k).or_default();
            *e = (*e).max(us);
        }
        for (k, [f, d]) in o.unanswered {
            let e = self.unanswered.entry(k).or_default();
            e[0] += f;
            e[1] += d;
        }
    }

    /// The decoded histogram of one slice (its workers added).
    pub fn histogram<P: AsRef<[u8]>>(parts: &[P]) -> Histogram<u64> {
        let mut h = new_histogram();
        let mut de = hdrhistogram::serialization::Deserializer::new();
        for p in parts {
            if let Ok(x) = de.deserialize::<u64, _>(&mut p.as_ref()) {
                let _ = h.add(&x);
            }
        }
        h
    }
}
