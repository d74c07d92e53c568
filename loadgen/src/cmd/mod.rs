//! The commands: each drives the stages for one kind of invocation and ends, when it
//! produces a report, through [`crate::report::finish`].
//!
//! - [`run`]: one load run (`loadgen [flags]`).
//! - [`merge`]: shards of one run merged exactly (`loadgen merge`).
//! - [`compare`]: the p95/p99 regression gate against a baseline (`loadgen compare`).
//! - [`lab`]: the embedded two-region fleet and a run against it (`loadgen lab`).
//!
//! [`dispatch`] picks the command the command line names.

pub(crate) mod compare;
pub mod lab;
pub(crate) mod merge;
pub mod run;

use crate::configured::cli::{Cli, Command};
use crate::configured::config::RunConfig;

/// Runs what the command line asks for and returns the exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Some(Command::Lab(args)) => lab::run_lab(&args),
        Some(Command::Merge(args)) => merge::run_merge(&args),
        Some(Command::Compare(args)) => compare::run_compare(&args),
        None => {
            let cfg = RunConfig::from_args(&cli.run)?;
            Ok(run::execute(cfg, true)?.judgement.exit_code)
        }
    }
}
