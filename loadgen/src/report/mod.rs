//! Reporting a judged run: the terminal table ([`text`], its accounting in `accounting`), the JSON report written and
//! read back ([`json`]), HTML ([`html`]), JUnit ([`junit`]), the k6 summary
//! ([`k6`]) and the HDR interval log ([`hdrlog`]), what is printed ([`console`]), and
//! the "what happened" story of a run with events ([`story`]) under the terminal report,
//! whose schedule lines (ticks and the tick check) are in `schedule`.
//!
//! Every command that produces a report ends through [`finish`]: the files first (a
//! closed stdout must not cost the results), then the terminal report; a file that could
//! not be written fails the command only after the report has been printed.

mod accounting;
pub mod console;
mod files;
pub(crate) mod hdrlog;
pub(crate) mod html;
pub mod json;
pub mod junit;
pub(crate) mod k6;
pub mod story;
pub mod text;
mod timing;

use std::path::Path;

use anyhow::Context as _;

use crate::configured::cli::ExportArgs;
use crate::events::Event;
use crate::judge::slo::Slo;
use crate::judge::Judgement;
use crate::results::Results;
use crate::timeline::Timeline;

/// What the end of a judged run writes and prints.
#[derive(Debug)]
pub struct Finish<'a> {
    pub results: &'a Results,
    /// `slos[i]` was judged by `judgement.verdicts[i]`.
    pub slos: &'a [Slo],
    pub judgement: &'a Judgement,
    /// The run's settings as the JSON report carries them.
    pub settings: serde_json::Value,
    pub json: Option<&'a Path>,
    pub exports: &'a ExportArgs,
    /// Per-interval data (runs only; merged reports have none).
    pub timeline: Option<&'a Timeline>,
    /// Events marked during the run (empty unless a scenario marked some).
    pub events: &'a [Event],
    /// What happened between them, printed under the report.
    pub story: Option<&'a story::Story>,
}

/// The one end-of-run path: write every report file, then print the report.
pub fn finish(f: &Finish<'_>) -> anyhow::Result<()> {
    let written = (|| -> anyhow::Result<()> {
        if let Some(path) = f.json {
            let json = json::write::to_json_with(f.settings.clone(), f.results, f.judgement)?;
            std::fs::write(path, json)
                .with_context(|| format!("cannot write the JSON report to {}", path.display()))?;
        }
        files::write_all(
            f.exports,
            &f.settings,
            f.results,
            f.timeline,
            f.events,
            f.slos,
            f.judgement,
        )
    })();
    let style = text::Style::for_stdout(f.exports.wide);
    let mut out = text::render_styled(f.results, f.judgement, &style);
    if let Some(s) = f.story {
        out.push_str(&story::render(s));
    }
    console::out(&out);
    written
}
