//! Helpers shared by the integration tests: in-process servers, an HTTP client, raw sockets and
//! polling with deadlines (never sleeps standing in for synchronisation).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound for anything that should take milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub async fn spawn(region: &str, version: &str) -> echo_svc::Handle {
    echo_svc::spawn(echo_svc::Config::local(region, version))
        .await
        .expect("spawn echo-svc")
}

pub async fn spawn_with(cfg: echo_svc::Config) -> echo_svc::Handle {
    echo_svc::spawn(cfg).await.expect("spawn echo-svc")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(DEADLINE)
        .build()
        .unwrap()
}

pub fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// GETs `url` and returns the body as text.
pub async fn get_text(c: &reqwest::Client, url: String) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

/// GETs `url` and returns the body parsed as JSON.
pub async fn get_json(c: &reqwest::Client, url: String) -> serde_json::Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

/// Assert the three identity headers are present and correct.
pub fn assert_identity(resp: &reqwest::Response, region: &str, version: &str) {
    let h = resp.headers();
    let what = format!("{} {}", resp.url(), resp.status());
    assert_eq!(
        h.get("x-echo-region").map(|v| v.to_str().unwrap()),
        Some(region),
        "{what}"
    );
    assert_eq!(
        h.get("x-echo-version").map(|v| v.to_str().unwrap()),
        Some(version),
        "{what}"
    );
    assert_eq!(
        h.get("x-echo-pod").map(|v| v.to_str().unwrap().to_owned()),
        Some(format!("{region}-{version}")),
        "{what}"
    );
}

/// Poll `check` until it returns `Some`, failing after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Send raw bytes on a fresh connection and read until the server closes it or `limit`
/// bytes arrive.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_until_close(&mut stream).await
}

pub async fn read_until_close(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let result = tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "server did not close the connection in time"
    );
    String::from_utf8_lossy(&buf).into_owned()
}

/// A loopback address nothing listens on: bind a port, then close it.
pub async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// Read a metric sample's value from the exposition text (exact label match).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
}

/// Within `sds` standard deviations (plus slack) of a binomial(n, p) mean.
pub fn assert_binomial(what: &str, count: usize, n: usize, p: f64) {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    let tolerance = 5.0 * sd + 3.0;
    assert!(
        (count as f64 - mean).abs() <= tolerance,
        "{what}: {count} of {n}, expected {mean:.0} ± {tolerance:.0}"
    );
}
