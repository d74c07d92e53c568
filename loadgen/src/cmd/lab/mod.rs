//! `loadgen lab`: the course's labs on one machine.
//!
//! Starts two regions, us and eu, each a router ([`router`], standing in for the Envoy
//! sidecar: weighted v1/v2 subsets, outlier detection, locality failover through the
//! east-west gateway) in front of echo-svc pods ([`fleet`]). A scenario ([`scenario`])
//! makes things happen to the fleet while loadgen runs against both routers with the lab's
//! SLOs; the report is the same one a run against the real clusters prints, plus the
//! "what happened" story ([`crate::report::story`]) cut at the scenario's events.

pub mod fleet;
pub mod router;
pub mod scenario;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser as _;

use crate::cmd::run::RunOutcome;
use crate::configured::cli::lab::LabArgs;
use crate::configured::cli::lab::ScenarioName;
use crate::configured::cli::RunArgs;
use crate::configured::config::RunConfig;
use crate::error::UsageError;
use crate::events::{Event, EventLog};
use crate::report::story::{self, Story};
use fleet::{Fleet, FleetSpec};
use router::Outlier;
use scenario::{Action, Analysis, Scenario, Step};

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

fn step(at: Duration, action: Action) -> Step {
    Step { at, action }
}

/// The built-in scenario `name` with the flags' parameters.
pub fn builtin(name: ScenarioName, a: &LabArgs) -> Scenario {
    let fmt = |d: Duration| humantime::format_duration(d).to_string();
    let mut s = Scenario {
        name: clap::ValueEnum::to_possible_value(&name)
            .map_or_else(|| format!("{name:?}"), |v| v.get_name().to_string()),
        about: String::new(),
        duration: None,
        slos: Vec::new(),
        v2_percent: None,
        analysis: None,
        steps: Vec::new(),
    };
    match name {
        ScenarioName::Baseline => {
            s.about =
                "Steady load on both regions: the per-cluster, per-version table of Lab 9.".into();
            s.duration = Some(Duration::from_secs(10));
        }
        ScenarioName::Failover => {
            s.about = format!(
                "Lab 7, locality failover. At t={} every us pod gets SIGTERM: it drains for {}, then is gone, \
                 but its endpoints stay listed (a zone that vanishes faster than Kubernetes notices). The us \
                 router, like the sidecar with the course's DestinationRule, ejects an endpoint after {} \
                 gateway errors (or {} 5xx) in a row, for {} times its ejections, and while no us endpoint is \
                 healthy sends us traffic to eu through the east-west gateway (+{}). The pods start again at \
                 t={}; traffic returns when their ejection ends.",
                fmt(a.fail_at),
                fmt(a.drain_delay),
                a.consecutive_gateway_errors,
                a.consecutive_5xx,
                fmt(a.base_ejection_time),
                fmt(a.east_west_delay),
                fmt(a.recover_at)
            );
            s.steps = vec![
                step(
                    a.fail_at,
                    Action::Stop {
                        pods: "us".into(),
                        withdraw: false,
                    },
                ),
                step(a.recover_at, Action::Start { pods: "us".into() }),
            ];
            let back = (a.fail_at + a.drain_delay + a.base_ejection_time + a.outlier_interval)
                .max(a.recover_at);
            s.duration = Some(back + a.outlier_interval + Duration::from_secs(3));
        }
        ScenarioName::Canary => {
            let weights: Vec<String> = a.canary_steps.iter().map(|w| format!("{w}%")).collect();
            s.about = format!(
                "Lab 7, canary. v2's weight moves {} every {} (the Rollout's steps, its pauses scaled down), \
                 while an analysis reads v2's success rate every {} and aborts the rollout after more than {} \
                 readings below {:.0}%.{}",
                weights.join(" → "),
                fmt(a.step_every),
                fmt(a.analysis_every),
                a.failure_limit,
                a.success_rate * 100.0,
                if a.v2_errors {
                    " Here v2 answers 500 to everything: watch the abort and the SLO gate fail (exit 99)."
                } else {
                    ""
                }
            );
            s.v2_percent = a.canary_steps.first().copied();
            s.analysis = Some(Analysis {
                every: a.analysis_every,
                success_rate: a.success_rate,
                failure_limit: a.failure_limit,
            });
            if a.v2_errors {
                s.steps.push(step(
                    Duration::ZERO,
                    Action::Fault {
                        pods: "v2".into(),
                        on: true,
                    },
                ));
            }
            for (i, w) in a.canary_steps.iter().enumerate().skip(1) {
                s.steps.push(step(
                    a.step_every * i as u32,
                    Action::Weight { v2_percent: *w },
                ));
            }
            s.duration = Some(a.step_every * a.canary_steps.len().max(1) as u32);
        }
        ScenarioName::ChaosLatency => {
            let bound = a.eu_delay + Duration::from_millis(50);
            s.about = format!(
                "Lab 8, NetworkChaos. From t={} for {}, {}'s pods answer {} (± {}) later, as the course's \
                 `delay` experiment makes them. The added SLO p99{{target:eu}}<{} (eu's latency plus headroom) \
                 fails; with a long enough window so does the overall p95, while us is untouched.",
                fmt(a.chaos_at),
                fmt(a.chaos_for),
                a.chaos_pods,
                fmt(a.chaos_latency),
                fmt(a.chaos_jitter),
                fmt(bound)
            );
            s.slos = vec![format!("p99{{target:eu}}<{}ms", bound.as_millis())];
            s.steps = vec![
                step(
                    a.chaos_at,
                    Action::Latency {
                        pods: a.chaos_pods.clone(),
                        delay: a.chaos_latency,
                        jitter: a.chaos_jitter,
                    },
                ),
                step(
                    a.chaos_at + a.chaos_for,
                    Action::Latency {
                        pods: a.chaos_pods.clone(),
                        delay: Duration::ZERO,
                        jitter: Duration::ZERO,
                    },
                ),
            ];
            s.duration = Some(a.chaos_at + a.chaos_for + Duration::from_secs(5));
        }
        ScenarioName::PodKill => {
            s.about = format!(
                "Lab 8, pod kill. At t={} pod {} gets SIGTERM: readiness fails, Kubernetes withdraws its \
                 endpoint {} later while it still drains ({}), and its replacement starts {} after that. \
                 Done right, not one request fails: the SLO errors==0 proves it.",
                fmt(a.kill_at),
                a.kill_pod,
                fmt(a.withdraw_after),
                fmt(a.drain_delay),
                fmt(a.restart_after)
            );
            s.slos = vec!["errors==0".into()];
            s.steps = vec![step(
                a.kill_at,
                Action::Kill {
                    pods: a.kill_pod.clone(),
                    restart_after: a.restart_after,
                },
            )];
            s.duration = Some(a.kill_at + a.drain_delay + a.restart_after + Duration::from_secs(5));
        }
    }
    s
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
            let s = builtin(a.scenario, a);
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
pub fn run(args: &LabArgs) -> anyhow::Result<u8> {
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
    let spec = FleetSpec {
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
    };
    let fleet_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("lab-fleet")
        .enable_all()
        .build()
        .context("cannot start the fleet runtime")?;
    let fleet = fleet_rt.block_on(Fleet::start(spec, events.clone()))?;
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
    // Everything the lab does not set is what a direct run would get: the flags'
    // defaults (and LOADGEN_* variables), parsed by the same command line.
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
    let cfg = RunConfig::from_args(&run_args).map(|mut c| {
        c.events = events.clone();
        c.keep_timeline = true;
        c
    });
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            let _ = fleet_rt.block_on(fleet.shutdown(true));
            return Err(e.into());
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
    let outcome = outcome?;
    match fleet? {
        Some(f) => {
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
            stop_fleet(&fleet_rt, f, outcome.results.interrupted)?;
        }
        None => note(format_args!(
            "lab: the scenario had steps left when the run ended; the fleet is dropped"
        )),
    }
    let events = events.snapshot();
    // The run's end built it (and printed it); a run without events still has one phase.
    let mut outcome = outcome;
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
