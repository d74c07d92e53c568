//! The targets every comparison run is held to (a line each, met or not, with its figure),
//! and the run selections and within-round ratios the README's tables share with them.

use crate::cells::{median, stat};
use crate::results::{ClientRun, Results, ServerRow};

fn ok(r: &ClientRun) -> bool {
    r.error.is_none() && r.responses > 0
}

/// The successful runs of `tool` at `rate` (`None`: any rate).
pub(crate) fn runs<'a>(rows: &'a [ClientRun], tool: &str, rate: Option<f64>) -> Vec<&'a ClientRun> {
    rows.iter()
        .filter(|r| r.tool == tool && (rate.is_none() || r.target_rps == rate) && ok(r))
        .collect()
}

/// `of(a) / of(b)` for every round in which both tools have a successful run.
pub(crate) fn round_ratios(
    rows: &[ClientRun],
    a: &str,
    b: &str,
    rate: Option<f64>,
    of: fn(&ClientRun) -> Option<f64>,
) -> Vec<f64> {
    let bs = runs(rows, b, rate);
    runs(rows, a, rate)
        .iter()
        .filter_map(|x| {
            let y = bs.iter().find(|y| y.round == x.round)?;
            let (x, y) = (of(x)?, of(y)?);
            (y > 0.0).then(|| x / y)
        })
        .collect()
}

pub(crate) fn cpu(r: &ClientRun) -> Option<f64> {
    Some(r.cpu_us_per_req)
}

pub(crate) fn rps(r: &ClientRun) -> Option<f64> {
    Some(r.achieved_rps)
}

/// Tools in the order they first appear.
pub(crate) fn tools(rows: &[ClientRun], rate: Option<f64>) -> Vec<&ClientRun> {
    let mut seen: Vec<&ClientRun> = Vec::new();
    for r in rows {
        if (rate.is_none() || r.target_rps == rate) && !seen.iter().any(|s| s.tool == r.tool) {
            seen.push(r);
        }
    }
    seen
}

pub(crate) fn rates(rows: &[ClientRun]) -> Vec<f64> {
    let mut v: Vec<f64> = Vec::new();
    for r in rows {
        if let Some(x) = r.target_rps {
            if !v.contains(&x) {
                v.push(x);
            }
        }
    }
    v
}

fn verdict(met: bool) -> &'static str {
    if met {
        "**met**"
    } else {
        "**not met**"
    }
}

pub(crate) fn runs_failed(rows: &[ClientRun], tool: &str, rate: Option<f64>) -> usize {
    rows.iter()
        .filter(|r| r.tool == tool && (rate.is_none() || r.target_rps == rate) && !ok(r))
        .count()
}

/// echo-svc's requests per core over nginx's, round by round.
pub(crate) fn server_ratios(s: &ServerRow, nginx: &ServerRow) -> Vec<f64> {
    s.rps_per_core_rounds
        .iter()
        .zip(&nginx.rps_per_core_rounds)
        .filter(|(_, n)| **n > 0.0)
        .map(|(e, n)| e / n)
        .collect()
}

/// `name: median [min-max] over N rounds — verdict` for per-round ratios.
fn ratio_target(name: &str, v: &[f64], met: impl Fn(f64) -> bool) -> String {
    match median(v) {
        None => format!("{name}: not measured"),
        Some(m) => format!(
            "{name}: {} over {} rounds — {}",
            stat(v, 3),
            v.len(),
            verdict(met(m))
        ),
    }
}

/// What exact mode's own figure does between rounds: when two runs of one mode differ
/// by more than the bound, a difference between two modes says as much about the
/// machine as about the mode.
fn noise_floor(exact: &[&ClientRun], of: fn(&ClientRun) -> Option<f64>, bound: f64) -> String {
    let v: Vec<f64> = exact
        .iter()
        .filter_map(|x| of(x))
        .map(|x| x * 1e3)
        .collect();
    if v.len() < 2 {
        return String::new();
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "; exact mode's own figure spans {lo:.0}-{hi:.0} µs over the rounds, a spread of {:.0} µs{}",
        hi - lo,
        if hi - lo > bound {
            ", wider than the bound: this machine's noise, not the tick, decides it"
        } else {
            ""
        }
    )
}

/// The rounds in which a loadgen run found the kernel's arrival stamps were not receipt
/// times (and stopped holding its sleeps): its latency then partly includes them.
fn stamp_fallbacks(default: &[&ClientRun], exact: &[&ClientRun]) -> String {
    let fell: Vec<String> = [("default", default), ("exact", exact)]
        .iter()
        .flat_map(|(name, rs)| {
            rs.iter()
                .filter(|x| x.stamps_unheld > 0)
                .map(move |x| format!("{name} in round {}", x.round))
        })
        .collect();
    if fell.is_empty() {
        return String::new();
    }
    format!(
        "; arrival stamps taken at read, not on receipt, were found by {} (until then its \
         answers were timed up to a sleep late)",
        fell.join(" and ")
    )
}

/// Whether a CPU ratio bound is within reach on this machine at the floor's tick: the
/// floor's own ratio to the same peer.
fn floor_reach(rows: &[ClientRun], tool: &str, rate: f64, bound: f64) -> String {
    let floor = round_ratios(rows, "floor", tool, Some(rate), cpu);
    let Some(m) = median(&floor) else {
        return String::new();
    };
    format!(
        "; the floor (sleep, send, read at the same {} µs tick, nothing timed) is {}x {tool}{}",
        crate::peers::FLOOR_TICK.as_micros(),
        stat(&floor, 2),
        if m > bound {
            ": above the bound, so no client meets it at this tick on this machine"
        } else {
            ""
        },
    )
}

/// `line`, with " (stretch Nx met)" when the median of `v` is at or under `stretch`.
fn with_stretch(mut line: String, v: &[f64], stretch: f64) -> String {
    if median(v).is_some_and(|m| m <= stretch) {
        line.push_str(&format!(" (stretch {stretch}x met)"));
    }
    line
}

/// loadgen's ratio to the floor split in two at `rate` (reported, no target): what honest
/// timing costs any client (the timed floor over the floor), and what loadgen's runtime
/// and code add to it (loadgen over the timed floor). Nothing without timed-floor runs.
fn timing_split(rows: &[ClientRun], rate: f64) -> Vec<String> {
    let timing = round_ratios(rows, "floor-timed", "floor", Some(rate), cpu);
    let rest = round_ratios(rows, "loadgen", "floor-timed", Some(rate), cpu);
    if median(&timing).is_none() || median(&rest).is_none() {
        return Vec::new();
    }
    vec![format!(
        "of which, at {rate:.0} rps (reported, no target): honest timing (floor-timed over floor) {} \
         and loadgen's runtime and code (loadgen over floor-timed) {}, over {} rounds",
        stat(&timing, 3),
        stat(&rest, 3),
        rest.len()
    )]
}

/// The targets, each with its figures and whether this run met it (on the median
/// of the per-round figures).
pub fn targets(r: &Results) -> Vec<String> {
    let mut lines = Vec::new();
    let p = &r.peers;
    for rate in [5000.0, 20000.0] {
        // What loadgen adds to the least any paced client spends at its tick.
        let v = round_ratios(p, "loadgen", "floor", Some(rate), cpu);
        let line = ratio_target(
            &format!("loadgen default CPU/request at {rate:.0} rps ≤ 1.1x the floor's"),
            &v,
            |m| m <= 1.1,
        );
        lines.push(with_stretch(line, &v, 1.05));
        lines.extend(timing_split(p, rate));
        let v = round_ratios(p, "loadgen", "oha", Some(rate), cpu);
        let line = ratio_target(
            &format!("loadgen default CPU/request at {rate:.0} rps ≤ 0.6x oha"),
            &v,
            |m| m <= 0.6,
        );
        let line = with_stretch(line, &v, 0.5);
        lines.push(line + &floor_reach(p, "oha", rate, 0.6));
    }
    let k6 = round_ratios(p, "loadgen", "k6", Some(5000.0), cpu);
    if median(&k6).is_some() {
        lines.push(format!(
            "loadgen default CPU/request at 5000 rps over k6's (reported, no target): {} over {} rounds{}",
            stat(&k6, 3),
            k6.len(),
            floor_reach(p, "k6", 5000.0, f64::INFINITY)
        ));
    }
    // Honest: the default's latency against exact pacing's, round by round.
    for (what, of) in [
        (
            "p50",
            (|x: &ClientRun| x.p50_ms) as fn(&ClientRun) -> Option<f64>,
        ),
        ("p99", |x: &ClientRun| x.p99_ms),
    ] {
        let exact = runs(p, "loadgen-exact", Some(5000.0));
        let diffs: Vec<(f64, f64)> = runs(p, "loadgen", Some(5000.0))
            .iter()
            .filter_map(|d| {
                let e = exact.iter().find(|e| e.round == d.round)?;
                Some(((of(d)? - of(e)?) * 1e3, of(e)? * 1e3))
            })
            .collect();
        if diffs.is_empty() {
            lines.push(format!(
                "default {what} within 50 µs or 10% of exact at 5000 rps: not measured"
            ));
            continue;
        }
        let shown: Vec<String> = diffs.iter().map(|(d, _)| format!("{d:+.0}")).collect();
        let d = median(&diffs.iter().map(|x| x.0).collect::<Vec<_>>()).unwrap_or(f64::NAN);
        let e = median(&diffs.iter().map(|x| x.1).collect::<Vec<_>>()).unwrap_or(f64::NAN);
        let bound = 50f64.max(e * 0.1);
        lines.push(format!(
            "default {what} within 50 µs or 10% of exact (`--tick 0s`) at 5000 rps: differences {} µs \
             round by round, median {d:+.0} µs against a bound of {bound:.0} µs — {}{}{}",
            shown.join(", "),
            verdict(d.abs() <= bound),
            noise_floor(&exact, of, bound),
            stamp_fallbacks(&runs(p, "loadgen", Some(5000.0)), &exact)
        ));
    }
    let lag: Vec<f64> = runs(p, "loadgen", Some(20000.0))
        .iter()
        .filter_map(|x| x.pacing_p99_ms)
        .collect();
    lines.push(match median(&lag) {
        None => "default pacing lag p99 at 20000 rps ≤ 1 ms: not measured".into(),
        Some(m) => format!(
            "default pacing lag p99 at 20000 rps ≤ 1 ms: {} ms — {}",
            stat(&lag, 3),
            verdict(m <= 1.0)
        ),
    });
    lines.push(ratio_target(
        "loadgen maximum rate ≥ 1.0x `wrk -t1` (per round)",
        &round_ratios(&r.max, "loadgen", "wrk", None, rps),
        |m| m >= 1.0,
    ));
    let echo = r.servers.iter().find(|s| s.server == "echo-svc");
    let nginx = r.servers.iter().find(|s| s.server == "nginx");
    match (echo, nginx) {
        (Some(e), Some(n)) => {
            lines.push(ratio_target(
                "echo-svc requests/s per core ≥ 1.0x nginx (per round)",
                &server_ratios(e, n),
                |m| m >= 1.0,
            ));
            lines.push(format!(
                "echo-svc idle RSS < 10 MB: {:.1} MiB — {}",
                e.idle_rss_mib,
                verdict(e.idle_rss_mib * 1.048_576 < 10.0)
            ));
        }
        _ => lines.push("echo-svc vs nginx: not measured".into()),
    }
    match (r.memory.first(), r.memory.last()) {
        (Some(a), Some(b)) if r.memory.len() >= 2 && a.peak_rss_mib > 0.0 => {
            let x = b.peak_rss_mib / a.peak_rss_mib;
            lines.push(format!(
                "loadgen memory flat ({:.0} s vs {:.0} s at {:.0} rps, within 10%): {:.1} MiB vs {:.1} MiB, ratio {x:.3} — {}",
                a.duration_secs,
                b.duration_secs,
                a.rate,
                a.peak_rss_mib,
                b.peak_rss_mib,
                verdict((x - 1.0).abs() <= 0.10)
            ));
        }
        _ => lines.push("loadgen memory over time: not measured".into()),
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_whose_stamps_failed_are_named() {
        let run = |round: usize, unheld: u64| ClientRun {
            round,
            stamps_unheld: unheld,
            ..crate::runs::missing(
                crate::peers::Tool::Loadgen,
                Some(5000.0),
                std::time::Duration::from_secs(1),
            )
        };
        let (d1, d2, e1) = (run(1, 0), run(2, 7), run(1, 0));
        assert_eq!(stamp_fallbacks(&[&d1], &[&e1]), "");
        let said = stamp_fallbacks(&[&d1, &d2], &[&e1]);
        assert!(said.contains("by default in round 2 ("), "{said}");
        assert!(!said.contains("round 1"), "{said}");
    }

    #[test]
    fn the_noise_floor_is_exact_modes_own_spread() {
        let run = |p99: f64| ClientRun {
            p99_ms: Some(p99),
            ..crate::runs::missing(
                crate::peers::Tool::LoadgenExact,
                Some(5000.0),
                std::time::Duration::from_secs(1),
            )
        };
        let (a, b, c) = (run(0.30), run(1.45), run(0.35));
        let p99 = |x: &ClientRun| x.p99_ms;
        let wide = noise_floor(&[&a, &b, &c], p99, 50.0);
        assert!(
            wide.contains("300-1450 µs") && wide.contains("1150 µs"),
            "{wide}"
        );
        assert!(wide.contains("wider than the bound"), "{wide}");
        let narrow = noise_floor(&[&a, &c], p99, 100.0);
        assert!(narrow.contains("spread of 50 µs"), "{narrow}");
        assert!(!narrow.contains("wider"), "{narrow}");
        // One round says nothing about noise.
        assert_eq!(noise_floor(&[&a], p99, 50.0), "");
    }

    #[test]
    fn the_floor_says_whether_a_bound_is_within_reach() {
        let run = |tool: crate::peers::Tool, round: usize, cpu: f64| ClientRun {
            round,
            cpu_us_per_req: cpu,
            responses: 100,
            error: None,
            ..crate::runs::missing(tool, Some(5000.0), std::time::Duration::from_secs(1))
        };
        use crate::peers::Tool::{Floor, FloorTimed, Loadgen, K6};
        let rows = vec![
            run(Loadgen, 1, 22.0),
            run(Floor, 1, 20.0),
            run(K6, 1, 100.0),
            run(Loadgen, 2, 24.0),
            run(Floor, 2, 20.0),
            run(K6, 2, 100.0),
        ];
        let above = floor_reach(&rows, "k6", 5000.0, 0.15);
        assert!(above.contains("0.20 [0.20-0.20]x k6"), "{above}");
        assert!(above.contains("no client meets it"), "{above}");
        let within = floor_reach(&rows, "k6", 5000.0, 0.25);
        assert!(!within.contains("no client"), "{within}");
        // loadgen over the floor, round by round: 1.10 and 1.20.
        let over = round_ratios(&rows, "loadgen", "floor", Some(5000.0), cpu);
        assert_eq!(stat(&over, 2), "1.15 [1.10-1.20]");
        assert_eq!(with_stretch("x".into(), &over, 1.05), "x");
        assert!(with_stretch("x".into(), &over, 1.2).contains("stretch 1.2x met"));
        // No floor runs (skipped or failed): nothing is claimed.
        assert_eq!(floor_reach(&rows[..1], "k6", 5000.0, 0.15), "");
        // Without timed-floor runs the split says nothing; with them, both halves.
        assert!(timing_split(&rows, 5000.0).is_empty());
        let mut rows = rows;
        rows.push(run(FloorTimed, 1, 21.0));
        rows.push(run(FloorTimed, 2, 21.6));
        let split = timing_split(&rows, 5000.0).join("");
        // Timing: 1.05 and 1.08 (median 1.065); loadgen over it: 1.048 and 1.111.
        assert!(split.contains("floor) 1.065 [1.050-1.080]"), "{split}");
        assert!(
            split.contains("floor-timed) 1.079 [1.048-1.111]"),
            "{split}"
        );
    }
}
