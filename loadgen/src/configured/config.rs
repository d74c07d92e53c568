//! Validated run configuration, built from the command line (or by the lab).
//!
//! Every problem with the user's input becomes a [`UsageError`] (exit code 2) with a
//! message that names the offending value.

use std::path::PathBuf;
use std::time::Duration;

use http::header::HeaderName;

use crate::configured::cli::RunArgs;
use crate::configured::target::{self, Target};
use crate::judge::slo::Slo;
use crate::schedule::Arrival;
use crate::schedule::{parse_stages, Stage};

/// Rate used when neither `--rps` nor `--stages` is given.
pub const DEFAULT_RPS: f64 = 100.0;
/// Duration used when neither `--duration` nor `--stages` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Highest total rate accepted: beyond what one process can send, and low enough that a
/// schedule it cannot keep up with is still drained (as drops) within moments, so a run
/// always ends close to duration + timeout.
pub const MAX_RPS: f64 = 1_000_000.0;
/// Longest run (all stages, warm-up included), and the bound on every other duration
/// flag: they all end up added to clock readings, which must not overflow.
pub const MAX_RUN: Duration = Duration::from_secs(7 * 24 * 3600);

/// Checks a duration flag against its range, naming both in the error.
fn within(flag: &str, d: Duration, min: Duration, max: Duration) -> Result<Duration, UsageError> {
    if d < min || d > max {
        return Err(UsageError::new(format!(
            "{flag} {}: must be between {} and {}",
            humantime::format_duration(d),
            humantime::format_duration(min),
            humantime::format_duration(max)
        )));
    }
    Ok(d)
}

use crate::configured::request::{self, RequestSpec};
use crate::error::UsageError;

/// Everything a run needs, checked.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub targets: Vec<Target>,
    pub stages: Vec<Stage>,
    pub warmup: Duration,
    pub arrival: Arrival,
    pub timeout: Duration,
    /// Connections per target at most (the pool's cap, split across threads).
    pub connections: usize,
    /// The cap came from `--connections` (a fixed pool) rather than `--max-connections`.
    pub fixed_pool: bool,
    /// Distinct (region, version) pairs kept per target.
    pub max_groups: usize,
    pub max_in_flight: usize,
    pub max_lag: Duration,
    /// Dispatch granularity (zero: wake for every request); with `tick_auto`, the finest
    /// tick the automatic choice starts from (see `schedule::tick`).
    pub tick: Duration,
    pub tick_auto: bool,
    pub threads: usize,
    pub slos: Vec<Slo>,
    pub json: Option<PathBuf>,
    /// `--out`: one row per measured request.
    pub out: Option<crate::record::rows::OutSpec>,
    /// TLS client settings, when a target is `https://` (or `--cacert`/`--insecure` was
    /// given, so a bad file is an error whatever the targets).
    pub tls: Option<crate::configured::tls::Tls>,
    /// `--pick`: how a target with many requests chooses the next.
    pub pick: crate::configured::requests_file::Pick,
    /// `--http` (`--http2` folded in).
    pub http: crate::configured::protocol::HttpVersion,
    /// HTTP/2 streams per connection at most (`--max-streams`, resolved).
    pub max_streams: u32,
    /// Re-resolve names this often (on new connections); zero: once.
    pub resolve_every: Duration,
    pub region_header: HeaderName,
    pub version_header: HeaderName,
    pub progress: bool,
    pub seed: u64,
    /// This process's part of a sharded run.
    pub shard: crate::schedule::shard::Shard,
    /// Where to serve Prometheus metrics during the run.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Interval of the per-interval latency data.
    pub interval: Duration,
    /// Report files to write besides `--json`.
    pub exports: crate::configured::cli::ExportArgs,
    /// Events marked during the run (the lab's scenarios); the report places them on the
    /// timeline and tells what happened between them.
    pub events: crate::events::EventLog,
    /// Keep the per-interval data even when no report file plots it (the lab's story).
    pub keep_timeline: bool,
}

/// `--http`, or `2` for `--http2`.
fn http_version(args: &RunArgs) -> crate::configured::protocol::HttpVersion {
    if args.http2 {
        crate::configured::protocol::HttpVersion::Http2
    } else {
        args.http
    }
}

/// The request every target gets unless its targets-file entry says otherwise.
fn request_from_args(args: &RunArgs) -> Result<RequestSpec, UsageError> {
    let mut spec = RequestSpec {
        method: request::parse_method("--method", &args.method)?,
        ..Default::default()
    };
    for h in &args.headers {
        let (n, v) = request::parse_header("--header", h)?;
        spec.headers.append(n, v);
    }
    request::set_content_type(
        &mut spec.headers,
        "--content-type",
        args.content_type.as_deref(),
    )?;
    spec.body = request::body("--body", args.body.as_deref(), args.body_file.as_deref())?;
    Ok(spec)
}

/// The run's stages: `--stages`, or one stage of `--rps` for `--duration`; the whole run,
/// warm-up included, within [`MAX_RUN`] and every rate within [`MAX_RPS`].
fn stages_from_args(args: &RunArgs) -> Result<Vec<Stage>, UsageError> {
    let stages = match &args.stages {
        Some(s) => parse_stages(s)?,
        None => {
            let rps = args.rps.unwrap_or(DEFAULT_RPS);
            if !(rps.is_finite() && rps > 0.0 && rps <= MAX_RPS) {
                return Err(UsageError::new(format!(
                    "--rps {rps}: must be a number > 0 and at most {MAX_RPS}"
                )));
            }
            let duration = args.duration.unwrap_or(DEFAULT_DURATION);
            if duration.is_zero() {
                return Err(UsageError::new("--duration must be > 0"));
            }
            vec![Stage {
                duration,
                from: rps,
                to: rps,
            }]
        }
    };
    let ms = Duration::from_millis(1);
    // Checked: a duration near u64::MAX seconds must be an error, not an overflow.
    let total = stages
        .iter()
        .try_fold(args.warmup, |acc, s| acc.checked_add(s.duration))
        .unwrap_or(Duration::MAX);
    within(
        "run length (--duration or --stages, plus --warmup)",
        total,
        ms,
        MAX_RUN,
    )?;
    if let Some(s) = stages.iter().find(|s| s.from.max(s.to) > MAX_RPS) {
        return Err(UsageError::new(format!(
            "--stages: rate {} is above the maximum of {MAX_RPS} requests per second",
            s.from.max(s.to)
        )));
    }
    Ok(stages)
}

/// Parses `--check` and gives each target its checks; a scope must name a target.
fn attach_checks(args: &RunArgs, targets: &mut [Target]) -> Result<(), UsageError> {
    use crate::configured::checks::{self, Checks, MAX_BODY_BYTES};
    if !(1..=MAX_BODY_BYTES).contains(&args.check_body_bytes) {
        return Err(UsageError::new(format!(
            "--check-body-bytes {}: between 1 and {MAX_BODY_BYTES}",
            args.check_body_bytes
        )));
    }
    let all = args
        .checks
        .iter()
        .map(|c| checks::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    for s in &all {
        if let Some(t) = &s.target {
            if !targets.iter().any(|x| &x.name == t) {
                return Err(UsageError::new(format!(
                    "--check {:?}: no target is named {t:?}",
                    s.text
                )));
            }
        }
    }
    for t in targets.iter_mut() {
        t.checks = Checks::for_target(&all, &t.name, args.check_body_bytes);
    }
    Ok(())
}

impl RunConfig {
    /// Checks the flags and resolves targets (reading the process environment for
    /// `LOADGEN_TARGET_<NAME>`).
    pub fn from_args(args: &RunArgs) -> Result<RunConfig, UsageError> {
        let file = match &args.targets_file {
            Some(p) => Some(crate::configured::targets_file::load_file(p)?),
            None => None,
        };
        let defaults = request_from_args(args)?;
        let targets = target::resolve(
            &args.targets,
            file.as_ref(),
            args.path.as_deref(),
            &defaults,
            &|k| std::env::var(k).ok(),
        )?;
        let ms = Duration::from_millis(1);
        let stages = stages_from_args(args)?;
        let mut targets = targets;
        attach_checks(args, &mut targets)?;
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        let endpoints = crate::configured::requests_file::for_targets(&args.requests, &names)?;
        for (t, eps) in targets.iter_mut().zip(endpoints) {
            t.endpoints = eps;
        }
        within("--timeout", args.timeout, ms, Duration::from_secs(3600))?;
        within(
            "--max-lag",
            args.max_lag,
            Duration::ZERO,
            Duration::from_secs(3600),
        )?;
        let (tick, tick_auto) = match args.tick {
            crate::schedule::tick::Tick::Auto => (crate::schedule::tick::AUTO_MIN, true),
            crate::schedule::tick::Tick::Fixed(d) => (d, false),
        };
        within("--tick", tick, Duration::ZERO, Duration::from_secs(1))?;
        within("--interval", args.interval, ms, Duration::from_secs(3600))?;
        let slos = crate::judge::slo::parse::gather(&args.slos, args.slo_file.as_deref())?;
        let header_name = |flag: &str, v: &str| {
            v.parse::<HeaderName>()
                .map_err(|_| UsageError::new(format!("{flag} {v:?}: not a valid header name")))
        };
        let positive = |flag: &str, v: usize| {
            if v == 0 {
                Err(UsageError::new(format!("{flag} must be at least 1")))
            } else {
                Ok(v)
            }
        };
        if args.timeout.is_zero() {
            return Err(UsageError::new("--timeout must be > 0"));
        }
        Ok(RunConfig {
            stages,
            warmup: args.warmup,
            arrival: args.arrival,
            timeout: args.timeout,
            connections: match args.connections {
                Some(n) => positive("--connections", n)?,
                None => positive("--max-connections", args.max_connections)?,
            },
            fixed_pool: args.connections.is_some(),
            max_groups: positive("--max-groups", args.max_groups)?,
            max_in_flight: positive("--max-in-flight", args.max_in_flight)?,
            max_lag: args.max_lag,
            tick,
            tick_auto,
            // Each thread takes its own share of the pool and of the in-flight cap (at
            // least one of each), so more threads than either would multiply them.
            threads: positive("--threads", args.threads)?
                .min(256)
                .min(args.max_in_flight.max(1))
                .min(args.connections.unwrap_or(args.max_connections).max(1)),
            slos,
            json: args.json.clone(),
            out: match &args.out {
                Some(o) => {
                    crate::record::rows::check_path(&o.path)
                        .map_err(|e| UsageError::new(format!("--out: {e}")))?;
                    Some(o.clone())
                }
                None => None,
            },
            tls: if targets.iter().any(|t| t.tls.is_some())
                || args.cacert.is_some()
                || args.insecure
            {
                Some(crate::configured::tls::build(
                    args.cacert.as_deref(),
                    args.insecure,
                    http_version(args),
                )?)
            } else {
                None
            },
            pick: args.pick,
            http: http_version(args),
            max_streams: crate::configured::protocol::max_streams(args.max_streams)?,
            resolve_every: within(
                "--resolve-every",
                args.resolve_every,
                Duration::ZERO,
                Duration::from_secs(86_400),
            )?,
            region_header: header_name("--region-header", &args.region_header)?,
            version_header: header_name("--version-header", &args.version_header)?,
            progress: !args.no_progress,
            seed: args.seed.unwrap_or_else(rand::random),
            shard: crate::schedule::shard::Shard::resolve(
                args.shard.as_deref(),
                args.shard_index.as_deref(),
                args.shard_count,
            )?,
            interval: if args.interval.is_zero() {
                return Err(UsageError::new("--interval must be > 0"));
            } else {
                args.interval
            },
            exports: args.exports.clone(),
            events: crate::events::EventLog::default(),
            keep_timeline: false,
            metrics_addr: args.metrics_addr,
            targets,
        })
    }

    /// Total measured duration (stages, without warm-up).
    pub fn measured_duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }
}
#[derive(Debug, serde::Serialize)]
struct JsonSettings {
    stages: Vec<(f64, f64, f64)>,
    warmup_secs: f64,
    arrival: String,
    timeout_secs: f64,
    connections: usize,
    fixed_pool: bool,
    max_in_flight: usize,
    max_lag_secs: f64,
    tick_secs: f64,
    /// `--tick auto`: `tick_secs` is where it started, each target's `ticks` what it chose.
    tick_auto: bool,
    resolve_every_secs: f64,
    /// `--http`: `auto`, `1.1` or `2`.
    http: &'static str,
    /// HTTP/2 streams per connection at most.
    max_streams: u32,
    /// Present when TLS was set up: `insecure` true means certificates were not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<JsonTls>,
    threads: usize,
    seed: u64,
    region_header: String,
    version_header: String,
    shard: String,
    /// Per target: method and body size (the body itself may be large or private).
    requests: std::collections::BTreeMap<String, JsonRequest>,
}

#[derive(Debug, serde::Serialize)]
struct JsonTls {
    insecure: bool,
    cacert: Option<String>,
}

#[derive(Debug, serde::Serialize)]
struct JsonRequest {
    method: String,
    body_bytes: usize,
}

impl RunConfig {
    /// The run's settings as written in the JSON report.
    pub fn settings_json(&self) -> serde_json::Value {
        let cfg = self;
        let settings = JsonSettings {
            stages: cfg
                .stages
                .iter()
                .map(|s| (s.duration.as_secs_f64(), s.from, s.to))
                .collect(),
            warmup_secs: cfg.warmup.as_secs_f64(),
            arrival: format!("{:?}", cfg.arrival).to_lowercase(),
            timeout_secs: cfg.timeout.as_secs_f64(),
            connections: cfg.connections,
            fixed_pool: cfg.fixed_pool,
            max_in_flight: cfg.max_in_flight,
            max_lag_secs: cfg.max_lag.as_secs_f64(),
            tick_secs: cfg.tick.as_secs_f64(),
            tick_auto: cfg.tick_auto,
            resolve_every_secs: cfg.resolve_every.as_secs_f64(),
            http: cfg.http.as_str(),
            max_streams: cfg.max_streams,
            tls: cfg.tls.as_ref().map(|t| JsonTls {
                insecure: t.insecure,
                cacert: t.cacert.as_ref().map(|p| p.display().to_string()),
            }),
            threads: cfg.threads,
            seed: cfg.seed,
            region_header: cfg.region_header.to_string(),
            version_header: cfg.version_header.to_string(),
            shard: cfg.shard.to_string(),
            requests: cfg
                .targets
                .iter()
                .map(|t| {
                    let r = &t.request;
                    let body_bytes = r.body.as_deref().map_or(0, <[u8]>::len);
                    let method = r.method.to_string();
                    (t.name.clone(), JsonRequest { method, body_bytes })
                })
                .collect(),
        };
        serde_json::to_value(settings).unwrap_or_default()
    }
}
