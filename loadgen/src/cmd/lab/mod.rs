//! `loadgen lab`: the course's labs on one machine.
//!
//! Starts two regions, us and eu, each a router ([`router`], standing in for the Envoy
//! sidecar: weighted v1/v2 subsets, outlier detection, locality failover through the
//! east-west gateway) in front of echo-svc pods ([`fleet`]). A scenario ([`scenario`])
//! makes things happen to the fleet while loadgen runs against both routers with the lab's
//! SLOs; the report is the same one a run against the real clusters prints, plus the
//! "what happened" story ([`crate::report::story`]) cut at the scenario's events.

mod builtin;
pub mod fleet;
pub mod router;
pub mod scenario;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser as _;

use crate::cmd::run::RunOutcome;
use crate::configured::cli::lab::LabArgs;
use crate::configured::cli::RunArgs;
use crate::configured::config::RunConfig;
use crate::error::UsageError;
use crate::events::{Event, EventLog};
use crate::report::story::{self, Story};
use fleet::{Fleet, FleetSpec};
use router::Outlier;
use scenario::Scenario;

/// SLOs the lab applies unless `--slo` is given. The last one fails a run that loadgen
/// itself limited, so a trainee never reads the generator's shortfall as the service's.
pub const DEFAULT_SLOS: [&str; 6] = [
    "p95<100ms",
    "p99<250ms",
    "http_req_duration{target:eu}: p(95)<150",
    "error_rate<1%",
    "dropped==0",
    "generator_limited==0",
];

/// A finished lab run: the run itself, the scenario's events and the story they cut.
#[derive(Debug)]
pub struct LabOutcome {
    pub run: RunOutcome,
    pub events: Vec<Event>,
    pub story: Story,
}

fn check(a: &LabArgs) -> Result<Scenario, UsageError> {
    if !(a.rps.is_finite() && a.rps > 0.0) {
        return Err(UsageError::new("--rps must be > 0"));
    }
    if a.v2_percent > 100 || a.canary_steps.iter().any(|w| *w > 100) {
        return Err(UsageError::new(
            "--v2-percent and --canary-steps must be 0..=100",
        ));
    }
    if a.replicas == 0 || a.replicas > 16 {
        return Err(UsageError::new("--replicas must be 1..=16"));
    }
    if a.consecutive_5xx == 0 || a.consecutive_gateway_errors == 0 || a.outlier_interval.is_zero() {
        return Err(UsageError::new(
            "--consecutive-5xx, --consecutive-gateway-errors and --outlier-interval must be > 0",
        ));
    }
    if a.interval < Duration::from_millis(10) {
        return Err(UsageError::new("--interval must be at least 10ms"));
    }
    match &a.scenario_file {
        None => {
            let s = builtin::builtin(a.scenario, a);
            s.check().map_err(UsageError::new)?;
            Ok(s)
        }
        Some(p) => {
            let text = crate::error::read_input(p, "--scenario-file")?;
            Scenario::from_yaml(&text)
                .map_err(|e| UsageError::new(format!("--scenario-file {}: {e}", p.display())))
        }
    }
}

/// Stops the fleet after the run. The run's own signal watcher is gone by then, so this
/// one keeps Ctrl-C's promise: a signal while the pods drain aborts at once, with 130.
fn stop_fleet(rt: &tokio::runtime::Runtime, f: Fleet, interrupted: bool) -> anyhow::Result<()> {
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return f.shutdown(interrupted).await;
        };
        tokio::select! {
            r = f.shutdown(interrupted) => r,
            _ = int.recv() => abort(),
            _ = term.recv() => abort(),
        }
    })
    .context("stopping the lab fleet")
}

fn abort() -> ! {
    crate::report::console::note(format_args!("loadgen: aborted"));
    std::process::exit(130);
}

/// Runs the lab and returns the exit code.
pub fn run_lab(args: &LabArgs) -> anyhow::Result<u8> {
    Ok(run_scenario(args)?.run.judgement.exit_code)
}

/// Runs the lab: fleet up, scenario and load side by side, report, fleet down.
pub fn run_scenario(args: &LabArgs) -> anyhow::Result<LabOutcome> {
    let sc = check(args)?;
    let duration = args
        .duration
        .or(sc.duration)
        .unwrap_or(Duration::from_secs(10));
    if sc.last_step() >= duration {
        crate::report::console::note(format_args!(
            "lab: WARNING the scenario's last step (t={:?}) is not inside the {:?} run",
            sc.last_step(),
            duration
        ));
    }
    let v2 = sc.v2_percent.unwrap_or(args.v2_percent);
    let events = EventLog::default();
    let fleet_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("lab-fleet")
        .enable_all()
        .build()
        .context("cannot start the fleet runtime")?;
    let fleet = fleet_rt.block_on(Fleet::start(fleet_spec(args, v2), events.clone()))?;
    let cfg = match run_config(args, &sc, &fleet, v2, duration, &events) {
        Ok(c) => c,
        Err(e) => {
            let _ = fleet_rt.block_on(fleet.shutdown(true));
            return Err(e);
        }
    };
    // Step times count from the start of the measured run, after the warm-up.
    let origin = Instant::now() + args.warmup;
    let driver = fleet_rt.spawn(scenario::drive(fleet, sc, origin, args.drain_delay));
    let outcome = crate::cmd::run::execute(cfg, true);
    let fleet = fleet_rt.block_on(async {
        // A scenario longer than the run (or an interrupted run) ends with it.
        match tokio::time::timeout(Duration::from_secs(1), driver).await {
            Ok(Ok(f)) => f.map(Some),
            Ok(Err(e)) => Err(anyhow::anyhow!("the scenario task panicked: {e}")),
            Err(_) => Ok(None),
        }
    });
    let mut outcome = outcome?;
    match fleet? {
        Some(f) => {
            mesh_notes(&f);
            stop_fleet(&fleet_rt, f, outcome.results.interrupted)?;
        }
        None => crate::report::console::note(format_args!(
            "lab: the scenario had steps left when the run ended; the fleet is dropped"
        )),
    }
    let events = events.snapshot();
    // The run's end built it (and printed it); a run without events still has one phase.
    let story = outcome.story.take().unwrap_or_else(|| {
        let names: Vec<String> = outcome
            .results
            .targets
            .iter()
            .map(|t| t.name.clone())
            .collect();
        story::build(
            &outcome.timeline,
            &events,
            &names,
            outcome.results.measured_secs,
        )
    });
    Ok(LabOutcome {
        run: outcome,
        events,
        story,
    })
}

/// The fleet the flags describe, v2 at `v2` percent.
fn fleet_spec(args: &LabArgs, v2: u8) -> FleetSpec {
    FleetSpec {
        eu_delay: args.eu_delay,
        east_west: args.east_west_delay,
        v2_percent: v2,
        replicas: args.replicas,
        outlier: Outlier {
            consecutive_5xx: args.consecutive_5xx,
            consecutive_gateway: args.consecutive_gateway_errors,
            interval: args.outlier_interval,
            base_ejection: args.base_ejection_time,
            max_ejection_percent: args.max_ejection_percent.min(100),
        },
        drain: args.drain_delay,
        withdraw_after: args.withdraw_after,
    }
}

/// Says what the lab runs against, and builds the run: the two routers as targets, the
/// lab's and the scenario's SLOs, and for everything else what a direct run would get
/// (the flags' defaults and LOADGEN_* variables, parsed by the same command line).
fn run_config(
    args: &LabArgs,
    sc: &Scenario,
    fleet: &Fleet,
    v2: u8,
    duration: Duration,
    events: &EventLog,
) -> anyhow::Result<RunConfig> {
    let note = |s: std::fmt::Arguments<'_>| crate::report::console::note(s);
    note(format_args!("lab: scenario {}", sc.name));
    if !sc.about.is_empty() {
        note(format_args!("lab: {}", sc.about));
    }
    let mut targets = Vec::new();
    for (r, addr) in &fleet.routers {
        note(format_args!(
            "lab: region {} router on http://{addr}/ ({} pods per version, v1 {}%, v2 {}%)",
            r.region,
            args.replicas,
            100 - v2,
            v2
        ));
        targets.push(format!("{}=http://{addr}/", r.region));
    }
    note(format_args!(
        "lab: running {} rps for {:?} after {:?} warm-up; eu is {:?} slower",
        args.rps, duration, args.warmup, args.eu_delay
    ));
    let mut slos: Vec<String> = if args.slos.is_empty() {
        DEFAULT_SLOS.iter().map(|s| s.to_string()).collect()
    } else {
        args.slos.clone()
    };
    slos.extend(sc.slos.iter().cloned());
    let mut run_args: RunArgs = crate::configured::cli::Cli::try_parse_from(["loadgen"])
        .context("building the lab's run from the defaults")?
        .run;
    run_args.targets = targets;
    run_args.rps = Some(args.rps);
    run_args.duration = Some(duration);
    run_args.warmup = args.warmup;
    run_args.arrival = args.arrival;
    run_args.slos = slos;
    run_args.json = args.json.clone();
    run_args.no_progress = args.no_progress;
    run_args.exports = args.exports.clone();
    run_args.interval = args.interval;
    let mut cfg = RunConfig::from_args(&run_args)?;
    cfg.events = events.clone();
    cfg.keep_timeline = true;
    Ok(cfg)
}

/// What the mesh did during the run: outlier ejections and east-west traffic.
fn mesh_notes(f: &Fleet) {
    let note = |s: std::fmt::Arguments<'_>| crate::report::console::note(s);
    let ej = f.ejections();
    if !ej.is_empty() {
        let list: Vec<String> = ej.iter().map(|(p, n)| format!("{p} ×{n}")).collect();
        note(format_args!("lab: outlier ejections: {}", list.join(", ")));
    }
    for (r, _) in &f.routers {
        let n = r.stats.east_west.load(std::sync::atomic::Ordering::Relaxed);
        if n > 0 {
            note(format_args!(
                "lab: {} router sent {n} requests through the east-west gateway",
                r.region
            ));
        }
    }
}
