//! In-process runs over real loopback sockets against echo-svc (and a few deliberately
//! broken raw TCP servers): attribution, accounting, dropped, failures, SLOs, accuracy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use loadgen::results::GroupKey;
use loadgen::{execute, EXIT_OK, EXIT_SLO_FAILED};

#[test]
fn attribution_per_region_and_version_through_the_lab_fleet() {
    let rt = server_runtime();
    let fleet = rt
        .block_on(loadgen::cmd::lab::fleet::Fleet::start(
            loadgen::cmd::lab::fleet::FleetSpec {
                eu_delay: Duration::from_millis(20),
                east_west: Duration::from_millis(30),
                v2_percent: 10,
                replicas: 1,
                outlier: loadgen::cmd::lab::router::Outlier::default(),
                drain: Duration::ZERO,
                withdraw_after: Duration::ZERO,
            },
            loadgen::events::EventLog::default(),
        ))
        .unwrap();
    let us = format!("us=http://{}/", fleet.routers[0].1);
    let eu = format!("eu=http://{}/", fleet.routers[1].1);
    let cfg = config(&[
        "--target",
        &us,
        "--target",
        &eu,
        "--rps",
        "200",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
    ]);
    let out = execute(cfg, false).unwrap();
    rt.block_on(fleet.shutdown(false)).unwrap();
    let r = &out.results;
    assert_sums(r);
    for t in &r.targets {
        // 100 rps per target for 2 s measured, 50 in warm-up.
        assert_eq!(t.accounts.measured.scheduled, 200, "{}", t.name);
        assert_eq!(t.accounts.warmup.scheduled, 50, "{}", t.name);
        assert_eq!(
            t.accounts.measured.ok, 200,
            "{}: {:?}",
            t.name, t.accounts.measured
        );
    }
    for t in ["us", "eu"] {
        let v1 = r.groups[&GroupKey::new(t, t, "v1", "2xx")].corrected.len();
        let v2 = r.groups[&GroupKey::new(t, t, "v2", "2xx")].corrected.len();
        assert_eq!(v1 + v2, 200);
        // The router sends exactly every tenth request to v2 (warm-up included).
        assert!((18..=22).contains(&v2), "{t}: v2 got {v2}");
    }
    assert_eq!(
        r.groups.len(),
        4,
        "{:?}",
        r.groups.keys().collect::<Vec<_>>()
    );
    // eu carries a 20 ms delay, us does not.
    let eu_min = r.groups[&GroupKey::new("eu", "eu", "v1", "2xx")]
        .service
        .min();
    assert!(eu_min >= 20_000, "eu min {eu_min}µs");
    let us_p50 = r.groups[&GroupKey::new("us", "us", "v1", "2xx")]
        .corrected
        .value_at_quantile(0.5);
    assert!(us_p50 < 20_000, "us p50 {us_p50}µs");
    // Warm-up responses are not in the histograms.
    let total: u64 = r.groups.values().map(|g| g.corrected.len()).sum();
    assert_eq!(total, 400);
}

#[test]
fn missing_identity_headers_form_an_unknown_group() {
    let out = run_against(
        "us",
        "",
        &[
            "--rps",
            "50",
            "--duration",
            "1s",
            "--region-header",
            "x-nope",
        ],
    );
    assert_sums(&out.results);
    let g: Vec<_> = out.results.groups.keys().collect();
    assert_eq!(g, vec![&GroupKey::new("us", "unknown", "v1", "2xx")]);
    assert_eq!(
        out.results.groups[&GroupKey::new("us", "unknown", "v1", "2xx")]
            .corrected
            .len(),
        50
    );
}

#[test]
fn http_errors_by_status_and_slo_verdicts() {
    let rt = server_runtime();
    let e = echo(&rt, "us", "v1", "status=503:20");
    let t = format!("us=http://{}/", e.addr());
    let slos = [
        ("p99<10s", true),
        ("p50<1us", false),
        ("p95<=0.25s", true),
        ("max<10s", true),
        ("mean<10s", true),
        ("rps>=50", true),
        ("rps>=1000000", false),
        ("requests==300", true),
        ("dropped==0", true),
        ("dropped_rate<1%", true),
        ("error_rate<1%", false),
        ("error_rate<60%", true),
        ("errors>0", true),
        ("p99{target:us,version:v1}<10s", true),
        ("p99{region:eu}<10s", false),     // no data
        ("p99{target:nope}<10s", false),   // no data
        ("dropped{version:v1}==0", false), // dropped has no version: no data
        ("http_req_duration{target:us,version:v1}: p(95)<10000", true),
        ("http_req_duration: avg<10000, med<10000", true),
        ("http_req_failed: rate<0.01", false),
        ("http_req_failed{version:v1}: rate<0.9", true),
        ("http_reqs: count>=300", true),
        ("dropped_iterations: count==0", true),
    ];
    let mut words = vec!["--target", &t, "--rps", "100", "--duration", "3s"];
    for (s, _) in &slos {
        words.push("--slo");
        words.push(s);
    }
    let out = execute(config(&words), false).unwrap();
    rt.block_on(e.shutdown()).unwrap();
    let r = &out.results;
    assert_sums(r);
    let a = &r.targets[0].accounts.measured;
    assert_eq!(a.scheduled, 300);
    let e503 = a.http_errors.get(&503).copied().unwrap_or(0);
    assert_eq!(a.ok + e503, 300);
    assert!((20..=110).contains(&e503), "503s: {e503}");
    assert!(r
        .groups
        .contains_key(&GroupKey::new("us", "us", "v1", "5xx")));
    let verdicts: Vec<_> = out
        .judgement
        .verdicts
        .iter()
        .map(|v| (v.slo.as_str(), v.pass))
        .collect();
    let want: Vec<_> = slos
        .iter()
        .flat_map(|(s, p)| {
            if s.starts_with("http_req_duration: avg") {
                vec![
                    ("http_req_duration: avg<10000", *p),
                    ("http_req_duration: med<10000", *p),
                ]
            } else {
                vec![(*s, *p)]
            }
        })
        .collect();
    assert_eq!(verdicts, want);
    let no_data = out
        .judgement
        .verdicts
        .iter()
        .find(|v| v.slo == "p99{region:eu}<10s")
        .unwrap();
    assert!(no_data.detail.contains("no data"), "{}", no_data.detail);
    assert_eq!(out.judgement.exit_code, EXIT_SLO_FAILED);
}

#[test]
fn passing_slos_exit_zero_and_json_carries_histograms() {
    let rt = server_runtime();
    let e = echo(&rt, "eu", "v2", "");
    let t = format!("eu=http://{}/", e.addr());
    let json = std::env::temp_dir().join(format!("loadgen-json-{}.json", std::process::id()));
    let j = json.to_str().unwrap().to_string();
    let cfg = config(&[
        "--target",
        &t,
        "--rps",
        "100",
        "--duration",
        "1s",
        "--arrival",
        "poisson",
        "--slo",
        "p99<10s",
        "--json",
        &j,
    ]);
    let out = execute(cfg, false).unwrap();
    rt.block_on(e.shutdown()).unwrap();
    assert_eq!(out.judgement.exit_code, EXIT_OK);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).ok();
    let g = &v["groups"][0];
    assert_eq!(g["target"], "eu");
    assert_eq!(g["region"], "eu");
    assert_eq!(g["version"], "v2");
    let h = loadgen::report::json::decode(g["corrected"]["hdr"].as_str().unwrap()).unwrap();
    assert_eq!(h.len(), g["corrected"]["count"].as_u64().unwrap());
    assert_eq!(h.len(), out.results.targets[0].accounts.measured.ok);
    assert!(
        !loadgen::report::json::decode(v["pacing"]["hdr"].as_str().unwrap())
            .unwrap()
            .is_empty()
    );
    assert_eq!(v["slos"][0]["pass"], true);
    assert_eq!(v["exit_code"], 0);
    assert_eq!(
        v["targets"][0]["accounting"]["scheduled"],
        out.results.targets[0].accounts.measured.scheduled
    );
}

#[test]
fn overloaded_target_counts_dropped_and_reports_the_missed_rate() {
    let out = run_against(
        "us",
        "delay=300ms",
        &[
            "--rps",
            "100",
            "--duration",
            "1s",
            "--connections",
            "2",
            "--max-in-flight",
            "4",
            "--slo",
            "dropped==0",
        ],
    );
    let r = &out.results;
    assert_sums(r);
    let a = &r.targets[0].accounts.measured;
    assert_eq!(a.scheduled, 100);
    // At most 4 outstanding while each takes 300 ms: most requests cannot be admitted.
    assert!(a.dropped_cap >= 50, "{a:?}");
    assert!(a.ok >= 4, "{a:?}");
    assert_eq!(out.judgement.exit_code, EXIT_SLO_FAILED);
    let text = loadgen::report::text::render(r, &out.judgement);
    assert!(text.contains("target rate missed for us"), "{text}");
    // Latency is measured from the schedule: queueing behind 2 connections shows.
    let g = &r.groups[&GroupKey::new("us", "us", "v1", "2xx")];
    assert!(g.corrected.max() >= g.service.max());
}

#[test]
fn refused_connections_are_counted() {
    let addr = closed_port();
    let t = format!("gone=http://{addr}/");
    let out = execute(
        config(&[
            "--target",
            &t,
            "--rps",
            "50",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--slo",
            "p99<1s",
        ]),
        false,
    )
    .unwrap();
    let r = &out.results;
    assert_sums(r);
    let a = &r.targets[0].accounts.measured;
    assert_eq!(a.scheduled, 50);
    assert_eq!(a.refused, 50, "{a:?}");
    assert_eq!(r.targets[0].accounts.warmup.refused, 10);
    assert!(r.groups.is_empty());
    // No responses: the latency SLO has no data and fails.
    assert!(!out.judgement.verdicts[0].pass);
    assert_eq!(out.judgement.exit_code, EXIT_SLO_FAILED);
}

#[test]
fn a_name_that_does_not_resolve_counts_in_its_own_bucket_while_the_others_go_on() {
    let rt = server_runtime();
    let e = echo(&rt, "us", "v1", "");
    let us = format!("us=http://{}/", e.addr());
    // `.invalid` never resolves (RFC 6761).
    let nx_target = "nx=http://echo.nowhere.invalid:8080/";
    let out = execute(
        config(&[
            "--target",
            &us,
            "--target",
            nx_target,
            "--rps",
            "100",
            "--duration",
            "2500ms",
        ]),
        false,
    )
    .unwrap();
    rt.block_on(e.shutdown()).unwrap();
    let r = &out.results;
    assert_sums(r);
    let (us, nx) = (&r.targets[0], &r.targets[1]);
    assert_eq!(
        us.accounts.measured.ok, us.accounts.measured.scheduled,
        "{:?}",
        us.accounts.measured
    );
    assert!(nx.accounts.measured.scheduled > 0);
    assert_eq!(
        nx.accounts.measured.dns, nx.accounts.measured.scheduled,
        "{:?}",
        nx.accounts.measured
    );
    // It was looked up again while the run went on (once a second), and failed each time.
    assert!(nx.accounts.pool.lookups >= 1, "{:?}", nx.accounts.pool);
    assert_eq!(nx.accounts.pool.lookups, nx.accounts.pool.lookup_failures);
    // Only when no target resolves is the run an error.
    let alone = execute(config(&["--target", nx_target, "--duration", "1s"]), false);
    assert!(format!("{:#}", alone.unwrap_err()).contains("cannot resolve target nx"));
}

#[test]
fn timeouts_are_counted() {
    let out = run_against(
        "us",
        "delay=3s",
        &["--rps", "20", "--duration", "1s", "--timeout", "200ms"],
    );
    let a = &out.results.targets[0].accounts.measured;
    assert_sums(&out.results);
    assert_eq!(a.scheduled, 20);
    assert_eq!(a.timeout, 20, "{a:?}");
}

#[test]
fn malformed_responses_are_counted() {
    // Every request answered with bytes that are not HTTP.
    let addr = scripted_server(|_| b"SPLAT \x00\x01 not http at all\r\n\r\n".to_vec(), None);
    let t = format!("bad=http://{addr}/");
    let out = execute(
        config(&[
            "--target",
            &t,
            "--rps",
            "40",
            "--duration",
            "1s",
            "--timeout",
            "2s",
        ]),
        false,
    )
    .unwrap();
    let a = &out.results.targets[0].accounts.measured;
    assert_sums(&out.results);
    assert_eq!(a.scheduled, 40);
    assert_eq!(a.malformed, 40, "{a:?}");
}

#[test]
fn a_target_that_dies_mid_run() {
    let rt = server_runtime();
    let e = echo(&rt, "us", "v1", "");
    let addr = e.addr();
    let t = format!("us=http://{addr}/");
    let cfg = config(&[
        "--target",
        &t,
        "--rps",
        "100",
        "--duration",
        "3s",
        "--timeout",
        "1s",
    ]);
    let run = std::thread::spawn(move || execute(cfg, false).unwrap());
    assert!(
        wait_for(Duration::from_secs(20), || served(addr) >= 30.0),
        "echo-svc never saw traffic"
    );
    rt.block_on(e.shutdown()).unwrap();
    let out = run.join().unwrap();
    let a = &out.results.targets[0].accounts.measured;
    assert_sums(&out.results);
    assert_eq!(a.scheduled, 300);
    assert!(a.ok >= 25, "{a:?}");
    assert!(a.refused + a.reset + a.timeout >= 100, "{a:?}");
}

#[test]
fn a_stall_shows_in_corrected_latency_but_not_in_service_time() {
    let rt = server_runtime();
    let e = echo(&rt, "us", "v1", "");
    let t = format!("us=http://{}/", e.addr());
    // Every request is held for the next second; few connections, as wrk2 would use.
    assert!(http(e.addr(), "POST", "/stall?for=1s").starts_with("HTTP/1.1 200"));
    let out = execute(
        config(&[
            "--target",
            &t,
            "--rps",
            "100",
            "--duration",
            "3s",
            "--connections",
            "2",
        ]),
        false,
    )
    .unwrap();
    rt.block_on(e.shutdown()).unwrap();
    assert_sums(&out.results);
    let g = &out.results.groups[&GroupKey::new("us", "us", "v1", "2xx")];
    let corrected = g.corrected.value_at_quantile(0.99);
    let service = g.service.value_at_quantile(0.99);
    assert!(corrected >= 500_000, "corrected p99 {corrected}µs");
    assert!(service < 500_000, "service p99 {service}µs");
    assert!(
        g.service.max() >= 500_000,
        "the held requests themselves took long"
    );
}

#[test]
fn two_percent_slow_requests_sit_between_p95_and_p99() {
    let out = run_against("us", "delay=20ms:2", &["--rps", "500", "--duration", "5s"]);
    assert_sums(&out.results);
    let g = &out.results.groups[&GroupKey::new("us", "us", "v1", "2xx")];
    let (p95, p99) = (
        g.corrected.value_at_quantile(0.95),
        g.corrected.value_at_quantile(0.99),
    );
    assert!(p95 < 20_000, "p95 {p95}µs");
    assert!(p99 >= 20_000, "p99 {p99}µs");
}

#[test]
fn stages_and_threads_split_the_schedule_exactly() {
    let rt = server_runtime();
    let e1 = echo(&rt, "us", "v1", "");
    let e2 = echo(&rt, "eu", "v1", "");
    let a = format!("us=http://{}/@3", e1.addr());
    let b = format!("eu=http://{}/", e2.addr());
    // 0 -> 200 rps over 1 s, 200 for 1 s: 300 requests in all, 3:1 between targets.
    let cfg = config(&[
        "--target",
        &a,
        "--target",
        &b,
        "--stages",
        "1s:200,1s:200",
        "--threads",
        "2",
    ]);
    let out = execute(cfg, false).unwrap();
    rt.block_on(e1.shutdown()).unwrap();
    rt.block_on(e2.shutdown()).unwrap();
    assert_sums(&out.results);
    let t = &out.results.targets;
    assert_eq!(t[0].accounts.measured.scheduled, 225);
    assert_eq!(t[1].accounts.measured.scheduled, 75);
    assert_eq!(t[0].accounts.measured.ok + t[1].accounts.measured.ok, 300);
}

#[test]
fn one_run_mixes_methods_and_bodies_per_target() {
    let rt = server_runtime();
    let us = echo(&rt, "us", "v1", "");
    let eu = echo(&rt, "eu", "v1", "");
    let dir = std::env::temp_dir().join(format!("loadgen-mix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("order.json"), br#"{"order":42}"#).unwrap();
    let file = dir.join("targets.yaml");
    std::fs::write(
        &file,
        format!(
            "us: http://{}/\neu:\n  url: http://{}/echo\n  method: POST\n  body_file: order.json\n  content_type: application/json\n",
            us.addr(),
            eu.addr()
        ),
    )
    .unwrap();
    let cfg = config(&[
        "--targets-file",
        file.to_str().unwrap(),
        "--rps",
        "200",
        "--duration",
        "1s",
        "--warmup",
        "0s",
    ]);
    let out = execute(cfg, false).unwrap();
    let r = &out.results;
    assert_sums(r);
    for t in &r.targets {
        assert_eq!(
            t.accounts.measured.ok, 100,
            "{}: {:?}",
            t.name, t.accounts.measured
        );
    }
    // Each server counted exactly the method and route its target was given.
    let count = |addr, needle: &str| -> f64 {
        http(addr, "GET", "/metrics")
            .lines()
            .filter(|l| l.starts_with("http_requests_total") && l.contains(needle))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(count(eu.addr(), r#"method="POST",route="/echo""#), 100.0);
    assert_eq!(count(us.addr(), r#"method="GET",route="/""#), 100.0);
    assert_eq!(count(us.addr(), r#"method="POST""#), 0.0);
    rt.block_on(us.shutdown()).unwrap();
    rt.block_on(eu.shutdown()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn head_requests_keep_their_connections() {
    let out = run_against(
        "us",
        "",
        &[
            "--method",
            "head",
            "--rps",
            "100",
            "--duration",
            "1s",
            "--warmup",
            "0s",
        ],
    );
    let t = &out.results.targets[0];
    assert_sums(&out.results);
    assert_eq!(t.accounts.measured.ok, 100, "{:?}", t.accounts.measured);
    // Reading a body a HEAD answer does not have would stall or close each connection.
    assert!(t.accounts.pool.opened <= 4, "{:?}", t.accounts.pool);
}

#[test]
fn names_are_looked_up_again_as_connections_open() {
    // Every answer closes its connection, so each request opens a new one.
    let addr = scripted_server(
        |_| response("200 OK", &["connection: close", "x-echo-region: us"], "ok"),
        None,
    );
    let by_name = format!("us=http://localhost:{}/", addr.port());
    let cfg = config(&[
        "--target",
        &by_name,
        "--rps",
        "100",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--resolve-every",
        "50ms",
    ]);
    let out = execute(cfg, false).unwrap();
    let t = &out.results.targets[0];
    assert_sums(&out.results);
    assert_eq!(t.accounts.measured.ok, 100, "{:?}", t.accounts.measured);
    assert!(t.accounts.pool.lookups >= 1, "{:?}", t.accounts.pool);
    assert_eq!(t.accounts.pool.lookup_failures, 0, "{:?}", t.accounts.pool);
    assert_eq!(t.accounts.pool.address_changes, 0, "{:?}", t.accounts.pool);

    // `0` looks the name up once, and IP literals never again.
    for (target, every) in [
        (by_name.clone(), "0"),
        (format!("us=http://{addr}/"), "50ms"),
    ] {
        let cfg = config(&[
            "--target",
            &target,
            "--rps",
            "50",
            "--duration",
            "500ms",
            "--warmup",
            "0s",
            "--resolve-every",
            every,
        ]);
        let out = execute(cfg, false).unwrap();
        assert_eq!(
            out.results.targets[0].accounts.pool.lookups, 0,
            "{target} {every}"
        );
    }
}

/// The default coarsens the schedule to ticks; the tick boundary is then the request's
/// intended time, so waiting for the tick is neither latency nor pacing lag, and the count
/// per run is still the schedule's.
#[test]
fn a_coarse_tick_moves_the_intended_time_and_never_adds_its_wait_to_latency() {
    // A 20 ms tick at 500 rps: timed from the exact due time, the median request would
    // carry about 10 ms of the generator's own wait; timed from its tick, well under 5.
    let coarse = run_against(
        "us",
        "",
        &["--rps", "500", "--duration", "2s", "--tick", "20ms"],
    );
    let exact = run_against(
        "us",
        "",
        &["--rps", "500", "--duration", "2s", "--tick", "0s"],
    );
    for out in [&coarse, &exact] {
        assert_sums(&out.results);
        assert_eq!(out.results.targets[0].accounts.measured.scheduled, 1000);
        assert_eq!(out.results.targets[0].accounts.measured.ok, 1000);
    }
    let g = &coarse.results.groups[&GroupKey::new("us", "us", "v1", "2xx")];
    let p50 = g.corrected.value_at_quantile(0.5);
    assert!(p50 < 5_000, "coarse-tick corrected p50 {p50}µs");
    let lag = coarse.results.pacing.value_at_quantile(0.5);
    assert!(lag < 5_000, "coarse-tick pacing lag p50 {lag}µs");
    assert_eq!(coarse.results.tick_ns, 20_000_000);
    assert_eq!(exact.results.tick_ns, 0);

    let text = |r| loadgen::report::text::render(r, &loadgen::judge::judge(&[], r));
    assert!(
        text(&coarse.results).contains("schedule: coarsened to 20.00ms ticks"),
        "{}",
        text(&coarse.results)
    );
    assert!(!text(&exact.results).contains("coarsened"));
}

/// Without `--tick` the default is `auto`: against a near target it keeps 0.5 ms ticks,
/// and the JSON says so.
#[test]
fn the_default_tick_is_auto_and_stays_at_half_a_millisecond_near_by() {
    let json = std::env::temp_dir().join(format!("loadgen-tick-{}.json", std::process::id()));
    let j = json.to_str().unwrap().to_string();
    let out = run_against(
        "eu",
        "",
        &["--rps", "200", "--duration", "2s", "--json", &j],
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // Read back (as `merge` and `compare` do), a saved report keeps its ticks.
    let saved = loadgen::report::json::read::load(&json).unwrap();
    std::fs::remove_file(&json).ok();
    assert!(out.results.tick_auto);
    assert_eq!(out.results.tick_ns, 500_000);
    let ticks =
        |r: &loadgen::results::Results| r.targets[0].accounts.ticks.iter().collect::<Vec<_>>();
    assert_eq!(ticks(&out.results), vec![(500_000, 400)]);
    assert_eq!(v["tick_us"], 500.0);
    assert_eq!(v["tick_auto"], true);
    assert_eq!(v["settings"]["tick_secs"], 0.0005);
    assert_eq!(v["settings"]["tick_auto"], true);
    assert_eq!(v["targets"][0]["ticks"][0]["requests"], 400);
    assert!(saved.results.tick_auto);
    assert_eq!(saved.results.tick_ns, 500_000);
    assert_eq!(ticks(&saved.results), vec![(500_000, 400)]);
    assert_eq!(out.results.targets[0].accounts.measured.scheduled, 400);
}

/// `auto` against a target 30 ms away moves to 2 ms ticks after its first second, every
/// scheduled request is still accounted for, and the run's tick check finds it honest.
#[test]
fn auto_ticks_coarsen_for_a_far_target_and_stay_honest() {
    let out = run_against("eu", "delay=30ms", &["--rps", "400", "--duration", "4s"]);
    let r = &out.results;
    assert_sums(r);
    assert_eq!(r.targets[0].accounts.measured.scheduled, 1600);
    assert_eq!(r.targets[0].accounts.measured.ok, 1600);
    let ticks = &r.targets[0].accounts.ticks;
    let at = |t: u64| ticks.iter().find(|x| x.0 == t).map_or(0, |x| x.1);
    assert_eq!(ticks.iter().map(|x| x.1).sum::<u64>(), 1600, "{ticks:?}");
    // The first second starts at 0.5 ms; from the second on, 2 ms.
    assert!(at(500_000) >= 300, "{ticks:?}");
    assert!(at(2_000_000) >= 900, "{ticks:?}");
    assert_eq!(r.tick_ns, 2_000_000);
    let c = loadgen::judge::tick::checks(r);
    assert!(c.len() == 1 && c[0].within, "{c:?}");
    let text = loadgen::report::text::render(r, &loadgen::judge::judge(&[], r));
    assert!(text.contains("--tick auto chose 2.00ms for"), "{text}");
    // A fixed tick stays put whatever the target.
    let fixed = run_against(
        "eu",
        "delay=30ms",
        &["--rps", "400", "--duration", "2s", "--tick", "500us"],
    );
    assert!(!fixed.results.tick_auto);
    assert_eq!(
        fixed.results.targets[0]
            .accounts
            .ticks
            .iter()
            .collect::<Vec<_>>(),
        vec![(500_000, 800)]
    );
}

/// A server that works on one thread, one request at a time (`work` each): the requests
/// of a burst queue in it, as in a single-threaded service.
fn serial_server(work: Duration) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        buf.drain(..end + 4);
                        // Blocks the server's only thread: this is the work, done serially.
                        std::thread::sleep(work);
                        let answer = response("200 OK", &["x-echo-region: serial"], "ok");
                        if s.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    });
    addr
}

/// Every ticked run checks what its bursts cost: the median of each tick's first request
/// against everyone's. Five requests per tick queueing in a serial server move the median
/// by milliseconds, and the report warns; one request per tick moves nothing.
#[test]
fn the_tick_check_warns_when_a_tick_s_burst_queues_in_the_server() {
    let addr = serial_server(Duration::from_millis(1));
    let t = format!("serial=http://{addr}/");
    let run = |rps: &str, secs: &str| {
        execute(
            config(&[
                "--target",
                &t,
                "--rps",
                rps,
                "--duration",
                secs,
                "--tick",
                "20ms",
            ]),
            false,
        )
        .unwrap()
    };
    let text = |r| loadgen::report::text::render(r, &loadgen::judge::judge(&[], r));

    // 250 rps in 20 ms ticks: five at once, the fifth served about 4 ms after the first.
    let burst = run("250", "3s");
    assert_sums(&burst.results);
    let c = loadgen::judge::tick::checks(&burst.results);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(!c[0].within && c[0].shift_us > 1_000, "{:?}", c[0]);
    assert!(c[0].first_count >= 100, "{:?}", c[0]);
    assert!(
        text(&burst.results).contains("WARNING: sending each tick's requests together"),
        "{}",
        text(&burst.results)
    );

    // 45 rps in 20 ms ticks: never two in one tick, so every request is its tick's first.
    let single = run("45", "4s");
    let c = loadgen::judge::tick::checks(&single.results);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].shift_us, 0, "{:?}", c[0]);
    assert!(c[0].within);
    assert!(!text(&single.results).contains("WARNING: sending"));
}

/// Answers read after a held sleep must carry kernel stamps from before it ended. With
/// sockets left unstamped (`LOADGEN_ARRIVAL_STAMPS=off`, as when the kernel stamps at
/// read), the first second's check condemns them: the worker stops holding its sleeps,
/// reads the rest as they arrive, and the report and the JSON say so. With stamps, the
/// check runs and finds them on time. Linux only: elsewhere no socket is stamped and no
/// sleep is held (`timing_source_is_named` covers that path).
#[cfg(target_os = "linux")]
#[test]
fn answers_without_receipt_stamps_stop_the_held_sleeps_and_the_report_says_so() {
    let rt = server_runtime();
    let e = echo(&rt, "us", "v1", "");
    let json = std::env::temp_dir().join(format!("loadgen-stamps-{}.json", std::process::id()));
    let mut cmd = loadgen_bin();
    cmd.env("LOADGEN_ARRIVAL_STAMPS", "off").args([
        "--target",
        &format!("us=http://{}/", e.addr()),
        "--rps",
        "1000",
        "--duration",
        "3s",
        "--json",
        json.to_str().unwrap(),
    ]);
    let out = output_within(cmd, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let saved = loadgen::report::json::read::load(&json).unwrap();
    std::fs::remove_file(&json).ok();
    let t = &saved.results.targets[0];
    assert_eq!(t.accounts.measured.ok, 3000, "{text}");
    let s = t.accounts.stamps;
    assert!(s.checked >= 50 && s.late == s.checked, "{s:?}");
    // Condemned at the first second's check: about two thirds of the run went unheld.
    assert!(s.unheld >= 1500, "{s:?}");
    assert!(text.contains("WARNING arrival stamps for us"), "{text}");
    assert!(text.contains("stopped holding its sleeps"), "{text}");

    // The same run with stamps: checked, nearly all on time, nothing unheld.
    let ok = run_against("us", "", &["--rps", "1000", "--duration", "2s"]);
    let s = ok.results.targets[0].accounts.stamps;
    assert!(s.checked >= 500, "{s:?}");
    assert_eq!(s.unheld, 0, "{s:?}");
    rt.block_on(e.shutdown()).unwrap();
}

/// Every report names how the generator waited and timed answers: on Linux a timerfd and
/// the kernel's receive stamps, elsewhere tokio's timer and the time of the read. The
/// JSON keeps it, so a merged or compared report still says it.
#[test]
fn timing_source_is_named() {
    let json = std::env::temp_dir().join(format!("loadgen-timing-{}.json", std::process::id()));
    let j = json.to_str().unwrap().to_string();
    let out = run_against(
        "us",
        "",
        &["--rps", "100", "--duration", "1s", "--json", &j],
    );
    let saved = loadgen::report::json::read::load(&json).unwrap();
    std::fs::remove_file(&json).ok();
    let t = &out.results.timing;
    if cfg!(target_os = "linux") {
        assert!(t.starts_with("timerfd waits, kernel receive stamps"), "{t}");
    } else {
        assert!(t.starts_with("tokio timer waits"), "{t}");
        assert_eq!(out.results.targets[0].accounts.stamps.checked, 0);
    }
    assert_eq!(&saved.results.timing, t);
    let text =
        loadgen::report::text::render(&out.results, &loadgen::judge::judge(&[], &out.results));
    assert!(text.contains(&format!("timing: {t}")), "{text}");
}
