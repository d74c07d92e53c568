//! The connection pool against a slow (remote-like) echo-svc over real loopback sockets:
//! by default it grows to what the rate needs, and when it cannot (a pool fixed small on
//! purpose), the run says loadgen limited it instead of blaming the service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use loadgen::{EXIT_OK, EXIT_SLO_FAILED};

/// The load tests here run one at a time: each measures latency, and the other's load
/// on the same cores would be measured with it.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Corrected latency of every response of a target, merged over groups.
fn corrected_p99_us(r: &loadgen::results::Results) -> u64 {
    let mut h = loadgen::hist::new_histogram();
    for g in r.groups.values() {
        h.add(&g.corrected).unwrap();
    }
    h.value_at_quantile(0.99)
}

#[test]
fn a_region_50ms_away_at_2000_rps_needs_no_flags() {
    let _alone = alone();
    // Default pool settings: nothing about connections on the command line.
    let out = run_against(
        "eu",
        "delay=50ms",
        &[
            "--rps",
            "2000",
            "--duration",
            "3s",
            "--slo",
            "generator_limited==0",
            "--slo",
            "dropped==0",
        ],
    );
    let r = &out.results;
    assert_sums(r);
    let tr = &r.targets[0];
    let a = &tr.accounts.measured;
    assert_eq!(a.scheduled, 6000);
    assert_eq!(a.dropped(), 0, "{a:?}");
    let achieved = (a.scheduled - a.dropped()) as f64 / r.measured_secs;
    assert!(achieved >= 0.99 * 2000.0, "achieved {achieved} rps");
    assert_eq!(a.ok, a.scheduled, "{a:?}");
    let p99 = corrected_p99_us(r);
    eprintln!(
        "2000 rps at 50 ms: corrected p99 {p99} us, pool peak {}",
        tr.accounts.pool.peak
    );
    // A pool that did not grow would queue requests for seconds; growing it costs a few
    // connects' worth at the start (52-75 ms measured on a busy 2-core machine).
    assert!(p99 < 150_000, "corrected p99 {p99} us with a 50 ms service");
    // Little's law: 2000/s x 50 ms = 100 in flight; the pool grew to about that.
    let pool = &tr.accounts.pool;
    assert!(pool.peak >= 90 && pool.peak <= 400, "{pool:?}");
    assert!(pool.opened >= pool.peak / 2, "{pool:?}");
    assert!(loadgen::judge::limits::limits(r).is_empty());
    assert_eq!(
        out.judgement.exit_code, EXIT_OK,
        "{:?}",
        out.judgement.verdicts
    );
    let text = loadgen::report::text::render(r, &out.judgement);
    assert!(
        text.contains("connections for eu (http/1.1): opened"),
        "{text}"
    );
    assert!(!text.contains("LOADGEN LIMITED"), "{text}");
}

#[test]
fn a_pool_fixed_too_small_says_loadgen_limited_the_run() {
    let _alone = alone();
    let json = std::env::temp_dir().join(format!("loadgen-pool-{}.json", std::process::id()));
    let j = json.to_str().unwrap().to_string();
    // 4 connections carry at most 80 requests/s of 50 ms each: 400/s must queue in loadgen.
    let out = run_against(
        "eu",
        "delay=50ms",
        &[
            "--rps",
            "400",
            "--duration",
            "1s",
            "--connections",
            "4",
            "--timeout",
            "2s",
            "--slo",
            "p99<10s",
            "--slo",
            "generator_limited==0",
            "--json",
            &j,
        ],
    );
    let r = &out.results;
    assert_sums(r);
    let pool = &r.targets[0].accounts.pool;
    assert_eq!(pool.cap, 4);
    assert!(pool.peak <= 4, "{pool:?}");
    assert!(pool.queued_at_cap > 100, "{pool:?}");
    // The wait histogram shows the queueing: far above the material threshold.
    let wait_p99 = pool.wait.value_at_quantile(0.99);
    assert!(
        wait_p99 > 100 * loadgen::judge::limits::WAIT_P99_LIMIT_US,
        "wait p99 {wait_p99} us"
    );

    let limits = loadgen::judge::limits::limits(r);
    assert_eq!(limits.len(), 1, "{limits:?}");
    let l = &limits[0];
    assert_eq!(l.target, "eu");
    // 400/s x ~50 ms x 1.25 headroom: about 25 connections needed, 4 allowed.
    let needed = l.connections_needed.unwrap();
    assert!((20..=40).contains(&needed), "{l:?}");
    assert!(l.advice.contains("--connections"), "{l:?}");

    // The gate meant to catch this fails, while the latency SLO alone would have passed.
    assert_eq!(out.judgement.exit_code, EXIT_SLO_FAILED);
    let gate = out
        .judgement
        .verdicts
        .iter()
        .find(|v| v.slo == "generator_limited==0")
        .unwrap();
    assert!(!gate.pass, "{gate:?}");
    assert!(out
        .judgement
        .verdicts
        .iter()
        .any(|v| v.slo == "p99<10s" && v.pass));

    let text = loadgen::report::text::render(r, &out.judgement);
    assert!(text.contains("LOADGEN LIMITED THIS RUN for eu"), "{text}");
    assert!(
        text.contains("waited in loadgen for a free connection"),
        "{text}"
    );
    assert!(
        text.contains(&format!("needs about {needed} connections")),
        "{text}"
    );

    // The JSON says so apart from the SLOs, and a saved report keeps the pool exactly.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["generator_limited"], true);
    assert_eq!(v["targets"][0]["generator_limited"], true);
    assert_eq!(v["targets"][0]["connections"]["cap"], 4);
    assert_eq!(v["limits"][0]["connections_needed"], needed);
    let saved = loadgen::report::json::read::load(&json).unwrap();
    std::fs::remove_file(&json).ok();
    let back = &saved.results.targets[0].accounts.pool;
    assert_eq!(back.queued_at_cap, pool.queued_at_cap);
    assert_eq!(back.wait.len(), pool.wait.len());
    assert_eq!(loadgen::judge::limits::limits(&saved.results), limits);
}

#[test]
fn a_fixed_pool_and_a_cap_are_one_or_the_other() {
    use clap::Parser as _;
    let both = loadgen::configured::cli::Cli::try_parse_from([
        "loadgen",
        "--target",
        "a=http://127.0.0.1:1/",
        "--rps",
        "1",
        "--duration",
        "1s",
        "--connections",
        "4",
        "--max-connections",
        "8",
    ]);
    assert!(both.is_err());
    let zero = loadgen::configured::cli::Cli::try_parse_from([
        "loadgen",
        "--target",
        "a=http://127.0.0.1:1/",
        "--rps",
        "1",
        "--duration",
        "1s",
        "--max-connections",
        "0",
    ])
    .unwrap();
    let e = loadgen::configured::config::RunConfig::from_args(&zero.run).unwrap_err();
    assert!(e.to_string().contains("--max-connections"), "{e}");
}

/// A connection's task keeps one timer for its life and moves it only when it goes off
/// early (`send::serve`): on connections that carried quick answers first, a 250 ms answer
/// must still not time out at 600 ms, and a 2 s one must time out at 600 ms, not be waited for.
#[test]
fn timeouts_hold_on_kept_connections_whatever_came_before() {
    let _alone = alone();
    let dir = std::env::temp_dir().join(format!("loadgen-pool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mix.yaml");
    std::fs::write(
        &file,
        "requests:\n  - {name: quick, path: /}\n  - {name: under, path: /?delay=250ms}\n  \
         - {name: over, path: /?delay=2s}\n",
    )
    .unwrap();
    let out = run_against(
        "us",
        "",
        &[
            "--requests",
            file.to_str().unwrap(),
            "--rps",
            "20",
            "--duration",
            "3s",
            "--timeout",
            "600ms",
        ],
    );
    std::fs::remove_dir_all(&dir).ok();
    let r = &out.results;
    assert_sums(r);
    let a = &r.targets[0].accounts.measured;
    assert_eq!(a.scheduled, 60, "{a:?}");
    let mut answered: std::collections::BTreeMap<&str, u64> = Default::default();
    for (k, g) in &r.groups {
        *answered.entry(k.name.as_str()).or_default() += g.corrected.len();
    }
    // In turn, a third each: the quick and the 250 ms ones all answered...
    assert_eq!(answered.get("quick"), Some(&20), "{answered:?} {a:?}");
    assert_eq!(answered.get("under"), Some(&20), "{answered:?} {a:?}");
    // ... and every 2 s one a timeout.
    assert_eq!(answered.get("over"), None, "{answered:?}");
    assert_eq!((a.ok, a.timeout), (40, 20), "{a:?}");
    // The connections were kept between answers: fewer opened than requests answered.
    let pool = &r.targets[0].accounts.pool;
    assert!(pool.opened < 40, "{pool:?}");
}

/// On a parked plain connection the dispatcher writes the request itself and only the
/// answer wakes the connection's task (`send::state::Parked`). On two connections at 500
/// rps (each request finds the other's answer still unread after the held sleep, so it
/// goes to the parked one) every answer must be read as it comes: a missed wake-up would
/// hold it until the task's timer (up to the 5 s timeout), with later requests queued
/// behind it.
#[test]
fn kept_connections_read_every_answer_to_requests_written_ahead() {
    let _alone = alone();
    let out = run_against(
        "us",
        "",
        &[
            "--rps",
            "500",
            "--duration",
            "2s",
            "--connections",
            "2",
            "--timeout",
            "5s",
        ],
    );
    let r = &out.results;
    assert_sums(r);
    let a = &r.targets[0].accounts.measured;
    assert_eq!(a.scheduled, 1000, "{a:?}");
    assert_eq!(a.ok, a.scheduled, "{a:?}");
    let pool = &r.targets[0].accounts.pool;
    assert_eq!(pool.opened, 2, "{pool:?}");
    // Generous for a loaded machine, and far below a timer's wake-up.
    let wait_p99 = pool.wait.value_at_quantile(0.99);
    assert!(
        wait_p99 < 200_000,
        "wait for the connection p99 {wait_p99} µs"
    );
    let p99 = corrected_p99_us(r);
    assert!(p99 < 200_000, "corrected p99 {p99} µs");
}
