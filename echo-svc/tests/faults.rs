//! Fault parameters over real sockets: each parameter, weighted distributions over many
//! requests, caps and 400s, and server-wide defaults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Send `n` GETs for `path` with a few concurrent workers; returns (status, x-echo-faults,
/// elapsed) per request.
async fn burst(addr: std::net::SocketAddr, path: &str, n: usize) -> Vec<(u16, String, Duration)> {
    let c = client();
    let workers = 8;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let c = c.clone();
        let u = url(addr, path);
        let count = n / workers + usize::from(w < n % workers);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(count);
            for _ in 0..count {
                let t = Instant::now();
                let r = c.get(&u).send().await.unwrap();
                let status = r.status().as_u16();
                let faults = r
                    .headers()
                    .get("x-echo-faults")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                assert!(r.headers().contains_key("x-echo-region"));
                r.bytes().await.unwrap();
                out.push((status, faults, t.elapsed()));
            }
            out
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), n);
    all
}

#[tokio::test]
async fn status_distribution_matches_weights() {
    let h = spawn("us", "v1").await;
    let n = 2000;
    let results = burst(h.addr(), "/?status=503:20,429:10", n).await;
    let c503 = results.iter().filter(|r| r.0 == 503).count();
    let c429 = results.iter().filter(|r| r.0 == 429).count();
    let c200 = results.iter().filter(|r| r.0 == 200).count();
    assert_eq!(c503 + c429 + c200, n);
    assert_binomial("503", c503, n, 0.20);
    assert_binomial("429", c429, n, 0.10);
    assert_binomial("200", c200, n, 0.70);
    // The header tells the truth about each response.
    for (status, faults, _) in &results {
        match status {
            200 => assert!(faults.is_empty(), "{faults}"),
            s => assert_eq!(faults, &format!("status={s}")),
        }
    }
    let metrics = client()
        .get(url(h.addr(), "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(&metrics, r#"echo_faults_injected_total{kind="status"}"#),
        Some((c503 + c429) as f64)
    );
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn delay_distribution_matches_weights_and_delays_are_real() {
    let h = spawn("us", "v1").await;
    let n = 2000;
    let results = burst(h.addr(), "/?delay=1ms:60,20ms:10", n).await;
    let mut d1 = 0;
    let mut d20 = 0;
    for (status, faults, elapsed) in &results {
        assert_eq!(*status, 200);
        match faults.as_str() {
            "delay=1ms" => {
                d1 += 1;
                assert!(*elapsed >= Duration::from_millis(1), "{elapsed:?}");
            }
            "delay=20ms" => {
                d20 += 1;
                assert!(*elapsed >= Duration::from_millis(20), "{elapsed:?}");
            }
            "" => {}
            other => panic!("unexpected faults header {other}"),
        }
    }
    assert_binomial("1ms", d1, n, 0.60);
    assert_binomial("20ms", d20, n, 0.10);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn size_replaces_the_body() {
    let h = spawn("us", "v1").await;
    let c = client();
    for size in [0u64, 1, 1024, 100_000] {
        let r = c
            .get(url(h.addr(), &format!("/?size={size}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_identity(&r, "us", "v1");
        assert_eq!(r.content_length(), Some(size));
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len() as u64, size);
    }
    // Weighted sizes.
    let results = burst(h.addr(), "/?size=10:50,20:50", 400).await;
    let tens = results.iter().filter(|r| r.1 == "size=10").count();
    let twenties = results.iter().filter(|r| r.1 == "size=20").count();
    assert_eq!(tens + twenties, 400);
    assert_binomial("size=10", tens, 400, 0.5);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn close_ends_the_connection() {
    let h = spawn("us", "v1").await;
    // Two pipelined requests on one connection: with close=true the server answers the first
    // and closes, so the second is never answered.
    let answer = raw_exchange(
        h.addr(),
        b"GET /?close=true HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 1, "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    // Without it, both are answered (the second closes on request).
    let answer = raw_exchange(
        h.addr(),
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn header_adds_response_headers() {
    let h = spawn("us", "v1").await;
    let c = client();
    let r = c
        .get(url(h.addr(), "/?header=X-One:1&header=X-Two:two%20words"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-one"], "1");
    assert_eq!(r.headers()["x-two"], "two words");
    assert_identity(&r, "us", "v1");
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_parameters_get_400_naming_them() {
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.max_delay = Duration::from_secs(2);
    cfg.max_size = 1000;
    let h = spawn_with(cfg).await;
    let c = client();
    for (query, param) in [
        ("delay=forever", "delay"),
        ("delay=3s", "delay"),
        ("delay=1ms:70,2ms:40", "delay"),
        ("delay=1ms:abc", "delay"),
        ("status=99", "status"),
        ("status=abc", "status"),
        ("size=1001", "size"),
        ("size=-5", "size"),
        ("close=yes", "close"),
        ("header=NoColon", "header"),
        ("header=x-echo-region:eu", "header"),
        ("header=bad%20name:v", "header"),
    ] {
        let r = c
            .get(url(h.addr(), &format!("/?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        assert_identity(&r, "us", "v1");
        let body = r.text().await.unwrap();
        assert!(body.contains(&format!("`{param}`")), "{query}: {body}");
    }
    // Unrelated parameters are ignored.
    let r = c.get(url(h.addr(), "/?utm=1&x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn server_wide_defaults_apply_to_workload_routes_and_requests_override() {
    let mut cfg = echo_svc::Config::local("eu", "v1");
    cfg.faults = "delay=40ms&header=X-Default:yes".parse().unwrap();
    let h = spawn_with(cfg).await;
    let c = client();

    let t = Instant::now();
    let r = c.get(url(h.addr(), "/")).send().await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(40),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(r.headers()["x-echo-faults"], "delay=40ms");
    assert_eq!(r.headers()["x-default"], "yes");

    // A request parameter replaces the default for that parameter only.
    let r = c
        .get(url(h.addr(), "/?delay=0ms&status=418"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 418);
    assert_eq!(r.headers()["x-echo-faults"], "delay=0s,status=418");
    assert_eq!(r.headers()["x-default"], "yes");

    // Probes and metrics are not slowed by defaults.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = c.get(url(h.addr(), path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("x-echo-faults").is_none(), "{path}");
    }
    let fault: serde_json::Value = c
        .get(url(h.addr(), "/fault"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fault["default_faults"], "delay=40ms&header=x-default:yes");
    h.shutdown().await.unwrap();
}

#[test]
fn defaults_over_the_caps_are_rejected_at_spawn() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.faults = "size=2000".parse().unwrap();
    cfg.max_size = 1000;
    let err = rt.block_on(echo_svc::spawn(cfg)).unwrap_err();
    assert!(format!("{err:#}").contains("`size`"), "{err:#}");
}

#[tokio::test]
async fn faults_work_over_h2c() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let h = spawn("us", "v1").await;
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let uri: http::Uri = url(h.addr(), "/?status=503&close=true").parse().unwrap();
    let resp = client.get(uri).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["x-echo-region"], "us");
    // close does not apply to HTTP/2 (connection headers are illegal there).
    assert_eq!(resp.headers()["x-echo-faults"], "status=503");
    let uri: http::Uri = url(h.addr(), "/").parse().unwrap();
    let resp = client.get(uri).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"region=us version=v1 pod=us-v1\n");
    h.shutdown().await.unwrap();
}
