//! A worker's state, built once at its start: per target, each request serialised for
//! HTTP/1.1 and templated for HTTP/2, the picker that chooses among them, how
//! connections are opened and the pool's caps; and the worker's recorder.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use http::header::{HeaderValue, HOST};
use http::uri::PathAndQuery;
use tokio::sync::Notify;

use super::arrival::ArrivalWatch;
use super::clock::now_ns;
use super::dns::Dns;
use super::http1::encode_request;
use super::http2::conn::H2Request;
use super::pick::Picker;
use super::state::{Sendable, TargetCtx, TargetState, Worker};
use super::stream::Dial;
use super::{share, Setup};
use crate::configured::protocol::H2Mode;
use crate::configured::request::RequestSpec;
use crate::record::Recorder;
use crate::schedule::tick::AutoTick;

/// The worker's targets (each request serialised once) and its recorder.
pub(super) fn build(setup: &Setup) -> Rc<Worker> {
    let Setup {
        cfg,
        w,
        addrs,
        plans,
        start_ns,
        ..
    } = setup;
    let (w, start_ns) = (*w, *start_ns);
    let n = cfg.threads;
    let targets = cfg
        .targets
        .iter()
        .zip(addrs.iter())
        .enumerate()
        .map(|(ti, (t, addr))| {
            let (host, port) = t.host_port();
            let dial = |h1: bool| Dial {
                tls: t.tls.clone().zip(cfg.tls.as_ref()).map(|(name, tls)| {
                    let client = if h1 { &tls.client_h1 } else { &tls.client };
                    (client.clone(), name)
                }),
            };
            TargetCtx {
                dns: RefCell::new(Dns::new(host, port, addr.clone(), start_ns)),
                dial: dial(true),
                dial_h2: dial(false),
                h2_mode: cfg.http.mode(t.tls.is_some()),
                max_streams: cfg.max_streams,
                requests: sendables(t),
                pick: RefCell::new(Picker::new(
                    cfg.pick,
                    &t.endpoints.iter().map(|e| e.weight).collect::<Vec<_>>(),
                    cfg.seed ^ ((w as u64) << 32) ^ ti as u64,
                )),
                checks: t.checks.clone(),
                max_conns: share(cfg.connections, n, w),
                max_in_flight: share(cfg.max_in_flight, n, w),
                state: RefCell::new(TargetState::default()),
            }
        })
        .collect();
    Rc::new(Worker {
        targets,
        rec: RefCell::new({
            let mut r = Recorder::new(cfg.targets.len());
            for (i, t) in cfg.targets.iter().enumerate() {
                r.pool_cap(i, share(cfg.connections, n, w), setup.fd_limited);
                if !t.endpoints.is_empty() {
                    r.request_names(i, crate::configured::requests_file::names(&t.endpoints));
                }
            }
            r.max_groups(cfg.max_groups);
            let warmup_ns = (plans.first().map_or(0.0, |p| p.warmup_secs()) * 1e9) as u64;
            // Only when a report needs it: it costs a second HDR record per response.
            if cfg.keep_timeline || cfg.exports.html.is_some() || cfg.exports.hdr_log.is_some() {
                r.keep_timeline(start_ns + warmup_ns, cfg.interval.as_nanos() as u64);
            }
            r.rows = setup.rows.take();
            r
        }),
        timeout: cfg.timeout,
        resolve_every: cfg.resolve_every,
        index: w,
        region_header: cfg.region_header.clone(),
        version_header: cfg.version_header.clone(),
        epoch: (tokio::time::Instant::now(), now_ns()),
        outstanding: Cell::new(0),
        idle: Notify::new(),
        pace: RefCell::new(cfg.tick_auto.then(|| AutoTick::new(cfg.targets.len()))),
        // A read on an HTTP/2 connection may take in the answers of many streams, and its
        // stamp is the last one's arrival: held sleeps would time the earlier answers late.
        may_hold: cfg
            .targets
            .iter()
            .all(|t| cfg.http.mode(t.tls.is_some()) == H2Mode::Never),
        arrival: ArrivalWatch::default(),
    })
}

/// Target `t`'s requests, each serialised for HTTP/1.1 (with `Host`) and templated for
/// HTTP/2 (the URI absolute: `:scheme`, `:authority`): its requests file's, or the one
/// the flags give.
fn sendables(t: &crate::configured::target::Target) -> Vec<Sendable> {
    let one = |path: &PathAndQuery, spec: &RequestSpec, name: u16| {
        let mut headers = spec.headers.clone();
        if !headers.contains_key(HOST) {
            if let Ok(v) = HeaderValue::from_str(t.authority.as_str()) {
                headers.insert(HOST, v);
            }
        }
        let scheme = if t.tls.is_some() { "https" } else { "http" };
        let uri = http::Uri::builder()
            .scheme(scheme)
            .authority(t.authority.clone())
            .path_and_query(path.clone())
            .build()
            .unwrap_or_else(|_| t.url.clone());
        Sendable {
            h1: encode_request(spec, path, &headers),
            h2: H2Request::new(
                spec.method.clone(),
                uri,
                spec.headers.clone(),
                spec.body.as_deref(),
            ),
            answer_has_body: spec.answer_has_body(),
            name,
        }
    };
    if t.endpoints.is_empty() {
        return vec![one(&t.path, &t.request, 0)];
    }
    let names = crate::configured::requests_file::names(&t.endpoints);
    t.endpoints
        .iter()
        .map(|e| {
            let name = e
                .name
                .as_ref()
                .and_then(|n| names.iter().position(|x| x == n))
                .unwrap_or(0);
            one(&e.path, &t.request.overlay(&e.request), name as u16)
        })
        .collect()
}
