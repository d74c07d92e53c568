//! benches: performance gates for CI and side-by-side comparisons with peer tools.
//!
//! Module map:
//!
//! - [`cli`]: the `benches` binary's flags and subcommands (`slo`, `compare`, `floor`); [`dispatch`]
//!   dispatches them.
//! - [`procfs`]: CPU time and memory of processes and threads (`/proc`, `wait4`).
//! - [`fleet`]: an in-process echo-svc fleet (us/eu × v1/v2) on a thread of its own.
//! - `floor` (Linux only): the least CPU per request a paced client can spend on this machine at a
//!   tick, as a client that makes only the system calls a tick needs (`benches floor`); its
//!   `books`, what the loop adds to them: nothing, or with `--measure` the least that honest
//!   timing adds.
//! - [`gate`]: the end-to-end SLO bench: loadgen against the fleet, gated on p99, errors,
//!   dropped requests and CPU per request.
//! - [`peers`]: how each load tool is run.
//! - [`outputs`]: how each load tool's report is read back.
//! - [`compare`]: the comparison harness: pinned processes on loopback, side by side.
//! - [`runs`]: one bounded client run, measured, as the harness's sections use it.
//! - [`procs`]: the processes under test (echo-svc, nginx), started pinned and stopped.
//! - [`results`]: the comparison's result rows, shared by the harness and the README writer.
//! - [`machine`]: the machine description that goes with every result table.
//! - [`readme`]: renders the results and writes them into `benches/README.md`.
//! - [`targets`]: the targets each comparison is held to, and the ratios the tables share.
//! - [`ticks`]: the `--tick` trade-off section (CPU and wake-ups against latency moved).
//! - [`cells`]: table cells the README sections share (medians, spreads, milliseconds).
//!
//! The criterion micro-benchmarks of the hot paths are in `benches/hot_paths.rs`.

pub mod cells;
pub mod cli;
pub mod compare;
pub mod fleet;
#[cfg(target_os = "linux")]
pub mod floor;
pub mod gate;
pub mod machine;
pub mod outputs;
pub mod peers;
pub mod procfs;
pub mod procs;
pub mod readme;
pub mod results;
pub mod runs;
pub mod targets;
pub mod ticks;

/// Runs a subcommand and returns the exit code.
pub fn dispatch(cli: cli::Cli) -> anyhow::Result<u8> {
    match cli.command {
        cli::Command::Slo(a) => gate::run_slo(&a),
        cli::Command::Compare(a) => compare::side_by_side(&a),
        #[cfg(target_os = "linux")]
        cli::Command::Floor(a) => floor::measure(&a),
        // The floor is written on epoll, to make no system call a tick does not need.
        #[cfg(not(target_os = "linux"))]
        cli::Command::Floor(_) => anyhow::bail!("benches floor needs Linux (epoll)"),
    }
}
