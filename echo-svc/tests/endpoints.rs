//! Every endpoint over real sockets, with the identity headers checked on every response.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[tokio::test]
async fn root_answers_text_and_json_identity() {
    let h = spawn("eu", "v2").await;
    let c = client();

    let resp = c.get(url(h.addr(), "/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_identity(&resp, "eu", "v2");
    assert_eq!(
        resp.text().await.unwrap(),
        "region=eu version=v2 pod=eu-v2\n"
    );

    let resp = c
        .get(url(h.addr(), "/"))
        .header("accept", "text/html, application/json;q=0.9")
        .send()
        .await
        .unwrap();
    assert_identity(&resp, "eu", "v2");
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = resp.json().await.unwrap();
    for (k, v) in [
        ("service", "echo"),
        ("region", "eu"),
        ("version", "v2"),
        ("pod", "eu-v2"),
        ("zone", ""),
        ("node", ""),
        ("namespace", ""),
    ] {
        assert_eq!(doc[k], v, "field {k} in {doc}");
    }
    assert!(doc["build"].is_string());
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn identity_headers_on_every_route_and_error() {
    let h = spawn("us", "v1").await;
    let c = client();
    let cases: &[(&str, &str, u16)] = &[
        ("GET", "/", 200),
        ("HEAD", "/", 200),
        ("GET", "/healthz", 200),
        ("GET", "/readyz", 200),
        ("GET", "/health", 200),
        ("GET", "/version", 200),
        ("GET", "/identity", 200),
        ("GET", "/fault", 200),
        ("GET", "/metrics", 200),
        ("POST", "/echo", 200),
        ("PUT", "/echo", 200),
        ("GET", "/call/nowhere", 404),
        ("GET", "/no/such/path", 404),
        ("POST", "/", 405),
        ("GET", "/readyz/enable", 405),
        ("GET", "/?delay=nonsense", 400),
        ("GET", "/?status=503", 503),
        ("POST", "/readyz/disable", 200),
        ("POST", "/readyz/enable", 200),
        ("POST", "/fault/enable", 200),
        ("GET", "/", 500),
        ("POST", "/fault/disable", 200),
        ("POST", "/stall?for=0s", 200),
        ("POST", "/stall", 400),
    ];
    for (method, path, status) in cases {
        let resp = c
            .request(method.parse().unwrap(), url(h.addr(), path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), *status, "{method} {path}");
        assert_identity(&resp, "us", "v1");
    }
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn probes_and_version() {
    let h = spawn("us", "v1").await;
    let c = client();
    for path in ["/healthz", "/health", "/readyz"] {
        let resp = c.get(url(h.addr(), path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let v = get_json(&c, url(h.addr(), "/version")).await;
    assert_eq!(v["version"], "v1");
    assert_eq!(v["build"], env!("CARGO_PKG_VERSION"));
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn readiness_toggle() {
    let h = spawn("us", "v1").await;
    let c = client();
    let ready = |c: reqwest::Client, addr| async move {
        c.get(url(addr, "/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ready(c.clone(), h.addr()).await, 200);
    let r = c
        .post(url(h.addr(), "/readyz/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(ready(c.clone(), h.addr()).await, 503);
    // Liveness is unaffected, and so is traffic.
    let r = c.get(url(h.addr(), "/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(url(h.addr(), "/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    c.post(url(h.addr(), "/readyz/enable"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready(c.clone(), h.addr()).await, 200);
    // The library handle flips the same switch.
    h.set_ready(false);
    assert_eq!(ready(c.clone(), h.addr()).await, 503);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn fault_switch_fails_workload_routes_but_not_probes() {
    let h = spawn("us", "v1").await;
    let c = client();
    let r: Value = c
        .post(url(h.addr(), "/fault/enable"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["fault_switch"], true);
    for path in ["/", "/version", "/identity", "/echo", "/call/x"] {
        let resp = c.get(url(h.addr(), path)).send().await.unwrap();
        assert_eq!(resp.status(), 500, "{path}");
        assert_identity(&resp, "us", "v1");
    }
    for path in ["/healthz", "/readyz", "/health", "/metrics", "/fault"] {
        let resp = c.get(url(h.addr(), path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let r = get_json(&c, url(h.addr(), "/fault")).await;
    assert_eq!(r["fault_switch"], true);
    c.post(url(h.addr(), "/fault/disable"))
        .send()
        .await
        .unwrap();
    let resp = c.get(url(h.addr(), "/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn admin_port_serves_toggles_and_main_port_refuses_them() {
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.admin_port = Some(0);
    let h = spawn_with(cfg).await;
    let admin = h.admin_addr().expect("admin listener");
    assert_ne!(admin, h.addr());
    let c = client();
    for path in [
        "/readyz/disable",
        "/readyz/enable",
        "/fault/enable",
        "/fault/disable",
        "/stall?for=0s",
    ] {
        let resp = c.post(url(h.addr(), path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "main port {path}");
        assert_identity(&resp, "us", "v1");
    }
    let resp = c.post(url(admin, "/readyz/disable")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // The toggle acts on the whole instance: main-port readiness now fails.
    let resp = c.get(url(h.addr(), "/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    // Normal routes still work on the main port.
    let resp = c.get(url(h.addr(), "/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn toggles_disabled_by_configuration() {
    for admin_port in [None, Some(0)] {
        let mut cfg = echo_svc::Config::local("us", "v1");
        cfg.enable_toggles = false;
        cfg.admin_port = admin_port;
        let h = spawn_with(cfg).await;
        let c = client();
        let mut addrs = vec![h.addr()];
        addrs.extend(h.admin_addr());
        for addr in addrs {
            for path in ["/readyz/disable", "/fault/enable", "/stall?for=1s"] {
                let resp = c.post(url(addr, path)).send().await.unwrap();
                assert_eq!(resp.status(), 403, "{addr} {path}");
                assert_identity(&resp, "us", "v1");
            }
        }
        let resp = c.get(url(h.addr(), "/readyz")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let resp = c.get(url(h.addr(), "/")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        h.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn echo_reflects_the_request() {
    let h = spawn("us", "v1").await;
    let c = client();
    let resp = c
        .put(url(h.addr(), "/echo?a=1&b=two"))
        .header("x-custom", "hello")
        .body("payload text")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_identity(&resp, "us", "v1");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["method"], "PUT");
    assert_eq!(doc["path"], "/echo");
    assert_eq!(doc["query"], "a=1&b=two");
    assert_eq!(doc["headers"]["x-custom"], "hello");
    assert_eq!(doc["body"], "payload text");
    assert_eq!(doc["body_bytes"], 12);
    assert_eq!(doc["region"], "us");

    let resp = c
        .post(url(h.addr(), "/echo"))
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["body_base64"], "//4A");
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn echo_accepts_a_body_at_the_default_cap() {
    let h = spawn("us", "v1").await;
    let c = client();
    let body = vec![b'z'; 1_048_576];
    let resp = c
        .post(url(h.addr(), "/echo"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["body_bytes"], 1_048_576);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn echo_body_over_the_cap_is_413() {
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.max_body_bytes = 1000;
    let h = spawn_with(cfg).await;
    let c = client();
    // Exactly at the cap is fine.
    let resp = c
        .post(url(h.addr(), "/echo"))
        .body(vec![b'a'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Declared length over the cap.
    let resp = c
        .post(url(h.addr(), "/echo"))
        .body(vec![b'a'; 1001])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_identity(&resp, "us", "v1");
    assert!(resp.text().await.unwrap().contains("1000 bytes"));
    // Chunked (no declared length) over the cap, over a raw socket.
    let mut req = b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..10 {
        req.extend_from_slice(b"1f4\r\n");
        req.extend_from_slice(&[b'b'; 500]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_exchange(h.addr(), &req).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("x-echo-region: us"), "{answer}");
    // The server is fine afterwards.
    let resp = c.get(url(h.addr(), "/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn identity_endpoint_reports_mechanism_without_tokens() {
    let dir = std::env::temp_dir().join(format!("echo-svc-identity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "SECRET-TOKEN-CONTENT").unwrap();
    let token_path = token_file.to_str().unwrap().to_owned();

    let c = client();
    // None.
    let h = spawn("us", "v1").await;
    let doc = get_json(&c, url(h.addr(), "/identity")).await;
    assert_eq!(doc["cloud_identity"]["mechanism"], "none");
    assert_eq!(doc["region"], "us");
    h.shutdown().await.unwrap();

    // IRSA.
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.aws_role_arn = Some("arn:aws:iam::123456789012:role/echo".into());
    cfg.aws_web_identity_token_file = Some(token_path.clone());
    let h = spawn_with(cfg).await;
    let text = get_text(&c, url(h.addr(), "/identity")).await;
    assert!(!text.contains("SECRET-TOKEN-CONTENT"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["cloud_identity"]["mechanism"], "irsa");
    assert_eq!(
        doc["cloud_identity"]["role_arn"],
        "arn:aws:iam::123456789012:role/echo"
    );
    assert_eq!(doc["cloud_identity"]["token_file_present"], true);
    h.shutdown().await.unwrap();

    // EKS Pod Identity.
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.aws_container_credentials_full_uri = Some("http://169.254.170.23/v1/credentials".into());
    cfg.aws_container_authorization_token_file = Some(token_path);
    let h = spawn_with(cfg).await;
    let text = get_text(&c, url(h.addr(), "/identity")).await;
    assert!(!text.contains("SECRET-TOKEN-CONTENT"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["cloud_identity"]["mechanism"], "eks-pod-identity");
    h.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn metrics_use_podinfo_names_and_route_templates() {
    let h = spawn("eu", "v2").await;
    let c = client();
    for _ in 0..3 {
        c.get(url(h.addr(), "/")).send().await.unwrap();
    }
    c.get(url(h.addr(), "/call/some-name"))
        .send()
        .await
        .unwrap();
    c.get(url(h.addr(), "/random/path/123"))
        .send()
        .await
        .unwrap();
    c.get(url(h.addr(), "/?status=503")).send().await.unwrap();
    let resp = c.get(url(h.addr(), "/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_identity(&resp, "eu", "v2");
    let text = resp.text().await.unwrap();
    assert_eq!(
        metric(
            &text,
            r#"http_requests_total{method="GET",route="/",status="200"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"http_requests_total{method="GET",route="/",status="503"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"http_requests_total{method="GET",route="/call/{name}",status="404"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        Some(1.0)
    );
    assert!(
        !text.contains("/random/path"),
        "raw path leaked into labels"
    );
    assert_eq!(
        metric(
            &text,
            r#"http_request_duration_seconds_count{method="GET",route="/",status="200"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/",status="200"}"#
        ),
        Some(3.0)
    );
    // The /metrics request itself is in flight while rendering.
    assert_eq!(metric(&text, "http_requests_in_flight"), Some(1.0));
    assert_eq!(
        metric(&text, r#"echo_faults_injected_total{kind="status"}"#),
        Some(1.0)
    );
    assert!(
        text.contains(r#"echo_build_info{version="v2",region="eu""#),
        "{text}"
    );
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn stall_holds_requests_until_it_ends() {
    let h = spawn("us", "v1").await;
    let c = client();
    let stall = Duration::from_millis(1000);
    let before_stall = Instant::now();
    let resp = c
        .post(url(h.addr(), "/stall?for=1000ms"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let c = c.clone();
        let u = url(h.addr(), "/");
        tasks.push(tokio::spawn(async move {
            let r = c.get(u).send().await.unwrap();
            (r.status().as_u16(), Instant::now())
        }));
    }
    // Metrics are not held, so the stall can be observed while it lasts.
    let r = c.get(url(h.addr(), "/fault")).send().await.unwrap();
    let doc: Value = r.json().await.unwrap();
    assert!(doc["stall_remaining_ms"].as_u64().unwrap() > 0 || started.elapsed() >= stall);
    for t in tasks {
        let (status, done) = t.await.unwrap();
        assert_eq!(status, 200);
        // Every request was held until the stall ended; it began after `before_stall`.
        assert!(
            done.duration_since(before_stall) + Duration::from_millis(5) >= stall,
            "released after {:?}",
            done.duration_since(before_stall)
        );
    }
    // Afterwards requests flow freely; the held ones were counted.
    let resp = c.get(url(h.addr(), "/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = get_text(&c, url(h.addr(), "/metrics")).await;
    assert_eq!(
        metric(&text, r#"echo_faults_injected_total{kind="stall"}"#),
        Some(5.0)
    );
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn stall_parameter_errors_name_for() {
    let h = spawn("us", "v1").await;
    let c = client();
    for q in ["/stall", "/stall?for=soon", "/stall?for=1h"] {
        let resp = c.post(url(h.addr(), q)).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{q}");
        assert!(resp.text().await.unwrap().contains("`for`"));
    }
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn handle_stall_and_fault_switch_programmatically() {
    let h = spawn("us", "v1").await;
    let c = client();
    h.set_fault_switch(true);
    assert_eq!(
        c.get(url(h.addr(), "/")).send().await.unwrap().status(),
        500
    );
    h.set_fault_switch(false);
    h.stall(Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(
        c.get(url(h.addr(), "/")).send().await.unwrap().status(),
        200
    );
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    h.shutdown().await.unwrap();
}
