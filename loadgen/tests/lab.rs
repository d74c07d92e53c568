//! `loadgen lab --scenario`: each scenario's story asserted from the report's own data (the
//! per-interval timeline cut at the scenario's events), in process, against the embedded
//! fleet on loopback. Times are the course's, scaled down so each run takes a few seconds;
//! bounds are loose where the machine's speed could move a figure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use clap::Parser as _;
use loadgen::cmd::lab::{run_scenario, LabOutcome};
use loadgen::configured::cli::{Cli, Command};
use loadgen::report::story::{Phase, TargetPhase};

fn lab(extra: &[&str]) -> LabOutcome {
    let mut argv = vec![
        "loadgen",
        "lab",
        "--no-progress",
        "--rps",
        "400",
        "--warmup",
        "500ms",
        "--interval",
        "100ms",
    ];
    argv.extend_from_slice(extra);
    let cli = Cli::try_parse_from(argv).unwrap();
    let Some(Command::Lab(args)) = cli.command else {
        panic!("not a lab command")
    };
    run_scenario(&args).unwrap()
}

/// The phase opened by the first event starting with `prefix`.
fn after<'a>(o: &'a LabOutcome, prefix: &str) -> &'a Phase {
    o.story
        .phases
        .iter()
        .find(|p| p.event.as_deref().is_some_and(|e| e.starts_with(prefix)))
        .unwrap_or_else(|| panic!("no phase opened by {prefix:?}: {:#?}", o.events))
}

fn target<'a>(p: &'a Phase, name: &str) -> &'a TargetPhase {
    p.targets.iter().find(|t| t.target == name).unwrap()
}

fn errors(o: &LabOutcome, name: &str) -> u64 {
    o.story.phases.iter().map(|p| target(p, name).errors).sum()
}

#[test]
fn baseline_serves_each_region_locally_with_a_tenth_on_v2() {
    let o = lab(&["--duration", "2s"]);
    assert_eq!(o.run.judgement.exit_code, 0);
    assert_eq!(o.story.phases.len(), 1, "no events, one phase");
    for region in ["us", "eu"] {
        let t = target(&o.story.phases[0], region);
        assert!(t.region_share(region) > 0.999, "{t:?}");
        assert!((t.version_share("v2") - 0.10).abs() < 0.02, "{t:?}");
        assert_eq!(t.errors, 0);
    }
}

#[test]
fn failover_sends_us_traffic_to_eu_while_us_is_ejected_and_back_after() {
    let o = lab(&[
        "--scenario",
        "failover",
        "--fail-at",
        "1s",
        "--drain-delay",
        "300ms",
        "--recover-at",
        "2500ms",
        "--base-ejection-time",
        "2s",
        "--outlier-interval",
        "250ms",
        "--duration",
        "5500ms",
    ]);
    let first = &o.story.phases[0];
    assert!(target(first, "us").region_share("us") > 0.999);
    let us_p99_before = target(first, "us").p99_us;

    // Pods back but still ejected: us traffic is all eu's, paying the east-west hop.
    let ejected = after(&o, "us: pods started again");
    let us = target(ejected, "us");
    assert!(us.ok() > 0, "{us:?}");
    assert!(us.region_share("eu") > 0.99, "{us:?}");
    assert!(us.p99_us >= 55_000, "eu 30ms + east-west 30ms: {us:?}");
    assert!(us.p99_us > us_p99_before, "{us:?}");

    // Ejection over: served by us again (requests already on the east-west hop still
    // land in the first interval).
    let back = target(
        after(&o, "us router: local v1 endpoints healthy again"),
        "us",
    );
    assert!(back.region_share("us") > 0.9, "{back:?}");
    assert_eq!(
        back.served_by.last().map(|s| s.1.as_str()),
        Some("us"),
        "{back:?}"
    );

    // Errors only while detection ran: a handful per us endpoint (3 gateway errors each,
    // plus connections the drain closed under requests), none for eu.
    let n = errors(&o, "us");
    assert!(n > 0, "detection needs errors to eject");
    assert!(
        n <= 60,
        "{n} errors for 4 endpoints: detection did not bound them"
    );
    assert_eq!(errors(&o, "eu"), 0);
}

#[test]
fn pod_kill_with_readiness_and_drain_loses_no_request() {
    let o = lab(&[
        "--scenario",
        "pod-kill",
        "--kill-at",
        "1s",
        "--drain-delay",
        "500ms",
        "--withdraw-after",
        "150ms",
        "--restart-after",
        "800ms",
        "--duration",
        "3500ms",
    ]);
    assert!(
        o.events
            .iter()
            .any(|e| e.what.contains("replacement pod ready")),
        "{:?}",
        o.events
    );
    assert_eq!(errors(&o, "us") + errors(&o, "eu"), 0, "{:#?}", o.story);
    assert_eq!(
        o.run.judgement.exit_code, 0,
        "errors==0 and the lab's SLOs hold"
    );
    let killed = after(&o, "us-v1-0: pod killed");
    assert!(target(killed, "us").region_share("us") > 0.999);
    assert!(target(killed, "us").version_share("v1") > 0.85);
}

/// The canary, its 2-minute steps scaled to 1.5 s and its 30 s readings to 250 ms.
const CANARY: [&str; 8] = [
    "--scenario",
    "canary",
    "--canary-steps",
    "10,50,100",
    "--step-every",
    "1500ms",
    "--analysis-every",
    "250ms",
];

#[test]
fn canary_moves_v2_through_the_rollout_steps() {
    let o = lab(&CANARY);
    assert_eq!(o.run.judgement.exit_code, 0);
    assert!((target(&o.story.phases[0], "us").version_share("v2") - 0.10).abs() < 0.05);
    for (event, share) in [
        ("canary: v2 weight 50%", 0.5),
        ("canary: v2 weight 100%", 1.0),
    ] {
        let p = after(&o, event);
        for region in ["us", "eu"] {
            let got = target(p, region).version_share("v2");
            assert!((got - share).abs() < 0.08, "{event} {region}: v2 {got}");
        }
    }
    assert!(!o.events.iter().any(|e| e.what.contains("aborted")));
}

#[test]
fn a_failing_canary_is_aborted_and_the_slo_gate_fails() {
    let o = lab(&[&CANARY[..], &["--v2-errors"]].concat());
    assert_eq!(o.run.judgement.exit_code, 99);
    let failed: Vec<&str> = o
        .run
        .judgement
        .verdicts
        .iter()
        .filter(|v| !v.pass)
        .map(|v| v.slo.as_str())
        .collect();
    assert!(failed.contains(&"error_rate<1%"), "{failed:?}");
    let abort = o
        .events
        .iter()
        .position(|e| e.what.starts_with("canary aborted"))
        .unwrap();
    assert!(
        !o.events[abort..]
            .iter()
            .any(|e| e.what.starts_with("canary: v2 weight")),
        "weight steps after the abort: {:?}",
        o.events
    );
    // Before the abort v2's 500s show; after it, v2 gets no traffic and errors stop.
    assert!(target(&o.story.phases[0], "us").errors > 0);
    let p = after(&o, "canary aborted");
    for region in ["us", "eu"] {
        let t = target(p, region);
        assert!(t.errors <= 10, "{region}: {t:?}");
        assert!(t.version_share("v1") > 0.999, "{region}: {t:?}");
    }
}

#[test]
fn chaos_latency_raises_eu_p99_for_the_window_only() {
    let o = lab(&[
        "--scenario",
        "chaos-latency",
        "--chaos-at",
        "1s",
        "--chaos-for",
        "2s",
        "--duration",
        "4s",
    ]);
    let before = target(&o.story.phases[0], "eu").p99_us;
    let during = after(&o, "eu: NetworkChaos delay");
    let eu = target(during, "eu");
    assert!(eu.p99_us >= 110_000, "30ms + 100ms ± 20ms: {eu:?}");
    assert!(before < 80_000, "{before}");
    assert!(target(during, "us").p99_us < 80_000, "us is not affected");
    assert_eq!(errors(&o, "eu"), 0);
    assert_eq!(o.run.judgement.exit_code, 99);
    let eu_gate = o
        .run
        .judgement
        .verdicts
        .iter()
        .find(|v| v.slo.starts_with("p99{target:eu}"))
        .unwrap();
    assert!(!eu_gate.pass, "{eu_gate:?}");
    let overall = o
        .run
        .judgement
        .verdicts
        .iter()
        .find(|v| v.slo == "p99<250ms")
        .unwrap();
    assert!(overall.pass, "{overall:?}");
}

#[test]
fn a_scenario_file_describes_a_new_scenario() {
    let dir = std::env::temp_dir().join(format!("loadgen-lab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = common::brownout_scenario(&dir);
    let html = dir.join("lab.html");
    let o = lab(&[
        "--scenario-file",
        path.to_str().unwrap(),
        "--consecutive-5xx",
        "1000",
        "--html",
        html.to_str().unwrap(),
    ]);
    let page = std::fs::read_to_string(&html).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // The HTML marks the events on the over-time plots.
    assert!(page.contains("class=\"event\""), "no event marks");
    assert!(page.contains("eu-v2: answering 500"), "no event label");
    assert_eq!(target(&o.story.phases[0], "eu").errors, 0);
    let p = after(&o, "eu-v2: answering 500");
    assert!(target(p, "eu").errors > 0, "{p:?}");
    assert_eq!(target(p, "us").errors, 0);
    let off = after(&o, "eu-v2: fault switch off");
    assert!(target(off, "eu").errors <= 3, "{off:?}");
}

/// Ctrl-C during `loadgen lab`: the partial report, then the fleet stops at once (no pod
/// drains for a run that was cut short), so the command is gone within seconds rather
/// than after every pod's drain, one after another, with further Ctrl-Cs unheard.
#[test]
fn ctrl_c_ends_the_lab_without_draining_the_fleet() {
    use std::io::{BufRead as _, BufReader};
    use std::process::Stdio;
    use std::time::Duration;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"));
    cmd.args([
        "lab",
        "--duration",
        "60s",
        "--drain-delay",
        "2s",
        "--no-progress",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    // The run has started once loadgen says what it runs against.
    while !line.contains("running against") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "lab ended before its run"
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let signalled = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    let took = signalled.elapsed();
    // Eight pods draining 2 s each, one after another, took 16 s and more.
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(
        matches!(out.status.code(), Some(0) | Some(99)),
        "{:?}",
        out.status
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("PARTIAL REPORT"));
}
