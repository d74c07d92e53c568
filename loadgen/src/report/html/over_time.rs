//! The report's plots over time, all on one time axis so that a scenario's numbered
//! events line up from plot to plot: per target, answers per second by the region and
//! version that served them (what happened); the generator's pacing lag; latency per
//! group. Intervals count from the start of the measured window, by completion time.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use html_escape::encode_text as esc;

use super::plot::{over_time_svg, Axis, Mark, Series};
use crate::events::Event;
use crate::results::Results;
use crate::timeline::Timeline;

/// A run's timeline, ready to plot.
pub(super) struct OverTime<'a> {
    tl: &'a Timeline,
    axis: Axis,
    marks: Vec<Mark>,
    /// Whole intervals in the measured window.
    whole: u64,
}

impl<'a> OverTime<'a> {
    /// `None` when the run kept no timeline (a merged report) or it is empty.
    pub(super) fn new(r: &Results, tl: &'a Timeline, events: &[Event]) -> Option<OverTime<'a>> {
        if tl.slices.is_empty() || tl.interval_secs <= 0.0 {
            return None;
        }
        let last = tl
            .slices
            .keys()
            .map(|(i, _)| *i)
            .chain(tl.unanswered.keys().map(|(i, _)| *i))
            .chain(tl.pacing_max_us.keys().copied())
            .max()
            .unwrap_or(0);
        let t_max = ((last + 1) as f64 * tl.interval_secs).max(r.measured_secs);
        Some(OverTime {
            tl,
            axis: Axis {
                t_max,
                step: tl.interval_secs,
            },
            marks: events
                .iter()
                .map(|e| (e.at_unix_secs - tl.origin_unix_secs, e.what.clone()))
                .collect(),
            whole: (r.measured_secs / tl.interval_secs + 1e-6).floor() as u64,
        })
    }

    /// Seconds into the measured window at the end of interval `idx`.
    fn at(&self, idx: u64) -> f64 {
        (idx as f64 + 1.0) * self.tl.interval_secs
    }

    /// Seconds into the measured window of `e` (a step at t=0 lands a hair early, and
    /// -0.0 reads oddly).
    pub(super) fn event_secs(&self, e: &Event) -> f64 {
        (e.at_unix_secs - self.tl.origin_unix_secs).max(0.0)
    }

    fn figure(&self, o: &mut String, title: &str, series: &[Series], unit: &str) {
        let _ = write!(
            o,
            "<figure><figcaption>{}</figcaption>{}</figure>",
            esc(title),
            over_time_svg(series, unit, title, &self.marks, self.axis)
        );
    }

    /// Per target: answers per second by served region/version, HTTP errors, requests
    /// that got no answer and drops, over every whole interval of the measured window
    /// (so a region that stops answering drops to 0; the ragged tail would read as a
    /// fall in the rate, so it is left out).
    pub(super) fn answers(&self, o: &mut String) {
        let tl = self.tl;
        let mut rates: BTreeMap<&str, BTreeMap<String, BTreeMap<u64, u64>>> = BTreeMap::new();
        for ((idx, k), parts) in &tl.slices {
            let n = Timeline::histogram(parts).len();
            let by = rates.entry(&k.target).or_default();
            *by.entry(format!("{}/{}", k.region, k.version))
                .or_default()
                .entry(*idx)
                .or_default() += n;
            if k.class == "4xx" || k.class == "5xx" {
                *by.entry(format!("{} errors", k.class))
                    .or_default()
                    .entry(*idx)
                    .or_default() += n;
            }
        }
        for ((idx, t), [failed, dropped]) in &tl.unanswered {
            let by = rates.entry(t).or_default();
            for (name, n) in [("no answer", *failed), ("dropped", *dropped)] {
                if n > 0 {
                    *by.entry(name.into()).or_default().entry(*idx).or_default() += n;
                }
            }
        }
        for (t, by) in &rates {
            let series: Vec<Series> = by
                .iter()
                .map(|(name, counts)| {
                    let pts = (0..self.whole)
                        .map(|i| {
                            let n = counts.get(&i).copied().unwrap_or(0);
                            (self.at(i), n as f64 / tl.interval_secs)
                        })
                        .collect();
                    (name.clone(), pts)
                })
                .collect();
            let title = format!("target {t}: answers per second by served region/version");
            self.figure(o, &title, &series, "rps");
        }
    }

    /// The pacing lag, then p50, p99 and max latency per target, region and version;
    /// a group's line breaks where it had no answers.
    pub(super) fn latency(&self, o: &mut String) {
        let tl = self.tl;
        if !tl.pacing_max_us.is_empty() {
            let lag: Vec<(f64, f64)> = tl
                .pacing_max_us
                .iter()
                .map(|(i, us)| (self.at(*i), *us as f64 / 1000.0))
                .collect();
            let title = "pacing lag: the generator's own delay, largest per interval";
            self.figure(o, title, &[("max lag".into(), lag)], "ms");
        }
        type Row<'k> = (String, &'k str, &'k str);
        let mut per: BTreeMap<Row<'_>, BTreeMap<u64, Vec<&[u8]>>> = BTreeMap::new();
        for ((idx, k), parts) in &tl.slices {
            per.entry((k.target_label(), &k.region, &k.version))
                .or_default()
                .entry(*idx)
                .or_default()
                .extend(parts.iter().map(Vec::as_slice));
        }
        for ((t, rg, v), slices) in &per {
            let mut series: Vec<Series> = ["p50", "p99", "max"]
                .iter()
                .map(|n| (n.to_string(), Vec::new()))
                .collect();
            for (idx, parts) in slices {
                let h = Timeline::histogram(parts);
                let ms = |us: u64| us as f64 / 1000.0;
                let vals = [
                    ms(h.value_at_quantile(0.5)),
                    ms(h.value_at_quantile(0.99)),
                    ms(h.max()),
                ];
                for (s, v) in series.iter_mut().zip(vals) {
                    s.1.push((self.at(*idx), v));
                }
            }
            let title = format!("target {t}, region {rg}, version {v}: latency over time");
            self.figure(o, &title, &series, "ms");
        }
    }
}
