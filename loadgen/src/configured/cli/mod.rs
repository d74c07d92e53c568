//! Command-line surface: flags (each with an environment fallback where the course's Job
//! manifests set one) and the `lab` subcommand.
//!
//! Parsing only; turning flags into a validated [`crate::configured::config::RunConfig`] happens in
//! [`crate::configured::config`], so the same checks apply to the lab and to direct runs.

use std::path::PathBuf;
use std::time::Duration;

use crate::schedule::Arrival;
use clap::{Args, Parser, Subcommand};
use lab::LabArgs;

pub mod lab;

/// Exit-code section shown at the end of `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0   the run finished and every SLO passed (or none was given)
  1   runtime failure (cannot resolve a target, cannot write the JSON report, ...)
  2   usage error (bad flag, bad SLO, bad target, bad stage)
  99  at least one SLO failed, or matched no data

Ctrl-C / SIGTERM stop the run early: the partial report is printed and written,
and the exit code is decided by the SLOs on the partial data (0 or 99).
A second Ctrl-C aborts at once with exit code 130 and no report.

`loadgen merge` uses the same codes on merged reports; `loadgen compare` exits 99
when p95 or p99 regressed beyond --max-regression (see their --help).";

/// Open-loop HTTP load generator with coordinated-omission-corrected HDR latency per
/// target, served region and version, and SLO gates.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about, after_help = EXIT_CODES, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands; without one, loadgen runs a load test against `--target`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start an embedded two-region fleet (us and eu, each v1 90% / v2 10%, eu slower),
    /// run load against it with default SLOs and print the report; `--scenario` makes
    /// something happen to it meanwhile (failover, canary, chaos-latency, pod-kill).
    #[command(after_help = EXIT_CODES)]
    Lab(Box<LabArgs>),
    /// Merge the JSON reports of runs that ran side by side (e.g. `--shard` pods): counts
    /// and HDR histograms add exactly; SLOs are judged again on the merged data.
    #[command(after_help = MERGE_EXIT_CODES)]
    Merge(MergeArgs),
    /// Compare a run's JSON report with a baseline's: fail when p95 or p99 of any group
    /// present in both grew by more than `--max-regression`.
    #[command(after_help = COMPARE_EXIT_CODES)]
    Compare(CompareArgs),
}

/// Exit-code section of `loadgen merge --help`.
pub const MERGE_EXIT_CODES: &str = "\
Exit codes:
  0   merged; every SLO passed (or none was given or recorded)
  1   an input cannot be read or is not a loadgen JSON report; an output cannot be written
  2   usage error (bad flag, bad SLO), or inputs that do not belong together
      (the same target name with different URLs)
  99  at least one SLO failed on the merged data, or matched no data

Without --slo, the SLOs recorded in the inputs are judged again.";

/// Exit-code section of `loadgen compare --help`.
pub const COMPARE_EXIT_CODES: &str = "\
Exit codes:
  0   no gated percentile (p95, p99) regressed beyond the bound
  1   an input cannot be read or is not a loadgen JSON report
  2   usage error (bad flag or bound)
  99  a percentile regressed beyond the bound, or no group is present in both runs
      (groups present on one side only are listed but do not fail the gate)";

/// Report files written after a run or a merge (beside `--json`).
#[derive(Debug, Clone, Default, Args)]
pub struct ExportArgs {
    /// Write a k6-compatible summary JSON (like `k6 run --summary-export`): thresholds are
    /// k6's bare booleans, `true` when the threshold FAILED.
    #[arg(long, env = "LOADGEN_SUMMARY_EXPORT")]
    pub summary_export: Option<PathBuf>,

    /// Write JUnit XML with one test case per SLO.
    #[arg(long, env = "LOADGEN_JUNIT")]
    pub junit: Option<PathBuf>,

    /// Write a self-contained HTML report (settings, table, percentile-spectrum plots,
    /// SLO verdicts).
    #[arg(long, env = "LOADGEN_HTML")]
    pub html: Option<PathBuf>,

    /// Write an HdrHistogram interval log (corrected latency in µs per `--interval` and
    /// group, tagged `target/region/version/class`). Runs only, not merges.
    #[arg(long, env = "LOADGEN_HDR_LOG")]
    pub hdr_log: Option<PathBuf>,

    /// Print every column of the latency table (p90, p99.9, the uncorrected p99) and the
    /// full accounting table; by default the report fits the terminal (100 columns when
    /// there is none).
    #[arg(long, env = "LOADGEN_WIDE")]
    pub wide: bool,
}

/// Flags of `loadgen merge`.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// JSON reports written with `--json`.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,

    /// SLOs to judge the merged data by (default: those recorded in the inputs).
    #[arg(long = "slo", value_delimiter = ';')]
    pub slos: Vec<String>,

    /// File with one SLO per line; `#` starts a comment.
    #[arg(long)]
    pub slo_file: Option<PathBuf>,

    /// Write the merged report as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,

    #[command(flatten)]
    pub exports: ExportArgs,
}

/// Flags of `loadgen compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The baseline's JSON report.
    pub base: PathBuf,
    /// The new run's JSON report.
    pub new: PathBuf,
    /// Allowed growth of p95 and p99 per group: `10%` or `0.1`.
    #[arg(long, default_value = "10%")]
    pub max_regression: String,
}

/// Flags of a load run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Targets: `name`, `name=URL`, or a URL (`http://` or `https://`); comma-separated or repeated.
    /// A trailing `@WEIGHT` sets the share of the rate (default: even split).
    /// Bare names resolve from the targets file, then `LOADGEN_TARGET_<NAME>`,
    /// then `http://echo.<name>.mesh.local/`.
    #[arg(long = "target", env = "LOADGEN_TARGETS", value_delimiter = ',')]
    pub targets: Vec<String>,

    /// Targets file (TOML or YAML): `targets: { us: URL, eu: { url: URL, weight: 2 } }`.
    #[arg(long, env = "LOADGEN_TARGETS_FILE")]
    pub targets_file: Option<PathBuf>,

    /// Total request rate across all targets (requests per second).
    #[arg(long, env = "LOADGEN_RPS", conflicts_with = "stages")]
    pub rps: Option<f64>,

    /// Measured run length (after warm-up) at `--rps`.
    #[arg(long, env = "LOADGEN_DURATION", value_parser = humantime::parse_duration, conflicts_with = "stages")]
    pub duration: Option<Duration>,

    /// Ramps as `DURATION:RPS,...`; each stage moves linearly from the previous rate
    /// (0 at the start) to its own, e.g. `30s:1000,2m:5000,30s:0`.
    #[arg(long, env = "LOADGEN_STAGES")]
    pub stages: Option<String>,

    /// Warm-up before measuring, at the first stage's rate (or `--rps`); its requests
    /// are accounted separately and left out of the results.
    #[arg(long, env = "LOADGEN_WARMUP", value_parser = humantime::parse_duration, default_value = "0s")]
    pub warmup: Duration,

    /// Arrival process.
    #[arg(long, env = "LOADGEN_ARRIVAL", value_enum, default_value_t = Arrival::Fixed)]
    pub arrival: Arrival,

    /// Per-request timeout, from when a connection starts on the request (connecting included).
    #[arg(long, env = "LOADGEN_TIMEOUT", value_parser = humantime::parse_duration, default_value = "5s")]
    pub timeout: Duration,

    /// Fix the pool: at most N connections per target (split across threads), never more.
    /// Without it the pool grows on demand up to --max-connections.
    #[arg(long, env = "LOADGEN_CONNECTIONS", conflicts_with = "max_connections")]
    pub connections: Option<usize>,

    /// Cap of each target's connection pool (split across threads). The pool grows on
    /// demand: a connection is opened when a request is due and every one is busy, so it
    /// settles near rate × service time. Kept within the open-file limit.
    #[arg(long, env = "LOADGEN_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Cap on queued + active requests per target; requests over it are dropped.
    #[arg(long, env = "LOADGEN_MAX_IN_FLIGHT", default_value_t = 1000)]
    pub max_in_flight: usize,

    /// A request the generator could not send within this long of its scheduled time
    /// (the generator itself fell behind) is dropped rather than sent late.
    #[arg(long, env = "LOADGEN_MAX_LAG", value_parser = humantime::parse_duration, default_value = "1s")]
    pub max_lag: Duration,

    /// Dispatch granularity. The schedule is coarsened to ticks: every request due within
    /// a tick is sent at its end, in one wake-up, and that tick boundary is the request's
    /// intended time, so latency and pacing lag are timed from when it was really meant to
    /// go (the count per tick is the schedule's). The default `auto` starts at 0.5 ms and,
    /// once a second, takes the largest of 0.5, 1 and 2 ms that is at most a fifteenth of
    /// the nearest target's median service time: loopback and in-region targets keep
    /// 0.5 ms, a region 30 ms away gets 2 ms at about two thirds of the CPU. A duration
    /// (`500us`, `2ms`) fixes the tick. Every ticked run checks on itself what the tick
    /// moved (the report's `tick check` line, per target). `0s` is exact mode: each
    /// request wakes the generator at its own due time, at about twice the CPU at 5000 rps
    /// (benches/README.md).
    #[arg(long, env = "LOADGEN_TICK", value_parser = crate::schedule::tick::parse_tick, default_value = "auto")]
    pub tick: crate::schedule::tick::Tick,

    /// Worker threads; each is a single-threaded event loop with its own share of
    /// the schedule and its own connections. At most 256, and never more than
    /// --connections or --max-in-flight (each thread needs one of each).
    #[arg(long, env = "LOADGEN_THREADS", default_value_t = 1)]
    pub threads: usize,

    /// SLO, repeatable: `p99<300ms`, `error_rate<1%`, `dropped==0`, `rps>=4900`,
    /// scoped `p95{target:eu,version:v2}<200ms`, or k6 syntax
    /// `http_req_duration{target:eu}: p(95)<200`.
    #[arg(long = "slo", env = "LOADGEN_SLOS", value_delimiter = ';')]
    pub slos: Vec<String>,

    /// File with one SLO per line; `#` starts a comment.
    #[arg(long, env = "LOADGEN_SLO_FILE")]
    pub slo_file: Option<PathBuf>,

    /// Write the report as JSON (with HdrHistogram V2 base64 histograms) to this file.
    #[arg(long, env = "LOADGEN_JSON")]
    pub json: Option<PathBuf>,

    /// What an answer must say (repeatable; `{target:NAME}` first keeps it to one target):
    /// `status in 200,204,300-399`, `header NAME == TEXT`, `header NAME ~ REGEX`,
    /// `body contains TEXT`, `body ~ REGEX`. An answer below 400 that fails one counts in
    /// the `check` bucket; gate with the SLO `checks>=99%`.
    #[arg(long = "check", value_name = "CHECK")]
    pub checks: Vec<String>,

    /// Many requests per target from a file: `FILE` for every target, `NAME=FILE` for one
    /// (repeatable). YAML, TOML or JSON (`requests:` with `path`, and optionally `name`,
    /// `method`, `headers`, `body`/`body_file`, `weight`), or vegeta's plain targets format.
    /// Named requests get latency groups of their own and SLO scopes (`{name:checkout}`).
    #[arg(long = "requests", value_name = "[TARGET=]FILE")]
    pub requests: Vec<String>,

    /// Which request of a requests file goes next: `turn` (round-robin), `random`, or
    /// `weight` (random, by each request's weight).
    #[arg(long, env = "LOADGEN_PICK", value_enum, default_value = "turn")]
    pub pick: crate::configured::requests_file::Pick,

    /// Bytes of each answer's body the body checks read (a prefix).
    #[arg(long, env = "LOADGEN_CHECK_BODY_BYTES", default_value_t = crate::configured::checks::DEFAULT_BODY_BYTES)]
    pub check_body_bytes: usize,

    /// Write one row per measured request: `csv=FILE` or `jsonl=FILE` (due, sent and end
    /// times, latency, target, region, version, status, bytes, outcome). Rows the disk
    /// could not take in time are counted and reported, never waited for.
    #[arg(long, env = "LOADGEN_OUT", value_name = "FORMAT=FILE", value_parser = crate::record::rows::OutSpec::parse)]
    pub out: Option<crate::record::rows::OutSpec>,

    /// Request path (default: the target URL's path, else `/`).
    #[arg(long, env = "LOADGEN_PATH")]
    pub path: Option<String>,

    /// Extra request header `Name: value`, repeatable.
    #[arg(long = "header")]
    pub headers: Vec<String>,

    /// HTTP version: `auto` lets an `https://` server choose `h2` or `http/1.1` by ALPN
    /// (`http://` speaks HTTP/1.1); `1.1` never speaks HTTP/2; `2` speaks only HTTP/2, by
    /// ALPN over TLS and with prior knowledge (h2c) over plain TCP.
    #[arg(long, env = "LOADGEN_HTTP", value_enum, default_value = "auto")]
    pub http: crate::configured::protocol::HttpVersion,

    /// Short for `--http 2`.
    #[arg(long, conflicts_with = "http")]
    pub http2: bool,

    /// HTTP/2: requests in flight per connection at most; 0 takes the server's
    /// SETTINGS_MAX_CONCURRENT_STREAMS, up to 100. A new connection opens only when every
    /// stream of the open ones is busy.
    #[arg(long, env = "LOADGEN_MAX_STREAMS", default_value_t = 0)]
    pub max_streams: u32,

    /// For `https://` targets: trust the PEM certificates in FILE instead of the bundled
    /// Mozilla roots (a mesh's root CA, a test CA).
    #[arg(long, env = "LOADGEN_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// For `https://` targets: do not check certificates or host names (traffic is
    /// encrypted, not authenticated). Reported in the run header and the JSON settings.
    #[arg(long, env = "LOADGEN_INSECURE", conflicts_with = "cacert")]
    pub insecure: bool,

    /// Look a target's name up again when a new connection is opened this long after the
    /// last lookup, as a client in a cluster does; connections take all the addresses in
    /// turn. `0` looks each name up once.
    #[arg(long, env = "LOADGEN_RESOLVE_EVERY", value_parser = humantime::parse_duration, default_value = "5s")]
    pub resolve_every: Duration,

    /// Request method (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS). A targets-file
    /// entry may set `method`, `headers`, `content_type`, `body` or `body_file` for its
    /// own target.
    #[arg(long, env = "LOADGEN_METHOD", default_value = "GET")]
    pub method: String,

    /// Request body, sent as given.
    #[arg(long, env = "LOADGEN_BODY", conflicts_with = "body_file")]
    pub body: Option<String>,

    /// Request body read from a file (at most 4 MiB), sent as its bytes.
    #[arg(long, env = "LOADGEN_BODY_FILE")]
    pub body_file: Option<PathBuf>,

    /// `Content-Type` of the body, e.g. `application/json`.
    #[arg(long, env = "LOADGEN_CONTENT_TYPE")]
    pub content_type: Option<String>,

    /// Distinct (served region, version) pairs kept per target; responses with further
    /// pairs are counted under region and version `other` (and the report says how many),
    /// so a server inventing values cannot grow memory without end.
    #[arg(long, env = "LOADGEN_MAX_GROUPS", default_value_t = 64)]
    pub max_groups: usize,

    /// Response header naming the region that served the request.
    #[arg(long, env = "LOADGEN_REGION_HEADER", default_value = "x-echo-region")]
    pub region_header: String,

    /// Response header naming the version that served the request.
    #[arg(long, env = "LOADGEN_VERSION_HEADER", default_value = "x-echo-version")]
    pub version_header: String,

    /// Never draw live progress (it is drawn on stderr only when stderr is a terminal).
    #[arg(long, env = "LOADGEN_NO_PROGRESS")]
    pub no_progress: bool,

    /// Seed for Poisson arrivals (default: random).
    #[arg(long, env = "LOADGEN_SEED")]
    pub seed: Option<u64>,

    /// Run only shard INDEX/COUNT of the schedule (zero-based), so that COUNT processes
    /// together send the requested rate and stages; merge their `--json` with `loadgen merge`.
    #[arg(long, env = "LOADGEN_SHARD")]
    pub shard: Option<String>,

    /// Number of shards when the index comes from `JOB_COMPLETION_INDEX` (Indexed Job).
    #[arg(long, env = "LOADGEN_SHARDS")]
    pub shard_count: Option<usize>,

    /// Shard index for `--shard-count`; Kubernetes Indexed Jobs set it.
    #[arg(long, env = "JOB_COMPLETION_INDEX", hide = true)]
    pub shard_index: Option<String>,

    /// Interval of the latency-over-time data (HTML plot, `--hdr-log`).
    #[arg(long, env = "LOADGEN_INTERVAL", value_parser = humantime::parse_duration, default_value = "1s")]
    pub interval: Duration,

    /// Serve Prometheus metrics (requests, errors, dropped, latency histogram by target,
    /// served region and version) on this address during the run, e.g. `0.0.0.0:9464`;
    /// port 0 picks a free port (printed on stderr).
    #[arg(long, env = "LOADGEN_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    #[command(flatten)]
    pub exports: ExportArgs,
}
