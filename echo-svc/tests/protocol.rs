//! Protocol safety over raw sockets: malformed requests, oversized headers, slowloris, h2c and
//! keep-alive. After each abuse the server must still answer normally.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one small `GET /` answer from us-v1 (up to the end of its body) on a kept-alive
/// connection; `closed` is the failure message if the server closes it first.
async fn read_answer(s: &mut TcpStream, closed: &str) -> String {
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).ends_with("pod=us-v1\n") {
        let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "{closed}");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

async fn still_serving(addr: std::net::SocketAddr) {
    let r = client().get(url(addr, "/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn malformed_requests_get_errors_and_the_server_survives() {
    let h = spawn("us", "v1").await;
    let garbage: &[&[u8]] = &[
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /\x01\x02 HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header line\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: nope\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"\x00\x01\x02\x03\xff\xfe\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x09garbage",
    ];
    for req in garbage {
        let answer = raw_exchange(h.addr(), req).await;
        // Either an HTTP/1 client error or (for a broken HTTP/2 stream) frames ending in
        // GOAWAY; in every case the connection is closed, which raw_exchange waits for.
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4") || req.starts_with(b"PRI"),
            "{:?} -> {answer}",
            String::from_utf8_lossy(req)
        );
        still_serving(h.addr()).await;
    }
    // A request cut off mid-headers, then the client leaves.
    {
        let mut s = TcpStream::connect(h.addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nx-half")
            .await
            .unwrap();
    }
    still_serving(h.addr()).await;
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let h = spawn("us", "v1").await;
    let mut req = b"GET / HTTP/1.1\r\nhost: x\r\nx-big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', echo_svc::MAX_HEADER_BYTES + 1024));
    req.extend_from_slice(b"\r\n\r\n");
    let answer = raw_exchange(h.addr(), &req).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    let mut req = b"GET / HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..(echo_svc::MAX_HEADERS + 10) {
        req.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let answer = raw_exchange(h.addr(), &req).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    still_serving(h.addr()).await;
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn slow_or_silent_clients_are_disconnected() {
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.header_read_timeout = Duration::from_millis(300);
    let h = spawn_with(cfg).await;

    // Silent: connects and sends nothing.
    let t = Instant::now();
    let mut silent = TcpStream::connect(h.addr()).await.unwrap();
    let _ = read_until_close(&mut silent).await;
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );

    // Slowloris: starts the headers and never finishes them.
    let mut slow = TcpStream::connect(h.addr()).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let answer = read_until_close(&mut slow).await;
    assert!(!answer.contains("200 OK"), "{answer}");

    // A partial HTTP/2 preface.
    let mut partial = TcpStream::connect(h.addr()).await.unwrap();
    partial.write_all(b"PRI * HT").await.unwrap();
    let _ = read_until_close(&mut partial).await;

    still_serving(h.addr()).await;
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_keep_alive_connection_is_held_to_the_deadline_for_its_next_head_only() {
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.header_read_timeout = Duration::from_millis(300);
    // Every workload answer takes twice the header deadline.
    cfg.faults = "delay=600ms".parse().unwrap();
    let h = spawn_with(cfg).await;

    // A request in service longer than the deadline is answered, and its connection then
    // gets the deadline again for the next head: half a head is cut off.
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let text = read_answer(&mut s, "closed while the request was in service").await;
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let t = Instant::now();
    let answer = tokio::time::timeout(DEADLINE, read_until_close(&mut s))
        .await
        .expect("the half head is cut off");
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );

    // A request body that trickles in slower than the deadline is not cut off.
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nab")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await; // the slow client itself
    s.write_all(b"cd").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection() {
    let h = spawn("us", "v1").await;
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    for i in 0..50 {
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let text = read_answer(&mut s, &format!("connection closed after {i} requests")).await;
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(text.contains("x-echo-region: us"));
    }
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections() {
    let h = spawn("us", "v1").await;
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(n > 0);
    // The connection is idle and kept alive; a graceful shutdown must close it rather than
    // wait the full shutdown timeout (5 s in the local config).
    let t = Instant::now();
    h.shutdown().await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let rest = read_until_close(&mut s).await;
    assert!(rest.is_empty(), "{rest}");
}
