//! One bounded client run: the tool started pinned to its core while a server serves,
//! reaped with `wait4` for its CPU, peak RSS and sleeps, and its own report read back
//! into a [`ClientRun`] row. Every section of the comparison runs its clients through here.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::outputs::{self, Reported};
use crate::peers::{Invocation, Tool};
use crate::procfs;
use crate::procs::{pinned, which, Server};
use crate::results::ClientRun;

/// Extra time a bounded client run gets before it is killed.
const RUN_GRACE: Duration = Duration::from_secs(30);
/// KiB (as `wait4` and `/proc` count) to MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Runs one client invocation pinned to `core` while `server` serves, and collects figures.
pub fn run_client(
    tool: Tool,
    inv: &Invocation,
    core: usize,
    server: &Server,
    target_rps: Option<f64>,
    duration: Duration,
    work: &Path,
) -> ClientRun {
    let mut row = empty_row(tool, target_rps, duration);
    match client_inner(tool, inv, core, server, duration, work, &mut row) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("compare: {}: {e:#}", tool.name());
            row.error = Some(format!("{e:#}"));
        }
    }
    row
}

fn client_inner(
    tool: Tool,
    inv: &Invocation,
    core: usize,
    server: &Server,
    duration: Duration,
    work: &Path,
    row: &mut ClientRun,
) -> anyhow::Result<()> {
    for (p, text) in &inv.files {
        fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    // A report left by the last round would be read as this one's (h2load appends to its
    // log file).
    if let Some(p) = &inv.report_file {
        let _ = fs::remove_file(p);
    }
    let out_path = work.join(format!("{}.stdout", tool.name()));
    let err_path = work.join(format!("{}.stderr", tool.name()));
    let stdout = fs::File::create(&out_path).context("cannot create the stdout file")?;
    let stderr = fs::File::create(&err_path).context("cannot create the stderr file")?;
    let mut cmd = pinned(core, &inv.program, &inv.args);
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    for (k, v) in &inv.env {
        cmd.env(k, v);
    }
    let server_cpu0 = procfs::process_cpu(server.pid())?;
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", inv.program.display()))?;
    let usage = procfs::wait_child(&mut child, started, duration + RUN_GRACE)?;
    let server_cpu1 = procfs::process_cpu(server.pid())?;
    let stdout_text = fs::read_to_string(&out_path).unwrap_or_default();
    // loadgen exits 0 or 99 (an SLO); the peers exit 0 when the run completed.
    let ok_exit = matches!(usage.status.code(), Some(0) | Some(99));
    if !ok_exit {
        let err_text = fs::read_to_string(&err_path).unwrap_or_default();
        let tail: String = err_text
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" / ");
        bail!("exited with {}: {tail}", usage.status);
    }
    let report_text = match &inv.report_file {
        Some(p) => {
            fs::read_to_string(p).with_context(|| format!("no report at {}", p.display()))?
        }
        None => stdout_text,
    };
    let rep: Reported = outputs::parse(tool, &report_text)?;
    let wall = usage.wall.as_secs_f64();
    row.responses = rep.responses;
    row.errors = rep.errors;
    row.dropped = rep.dropped;
    row.p50_ms = rep.p50_ms;
    row.p99_ms = rep.p99_ms;
    row.pacing_p99_ms = rep.pacing_p99_ms;
    row.stamps_unheld = rep.unheld;
    row.achieved_rps = rep.responses as f64 / duration.as_secs_f64();
    row.cpu_us_per_req = if rep.responses > 0 {
        usage.cpu.as_secs_f64() * 1e6 / rep.responses as f64
    } else {
        f64::INFINITY
    };
    row.cpu_util = usage.cpu.as_secs_f64() / wall;
    row.wakeups_per_req = if rep.responses > 0 {
        usage.sleeps as f64 / rep.responses as f64
    } else {
        0.0
    };
    row.peak_rss_mib = mib(usage.max_rss_kib);
    row.server_cpu_util = server_cpu1.saturating_sub(server_cpu0).as_secs_f64() / wall;
    eprintln!(
        "compare: {:<10} {:>7} rps: achieved {:.0}/s, CPU {:.2} µs/req ({:.0}% core), p99 {}, RSS {:.1} MiB, server CPU {:.0}%",
        tool.name(),
        row.target_rps.map_or("max".to_string(), |r| format!("{r:.0}")),
        row.achieved_rps,
        row.cpu_us_per_req,
        row.cpu_util * 100.0,
        row.p99_ms.map_or("-".into(), |v| format!("{v:.3}ms")),
        row.peak_rss_mib,
        row.server_cpu_util * 100.0
    );
    Ok(())
}

pub fn peer_program(tool: Tool, loadgen: &Path) -> Option<PathBuf> {
    match tool {
        Tool::Loadgen | Tool::LoadgenExact | Tool::LoadgenH2 => Some(loadgen.to_path_buf()),
        // The floor is this binary's own `floor` subcommand.
        Tool::Floor | Tool::FloorTimed => std::env::current_exe().ok(),
        // k6 from the project's Python virtualenv when it is not on PATH.
        Tool::K6 => which("k6").or_else(|| which(".venv/bin/k6")),
        Tool::H2load => which("h2load"),
        Tool::Oha | Tool::OhaH2 => which("oha").or_else(|| {
            let home = std::env::var_os("HOME")?;
            let p = PathBuf::from(home).join(".cargo/bin/oha");
            p.is_file().then_some(p)
        }),
        Tool::Autocannon => which("autocannon"),
        Tool::Hey => which("hey"),
        Tool::Wrk => which("wrk"),
    }
}

/// A row with no figures yet.
fn empty_row(tool: Tool, target_rps: Option<f64>, duration: Duration) -> ClientRun {
    ClientRun {
        tool: tool.name().into(),
        round: 0,
        mode: tool.mode().into(),
        target_rps,
        duration_secs: duration.as_secs_f64(),
        achieved_rps: 0.0,
        responses: 0,
        errors: 0,
        dropped: 0,
        p50_ms: None,
        p99_ms: None,
        pacing_p99_ms: None,
        stamps_unheld: 0,
        cpu_us_per_req: 0.0,
        cpu_util: 0.0,
        wakeups_per_req: 0.0,
        peak_rss_mib: 0.0,
        server_cpu_util: 0.0,
        error: None,
    }
}

pub fn missing(tool: Tool, target_rps: Option<f64>, duration: Duration) -> ClientRun {
    ClientRun {
        error: Some("not installed (scripts/install-tools.sh bench)".into()),
        ..empty_row(tool, target_rps, duration)
    }
}
