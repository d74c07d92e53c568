//! The comparison's result rows: one per client run, server run and memory run, and the
//! whole set with the machine it ran on. The harness fills them; the README writer and the
//! JSON output read them.

use serde::Serialize;

use crate::machine::Machine;

#[derive(Debug, Clone, Serialize)]
pub struct ClientRun {
    pub tool: String,
    /// Which round of the alternation (1-based; 0 outside the rounds).
    pub round: usize,
    pub mode: String,
    pub target_rps: Option<f64>,
    pub duration_secs: f64,
    /// Responses per second of the configured duration.
    pub achieved_rps: f64,
    pub responses: u64,
    pub errors: u64,
    pub dropped: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// loadgen's pacing lag p99, milliseconds.
    pub pacing_p99_ms: Option<f64>,
    /// loadgen's answers read after it stopped holding its sleeps, the kernel's arrival
    /// stamps not being receipt times (0: the stamps held up).
    pub stamps_unheld: u64,
    /// Client CPU (user + system) per response, microseconds.
    pub cpu_us_per_req: f64,
    /// Client CPU as a fraction of one core over its wall time.
    pub cpu_util: f64,
    /// The client's voluntary context switches (sleeps ended by a wake-up) per response.
    pub wakeups_per_req: f64,
    pub peak_rss_mib: f64,
    /// Server CPU as a fraction of one core during the run.
    pub server_cpu_util: f64,
    /// Why the run has no figures (tool missing or failed).
    pub error: Option<String>,
}

/// echo-svc or nginx under wrk and at a fixed rate.
#[derive(Debug, Clone, Serialize)]
pub struct ServerRow {
    pub server: String,
    /// Mean of the wrk rounds.
    pub wrk_rps: f64,
    /// Requests per CPU-second of the server (its CPU from /proc over the wrk rounds).
    pub rps_per_core: f64,
    /// The same, round by round.
    pub rps_per_core_rounds: Vec<f64>,
    pub server_cpu_util: f64,
    pub fixed_rate: f64,
    pub fixed_p50_ms: Option<f64>,
    pub fixed_p99_ms: Option<f64>,
    pub idle_rss_mib: f64,
    pub peak_rss_mib: f64,
}

/// Peak RSS of one loadgen run.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryRow {
    pub duration_secs: f64,
    pub rate: f64,
    pub responses: u64,
    pub peak_rss_mib: f64,
}

/// One loadgen run of the tick sweep: a `--tick` against a near or a far server.
#[derive(Debug, Clone, Serialize)]
pub struct TickRun {
    /// Which server: `near` (loopback echo-svc) or the far one's injected delay.
    pub server: String,
    /// The `--tick` value as given (`0s` is exact pacing).
    pub tick: String,
    pub run: ClientRun,
}

/// Everything one harness run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub machine: Machine,
    pub command: String,
    pub started_utc: String,
    pub connections: usize,
    /// Rounds of each alternation.
    pub rounds: usize,
    pub peers: Vec<ClientRun>,
    /// The HTTP/2 rows (loadgen, h2load, oha over h2c).
    pub h2: Vec<ClientRun>,
    pub max: Vec<ClientRun>,
    pub servers: Vec<ServerRow>,
    pub memory: Vec<MemoryRow>,
    pub ticks: Vec<TickRun>,
}
