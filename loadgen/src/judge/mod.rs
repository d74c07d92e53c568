//! Judging a run: its SLO verdicts, whether loadgen itself limited it, and the exit code.
//!
//! - [`slo`]: SLO syntax (short form and k6 thresholds) and evaluation.
//! - [`limits`]: whether loadgen itself (its connection pool or its CPU) limited the run.
//! - [`tick`]: whether a `--tick`'s bursts moved the median (each run checks itself).

pub mod limits;
pub mod slo;
pub mod tick;

use crate::error::UsageError;
use slo::{Slo, Verdict};

/// Every SLO passed (or none was given).
pub const EXIT_OK: u8 = 0;
/// Runtime failure.
pub const EXIT_FAILURE: u8 = 1;
/// Usage error.
pub const EXIT_USAGE: u8 = 2;
/// At least one SLO failed.
pub const EXIT_SLO_FAILED: u8 = 99;

/// Exit code for an error that ended the program.
pub fn exit_code_for(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<UsageError>().is_some() {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

/// Exit code for a set of verdicts.
pub fn verdict_code(verdicts: &[Verdict]) -> u8 {
    if verdicts.iter().all(|v| v.pass) {
        EXIT_OK
    } else {
        EXIT_SLO_FAILED
    }
}

/// Judges `results` against `slos`: one verdict per SLO, in order, and the exit code
/// they decide. Every command that produces a report judges through here.
pub fn judge(slos: &[Slo], results: &crate::results::Results) -> (Vec<Verdict>, u8) {
    let verdicts: Vec<Verdict> = slos.iter().map(|s| slo::evaluate(s, results)).collect();
    let code = verdict_code(&verdicts);
    (verdicts, code)
}
