//! Scale-out: splitting one run across N processes (`--shard i/n`, e.g. the pods of an
//! Indexed Job) and merging their JSON reports exactly (`loadgen merge`).
//!
//! **Splitting.** Every worker thread already takes every `threads`-th request of each
//! target's schedule. Shard `i` of `n` with `T` threads simply runs workers
//! `i*T .. i*T+T` of `n*T`: the shards interleave request by request, so together they
//! send exactly the whole schedule (stages and warm-up included), each at 1/n of the rate.
//!
//! **Merging.** Counts add and HDR histograms add, so the merged percentiles are exactly
//! those one process would have recorded. Shards run side by side, so the merged measured
//! time is the longest of them (not the sum) and rates are totals over that window.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::Context as _;

use crate::cli::MergeArgs;
use crate::config::UsageError;
use crate::record::{new_histogram, GroupHist, GroupKey, Results, TargetResult};
use crate::saved::SavedRun;
use crate::slo::{Slo, Verdict};

/// This process's part of a sharded run: `index` in `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard { index: 0, count: 1 }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Builds a shard from its parts, checking `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Shard, UsageError> {
        if count == 0 {
            return Err(UsageError::new("shard count must be at least 1"));
        }
        if index >= count {
            return Err(UsageError::new(format!(
                "shard index {index} is out of range for {count} shards (indexes start at 0)"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Parses `i/n` (zero-based index, as Kubernetes' `JOB_COMPLETION_INDEX`).
    pub fn parse(s: &str) -> Result<Shard, UsageError> {
        let bad = || UsageError::new(format!("bad shard {s:?}: expected INDEX/COUNT, e.g. 0/4"));
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let i: usize = i.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        Shard::new(i, n)
    }

    /// The shard from `--shard`, or else from an index (`JOB_COMPLETION_INDEX`) and a
    /// count (`--shard-count`); none of them means a single unsharded process.
    pub fn resolve(
        spec: Option<&str>,
        index: Option<&str>,
        count: Option<usize>,
    ) -> Result<Shard, UsageError> {
        match (spec, index, count) {
            (Some(s), _, _) => Shard::parse(s),
            (None, Some(i), Some(n)) => {
                let i: usize = i.trim().parse().map_err(|_| {
                    UsageError::new(format!("bad JOB_COMPLETION_INDEX {i:?}: expected a number"))
                })?;
                Shard::new(i, n)
            }
            (None, None, Some(n)) if n > 1 => Err(UsageError::new(format!(
                "--shard-count {n} needs a shard index: set JOB_COMPLETION_INDEX or use --shard i/{n}"
            ))),
            _ => Ok(Shard::default()),
        }
    }

    /// The global worker index and worker count for local worker `w` of `threads`.
    pub fn worker(&self, w: usize, threads: usize) -> (usize, usize) {
        (self.index * threads + w, self.count * threads)
    }
}

/// Why saved runs cannot be merged (the inputs do not belong together: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge: give at least one JSON report")]
    Empty,
    #[error(
        "target {name:?} has URL {a} in {a_path} but {b} in {b_path}: these runs did not load the same target"
    )]
    UrlMismatch {
        name: String,
        a: String,
        a_path: String,
        b: String,
        b_path: String,
    },
}

/// Adds runs that happened side by side (shards of one run).
pub fn merge_runs(runs: &[SavedRun]) -> Result<Results, MergeError> {
    if runs.is_empty() {
        return Err(MergeError::Empty);
    }
    let mut targets: Vec<TargetResult> = Vec::new();
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    let mut groups: BTreeMap<GroupKey, GroupHist> = BTreeMap::new();
    let mut pacing = new_histogram();
    let mut measured_secs: f64 = 0.0;
    let mut interrupted = false;
    for run in runs {
        let r = &run.results;
        for t in &r.targets {
            match targets.iter_mut().find(|x| x.name == t.name) {
                Some(x) => {
                    if x.url != t.url {
                        return Err(MergeError::UrlMismatch {
                            name: t.name.clone(),
                            a: x.url.clone(),
                            a_path: origin.get(&t.name).cloned().unwrap_or_default(),
                            b: t.url.clone(),
                            b_path: run.path.display().to_string(),
                        });
                    }
                    x.requested_rps += t.requested_rps;
                    x.measured.merge(&t.measured);
                    x.warmup.merge(&t.warmup);
                    x.pool.merge(&t.pool);
                    x.folded += t.folded;
                }
                None => {
                    origin.insert(t.name.clone(), run.path.display().to_string());
                    targets.push(t.clone());
                }
            }
        }
        for (k, g) in &r.groups {
            groups.entry(k.clone()).or_default().merge(g);
        }
        let _ = pacing.add(&r.pacing);
        measured_secs = measured_secs.max(r.measured_secs);
        interrupted |= r.interrupted;
    }
    Ok(Results {
        targets,
        groups,
        pacing,
        measured_secs,
        interrupted,
    })
}

/// `loadgen merge`: reads the reports, merges them, judges the SLOs, prints the report,
/// writes the requested files and returns the exit code.
pub fn run_merge(args: &MergeArgs) -> anyhow::Result<u8> {
    let mut runs = Vec::with_capacity(args.inputs.len());
    for p in &args.inputs {
        runs.push(crate::saved::load(p)?);
    }
    let mut slos: Vec<Slo> = Vec::new();
    for s in &args.slos {
        slos.extend(crate::slo::parse(s)?);
    }
    if let Some(p) = &args.slo_file {
        let text = crate::error::read_input(p, "SLO file")?;
        slos.extend(crate::slo::parse_file(&text)?);
    }
    if slos.is_empty() {
        // Judge by the SLOs the runs were given (each once, in order of appearance).
        let mut seen: Vec<&str> = Vec::new();
        for text in runs.iter().flat_map(|r| r.slos.iter()) {
            if !seen.contains(&text.as_str()) {
                seen.push(text);
                slos.extend(crate::slo::parse(text).with_context(|| {
                    format!("an input records an SLO this version cannot read: {text:?}")
                })?);
            }
        }
    }
    let results = merge_runs(&runs).map_err(|e| UsageError::new(e.to_string()))?;
    let verdicts: Vec<Verdict> = slos
        .iter()
        .map(|s| crate::slo::evaluate(s, &results))
        .collect();
    let exit_code = crate::verdict_code(&verdicts);
    crate::console::note(format_args!(
        "loadgen: merged {} report(s): {}",
        runs.len(),
        runs.iter()
            .map(|r| r.path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut settings = runs[0].settings.clone();
    if let serde_json::Value::Object(m) = &mut settings {
        m.insert(
            "merged_from".into(),
            runs.iter()
                .map(|r| serde_json::Value::from(r.path.display().to_string()))
                .collect(),
        );
    }
    // Files first (whatever becomes of stdout); a write failure counts after printing.
    let written = (|| -> anyhow::Result<()> {
        if let Some(path) = &args.json {
            let json =
                crate::report::to_json_with(settings.clone(), &results, &verdicts, exit_code)?;
            std::fs::write(path, json)
                .with_context(|| format!("cannot write the JSON report to {}", path.display()))?;
        }
        crate::export::write_all(&args.exports, &settings, &results, None, &slos, &verdicts)
    })();
    crate::console::out(&crate::report::render(&results, &verdicts));
    written?;
    Ok(exit_code)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_and_checks_shards() {
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
        assert!(Shard::parse("4/4").is_err());
        assert!(Shard::parse("1/0").is_err());
        assert!(Shard::parse("x").is_err());
        assert_eq!(
            Shard::resolve(None, Some("3"), Some(5)).unwrap(),
            Shard { index: 3, count: 5 }
        );
        assert!(Shard::resolve(None, None, Some(3)).is_err());
        assert_eq!(Shard::resolve(None, None, None).unwrap(), Shard::default());
        // An explicit --shard wins over the environment.
        assert_eq!(
            Shard::resolve(Some("0/2"), Some("7"), Some(9)).unwrap(),
            Shard { index: 0, count: 2 }
        );
        assert_eq!(Shard { index: 1, count: 3 }.worker(1, 2), (3, 6));
    }

    fn run(path: &str, url: &str, ok: u64, secs: f64) -> SavedRun {
        let measured = crate::record::Accounting {
            scheduled: ok,
            ok,
            ..Default::default()
        };
        SavedRun {
            path: path.into(),
            results: Results {
                targets: vec![TargetResult {
                    name: "us".into(),
                    url: url.into(),
                    requested_rps: ok as f64 / secs,
                    measured,
                    warmup: Default::default(),
                    pool: Default::default(),
                    folded: 0,
                }],
                groups: Default::default(),
                pacing: new_histogram(),
                measured_secs: secs,
                interrupted: false,
            },
            settings: serde_json::Value::Null,
            slos: vec![],
        }
    }

    #[test]
    fn merge_adds_counts_and_rejects_other_targets() {
        let m = merge_runs(&[
            run("a", "http://x/", 10, 2.0),
            run("b", "http://x/", 30, 2.5),
        ])
        .unwrap();
        assert_eq!(m.targets[0].measured.ok, 40);
        // Side by side: the window is the longest shard's, not the sum.
        assert_eq!(m.measured_secs, 2.5);
        let e = merge_runs(&[run("a", "http://x/", 1, 1.0), run("b", "http://y/", 1, 1.0)])
            .unwrap_err();
        assert!(
            e.to_string().contains("did not load the same target"),
            "{e}"
        );
        assert!(matches!(merge_runs(&[]), Err(MergeError::Empty)));
    }
}
