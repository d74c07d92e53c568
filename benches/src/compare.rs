//! The comparison harness: loadgen and echo-svc side by side with the tools people would
//! otherwise pick, in one run, on loopback, each process pinned to its own core.
//!
//! Sections (each can be skipped with `--skip`):
//!
//! - **peers**: echo-svc (`--workers 1`) on the server core; at each rate, `--rounds` times
//!   over, loadgen (default and exact), the floor (`benches floor`, the least a client at
//!   loadgen's near tick can spend), k6, oha, autocannon and hey on the client core. Per
//!   run: the client's CPU microseconds per response and peak RSS (from `wait4`), the
//!   achieved rate and the p50 and p99 the tool itself reported. Ratios are taken within a
//!   round, so background load that changes between rounds moves both sides; the README
//!   shows their median and spread.
//! - **h2**: the same, over h2c, for loadgen (`--http2`), h2load and `oha --http2`, each on
//!   one connection carrying up to 100 streams.
//! - **ticks**: loadgen alone at one rate with each `--tick` of the sweep, alternated
//!   within each round, against a near echo-svc and a far one (a server-side delay): what
//!   each tick saves in CPU and wake-ups, and how far it moves p50 and p99 from exact mode.
//! - **max**: nginx (one process, `return 200`) on the server core; per round `wrk -t1`
//!   and loadgen (one thread, open loop at 1.25x that round's wrk rate).
//! - **servers**: echo-svc and nginx, both pinned to the server core, alternately loaded by
//!   `wrk -t1` (`--rounds` rounds) for requests per second per CPU-second of the server, then
//!   by loadgen at a fixed open-loop rate for p99; idle and peak RSS.
//! - **memory**: loadgen's peak RSS for a run and for a run ten times longer, same rate.
//!
//! Every run is bounded by its duration plus a deadline after which it is killed; every
//! server is stopped when the harness ends, whatever happens.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::cli::CompareArgs;
use crate::machine;
use crate::peers::{self, Invocation, Load, Tool};
use crate::procfs;
use crate::procs::{start_echo, start_echo_with, start_nginx, which, TempDir};
use crate::readme;
use crate::results::{ClientRun, MemoryRow, Results, ServerRow, TickRun};
use crate::runs::{mib, missing, peer_program, run_client};

/// How long the idle machine's stalls are counted before the first run and after the last.
const STALL_PROBE_SECS: u64 = 10;

/// Runs the harness; writes the README unless told not to. Returns the exit code.
pub fn side_by_side(a: &CompareArgs) -> anyhow::Result<u8> {
    for (what, p) in [
        ("--echo-bin", &a.echo_bin),
        ("--loadgen-bin", &a.loadgen_bin),
    ] {
        if !p.is_file() {
            bail!(
                "{what} {}: no such file (build with `cargo build --release -p echo-svc -p loadgen`)",
                p.display()
            );
        }
    }
    if which("taskset").is_none() {
        bail!("taskset is not installed (util-linux)");
    }
    if a.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let skip = |s: &str| a.skip.iter().any(|x| x == s);
    let work = TempDir::new("compare")?;
    let started_utc = utc_now();
    let mut results = Results {
        machine: machine::describe(),
        command: command_line(),
        started_utc,
        connections: a.connections,
        rounds: a.rounds,
        peers: Vec::new(),
        h2: Vec::new(),
        max: Vec::new(),
        servers: Vec::new(),
        memory: Vec::new(),
        ticks: Vec::new(),
    };
    let (sc, cc) = (a.server_core, a.client_core);
    results.machine.stalls_before = machine::stalls(&[sc, cc], STALL_PROBE_SECS);
    eprintln!("compare: {}", results.machine);
    if !skip("peers") {
        results.peers = peer_rounds(a, &work.0, &skip)?;
    }

    if !skip("h2") {
        results.h2 = h2_rounds(a, &work.0, &skip)?;
    }

    if !skip("ticks") && !a.tick_sweep.is_empty() {
        results.ticks = tick_sweep(a, &work.0)?;
    }

    if !skip("max") {
        results.max = max_rate(a, &work.0)?;
    }

    if !skip("servers") {
        results.servers = servers(a, &work.0)?;
    }

    if !skip("memory") && !a.memory_long.is_zero() {
        results.memory = memory(a, &work.0)?;
    }

    results.machine.stalls_after = machine::stalls(&[sc, cc], STALL_PROBE_SECS);
    let text = readme::render(&results);
    println!("{text}");
    if let Some(p) = &a.json {
        fs::write(p, serde_json::to_string_pretty(&results)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if !a.no_readme {
        readme::write_into(&a.readme, &text)?;
        eprintln!("compare: results written into {}", a.readme.display());
    }
    Ok(0)
}

/// A fixed-rate load with the run's connections.
fn load(a: &CompareArgs, rate: f64, duration: Duration) -> Load {
    Load {
        rate,
        duration,
        connections: a.connections,
    }
}

/// loadgen, the floor and the peers at each rate, `--rounds` alternating rounds.
fn peer_rounds(
    a: &CompareArgs,
    work: &Path,
    skip: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Vec<ClientRun>> {
    let mut order = vec![
        Tool::Loadgen,
        Tool::LoadgenExact,
        Tool::Floor,
        Tool::FloorTimed,
        Tool::K6,
        Tool::Oha,
        Tool::Autocannon,
        Tool::Hey,
    ];
    order.retain(|t| !skip(t.name()));
    rate_rounds(a, work, &order, a.connections)
}

/// The HTTP/2 rows: loadgen, h2load and oha over h2c against echo-svc, each on one
/// connection with up to [`peers::H2_STREAMS`] streams.
fn h2_rounds(
    a: &CompareArgs,
    work: &Path,
    skip: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Vec<ClientRun>> {
    let mut order = vec![Tool::LoadgenH2, Tool::H2load, Tool::OhaH2];
    order.retain(|t| !skip(t.name()));
    rate_rounds(a, work, &order, 1)
}

/// `tools` in turn against echo-svc at each rate, `--rounds` rounds, over `connections`.
fn rate_rounds(
    a: &CompareArgs,
    work: &Path,
    order: &[Tool],
    connections: usize,
) -> anyhow::Result<Vec<ClientRun>> {
    let (sc, cc) = (a.server_core, a.client_core);
    let mut out = Vec::new();
    let echo = start_echo(&a.echo_bin, sc)?;
    for &rate in &a.rates {
        for round in 1..=a.rounds {
            for &tool in order {
                let Some(prog) = peer_program(tool, &a.loadgen_bin) else {
                    if round == 1 {
                        out.push(missing(tool, Some(rate), a.duration));
                    }
                    continue;
                };
                let shape = Load {
                    connections,
                    ..load(a, rate, a.duration)
                };
                let inv = peers::fixed_rate(tool, &prog, &echo.url(), shape, work);
                let mut row = run_client(tool, &inv, cc, &echo, Some(rate), a.duration, work);
                row.round = round;
                out.push(row);
            }
        }
    }
    drop(echo);
    Ok(out)
}

/// Per round, `wrk -t1` against nginx and then loadgen open loop at 1.25x its rate.
fn max_rate(a: &CompareArgs, work: &Path) -> anyhow::Result<Vec<ClientRun>> {
    let (sc, cc) = (a.server_core, a.client_core);
    let mut out = Vec::new();
    let nginx = start_nginx(sc)?;
    match peer_program(Tool::Wrk, &a.loadgen_bin) {
        None => out.push(missing(Tool::Wrk, None, a.duration)),
        Some(wrk) => {
            let inv = Invocation {
                program: wrk.clone(),
                args: peers::wrk_args(&nginx.url(), load(a, 0.0, a.duration)),
                report_file: None,
                files: Vec::new(),
                env: Vec::new(),
            };
            for round in 1..=a.rounds {
                let mut first = run_client(Tool::Wrk, &inv, cc, &nginx, None, a.duration, work);
                first.round = round;
                // loadgen is open loop: ask for more than wrk managed, so the ceiling is
                // its own.
                let ask = (first.achieved_rps * 1.25).max(1000.0);
                out.push(first);
                let mut lg = peers::fixed_rate(
                    Tool::Loadgen,
                    &a.loadgen_bin,
                    &nginx.url(),
                    load(a, ask, a.duration),
                    work,
                );
                lg.args.extend(["--max-lag".to_string(), "10s".into()]);
                let mut row = run_client(Tool::Loadgen, &lg, cc, &nginx, None, a.duration, work);
                row.mode = "open loop at 1.25x the round's wrk rate, --threads 1".into();
                row.round = round;
                out.push(row);
            }
        }
    }
    drop(nginx);
    Ok(out)
}

/// loadgen's peak RSS for a short and a long run at the first rate.
fn memory(a: &CompareArgs, work: &Path) -> anyhow::Result<Vec<MemoryRow>> {
    let (sc, cc) = (a.server_core, a.client_core);
    let mut out = Vec::new();
    let echo = start_echo(&a.echo_bin, sc)?;
    let rate = a.rates.first().copied().unwrap_or(5000.0);
    for d in [a.memory_long / 10, a.memory_long] {
        let inv = peers::fixed_rate(
            Tool::Loadgen,
            &a.loadgen_bin,
            &echo.url(),
            load(a, rate, d),
            work,
        );
        let row = run_client(Tool::Loadgen, &inv, cc, &echo, Some(rate), d, work);
        if let Some(e) = &row.error {
            bail!("memory run of {d:?} failed: {e}");
        }
        out.push(MemoryRow {
            duration_secs: d.as_secs_f64(),
            rate,
            responses: row.responses,
            peak_rss_mib: row.peak_rss_mib,
        });
    }
    drop(echo);
    Ok(out)
}

/// loadgen at `--tick-rate` with every `--tick-sweep` tick, alternated within each round,
/// against a near echo-svc and (unless `--far-delay 0s`) one with a server-side delay.
fn tick_sweep(a: &CompareArgs, work: &Path) -> anyhow::Result<Vec<TickRun>> {
    let far = format!("delay={}us", a.far_delay.as_micros());
    // The far server holds rate x delay requests at once: give it twice that many
    // connections, so the pool is never what the sweep measures.
    let far_conns = (a.tick_rate * a.far_delay.as_secs_f64() * 2.0).ceil() as usize;
    let mut servers = vec![("near".to_string(), Vec::new(), a.connections)];
    if !a.far_delay.is_zero() {
        let label = format!("{} away", humantime::format_duration(a.far_delay));
        let conns = a.connections.max(far_conns);
        servers.push((label, vec!["--faults", far.as_str()], conns));
    }
    let mut rows = Vec::new();
    for (label, extra, connections) in &servers {
        let load = Load {
            rate: a.tick_rate,
            duration: a.duration,
            connections: *connections,
        };
        let echo = start_echo_with(&a.echo_bin, a.server_core, extra)?;
        for round in 1..=a.rounds {
            for tick in &a.tick_sweep {
                let mut inv =
                    peers::fixed_rate(Tool::Loadgen, &a.loadgen_bin, &echo.url(), load, work);
                inv.args.extend(["--tick".to_string(), tick.clone()]);
                let mut run = run_client(
                    Tool::Loadgen,
                    &inv,
                    a.client_core,
                    &echo,
                    Some(a.tick_rate),
                    a.duration,
                    work,
                );
                run.round = round;
                run.mode = format!("--tick {tick}");
                rows.push(TickRun {
                    server: label.clone(),
                    tick: tick.clone(),
                    run,
                });
            }
        }
    }
    Ok(rows)
}

fn servers(a: &CompareArgs, work: &Path) -> anyhow::Result<Vec<ServerRow>> {
    let (sc, cc) = (a.server_core, a.client_core);
    let wrk = peer_program(Tool::Wrk, &a.loadgen_bin).context("wrk is not installed")?;
    let mut list = vec![start_echo(&a.echo_bin, sc)?, start_nginx(sc)?];
    let mut idle = Vec::new();
    for s in &list {
        idle.push(procfs::memory(s.pid())?.rss_kib);
    }
    // Alternating wrk rounds so that background load hits both servers alike.
    let mut rps = vec![Vec::new(); list.len()];
    let mut cpu = vec![Vec::new(); list.len()];
    for _round in 0..a.rounds {
        for (i, s) in list.iter().enumerate() {
            let inv = Invocation {
                program: wrk.clone(),
                args: peers::wrk_args(
                    &s.url(),
                    Load {
                        rate: 0.0,
                        duration: a.duration,
                        connections: a.connections,
                    },
                ),
                report_file: None,
                files: Vec::new(),
                env: Vec::new(),
            };
            let row = run_client(Tool::Wrk, &inv, cc, s, None, a.duration, work);
            if let Some(e) = &row.error {
                bail!("wrk against {}: {e}", s.name);
            }
            rps[i].push(row.achieved_rps);
            cpu[i].push(row.server_cpu_util);
        }
    }
    let mut fixed = Vec::new();
    for s in &list {
        let inv = peers::fixed_rate(
            Tool::Loadgen,
            &a.loadgen_bin,
            &s.url(),
            Load {
                rate: a.server_rate,
                duration: a.duration,
                connections: a.connections,
            },
            work,
        );
        fixed.push(run_client(
            Tool::Loadgen,
            &inv,
            cc,
            s,
            Some(a.server_rate),
            a.duration,
            work,
        ));
    }
    let mut rows = Vec::new();
    for (i, s) in list.iter_mut().enumerate() {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let (r, c) = (mean(&rps[i]), mean(&cpu[i]));
        let mem = procfs::memory(s.pid())?;
        rows.push(ServerRow {
            server: s.name.clone(),
            wrk_rps: r,
            rps_per_core: if c > 0.0 { r / c } else { 0.0 },
            rps_per_core_rounds: rps[i]
                .iter()
                .zip(&cpu[i])
                .map(|(r, c)| if *c > 0.0 { r / c } else { 0.0 })
                .collect(),
            server_cpu_util: c,
            fixed_rate: a.server_rate,
            fixed_p50_ms: fixed[i].p50_ms,
            fixed_p99_ms: fixed[i].p99_ms,
            idle_rss_mib: mib(idle[i]),
            peak_rss_mib: mib(mem.hwm_kib),
        });
    }
    Ok(rows)
}

/// `YYYY-MM-DD HH:MM UTC` from the system clock (no time-zone database needed).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    let mut s = String::new();
    let _ = write!(s, "{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC");
    s
}

/// This run's command line, paths under the current directory made relative to it, so
/// the README shows the command as anyone's checkout would run it.
fn command_line() -> String {
    let here = std::env::current_dir()
        .map(|d| format!("{}/", d.display()))
        .unwrap_or_default();
    std::env::args()
        .map(|a| match a.strip_prefix(&here) {
            Some(rel) if !here.is_empty() => rel.to_string(),
            _ => a,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn utc_format_looks_right() {
        let s = utc_now();
        assert!(s.ends_with(" UTC") && s.len() == 20, "{s}");
        assert!(s.starts_with("20"), "{s}");
    }
}
