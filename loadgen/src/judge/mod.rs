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

/// Everything the judge decided about a run, computed once: the renderers format it and
/// never decide again.
#[derive(Debug, Clone)]
pub struct Judgement {
    /// `slos[i]` was judged by `verdicts[i]`.
    pub verdicts: Vec<Verdict>,
    /// What the verdicts decide ([`EXIT_OK`] or [`EXIT_SLO_FAILED`]).
    pub exit_code: u8,
    /// What limited each target that was limited: loadgen or the target (see [`limits`]).
    pub limits: Vec<limits::Limit>,
    /// Per target, whether a `--tick`'s bursts moved the median (empty in exact mode).
    pub ticks: Vec<tick::TickCheck>,
}

impl Judgement {
    /// Whether loadgen itself limited `target` (`None`: any target).
    pub fn generator_limited(&self, target: Option<&str>) -> bool {
        self.limits
            .iter()
            .any(|l| l.by == limits::By::Loadgen && target.map_or(true, |t| l.target == t))
    }
}

/// Judges `results` against `slos`: what limited the run, the tick checks, one verdict
/// per SLO in order, and the exit code they decide. Every command that produces a report
/// judges through here.
pub fn judge(slos: &[Slo], results: &crate::results::Results) -> Judgement {
    let limits = limits::limits(results);
    let verdicts: Vec<Verdict> = slos
        .iter()
        .map(|s| slo::evaluate(s, results, &limits))
        .collect();
    Judgement {
        exit_code: verdict_code(&verdicts),
        verdicts,
        limits,
        ticks: tick::checks(results),
    }
}
