//! Recording: where every scheduled request ends up, and how long the answered ones took.
//!
//! Each worker owns a [`Recorder`] (no locks on the hot path) and the recorders are merged
//! when the run ends. Latency goes into HDR histograms keyed by (target, served region,
//! version, status class), two per group:
//! - **corrected**: from the request's *scheduled* time to the end of its response, so time
//!   spent waiting behind a slow server or a full connection pool counts (no coordinated
//!   omission);
//! - **service**: from the moment it was written to a connection (what a closed-loop tool
//!   would report).
//!
//! A third histogram holds the pacing lag: how late the generator handed each request to
//! the engine compared with its schedule. All values are microseconds, 1 µs to 1 hour at
//! 3 significant digits (memory does not grow with the run length).

use hdrhistogram::Histogram;

use crate::hist::{new_histogram, record_us};
use crate::results::{Accounting, GroupHist, GroupKey, Snapshot, TargetAccounts};
use crate::results::{DEFAULT_MAX_GROUPS, MAX_LABEL_BYTES, OTHER, UNKNOWN};
use crate::timeline::Timeline;
use std::collections::BTreeMap;

mod connections;
mod failures;
pub mod rows;

use rows::{Outcome, Row, RowOut};

#[derive(Debug)]
struct LiveGroup {
    target: usize,
    /// The request's name index (see `Recorder::request_names`).
    name: u16,
    region: Box<[u8]>,
    version: Box<[u8]>,
    class: &'static str,
    hist: GroupHist,
    /// Corrected latency since the current interval began (see [`Timeline`]).
    interval: Histogram<u64>,
}

/// A served (region, version) pair, as the response said it.
type Pair = (Box<[u8]>, Box<[u8]>);

/// One answered request, as the recorder takes it. Times are nanoseconds on the engine's
/// monotonic clock: when it was due, when it was written, when its answer ended.
#[derive(Debug, Clone, Copy)]
pub struct Answered<'a> {
    pub status: u16,
    pub region: Option<&'a [u8]>,
    pub version: Option<&'a [u8]>,
    pub due_ns: u64,
    pub sent_ns: u64,
    pub done_ns: u64,
    /// Bytes of the request, and of the answer as read.
    pub sent_bytes: u64,
    pub received_bytes: u64,
    /// The first request of its tick to this target (see `TargetResult::lead`).
    pub lead: bool,
    /// It failed a `--check`.
    pub check_failed: bool,
    /// Its request's name index among its target's (0: unnamed).
    pub name: u16,
}

/// One worker's recording state.
#[derive(Debug)]
pub struct Recorder {
    pub targets: Vec<TargetAccounts>,
    groups: Vec<LiveGroup>,
    /// Pacing lag of measured requests, microseconds.
    pub pacing: Histogram<u64>,
    /// Start of the measured window and interval length (ns); `interval_ns == 0` keeps
    /// no timeline.
    origin_ns: u64,
    interval_ns: u64,
    /// Index of the interval the groups' `interval` histograms belong to, and its end.
    cur_interval: u64,
    cur_end_ns: u64,
    /// Finished intervals: (index, group, compressed histogram).
    done: Vec<(u64, usize, Vec<u8>)>,
    /// Measured requests without an answer per (interval, target): [failed, dropped].
    unanswered: BTreeMap<(u64, usize), [u64; 2]>,
    /// Largest pacing lag per interval, microseconds.
    lag_max: BTreeMap<u64, u64>,
    /// Distinct (region, version) pairs seen per target, and the cap on them.
    pairs: Vec<Vec<Pair>>,
    max_groups: usize,
    /// `--out`: one row per measured request.
    pub rows: Option<RowOut>,
    /// Per target, its requests' names by index (`""`, unnamed, at 0); empty: none.
    request_names: Vec<Vec<String>>,
}

/// Status class label (`2xx`, ...).
fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

fn label(v: Option<&[u8]>) -> &[u8] {
    match v {
        Some(b) if !b.is_empty() => &b[..b.len().min(MAX_LABEL_BYTES)],
        _ => UNKNOWN.as_bytes(),
    }
}

/// One worker's recordings, by target name: accounts, groups' histograms, pacing lag and
/// the timeline.
#[derive(Debug)]
pub struct Recorded {
    pub targets: Vec<TargetAccounts>,
    pub groups: BTreeMap<GroupKey, GroupHist>,
    pub pacing: Histogram<u64>,
    pub timeline: Timeline,
}

impl Recorder {
    pub fn new(targets: usize) -> Recorder {
        Recorder {
            targets: vec![TargetAccounts::default(); targets],
            groups: Vec::new(),
            pacing: new_histogram(),
            origin_ns: 0,
            interval_ns: 0,
            cur_interval: 0,
            cur_end_ns: u64::MAX,
            done: Vec::new(),
            unanswered: BTreeMap::new(),
            lag_max: BTreeMap::new(),
            pairs: vec![Vec::new(); targets],
            request_names: vec![Vec::new(); targets],
            max_groups: DEFAULT_MAX_GROUPS,
            rows: None,
        }
    }

    /// Names target `target`'s requests (a requests file's), by the index answers carry.
    pub fn request_names(&mut self, target: usize, names: Vec<String>) {
        if let Some(slot) = self.request_names.get_mut(target) {
            *slot = names;
        }
    }

    /// Caps the distinct (region, version) pairs kept per target (at least 1).
    pub fn max_groups(&mut self, n: usize) {
        self.max_groups = n.max(1);
    }

    /// Keeps per-interval histograms of `interval_ns` from `origin_ns` (the start of the
    /// measured window, same clock as the response times).
    pub fn keep_timeline(&mut self, origin_ns: u64, interval_ns: u64) {
        if interval_ns > 0 {
            self.origin_ns = origin_ns;
            self.interval_ns = interval_ns;
            self.cur_interval = 0;
            self.cur_end_ns = origin_ns.saturating_add(interval_ns);
        }
    }

    /// Closes the current interval: its non-empty histograms are stored compressed (a
    /// few hundred bytes each, so long runs stay small) and reset.
    #[cold]
    fn roll(&mut self, now_ns: u64) {
        use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
        let mut ser = V2DeflateSerializer::new();
        for (i, g) in self.groups.iter_mut().enumerate() {
            if !g.interval.is_empty() {
                let mut buf = Vec::new();
                if ser.serialize(&g.interval, &mut buf).is_ok() {
                    self.done.push((self.cur_interval, i, buf));
                }
                g.interval.reset();
            }
        }
        if let Some(idx) = now_ns
            .saturating_sub(self.origin_ns)
            .checked_div(self.interval_ns)
        {
            self.cur_interval = idx;
            self.cur_end_ns = self
                .origin_ns
                .saturating_add((self.cur_interval + 1).saturating_mul(self.interval_ns));
        }
    }

    /// The timeline interval `at_ns` falls in; `None` when no timeline is kept.
    #[inline]
    fn interval_of(&self, at_ns: u64) -> Option<u64> {
        at_ns
            .saturating_sub(self.origin_ns)
            .checked_div(self.interval_ns)
    }

    fn acct(&mut self, target: usize, warmup: bool) -> &mut Accounting {
        let t = &mut self.targets[target];
        if warmup {
            &mut t.warmup
        } else {
            &mut t.measured
        }
    }

    /// A request was taken off the schedule.
    #[inline]
    pub fn scheduled(&mut self, target: usize, warmup: bool) {
        self.acct(target, warmup).scheduled += 1;
    }

    /// The generator handed a measured request to the engine `lag_ns` after its due time,
    /// at `now_ns`.
    #[inline]
    pub fn pacing_lag(&mut self, lag_ns: u64, now_ns: u64) {
        let us = lag_ns / 1000;
        record_us(&mut self.pacing, us);
        if let Some(idx) = self.interval_of(now_ns) {
            let m = self.lag_max.entry(idx).or_default();
            *m = (*m).max(us);
        }
    }

    /// How a response's arrival stamp was judged (see `send::arrival`).
    #[inline]
    pub fn stamp(&mut self, target: usize, s: crate::stamps::Stamp) {
        if let Some(t) = self.targets.get_mut(target) {
            t.stamps.count(s);
        }
    }

    /// A response's arrival stamp came before its request was sent.
    #[inline]
    pub fn stamp_before_send(&mut self, target: usize) {
        if let Some(t) = self.targets.get_mut(target) {
            t.stamps.before_send += 1;
        }
    }

    /// A response was read by the dispatcher, not by its connection's task (`send::reap`).
    #[inline]
    pub fn read_at_send(&mut self, target: usize) {
        if let Some(t) = self.targets.get_mut(target) {
            t.stamps.read_at_send += 1;
        }
    }

    /// A response arrived.
    #[inline]
    pub fn response(&mut self, target: usize, warmup: bool, a: &Answered<'_>) {
        let Answered {
            status,
            region,
            version,
            due_ns,
            sent_ns,
            done_ns,
            sent_bytes,
            received_bytes,
            lead,
            check_failed,
            name,
        } = *a;
        let acct = self.acct(target, warmup);
        // An HTTP error stays one whatever its checks said; an answer below 400 that
        // failed one has its own bucket.
        if status >= 400 {
            *acct.http_errors.entry(status).or_default() += 1;
        } else if check_failed {
            acct.check += 1;
        } else {
            acct.ok += 1;
        }
        if warmup {
            return;
        }
        let pool = &mut self.targets[target].pool;
        pool.bytes_sent += sent_bytes;
        pool.bytes_received += received_bytes;
        let (mut region, mut version, class) =
            (label(region), label(version), status_class(status));
        // A new pair beyond the cap is counted under `other`.
        let pairs = &mut self.pairs[target];
        if !pairs.iter().any(|(r, v)| **r == *region && **v == *version) {
            if pairs.len() < self.max_groups {
                pairs.push((region.into(), version.into()));
            } else {
                region = OTHER.as_bytes();
                version = OTHER.as_bytes();
                self.targets[target].folded += 1;
            }
        }
        let idx = match self.groups.iter().position(|g| {
            g.target == target
                && g.name == name
                && g.class == class
                && *g.region == *region
                && *g.version == *version
        }) {
            Some(i) => i,
            None => {
                self.groups.push(LiveGroup {
                    target,
                    name,
                    region: region.into(),
                    version: version.into(),
                    class,
                    hist: GroupHist::new(),
                    interval: if self.interval_ns > 0 {
                        new_histogram()
                    } else {
                        Histogram::new(1).unwrap_or_else(|_| new_histogram())
                    },
                });
                if let Some(out) = &mut self.rows {
                    out.group(self.groups.len() - 1, region, version);
                }
                self.groups.len() - 1
            }
        };
        if let Some(out) = &mut self.rows {
            out.push(Row {
                due_ns,
                sent_ns,
                end_ns: done_ns,
                bytes: received_bytes,
                target: target as u32,
                group: idx as u32,
                name,
                status,
                outcome: if status >= 400 {
                    Outcome::HttpError
                } else if check_failed {
                    Outcome::Check
                } else {
                    Outcome::Ok
                },
            });
        }
        if done_ns >= self.cur_end_ns {
            self.roll(done_ns);
        }
        let corrected = done_ns.saturating_sub(due_ns) / 1000;
        if lead {
            record_us(&mut self.targets[target].lead, corrected);
        }
        let g = &mut self.groups[idx];
        record_us(&mut g.hist.corrected, corrected);
        record_us(&mut g.hist.service, done_ns.saturating_sub(sent_ns) / 1000);
        if self.interval_ns > 0 {
            record_us(&mut g.interval, corrected);
        }
    }

    /// Running totals for live metrics.
    pub fn snapshot(&self) -> Snapshot {
        let mut groups: Vec<(usize, String, String, Histogram<u64>)> = Vec::new();
        for g in &self.groups {
            let (r, v) = (
                String::from_utf8_lossy(&g.region),
                String::from_utf8_lossy(&g.version),
            );
            match groups
                .iter_mut()
                .find(|x| x.0 == g.target && x.1 == r && x.2 == v)
            {
                Some(x) => {
                    let _ = x.3.add(&g.hist.corrected);
                }
                None => groups.push((
                    g.target,
                    r.into_owned(),
                    v.into_owned(),
                    g.hist.corrected.clone(),
                )),
            }
        }
        Snapshot {
            targets: self.targets.iter().map(|t| t.measured.clone()).collect(),
            groups,
        }
    }

    /// Corrected latency recorded since the last call, for live progress; resets nothing.
    pub fn groups_total(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for g in &self.groups {
            let _ = h.add(&g.hist.corrected);
        }
        h
    }

    /// What this worker recorded, named by `names` (the targets in order), the timeline's
    /// last interval closed.
    pub fn into_recorded(mut self, names: &[String]) -> Recorded {
        if self.interval_ns > 0 {
            self.roll(self.cur_end_ns);
        }
        let request_names = &self.request_names;
        let key_of = |g: &LiveGroup| GroupKey {
            target: names.get(g.target).cloned().unwrap_or_default(),
            region: String::from_utf8_lossy(&g.region).into_owned(),
            version: String::from_utf8_lossy(&g.version).into_owned(),
            class: g.class.to_string(),
            name: request_names
                .get(g.target)
                .and_then(|n| n.get(usize::from(g.name)))
                .cloned()
                .unwrap_or_default(),
        };
        let mut timeline = Timeline {
            interval_secs: self.interval_ns as f64 / 1e9,
            ..Timeline::default()
        };
        timeline.pacing_max_us = std::mem::take(&mut self.lag_max);
        for ((idx, ti), n) in std::mem::take(&mut self.unanswered) {
            let name = names.get(ti).cloned().unwrap_or_default();
            timeline.unanswered.insert((idx, name), n);
        }
        for (idx, gi, bytes) in std::mem::take(&mut self.done) {
            if let Some(g) = self.groups.get(gi) {
                timeline
                    .slices
                    .entry((idx, key_of(g)))
                    .or_default()
                    .push(bytes);
            }
        }
        let mut out: BTreeMap<GroupKey, GroupHist> = BTreeMap::new();
        for g in &self.groups {
            out.entry(key_of(g)).or_default().merge(&g.hist);
        }
        Recorded {
            targets: self.targets,
            groups: out,
            pacing: self.pacing,
            timeline,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::results::Failure;

    #[test]
    fn unanswered_requests_and_pacing_lag_land_in_their_intervals() {
        let mut r = Recorder::new(1);
        r.keep_timeline(1_000, 1_000_000_000);
        r.failure(0, false, 0, Failure::Refused, 0, 1_000 + 1_500_000_000);
        r.failure(0, false, 0, Failure::DroppedCap, 0, 1_000 + 2_200_000_000);
        r.failure(0, true, 0, Failure::Timeout, 0, 1_000 + 2_200_000_000);
        r.pacing_lag(5_000_000, 1_000 + 500_000_000);
        r.pacing_lag(2_000_000, 1_000 + 600_000_000);
        let tl = r.into_recorded(&["us".into()]).timeline;
        let want: BTreeMap<(u64, String), [u64; 2]> =
            [((1, "us".into()), [1, 0]), ((2, "us".into()), [0, 1])].into();
        assert_eq!(tl.unanswered, want, "warm-up is not on the timeline");
        assert_eq!(tl.pacing_max_us, [(0, 5_000)].into());
    }

    #[test]
    fn buckets_sum_and_groups_split() {
        let mut r = Recorder::new(2);
        for i in 0..10u64 {
            r.scheduled(0, false);
            let status = if i < 8 { 200 } else { 503 };
            let version: &[u8] = if i % 2 == 0 { b"v1" } else { b"v2" };
            r.response(
                0,
                false,
                &Answered {
                    status,
                    region: Some(b"us"),
                    version: Some(version),
                    due_ns: 0,
                    sent_ns: 1_000_000,
                    done_ns: 2_000_000 + i * 1000,
                    sent_bytes: 40,
                    received_bytes: 100,
                    lead: i < 3,
                    check_failed: false,
                    name: 0,
                },
            );
        }
        r.scheduled(1, false);
        r.failure(1, false, 0, Failure::Refused, 0, 0);
        r.scheduled(1, true);
        r.response(
            1,
            true,
            &Answered {
                status: 200,
                region: None,
                version: None,
                due_ns: 0,
                sent_ns: 0,
                done_ns: 1000,
                sent_bytes: 40,
                received_bytes: 100,
                lead: true,
                check_failed: false,
                name: 0,
            },
        );
        let Recorded {
            targets, groups, ..
        } = r.into_recorded(&["us".into(), "eu".into()]);
        assert_eq!(
            targets[0].measured.bucket_sum(),
            targets[0].measured.scheduled
        );
        assert_eq!(targets[0].measured.http_errors[&503], 2);
        assert_eq!(targets[1].measured.bucket_sum(), 1);
        assert_eq!(targets[1].warmup.ok, 1);
        // Bytes count the measured answers only, like the histograms.
        assert_eq!(targets[0].pool.bytes_sent, 400);
        assert_eq!(targets[0].pool.bytes_received, 1000);
        assert_eq!(targets[1].pool.bytes_sent, 0);
        // Each tick's first request is kept apart, measured ones only.
        assert_eq!(targets[0].lead.len(), 3);
        assert!(targets[1].lead.is_empty());
        // 2xx v1, 2xx v2, 5xx v1, 5xx v2; warm-up is not in the histograms.
        assert_eq!(groups.len(), 4);
        let k = GroupKey::new("us", "us", "v1", "2xx");
        assert_eq!(groups[&k].corrected.len(), 4);
        assert!(groups[&k].corrected.min() >= 2000);
        assert!(groups[&k].service.max() < 1100);
    }
}
