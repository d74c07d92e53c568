//! The floor client against real servers on loopback: echo-svc (the in-process fleet),
//! a server that fails every request, one that hangs up, and a refused address. Linux only,
//! as the floor is.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::process::{Command, Output};

use serde_json::Value;

fn floor(url: &str, rps: &str, connections: &str) -> Output {
    floor_with(url, rps, connections, &[])
}

fn floor_with(url: &str, rps: &str, connections: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_benches"))
        .args([
            "floor",
            "--url",
            url,
            "--rps",
            rps,
            "--duration",
            "1s",
            "--connections",
            connections,
        ])
        .args(extra)
        .output()
        .expect("run the benches binary")
}

fn report(o: &Output) -> Value {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"))
}

#[test]
fn every_request_to_echo_svc_is_answered() {
    let fleet = benches::fleet::Fleet::start(None).unwrap();
    let addr = fleet.instances[0].2;
    let v = report(&floor(&format!("http://{addr}/"), "400", "8"));
    fleet.stop().unwrap();
    // 400 rps for 1 s with 500 µs ticks: 400 due, 8 connections each free long before
    // its next turn, so none is skipped and every one is answered.
    assert_eq!(n(&v, "sent"), 400, "{v}");
    assert_eq!(n(&v, "responses"), 400, "{v}");
    assert_eq!(
        n(&v, "errors") + n(&v, "skipped") + n(&v, "unanswered"),
        0,
        "{v}"
    );
    assert_eq!(n(&v, "tick_us"), 500, "{v}");
    // The floor times nothing.
    assert!(v.get("latency").is_none(), "{v}");
}

#[test]
fn measured_floor_times_every_answer_by_its_arrival() {
    let fleet = benches::fleet::Fleet::start(None).unwrap();
    let addr = fleet.instances[0].2;
    let v = report(&floor_with(
        &format!("http://{addr}/"),
        "400",
        "8",
        &["--measure"],
    ));
    fleet.stop().unwrap();
    assert_eq!(n(&v, "responses"), 400, "{v}");
    let l = &v["latency"];
    // Each answer timed once, by the kernel's stamp, with echo-svc's labels read.
    assert_eq!(n(l, "answers"), 400, "{v}");
    assert_eq!(n(l, "stamped"), 400, "{v}");
    assert_eq!(n(l, "labelled"), 400, "{v}");
    // From the due time, never less than from the send; on loopback, well under a second.
    assert!(n(l, "service_p50_us") <= n(l, "p50_us"), "{v}");
    assert!(n(l, "p99_us") < 1_000_000, "{v}");
}

/// A loopback server that answers every request with `answer` and then, when `close`,
/// hangs up.
fn server(answer: &'static [u8], close: bool) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(k) = s.read(&mut buf) {
                    if k == 0 || s.write_all(answer).is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}/")
}

#[test]
fn failed_answers_count_as_errors() {
    let url = server(
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nnope",
        false,
    );
    let v = report(&floor(&url, "200", "4"));
    assert_eq!(n(&v, "sent"), 200, "{v}");
    assert_eq!(n(&v, "responses"), 200, "{v}");
    assert_eq!(n(&v, "errors"), 200, "{v}");
    // Measured, a failed answer is still an answer, and timed; this server sends no labels.
    let v = report(&floor_with(&url, "200", "4", &["--measure"]));
    assert_eq!(n(&v, "errors"), 200, "{v}");
    assert_eq!(n(&v["latency"], "answers"), 200, "{v}");
    assert_eq!(n(&v["latency"], "labelled"), 0, "{v}");
}

#[test]
fn hung_up_connections_are_lost_not_hidden() {
    // Each connection answers once and hangs up: after 2 answers both connections are
    // gone, and every later request is skipped, since the floor never reconnects.
    let url = server(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", true);
    let v = report(&floor(&url, "200", "2"));
    assert_eq!(n(&v, "responses"), 2, "{v}");
    assert_eq!(n(&v, "sent") + n(&v, "skipped"), 200, "{v}");
    assert_eq!(n(&v, "unanswered"), 0, "{v}");
}

#[test]
fn refuses_anything_but_loopback() {
    let o = floor("http://192.0.2.1:80/", "100", "1");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
    let o = floor("http://127.0.0.1:80/", "0", "1");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--rps"));
    // A tick too fine to coalesce anything would only spin.
    let o = Command::new(env!("CARGO_BIN_EXE_benches"))
        .args([
            "floor",
            "--url",
            "http://127.0.0.1:80/",
            "--rps",
            "100",
            "--tick",
            "1us",
        ])
        .output()
        .expect("run the benches binary");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--tick must be at least"));
}
