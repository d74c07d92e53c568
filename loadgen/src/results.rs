//! The results model: what a run measured, in the vocabulary every stage shares.
//!
//! How a request ended ([`Failure`], [`Accounting`]), who answered ([`GroupKey`]), how long
//! it took ([`GroupHist`], HDR histograms in microseconds), how the connection pool coped
//! ([`crate::pool::PoolStats`]), and the merged outcome of a run ([`Results`]; its intervals are in `timeline`). The
//! recorder on the hot path fills it; judging and reporting read it; reports travel in it.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::hist::new_histogram;
use crate::pool::PoolStats;
use crate::stamps::StampCounts;

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
    /// No response within `--timeout` of the request's due time.
    Timeout,
    /// Its connection did not open within `--timeout`: the connect or the TLS handshake
    /// never completed (a target that does not accept, a firewall dropping SYNs).
    ConnectTimeout,
    /// The connection was refused.
    Refused,
    /// The connection was reset or closed before a complete response.
    Reset,
    /// The response was not valid HTTP/1.1.
    Malformed,
    /// The TLS handshake failed (certificate not trusted, expired or for another host;
    /// a server that speaks plain HTTP on an `https://` URL).
    Tls,
    /// The target's name resolved to no address, so no connection could be opened.
    Dns,
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
    /// Responses below 400 that failed a `--check` (absent from older reports).
    #[serde(default)]
    pub check: u64,
    pub timeout: u64,
    /// Connects or TLS handshakes that did not complete within `--timeout` (absent from
    /// older reports).
    #[serde(default)]
    pub connect_timeout: u64,
    pub refused: u64,
    pub reset: u64,
    pub malformed: u64,
    /// TLS handshakes that failed (absent from reports older than TLS support).
    #[serde(default)]
    pub tls: u64,
    /// No address to connect to (absent from older reports).
    #[serde(default)]
    pub dns: u64,
    pub other_transport: u64,
    pub dropped_cap: u64,
    pub dropped_behind: u64,
    pub cancelled: u64,
}

impl Accounting {
    pub fn http_error_total(&self) -> u64 {
        self.http_errors.values().sum()
    }
    /// Requests that got an answer, whatever it said (ok, failed a check, or an HTTP error).
    pub fn answered(&self) -> u64 {
        self.ok + self.check + self.http_error_total()
    }
    pub fn transport_total(&self) -> u64 {
        self.refused + self.reset + self.malformed + self.tls + self.dns + self.other_transport
    }
    /// Timeouts, of the answer or of the connection.
    pub fn timeouts(&self) -> u64 {
        self.timeout + self.connect_timeout
    }
    /// HTTP errors, timeouts and transport errors.
    pub fn failed(&self) -> u64 {
        self.http_error_total() + self.timeouts() + self.transport_total()
    }
    pub fn dropped(&self) -> u64 {
        self.dropped_cap + self.dropped_behind
    }
    /// Some requests were never sent: the target rate was not met.
    pub fn rate_missed(&self) -> bool {
        self.dropped() > 0
    }
    /// Requests that were sent and came to an end (answered or failed).
    pub fn completed(&self) -> u64 {
        self.ok + self.check + self.failed()
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
            self.check,
            self.timeout,
            self.connect_timeout,
            self.refused,
            self.reset,
            self.malformed,
            self.tls,
            self.dns,
            self.other_transport,
            self.dropped_cap,
            self.dropped_behind,
            self.cancelled,
        ]) {
            sum = sum.checked_add(n)?;
        }
        Some(sum)
    }

    pub(crate) fn add_failure(&mut self, f: Failure) {
        match f {
            Failure::Timeout => self.timeout += 1,
            Failure::ConnectTimeout => self.connect_timeout += 1,
            Failure::Refused => self.refused += 1,
            Failure::Reset => self.reset += 1,
            Failure::Malformed => self.malformed += 1,
            Failure::Tls => self.tls += 1,
            Failure::Dns => self.dns += 1,
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
        self.check = self.check.saturating_add(o.check);
        for (s, n) in &o.http_errors {
            let e = self.http_errors.entry(*s).or_default();
            *e = e.saturating_add(*n);
        }
        self.timeout = self.timeout.saturating_add(o.timeout);
        self.connect_timeout = self.connect_timeout.saturating_add(o.connect_timeout);
        self.refused = self.refused.saturating_add(o.refused);
        self.reset = self.reset.saturating_add(o.reset);
        self.malformed = self.malformed.saturating_add(o.malformed);
        self.tls = self.tls.saturating_add(o.tls);
        self.dns = self.dns.saturating_add(o.dns);
        self.other_transport = self.other_transport.saturating_add(o.other_transport);
        self.dropped_cap = self.dropped_cap.saturating_add(o.dropped_cap);
        self.dropped_behind = self.dropped_behind.saturating_add(o.dropped_behind);
        self.cancelled = self.cancelled.saturating_add(o.cancelled);
    }
}

/// Identity of a latency group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub struct GroupKey {
    pub target: String,
    pub region: String,
    pub version: String,
    pub class: String,
    /// The request's name from a requests file (`""`: unnamed; absent from older reports).
    #[serde(default)]
    pub name: String,
}

impl GroupKey {
    pub fn new(target: &str, region: &str, version: &str, class: &str) -> GroupKey {
        GroupKey {
            target: target.to_string(),
            region: region.to_string(),
            version: version.to_string(),
            class: class.to_string(),
            name: String::new(),
        }
    }

    /// The target as tables show it: `eu`, or `eu checkout` for a named request.
    pub fn target_label(&self) -> String {
        if self.name.is_empty() {
            self.target.clone()
        } else {
            format!("{} {}", self.target, self.name)
        }
    }
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

/// Measured requests by the tick they were sent at, `(tick_ns, requests)` sorted by tick
/// once merged. One entry with a fixed `--tick`; what `--tick auto` chose, second by
/// second, otherwise (at most a few entries, so a scan is the cheapest lookup).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickCounts(Vec<(u64, u64)>);

impl TickCounts {
    /// Adds `n` requests sent at `tick_ns`.
    #[inline]
    pub fn count_n(&mut self, tick_ns: u64, n: u64) {
        match self.0.iter_mut().find(|(t, _)| *t == tick_ns) {
            Some((_, m)) => *m = m.saturating_add(n),
            None => self.0.push((tick_ns, n)),
        }
    }

    /// Counts one measured request sent at tick `tick_ns`.
    #[inline]
    pub fn count(&mut self, tick_ns: u64) {
        self.count_n(tick_ns, 1);
    }

    /// Adds another count, kept sorted by tick.
    pub fn add(&mut self, o: &TickCounts) {
        for &(tick, n) in &o.0 {
            self.count_n(tick, n);
        }
        self.0.sort_unstable();
    }

    /// `(tick_ns, requests)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().copied()
    }

    /// The tick most requests were sent at (0 when none were).
    pub fn main(&self) -> u64 {
        self.0
            .iter()
            .max_by_key(|(t, n)| (*n, *t))
            .map_or(0, |(t, _)| *t)
    }

    /// All these targets' ticks added.
    pub fn of_all(targets: &[TargetResult]) -> TickCounts {
        let mut all = TickCounts::default();
        for t in targets {
            all.add(&t.accounts.ticks);
        }
        all
    }
}

/// One target's counts: measured part and warm-up, how the connection pool coped, and
/// how the schedule's ticks and the answers' arrival stamps went. A worker fills one per
/// target; runs, workers and shards add up with [`TargetAccounts::merge`].
#[derive(Debug, Clone)]
pub struct TargetAccounts {
    pub measured: Accounting,
    pub warmup: Accounting,
    pub pool: PoolStats,
    /// Measured responses counted under region/version `other` because the target
    /// already had its cap of distinct groups (see [`DEFAULT_MAX_GROUPS`]).
    pub folded: u64,
    /// With a `--tick`, the corrected latency (µs) of each tick's first request to this
    /// target: no request of its own tick went ahead of it, so against the target's
    /// overall latency it shows what sending a tick's requests together cost (see
    /// `judge::tick`). Empty in exact mode.
    pub lead: Histogram<u64>,
    /// Measured requests by the tick they were sent at.
    pub ticks: TickCounts,
    /// Whether the kernel's arrival stamps held up (see `send::arrival`).
    pub stamps: StampCounts,
}

impl Default for TargetAccounts {
    fn default() -> TargetAccounts {
        TargetAccounts {
            measured: Accounting::default(),
            warmup: Accounting::default(),
            pool: PoolStats::default(),
            folded: 0,
            lead: new_histogram(),
            ticks: TickCounts::default(),
            stamps: StampCounts::default(),
        }
    }
}

impl TargetAccounts {
    /// Adds another worker's, run's or shard's counts for the same target.
    pub fn merge(&mut self, o: &TargetAccounts) {
        self.measured.merge(&o.measured);
        self.warmup.merge(&o.warmup);
        self.pool.merge(&o.pool);
        self.folded = self.folded.saturating_add(o.folded);
        let _ = self.lead.add(&o.lead);
        self.ticks.add(&o.ticks);
        self.stamps.merge(&o.stamps);
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

/// One target's merged outcome.
#[derive(Debug, Clone)]
pub struct TargetResult {
    pub name: String,
    pub url: String,
    /// Scheduled measured requests per second of measured time.
    pub requested_rps: f64,
    pub accounts: TargetAccounts,
}

impl TargetResult {
    /// A target with nothing counted yet.
    pub fn new(name: &str, url: &str) -> TargetResult {
        TargetResult {
            name: name.to_string(),
            url: url.to_string(),
            requested_rps: 0.0,
            accounts: TargetAccounts::default(),
        }
    }
}

/// What `--out` wrote: one row per measured scheduled request, or fewer when the disk
/// could not keep up (`lost`) or a write failed (`error`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct RowStats {
    pub path: String,
    pub format: String,
    pub written: u64,
    /// Rows made but not in the file.
    pub lost: u64,
    pub error: Option<String>,
    /// CPU the writer thread spent formatting and writing (its cost apart from the hot
    /// path's buffer push).
    #[serde(default)]
    pub writer_cpu_secs: f64,
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
    /// The schedule's tick in nanoseconds (`--tick`): 0 for exact pacing; otherwise each
    /// request's intended time is the tick boundary it was sent at. With `tick_auto`, the
    /// tick most requests went at (each target's `ticks` has them all).
    pub tick_ns: u64,
    /// `--tick auto` chose the ticks (see `schedule::tick`).
    pub tick_auto: bool,
    /// How the generator waited and timed answers (`send::clock::timing_source`); empty
    /// when not known (reports from before it was written, or built from other tools').
    pub timing: String,
    /// The per-request output, when `--out` asked for one.
    pub rows: Option<RowStats>,
}

impl Results {
    /// A run of these targets with nothing measured yet: exact pacing, no window.
    pub fn new(targets: Vec<TargetResult>) -> Results {
        Results {
            targets,
            groups: BTreeMap::new(),
            pacing: new_histogram(),
            measured_secs: 0.0,
            interrupted: false,
            tick_ns: 0,
            tick_auto: false,
            timing: String::new(),
            rows: None,
        }
    }

    /// `n` over the measured window, per second (0 without one).
    pub fn per_sec(&self, n: u64) -> f64 {
        if self.measured_secs > 0.0 {
            n as f64 / self.measured_secs
        } else {
            0.0
        }
    }

    /// A one-target run (`eu`, one 2xx group of region eu, version v1) for unit tests.
    #[cfg(test)]
    pub(crate) fn one_target(
        rps: f64,
        pool: PoolStats,
        lead: Histogram<u64>,
        group: GroupHist,
        tick_ns: u64,
    ) -> Results {
        let mut t = TargetResult::new("eu", "http://eu/");
        t.requested_rps = rps;
        t.accounts.pool = pool;
        t.accounts.lead = lead;
        t.accounts.ticks.count_n(tick_ns, 1);
        let mut r = Results::new(vec![t]);
        r.groups
            .insert(GroupKey::new("eu", "eu", "v1", "2xx"), group);
        r.measured_secs = 1.0;
        r.tick_ns = tick_ns;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_the_main_tick_is_the_most_used() {
        let mut a = TickCounts::default();
        for _ in 0..3 {
            a.count(2_000_000);
        }
        a.count(500_000);
        let mut b = TickCounts::default();
        b.count(500_000);
        b.add(&a);
        assert_eq!(
            b.iter().collect::<Vec<_>>(),
            vec![(500_000, 2), (2_000_000, 3)]
        );
        assert_eq!(b.main(), 2_000_000);
    }
}
