//! loadgen: an open-loop HTTP load generator whose numbers can be trusted.
//!
//! Requests go out on a schedule that does not wait for responses; latency is measured
//! from each request's *scheduled* time (corrected for coordinated omission) into HDR
//! histograms per target, served region, version and status class; SLO gates decide the
//! exit code.
//!
//! A request's path through the crate, one stage per folder:
//!
//! 0. **configured** — [`configured`]: the flags, checked into a run configuration of named
//!    targets, what each is sent, and the roots that `https://` trusts.
//! 1. **scheduled** — [`schedule`]: stages and ramps, warm-up, fixed and Poisson arrivals,
//!    and [`schedule::shard`], which slice of the schedule this process sends.
//! 2. **sent** — `send`: worker threads, open-loop dispatch, connection pools, the lean
//!    HTTP/1.1 exchange and the precise clock.
//! 3. **recorded** — [`record`]: each worker's [`record::Recorder`] puts every request into
//!    exactly one accounting bucket and every answer into HDR histograms.
//! 4. **judged** — [`judge`]: SLO verdicts, whether loadgen itself limited the run, the
//!    exit code.
//! 5. **reported** — [`report`]: the terminal table, the JSON report (written and read
//!    back), HTML, JUnit, the k6 summary and the HDR interval log, all through one
//!    end-of-run path, [`report::finish`].
//!
//! Beside the path: `live` (progress and Prometheus metrics during a run) and [`cmd`], the
//! commands that drive it (`run`, `merge`, `compare`, `lab`).
//!
//! Shared vocabulary, each in its own small module: [`hist`] (the latency histograms), [`results`] (what a run measured), [`timeline`] (its intervals), [`pool`] (how each target's connections coped),
//! [`stamps`] (the kernel's arrival stamps: how they are taken on Linux and how they held up), [`events`] (what a scenario marked on the run's timeline), [`error`] (bad input, exit 2) and [`units`] (durations for people).
//!
//! The public surface is what the binary, the tests and the benches use: [`dispatch`],
//! [`execute`] and [`RunOutcome`], the exit codes, the configuration, the results model,
//! the schedule, the recorder, judging and the report formats.

pub mod cmd;
pub mod configured;
pub mod error;
pub mod events;
pub mod hist;
pub mod judge;
mod live;
pub mod pool;
pub mod record;
pub mod report;
pub mod results;
pub mod schedule;
mod send;
pub mod stamps;
pub mod timeline;
pub mod units;

pub use cmd::dispatch;
pub use cmd::run::{execute, RunOutcome};
pub use judge::{exit_code_for, EXIT_FAILURE, EXIT_OK, EXIT_SLO_FAILED, EXIT_USAGE};
