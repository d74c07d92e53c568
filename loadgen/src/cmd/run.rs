//! `loadgen [flags]`: one load run, from a checked configuration to the report.
//!
//! Resolve the targets, drive the engine on its own threads (stopping early on
//! SIGINT/SIGTERM), then judge and report through the one end-of-run path
//! ([`crate::report::finish`]).

use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::configured::config::RunConfig;
use crate::judge::Judgement;
use crate::live;
use crate::report::console;
use crate::report::story::{self, Story};
use crate::results::Results;
use crate::schedule::RatePlan;
use crate::send;
use crate::timeline::Timeline;

/// The outcome of one run.
#[derive(Debug)]
pub struct RunOutcome {
    pub results: Results,
    /// The SLO verdicts, the exit code they decide and what limited the run.
    pub judgement: Judgement,
    /// Corrected latency per interval and group.
    pub timeline: Timeline,
    /// What happened between the events a scenario marked (`None`: no events).
    pub story: Option<Story>,
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
    let addrs = control.block_on(resolve_all(&cfg))?;
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
    announce(&cfg, &addrs);
    let (stop_tx, stop_rx) = watch::channel(false);
    let target_names: Vec<String> = cfg.targets.iter().map(|t| t.name.clone()).collect();
    let drawn = live::progress::Progress::drawn(cfg.progress);
    let live = {
        let l = live::Live::new(cfg.threads);
        // The progress line shows who serves each target, from the same snapshots.
        Arc::new(if cfg.metrics_addr.is_some() || drawn {
            l.with_detail()
        } else {
            l
        })
    };
    // Served for the whole run, including the report phase below.
    let _metrics = match cfg.metrics_addr {
        Some(addr) => {
            let server = control.block_on(live::metrics::serve(
                addr,
                live.clone(),
                target_names.clone(),
            ))?;
            console::note(format_args!(
                "loadgen: Prometheus metrics on http://{}/metrics",
                server.addr
            ));
            Some(server)
        }
        None => None,
    };
    let progress = live::progress::Progress::start(
        drawn,
        &live,
        &target_names,
        cfg.warmup + cfg.measured_duration(),
    );
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
            send::drive(&cfg2, &addrs, &plans2, stop_rx, Some(live2))
        });
        let out = engine.await.context("the engine panicked");
        signals.abort();
        out
    })??;
    progress.finish();
    let (results, timeline) = out.into_results(&cfg, &plans);
    conclude(&cfg, results, timeline)
}

/// Each target's addresses. A target whose name does not resolve does not stop the
/// others: its requests count in the `dns` bucket while it is retried. Only when no
/// target resolves is it an error.
async fn resolve_all(cfg: &RunConfig) -> anyhow::Result<Vec<Vec<std::net::SocketAddr>>> {
    let mut addrs = Vec::new();
    let mut last_error = None;
    for t in &cfg.targets {
        match t.resolve().await {
            Ok(a) => addrs.push(a),
            Err(e) => {
                console::note(format_args!(
                    "loadgen: WARNING {e:#}; its requests count as dns failures until it resolves"
                ));
                addrs.push(Vec::new());
                last_error = Some(e);
            }
        }
    }
    match last_error {
        Some(e) if addrs.iter().all(Vec::is_empty) => Err(e),
        _ => Ok(addrs),
    }
}

/// Says what is about to run: each target with what it is sent, the length and the
/// arrivals, and loudly when certificates are not checked.
fn announce(cfg: &RunConfig, addrs: &[Vec<std::net::SocketAddr>]) {
    let insecure = cfg.tls.as_ref().is_some_and(|x| x.insecure);
    let names: Vec<String> = cfg
        .targets
        .iter()
        .zip(addrs)
        .map(|(t, a)| {
            let mut notes: Vec<String> = t.request.describe().into_iter().collect();
            if a.len() > 1 {
                notes.push(format!("{} addresses in turn", a.len()));
            }
            if t.tls.is_some() && insecure {
                notes.push("TLS, certificates NOT checked".into());
            }
            if notes.is_empty() {
                format!("{}={}", t.name, t.url)
            } else {
                format!("{}={} ({})", t.name, t.url, notes.join(", "))
            }
        })
        .collect();
    console::note(format_args!(
        "loadgen: running against {} for {:?} (+{:?} warm-up), {} arrivals",
        names.join(", "),
        cfg.measured_duration(),
        cfg.warmup,
        format!("{:?}", cfg.arrival).to_lowercase()
    ));
    if insecure {
        console::note(format_args!(
            "loadgen: WARNING --insecure: https certificates and host names are not checked; \
             the traffic is encrypted but not authenticated"
        ));
    }
}

/// Judges the results, tells the story between a scenario's events, and ends through
/// the one report path.
fn conclude(cfg: &RunConfig, results: Results, timeline: Timeline) -> anyhow::Result<RunOutcome> {
    let judgement = crate::judge::judge(&cfg.slos, &results);
    let events = cfg.events.snapshot();
    let story = (!events.is_empty()).then(|| {
        let names: Vec<String> = results.targets.iter().map(|t| t.name.clone()).collect();
        story::build(&timeline, &events, &names, results.measured_secs)
    });
    crate::report::finish(&crate::report::Finish {
        results: &results,
        slos: &cfg.slos,
        judgement: &judgement,
        settings: cfg.settings_json(),
        json: cfg.json.as_deref(),
        exports: &cfg.exports,
        timeline: Some(&timeline),
        events: &events,
        story: story.as_ref(),
    })?;
    Ok(RunOutcome {
        results,
        judgement,
        timeline,
        story,
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
    console::note(format_args!("loadgen: stopping: finishing in-flight requests and writing the partial report (again to abort)"));
    let _ = stop.send(true);
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    console::note(format_args!("loadgen: aborted"));
    std::process::exit(130);
}
