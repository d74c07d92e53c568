//! Flags of `loadgen lab`: the run, the fleet, and each scenario's parameters, whose defaults
//! are the course's values (deploy/base/istio/destinationrule.yaml for outlier detection,
//! deploy/rollouts/rollout.yaml for the canary steps, deploy/chaos/ for the chaos), with the
//! course's minutes scaled down to seconds where only the sequence matters.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::ExportArgs;
use crate::schedule::Arrival;

/// The built-in scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioName {
    /// The per-cluster, per-version table under steady load (Lab 9).
    Baseline,
    /// Every us pod stops; outlier detection ejects them and us traffic fails over to eu,
    /// then returns (Lab 7).
    Failover,
    /// v2's weight moves through the Rollout's steps; `--v2-errors` makes the analysis
    /// abort it (Lab 7).
    Canary,
    /// NetworkChaos delay on eu for a window (Lab 8).
    ChaosLatency,
    /// One pod killed and replaced under load, with zero errors (Lab 8).
    PodKill,
}

/// A lab duration: what humantime reads, at most a run's longest (7 days), so that
/// adding two of them can never overflow a clock.
fn dur(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d > crate::configured::config::MAX_RUN {
        return Err("at most 7 days".into());
    }
    Ok(d)
}

/// Flags of `loadgen lab`.
#[derive(Debug, Clone, Args)]
pub struct LabArgs {
    /// What happens to the fleet during the run.
    #[arg(long, value_enum, default_value_t = ScenarioName::Baseline)]
    pub scenario: ScenarioName,

    /// A scenario described in YAML (steps: stop, start, kill, weight, fault, latency);
    /// replaces --scenario.
    #[arg(long)]
    pub scenario_file: Option<PathBuf>,

    /// Total request rate across us and eu.
    #[arg(long, default_value_t = 1000.0)]
    pub rps: f64,

    /// Measured run length [default: the scenario's, 10s for baseline].
    #[arg(long, value_parser = dur)]
    pub duration: Option<Duration>,

    /// Warm-up, left out of the results.
    #[arg(long, value_parser = dur, default_value = "2s")]
    pub warmup: Duration,

    /// Extra latency of the eu region, standing for the cross-region hop.
    #[arg(long, value_parser = dur, default_value = "30ms")]
    pub eu_delay: Duration,

    /// What a request pays to cross the east-west gateway when us fails over to eu (on top
    /// of eu's own latency).
    #[arg(long, value_parser = dur, default_value = "30ms")]
    pub east_west_delay: Duration,

    /// Share of traffic that each region's router sends to v2, in percent.
    #[arg(long, default_value_t = 10)]
    pub v2_percent: u8,

    /// echo-svc pods per version and region.
    #[arg(long, default_value_t = 2)]
    pub replicas: usize,

    /// echo-svc's drain after SIGTERM (readiness fails, serving goes on).
    #[arg(long, value_parser = dur, default_value = "1s")]
    pub drain_delay: Duration,

    /// From a pod's readiness failing to its endpoint leaving the routers (probe period
    /// plus the EDS push).
    #[arg(long, value_parser = dur, default_value = "500ms")]
    pub withdraw_after: Duration,

    /// Outlier detection: 5xx answers in a row that eject an endpoint.
    #[arg(long, default_value_t = 5)]
    pub consecutive_5xx: u32,

    /// Outlier detection: gateway errors (502/503/504, failed connections) in a row that
    /// eject an endpoint.
    #[arg(long, default_value_t = 3)]
    pub consecutive_gateway_errors: u32,

    /// Outlier detection: the sweep that returns ejected endpoints.
    #[arg(long, value_parser = dur, default_value = "5s")]
    pub outlier_interval: Duration,

    /// Outlier detection: minimum ejection (times the endpoint's ejections so far).
    #[arg(long, value_parser = dur, default_value = "30s")]
    pub base_ejection_time: Duration,

    /// Outlier detection: most of a version's endpoints that may be ejected at once.
    #[arg(long, default_value_t = 100)]
    pub max_ejection_percent: u8,

    /// failover: when every us pod stops (seconds into the measured run).
    #[arg(long, value_parser = dur, default_value = "8s")]
    pub fail_at: Duration,

    /// failover: when the us pods are started again.
    #[arg(long, value_parser = dur, default_value = "20s")]
    pub recover_at: Duration,

    /// canary: v2's weights, one step each (the Rollout's setWeight steps).
    #[arg(long, value_delimiter = ',', default_values_t = [10u8, 25, 50, 100])]
    pub canary_steps: Vec<u8>,

    /// canary: how long each step lasts (the Rollout's 2m pauses, scaled down).
    #[arg(long, value_parser = dur, default_value = "5s")]
    pub step_every: Duration,

    /// canary: v2 answers 500 to every request, so the analysis aborts the rollout.
    #[arg(long)]
    pub v2_errors: bool,

    /// canary: analysis reading interval (the AnalysisTemplate's 30s, scaled down).
    #[arg(long, value_parser = dur, default_value = "1s")]
    pub analysis_every: Duration,

    /// canary: v2 success rate a reading must reach.
    #[arg(long, default_value_t = 0.99)]
    pub success_rate: f64,

    /// canary: failed readings tolerated before the abort.
    #[arg(long, default_value_t = 2)]
    pub failure_limit: u32,

    /// chaos-latency: pods that get the delay.
    #[arg(long, default_value = "eu")]
    pub chaos_pods: String,

    /// chaos-latency: when the delay starts.
    #[arg(long, value_parser = dur, default_value = "5s")]
    pub chaos_at: Duration,

    /// chaos-latency: how long it lasts (the NetworkChaos's 5m, scaled down).
    #[arg(long, value_parser = dur, default_value = "10s")]
    pub chaos_for: Duration,

    /// chaos-latency: the added delay.
    #[arg(long, value_parser = dur, default_value = "100ms")]
    pub chaos_latency: Duration,

    /// chaos-latency: jitter around it.
    #[arg(long, value_parser = dur, default_value = "20ms")]
    pub chaos_jitter: Duration,

    /// pod-kill: the pod killed.
    #[arg(long, default_value = "us-v1-0")]
    pub kill_pod: String,

    /// pod-kill: when.
    #[arg(long, value_parser = dur, default_value = "5s")]
    pub kill_at: Duration,

    /// pod-kill: how long until the replacement pod is ready.
    #[arg(long, value_parser = dur, default_value = "2s")]
    pub restart_after: Duration,

    /// Interval of the over-time data: the "what happened" timeline's resolution.
    #[arg(long, value_parser = dur, default_value = "200ms")]
    pub interval: Duration,

    /// Arrival process.
    #[arg(long, value_enum, default_value_t = Arrival::Fixed)]
    pub arrival: Arrival,

    /// SLOs replacing the lab defaults (same syntax as a run's `--slo`).
    #[arg(long = "slo")]
    pub slos: Vec<String>,

    /// Write the JSON report to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Never draw live progress.
    #[arg(long)]
    pub no_progress: bool,

    #[command(flatten)]
    pub exports: ExportArgs,
}
