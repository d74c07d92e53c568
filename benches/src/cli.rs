//! Flags of the `benches` binary.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Exit codes, shown at the end of `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0   every gate passed (slo) / the comparison ran and the table was written (compare)
  1   runtime failure (a server did not start, a tool is missing, ...)
  2   usage error
  99  a gate failed (slo)";

/// Performance gates for CI and side-by-side comparisons with peer load tools.
/// All traffic goes to loopback only.
#[derive(Debug, Parser)]
#[command(name = "benches", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// End-to-end SLO bench: echo-svc us/eu × v1/v2 in-process, loadgen at fixed rates,
    /// gated on p99, errors, dropped and CPU per request.
    #[command(after_help = EXIT_CODES)]
    Slo(SloArgs),
    /// Side-by-side comparison with k6, oha, autocannon, hey, wrk and nginx, each process
    /// pinned to its own core; writes the results table into benches/README.md.
    #[command(after_help = EXIT_CODES)]
    Compare(CompareArgs),
    /// The floor: a paced HTTP/1.1 client that makes only the system calls each tick needs
    /// and times nothing; its CPU per request is the least any client can spend here at
    /// that tick. `compare` runs it beside the peers. Loopback only.
    Floor(FloorArgs),
}

/// Flags of `benches floor`.
#[derive(Debug, Clone, Args)]
pub struct FloorArgs {
    /// Server URL (`http://` on a loopback address).
    #[arg(long)]
    pub url: String,

    /// Requests per second.
    #[arg(long)]
    pub rps: f64,

    /// Length of the run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Keep-alive connections, opened before the first tick.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,

    /// One wake-up per tick sends every request then due.
    #[arg(long, default_value = "500us", value_parser = humantime::parse_duration)]
    pub tick: Duration,

    /// Also do the least a client that times its answers must: wake-ups on time (1 ns
    /// timer slack), a kernel arrival stamp on every read, a clock reading per send, each answer's head parsed (status, framing,
    /// region and version) and two latencies recorded in HDR histograms. The report then
    /// carries `latency`. Without it, the floor times nothing.
    #[arg(long)]
    pub measure: bool,
}

/// Flags of `benches slo`.
#[derive(Debug, Clone, Args)]
pub struct SloArgs {
    /// The short CI version: 1000 and 3000 rps, 3 s each after 0.5 s of warm-up.
    #[arg(long)]
    pub short: bool,

    /// Total rate of a step (repeatable; overrides the profile's rates).
    #[arg(long = "rate", value_delimiter = ',')]
    pub rates: Vec<f64>,

    /// Measured length of each step (default 3s with --short, else 15s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Warm-up before each step (default 500ms with --short, else 2s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,

    /// Corrected p99 bound, overall and per (region, version) group.
    /// [default: 50ms]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub p99: Option<Duration>,

    /// Bound on loadgen's CPU microseconds per request at the highest rate, least of the
    /// repeats. [default: 90]
    #[arg(long)]
    pub max_loadgen_cpu_us: Option<f64>,

    /// Bound on echo-svc's CPU microseconds per request, as for loadgen. [default: 90]
    #[arg(long)]
    pub max_echo_cpu_us: Option<f64>,

    /// Bound on loadgen's CPU per request over echo-svc's, the least of each at the highest
    /// rate: the 2x-regression gate, which a slower or busier machine moves for both sides.
    /// [default: 1.7]
    #[arg(long)]
    pub max_loadgen_over_echo: Option<f64>,

    /// Runs of each rate step; the CPU gates take the least of the highest rate's runs.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,

    /// Server-wide faults for every echo-svc instance, e.g. `delay=30ms` (shows the gate failing).
    #[arg(long)]
    pub faults: Option<String>,

    /// loadgen connections per target.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,

    /// Also write the measurements and verdicts as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Flags of `benches compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// echo-svc binary (release build).
    #[arg(long, default_value = "target/release/echo-svc")]
    pub echo_bin: PathBuf,

    /// loadgen binary (release build).
    #[arg(long, default_value = "target/release/loadgen")]
    pub loadgen_bin: PathBuf,

    /// Length of each load run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Rounds of each alternation (peers, maximum rate, servers); medians and spreads are
    /// over them.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,

    /// Rates for loadgen vs peers.
    #[arg(long = "rate", value_delimiter = ',', default_values_t = [5000.0, 20000.0])]
    pub rates: Vec<f64>,

    /// Connections for every tool (hey gets exactly this many workers).
    #[arg(long, default_value_t = 50)]
    pub connections: usize,

    /// Fixed open-loop rate for echo-svc vs nginx latency.
    #[arg(long, default_value_t = 10000.0)]
    pub server_rate: f64,

    /// Memory over time: the long run's length (the short one is a tenth of it). 0s skips it.
    #[arg(long, default_value = "200s", value_parser = humantime::parse_duration)]
    pub memory_long: Duration,

    /// The `--tick` trade-off: loadgen at `--tick-rate` with each of these ticks, alternated
    /// over the rounds, against a near server and a far one. Empty skips it.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0s,250us,500us,1ms,2ms,auto"
    )]
    pub tick_sweep: Vec<String>,

    /// Rate of the tick sweep.
    #[arg(long, default_value_t = 5000.0)]
    pub tick_rate: f64,

    /// The far server of the tick sweep: echo-svc with this server-side delay, standing for
    /// a region tens of ms away. 0s leaves it out.
    #[arg(long, default_value = "30ms", value_parser = humantime::parse_duration)]
    pub far_delay: Duration,

    /// Core for the server under test.
    #[arg(long, default_value_t = 0)]
    pub server_core: usize,

    /// Core for the load generator.
    #[arg(long, default_value_t = 1)]
    pub client_core: usize,

    /// Leave these sections out (comma-separated: peers, h2, ticks, max, servers, memory) or
    /// these tools (floor, floor-timed, k6, oha, autocannon, hey, h2load, oha-h2).
    #[arg(long, value_delimiter = ',')]
    pub skip: Vec<String>,

    /// README to write the results into (between its result markers).
    #[arg(long, default_value = "benches/README.md")]
    pub readme: PathBuf,

    /// Print the table but leave the README alone.
    #[arg(long)]
    pub no_readme: bool,

    /// Also write every measurement as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}
