//! The built-in scenarios (`--scenario`), each the course's experiment with the flags'
//! parameters: what it does to the fleet, when, and what it adds to the SLOs.

use std::time::Duration;

use crate::configured::cli::lab::{LabArgs, ScenarioName};

use super::scenario::{Action, Analysis, Scenario, Step};

fn step(at: Duration, action: Action) -> Step {
    Step { at, action }
}

fn fmt(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The built-in scenario `name` with the flags' parameters.
pub fn builtin(name: ScenarioName, a: &LabArgs) -> Scenario {
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
        ScenarioName::Baseline => baseline(&mut s),
        ScenarioName::Failover => failover(&mut s, a),
        ScenarioName::Canary => canary(&mut s, a),
        ScenarioName::ChaosLatency => chaos_latency(&mut s, a),
        ScenarioName::PodKill => pod_kill(&mut s, a),
    }
    s
}

/// Steady load: the per-cluster, per-version table (Lab 9).
fn baseline(s: &mut Scenario) {
    s.about = "Steady load on both regions: the per-cluster, per-version table of Lab 9.".into();
    s.duration = Some(Duration::from_secs(10));
}

/// Every us pod stops, with its endpoints still listed; us fails over to eu and back (Lab 7).
fn failover(s: &mut Scenario, a: &LabArgs) {
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
    let back =
        (a.fail_at + a.drain_delay + a.base_ejection_time + a.outlier_interval).max(a.recover_at);
    s.duration = Some(back + a.outlier_interval + Duration::from_secs(3));
}

/// v2's weight moves through the Rollout's steps while an analysis reads v2 (Lab 7).
fn canary(s: &mut Scenario, a: &LabArgs) {
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

/// NetworkChaos: eu's pods answer later for a window (Lab 8).
fn chaos_latency(s: &mut Scenario, a: &LabArgs) {
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

/// One pod killed and replaced under load, with zero errors (Lab 8).
fn pod_kill(s: &mut Scenario, a: &LabArgs) {
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
