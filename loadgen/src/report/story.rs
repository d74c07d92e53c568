//! "What happened": a run cut at its events into phases, and what each target saw in each
//! phase (who served it, v2's share, errors and when, p99), built from the per-interval
//! timeline the recorder already keeps. The lab prints it under the report; its tests assert
//! a scenario's story from the same structure, so what a trainee reads is what is checked.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::events::Event;
use crate::hist::new_histogram;
use crate::timeline::Timeline;
use crate::units::fmt_us;

/// The run as phases between events.
#[derive(Debug, Clone)]
pub struct Story {
    pub interval_secs: f64,
    pub phases: Vec<Phase>,
}

/// From one event (or the start) to the next.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Seconds into the measured window.
    pub from_secs: f64,
    pub to_secs: f64,
    /// The event that opened it (`None`: the start of the run).
    pub event: Option<String>,
    pub targets: Vec<TargetPhase>,
}

/// What one target saw during one phase.
#[derive(Debug, Clone, Default)]
pub struct TargetPhase {
    pub target: String,
    /// Successful (2xx) answers by the region that served them.
    pub ok_by_region: BTreeMap<String, u64>,
    /// Successful answers by version.
    pub ok_by_version: BTreeMap<String, u64>,
    /// HTTP errors (4xx, 5xx) and requests that got no answer.
    pub errors: u64,
    /// First and last interval start (seconds) with an error.
    pub errors_between: Option<(f64, f64)>,
    /// Where the region serving most answers changed: (interval start, region).
    pub served_by: Vec<(f64, String)>,
    /// Corrected p50 and p99 of every answer, µs (0 when none).
    pub p50_us: u64,
    pub p99_us: u64,
}

impl TargetPhase {
    /// Successful answers.
    pub fn ok(&self) -> u64 {
        self.ok_by_region.values().sum()
    }

    /// Share of successful answers served by `region`, 0..=1.
    pub fn region_share(&self, region: &str) -> f64 {
        share(&self.ok_by_region, region)
    }

    /// Share of successful answers from `version`, 0..=1.
    pub fn version_share(&self, version: &str) -> f64 {
        share(&self.ok_by_version, version)
    }
}

fn share(m: &BTreeMap<String, u64>, key: &str) -> f64 {
    let all: u64 = m.values().sum();
    if all == 0 {
        0.0
    } else {
        m.get(key).copied().unwrap_or(0) as f64 / all as f64
    }
}

/// Where the measured window is cut: its start and every event inside it, events closer
/// together than one interval `dt` sharing a cut (a phase between them could hold no data).
fn cuts(
    tl: &Timeline,
    events: &[Event],
    measured_secs: f64,
    dt: f64,
) -> Vec<(f64, Option<String>)> {
    let mut cuts: Vec<(f64, Option<String>)> = vec![(0.0, None)];
    for e in events {
        // An event of the warm-up (a step at t=0 lands a few ms early) opens the run.
        let t = (e.at_unix_secs - tl.origin_unix_secs).max(0.0);
        if t < measured_secs {
            cuts.push((t, Some(e.what.clone())));
        }
    }
    cuts.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Events closer together than one interval share a phase: it could hold no data.
    let mut merged: Vec<(f64, Option<String>)> = Vec::with_capacity(cuts.len());
    for (t, what) in cuts {
        match merged.last_mut() {
            Some((last, Some(prev))) if t - *last < dt => {
                prev.push_str("; ");
                prev.push_str(what.as_deref().unwrap_or_default());
            }
            Some((last, label @ None)) if t - *last < dt => *label = what,
            _ => merged.push((t, what)),
        }
    }
    merged
}

/// Cuts the measured window `[0, measured_secs)` at every event inside it.
pub fn build(tl: &Timeline, events: &[Event], targets: &[String], measured_secs: f64) -> Story {
    let dt = tl.interval_secs.max(1e-3);
    let cuts = cuts(tl, events, measured_secs, dt);
    // An interval belongs to the phase it ends in: what an event causes shows from the
    // interval it happened in, and what came before an event is never blamed on it.
    let phase_of = |start: f64| {
        cuts.iter()
            .rposition(|(t, _)| *t < start + dt - 1e-9)
            .unwrap_or(0)
    };

    // Per (phase, target): the phase's data, and per interval the 2xx answers by region.
    let mut acc: Vec<Vec<TargetPhase>> = cuts
        .iter()
        .map(|_| {
            targets
                .iter()
                .map(|t| TargetPhase {
                    target: t.clone(),
                    ..TargetPhase::default()
                })
                .collect()
        })
        .collect();
    let mut hists = vec![vec![new_histogram(); targets.len()]; cuts.len()];
    let mut per_interval: BTreeMap<(usize, u64), BTreeMap<String, u64>> = BTreeMap::new();
    let note_error = |tp: &mut TargetPhase, at: f64, n: u64| {
        tp.errors += n;
        tp.errors_between = Some(match tp.errors_between {
            None => (at, at),
            Some((a, b)) => (a.min(at), b.max(at)),
        });
    };
    for ((idx, k), parts) in &tl.slices {
        let Some(ti) = targets.iter().position(|t| *t == k.target) else {
            continue;
        };
        let at = *idx as f64 * dt;
        let p = phase_of(at);
        let h = Timeline::histogram(parts);
        let n = h.len();
        let tp = &mut acc[p][ti];
        let _ = hists[p][ti].add(&h);
        if k.class == "2xx" {
            *tp.ok_by_region.entry(k.region.clone()).or_default() += n;
            *tp.ok_by_version.entry(k.version.clone()).or_default() += n;
            *per_interval
                .entry((ti, *idx))
                .or_default()
                .entry(k.region.clone())
                .or_default() += n;
        } else if k.class == "4xx" || k.class == "5xx" {
            note_error(tp, at, n);
        }
    }
    for ((idx, t), [failed, _dropped]) in &tl.unanswered {
        let Some(ti) = targets.iter().position(|x| x == t) else {
            continue;
        };
        if *failed > 0 {
            let at = *idx as f64 * dt;
            note_error(&mut acc[phase_of(at)][ti], at, *failed);
        }
    }
    note_servers(&per_interval, &mut acc, &phase_of, dt, targets.len());
    let phases = cuts
        .iter()
        .enumerate()
        .map(|(i, (from, event))| {
            let to = cuts.get(i + 1).map_or(measured_secs, |c| c.0);
            let mut targets = std::mem::take(&mut acc[i]);
            for (ti, tp) in targets.iter_mut().enumerate() {
                let h = &hists[i][ti];
                if !h.is_empty() {
                    tp.p50_us = h.value_at_quantile(0.5);
                    tp.p99_us = h.value_at_quantile(0.99);
                }
            }
            Phase {
                from_secs: *from,
                to_secs: to,
                event: event.clone(),
                targets,
            }
        })
        .collect();
    Story {
        interval_secs: dt,
        phases,
    }
}

/// Who served most, interval by interval: a change is noted in the phase where it first
/// shows.
fn note_servers(
    per_interval: &BTreeMap<(usize, u64), BTreeMap<String, u64>>,
    acc: &mut [Vec<TargetPhase>],
    phase_of: &dyn Fn(f64) -> usize,
    dt: f64,
    targets: usize,
) {
    let mut current: Vec<Option<String>> = vec![None; targets];
    for ((ti, idx), by) in per_interval {
        let Some((top, _)) = by.iter().max_by_key(|(_, n)| **n) else {
            continue;
        };
        if current[*ti].as_deref() != Some(top.as_str()) {
            let at = *idx as f64 * dt;
            acc[phase_of(at)][*ti].served_by.push((at, top.clone()));
            current[*ti] = Some(top.clone());
        }
    }
}

/// The story for the terminal, a few lines per phase.
pub fn render(s: &Story) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nWhat happened (t: seconds into the measured run, {} ms resolution):",
        (s.interval_secs * 1e3).round()
    );
    for p in &s.phases {
        let _ = writeln!(
            out,
            "  t={:<6} {}",
            format!("{:.1}s", p.from_secs),
            p.event.as_deref().unwrap_or("start")
        );
        for tp in &p.targets {
            let _ = writeln!(out, "           {}", target_line(tp));
        }
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn target_line(tp: &TargetPhase) -> String {
    let mut parts = Vec::new();
    if tp.errors > 0 {
        let (a, b) = tp.errors_between.unwrap_or((0.0, 0.0));
        let noun = if tp.errors == 1 { "error" } else { "errors" };
        let (a, b) = (format!("{a:.1}"), format!("{b:.1}"));
        let span = if a == b { a } else { format!("{a}-{b}") };
        parts.push(format!("{} {noun} at t={span}s", tp.errors));
    }
    // A change of serving region reads as a sentence of its own (the first region of the
    // run is no change).
    let switches: Vec<String> = tp
        .served_by
        .iter()
        .filter(|(t, _)| *t > 0.0)
        .map(|(t, r)| format!("served by {r} from t={t:.1}s"))
        .collect();
    if !switches.is_empty() {
        parts.push(switches.join(", "));
    }
    let regions: Vec<String> = tp
        .ok_by_region
        .keys()
        .map(|r| format!("{r} {}", pct(tp.region_share(r))))
        .collect();
    if tp.ok() == 0 {
        parts.push("no successful answers".into());
    } else {
        parts.push(format!(
            "{} ok, served by {}, v2 {}, p50 {} p99 {}",
            tp.ok(),
            regions.join(" "),
            pct(tp.version_share("v2")),
            fmt_us(tp.p50_us as f64),
            fmt_us(tp.p99_us as f64)
        ));
    }
    if tp.errors == 0 {
        parts.push("no errors".into());
    }
    format!("{}: {}", tp.target, parts.join("; "))
}
