//! Saved runs: reading a `--json` report back into [`Results`], so that runs can be merged
//! exactly (the histograms travel as HdrHistogram V2) and compared against a baseline.
//!
//! Only the fields needed to rebuild the results are read; summaries written beside the
//! histograms are ignored, because they are derived from them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{decode, FORMAT};
use crate::hist::{HIGHEST_US, SIGFIG};
use crate::pool::PoolStats;
use crate::results::TickCounts;
use crate::results::{Accounting, GroupHist, GroupKey, Results, TargetAccounts, TargetResult};

/// Why a saved report cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a loadgen JSON report")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: unsupported report format {found:?} (expected {FORMAT:?})")]
    Format { path: PathBuf, found: String },
    #[error(
        "{path}: histograms use unit {unit:?} and bounds {bounds:?}; expected \"us\" and {:?}",
        (1, HIGHEST_US, SIGFIG)
    )]
    Histogram {
        path: PathBuf,
        unit: String,
        bounds: (u64, u64, u8),
    },
    #[error("{path}: group {group}: bad histogram: {why}")]
    Hdr {
        path: PathBuf,
        group: String,
        why: String,
    },
    #[error("{path}: {why}")]
    Invalid { path: PathBuf, why: String },
}

#[derive(Debug, Deserialize)]
struct RawHist {
    hdr: String,
}

#[derive(Debug, Deserialize)]
struct RawTarget {
    name: String,
    url: String,
    requested_rps: f64,
    accounting: Accounting,
    warmup: Accounting,
    /// Absent in reports written before pools were recorded.
    #[serde(default)]
    connections: Option<RawPool>,
    #[serde(default)]
    groups_folded: u64,
    /// Absent in reports written before the tick check.
    #[serde(default)]
    first_of_tick: Option<RawHist>,
    /// Absent in reports written before `--tick auto`.
    #[serde(default)]
    ticks: Vec<RawTicks>,
    /// Absent in reports written before the arrival-stamp check.
    #[serde(default)]
    arrival_stamps: crate::stamps::StampCounts,
}

#[derive(Debug, Deserialize)]
struct RawTicks {
    tick_us: f64,
    requests: u64,
}

#[derive(Debug, Deserialize)]
struct RawPool {
    opened: u64,
    peak: u64,
    cap: u64,
    queued_at_cap: u64,
    dropped_at_cap: u64,
    // Reports from before connect timeouts were told apart have neither.
    #[serde(default)]
    expired_waiting: u64,
    #[serde(default)]
    fd_exhausted: u64,
    #[serde(default)]
    fd_limited: bool,
    #[serde(default)]
    unasked: u64,
    wait: RawHist,
    // Reports from before DNS re-resolution have none of these.
    #[serde(default)]
    dns_lookups: u64,
    #[serde(default)]
    dns_failures: u64,
    #[serde(default)]
    dns_changes: u64,
    // Nor from before TLS support.
    #[serde(default)]
    tls_handshakes: u64,
    #[serde(default)]
    tls_resumed: u64,
    #[serde(default)]
    tls_error: Option<String>,
    #[serde(default)]
    bytes_sent: u64,
    #[serde(default)]
    bytes_received: u64,
    // Nor from before HTTP/2.
    #[serde(default)]
    h2: crate::pool::H2Stats,
}

#[derive(Debug, Deserialize)]
struct RawGroup {
    target: String,
    region: String,
    version: String,
    status_class: String,
    // Reports from before requests files have no names.
    #[serde(default)]
    name: String,
    corrected: RawHist,
    service: RawHist,
}

#[derive(Debug, Deserialize)]
struct RawVerdict {
    slo: String,
}

#[derive(Debug, Deserialize)]
struct RawReport {
    format: String,
    unit: String,
    histogram: (u64, u64, u8),
    #[serde(default)]
    settings: serde_json::Value,
    measured_secs: f64,
    interrupted: bool,
    targets: Vec<RawTarget>,
    groups: Vec<RawGroup>,
    pacing: RawHist,
    /// Absent in reports from before the tick was written: exact pacing.
    #[serde(default)]
    tick_us: f64,
    /// Absent in reports from before `--tick auto`.
    #[serde(default)]
    tick_auto: bool,
    /// Absent in reports from before the timing source was written.
    #[serde(default)]
    timing: String,
    /// Absent unless the run wrote `--out`.
    #[serde(default)]
    per_request_output: Option<crate::results::RowStats>,
    #[serde(default)]
    slos: Vec<RawVerdict>,
}

/// A run read back from its JSON report.
#[derive(Debug, Clone)]
pub struct SavedRun {
    pub path: PathBuf,
    pub results: Results,
    /// The run's settings object, as written.
    pub settings: serde_json::Value,
    /// The SLO texts the run was judged by, in order.
    pub slos: Vec<String>,
}

/// Largest report read; a real one is a few MB at most (histograms are small).
pub const MAX_REPORT_BYTES: u64 = 256 * 1024 * 1024;
/// Most groups in one report: the per-target cap times every status class, for the most
/// targets a run takes, with room to spare.
pub const MAX_REPORT_GROUPS: usize = 65_536;
/// Most memory the histograms of one report, or of a merge, may take: a report of the most
/// targets loadgen takes (1024), every latency near 10 s, needs about 500 MiB; a file that
/// needs more was not written by loadgen.
pub const MAX_HISTOGRAM_BYTES: usize = 768 * 1024 * 1024;

/// Reads and decodes one JSON report.
pub fn load(path: &Path) -> Result<SavedRun, LoadError> {
    let bytes = crate::error::read_regular_file(path, MAX_REPORT_BYTES).map_err(|source| {
        LoadError::Io {
            path: path.to_owned(),
            source,
        }
    })?;
    let text = String::from_utf8(bytes).map_err(|_| LoadError::Invalid {
        path: path.to_owned(),
        why: "not UTF-8 text".into(),
    })?;
    parse(path, &text)
}

/// Decodes a JSON report's text; `path` only names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<SavedRun, LoadError> {
    let path = path.to_owned();
    let raw: RawReport = serde_json::from_str(text).map_err(|source| LoadError::Parse {
        path: path.clone(),
        source,
    })?;
    check_shape(&raw, &path)?;
    check_counts(&raw, &path)?;
    let dec = Budget {
        path: &path,
        used: std::cell::Cell::new(0),
    };
    let mut groups: BTreeMap<GroupKey, GroupHist> = BTreeMap::new();
    for g in raw.groups {
        let key = GroupKey {
            target: g.target,
            region: g.region,
            version: g.version,
            class: g.status_class,
            name: g.name,
        };
        let name = format!(
            "{}/{}/{}/{}",
            key.target, key.region, key.version, key.class
        );
        let hist = GroupHist {
            corrected: dec.hdr(&name, &g.corrected.hdr)?,
            service: dec.hdr(&name, &g.service.hdr)?,
        };
        groups.entry(key).or_default().merge(&hist);
    }
    let pacing = dec.hdr("pacing", &raw.pacing.hdr)?;
    let targets = raw
        .targets
        .into_iter()
        .map(|t| target(t, &dec))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SavedRun {
        path: path.clone(),
        results: Results {
            targets,
            groups,
            pacing,
            measured_secs: raw.measured_secs,
            interrupted: raw.interrupted,
            tick_ns: (raw.tick_us * 1000.0).round() as u64,
            tick_auto: raw.tick_auto,
            timing: raw.timing,
            rows: raw.per_request_output,
        },
        settings: raw.settings,
        slos: raw.slos.into_iter().map(|v| v.slo).collect(),
    })
}

/// A report of this format and histogram shape, with no more groups and targets than a
/// run can have.
fn check_shape(raw: &RawReport, path: &Path) -> Result<(), LoadError> {
    let path = path.to_owned();
    if raw.format != FORMAT {
        return Err(LoadError::Format {
            path,
            found: raw.format.clone(),
        });
    }
    if raw.unit != "us" || raw.histogram != (1, HIGHEST_US, SIGFIG) {
        return Err(LoadError::Histogram {
            path,
            unit: raw.unit.clone(),
            bounds: raw.histogram,
        });
    }
    if raw.groups.len() > MAX_REPORT_GROUPS || raw.targets.len() > crate::configured::MAX_TARGETS {
        return Err(LoadError::Invalid {
            path,
            why: format!(
                "{} groups and {} targets; at most {MAX_REPORT_GROUPS} and {}",
                raw.groups.len(),
                raw.targets.len(),
                crate::configured::MAX_TARGETS
            ),
        });
    }
    Ok(())
}

/// Counts loadgen could have written: each phase's buckets sum to its scheduled
/// requests, and no rate or count is beyond any run loadgen makes.
fn check_counts(raw: &RawReport, path: &Path) -> Result<(), LoadError> {
    let path = path.to_owned();
    // Every scheduled request ends in exactly one bucket: a report that says otherwise
    // (or whose counts overflow) was not written by loadgen and would corrupt a merge.
    for t in &raw.targets {
        for (phase, a) in [("measured", &t.accounting), ("warm-up", &t.warmup)] {
            if a.checked_bucket_sum() != Some(a.scheduled) {
                return Err(LoadError::Invalid {
                    path,
                    why: format!(
                        "target {:?}: {phase} accounting does not sum to its {} scheduled requests",
                        t.name, a.scheduled
                    ),
                });
            }
        }
    }
    // No run loadgen allows (at most MAX_RPS for MAX_RUN) schedules more than this, nor
    // asks for a rate above MAX_RPS: a report that claims so was not written by loadgen.
    let most =
        crate::configured::config::MAX_RPS * crate::configured::config::MAX_RUN.as_secs_f64();
    let window_ok = raw.measured_secs.is_finite()
        && (0.0..=crate::configured::config::MAX_RUN.as_secs_f64()).contains(&raw.measured_secs);
    for t in &raw.targets {
        let rate_ok = t.requested_rps.is_finite()
            && (0.0..=crate::configured::config::MAX_RPS * crate::configured::MAX_TARGETS as f64)
                .contains(&t.requested_rps);
        if !window_ok
            || !rate_ok
            || t.accounting.scheduled as f64 > most
            || t.warmup.scheduled as f64 > most
        {
            return Err(LoadError::Invalid {
                path,
                why: format!(
                    "target {:?}: {} scheduled at {} rps over {}s is beyond any run loadgen makes",
                    t.name, t.accounting.scheduled, t.requested_rps, raw.measured_secs
                ),
            });
        }
    }
    Ok(())
}

/// Decodes a report's histograms, counting their memory as it goes, so a forged file
/// stops at [`MAX_HISTOGRAM_BYTES`].
struct Budget<'a> {
    path: &'a Path,
    used: std::cell::Cell<usize>,
}

impl Budget<'_> {
    fn hdr(&self, group: &str, s: &str) -> Result<hdrhistogram::Histogram<u64>, LoadError> {
        let h = decode(s).map_err(|e| LoadError::Hdr {
            path: self.path.to_owned(),
            group: group.to_string(),
            why: format!("{e:#}"),
        })?;
        self.used
            .set(self.used.get() + crate::hist::histogram_bytes(&h));
        if self.used.get() > MAX_HISTOGRAM_BYTES {
            return Err(LoadError::Invalid {
                path: self.path.to_owned(),
                why: format!(
                    "its histograms take more than {} MiB, more than any run loadgen makes",
                    MAX_HISTOGRAM_BYTES >> 20
                ),
            });
        }
        Ok(h)
    }
}

/// One target's result as the report wrote it.
fn target(t: RawTarget, dec: &Budget<'_>) -> Result<TargetResult, LoadError> {
    let hdr = |group: &str, s: &str| dec.hdr(group, s);
    let pool = match t.connections {
        Some(p) => PoolStats {
            opened: p.opened,
            peak: p.peak,
            cap: p.cap,
            queued_at_cap: p.queued_at_cap,
            dropped_at_cap: p.dropped_at_cap,
            expired_waiting: p.expired_waiting,
            fd_exhausted: p.fd_exhausted,
            fd_limited: p.fd_limited,
            unasked: p.unasked,
            wait: hdr(&format!("{}/connection wait", t.name), &p.wait.hdr)?,
            lookups: p.dns_lookups,
            lookup_failures: p.dns_failures,
            address_changes: p.dns_changes,
            handshakes: p.tls_handshakes,
            resumed: p.tls_resumed,
            tls_error: p.tls_error,
            bytes_sent: p.bytes_sent,
            bytes_received: p.bytes_received,
            h2: p.h2,
        },
        None => PoolStats::default(),
    };
    let lead = match &t.first_of_tick {
        Some(h) => hdr(&format!("{}/first of tick", t.name), &h.hdr)?,
        None => crate::hist::new_histogram(),
    };
    let mut ticks = TickCounts::default();
    for x in &t.ticks {
        ticks.count_n((x.tick_us * 1000.0).round() as u64, x.requests);
    }
    Ok(TargetResult {
        name: t.name,
        url: t.url,
        requested_rps: t.requested_rps,
        accounts: TargetAccounts {
            measured: t.accounting,
            warmup: t.warmup,
            pool,
            folded: t.groups_folded,
            lead,
            ticks,
            stamps: t.arrival_stamps,
        },
    })
}
