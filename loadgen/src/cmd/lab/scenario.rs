//! Scenarios: what happens to the embedded fleet during a lab run, and when.
//!
//! A scenario is a list of timed steps (stop or start pods, kill one and restart it, move
//! the canary weight, switch a fault on, inject latency) plus, for a canary, an analysis
//! that aborts it. The five built-in ones are made from the command line's flags, whose
//! defaults are the course's values; a YAML file describes a new one with the same steps:
//!
//! ```yaml
//! name: eu-brownout
//! about: eu's v2 pods fail for ten seconds.
//! duration: 30s
//! slos: ["errors==0"]          # added to the lab's defaults
//! steps:
//!   - { at: 10s, do: fault, pods: eu-v2, on: true }
//!   - { at: 20s, do: fault, pods: eu-v2, on: false }
//! ```
//!
//! Steps run in order on one task, each at its time counted from the start of the measured
//! run (after the warm-up); one that takes long (a drain) delays the ones after it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer};

use super::fleet::Fleet;
use super::router::Router;

/// A scenario, built in or read from a file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// Printed before the run: what the scenario shows and which course lab it stands for.
    #[serde(default)]
    pub about: String,
    /// Measured length (the lab's `--duration` wins when given).
    #[serde(default, deserialize_with = "opt_duration")]
    pub duration: Option<Duration>,
    /// SLOs added to the lab's defaults.
    #[serde(default)]
    pub slos: Vec<String>,
    /// v2's share at the start, percent (the lab's `--v2-percent` otherwise).
    #[serde(default)]
    pub v2_percent: Option<u8>,
    #[serde(default)]
    pub analysis: Option<Analysis>,
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// One timed step.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Step {
    #[serde(deserialize_with = "duration")]
    pub at: Duration,
    #[serde(flatten)]
    pub action: Action,
}

/// What a step does. `pods` selects as [`Fleet::select`] does: `us`, `us-v2`, `v2`, `all`
/// or one pod's name.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum Action {
    /// SIGTERM: drain, then gone. `withdraw: true` takes the endpoints out of the lists
    /// as Kubernetes does once readiness fails; `false` leaves them for outlier detection.
    Stop {
        pods: String,
        #[serde(default)]
        withdraw: bool,
    },
    /// Start stopped pods again.
    Start { pods: String },
    /// Stop with withdrawal, then start again after `restart_after` (a Chaos Mesh
    /// pod-kill and the Deployment's replacement pod).
    Kill {
        pods: String,
        #[serde(deserialize_with = "duration")]
        restart_after: Duration,
    },
    /// v2's share of each router's traffic (a Rollout's `setWeight`).
    Weight { v2_percent: u8 },
    /// The pods' fault switch: every workload request answers 500 while on.
    Fault { pods: String, on: bool },
    /// NetworkChaos `delay` on the pods' traffic; a zero delay ends it.
    Latency {
        pods: String,
        #[serde(deserialize_with = "duration")]
        delay: Duration,
        #[serde(default, deserialize_with = "duration")]
        jitter: Duration,
    },
}

/// A canary analysis (the AnalysisTemplate): every `every`, v2's success rate since the
/// last reading; more than `failure_limit` readings below `success_rate` abort the
/// canary, sending all traffic back to v1.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Analysis {
    #[serde(deserialize_with = "duration")]
    pub every: Duration,
    pub success_rate: f64,
    pub failure_limit: u32,
}

fn parse_duration<'de, D: Deserializer<'de>>(s: &str) -> Result<Duration, D::Error> {
    humantime::parse_duration(s)
        .map_err(|e| serde::de::Error::custom(format!("bad duration {s:?}: {e}")))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration::<D>(&s)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => parse_duration::<D>(&s).map(Some),
    }
}

/// Most steps a scenario may have.
pub const MAX_STEPS: usize = 1000;
/// Longest network delay (with its jitter) a latency step may add.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

impl Scenario {
    /// Reads a YAML scenario and checks what serde cannot.
    pub fn from_yaml(text: &str) -> Result<Scenario, String> {
        let s: Scenario = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        s.check()?;
        Ok(s)
    }

    /// Weights within 0..=100, a sane analysis, and every time and count bounded: no
    /// duration over a run's longest (sums of them cannot overflow a clock), no network
    /// delay over [`MAX_DELAY`], at most [`MAX_STEPS`] steps (each is a line and a mark in
    /// the reports).
    pub fn check(&self) -> Result<(), String> {
        if self.steps.len() > MAX_STEPS {
            return Err(format!("{} steps: at most {MAX_STEPS}", self.steps.len()));
        }
        let long = |d: Duration| d > crate::configured::config::MAX_RUN;
        if self.duration.is_some_and(long) || self.analysis.is_some_and(|a| long(a.every)) {
            return Err("duration and analysis.every must be at most 7 days".into());
        }
        for st in &self.steps {
            let too_long = match &st.action {
                Action::Kill { restart_after, .. } => long(*restart_after),
                Action::Latency { delay, jitter, .. } => delay.saturating_add(*jitter) > MAX_DELAY,
                _ => false,
            };
            if long(st.at) || too_long {
                return Err(format!(
                    "step at {}: times must be at most 7 days, and a delay with its jitter at most {}",
                    fmt_duration(st.at),
                    fmt_duration(MAX_DELAY)
                ));
            }
        }
        for st in &self.steps {
            if let Action::Weight { v2_percent } = st.action {
                if v2_percent > 100 {
                    return Err(format!(
                        "step at {:?}: v2_percent {v2_percent} > 100",
                        st.at
                    ));
                }
            }
        }
        if let Some(a) = &self.analysis {
            if a.every.is_zero() || !(0.0..=1.0).contains(&a.success_rate) {
                return Err("analysis: `every` must be > 0 and success_rate within 0..=1".into());
            }
        }
        if self.v2_percent.is_some_and(|p| p > 100) {
            return Err("v2_percent must be 0..=100".into());
        }
        Ok(())
    }

    /// The latest step time.
    pub fn last_step(&self) -> Duration {
        self.steps.iter().map(|s| s.at).max().unwrap_or_default()
    }
}

fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Describes a step for the timeline.
fn label(a: &Action, drain: Duration) -> String {
    match a {
        Action::Stop { pods, withdraw } => format!(
            "{pods}: SIGTERM to every pod (drain {}, then gone; endpoints {})",
            fmt_duration(drain),
            if *withdraw {
                "withdrawn"
            } else {
                "still listed"
            }
        ),
        Action::Start { pods } => format!("{pods}: pods started again"),
        Action::Kill {
            pods,
            restart_after,
        } => format!(
            "{pods}: pod killed (drain {}, endpoint withdrawn); its replacement starts {} after",
            fmt_duration(drain),
            fmt_duration(*restart_after)
        ),
        Action::Weight { v2_percent } => format!("canary: v2 weight {v2_percent}%"),
        Action::Fault { pods, on: true } => format!("{pods}: answering 500 (fault switch on)"),
        Action::Fault { pods, on: false } => format!("{pods}: fault switch off"),
        Action::Latency { pods, delay, .. } if delay.is_zero() => {
            format!("{pods}: injected latency ends")
        }
        Action::Latency {
            pods,
            delay,
            jitter,
        } => format!(
            "{pods}: NetworkChaos delay {} ± {}",
            fmt_duration(*delay),
            fmt_duration(*jitter)
        ),
    }
}

/// Runs the steps against `fleet`, each at `origin + at`. Returns the fleet when done.
pub async fn drive(
    mut fleet: Fleet,
    sc: Scenario,
    origin: Instant,
    drain: Duration,
) -> anyhow::Result<Fleet> {
    let aborted = Arc::new(AtomicBool::new(false));
    let analysis = sc.analysis.map(|a| {
        let routers: Vec<Arc<Router>> = fleet.routers.iter().map(|(r, _)| r.clone()).collect();
        let (v2, events, aborted) = (
            fleet.v2_percent.clone(),
            fleet.events().clone(),
            aborted.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep_until(origin.into()).await;
            let mut last = (0u64, 0u64);
            let mut failures = 0;
            let mut tick = tokio::time::interval(a.every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = routers.iter().fold((0, 0), |(n, f), r| {
                    (
                        n + r.stats.answered[1].load(Ordering::Relaxed),
                        f + r.stats.failed[1].load(Ordering::Relaxed),
                    )
                });
                let (n, f) = (now.0 - last.0, now.1 - last.1);
                last = now;
                if n == 0 {
                    continue; // no v2 traffic: inconclusive, as in Argo Rollouts
                }
                let rate = 1.0 - f as f64 / n as f64;
                if rate < a.success_rate {
                    failures += 1;
                    if failures > a.failure_limit {
                        aborted.store(true, Ordering::Relaxed);
                        v2.store(0, Ordering::Relaxed);
                        events.record(format!(
                            "canary aborted: v2 success rate {:.1}% < {:.0}% in {failures} readings; all traffic back to v1",
                            rate * 100.0,
                            a.success_rate * 100.0
                        ));
                        return;
                    }
                }
            }
        })
    });
    let mut steps = sc.steps.clone();
    steps.sort_by_key(|s| s.at);
    for st in steps {
        tokio::time::sleep_until((origin + st.at).into()).await;
        if matches!(st.action, Action::Weight { .. }) && aborted.load(Ordering::Relaxed) {
            continue;
        }
        fleet.events().record(label(&st.action, drain));
        match &st.action {
            Action::Stop { pods, withdraw } => fleet.stop(pods, *withdraw).await,
            Action::Start { pods } => fleet.start_pods(pods).await?,
            Action::Kill {
                pods,
                restart_after,
            } => {
                fleet.stop(pods, true).await;
                tokio::time::sleep(*restart_after).await;
                fleet.start_pods(pods).await?;
                fleet
                    .events()
                    .record(format!("{pods}: replacement pod ready"));
            }
            Action::Weight { v2_percent } => {
                fleet.v2_percent.store(*v2_percent, Ordering::Relaxed);
            }
            Action::Fault { pods, on } => fleet.fault(pods, *on),
            Action::Latency {
                pods,
                delay,
                jitter,
            } => fleet.latency(pods, *delay, *jitter),
        }
    }
    if let Some(a) = analysis {
        a.abort();
    }
    Ok(fleet)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_scenario_file_reads_every_step_kind() {
        let s = Scenario::from_yaml(
            "name: x\nduration: 20s\nslos: [\"errors==0\"]\nanalysis: { every: 1s, success_rate: 0.99, failure_limit: 2 }\nsteps:\n  - { at: 1s, do: stop, pods: us }\n  - { at: 2s, do: start, pods: us }\n  - { at: 3s, do: kill, pods: us-v1-0, restart_after: 2s }\n  - { at: 4s, do: weight, v2_percent: 50 }\n  - { at: 5s, do: fault, pods: v2, on: true }\n  - { at: 6s, do: latency, pods: eu, delay: 100ms, jitter: 20ms }\n",
        )
        .unwrap();
        assert_eq!(s.duration, Some(Duration::from_secs(20)));
        assert_eq!(s.steps.len(), 6);
        assert_eq!(
            s.steps[0].action,
            Action::Stop {
                pods: "us".into(),
                withdraw: false
            }
        );
        assert_eq!(
            s.steps[5].action,
            Action::Latency {
                pods: "eu".into(),
                delay: Duration::from_millis(100),
                jitter: Duration::from_millis(20)
            }
        );
        assert_eq!(s.last_step(), Duration::from_secs(6));
    }

    #[test]
    fn bad_scenario_files_say_what_is_wrong() {
        for (text, want) in [
            ("name: x\nsteps:\n  - { at: 1s, do: explode }\n", "explode"),
            (
                "name: x\nsteps:\n  - { at: soon, do: start, pods: us }\n",
                "soon",
            ),
            (
                "name: x\nsteps:\n  - { at: 1s, do: weight, v2_percent: 150 }\n",
                "150",
            ),
            ("name: x\nsurprise: 1\n", "surprise"),
        ] {
            let e = Scenario::from_yaml(text).expect_err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
