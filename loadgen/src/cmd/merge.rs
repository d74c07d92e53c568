//! `loadgen merge`: the JSON reports of runs that happened side by side (the shards of
//! one run, [`crate::schedule::shard`]) merged exactly, judged and reported again.
//!
//! Counts add and HDR histograms add, so the merged percentiles are exactly
//! those one process would have recorded. Shards run side by side, so the merged measured
//! time is the longest of them (not the sum) and rates are totals over that window.

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::cli::MergeArgs;
use crate::error::UsageError;
use crate::judge::slo::Slo;
use crate::report::json::read::SavedRun;
use crate::results::{new_histogram, GroupHist, GroupKey, Results, TargetResult};

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
}

/// Each input once, and the shards of a sharded run each once and all of them. Shards
/// of one run share every setting but their `shard` and `seed`; runs with other settings (another
/// cluster's Job, say) are checked apart.
fn check_shards(runs: &[SavedRun]) -> Result<(), MergeError> {
    let mut paths = std::collections::BTreeSet::new();
    for r in runs {
        let real = std::fs::canonicalize(&r.path).unwrap_or_else(|_| r.path.clone());
        if !paths.insert(real) {
            return Err(MergeError::Twice {
                path: r.path.display().to_string(),
            });
        }
    }
    let mut by_run: BTreeMap<String, Vec<(crate::schedule::shard::Shard, &SavedRun)>> =
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
fn complete(shards: &[(crate::schedule::shard::Shard, &SavedRun)]) -> Result<(), MergeError> {
    let (first, first_run) = shards[0];
    let mut have: Vec<Option<&SavedRun>> = vec![None; first.count];
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

/// Adds runs that happened side by side (shards of one run).
pub fn merge_runs(runs: &[SavedRun]) -> Result<Results, MergeError> {
    if runs.is_empty() {
        return Err(MergeError::Empty);
    }
    check_shards(runs)?;
    let mut targets: Vec<TargetResult> = Vec::new();
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    let mut groups: BTreeMap<GroupKey, GroupHist> = BTreeMap::new();
    let mut pacing = new_histogram();
    // Shards of one run share their tick; of differing runs, the coarsest is reported.
    let mut tick_ns = 0;
    let mut measured_secs: f64 = 0.0;
    let mut interrupted = false;
    let mut tick_auto = false;
    // Shards from different machines may have timed differently: each source once.
    let mut timing: Vec<&str> = Vec::new();
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
                    let _ = x.lead.add(&t.lead);
                    crate::schedule::tick::add(&mut x.ticks, &t.ticks);
                    x.stamps.merge(&t.stamps);
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
        tick_ns = tick_ns.max(r.tick_ns);
        tick_auto |= r.tick_auto;
        if !r.timing.is_empty() && !timing.contains(&r.timing.as_str()) {
            timing.push(&r.timing);
        }
    }
    if tick_auto {
        // Chosen per second: report the tick most of the merged requests went at.
        let main = crate::schedule::tick::main_tick(&targets);
        if main > 0 {
            tick_ns = main;
        }
    }
    Ok(Results {
        targets,
        groups,
        pacing,
        measured_secs,
        interrupted,
        tick_ns,
        tick_auto,
        timing: timing.join("; "),
    })
}

/// `loadgen merge`: reads the reports, merges them, judges the SLOs, prints the report,
/// writes the requested files and returns the exit code.
pub fn run_merge(args: &MergeArgs) -> anyhow::Result<u8> {
    let mut runs = Vec::with_capacity(args.inputs.len());
    for p in &args.inputs {
        runs.push(crate::report::json::read::load(p)?);
    }
    let mut slos: Vec<Slo> = crate::judge::slo::gather(&args.slos, args.slo_file.as_deref())?;
    if slos.is_empty() {
        // Judge by the SLOs the runs were given (each once, in order of appearance).
        let mut seen: Vec<&str> = Vec::new();
        for text in runs.iter().flat_map(|r| r.slos.iter()) {
            if !seen.contains(&text.as_str()) {
                seen.push(text);
                slos.extend(crate::judge::slo::parse(text).with_context(|| {
                    format!("an input records an SLO this version cannot read: {text:?}")
                })?);
            }
        }
    }
    let results = merge_runs(&runs).map_err(|e| UsageError::new(e.to_string()))?;
    let (verdicts, exit_code) = crate::judge::judge(&slos, &results);
    crate::report::console::note(format_args!(
        "loadgen: merged {} report(s): {}",
        runs.len(),
        runs.iter()
            .map(|r| r.path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut settings = runs[0].settings.clone();
    if let serde_json::Value::Object(m) = &mut settings {
        // Complete (check_shards saw to it): the merge is the whole run, itself mergeable.
        if m.contains_key("shard") {
            m.insert("shard".into(), "0/1".into());
        }
        m.insert(
            "merged_from".into(),
            runs.iter()
                .map(|r| serde_json::Value::from(r.path.display().to_string()))
                .collect(),
        );
    }
    crate::report::finish(&crate::report::Finish {
        results: &results,
        slos: &slos,
        verdicts: &verdicts,
        exit_code,
        settings,
        json: args.json.as_deref(),
        exports: &args.exports,
        timeline: None,
        events: &[],
        story: None,
    })?;
    Ok(exit_code)
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
            results: Results {
                targets: vec![TargetResult {
                    name: "us".into(),
                    url: url.into(),
                    requested_rps: ok as f64 / secs,
                    measured,
                    warmup: Default::default(),
                    pool: Default::default(),
                    folded: 0,
                    lead: crate::results::new_histogram(),
                    ticks: Vec::new(),
                    stamps: Default::default(),
                }],
                groups: Default::default(),
                pacing: new_histogram(),
                measured_secs: secs,
                interrupted: false,
                tick_ns: 0,
                tick_auto: false,
                timing: String::new(),
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
