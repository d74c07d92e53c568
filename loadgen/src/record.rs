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

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest trackable value, in microseconds (one hour; larger values saturate).
pub const HIGHEST_US: u64 = 3_600_000_000;
/// Significant decimal digits kept by every histogram.
pub const SIGFIG: u8 = 3;

/// A new empty latency histogram in microseconds.
pub fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, HIGHEST_US, SIGFIG) {
        Ok(h) => h,
        // The bounds are constants that hdrhistogram accepts; this arm cannot run.
        Err(e) => unreachable!("histogram bounds are valid constants: {e:?}"),
    }
}

/// Label for a group whose response lacked the region or version header.
pub const UNKNOWN: &str = "unknown";
/// Region and version of the responses beyond a target's group cap.
pub const OTHER: &str = "other";
/// Distinct (region, version) pairs kept per target unless `--max-groups` says otherwise:
/// a server that answers with ever-new values must not grow memory without end.
pub const DEFAULT_MAX_GROUPS: usize = 64;
/// Longest region or version value kept; longer ones are cut here.
pub const MAX_LABEL_BYTES: usize = 64;

/// How a scheduled request ended when it got no HTTP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No response within `--timeout`.
    Timeout,
    /// The connection was refused.
    Refused,
    /// The connection was reset or closed before a complete response.
    Reset,
    /// The response was not valid HTTP/1.1.
    Malformed,
    /// Any other transport error.
    OtherTransport,
    /// Not sent: the target's in-flight cap was reached.
    DroppedCap,
    /// Not sent: the generator fell more than `--max-lag` behind schedule.
    DroppedBehind,
    /// Still queued or in flight when the run stopped.
    Cancelled,
}

/// Where every scheduled request of one target ended. The fields sum to `scheduled`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Accounting {
    pub scheduled: u64,
    /// Responses with status below 400.
    pub ok: u64,
    /// Responses with status 400 and above, by status.
    pub http_errors: BTreeMap<u16, u64>,
    pub timeout: u64,
    pub refused: u64,
    pub reset: u64,
    pub malformed: u64,
    pub other_transport: u64,
    pub dropped_cap: u64,
    pub dropped_behind: u64,
    pub cancelled: u64,
}

impl Accounting {
    pub fn http_error_total(&self) -> u64 {
        self.http_errors.values().sum()
    }
    pub fn transport_total(&self) -> u64 {
        self.refused + self.reset + self.malformed + self.other_transport
    }
    /// HTTP errors, timeouts and transport errors.
    pub fn failed(&self) -> u64 {
        self.http_error_total() + self.timeout + self.transport_total()
    }
    pub fn dropped(&self) -> u64 {
        self.dropped_cap + self.dropped_behind
    }
    /// Requests that were sent and came to an end (answered or failed).
    pub fn completed(&self) -> u64 {
        self.ok + self.failed()
    }
    /// Sum of all end buckets; equals `scheduled` when nothing was lost.
    pub fn bucket_sum(&self) -> u64 {
        self.completed() + self.dropped() + self.cancelled
    }

    /// [`Accounting::bucket_sum`] without overflow: `None` when the buckets add up to more
    /// than a u64 (only a forged report can say so).
    pub fn checked_bucket_sum(&self) -> Option<u64> {
        let mut sum = 0u64;
        for n in self.http_errors.values().copied().chain([
            self.ok,
            self.timeout,
            self.refused,
            self.reset,
            self.malformed,
            self.other_transport,
            self.dropped_cap,
            self.dropped_behind,
            self.cancelled,
        ]) {
            sum = sum.checked_add(n)?;
        }
        Some(sum)
    }

    fn add_failure(&mut self, f: Failure) {
        match f {
            Failure::Timeout => self.timeout += 1,
            Failure::Refused => self.refused += 1,
            Failure::Reset => self.reset += 1,
            Failure::Malformed => self.malformed += 1,
            Failure::OtherTransport => self.other_transport += 1,
            Failure::DroppedCap => self.dropped_cap += 1,
            Failure::DroppedBehind => self.dropped_behind += 1,
            Failure::Cancelled => self.cancelled += 1,
        }
    }

    /// Adds another worker's or run's counts (saturating: counts from files must not
    /// overflow into nonsense).
    pub fn merge(&mut self, o: &Accounting) {
        self.scheduled = self.scheduled.saturating_add(o.scheduled);
        self.ok = self.ok.saturating_add(o.ok);
        for (s, n) in &o.http_errors {
            let e = self.http_errors.entry(*s).or_default();
            *e = e.saturating_add(*n);
        }
        self.timeout = self.timeout.saturating_add(o.timeout);
        self.refused = self.refused.saturating_add(o.refused);
        self.reset = self.reset.saturating_add(o.reset);
        self.malformed = self.malformed.saturating_add(o.malformed);
        self.other_transport = self.other_transport.saturating_add(o.other_transport);
        self.dropped_cap = self.dropped_cap.saturating_add(o.dropped_cap);
        self.dropped_behind = self.dropped_behind.saturating_add(o.dropped_behind);
        self.cancelled = self.cancelled.saturating_add(o.cancelled);
    }
}

/// Status class label (`2xx`, ...).
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// Identity of a latency group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub struct GroupKey {
    pub target: String,
    pub region: String,
    pub version: String,
    pub class: String,
}

/// The two latency histograms of a group.
#[derive(Debug, Clone)]
pub struct GroupHist {
    pub corrected: Histogram<u64>,
    pub service: Histogram<u64>,
}

impl GroupHist {
    pub fn new() -> GroupHist {
        GroupHist {
            corrected: new_histogram(),
            service: new_histogram(),
        }
    }
    pub fn merge(&mut self, o: &GroupHist) {
        // Same bounds everywhere, so addition cannot fail; saturate defensively anyway.
        let _ = self.corrected.add(&o.corrected);
        let _ = self.service.add(&o.service);
    }
}

impl Default for GroupHist {
    fn default() -> Self {
        GroupHist::new()
    }
}

#[derive(Debug)]
struct LiveGroup {
    target: usize,
    region: Box<[u8]>,
    version: Box<[u8]>,
    class: &'static str,
    hist: GroupHist,
    /// Corrected latency since the current interval began (see [`Timeline`]).
    interval: Histogram<u64>,
}

/// Per-target accounting: measured part and warm-up, and how the connection pool coped.
#[derive(Debug, Clone, Default)]
pub struct TargetAccounts {
    pub measured: Accounting,
    pub warmup: Accounting,
    pub pool: PoolStats,
    /// Measured responses counted under region/version `other` because the target
    /// already had its cap of distinct groups.
    pub folded: u64,
}

/// How one target's connection pool carried the load: the evidence for "the generator
/// limited this run" (see `judge::limits`). Measured requests only, like the latency
/// histograms; counts add up across workers and shards.
#[derive(Debug, Clone)]
pub struct PoolStats {
    /// Connections established.
    pub opened: u64,
    /// Most connection slots (open or opening) at once; across workers the sum of their
    /// peaks, an upper bound of the simultaneous peak.
    pub peak: u64,
    /// The pool's cap (sum of the workers' shares).
    pub cap: u64,
    /// Requests that found every connection busy and the pool at its cap, and waited.
    pub queued_at_cap: u64,
    /// Requests dropped at `--max-in-flight` while the pool was at its cap.
    pub dropped_at_cap: u64,
    /// Time a request waited for a free connection, microseconds (0 when one was free
    /// or a new one could be opened at once).
    pub wait: Histogram<u64>,
}

impl Default for PoolStats {
    fn default() -> PoolStats {
        PoolStats {
            opened: 0,
            peak: 0,
            cap: 0,
            queued_at_cap: 0,
            dropped_at_cap: 0,
            wait: new_histogram(),
        }
    }
}

impl PoolStats {
    pub fn merge(&mut self, o: &PoolStats) {
        self.opened += o.opened;
        self.peak += o.peak;
        self.cap += o.cap;
        self.queued_at_cap += o.queued_at_cap;
        self.dropped_at_cap += o.dropped_at_cap;
        let _ = self.wait.add(&o.wait);
    }
}

/// A served (region, version) pair, as the response said it.
type Pair = (Box<[u8]>, Box<[u8]>);

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
    /// Distinct (region, version) pairs seen per target, and the cap on them.
    pairs: Vec<Vec<Pair>>,
    max_groups: usize,
}

fn label(v: Option<&[u8]>) -> &[u8] {
    match v {
        Some(b) if !b.is_empty() => &b[..b.len().min(MAX_LABEL_BYTES)],
        _ => UNKNOWN.as_bytes(),
    }
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
            pairs: vec![Vec::new(); targets],
            max_groups: DEFAULT_MAX_GROUPS,
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

    /// The generator handed a measured request to the engine `lag_ns` after its due time.
    #[inline]
    pub fn pacing_lag(&mut self, lag_ns: u64) {
        self.pacing.saturating_record(lag_ns / 1000);
    }

    /// A request ended without a response.
    #[inline]
    pub fn failure(&mut self, target: usize, warmup: bool, f: Failure) {
        self.acct(target, warmup).add_failure(f);
    }

    /// `n` requests were cancelled at shutdown.
    pub fn cancelled(&mut self, target: usize, warmup: bool, n: u64) {
        self.acct(target, warmup).cancelled += n;
    }

    /// This worker's share of a target's connection cap.
    pub fn pool_cap(&mut self, target: usize, cap: usize) {
        self.targets[target].pool.cap = cap as u64;
    }

    /// A connection to the target was established.
    #[inline]
    pub fn conn_opened(&mut self, target: usize) {
        self.targets[target].pool.opened += 1;
    }

    /// The target now has `slots` connection slots (open or opening).
    #[inline]
    pub fn pool_slots(&mut self, target: usize, slots: usize) {
        let p = &mut self.targets[target].pool;
        p.peak = p.peak.max(slots as u64);
    }

    /// A request waited `wait_ns` for a free connection before its exchange began.
    #[inline]
    pub fn conn_wait(&mut self, target: usize, warmup: bool, wait_ns: u64) {
        if !warmup {
            self.targets[target]
                .pool
                .wait
                .saturating_record(wait_ns / 1000);
        }
    }

    /// A measured request found the pool at its cap: it queued, or (`dropped`) it was
    /// dropped at the in-flight cap.
    #[inline]
    pub fn at_cap(&mut self, target: usize, warmup: bool, dropped: bool) {
        if !warmup {
            let p = &mut self.targets[target].pool;
            if dropped {
                p.dropped_at_cap += 1;
            } else {
                p.queued_at_cap += 1;
            }
        }
    }

    /// A response arrived. Times are nanoseconds on the same clock.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn response(
        &mut self,
        target: usize,
        warmup: bool,
        status: u16,
        region: Option<&[u8]>,
        version: Option<&[u8]>,
        due_ns: u64,
        sent_ns: u64,
        done_ns: u64,
    ) {
        let acct = self.acct(target, warmup);
        if status < 400 {
            acct.ok += 1;
        } else {
            *acct.http_errors.entry(status).or_default() += 1;
        }
        if warmup {
            return;
        }
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
            g.target == target && g.class == class && *g.region == *region && *g.version == *version
        }) {
            Some(i) => i,
            None => {
                self.groups.push(LiveGroup {
                    target,
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
                self.groups.len() - 1
            }
        };
        if done_ns >= self.cur_end_ns {
            self.roll(done_ns);
        }
        let corrected = done_ns.saturating_sub(due_ns) / 1000;
        let g = &mut self.groups[idx];
        g.hist.corrected.saturating_record(corrected);
        g.hist
            .service
            .saturating_record(done_ns.saturating_sub(sent_ns) / 1000);
        if self.interval_ns > 0 {
            g.interval.saturating_record(corrected);
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

    /// Moves the histograms out under string keys (`names` are the target names).
    pub fn into_groups(
        self,
        names: &[String],
    ) -> (
        Vec<TargetAccounts>,
        BTreeMap<GroupKey, GroupHist>,
        Histogram<u64>,
    ) {
        let (t, g, p, _) = self.into_parts(names);
        (t, g, p)
    }

    /// Like [`Recorder::into_groups`], with the timeline (the last interval closed).
    pub fn into_parts(
        mut self,
        names: &[String],
    ) -> (
        Vec<TargetAccounts>,
        BTreeMap<GroupKey, GroupHist>,
        Histogram<u64>,
        Timeline,
    ) {
        if self.interval_ns > 0 {
            self.roll(self.cur_end_ns);
        }
        let key_of = |g: &LiveGroup| GroupKey {
            target: names.get(g.target).cloned().unwrap_or_default(),
            region: String::from_utf8_lossy(&g.region).into_owned(),
            version: String::from_utf8_lossy(&g.version).into_owned(),
            class: g.class.to_string(),
        };
        let mut timeline = Timeline {
            interval_secs: self.interval_ns as f64 / 1e9,
            ..Timeline::default()
        };
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
        (self.targets, out, self.pacing, timeline)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

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
                status,
                Some(b"us"),
                Some(version),
                0,
                1_000_000,
                2_000_000 + i * 1000,
            );
        }
        r.scheduled(1, false);
        r.failure(1, false, Failure::Refused);
        r.scheduled(1, true);
        r.response(1, true, 200, None, None, 0, 0, 1000);
        let (targets, groups, _) = r.into_groups(&["us".into(), "eu".into()]);
        assert_eq!(
            targets[0].measured.bucket_sum(),
            targets[0].measured.scheduled
        );
        assert_eq!(targets[0].measured.http_errors[&503], 2);
        assert_eq!(targets[1].measured.bucket_sum(), 1);
        assert_eq!(targets[1].warmup.ok, 1);
        // 2xx v1, 2xx v2, 5xx v1, 5xx v2; warm-up is not in the histograms.
        assert_eq!(groups.len(), 4);
        let k = GroupKey {
            target: "us".into(),
            region: "us".into(),
            version: "v1".into(),
            class: "2xx".into(),
        };
        assert_eq!(groups[&k].corrected.len(), 4);
        assert!(groups[&k].corrected.min() >= 2000);
        assert!(groups[&k].service.max() < 1100);
    }
}

/// A worker's running totals, published for live metrics.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Measured accounting per target (by target index).
    pub targets: Vec<Accounting>,
    /// (target index, served region, version, corrected latency) per group, status
    /// classes merged.
    pub groups: Vec<(usize, String, String, Histogram<u64>)>,
}

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
    }

    /// The decoded histogram of one slice (its workers added).
    pub fn histogram(parts: &[Vec<u8>]) -> Histogram<u64> {
        let mut h = new_histogram();
        let mut de = hdrhistogram::serialization::Deserializer::new();
        for p in parts {
            if let Ok(x) = de.deserialize::<u64, _>(&mut p.as_slice()) {
                let _ = h.add(&x);
            }
        }
        h
    }
}

/// One target's merged outcome.
#[derive(Debug, Clone)]
pub struct TargetResult {
    pub name: String,
    pub url: String,
    /// Scheduled measured requests per second of measured time.
    pub requested_rps: f64,
    pub measured: Accounting,
    pub warmup: Accounting,
    pub pool: PoolStats,
    /// Responses folded into region/version `other` (see [`DEFAULT_MAX_GROUPS`]).
    pub folded: u64,
}

/// Everything a finished (or interrupted) run measured, merged across workers.
#[derive(Debug, Clone)]
pub struct Results {
    pub targets: Vec<TargetResult>,
    pub groups: BTreeMap<GroupKey, GroupHist>,
    pub pacing: Histogram<u64>,
    /// Length of the measured window actually run, in seconds.
    pub measured_secs: f64,
    /// The run was stopped early by a signal.
    pub interrupted: bool,
}
