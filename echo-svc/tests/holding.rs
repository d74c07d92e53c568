//! Clients that hold what others need, over real sockets: `/echo`'s body budget against an
//! HTTP/2 connection that never reads and HTTP/1 bodies trickled a byte at a time; h2c
//! connections kept by PINGs or left idle; `Expect: 100-continue` against the head deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// An h2c connection whose peer grants no window: the server can send headers, never data.
/// The connection task keeps running (answering PINGs) until it ends; its handle says when.
async fn h2c_zero_window(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(tcp)
        .await
        .unwrap();
    (send, tokio::spawn(conn))
}

async fn h2c(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    (send, tokio::spawn(conn))
}

/// Sends `POST /echo` with `body` on an h2 connection; returns the answer's status.
async fn h2_post(send: h2::client::SendRequest<Bytes>, body: Bytes) -> (u16, h2::RecvStream) {
    let mut send = send.ready().await.unwrap();
    let req = http::Request::post("http://x/echo").body(()).unwrap();
    let (resp, mut stream) = send.send_request(req, false).unwrap();
    stream.reserve_capacity(body.len());
    stream.send_data(body, true).unwrap();
    let resp = tokio::time::timeout(DEADLINE, resp)
        .await
        .expect("an answer's head")
        .unwrap();
    let (parts, body) = resp.into_parts();
    (parts.status.as_u16(), body)
}

async fn post_status(addr: SocketAddr, body: Vec<u8>) -> u16 {
    let r = client()
        .post(url(addr, "/echo"))
        .body(body)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test]
async fn one_connection_that_never_reads_cannot_take_the_body_budget() {
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.max_body_bytes = 64 * 1024;
    cfg.max_body_requests = 32;
    cfg.body_read_timeout = Duration::from_secs(4);
    let e = spawn_with(cfg).await;
    let (send, conn) = h2c_zero_window(e.addr()).await;
    // 32 streams of a full body each, answers never read (their data needs a window).
    let posts = (0..32).map(|_| h2_post(send.clone(), Bytes::from(vec![b'h'; 64 * 1024])));
    let held: Vec<(u16, h2::RecvStream)> = futures_join_all(posts).await;
    let taken = held.iter().filter(|(s, _)| *s == 200).count();
    assert!(
        taken < 32,
        "one connection was given every body: {taken} of 32 answered 200"
    );
    // Everyone else still gets a full body echoed, over HTTP/1, while those answers sit.
    let mut others = Vec::new();
    for _ in 0..4 {
        others.push(post_status(e.addr(), vec![b'o'; 64 * 1024]).await);
    }
    eprintln!("zero-window connection: {taken}/32 streams answered 200; others got {others:?}");
    assert!(others.iter().all(|s| *s == 200), "{others:?}");
    // The unread answers' connection is closed once their send deadline passes.
    let start = Instant::now();
    let ended = tokio::time::timeout(DEADLINE, conn).await;
    assert!(
        ended.is_ok(),
        "the connection holding unread answers was still open after {:?}",
        start.elapsed()
    );
    drop(held);
    e.shutdown().await.unwrap();
}

/// Awaits all of `futs` concurrently (the h2 streams must be open at the same time).
async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn bodies_trickled_a_byte_at_a_time_hold_a_byte_each() {
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.max_body_requests = 32;
    cfg.body_read_timeout = Duration::from_secs(60);
    let e = spawn_with(cfg).await;
    let mut tricklers = Vec::new();
    for _ in 0..32 {
        let mut s = TcpStream::connect(e.addr()).await.unwrap();
        s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\na")
            .await
            .unwrap();
        tricklers.push(s);
    }
    let c = client();
    wait_for("32 trickled bodies in service", DEADLINE, || async {
        let text = get_text(&c, url(e.addr(), "/metrics")).await;
        let n = metric(&text, "http_requests_in_flight").unwrap_or(0.0);
        (n >= 33.0).then_some(())
    })
    .await;
    let mut others = Vec::new();
    for _ in 0..8 {
        others.push(post_status(e.addr(), b"legitimate".to_vec()).await);
    }
    eprintln!("32 trickled bodies: others got {others:?}");
    assert!(others.iter().all(|s| *s == 200), "{others:?}");
    drop(tricklers);
    e.shutdown().await.unwrap();
}

/// Whether the server closes `conn` within `within`.
async fn closed_within(
    conn: tokio::task::JoinHandle<Result<(), h2::Error>>,
    within: Duration,
) -> bool {
    tokio::time::timeout(within, conn).await.is_ok()
}

#[tokio::test]
async fn h2c_connections_without_a_request_are_closed_pings_or_not() {
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.header_read_timeout = Duration::from_millis(300);
    let e = spawn_with(cfg).await;

    // A preface and PINGs, never a request.
    let (_send, conn) = h2c(e.addr()).await;
    let pinger = {
        let tcp = TcpStream::connect(e.addr()).await.unwrap();
        let (send, mut conn) = h2::client::handshake(tcp).await.unwrap();
        let mut pings = conn.ping_pong().unwrap();
        let task = tokio::spawn(conn);
        tokio::spawn(async move {
            let _keep = send;
            // Bounded: at most 200 PINGs, 100 ms apart.
            for _ in 0..200 {
                if pings.ping(h2::Ping::opaque()).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        task
    };
    assert!(
        closed_within(pinger, Duration::from_secs(15)).await,
        "PINGs kept an h2c connection that never sent a request"
    );
    assert!(
        closed_within(conn, Duration::from_secs(15)).await,
        "a silent h2c connection stayed open"
    );

    // One request, then idle: closed too, though the client answers the server's PINGs.
    let (send, conn) = h2c(e.addr()).await;
    let mut ready = send.ready().await.unwrap();
    let (resp, _) = ready
        .send_request(http::Request::get("http://x/").body(()).unwrap(), true)
        .unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
    assert!(
        closed_within(conn, Duration::from_secs(15)).await,
        "an idle h2c connection stayed open after its first request"
    );
    e.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_open_h2_stream_keeps_its_connection() {
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.header_read_timeout = Duration::from_millis(200);
    let e = spawn_with(cfg).await;
    let (send, conn) = h2c(e.addr()).await;
    // A delay fault keeps the stream in service for several head deadlines.
    let mut ready = send.ready().await.unwrap();
    let req = http::Request::get("http://x/?delay=1500ms")
        .body(())
        .unwrap();
    let (resp, _) = ready.send_request(req, true).unwrap();
    let resp = tokio::time::timeout(DEADLINE, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    while let Some(chunk) = body.data().await {
        chunk.unwrap();
    }
    drop(conn);
    e.shutdown().await.unwrap();
}

#[tokio::test]
async fn expect_100_continue_bodies_are_held_to_the_body_deadline_and_get_408() {
    let mut cfg = echo_svc::Config::local("us", "v1");
    cfg.header_read_timeout = Duration::from_millis(100);
    cfg.body_read_timeout = Duration::from_millis(1500);
    let e = spawn_with(cfg).await;

    // A body slower than the head deadline but within the body deadline is echoed.
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 4\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    for b in b"slow" {
        // Paced on purpose: each byte comes after a head deadline has passed.
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.write_all(&[*b]).await.unwrap();
    }
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\"body\":\"slow\"") {
        match tokio::time::timeout(DEADLINE, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&chunk[..n]),
            other => panic!(
                "no echo after a 100-continue body ({other:?}): {}",
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));

    // A body slower than the body deadline gets the documented 408, not a reset.
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 1000\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = read_until_close(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 100"), "{answer}");
    assert!(answer.contains("HTTP/1.1 408"), "{answer}");
    e.shutdown().await.unwrap();
}
