//! Writing the report files a run or a merge asks for besides `--json`:
//! `--summary-export` ([`crate::summary`]) and `--junit` ([`crate::junit`]).

use std::path::Path;

use anyhow::Context as _;

use crate::cli::ExportArgs;
use crate::record::Results;
use crate::slo::{Slo, Verdict};

fn write(path: &Path, what: &str, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text)
        .with_context(|| format!("cannot write the {what} to {}", path.display()))
}

/// Writes every requested file. `slos[i]` was judged by `verdicts[i]`.
pub fn write_all(
    args: &ExportArgs,
    r: &Results,
    slos: &[Slo],
    verdicts: &[Verdict],
) -> anyhow::Result<()> {
    if let Some(p) = &args.summary_export {
        let v = crate::summary::build(r, slos, verdicts);
        write(p, "k6 summary", &serde_json::to_string_pretty(&v)?)?;
    }
    if let Some(p) = &args.junit {
        write(
            p,
            "JUnit report",
            &crate::junit::render("loadgen", verdicts, r.measured_secs),
        )?;
    }
    Ok(())
}
