//! Micro-benchmarks of the hot paths, through the crates' public APIs:
//!
//! - echo-svc: building and serving the `GET /` response (text, JSON, with a header fault),
//!   as one keep-alive round trip to a real in-process server on loopback (the handler
//!   itself is not public);
//! - echo-svc: parsing and sampling fault parameters;
//! - loadgen: recording a response into the HDR histograms, one scheduler tick (next
//!   arrival), parsing and evaluating SLOs.
//!
//! Run with `cargo bench -p benches --bench hot_paths` (release profile with symbols, so
//! `perf record` on the bench binary shows names).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use echo_svc::{Config, FaultSpec};
use http_body_util::{BodyExt as _, Empty};
use loadgen::record::{Answered, Recorder};
use loadgen::results::{Results, TargetResult};
use loadgen::schedule::Arrival;
use loadgen::schedule::{Arrivals, RatePlan, Stage};
use rand::rngs::SmallRng;
use rand::SeedableRng as _;

fn echo_round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handle = rt
        .block_on(echo_svc::spawn(Config::local("us", "v1")))
        .unwrap();
    let addr = handle.addr();
    let mut sender = rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender
    });
    let mut g = c.benchmark_group("echo");
    g.throughput(Throughput::Elements(1));
    // Client and server share one thread here, so this is the whole request's CPU path
    // (client encode/parse included) without any cross-core wake-up.
    let cases = [
        ("get_root_round_trip", "/", "*/*"),
        ("get_root_json_round_trip", "/", "application/json"),
        (
            "get_root_header_fault_round_trip",
            "/?header=X-Bench:1",
            "*/*",
        ),
    ];
    for (name, uri, accept) in cases {
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    sender.ready().await.unwrap();
                    let req = http::Request::builder()
                        .uri(uri)
                        .header(http::header::HOST, "bench")
                        .header(http::header::ACCEPT, accept)
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    let resp = sender.send_request(req).await.unwrap();
                    assert_eq!(resp.status(), 200);
                    assert_eq!(resp.headers()["x-echo-region"], "us");
                    let body = resp.into_body().collect().await.unwrap().to_bytes();
                    black_box(body)
                })
            })
        });
    }
    g.finish();
    drop(sender);
    rt.block_on(handle.shutdown()).unwrap();
}

fn faults(c: &mut Criterion) {
    let mut g = c.benchmark_group("faults");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_query_delay_status", |b| {
        b.iter(|| FaultSpec::from_query(black_box("delay=10ms:90,200ms:10&status=503:5,429:1")))
    });
    g.bench_function("parse_query_one_param", |b| {
        b.iter(|| FaultSpec::from_query(black_box("delay=20ms:2")))
    });
    g.bench_function("parse_query_unrelated_params", |b| {
        b.iter(|| FaultSpec::from_query(black_box("user=42&page=3")))
    });
    let spec =
        FaultSpec::from_query("delay=10ms:90,200ms:10&status=503:5,429:1&size=1024").unwrap();
    let mut rng = SmallRng::seed_from_u64(7);
    g.bench_function("sample_plan", |b| {
        b.iter(|| black_box(spec.sample(&mut rng)))
    });
    g.finish();
}

fn record(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    let mut r = Recorder::new(2);
    let mut i = 0u64;
    g.bench_function("response_one_group", |b| {
        b.iter(|| {
            i += 1;
            r.scheduled(0, false);
            r.response(
                0,
                false,
                &Answered {
                    status: 200,
                    region: Some(b"us"),
                    version: Some(b"v1"),
                    due_ns: 0,
                    sent_ns: 1_000 + (i & 0xffff),
                    done_ns: 250_000 + (i & 0xfffff),
                    sent_bytes: 40,
                    received_bytes: 160,
                    lead: false,
                    check_failed: false,
                    name: 0,
                },
            );
        })
    });
    // Four live groups (us/eu × v1/v2), as in the lab: the group lookup is a linear scan.
    let mut r = Recorder::new(2);
    let groups: [(usize, &[u8], &[u8]); 4] = [
        (0, b"us", b"v1"),
        (0, b"us", b"v2"),
        (1, b"eu", b"v1"),
        (1, b"eu", b"v2"),
    ];
    let mut i = 0usize;
    g.bench_function("response_four_groups", |b| {
        b.iter(|| {
            i += 1;
            let (t, region, version) = groups[i & 3];
            r.scheduled(t, false);
            r.response(
                t,
                false,
                &Answered {
                    status: 200,
                    region: Some(region),
                    version: Some(version),
                    due_ns: 0,
                    sent_ns: 1_000,
                    done_ns: 250_000 + (i as u64 & 0xfffff),
                    sent_bytes: 40,
                    received_bytes: 160,
                    lead: false,
                    check_failed: false,
                    name: 0,
                },
            );
        })
    });
    g.bench_function("pacing_lag", |b| {
        b.iter(|| r.pacing_lag(black_box(42_000), 0))
    });
    g.finish();
}

fn schedule(c: &mut Criterion) {
    let mut g = c.benchmark_group("schedule");
    g.throughput(Throughput::Elements(1));
    // A plan long enough that the iterator never ends during the benchmark.
    let stages = vec![
        Stage {
            duration: Duration::from_secs(3600),
            from: 0.0,
            to: 1_000_000.0,
        },
        Stage {
            duration: Duration::from_secs(3600),
            from: 1_000_000.0,
            to: 1_000_000.0,
        },
    ];
    let plan = Arc::new(RatePlan::new(&stages, Duration::from_secs(10), 1.0));
    for (name, mode) in [
        ("tick_fixed", Arrival::Fixed),
        ("tick_poisson", Arrival::Poisson),
    ] {
        let mut arrivals = Arrivals::new(plan.clone(), mode, 0, 1, 1);
        g.bench_function(name, |b| b.iter(|| black_box(arrivals.next())));
    }
    g.finish();
}

fn results_with_groups() -> Results {
    let names = vec!["us".to_string(), "eu".to_string()];
    let mut r = Recorder::new(2);
    for i in 0..100_000u64 {
        let (t, region, version): (usize, &[u8], &[u8]) = match i % 10 {
            0 => (0, b"us", b"v2"),
            1..=4 => (0, b"us", b"v1"),
            5 => (1, b"eu", b"v2"),
            _ => (1, b"eu", b"v1"),
        };
        r.scheduled(t, false);
        let status = if i % 500 == 0 { 503 } else { 200 };
        r.response(
            t,
            false,
            &Answered {
                status,
                region: Some(region),
                version: Some(version),
                due_ns: 0,
                sent_ns: 100,
                done_ns: 200_000 + (i * 37) % 300_000,
                sent_bytes: 40,
                received_bytes: 160,
                lead: false,
                check_failed: false,
                name: 0,
            },
        );
    }
    let loadgen::record::Recorded {
        targets: accts,
        groups,
        pacing,
        ..
    } = r.into_recorded(&names);
    let targets = accts
        .into_iter()
        .zip(&names)
        .map(|(accounts, n)| TargetResult {
            name: n.clone(),
            url: format!("http://echo.{n}.mesh.local/"),
            requested_rps: 5000.0,
            accounts,
        })
        .collect();
    let mut results = Results::new(targets);
    results.groups = groups.into_iter().collect();
    results.pacing = pacing;
    results.measured_secs = 20.0;
    results
}

fn slo(c: &mut Criterion) {
    let mut g = c.benchmark_group("slo");
    let texts = [
        "p95<250ms",
        "p99<500ms",
        "http_req_duration{target:eu,version:v2}: p(95)<200",
        "error_rate<1%",
        "dropped==0",
    ];
    g.bench_function("parse_five", |b| {
        b.iter(|| {
            for t in &texts {
                black_box(loadgen::judge::slo::parse::parse(black_box(t)).unwrap());
            }
        })
    });
    let slos: Vec<_> = texts
        .iter()
        .flat_map(|t| loadgen::judge::slo::parse::parse(t).unwrap())
        .collect();
    let results = results_with_groups();
    g.bench_function("evaluate_five_on_four_groups", |b| {
        b.iter(|| {
            for s in &slos {
                black_box(loadgen::judge::slo::evaluate(s, &results, &[]));
            }
        })
    });
    g.finish();
}

criterion_group!(
    name = hot_paths;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = echo_round_trip, faults, record, schedule, slo
);
criterion_main!(hot_paths);
