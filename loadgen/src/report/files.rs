//! Writing the report files a run or a merge asks for besides `--json`:
//! `--summary-export` ([`crate::report::k6`]), `--junit` ([`crate::report::junit`]) and `--html`
//! ([`crate::report::html`]).

use std::path::Path;

use anyhow::Context as _;

use crate::configured::cli::ExportArgs;
use crate::judge::slo::Slo;
use crate::judge::Judgement;
use crate::results::Results;
use crate::timeline::Timeline;

fn write(path: &Path, what: &str, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text)
        .with_context(|| format!("cannot write the {what} to {}", path.display()))
}

/// Writes every requested file. `slos[i]` was judged by `judgement.verdicts[i]`; `settings` is the
/// run's settings object as in the JSON report.
pub fn write_all(
    args: &ExportArgs,
    settings: &serde_json::Value,
    r: &Results,
    timeline: Option<&Timeline>,
    events: &[crate::events::Event],
    slos: &[Slo],
    judgement: &Judgement,
) -> anyhow::Result<()> {
    let verdicts = &judgement.verdicts;
    if let Some(p) = &args.summary_export {
        let v = crate::report::k6::build(r, slos, verdicts);
        write(p, "k6 summary", &serde_json::to_string_pretty(&v)?)?;
    }
    if let Some(p) = &args.junit {
        write(
            p,
            "JUnit report",
            &crate::report::junit::render("loadgen", verdicts, r.measured_secs),
        )?;
    }
    if let Some(p) = &args.hdr_log {
        match timeline {
            Some(tl) => crate::report::hdrlog::write(p, tl)?,
            None => crate::report::console::note(format_args!(
                "loadgen: --hdr-log {} not written: merged reports carry no per-interval data",
                p.display()
            )),
        }
    }
    if let Some(p) = &args.html {
        write(
            p,
            "HTML report",
            &crate::report::html::render(settings, r, timeline, events, judgement),
        )?;
    }
    Ok(())
}
