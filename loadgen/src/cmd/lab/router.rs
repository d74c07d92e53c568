//! Each region's router: what the client-side Envoy sidecar does for a call to
//! `echo.<region>`, cut down to the parts the course's labs look at.
//!
//! - **Weighted subsets** (the VirtualService's v1/v2 weights): request n goes to v2 when
//!   n·weight crosses a multiple of 100, so a 10% split is exact rather than random.
//! - **Round robin** over the chosen version's healthy endpoints.
//! - **Outlier detection** (the DestinationRule's `outlierDetection`): an endpoint is ejected
//!   after `consecutive5xxErrors` 5xx answers or `consecutiveGatewayErrors` 502/503/504s in a
//!   row, a failed connection counting as both (Envoy maps it to a 503). Ejection lasts
//!   `baseEjectionTime` times the endpoint's number of ejections, and ends at the first
//!   `interval` sweep after that, as in Envoy; `maxEjectionPercent` caps how many of a
//!   version's local endpoints may be out at once.
//! - **Locality failover** (`localityLbSetting` with outlier detection on): while a version
//!   has no healthy local endpoint, its requests go to the other region's endpoints of that
//!   version through the east-west gateway, which costs `east_west` on top of the remote
//!   endpoint's own latency. No healthy endpoint anywhere is Envoy's 503 `no healthy upstream`.
//! - **Endpoints withdrawn by Kubernetes** (EDS): a pod whose readiness failed is no longer
//!   picked at all, which is how a drained pod leaves without errors.
//!
//! Left out, because no lab depends on them: retries (Istio's default retries would hide
//! some errors the failover lab wants to show), success-rate ejection, panic threshold.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::events::EventLog;

type RouterBody = BoxBody<Bytes, hyper::Error>;

/// The DestinationRule's outlier detection, with the course's values as defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outlier {
    pub consecutive_5xx: u32,
    pub consecutive_gateway: u32,
    pub interval: Duration,
    pub base_ejection: Duration,
    pub max_ejection_percent: u8,
}

impl Default for Outlier {
    fn default() -> Self {
        // deploy/base/istio/destinationrule.yaml
        Outlier {
            consecutive_5xx: 5,
            consecutive_gateway: 3,
            interval: Duration::from_secs(5),
            base_ejection: Duration::from_secs(30),
            max_ejection_percent: 100,
        }
    }
}

/// One pod as the routers see it. A restarted pod keeps its endpoint (and its ejection
/// history, as Envoy keeps a host's by address) but gets a new address.
#[derive(Debug)]
pub struct Endpoint {
    pub region: String,
    pub version: String,
    pub pod: String,
    addr: Mutex<SocketAddr>,
    /// In the endpoint list: Kubernetes withdraws a pod whose readiness failed.
    listed: AtomicBool,
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// Milliseconds since the routers' epoch until which the endpoint is ejected.
    ejected_until_ms: AtomicU64,
    ejections: AtomicU32,
    /// NetworkChaos on this pod: added delay and jitter, microseconds.
    chaos_delay_us: AtomicU64,
    chaos_jitter_us: AtomicU64,
}

impl Endpoint {
    pub fn new(region: &str, version: &str, pod: String, addr: SocketAddr) -> Arc<Self> {
        Arc::new(Endpoint {
            region: region.into(),
            version: version.into(),
            pod,
            addr: Mutex::new(addr),
            listed: AtomicBool::new(true),
            consecutive_5xx: AtomicU32::new(0),
            consecutive_gateway: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            chaos_delay_us: AtomicU64::new(0),
            chaos_jitter_us: AtomicU64::new(0),
        })
    }

    pub fn set_addr(&self, a: SocketAddr) {
        if let Ok(mut g) = self.addr.lock() {
            *g = a;
        }
    }

    fn addr(&self) -> Option<SocketAddr> {
        self.addr.lock().ok().map(|g| *g)
    }

    pub fn set_listed(&self, on: bool) {
        self.listed.store(on, Ordering::Relaxed);
    }

    pub fn set_chaos(&self, delay: Duration, jitter: Duration) {
        self.chaos_delay_us
            .store(delay.as_micros() as u64, Ordering::Relaxed);
        self.chaos_jitter_us
            .store(jitter.as_micros() as u64, Ordering::Relaxed);
    }

    fn healthy(&self, now_ms: u64) -> bool {
        self.listed.load(Ordering::Relaxed)
            && self.ejected_until_ms.load(Ordering::Relaxed) <= now_ms
    }

    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }
}

/// Counters a scenario reads (the canary analysis) and the lab prints.
#[derive(Debug, Default)]
pub struct Stats {
    /// Per version (0: v1, 1: v2): answers and 5xx answers (the router's own 503s included).
    pub answered: [AtomicU64; 2],
    pub failed: [AtomicU64; 2],
    /// Requests sent to the other region through the east-west gateway.
    pub east_west: AtomicU64,
}

/// One region's router.
#[derive(Debug)]
pub struct Router {
    pub region: String,
    local: Vec<Arc<Endpoint>>,
    remote: Vec<Arc<Endpoint>>,
    east_west: Duration,
    v2_percent: Arc<AtomicU8>,
    outlier: Outlier,
    epoch: Instant,
    counter: AtomicU64,
    round_robin: AtomicU64,
    /// Per version (0: v1, 1: v2): its requests go to the other region.
    failing_over: [AtomicBool; 2],
    events: EventLog,
    pub stats: Stats,
}

/// What both regions' routers share: the mesh's settings, the canary's weight, one clock
/// and one event log.
#[derive(Debug, Clone)]
pub struct Mesh {
    /// What crossing the east-west gateway costs.
    pub east_west: Duration,
    /// v2's share of each region's traffic, moved by the canary.
    pub v2_percent: Arc<AtomicU8>,
    pub outlier: Outlier,
    pub epoch: Instant,
    pub events: EventLog,
}

impl Router {
    /// `region`'s router: its own endpoints first, `remote` across the east-west hop.
    pub fn new(
        region: &str,
        local: Vec<Arc<Endpoint>>,
        remote: Vec<Arc<Endpoint>>,
        mesh: Mesh,
    ) -> Arc<Self> {
        Arc::new(Router {
            region: region.into(),
            local,
            remote,
            east_west: mesh.east_west,
            v2_percent: mesh.v2_percent,
            outlier: mesh.outlier,
            epoch: mesh.epoch,
            counter: AtomicU64::new(0),
            round_robin: AtomicU64::new(0),
            failing_over: [AtomicBool::new(false), AtomicBool::new(false)],
            events: mesh.events,
            stats: Stats::default(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The version for request number `n` (0: v1, 1: v2), and its endpoint with whether it is
    /// across the east-west hop (`None`: no healthy endpoint anywhere).
    fn pick(&self, n: u64) -> (usize, Option<(Arc<Endpoint>, bool)>) {
        let pct = u64::from(self.v2_percent.load(Ordering::Relaxed).min(100));
        let version = if (n + 1) * pct / 100 > n * pct / 100 {
            "v2"
        } else {
            "v1"
        };
        let now = self.now_ms();
        // Counted, then the i-th taken: no list built per request.
        let usable = |e: &&Arc<Endpoint>| e.version == version && e.healthy(now);
        let (list, remote) = if self.local.iter().any(|e| usable(&e)) {
            (&self.local, false)
        } else {
            (&self.remote, true)
        };
        let vi = usize::from(version == "v2");
        if self.failing_over[vi].swap(remote, Ordering::Relaxed) != remote {
            let other = self.remote.first().map_or("-", |e| e.region.as_str());
            self.events.record(if remote {
                format!(
                    "{} router: no healthy local {version} endpoint, failing over to {other}",
                    self.region
                )
            } else {
                format!(
                    "{} router: local {version} endpoints healthy again",
                    self.region
                )
            });
        }
        let n_usable = list.iter().filter(usable).count();
        if n_usable == 0 {
            return (vi, None);
        }
        let i = self.round_robin.fetch_add(1, Ordering::Relaxed) as usize;
        let e = list.iter().filter(usable).nth(i % n_usable).cloned();
        (vi, e.map(|e| (e, remote)))
    }

    /// Outlier detection's bookkeeping for one answer (`None`: the connection failed).
    fn observe(&self, e: &Endpoint, status: Option<StatusCode>) {
        let (is_5xx, is_gateway) = match status {
            None => (true, true),
            Some(s) => (s.is_server_error(), matches!(s.as_u16(), 502..=504)),
        };
        let c5 = if is_5xx {
            e.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            e.consecutive_5xx.store(0, Ordering::Relaxed);
            0
        };
        let cg = if is_gateway {
            e.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            e.consecutive_gateway.store(0, Ordering::Relaxed);
            0
        };
        let o = &self.outlier;
        if c5 < o.consecutive_5xx && cg < o.consecutive_gateway {
            return;
        }
        let now = self.now_ms();
        if !e.healthy(now) {
            return;
        }
        let peers: Vec<&Arc<Endpoint>> = self
            .local
            .iter()
            .chain(&self.remote)
            .filter(|x| x.region == e.region && x.version == e.version)
            .collect();
        let out = peers.iter().filter(|x| !x.healthy(now)).count() + 1;
        if out * 100 > peers.len() * usize::from(o.max_ejection_percent) {
            return;
        }
        let n = e.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let interval = o.interval.as_millis().max(1) as u64;
        let until = now + o.base_ejection.as_millis() as u64 * u64::from(n);
        e.ejected_until_ms
            .store(until.div_ceil(interval) * interval, Ordering::Relaxed);
        e.consecutive_5xx.store(0, Ordering::Relaxed);
        e.consecutive_gateway.store(0, Ordering::Relaxed);
    }
}

/// Serves `router` on a fresh loopback port until `stop` turns true.
pub async fn serve(router: Arc<Router>) -> anyhow::Result<(SocketAddr, watch::Sender<bool>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("cannot bind the lab router")?;
    let addr = listener.local_addr()?;
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build(HttpConnector::new());
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop_rx.changed() => return,
                a = listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else { continue };
            let _ = stream.set_nodelay(true);
            let (client, router) = (client.clone(), router.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (client, router) = (client.clone(), router.clone());
                    async move { Ok::<_, hyper::Error>(forward(&router, &client, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((addr, stop_tx))
}

async fn forward(
    router: &Router,
    client: &Client<HttpConnector, Incoming>,
    mut req: Request<Incoming>,
) -> Response<RouterBody> {
    let n = router.counter.fetch_add(1, Ordering::Relaxed);
    let (vi, picked) = router.pick(n);
    // The stats are the caller's view (as the sidecar reports it): Envoy's own 503s count.
    router.stats.answered[vi].fetch_add(1, Ordering::Relaxed);
    let Some((e, remote)) = picked else {
        router.stats.failed[vi].fetch_add(1, Ordering::Relaxed);
        return plain(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream");
    };
    let mut delay = Duration::ZERO;
    if remote {
        router.stats.east_west.fetch_add(1, Ordering::Relaxed);
        delay += router.east_west;
    }
    let (chaos, jitter) = (
        e.chaos_delay_us.load(Ordering::Relaxed),
        e.chaos_jitter_us.load(Ordering::Relaxed),
    );
    if chaos > 0 {
        let j = if jitter > 0 {
            rand::random::<u64>() % (2 * jitter + 1)
        } else {
            jitter
        };
        delay += Duration::from_micros((chaos + j).saturating_sub(jitter));
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let pq = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let Some(Ok(uri)) = e
        .addr()
        .map(|a| format!("http://{a}{pq}").parse::<http::Uri>())
    else {
        return plain(StatusCode::BAD_REQUEST, "bad path");
    };
    *req.uri_mut() = uri;
    match client.request(req).await {
        Ok(resp) => {
            router.observe(&e, Some(resp.status()));
            if resp.status().is_server_error() {
                router.stats.failed[vi].fetch_add(1, Ordering::Relaxed);
            }
            resp.map(|b| b.boxed())
        }
        Err(err) => {
            router.observe(&e, None);
            router.stats.failed[vi].fetch_add(1, Ordering::Relaxed);
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("upstream connect error ({}): {err}", e.pod),
            )
        }
    }
}

fn plain(status: StatusCode, msg: &str) -> Response<RouterBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(msg.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn router(outlier: Outlier) -> (Arc<Router>, Vec<Arc<Endpoint>>) {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let local: Vec<_> = (0..2)
            .map(|i| Endpoint::new("us", "v1", format!("us-v1-{i}"), a))
            .collect();
        let remote = vec![Endpoint::new("eu", "v1", "eu-v1-0".into(), a)];
        let r = Router::new(
            "us",
            local.clone(),
            remote,
            Mesh {
                east_west: Duration::from_millis(30),
                v2_percent: Arc::new(AtomicU8::new(0)),
                outlier,
                epoch: Instant::now(),
                events: EventLog::default(),
            },
        );
        (r, local)
    }

    #[test]
    fn gateway_errors_eject_and_the_last_local_endpoint_fails_over() {
        let (r, local) = router(Outlier::default());
        for _ in 0..2 {
            r.observe(&local[0], None);
        }
        assert!(
            local[0].healthy(r.now_ms()),
            "two errors are below the threshold"
        );
        r.observe(&local[0], Some(StatusCode::OK));
        r.observe(&local[0], None);
        assert!(local[0].healthy(r.now_ms()), "a success resets the count");
        for _ in 0..3 {
            r.observe(&local[0], Some(StatusCode::BAD_GATEWAY));
        }
        assert!(!local[0].healthy(r.now_ms()));
        let (_, picked) = r.pick(0);
        let (e, remote) = picked.unwrap();
        assert_eq!((e.pod.as_str(), remote), ("us-v1-1", false));
        for _ in 0..3 {
            r.observe(&local[1], None);
        }
        let (_, picked) = r.pick(1);
        let (e, remote) = picked.unwrap();
        assert_eq!((e.region.as_str(), remote), ("eu", true));
    }

    #[test]
    fn plain_5xx_needs_five_in_a_row_and_ejection_ends_on_an_interval() {
        let outlier = Outlier {
            interval: Duration::from_millis(500),
            base_ejection: Duration::from_millis(1200),
            ..Outlier::default()
        };
        let (r, local) = router(outlier);
        for _ in 0..4 {
            r.observe(&local[0], Some(StatusCode::INTERNAL_SERVER_ERROR));
        }
        assert!(local[0].healthy(r.now_ms()));
        r.observe(&local[0], Some(StatusCode::INTERNAL_SERVER_ERROR));
        let until = local[0].ejected_until_ms.load(Ordering::Relaxed);
        assert_eq!(until % 500, 0, "{until}");
        assert!(until >= 1200, "{until}");
        assert_eq!(local[0].ejections(), 1);
    }

    #[test]
    fn max_ejection_percent_keeps_some_endpoints_in() {
        let (r, local) = router(Outlier {
            max_ejection_percent: 50,
            ..Outlier::default()
        });
        for e in &local {
            for _ in 0..3 {
                r.observe(e, None);
            }
        }
        let healthy = local.iter().filter(|e| e.healthy(r.now_ms())).count();
        assert_eq!(healthy, 1);
    }
}
