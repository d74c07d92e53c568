//! `/call/{name}`: forwarding to a second instance, nested hops, header propagation, and
//! unreachable or slow upstreams.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn upstream(name: &str, addr: std::net::SocketAddr) -> echo_svc::Upstream {
    format!("{name}=http://{addr}").parse().unwrap()
}

#[tokio::test]
async fn call_forwards_and_reports_the_hop_chain() {
    let eu = spawn("eu", "v2").await;
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.upstreams = vec![upstream("eu", eu.addr())];
    let us = spawn_with(cfg).await;
    let c = client();

    let r = c
        .get(url(us.addr(), "/call/eu"))
        .header("x-request-id", "req-123")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_identity(&r, "us", "v1");
    assert_eq!(r.headers()["x-request-id"], "req-123");
    let doc: Value = r.json().await.unwrap();
    let hops = doc["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 2, "{doc}");
    assert_eq!(hops[0]["region"], "us");
    assert_eq!(hops[0]["version"], "v1");
    assert_eq!(hops[1]["region"], "eu");
    assert_eq!(hops[1]["version"], "v2");
    assert_eq!(hops[1]["pod"], "eu-v2");
    assert_eq!(hops[1]["status"], 200);
    assert_eq!(doc["request_id"], "req-123");

    // The rest of the path is forwarded: /call/eu/echo asks eu for /echo.
    let r = c.get(url(us.addr(), "/call/eu/echo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["url"], format!("http://{}/echo", eu.addr()));
    assert_eq!(doc["hops"][1]["region"], "eu");
    eu.shutdown().await.unwrap();
    us.shutdown().await.unwrap();
}

#[tokio::test]
async fn upstream_base_path_and_generated_request_id() {
    // The upstream's base URL may carry a path.
    let eu = spawn("eu", "v2").await;
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.upstreams = vec![format!("eu=http://{}/echo", eu.addr()).parse().unwrap()];
    let us = spawn_with(cfg).await;
    let c = client();
    let r = c
        .get(url(us.addr(), "/call/eu"))
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // No x-request-id was sent, so one was generated and returned.
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(rid.len(), 32, "{rid}");
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["url"], format!("http://{}/echo", eu.addr()));
    let eu_metrics = get_text(&c, url(eu.addr(), "/metrics")).await;
    assert_eq!(
        metric(
            &eu_metrics,
            r#"http_requests_total{method="GET",route="/echo",status="200"}"#
        ),
        Some(1.0)
    );
    eu.shutdown().await.unwrap();
    us.shutdown().await.unwrap();
}

#[tokio::test]
async fn upstream_sees_propagated_headers() {
    // A tiny loopback listener that records the request head it receives.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorder = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-echo-region: fake\r\nconnection: close\r\n\r\nok")
            .await
            .unwrap();
        String::from_utf8(buf).unwrap().to_lowercase()
    });
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.upstreams = vec![upstream("rec", addr)];
    let us = spawn_with(cfg).await;
    let r = client()
        .get(url(us.addr(), "/call/rec/some/path"))
        .header("x-request-id", "abc")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("tracestate", "k=v")
        .header("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-1")
        .header("x-b3-traceid", "80f198ee56343ba8")
        .header("x-b3-spanid", "e457b5a2e4d86bd1")
        .header("x-b3-sampled", "1")
        .header("x-not-propagated", "no")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let head = recorder.await.unwrap();
    assert!(head.starts_with("get /some/path http/1.1"), "{head}");
    for h in [
        "x-request-id: abc",
        "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate: k=v",
        "b3: 80f198ee56343ba8-e457b5a2e4d86bd1-1",
        "x-b3-traceid: 80f198ee56343ba8",
        "x-b3-spanid: e457b5a2e4d86bd1",
        "x-b3-sampled: 1",
    ] {
        assert!(head.contains(h), "missing {h} in {head}");
    }
    assert!(!head.contains("x-not-propagated"), "{head}");
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["hops"][1]["region"], "fake");
    us.shutdown().await.unwrap();
}

#[tokio::test]
async fn nested_calls_show_every_hop() {
    let us2 = spawn("us", "v2").await;
    let mut cfg = echo_svc::Config::local("eu", "v1");
    cfg.upstreams = vec![upstream("us2", us2.addr())];
    let eu = spawn_with(cfg).await;
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.upstreams = vec![upstream("eu", eu.addr())];
    let us = spawn_with(cfg).await;

    let r = client()
        .get(url(us.addr(), "/call/eu/call/us2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    let chain: Vec<(String, String)> = doc["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["region"].as_str().unwrap().to_owned(),
                h["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        chain,
        vec![
            ("us".to_owned(), "v1".to_owned()),
            ("eu".to_owned(), "v1".to_owned()),
            ("us".to_owned(), "v2".to_owned())
        ],
        "{doc}"
    );
    for h in [us, eu, us2] {
        h.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn only_allow_listed_upstreams() {
    let h = spawn("us", "v1").await;
    let r = client()
        .get(url(h.addr(), "/call/example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_identity(&r, "us", "v1");
    let doc: Value = r.json().await.unwrap();
    assert!(doc["error"].as_str().unwrap().contains("allow-list"));
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let dead = closed_port().await;
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.upstreams = vec![upstream("gone", dead)];
    let h = spawn_with(cfg).await;
    let r = client()
        .get(url(h.addr(), "/call/gone"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_identity(&r, "us", "v1");
    let doc: Value = r.json().await.unwrap();
    let err = doc["error"].as_str().unwrap();
    assert!(err.contains("gone"), "{err}");
    assert_eq!(doc["hops"][0]["region"], "us");
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let mut slow_cfg = echo_svc::Config::local("eu", "v1");
    slow_cfg.faults = "delay=3s".parse().unwrap();
    let slow = spawn_with(slow_cfg).await;
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.upstreams = vec![upstream("slow", slow.addr())];
    cfg.upstream_timeout = Duration::from_millis(200);
    let h = spawn_with(cfg).await;
    let r = client()
        .get(url(h.addr(), "/call/slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_identity(&r, "us", "v1");
    let doc: Value = r.json().await.unwrap();
    assert!(doc["error"].as_str().unwrap().contains("200ms"), "{doc}");
    h.shutdown().await.unwrap();
    slow.shutdown().await.unwrap();
}

#[tokio::test]
async fn upstream_server_error_is_502_with_the_chain() {
    let eu = spawn("eu", "v1").await;
    eu.set_fault_switch(true);
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.upstreams = vec![upstream("eu", eu.addr())];
    let us = spawn_with(cfg).await;
    let r = client()
        .get(url(us.addr(), "/call/eu"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["upstream_status"], 500);
    assert_eq!(doc["hops"][1]["region"], "eu");
    assert_eq!(doc["hops"][1]["status"], 500);
    us.shutdown().await.unwrap();
    eu.shutdown().await.unwrap();
}
