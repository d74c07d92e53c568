//! The SLO bench's gates can fail: the real `benches slo` binary, real echo-svc instances
//! on loopback, real loadgen runs. Short, low-rate runs; the bounds that must pass are
//! generous and the ones that must fail are far out of reach, so the outcome does not
//! depend on how busy the machine is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn slo(extra: &[&str]) -> Output {
    let mut args = vec![
        "slo",
        "--rate",
        "200",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--connections",
        "2",
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_benches"))
        .args(&args)
        .output()
        .expect("run the benches binary")
}

/// The bounds: corrected p99, loadgen's and echo-svc's CPU µs per request, their ratio.
fn bounds(p99: &str, loadgen: &str, echo: &str, ratio: &str) -> Vec<String> {
    [
        ("--p99", p99),
        ("--max-loadgen-cpu-us", loadgen),
        ("--max-echo-cpu-us", echo),
        ("--max-loadgen-over-echo", ratio),
    ]
    .iter()
    .flat_map(|(flag, v)| [flag.to_string(), v.to_string()])
    .collect()
}

fn slo_with(bounds: Vec<String>, extra: &[&str]) -> Output {
    let mut args: Vec<&str> = bounds.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    slo(&args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn healthy_run_passes_generous_gates() {
    let o = slo_with(bounds("2s", "100000", "100000", "100000"), &[]);
    let out = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("slo-bench: PASS"), "{out}");
    // Every (region, version) group got traffic and was gated.
    for g in [
        "region:us,version:v1",
        "region:us,version:v2",
        "region:eu,version:v1",
        "region:eu,version:v2",
    ] {
        assert!(
            out.contains(&format!("pass p99{{{g}}}")),
            "{g} missing:\n{out}"
        );
    }
    assert!(!out.contains("FAIL"), "{out}");
}

#[test]
fn cpu_regression_fails_the_gate() {
    // A bound no real build can meet stands in for a 10x slower loadgen and echo-svc.
    let o = slo_with(bounds("2s", "0.01", "0.01", "100000"), &[]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(99), "{out}");
    assert!(out.contains("FAIL loadgen_cpu_per_request<0.01µs"), "{out}");
    assert!(out.contains("FAIL echo_cpu_per_request<0.01µs"), "{out}");
    assert!(out.contains("slo-bench: FAILED"), "{out}");
}

#[test]
fn a_loadgen_costlier_than_its_bound_relative_to_echo_fails_the_ratio_gate() {
    // loadgen costs more than a hundredth of echo-svc's CPU per request on any machine.
    let o = slo_with(bounds("2s", "100000", "100000", "0.01"), &[]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(99), "{out}");
    assert!(out.contains("FAIL loadgen_over_echo_cpu<0.01x"), "{out}");
    assert!(out.contains("pass loadgen_cpu_per_request"), "{out}");
    assert!(out.contains("pass echo_cpu_per_request"), "{out}");
}

#[test]
fn injected_delay_fails_the_latency_gate() {
    // Every request 50 ms slower against a 20 ms p99 bound.
    let o = slo_with(
        bounds("20ms", "100000", "100000", "100000"),
        &["--faults", "delay=50ms"],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(99), "{out}");
    assert!(out.contains("FAIL p99<20ms"), "{out}");
    assert!(out.contains("FAIL p99{region:eu,version:v2}<20ms"), "{out}");
}

#[test]
fn bad_input_is_a_usage_error() {
    let o = slo(&["--faults", "delay=banana"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("delay"),
        "{o:?}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_benches"))
        .args(["slo", "--rate", "0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = Command::new(env!("CARGO_BIN_EXE_benches"))
        .args(["slo", "--duration", "soon"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}
