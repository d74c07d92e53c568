//! The real binary: exit codes, usage errors, Ctrl-C with a partial report, and the lab.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The binary for a load run (progress off), with the shared environment rule.
fn loadgen() -> Command {
    let mut c = bare();
    c.arg("--no-progress");
    c
}

/// The binary with no arguments (for `--help` and subcommands).
fn bare() -> Command {
    loadgen_bin()
}

fn run(cmd: Command, limit: Duration) -> Output {
    output_within(cmd, limit)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_documents_exit_codes() {
    let out = run(
        {
            let mut c = Command::new(env!("CARGO_BIN_EXE_loadgen"));
            c.arg("--help");
            c
        },
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for needle in [
        "Exit codes:",
        "99",
        "usage error",
        "runtime failure",
        "--target",
        "--slo",
        "lab",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}

#[test]
fn usage_errors_exit_2_with_a_clear_message() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--target", "us=http://127.0.0.1:1/", "--slo", "p99<fast"],
            "bad SLO",
        ),
        (
            &[
                "--target",
                "us=http://127.0.0.1:1/",
                "--slo",
                "http_req_duration{zone:a}: p(95)<200",
            ],
            "unknown scope key",
        ),
        (&["--target", "us=ftp://127.0.0.1:1/"], "only http://"),
        (&["--target", "bad name!"], "target"),
        (
            &["--target", "us=http://127.0.0.1:1/", "--stages", "30s:fast"],
            "stage",
        ),
        (
            &["--target", "us=http://127.0.0.1:1/", "--rps", "0"],
            "--rps",
        ),
        (
            &[
                "--target",
                "us=http://127.0.0.1:1/",
                "--rps",
                "10",
                "--stages",
                "1s:10",
            ],
            "cannot be used with",
        ),
        (
            &[
                "--target",
                "us=http://127.0.0.1:1/",
                "--duration",
                "forever",
            ],
            "--duration",
        ),
        (
            &["--target", "us=http://127.0.0.1:1/", "--header", "no-colon"],
            "--header",
        ),
        (
            &[
                "--target",
                "us=http://127.0.0.1:1/",
                "--method",
                "POST",
                "--body-file",
                "/nonexistent/body.json",
            ],
            "cannot read body file /nonexistent/body.json",
        ),
        (
            &["--target", "us=http://127.0.0.1:1/", "--method", "CONNECT"],
            "tunnels are not load-tested",
        ),
        (
            &[
                "--target",
                "us=http://127.0.0.1:1/",
                "--body",
                "x",
                "--body-file",
                "/etc/hostname",
            ],
            "cannot be used with",
        ),
        (
            &[
                "--target",
                "us=http://127.0.0.1:1/",
                "--header",
                "Content-Length: 3",
            ],
            "set by loadgen from the body",
        ),
        (&["--no-such-flag"], "unexpected argument"),
        (&[], "no targets"),
        (
            &["--targets-file", "/nonexistent/targets.toml"],
            "targets file",
        ),
    ];
    for (args, needle) in cases {
        let mut c = loadgen();
        c.args(*args);
        let out = run(c, Duration::from_secs(30));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: stderr lacks {needle:?}: {err}"
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?}: nothing should be reported"
        );
    }
}

#[test]
fn exit_0_99_and_1() {
    let rt = server_runtime();
    let e = echo(&rt, "us", "v1", "");
    let t = format!("us=http://{}/", e.addr());
    let base = ["--target", t.as_str(), "--rps", "50", "--duration", "1s"];

    let mut c = loadgen();
    c.args(base)
        .args(["--slo", "p99<10s", "--slo", "http_req_failed: rate<0.01"]);
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("PASS p99<10s"), "{report}");
    assert!(report.contains("pacing lag"), "{report}");
    // Nothing failed: the accounting is the one-sentence form, with the same count.
    assert!(
        report.contains("Accounting: all 50 scheduled requests answered below 400"),
        "{report}"
    );

    let mut c = loadgen();
    c.args(base).args(["--slo", "p99<1us"]);
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(99), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("FAIL p99<1us"));

    // SLOs from a file, with comments.
    let file = std::env::temp_dir().join(format!("loadgen-slos-{}.txt", std::process::id()));
    std::fs::write(
        &file,
        "# gates\nerror_rate<1% # none expected\nrps>=1000000\n",
    )
    .unwrap();
    let mut c = loadgen();
    c.args(base).arg("--slo-file").arg(&file);
    let out = run(c, Duration::from_secs(60));
    std::fs::remove_file(&file).ok();
    assert_eq!(out.status.code(), Some(99));
    let report = text(&out.stdout);
    assert!(
        report.contains("PASS error_rate<1%") && report.contains("FAIL rps>=1000000"),
        "{report}"
    );

    // The run completes but the report cannot be written: runtime failure.
    let mut c = loadgen();
    c.args(base)
        .args(["--json", "/nonexistent-dir/report.json"]);
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("cannot write the JSON report"));
    assert!(
        text(&out.stdout).contains("Accounting"),
        "the report is still printed"
    );

    rt.block_on(e.shutdown()).unwrap();
}

#[test]
fn environment_fallbacks() {
    let rt = server_runtime();
    let e = echo(&rt, "eu", "v1", "");
    let mut c = loadgen();
    c.env("LOADGEN_TARGETS", "eu")
        .env("LOADGEN_TARGET_EU", format!("http://{}/", e.addr()))
        .env("LOADGEN_RPS", "40")
        .env("LOADGEN_DURATION", "1s")
        .env("LOADGEN_SLOS", "p99<10s;dropped==0");
    let out = run(c, Duration::from_secs(60));
    rt.block_on(e.shutdown()).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        report.contains("Accounting: all 40 scheduled requests answered below 400")
            && report.contains("PASS dropped==0"),
        "{report}"
    );
}

#[test]
fn ctrl_c_prints_and_writes_the_partial_report() {
    interrupted_run(libc::SIGINT);
}

#[test]
fn sigterm_prints_and_writes_the_partial_report() {
    interrupted_run(libc::SIGTERM);
}

fn interrupted_run(signal: i32) {
    let rt = server_runtime();
    let e = echo(&rt, "us", "v1", "");
    let json = std::env::temp_dir().join(format!(
        "loadgen-partial-{}-{signal}.json",
        std::process::id()
    ));
    let mut c = loadgen();
    c.args([
        "--target",
        &format!("us=http://{}/", e.addr()),
        "--rps",
        "100",
        "--duration",
        "60s",
        "--slo",
        "p99<10s",
    ])
    .arg("--json")
    .arg(&json)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = c.spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("running against"), "{line}");
    // Let some requests complete before interrupting.
    let addr = e.addr();
    assert!(wait_for(Duration::from_secs(20), || served(addr) >= 50.0));
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
    let end = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "loadgen ignored signal {signal}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    rt.block_on(e.shutdown()).unwrap();
    assert!(started.elapsed() < Duration::from_secs(40), "stopped early");
    assert_eq!(out.status.code(), Some(0), "SLOs pass on the partial data");
    let report = text(&out.stdout);
    assert!(report.contains("PARTIAL REPORT"), "{report}");
    assert!(report.contains("PASS p99<10s"), "{report}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).ok();
    assert_eq!(v["interrupted"], true);
    let a = &v["targets"][0]["accounting"];
    let n = |k: &str| a[k].as_u64().unwrap();
    let http: u64 = a["http_errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|x| x.as_u64().unwrap())
        .sum();
    let sum = n("ok")
        + http
        + n("timeout")
        + n("refused")
        + n("reset")
        + n("malformed")
        + n("tls")
        + n("dns")
        + n("other_transport")
        + n("dropped_cap")
        + n("dropped_behind")
        + n("cancelled");
    assert_eq!(sum, n("scheduled"));
    assert!(n("ok") >= 40 && n("scheduled") < 6000, "{a}");
}

#[test]
fn lab_runs_the_two_region_fleet_and_gates() {
    let mut c = bare();
    c.args([
        "lab",
        "--no-progress",
        "--rps",
        "200",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
        "--eu-delay",
        "10ms",
    ]);
    let out = run(c, Duration::from_secs(120));
    let report = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        text(&out.stderr)
    );
    for needle in [
        "│ us     ┆ us     ┆ v1",
        "│ us     ┆ us     ┆ v2",
        "│ eu     ┆ eu     ┆ v1",
        "│ eu     ┆ eu     ┆ v2",
        "verdict: all SLOs passed",
    ] {
        assert!(report.contains(needle), "lacks {needle:?}:\n{report}");
    }
    // An impossible gate fails the lab with 99.
    let mut c = bare();
    c.args([
        "lab",
        "--no-progress",
        "--rps",
        "100",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--slo",
        "p50{target:eu}<1ms",
    ]);
    let out = run(c, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(99), "{}", text(&out.stdout));
}
