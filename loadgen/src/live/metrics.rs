//! Prometheus exposition during a run (`--metrics-addr ADDR`), so an in-cluster run shows
//! on Grafana while it happens.
//!
//! Served at `/metrics` (any path answers) in the OpenMetrics text format via
//! prometheus-client:
//! - `loadgen_requests_total{target}`: measured requests that completed (answered or failed);
//! - `loadgen_errors_total{target}`: HTTP errors, timeouts and transport errors;
//! - `loadgen_dropped_total{target}`: requests dropped (in-flight cap or generator behind);
//! - `loadgen_latency_seconds{target,region,version}`: corrected latency histogram.
//!
//! Nothing here touches the request path: workers publish their running totals every
//! 250 ms (the same tick as live progress) and a scrape adds up the latest snapshots. The
//! histogram's buckets are read off the HDR histograms; `_sum` is mean × count (HDR keeps
//! no exact sum).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::hist::new_histogram;
use crate::live::Live;
use crate::results::{Accounting, Snapshot};

/// Histogram bucket bounds, seconds.
pub const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

#[derive(Debug)]
struct RunCollector {
    live: Arc<Live>,
    names: Vec<String>,
}

impl RunCollector {
    /// The latest snapshots of all workers, added up.
    fn totals(&self) -> Snapshot {
        let mut out = Snapshot {
            targets: vec![Accounting::default(); self.names.len()],
            groups: Vec::new(),
        };
        for w in &self.live.workers {
            let Ok(slot) = w.detail.lock() else { continue };
            let Some(s) = slot.as_ref() else { continue };
            for (a, b) in out.targets.iter_mut().zip(&s.targets) {
                a.merge(b);
            }
            for (t, r, v, h) in &s.groups {
                match out
                    .groups
                    .iter_mut()
                    .find(|x| x.0 == *t && x.1 == *r && x.2 == *v)
                {
                    Some(x) => {
                        let _ = x.3.add(h);
                    }
                    None => out.groups.push((*t, r.clone(), v.clone(), {
                        let mut n = new_histogram();
                        let _ = n.add(h);
                        n
                    })),
                }
            }
        }
        out
    }
}

/// A label value safe to print in the exposition: region and version come from the
/// network, and prometheus-client writes values as given, so a `"` or a newline would
/// end the value and let a server inject labels or series. Anything outside a plain set
/// of characters becomes `_`.
fn label_value(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._:/+-@ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Collector for RunCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.totals();
        let name = |i: usize| label_value(self.names.get(i).map_or("", String::as_str));
        for (metric, help, f) in [
            (
                "loadgen_requests",
                "Measured requests that completed (answered or failed).",
                Accounting::completed as fn(&Accounting) -> u64,
            ),
            (
                "loadgen_errors",
                "HTTP errors (status >= 400), timeouts and transport errors.",
                Accounting::failed,
            ),
            (
                "loadgen_check_failures",
                "Answers below 400 that failed a --check.",
                |a: &Accounting| a.check,
            ),
            (
                "loadgen_dropped",
                "Requests dropped because of the in-flight cap or a generator that fell behind.",
                Accounting::dropped,
            ),
        ] {
            let mut m = enc.encode_descriptor(metric, help, None, MetricType::Counter)?;
            for (i, a) in s.targets.iter().enumerate() {
                let labels = [("target", name(i))];
                ConstCounter::new(f(a)).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "loadgen_latency_seconds",
            "Latency from each request's scheduled time (corrected for coordinated omission).",
            None,
            MetricType::Histogram,
        )?;
        for (t, r, v, h) in &s.groups {
            let labels = [
                ("target", name(*t)),
                ("region", label_value(r)),
                ("version", label_value(v)),
            ];
            // The encoder takes per-bucket counts and accumulates them itself; an upper
            // bound of f64::MAX is written as +Inf.
            let mut buckets: Vec<(f64, u64)> = Vec::with_capacity(BUCKETS.len() + 1);
            let mut below = 0u64;
            for b in BUCKETS {
                let cum = h.count_between(0, (b * 1e6) as u64);
                buckets.push((b, cum.saturating_sub(below)));
                below = cum;
            }
            buckets.push((f64::MAX, h.len().saturating_sub(below)));
            let sum = h.mean() * h.len() as f64 / 1e6;
            m.encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    sum,
                    h.len(),
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}

/// A running metrics endpoint; dropping it stops serving.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves the run's metrics from `live` on the current tokio runtime.
pub async fn serve(
    addr: SocketAddr,
    live: Arc<Live>,
    names: Vec<String>,
) -> anyhow::Result<Server> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let bound = listener.local_addr().context("metrics listener address")?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(RunCollector { live, names }));
    let registry = Arc::new(registry);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let registry = registry.clone();
                    async move {
                        let mut body = String::new();
                        match prometheus_client::encoding::text::encode(&mut body, &registry) {
                            Ok(()) => http::Response::builder()
                                .header(
                                    http::header::CONTENT_TYPE,
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                )
                                .body(Full::new(Bytes::from(body))),
                            Err(_) => http::Response::builder()
                                .status(500)
                                .body(Full::new(Bytes::from_static(b"encoding failed\n"))),
                        }
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    Ok(Server { addr: bound, task })
}
