//! The embedded fleet: us and eu, each with `replicas` echo-svc pods per version and a
//! router in front ([`super::router`]), and the pod lifecycle the scenarios drive (stop,
//! start, kill and restart, fault switch, injected latency).
//!
//! eu's pods carry a server-wide `delay=` fault standing for the distance between the
//! trainee and eu; a request that us fails over to eu pays that and the east-west hop.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU8;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::watch;

use super::router::{self, Endpoint, Mesh, Outlier, Router};
use crate::events::EventLog;

/// How the fleet is built.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub eu_delay: Duration,
    pub east_west: Duration,
    pub v2_percent: u8,
    pub replicas: usize,
    pub outlier: Outlier,
    /// echo-svc's drain: after SIGTERM, readiness fails and it keeps serving this long.
    pub drain: Duration,
    /// From a pod's readiness failing to its endpoint leaving the routers' lists (probe
    /// period plus the EDS push).
    pub withdraw_after: Duration,
}

struct Pod {
    region: String,
    version: String,
    endpoint: Arc<Endpoint>,
    handle: Option<echo_svc::Handle>,
}

/// The running fleet.
pub struct Fleet {
    spec: FleetSpec,
    pods: BTreeMap<String, Pod>,
    pub routers: Vec<(Arc<Router>, std::net::SocketAddr)>,
    stops: Vec<watch::Sender<bool>>,
    pub v2_percent: Arc<AtomicU8>,
    events: EventLog,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("pods", &self.pods.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// Starts every pod and both routers.
    pub async fn start(spec: FleetSpec, events: EventLog) -> anyhow::Result<Fleet> {
        let mut pods = BTreeMap::new();
        for region in ["us", "eu"] {
            for version in ["v1", "v2"] {
                for i in 0..spec.replicas.max(1) {
                    let name = format!("{region}-{version}-{i}");
                    let handle = spawn_pod(&spec, region, version, &name).await?;
                    let endpoint = Endpoint::new(region, version, name.clone(), handle.addr());
                    pods.insert(
                        name,
                        Pod {
                            region: region.into(),
                            version: version.into(),
                            endpoint,
                            handle: Some(handle),
                        },
                    );
                }
            }
        }
        let v2_percent = Arc::new(AtomicU8::new(spec.v2_percent.min(100)));
        let mesh = Mesh {
            east_west: spec.east_west,
            v2_percent: v2_percent.clone(),
            outlier: spec.outlier,
            epoch: Instant::now(),
            events: events.clone(),
        };
        let mut routers = Vec::new();
        let mut stops = Vec::new();
        for (region, other) in [("us", "eu"), ("eu", "us")] {
            let of = |r: &str| -> Vec<Arc<Endpoint>> {
                pods.values()
                    .filter(|p| p.region == r)
                    .map(|p| p.endpoint.clone())
                    .collect()
            };
            let r = Router::new(region, of(region), of(other), mesh.clone());
            let (addr, stop) = router::serve(r.clone()).await?;
            routers.push((r, addr));
            stops.push(stop);
        }
        Ok(Fleet {
            spec,
            pods,
            routers,
            stops,
            v2_percent,
            events,
        })
    }

    /// Pod names matching a selector: `us` (a region), `us-v2` (a region's version), `v2`
    /// (a version everywhere), `all`, or one pod's name (`us-v1-0`).
    pub fn select(&self, sel: &str) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(name, p)| {
                sel == "all"
                    || sel == p.region
                    || sel == p.version
                    || *sel == format!("{}-{}", p.region, p.version)
                    || sel == name.as_str()
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// SIGTERM to the selected pods: each drains (readiness fails, serving goes on for the
    /// drain), then is gone. With `withdraw`, Kubernetes takes their endpoints out of the
    /// lists `withdraw_after` later, as it does once readiness fails; without, they stay
    /// listed (a zone that vanishes faster than Kubernetes notices) and only outlier
    /// detection can move traffic away.
    pub async fn stop(&mut self, sel: &str, withdraw: bool) {
        let names = self.select(sel);
        let mut drains = Vec::new();
        for n in &names {
            let Some(p) = self.pods.get_mut(n) else {
                continue;
            };
            if let Some(h) = p.handle.take() {
                drains.push(tokio::spawn(h.shutdown()));
                if withdraw {
                    let (e, after) = (p.endpoint.clone(), self.spec.withdraw_after);
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        e.set_listed(false);
                    });
                }
            }
        }
        for d in drains {
            let _ = d.await;
        }
    }

    /// Starts the selected pods that are not running, each on a new port; they are listed
    /// again once up (the new pod's readiness passing).
    pub async fn start_pods(&mut self, sel: &str) -> anyhow::Result<()> {
        for n in self.select(sel) {
            let spec = self.spec.clone();
            let Some(p) = self.pods.get_mut(&n) else {
                continue;
            };
            if p.handle.is_some() {
                continue;
            }
            let h = spawn_pod(&spec, &p.region, &p.version, &n).await?;
            p.endpoint.set_addr(h.addr());
            p.endpoint.set_listed(true);
            p.handle = Some(h);
        }
        Ok(())
    }

    /// Turns the selected pods' fault switch (every workload request answers 500) on or off.
    pub fn fault(&self, sel: &str, on: bool) {
        for n in self.select(sel) {
            if let Some(h) = self.pods.get(&n).and_then(|p| p.handle.as_ref()) {
                h.set_fault_switch(on);
            }
        }
    }

    /// NetworkChaos `delay` on the selected pods (zero clears it).
    pub fn latency(&self, sel: &str, delay: Duration, jitter: Duration) {
        for n in self.select(sel) {
            if let Some(p) = self.pods.get(&n) {
                p.endpoint.set_chaos(delay, jitter);
            }
        }
    }

    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Ejections so far, per pod that had any.
    pub fn ejections(&self) -> Vec<(String, u32)> {
        self.pods
            .iter()
            .filter(|(_, p)| p.endpoint.ejections() > 0)
            .map(|(n, p)| (n.clone(), p.endpoint.ejections()))
            .collect()
    }

    /// Stops routers and pods: each pod drains as on SIGTERM, all of them at once (one
    /// drain, not one per pod); with `at_once` (the run was interrupted) no pod drains.
    pub async fn shutdown(mut self, at_once: bool) -> anyhow::Result<()> {
        for s in &self.stops {
            let _ = s.send(true);
        }
        let handles: Vec<_> = self
            .pods
            .values_mut()
            .filter_map(|p| p.handle.take())
            .collect();
        if at_once {
            // A dropped handle stops its server without a drain.
            drop(handles);
            return Ok(());
        }
        let drains: Vec<_> = handles
            .into_iter()
            .map(|h| tokio::spawn(h.shutdown()))
            .collect();
        for d in drains {
            d.await.context("a pod's shutdown panicked")??;
        }
        Ok(())
    }
}

async fn spawn_pod(
    spec: &FleetSpec,
    region: &str,
    version: &str,
    name: &str,
) -> anyhow::Result<echo_svc::Handle> {
    let mut cfg = echo_svc::Config::local(region, version);
    cfg.pod_name = Some(name.to_string());
    cfg.drain_delay = spec.drain;
    if region == "eu" && !spec.eu_delay.is_zero() {
        cfg.faults = format!("delay={}us", spec.eu_delay.as_micros())
            .parse()
            .map_err(|e| anyhow::anyhow!("bad delay fault: {e}"))?;
    }
    echo_svc::spawn(cfg)
        .await
        .with_context(|| format!("cannot start echo-svc pod {name}"))
}
