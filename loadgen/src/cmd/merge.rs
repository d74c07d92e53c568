//! `loadgen merge`: the JSON reports of runs that happened side by side (the shards of
//! one run, [`crate::schedule::shard`]) merged exactly, judged and reported again.
//!
//! Counts add and HDR histograms add, so the merged percentiles are exactly
//! those one process would have recorded. Shards run side by side, so the merged measured
//! time is the longest of them (not the sum) and rates are totals over that window.

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::configured::cli::MergeArgs;
use crate::error::UsageError;
use crate::hist::{histogram_bytes, new_histogram};
use crate::judge::slo::Slo;
use crate::report::json::read::{SavedRun, MAX_HISTOGRAM_BYTES};
use crate::results::{GroupHist, GroupKey, Results, TargetResult};

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
    #[error("{path} is given twice: merging it twice would double its counts")]
    Twice { path: String },
    #[error("shard {shard} is given twice ({a} and {b}): a shard's counts may be added once")]
    ShardTwice { shard: String, a: String, b: String },
    #[error("shards of one run disagree on their count ({a} in {a_path}, {b} in {b_path})")]
    ShardCounts {
        a: usize,
        a_path: String,
        b: usize,
        b_path: String,
    },
    #[error("shard(s) {missing} of this run are missing: a merge of part of a run reads like the whole of it")]
    ShardsMissing { missing: String },
    #[error("with {path} the merged histograms take more than {mib} MiB: these are not the shards of one run")]
    TooLarge { path: String, mib: usize },
}

/// Each input once, and the shards of a sharded run each once and all of them. Shards
/// of one run share every setting but their `shard` and `seed`; runs with other settings (another
/// cluster's Job, say) are checked apart.
fn check_shards(runs: &[Input]) -> Result<(), MergeError> {
    let mut paths = std::collections::BTreeSet::new();
    for r in runs {
        let real = std::fs::canonicalize(&r.path).unwrap_or_else(|_| r.path.clone());
        if !paths.insert(real) {
            return Err(MergeError::Twice {
                path: r.path.display().to_string(),
            });
        }
    }
    let mut by_run: BTreeMap<String, Vec<(crate::schedule::shard::Shard, &Input)>> =
        BTreeMap::new();
    for r in runs {
        let shard = r.settings.get("shard").and_then(|v| v.as_str());
        let Some(shard) = shard.and_then(|s| crate::schedule::shard::Shard::parse(s).ok()) else {
            continue;
        };
        if shard.count <= 1 {
            continue;
        }
        let mut rest = r.settings.clone();
        if let serde_json::Value::Object(m) = &mut rest {
            // Each shard may draw its own seed; the rest is the run's.
            m.remove("shard");
            m.remove("seed");
            m.remove("merged_from");
        }
        by_run.entry(rest.to_string()).or_default().push((shard, r));
    }
    for shards in by_run.values() {
        complete(shards)?;
    }
    Ok(())
}

/// One sharded run's shards: one count, each index once, none missing.
fn complete(shards: &[(crate::schedule::shard::Shard, &Input)]) -> Result<(), MergeError> {
    let (first, first_run) = shards[0];
    let mut have: Vec<Option<&Input>> = vec![None; first.count];
    for (s, r) in shards {
        if s.count != first.count {
            return Err(MergeError::ShardCounts {
                a: first.count,
                a_path: first_run.path.display().to_string(),
                b: s.count,
                b_path: r.path.display().to_string(),
            });
        }
        if let Some(earlier) = have[s.index].replace(r) {
            return Err(MergeError::ShardTwice {
                shard: s.to_string(),
                a: earlier.path.display().to_string(),
                b: r.path.display().to_string(),
            });
        }
    }
    let missing: Vec<String> = (0..first.count)
        .filter(|i| have[*i].is_none())
        .map(|i| format!("{i}/{}", first.count))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MergeError::ShardsMissing {
            missing: missing.join(", "),
        })
    }
}

/// What a merge keeps of a report once its results are added: enough to check that the
/// inputs belong together and to write the merged settings.
#[derive(Debug)]
pub struct Input {
    pub path: std::path::PathBuf,
    pub settings: serde_json::Value,
    pub slos: Vec<String>,
}

/// Runs that happened side by side (shards of one run), added one at a time: each report's
/// histograms are added and dropped as it is read, so a merge holds one report and the sum,
/// not every input at once.
#[derive(Debug, Default)]
pub struct Merge {
    targets: Vec<TargetResult>,
    /// Which input each target was first seen in, for a clear error.
    origin: BTreeMap<String, String>,
    groups: BTreeMap<GroupKey, GroupHist>,
    pacing: Option<hdrhistogram::Histogram<u64>>,
    tick_ns: u64,
    measured_secs: f64,
    interrupted: bool,
    tick_auto: bool,
    /// Shards from different machines may have timed differently: each source once.
    timing: Vec<String>,
    inputs: Vec<Input>,
}

impl Merge {
    /// Adds one report.
    pub fn add(&mut self, run: SavedRun) -> Result<(), MergeError> {
        let SavedRun {
            path,
            results: r,
            settings,
            slos,
        } = run;
        for t in r.targets {
            self.add_target(t, &path)?;
        }
        for (k, g) in r.groups {
            match self.groups.entry(k) {
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&g),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(g);
                }
            }
        }
        match &mut self.pacing {
            Some(p) => {
                let _ = p.add(&r.pacing);
            }
            None => self.pacing = Some(r.pacing),
        }
        self.measured_secs = self.measured_secs.max(r.measured_secs);
        self.interrupted |= r.interrupted;
        // Shards of one run share their tick; of differing runs, the coarsest is reported.
        self.tick_ns = self.tick_ns.max(r.tick_ns);
        self.tick_auto |= r.tick_auto;
        if !r.timing.is_empty() && !self.timing.contains(&r.timing) {
            self.timing.push(r.timing);
        }
        let held: usize = self
            .groups
            .values()
            .map(|g| histogram_bytes(&g.corrected) + histogram_bytes(&g.service))
            .sum();
        if held > MAX_HISTOGRAM_BYTES {
            return Err(MergeError::TooLarge {
                path: path.display().to_string(),
                mib: MAX_HISTOGRAM_BYTES >> 20,
            });
        }
        self.inputs.push(Input {
            path,
            settings,
            slos,
        });
        Ok(())
    }

    fn add_target(&mut self, t: TargetResult, path: &std::path::Path) -> Result<(), MergeError> {
        let Some(x) = self.targets.iter_mut().find(|x| x.name == t.name) else {
            self.origin
                .insert(t.name.clone(), path.display().to_string());
            self.targets.push(t);
            return Ok(());
        };
        if x.url != t.url {
            return Err(MergeError::UrlMismatch {
                a_path: self.origin.get(&t.name).cloned().unwrap_or_default(),
                name: t.name,
                a: x.url.clone(),
                b: t.url,
                b_path: path.display().to_string(),
            });
        }
        x.requested_rps += t.requested_rps;
        x.accounts.merge(&t.accounts);
        Ok(())
    }

    /// The merged run, once the inputs are known to belong together, and the inputs.
    pub fn finish(self) -> Result<(Results, Vec<Input>), MergeError> {
        if self.inputs.is_empty() {
            return Err(MergeError::Empty);
        }
        check_shards(&self.inputs)?;
        let mut tick_ns = self.tick_ns;
        if self.tick_auto {
            // Chosen per second: report the tick most of the merged requests went at.
            let main = crate::results::TickCounts::of_all(&self.targets).main();
            if main > 0 {
                tick_ns = main;
            }
        }
        let mut results = Results::new(self.targets);
        results.groups = self.groups;
        results.pacing = self.pacing.unwrap_or_else(new_histogram);
        results.measured_secs = self.measured_secs;
        results.interrupted = self.interrupted;
        results.tick_ns = tick_ns;
        results.tick_auto = self.tick_auto;
        results.timing = self.timing.join("; ");
        Ok((results, self.inputs))
    }
}

/// `loadgen merge`: reads the reports, merges them, judges the SLOs, prints the report,
/// writes the requested files and returns the exit code.
pub fn run_merge(args: &MergeArgs) -> anyhow::Result<u8> {
    let mut merge = Merge::default();
    for p in &args.inputs {
        let run = crate::report::json::read::load(p)?;
        merge.add(run).map_err(|e| UsageError::new(e.to_string()))?;
    }
    let (results, inputs) = merge.finish().map_err(|e| UsageError::new(e.to_string()))?;
    let mut slos: Vec<Slo> =
        crate::judge::slo::parse::gather(&args.slos, args.slo_file.as_deref())?;
    if slos.is_empty() {
        // Judge by the SLOs the runs were given (each once, in order of appearance).
        let mut seen: Vec<&str> = Vec::new();
        for text in inputs.iter().flat_map(|r| r.slos.iter()) {
            if !seen.contains(&text.as_str()) {
                seen.push(text);
                slos.extend(crate::judge::slo::parse::parse(text).with_context(|| {
                    format!("an input records an SLO this version cannot read: {text:?}")
                })?);
            }
        }
    }
    let judgement = crate::judge::judge(&slos, &results);
    crate::report::console::note(format_args!(
        "loadgen: merged {} report(s): {}",
        inputs.len(),
        inputs
            .iter()
            .map(|r| r.path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut settings = inputs[0].settings.clone();
    if let serde_json::Value::Object(m) = &mut settings {
        // Complete (check_shards saw to it): the merge is the whole run, itself mergeable.
        if m.contains_key("shard") {
            m.insert("shard".into(), "0/1".into());
        }
        m.insert(
            "merged_from".into(),
            inputs
                .iter()
                .map(|r| serde_json::Value::from(r.path.display().to_string()))
                .collect(),
        );
    }
    crate::report::finish(&crate::report::Finish {
        results: &results,
        slos: &slos,
        judgement: &judgement,
        settings,
        json: args.json.as_deref(),
        exports: &args.exports,
        timeline: None,
        events: &[],
        story: None,
    })?;
    Ok(judgement.exit_code)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn run(path: &str, url: &str, ok: u64, secs: f64) -> SavedRun {
        let measured = crate::results::Accounting {
            scheduled: ok,
            ok,
            ..Default::default()
        };
        SavedRun {
            path: path.into(),
            results: {
                let mut t = TargetResult::new("us", url);
                t.requested_rps = ok as f64 / secs;
                t.accounts.measured = measured;
                let mut r = Results::new(vec![t]);
                r.measured_secs = secs;
                r
            },
            settings: serde_json::Value::Null,
            slos: vec![],
        }
    }

    fn merge_runs(runs: Vec<SavedRun>) -> Result<Results, MergeError> {
        let mut m = Merge::default();
        for r in runs {
            m.add(r)?;
        }
        m.finish().map(|(r, _)| r)
    }

    #[test]
    fn merge_adds_counts_and_rejects_other_targets() {
        let m = merge_runs(vec![
            run("a", "http://x/", 10, 2.0),
            run("b", "http://x/", 30, 2.5),
        ])
        .unwrap();
        assert_eq!(m.targets[0].accounts.measured.ok, 40);
        // Side by side: the window is the longest shard's, not the sum.
        assert_eq!(m.measured_secs, 2.5);
        let e = merge_runs(vec![
            run("a", "http://x/", 1, 1.0),
            run("b", "http://y/", 1, 1.0),
        ])
        .unwrap_err();
        assert!(
            e.to_string().contains("did not load the same target"),
            "{e}"
        );
        assert!(matches!(merge_runs(vec![]), Err(MergeError::Empty)));
    }
}
