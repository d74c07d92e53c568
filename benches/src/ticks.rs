//! The `--tick` trade-off, as a README section: for each server (near, far) and each tick,
//! what the tick costs in client CPU and wake-ups, and how far it moves the reported p50
//! and p99 from exact pacing (`--tick 0s`) of the same round.
//!
//! The honesty bound is the one the default is held to: a tick may move p50 and p99 by at
//! most 50 µs or 10 % of exact mode's figure, whichever is larger. Each row counts the
//! rounds that kept within it, so a tick that only passes on a quiet round shows as such.

use std::fmt::Write as _;

use crate::cells::{stat, table};
use crate::results::{ClientRun, TickRun};

/// Exact pacing, the reference every other tick is compared with.
const EXACT: &str = "0s";

/// The larger of 50 µs and 10 % of the exact figure, in ms.
fn bound_ms(exact_ms: f64) -> f64 {
    (exact_ms * 0.1).max(0.050)
}

fn ok(r: &ClientRun) -> bool {
    r.error.is_none() && r.responses > 0
}

/// The successful runs of one tick against one server.
fn runs_of<'a>(rows: &[&'a TickRun], server: &str, tick: &str) -> Vec<&'a ClientRun> {
    rows.iter()
        .filter(|r| r.server == server && r.tick == tick && ok(&r.run))
        .map(|r| &r.run)
        .collect()
}

/// Per round, `f(tick run) - f(exact run)` and whether it kept within the bound.
fn deltas(
    rows: &[&TickRun],
    server: &str,
    tick: &str,
    f: fn(&ClientRun) -> Option<f64>,
) -> Vec<(f64, bool)> {
    let exact = runs_of(rows, server, EXACT);
    runs_of(rows, server, tick)
        .into_iter()
        .filter_map(|x| {
            let e = exact.iter().find(|e| e.round == x.round)?;
            let (a, b) = (f(x)?, f(e)?);
            Some((a - b, (a - b).abs() <= bound_ms(b)))
        })
        .collect()
}

fn cpu_ratio(rows: &[&TickRun], server: &str, tick: &str) -> Vec<f64> {
    let exact = runs_of(rows, server, EXACT);
    runs_of(rows, server, tick)
        .into_iter()
        .filter_map(|x| {
            let e = exact.iter().find(|e| e.round == x.round)?;
            (e.cpu_us_per_req > 0.0).then(|| x.cpu_us_per_req / e.cpu_us_per_req)
        })
        .collect()
}

/// Least-squares line through `(x, y)`: `(intercept, slope)`, when the xs differ.
fn fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 1e-12).then(|| (my - sxy / sxx * mx, sxy / sxx))
}

/// `+12 [+5-+30] µs, 3/3 within` for the per-round deltas (ms in, µs out).
fn delta_cell(d: &[(f64, bool)]) -> String {
    if d.is_empty() {
        return "-".into();
    }
    let us: Vec<f64> = d.iter().map(|x| x.0 * 1000.0).collect();
    let within = d.iter().filter(|x| x.1).count();
    format!("{} µs, {within}/{} within", stat(&us, 0), d.len())
}

/// Appends the tick sweep's section to `out` (nothing when it did not run).
pub fn render(out: &mut String, rows: &[TickRun]) {
    if rows.is_empty() {
        return;
    }
    let rate = rows.first().and_then(|r| r.run.target_rps).unwrap_or(0.0);
    let rounds = rows.iter().map(|r| r.run.round).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "\n#### The `--tick` trade-off at {rate:.0} rps (loadgen alone, server: `echo-svc --workers 1`)\n\n\
         {rounds} rounds, the ticks alternated within each; \"near\" is echo-svc on loopback, the \
         far server adds a server-side delay standing for a region away. CPU x exact and the \
         p50/p99 shifts are taken against the same round's `--tick 0s` run; \"within\" counts \
         the rounds whose shift stays inside 50 µs or 10 % of exact mode's figure, whichever is \
         larger.\n"
    );
    let mut servers: Vec<&str> = Vec::new();
    let mut ticks: Vec<&str> = Vec::new();
    for r in rows {
        if !servers.contains(&r.server.as_str()) {
            servers.push(&r.server);
        }
        if !ticks.contains(&r.tick.as_str()) {
            ticks.push(&r.tick);
        }
    }
    let all: Vec<&TickRun> = rows.iter().collect();
    let mut t = table(&[
        "server",
        "--tick",
        "runs",
        "CPU µs/req",
        "CPU x exact",
        "wake-ups/req",
        "p50 ms",
        "p50 shift",
        "p99 ms",
        "p99 shift",
        "pacing lag p99 ms",
        "errors + dropped",
    ]);
    for server in &servers {
        for tick in &ticks {
            let rs = runs_of(&all, server, tick);
            let col = |f: fn(&ClientRun) -> Option<f64>, prec: usize| {
                stat(&rs.iter().filter_map(|x| f(x)).collect::<Vec<_>>(), prec)
            };
            let exact = *tick == EXACT;
            t.add_row(vec![
                server.to_string(),
                tick.to_string(),
                rs.len().to_string(),
                col(|x| Some(x.cpu_us_per_req), 1),
                if exact {
                    "1.00".into()
                } else {
                    stat(&cpu_ratio(&all, server, tick), 2)
                },
                col(|x| Some(x.wakeups_per_req), 2),
                col(|x| x.p50_ms, 3),
                if exact {
                    "-".into()
                } else {
                    delta_cell(&deltas(&all, server, tick, |x| x.p50_ms))
                },
                col(|x| x.p99_ms, 3),
                if exact {
                    "-".into()
                } else {
                    delta_cell(&deltas(&all, server, tick, |x| x.p99_ms))
                },
                col(|x| x.pacing_p99_ms, 3),
                rs.iter()
                    .map(|x| x.errors + x.dropped)
                    .sum::<u64>()
                    .to_string(),
            ]);
        }
    }
    let _ = writeln!(out, "{t}");
    // Where the CPU goes: every run of a server on one line of CPU per request against
    // wake-ups per request. The slope is what one wake-up costs; the intercept is the
    // per-request work no tick can take away.
    for server in &servers {
        let points: Vec<(f64, f64)> = all
            .iter()
            .filter(|r| r.server == *server && ok(&r.run))
            .map(|r| (r.run.wakeups_per_req, r.run.cpu_us_per_req))
            .collect();
        if let Some((base, per_wake)) = fit(&points) {
            let _ = writeln!(
                out,
                "\n{server}: CPU per request ≈ {base:.1} µs + {per_wake:.1} µs × wake-ups per request \
                 (least squares over its {} runs).",
                points.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn run(server: &str, tick: &str, round: usize, cpu: f64, p50: f64, p99: f64) -> TickRun {
        TickRun {
            server: server.into(),
            tick: tick.into(),
            run: ClientRun {
                tool: "loadgen".into(),
                round,
                mode: format!("--tick {tick}"),
                target_rps: Some(5000.0),
                duration_secs: 10.0,
                achieved_rps: 5000.0,
                responses: 50_000,
                errors: 0,
                dropped: 0,
                p50_ms: Some(p50),
                p99_ms: Some(p99),
                pacing_p99_ms: Some(0.5),
                stamps_unheld: 0,
                cpu_us_per_req: cpu,
                cpu_util: 0.2,
                wakeups_per_req: 0.4,
                peak_rss_mib: 9.0,
                server_cpu_util: 0.3,
                error: None,
            },
        }
    }

    #[test]
    fn shifts_are_per_round_and_judged_against_the_larger_bound() {
        let rows = vec![
            run("near", "0s", 1, 80.0, 0.150, 1.000),
            run("near", "1ms", 1, 40.0, 0.230, 1.050),
            run("near", "0s", 2, 90.0, 0.160, 2.000),
            run("near", "1ms", 2, 30.0, 0.190, 2.300),
        ];
        let all: Vec<&TickRun> = rows.iter().collect();
        // p50: +80 µs is outside 50 µs (10 % of 0.15 ms is less); +30 µs is inside.
        let d = deltas(&all, "near", "1ms", |x| x.p50_ms);
        assert_eq!(d.len(), 2);
        assert!((d[0].0 - 0.080).abs() < 1e-9 && !d[0].1);
        assert!((d[1].0 - 0.030).abs() < 1e-9 && d[1].1);
        // p99: 10 % of exact is the larger bound here: +50 µs of 1 ms passes, +300 µs of
        // 2 ms does not.
        let d = deltas(&all, "near", "1ms", |x| x.p99_ms);
        assert!(d[0].1 && !d[1].1);
        let r = cpu_ratio(&all, "near", "1ms");
        assert!((r[0] - 0.5).abs() < 1e-9 && (r[1] - 1.0 / 3.0).abs() < 1e-9);

        let mut out = String::new();
        render(&mut out, &rows);
        assert!(out.contains("1/2 within"), "{out}");
        assert!(out.contains("| near"), "{out}");
    }

    #[test]
    fn the_cost_line_recovers_a_known_split() {
        // 15 µs per request plus 60 µs per wake-up, at three tick sizes.
        let pts: Vec<(f64, f64)> = [1.0, 0.4, 0.1]
            .iter()
            .map(|&w| (w, 15.0 + 60.0 * w))
            .collect();
        let (a, b) = fit(&pts).unwrap();
        assert!((a - 15.0).abs() < 1e-9 && (b - 60.0).abs() < 1e-9);
        assert!(fit(&[(0.5, 1.0), (0.5, 2.0)]).is_none());
    }

    #[test]
    fn a_round_without_its_exact_run_is_not_compared() {
        let rows = [
            run("near", "0s", 1, 80.0, 0.150, 1.0),
            run("near", "1ms", 2, 40.0, 0.900, 9.0),
        ];
        let all: Vec<&TickRun> = rows.iter().collect();
        assert!(deltas(&all, "near", "1ms", |x| x.p50_ms).is_empty());
        let mut out = String::new();
        render(&mut out, &[]);
        assert!(out.is_empty());
    }
}
