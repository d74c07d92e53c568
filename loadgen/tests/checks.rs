//! `--check` over real sockets: answers that arrive but say the wrong thing land in the
//! `check` bucket with their latency recorded, the sums hold, and `checks>=99%` (or k6's
//! `checks: rate>0.99`) gates on them; bodies are read for checks only up to
//! `--check-body-bytes`, across chunks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use loadgen::results::GroupKey;
use loadgen::{EXIT_OK, EXIT_SLO_FAILED, EXIT_USAGE};

#[test]
fn a_wrong_body_fails_its_check_and_its_latency_still_counts() {
    let rt = server_runtime();
    let (us, eu) = (echo(&rt, "us", "v1", ""), echo(&rt, "eu", "v1", ""));
    let targets = [
        format!("us=http://{}/", us.addr()),
        format!("eu=http://{}/", eu.addr()),
    ];
    let summary = std::env::temp_dir()
        .join(format!("loadgen-checks-{}.json", std::process::id()))
        .display()
        .to_string();
    let html = summary.replace(".json", ".html");
    // echo-svc's body is `region=<r> version=<v> pod=<p>`: eu's answers fail this check.
    let cfg = config(&[
        "--target",
        &targets[0],
        "--target",
        &targets[1],
        "--rps",
        "200",
        "--duration",
        "1s",
        "--check",
        "body contains region=us",
        "--check",
        "status in 200-299",
        "--check",
        "header x-echo-version == v1",
        "--slo",
        "checks>=99%",
        "--slo",
        "checks{target:us}>=99%",
        "--slo",
        "checks: rate>0.99",
        "--summary-export",
        &summary,
        "--html",
        &html,
    ]);
    let out = loadgen::execute(cfg, false).unwrap();
    rt.block_on(us.shutdown()).unwrap();
    rt.block_on(eu.shutdown()).unwrap();
    assert_sums(&out.results);
    let acct = |i: usize| &out.results.targets[i].accounts.measured;
    assert_eq!((acct(0).ok, acct(0).check), (acct(0).scheduled, 0));
    assert_eq!((acct(1).ok, acct(1).check), (0, acct(1).scheduled));
    assert_eq!(
        acct(1).failed(),
        0,
        "a failed check is not a transport or HTTP error"
    );
    // Their latency is still recorded, in eu's group.
    let eu_group = &out.results.groups[&GroupKey::new("eu", "eu", "v1", "2xx")];
    assert_eq!(eu_group.corrected.len(), acct(1).check);
    let verdict = |s: &str| out.judgement.verdicts.iter().find(|v| v.slo == s).unwrap();
    assert!(!verdict("checks>=99%").pass);
    assert!(verdict("checks{target:us}>=99%").pass);
    assert!(!verdict("checks: rate>0.99").pass);
    assert_eq!(out.judgement.exit_code, EXIT_SLO_FAILED);
    // The k6 summary carries k6's `checks` metric and the failed threshold.
    let k6: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    std::fs::remove_file(&summary).ok();
    let checks = &k6["metrics"]["checks"];
    assert_eq!(checks["fails"], acct(1).check, "{checks}");
    assert_eq!(checks["passes"], acct(0).ok, "{checks}");
    assert_eq!(checks["thresholds"]["rate>0.99"], true, "{checks}");
    let page = std::fs::read_to_string(&html).unwrap();
    std::fs::remove_file(&html).ok();
    assert!(
        page.contains(&format!("failed a check {}", acct(1).check)),
        "the HTML's accounting line names the checks"
    );
    let text = loadgen::report::text::render(&out.results, &out.judgement);
    // The accounting table has a `check` column, and eu's row carries its count.
    let header = text
        .lines()
        .find(|l| l.contains("sched") && l.contains("┆"))
        .unwrap_or_else(|| panic!("no accounting table: {text}"));
    assert!(header.contains("check"), "{header}");
    // Answers that failed a check were answered: no "only N rps answered" for eu.
    assert!(!text.contains("answered: 0 of"), "{text}");
}

#[test]
fn status_and_header_checks_decide_on_the_head() {
    let run = |status: &str| {
        run_against(
            "us",
            "",
            &[
                "--rps",
                "100",
                "--duration",
                "1s",
                "--check",
                status,
                "--check",
                "header x-echo-region ~ ^u",
                "--slo",
                "checks>=99%",
            ],
        )
    };
    let out = run("status==201");
    let a = &out.results.targets[0].accounts.measured;
    assert_eq!(a.check, a.scheduled, "200 is not 201: {a:?}");
    assert_eq!(out.judgement.exit_code, EXIT_SLO_FAILED);
    let out = run("status in 200,204");
    let a = &out.results.targets[0].accounts.measured;
    assert_eq!((a.ok, a.check), (a.scheduled, 0));
    assert_eq!(out.judgement.exit_code, EXIT_OK);
}

#[test]
fn a_chunked_body_is_read_for_checks_across_chunks_and_only_up_to_the_bound() {
    // Chunks `abc` and `def`: the body is `abcdef`.
    let addr = scripted_server(
        |_| {
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"
                .to_vec()
        },
        None,
    );
    let target = format!("s=http://{addr}/");
    // `extra` are further flags: checks, and the body bound.
    let run = |extra: &[&str]| {
        let mut words = vec![
            "--target",
            target.as_str(),
            "--rps",
            "50",
            "--duration",
            "1s",
        ];
        words.extend_from_slice(extra);
        let out = loadgen::execute(config(&words), false).unwrap();
        assert_sums(&out.results);
        out.results.targets[0].accounts.measured.clone()
    };
    let a = run(&["--check", "body contains cde"]);
    assert_eq!((a.ok, a.check), (a.scheduled, 0), "across chunks: {a:?}");
    let a = run(&["--check", "body ~ ^abcdef$"]);
    assert_eq!((a.ok, a.check), (a.scheduled, 0), "the whole body: {a:?}");
    let a = run(&[
        "--check",
        "body contains bcd",
        "--check",
        "body contains cde",
    ]);
    assert_eq!(a.ok, a.scheduled);
    // Four bytes read for checks: `abcd` holds `bcd` but not `cde`.
    let a = run(&["--check-body-bytes", "4", "--check", "body contains bcd"]);
    assert_eq!((a.ok, a.check), (a.scheduled, 0), "{a:?}");
    let a = run(&["--check-body-bytes", "4", "--check", "body contains cde"]);
    assert_eq!((a.ok, a.check), (0, a.scheduled), "{a:?}");
}

#[test]
fn bad_checks_are_usage_errors() {
    for (check, says) in [
        ("body ~ (", "bad pattern"),
        (
            "{target:nowhere} status==200",
            "no target is named \"nowhere\"",
        ),
        ("status in 700", "not a status"),
        ("latency<5ms", "expected `status in"),
    ] {
        common::assert_usage_error(&["--check", check], says);
    }
    let o = loadgen_bin()
        .args(["--target", "us=http://127.0.0.1:1/", "--duration", "1s"])
        .args(["--check-body-bytes", "0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(i32::from(EXIT_USAGE)));
}
