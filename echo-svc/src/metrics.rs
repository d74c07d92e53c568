//! Prometheus metrics, exposed at `/metrics` in OpenMetrics text.
//!
//! Names follow podinfo so existing dashboards and HPAs keep working:
//!
//! - `http_requests_total{method,route,status}` (counter)
//! - `http_request_duration_seconds{method,route,status}` (histogram, podinfo's default
//!   buckets; labelled by route *template*, never the raw path)
//!
//! Every label has a fixed, small set of values whatever clients send: routes are
//! templates, methods a fixed list (others are `OTHER`), and `status` is the exact code for
//! the codes in [`EXACT_STATUS`] and the class (`2xx` ... `5xx`) for any other, so
//! `?status=` faults cannot mint new series (a query of `status=~"5.."` matches both).
//! - `http_requests_in_flight` (gauge)
//! - `echo_faults_injected_total{kind}` (counter: delay, status, size, close, header, switch, stall)
//! - `echo_build_info{version,region,build}` (info)
//!
//! The duration histogram is a small lock-free type of our own (prometheus-client's histogram
//! takes a lock per observation), and the series for `GET /` answering 200 is resolved once
//! at start-up, so the hot path does no label hashing and takes no lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::route::Route;

/// Request method, folded to a bounded set for labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum MethodLabel {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Other,
}

impl MethodLabel {
    pub fn of(method: &http::Method) -> Self {
        match *method {
            http::Method::GET => Self::Get,
            http::Method::HEAD => Self::Head,
            http::Method::POST => Self::Post,
            http::Method::PUT => Self::Put,
            http::Method::DELETE => Self::Delete,
            http::Method::PATCH => Self::Patch,
            http::Method::OPTIONS => Self::Options,
            _ => Self::Other,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Patch => "PATCH",
            Self::Options => "OPTIONS",
            Self::Other => "OTHER",
        }
    }
}

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(self.template())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: MethodLabel,
    route: Route,
    status: StatusLabel,
}

/// Status codes kept exact in the `status` label: what echo answers on its own, and the
/// codes fault injection and dashboards commonly use. Any other code is its class.
pub(crate) const EXACT_STATUS: &[u16] = &[
    200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 405, 408, 409, 413, 429, 431, 500, 501,
    502, 503, 504, 508,
];

/// A bounded `status` label value: an exact code from [`EXACT_STATUS`] or a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct StatusLabel(u16);

impl StatusLabel {
    fn of(status: u16) -> StatusLabel {
        if EXACT_STATUS.contains(&status) {
            StatusLabel(status)
        } else {
            // 0..=5 for the class; 0 stands for anything out of range.
            StatusLabel(if (100..600).contains(&status) {
                status / 100
            } else {
                0
            })
        }
    }
}

impl EncodeLabelValue for StatusLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        match self.0 {
            0 => encoder.write_str("other"),
            c @ 1..=5 => write!(encoder, "{c}xx"),
            c => write!(encoder, "{c}"),
        }
    }
}

/// What kind of fault was injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FaultKind {
    Delay,
    Status,
    Size,
    Close,
    Header,
    Switch,
    Stall,
}

impl EncodeLabelValue for FaultKind {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(match self {
            Self::Delay => "delay",
            Self::Status => "status",
            Self::Size => "size",
            Self::Close => "close",
            Self::Header => "header",
            Self::Switch => "switch",
            Self::Stall => "stall",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FaultLabels {
    kind: FaultKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    region: String,
    build: String,
}

/// Upper bounds in seconds (podinfo uses the Prometheus client defaults).
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BUCKET_NANOS: [u64; 11] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A lock-free latency histogram with fixed buckets. Clones share the same counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct DurationHistogram {
    inner: Arc<HistogramInner>,
}

#[derive(Debug, Default)]
struct HistogramInner {
    /// Per-bucket (not cumulative) counts; the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    #[inline]
    pub fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let idx = BUCKET_NANOS
            .iter()
            .position(|&b| nanos <= b)
            .unwrap_or(BUCKETS.len());
        self.inner.buckets[idx].fetch_add(1, Ordering::Relaxed);
        self.inner.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut buckets = [(0.0, 0u64); BUCKETS.len() + 1];
        let mut count = 0;
        for (i, slot) in buckets.iter_mut().enumerate() {
            let n = self.inner.buckets[i].load(Ordering::Relaxed);
            count += n;
            *slot = (BUCKETS.get(i).copied().unwrap_or(f64::MAX), n);
        }
        let sum = self.inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// All metrics of one server instance.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, DurationHistogram>,
    in_flight: Gauge,
    faults: Family<FaultLabels, Counter>,
    /// Pre-resolved series for the hot route: `GET /` answering 200.
    root_ok: (Counter, DurationHistogram),
}

impl Metrics {
    pub fn new(version: &str, region: &str) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RequestLabels, DurationHistogram>::default();
        let in_flight = Gauge::default();
        let faults = Family::<FaultLabels, Counter>::default();
        registry.register(
            "http_requests",
            "The total number of HTTP requests",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Seconds spent serving HTTP requests",
            durations.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being served right now",
            in_flight.clone(),
        );
        registry.register(
            "echo_faults_injected",
            "Faults injected, by kind",
            faults.clone(),
        );
        registry.register(
            "echo_build",
            "Build and identity of this instance",
            Info::new(BuildLabels {
                version: version.to_owned(),
                region: region.to_owned(),
                build: crate::identity::BUILD.to_owned(),
            }),
        );
        let root_labels = RequestLabels {
            method: MethodLabel::Get,
            route: Route::Root,
            status: StatusLabel::of(200),
        };
        let root_ok = (
            requests.get_or_create(&root_labels).clone(),
            durations.get_or_create(&root_labels).clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            in_flight,
            faults,
            root_ok,
        }
    }

    /// Count a finished request.
    #[inline]
    pub fn observe(&self, method: MethodLabel, route: Route, status: u16, elapsed: Duration) {
        if method == MethodLabel::Get && route == Route::Root && status == 200 {
            self.root_ok.0.inc();
            self.root_ok.1.observe(elapsed);
            return;
        }
        let labels = RequestLabels {
            method,
            route,
            status: StatusLabel::of(status),
        };
        self.requests.get_or_create(&labels).inc();
        self.durations.get_or_create(&labels).observe(elapsed);
    }

    /// Count an injected fault.
    pub fn fault(&self, kind: FaultKind) {
        self.faults.get_or_create(&FaultLabels { kind }).inc();
    }

    /// Mark a request in flight until the guard drops (also when the client goes away).
    #[inline]
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// Render the OpenMetrics text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Decrements the in-flight gauge on drop.
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
