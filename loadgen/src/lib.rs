//! loadgen: an open-loop HTTP load generator whose numbers can be trusted.
//!
//! Requests go out on a schedule that does not wait for responses; latency is measured
//! from each request's *scheduled* time (corrected for coordinated omission) into HDR
//! histograms per target, served region, version and status class; SLO gates decide the
//! exit code.
//!
//! Module map:
//!
//! - [`cli`]: flags, environment fallbacks, exit codes in `--help`.
//! - [`error`]: [`error::UsageError`] (exit 2) and size-capped reads of user files.
//! - [`config`]: validated [`config::RunConfig`].
//! - [`target`]: named targets and how bare names resolve to URLs.
//! - [`schedule`]: stages/ramps, warm-up, fixed and Poisson arrivals.
//! - [`clock`]: monotonic nanoseconds and the timerfd-based precise wait.
//! - [`engine`]: worker threads, open-loop dispatch, connection pools, in-flight cap, timeouts.
//! - [`http1`]: the lean HTTP/1.1 client connection the engine drives.
//! - [`record`]: accounting buckets and HDR histograms (corrected, service time, pacing lag,
//!   connection wait).
//! - [`limits`]: whether loadgen itself (its connection pool or its CPU) limited the run.
//! - [`units`]: how durations are written for people.
//! - [`slo`]: SLO syntax (short form and k6 thresholds) and evaluation.
//! - [`report`]: the end-of-run table and the JSON report.
//! - [`progress`]: live progress on a terminal.
//! - [`console`]: printing that a closed stdout or stderr cannot turn into a crash.
//! - [`metrics`]: Prometheus exposition during a run (`--metrics-addr`).
//! - [`lab`]: the embedded two-region fleet behind `loadgen lab`.
//! - [`saved`]: reading a JSON report back (exact histograms) for merge and compare.
//! - [`shard`]: `--shard i/n` and `loadgen merge` (scale-out across processes or pods).
//! - [`baseline`]: `loadgen compare`, the p95/p99 regression gate against a baseline.
//! - [`export`]: writing the report files besides `--json`:
//!   [`summary`] (k6-compatible `--summary-export`), [`junit`] (`--junit`) and
//!   [`html`] (`--html`, self-contained with inline SVG plots), [`hdrlog`] (`--hdr-log`).
//!
//! Entry points: [`run`] (what `main` calls) and [`execute`] (one load run, also used by the lab).

pub mod baseline;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod engine;
pub mod error;
pub mod export;
pub mod hdrlog;
pub mod html;
pub mod http1;
pub mod junit;
pub mod lab;
pub mod limits;
pub mod metrics;
pub mod progress;
pub mod record;
pub mod report;
pub mod saved;
pub mod schedule;
pub mod shard;
pub mod slo;
pub mod summary;
pub mod target;
pub mod units;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::cli::{Cli, Command};
use crate::config::{RunConfig, UsageError};
use crate::record::{GroupHist, GroupKey, Results, TargetResult};
use crate::schedule::RatePlan;
use crate::slo::Verdict;

/// Every SLO passed (or none was given).
pub const EXIT_OK: u8 = 0;
/// Runtime failure.
pub const EXIT_FAILURE: u8 = 1;
/// Usage error.
pub const EXIT_USAGE: u8 = 2;
/// At least one SLO failed.
pub const EXIT_SLO_FAILED: u8 = 99;

/// Exit code for an error that ended the program.
pub fn exit_code_for(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<UsageError>().is_some() {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

/// Runs what the command line asks for and returns the exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Some(Command::Lab(args)) => lab::run(&args),
        Some(Command::Merge(args)) => shard::run_merge(&args),
        Some(Command::Compare(args)) => baseline::run_compare(&args),
        None => {
            let cfg = RunConfig::from_args(&cli.run)?;
            Ok(execute(cfg, true)?.exit_code)
        }
    }
}

/// The outcome of one run.
#[derive(Debug)]
pub struct RunOutcome {
    pub results: Results,
    pub verdicts: Vec<Verdict>,
    pub exit_code: u8,
    /// Corrected latency per interval and group.
    pub timeline: record::Timeline,
}

/// Exit code for a set of verdicts.
pub fn verdict_code(verdicts: &[Verdict]) -> u8 {
    if verdicts.iter().all(|v| v.pass) {
        EXIT_OK
    } else {
        EXIT_SLO_FAILED
    }
}

/// Runs one load test: resolves targets, drives the engine until the schedule ends (or,
/// with `stop_on_signals`, a SIGINT/SIGTERM arrives), prints the report on stdout and
/// writes the JSON report. Signal handling is process-wide, so embedders such as tests
/// leave it off. Must not be called from inside a tokio runtime.
pub fn execute(cfg: RunConfig, stop_on_signals: bool) -> anyhow::Result<RunOutcome> {
    let cfg = Arc::new(cfg);
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the control runtime")?;
    let addrs = control.block_on(async {
        let mut addrs = Vec::new();
        for t in &cfg.targets {
            addrs.push(t.resolve().await?);
        }
        anyhow::Ok(addrs)
    })?;
    let total_weight: f64 = cfg.targets.iter().map(|t| t.weight).sum();
    let plans: Vec<Arc<RatePlan>> = cfg
        .targets
        .iter()
        .map(|t| {
            Arc::new(RatePlan::new(
                &cfg.stages,
                cfg.warmup,
                t.weight / total_weight,
            ))
        })
        .collect();

    let names: Vec<String> = cfg
        .targets
        .iter()
        .map(|t| format!("{}={}", t.name, t.url))
        .collect();
    crate::console::note(format_args!(
        "loadgen: running against {} for {:?} (+{:?} warm-up), {} arrivals",
        names.join(", "),
        cfg.measured_duration(),
        cfg.warmup,
        format!("{:?}", cfg.arrival).to_lowercase()
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let live = {
        let l = engine::Live::new(cfg.threads);
        Arc::new(if cfg.metrics_addr.is_some() {
            l.with_detail()
        } else {
            l
        })
    };
    // Served for the whole run, including the report phase below.
    let _metrics = match cfg.metrics_addr {
        Some(addr) => {
            let names = cfg.targets.iter().map(|t| t.name.clone()).collect();
            let server = control.block_on(metrics::serve(addr, live.clone(), names))?;
            crate::console::note(format_args!(
                "loadgen: Prometheus metrics on http://{}/metrics",
                server.addr
            ));
            Some(server)
        }
        None => None,
    };
    let progress =
        progress::Progress::start(cfg.progress, &live, cfg.warmup + cfg.measured_duration());
    let out = control.block_on(async {
        let signals = tokio::spawn(async move {
            if stop_on_signals {
                watch_signals(stop_tx).await;
            } else {
                // Keep the sender alive: a dropped sender would read as a stop.
                std::future::pending::<()>().await;
                drop(stop_tx);
            }
        });
        let (cfg2, plans2, live2) = (cfg.clone(), plans.clone(), live.clone());
        let engine = tokio::task::spawn_blocking(move || {
            engine::run(&cfg2, &addrs, &plans2, stop_rx, Some(live2))
        });
        let out = engine.await.context("the engine panicked");
        signals.abort();
        out
    })??;
    progress.finish();

    let (results, timeline) = merge(&cfg, &plans, out);
    let verdicts: Vec<Verdict> = cfg
        .slos
        .iter()
        .map(|s| slo::evaluate(s, &results))
        .collect();
    let exit_code = verdict_code(&verdicts);
    // Files first, so a closed stdout below cannot cost the results; a file that cannot
    // be written fails the run only after the report is on the terminal.
    let written = (|| -> anyhow::Result<()> {
        if let Some(path) = &cfg.json {
            let json = report::to_json(&cfg, &results, &verdicts, exit_code)?;
            std::fs::write(path, json)
                .with_context(|| format!("cannot write the JSON report to {}", path.display()))?;
        }
        export::write_all(
            &cfg.exports,
            &report::settings_json(&cfg),
            &results,
            Some(&timeline),
            &cfg.slos,
            &verdicts,
        )
    })();
    let mut text = report::render(&results, &verdicts);
    if !cfg.tick.is_zero() {
        text.push_str(&format!(
            "note: --tick {:?} batches dispatch; pacing lag up to one tick is by design\n",
            cfg.tick
        ));
    }
    console::out(&text);
    written?;
    Ok(RunOutcome {
        results,
        verdicts,
        exit_code,
        timeline,
    })
}

async fn watch_signals(stop: watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; Ctrl-C will end the run without a report");
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    crate::console::note(format_args!("loadgen: stopping: finishing in-flight requests and writing the partial report (again to abort)"));
    let _ = stop.send(true);
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    crate::console::note(format_args!("loadgen: aborted"));
    std::process::exit(130);
}

fn merge(
    cfg: &RunConfig,
    plans: &[Arc<RatePlan>],
    out: engine::EngineOutput,
) -> (Results, record::Timeline) {
    let names: Vec<String> = cfg.targets.iter().map(|t| t.name.clone()).collect();
    let warmup_ns = (plans.first().map(|p| p.warmup_secs()).unwrap_or(0.0) * 1e9) as u64;
    let end_ns = (plans.first().map(|p| p.end_secs()).unwrap_or(0.0) * 1e9) as u64;
    let measured_start = out.start_ns + warmup_ns;
    let measured_end = if out.interrupted {
        out.stop_ns.min(out.start_ns + end_ns)
    } else {
        out.start_ns + end_ns
    };
    let measured_secs = measured_end.saturating_sub(measured_start) as f64 / 1e9;

    let mut targets: Vec<TargetResult> = cfg
        .targets
        .iter()
        .map(|t| TargetResult {
            name: t.name.clone(),
            url: t.url.to_string(),
            requested_rps: 0.0,
            measured: Default::default(),
            warmup: Default::default(),
            pool: Default::default(),
            folded: 0,
        })
        .collect();
    let mut groups: std::collections::BTreeMap<GroupKey, GroupHist> = Default::default();
    let mut pacing = record::new_histogram();
    let mut timeline = record::Timeline::default();
    for rec in out.recorders {
        let (accts, g, p, tl) = rec.into_parts(&names);
        timeline.merge(tl);
        for (t, a) in targets.iter_mut().zip(accts) {
            t.measured.merge(&a.measured);
            t.warmup.merge(&a.warmup);
            t.pool.merge(&a.pool);
            t.folded += a.folded;
        }
        for (k, h) in g {
            groups.entry(k).or_default().merge(&h);
        }
        let _ = pacing.add(&p);
    }
    // Wall-clock time of the measured start: now, minus how long ago it was on the
    // monotonic clock the engine uses.
    let ago = clock::now_ns().saturating_sub(measured_start) as f64 / 1e9;
    timeline.origin_unix_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
        - ago;
    for t in &mut targets {
        t.requested_rps = if measured_secs > 0.0 {
            t.measured.scheduled as f64 / measured_secs
        } else {
            0.0
        };
    }
    (
        Results {
            targets,
            groups,
            pacing,
            measured_secs,
            interrupted: out.interrupted,
        },
        timeline,
    )
}
