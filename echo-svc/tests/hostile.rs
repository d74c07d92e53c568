//! Hostile clients over real sockets: stalled and unread bodies, /call loops and path
//! escapes, label-minting queries, dangerous injected headers, absurd delays, and a
//! stderr that cannot be written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Sends a POST /echo whose body stops one byte short of its Content-Length.
async fn stalled_post(addr: std::net::SocketAddr, len: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {len}\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b'a'; len - 1]).await.unwrap();
    s
}

async fn in_flight(addr: std::net::SocketAddr) -> f64 {
    let text = get_text(&client(), url(addr, "/metrics")).await;
    metric(&text, "http_requests_in_flight").unwrap_or(0.0)
}

#[tokio::test]
async fn a_stalled_body_gets_408_and_its_connection_closed() {
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.body_read_timeout = Duration::from_millis(300);
    let e = spawn_with(cfg).await;
    let start = Instant::now();
    let mut s = stalled_post(e.addr(), 1000).await;
    let answer = read_until_close(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 300ms"), "{answer}");
    // Bounded by the deadline, not by the client (generous: a loaded machine).
    assert!(start.elapsed() < Duration::from_secs(10));
    e.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_body_budget_bounds_the_bodies_in_progress() {
    // A budget of two largest bodies, nearly all of it taken by two stalled ones.
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.max_body_requests = 2;
    cfg.max_body_bytes = 1000;
    cfg.body_read_timeout = Duration::from_secs(30);
    let e = spawn_with(cfg).await;
    let a = stalled_post(e.addr(), 1000).await;
    let b = stalled_post(e.addr(), 1000).await;
    // Both hold their bytes once they are in flight (plus the /metrics request itself).
    wait_for(
        "two stalled bodies in flight",
        Duration::from_secs(10),
        || async { (in_flight(e.addr()).await >= 3.0).then_some(()) },
    )
    .await;
    let c = client();
    let r = c
        .post(url(e.addr(), "/echo"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    // Freeing the budget (the clients go away) lets bodies in again.
    drop((a, b));
    let ok = wait_for("a slot free again", Duration::from_secs(10), || async {
        let r = c
            .post(url(e.addr(), "/echo"))
            .body("hello")
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let () = ok;
    e.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unread_answer_keeps_its_budget_until_sent() {
    // A budget of one body; an answer larger than the loopback socket buffers can absorb,
    // not read for a while (well within the send deadline).
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.max_body_requests = 1;
    cfg.max_body_bytes = 24 * 1024 * 1024;
    cfg.body_read_timeout = Duration::from_secs(120);
    let e = spawn_with(cfg).await;
    let body = vec![b'z'; 24 * 1024 * 1024];
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    let head = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    drop(body);
    let c = client();
    // While the answer sits unsent, its budget stays taken: others are turned away.
    let busy = wait_for(
        "the budget held by the unread answer",
        Duration::from_secs(20),
        || async {
            let r = c.post(url(e.addr(), "/echo")).body("x").send().await.ok()?;
            (r.status() == 503).then_some(())
        },
    )
    .await;
    let () = busy;
    // Reading the answer to its end frees the budget.
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < 24 * 1024 * 1024 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => got += n,
            Ok(Err(_)) => break,
        }
    }
    assert!(got >= 24 * 1024 * 1024, "read {got} bytes of the answer");
    let freed = wait_for(
        "the budget freed after the answer",
        Duration::from_secs(10),
        || async {
            let r = c.post(url(e.addr(), "/echo")).body("x").send().await.ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    let () = freed;
    e.shutdown().await.unwrap();
}

#[tokio::test]
async fn echo_answers_stay_within_twice_the_body() {
    let e = spawn("us", "v1").await;
    let c = client();
    for (what, body) in [
        ("control bytes", vec![1u8; 100_000]),
        ("quotes", vec![b'"'; 100_000]),
        (
            "binary",
            (0..100_000u32).map(|i| (i * 7) as u8 | 0x80).collect(),
        ),
        ("text", vec![b'a'; 100_000]),
    ] {
        let r = c
            .post(url(e.addr(), "/echo"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{what}");
        let text = r.bytes().await.unwrap();
        assert!(
            text.len() <= 2 * body.len() + 4096,
            "{what}: {} bytes",
            text.len()
        );
        let doc: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(doc["body_bytes"], body.len(), "{what}");
        // Whatever the encoding, the body comes back exactly.
        let back: Vec<u8> = match (&doc["body"], &doc["body_base64"]) {
            (Value::String(s), _) => s.as_bytes().to_vec(),
            (_, Value::String(b)) => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.decode(b).unwrap()
            }
            _ => panic!("{what}: no body in {doc}"),
        };
        assert_eq!(back, body, "{what}");
    }
    e.shutdown().await.unwrap();
}

fn upstream(name: &str, addr: std::net::SocketAddr) -> echo_svc::Upstream {
    format!("{name}=http://{addr}").parse().unwrap()
}

#[tokio::test]
async fn call_loops_stop_at_the_hop_limit() {
    // us and eu allow-list each other, as the course's two regions do.
    let eu_addr = closed_port().await;
    let us = spawn_with({
        let mut cfg = echo_svc::Config::local("us", "v1");
        cfg.upstreams = vec![upstream("eu", eu_addr)];
        cfg.max_hops = 4;
        cfg
    })
    .await;
    let eu = spawn_with({
        let mut cfg = echo_svc::Config::local("eu", "v1");
        cfg.port = eu_addr.port();
        cfg.upstreams = vec![upstream("us", us.addr())];
        cfg.max_hops = 4;
        cfg
    })
    .await;
    let c = client();
    // A path that would bounce 40 times stops at the fifth instance: 508 there, and each
    // instance before it reports its upstream's failure.
    let path = "/call/eu/call/us".repeat(20);
    let r = c.get(url(us.addr(), &path)).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let doc: Value = r.json().await.unwrap();
    let hops = doc["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 5, "{doc}");
    assert_eq!(hops[4]["status"], 508, "{doc}");
    // The refusal names the limit and the chain the request carried.
    let r = c
        .get(url(eu.addr(), "/call/us"))
        .header("x-echo-hops", "4")
        .header("x-echo-chain", "us/us-v1,eu/eu-v1,us/us-v1,eu/eu-v1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 508);
    let doc: Value = r.json().await.unwrap();
    assert!(
        doc["error"].as_str().unwrap().contains("hop limit reached"),
        "{doc}"
    );
    assert_eq!(doc["chain"], "us/us-v1,eu/eu-v1,us/us-v1,eu/eu-v1");
    // Within the limit, calls still work.
    let r = c
        .get(url(us.addr(), "/call/eu/call/us"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    us.shutdown().await.unwrap();
    eu.shutdown().await.unwrap();
}

#[tokio::test]
async fn call_paths_cannot_leave_the_upstream_base() {
    let eu = spawn("eu", "v1").await;
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.upstreams = vec![format!("eu=http://{}/echo", eu.addr()).parse().unwrap()];
    let us = spawn_with(cfg).await;
    for path in [
        "/call/eu/../../metrics",
        "/call/eu/%2e%2e/metrics",
        "/call/eu/./x",
        "/call/eu/%2E%2e",
        // The URL parser reads a backslash as a slash in http URLs.
        "/call/eu/..\\..\\metrics",
        "/call/eu/%2e%2e\\%2e%2e\\metrics",
        "/call/eu/x/..%5c..%5cmetrics",
    ] {
        let answer = raw_exchange(
            us.addr(),
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains(". or .. segments"), "{path}: {answer}");
    }
    // Ordinary sub-paths stay under the base: /call/eu/x asks for /echo/x.
    let r = client()
        .get(url(us.addr(), "/call/eu/x"))
        .send()
        .await
        .unwrap();
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["url"], format!("http://{}/echo/x", eu.addr()));
    us.shutdown().await.unwrap();
    eu.shutdown().await.unwrap();
}

#[tokio::test]
async fn clients_cannot_mint_metric_series() {
    let e = spawn("us", "v1").await;
    let c = client();
    for code in 200..600u16 {
        let _ = c
            .get(url(e.addr(), &format!("/?status={code}")))
            .send()
            .await
            .unwrap();
    }
    let text = get_text(&c, url(e.addr(), "/metrics")).await;
    let mut values = std::collections::BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
    {
        let status = line
            .split("status=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        values.insert(status.to_string());
    }
    // 400 distinct codes became at most the fixed list plus the four classes.
    assert!(values.len() <= 30, "{values:?}");
    assert!(values.contains("503") && values.contains("5xx") && values.contains("4xx"));
    assert!(text.len() < 200_000, "/metrics is {} bytes", text.len());
    e.shutdown().await.unwrap();
}

#[tokio::test]
async fn injected_headers_are_only_harmless_ones() {
    let e = spawn("us", "v1").await;
    let c = client();
    for bad in [
        "status=302&header=Location:https://evil.example/",
        "header=Set-Cookie:session=fixed",
        "header=Content-Type:text/html",
        "header=content-encoding:gzip",
        "header=x-echo-region:eu",
        "header=Access-Control-Allow-Origin:*",
    ] {
        let r = c
            .get(url(e.addr(), &format!("/?{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(
            r.text().await.unwrap().contains("may not be injected"),
            "{bad}"
        );
    }
    let r = c
        .post(url(e.addr(), "/echo?header=Content-Type:text/html"))
        .body("<script>alert(1)</script>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .get(url(
            e.addr(),
            "/?header=x-trace:1&header=cache-control:no-store&header=retry-after:3",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-trace"], "1");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_identity(&r, "us", "v1");
    e.shutdown().await.unwrap();
}

#[tokio::test]
async fn absurd_delays_and_stalls_are_refused_not_fatal() {
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.max_delay = Duration::from_secs(7200);
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("--max-delay must be at most 1h"));
    let e = spawn("us", "v1").await;
    let c = client();
    for q in ["for=18446744073709551615s", "for=9999999999h", "for=31s"] {
        let r = c
            .post(url(e.addr(), &format!("/stall?{q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{q}");
    }
    let r = c
        .get(url(e.addr(), "/?delay=99999999h"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Still serving.
    assert_eq!(
        c.get(url(e.addr(), "/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    e.shutdown().await.unwrap();
}

#[test]
fn the_binary_refuses_a_max_delay_over_an_hour() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_echo-svc"))
        .args(["--max-delay", "100000h", "--port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-delay must be at most 1h"));
}

#[test]
fn a_full_stderr_does_not_kill_the_server() {
    use std::process::{Command, Stdio};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_echo-svc"))
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--log-level",
            "debug",
        ])
        .args(["--drain-delay", "0s"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(full))
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut served = 0;
    while Instant::now() < deadline && served < 50 {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            // Malformed requests make the server log at debug level: every line fails.
            let _ = s.write_all(b"GARBAGE\r\n\r\n");
            let _ = std::net::TcpStream::connect(addr).and_then(|mut s| {
                s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")?;
                let mut out = String::new();
                std::io::Read::read_to_string(&mut s, &mut out)?;
                if out.starts_with("HTTP/1.1 200") {
                    served += 1;
                }
                Ok(())
            });
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(served, 50, "the server stopped answering");
    assert!(
        child.try_wait().unwrap().is_none(),
        "echo-svc exited with stderr on /dev/full"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}
