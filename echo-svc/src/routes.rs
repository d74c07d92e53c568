//! Request handling: routing, the fault pipeline and the handlers for every route.
//!
//! Every request goes through [`App::handle`]:
//!
//! 1. the stall switch holds it while a stall is in progress (toggles and `/metrics` excepted);
//! 2. the fault switch answers 500 on workload routes;
//! 3. fault parameters from the query (over the server-wide defaults) are parsed — a bad one
//!    is a 400 naming it — and rolled: delay, then status, then the route's own answer with
//!    `size`, `header` and `close` applied;
//! 4. the identity headers are stamped on whatever comes out, and the request is counted.
//!
//! `GET /` with no query, no default faults, no stall and the fault switch off touches only
//! atomics and pre-rendered bytes.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderValue, ACCEPT, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::body::{text, text_owned, with_type, Body, CLOSE, JSON, TEXT};
use crate::config::Config;
use crate::deadlines::Watch;
use crate::echo::Echo;
use crate::faults::{parse_delay, DisplayDuration, FaultSpec, Limits, Plan};
use crate::identity::Identity;
use crate::metrics::{FaultKind, MethodLabel, Metrics};
use crate::route::Route;
use crate::switches::Switches;
use crate::upstream::{Forwarder, X_REQUEST_ID};

const OPENMETRICS: HeaderValue =
    HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");
const GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");
const POST: HeaderValue = HeaderValue::from_static("POST");

/// Response header listing the faults applied to this response (`delay=200ms,status=503`),
/// so clients can check what they measured.
pub const X_ECHO_FAULTS: http::HeaderName = http::HeaderName::from_static("x-echo-faults");

static EMPTY_FAULTS: FaultSpec = FaultSpec {
    delay: None,
    status: None,
    size: None,
    close: None,
    headers: Vec::new(),
};

/// Whether the demo toggles are reachable on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToggleAccess {
    /// Served here.
    Allowed,
    /// Served only on the admin port: 404 here.
    AdminPortOnly,
    /// Turned off by configuration: 403.
    Disabled,
}

/// Shared state of one server instance.
#[derive(Debug)]
pub(crate) struct App {
    pub identity: Identity,
    pub switches: Switches,
    pub metrics: Metrics,
    defaults: FaultSpec,
    limits: Limits,
    echo: Echo,
    forwarder: Forwarder,
}

impl App {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        config.validate()?;
        let identity = Identity::new(config)?;
        Ok(App {
            metrics: Metrics::new(&config.version, &config.region),
            identity,
            switches: Switches::new(),
            defaults: config.faults.clone(),
            limits: config.limits(),
            echo: Echo::new(config),
            forwarder: Forwarder::new(
                config.upstreams.clone(),
                config.upstream_timeout,
                config.max_hops,
            )?,
        })
    }

    /// Serve one request.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        access: ToggleAccess,
        conn: &Arc<Watch>,
    ) -> Response<Body> {
        let start = Instant::now();
        let _in_flight = self.metrics.in_flight();
        let route = Route::classify(req.uri().path());
        let method = MethodLabel::of(req.method());
        let mut resp = self.respond(req, route, access, conn).await;
        self.identity.stamp(resp.headers_mut());
        self.metrics
            .observe(method, route, resp.status().as_u16(), start.elapsed());
        resp
    }

    async fn respond(
        &self,
        req: Request<Incoming>,
        route: Route,
        access: ToggleAccess,
        conn: &Arc<Watch>,
    ) -> Response<Body> {
        if route.is_toggle() {
            match access {
                ToggleAccess::Allowed => {}
                ToggleAccess::AdminPortOnly => {
                    return text(
                        StatusCode::NOT_FOUND,
                        "not found: toggles are served on the admin port\n",
                    )
                }
                ToggleAccess::Disabled => {
                    return text(
                        StatusCode::FORBIDDEN,
                        "forbidden: toggles are disabled by configuration\n",
                    )
                }
            }
        }

        if route.is_held_by_stall() && self.switches.hold_while_stalled().await {
            self.metrics.fault(FaultKind::Stall);
        }

        if route.is_workload() && self.switches.fault_on() {
            self.metrics.fault(FaultKind::Switch);
            return text(StatusCode::INTERNAL_SERVER_ERROR, "fault switch is on\n");
        }

        let base = if route.is_workload() {
            &self.defaults
        } else {
            &EMPTY_FAULTS
        };
        let faults: Cow<'_, FaultSpec> = match req.uri().query() {
            None => Cow::Borrowed(base),
            Some(query) => match FaultSpec::from_query(query) {
                Ok(spec) if spec.is_empty() => Cow::Borrowed(base),
                Ok(spec) => {
                    if let Err(e) = spec.check_caps(&self.limits) {
                        return text_owned(StatusCode::BAD_REQUEST, format!("{e}\n"));
                    }
                    if base.is_empty() {
                        Cow::Owned(spec)
                    } else {
                        Cow::Owned(base.overlay(&spec))
                    }
                }
                Err(e) => return text_owned(StatusCode::BAD_REQUEST, format!("{e}\n")),
            },
        };

        if faults.is_empty() {
            return self.route(req, route, conn).await;
        }

        let mut plan: Plan = faults.sample(&mut rand::rng());
        // Connection-specific headers are not allowed in HTTP/2; close applies to HTTP/1 only.
        plan.close &= req.version() < Version::HTTP_2;
        if let Some(delay) = plan.delay {
            self.metrics.fault(FaultKind::Delay);
            tokio::time::sleep(delay).await;
        }
        let mut resp = match plan.status {
            Some(code) => {
                self.metrics.fault(FaultKind::Status);
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                text_owned(status, format!("injected fault: status {code}\n"))
            }
            None => self.route(req, route, conn).await,
        };
        if let Some(size) = plan.size {
            self.metrics.fault(FaultKind::Size);
            let headers = resp.headers_mut();
            headers.remove(CONTENT_LENGTH);
            headers.insert(CONTENT_TYPE, TEXT);
            *resp.body_mut() = Body::fill(size);
        }
        if !faults.headers.is_empty() {
            self.metrics.fault(FaultKind::Header);
            for (name, value) in &faults.headers {
                resp.headers_mut().append(name.clone(), value.clone());
            }
        }
        if plan.close {
            self.metrics.fault(FaultKind::Close);
            resp.headers_mut().insert(CONNECTION, CLOSE);
        }
        let applied = plan.to_string();
        if !applied.is_empty() {
            if let Ok(value) = HeaderValue::from_str(&applied) {
                resp.headers_mut().insert(X_ECHO_FAULTS, value);
            }
        }
        resp
    }

    async fn route(
        &self,
        req: Request<Incoming>,
        route: Route,
        conn: &Arc<Watch>,
    ) -> Response<Body> {
        let method = req.method();
        let is_get = method == Method::GET || method == Method::HEAD;
        let is_post = method == Method::POST;
        match route {
            Route::Root if is_get => {
                if wants_json(&req) {
                    with_type(Response::new(Body::Full(Some(self.identity.json()))), JSON)
                } else {
                    with_type(Response::new(Body::Full(Some(self.identity.text()))), TEXT)
                }
            }
            Route::Healthz | Route::Health if is_get => text(StatusCode::OK, "ok\n"),
            Route::Readyz if is_get => {
                if self.switches.is_ready() {
                    text(StatusCode::OK, "ready\n")
                } else if self.switches.is_draining() {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: shutting down\n",
                    )
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "not ready: disabled\n")
                }
            }
            Route::Version if is_get => json_response(
                StatusCode::OK,
                &json!({
                    "service": self.identity.service,
                    "version": self.identity.version,
                    "build": crate::identity::BUILD,
                }),
            ),
            Route::Identity if is_get => {
                let id = &self.identity;
                json_response(
                    StatusCode::OK,
                    &json!({
                        "service": id.service,
                        "region": id.region,
                        "zone": id.zone,
                        "version": id.version,
                        "pod": id.pod,
                        "node": id.node,
                        "namespace": id.namespace,
                        "cloud_identity": id.cloud.describe(),
                    }),
                )
            }
            Route::ReadyzEnable if is_post => {
                self.switches.set_ready(true);
                text(StatusCode::OK, "readiness enabled\n")
            }
            Route::ReadyzDisable if is_post => {
                self.switches.set_ready(false);
                text(StatusCode::OK, "readiness disabled\n")
            }
            Route::Fault if is_get => self.fault_status(),
            Route::FaultEnable if is_post => {
                self.switches.set_fault(true);
                self.fault_status()
            }
            Route::FaultDisable if is_post => {
                self.switches.set_fault(false);
                self.fault_status()
            }
            Route::Stall if is_post => self.stall(req.uri().query()),
            Route::Echo => self.echo.answer(req, conn, &self.identity).await,
            Route::Call if is_get => self.call(req).await,
            Route::Metrics if is_get => match self.metrics.render() {
                Ok(body) => with_type(Response::new(Body::full(body)), OPENMETRICS),
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "could not render metrics\n",
                ),
            },
            Route::NotFound => text(StatusCode::NOT_FOUND, "not found\n"),
            r if r.is_toggle() => method_not_allowed(POST),
            _ => method_not_allowed(GET_HEAD),
        }
    }

    fn fault_status(&self) -> Response<Body> {
        json_response(
            StatusCode::OK,
            &json!({
                "fault_switch": self.switches.fault_on(),
                "default_faults": self.defaults.to_string(),
                "stall_remaining_ms": self.switches.stall_remaining().as_millis() as u64,
            }),
        )
    }

    fn stall(&self, query: Option<&str>) -> Response<Body> {
        let value = query.and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "for")
                .map(|(_, v)| v.into_owned())
        });
        let Some(value) = value else {
            return text(
                StatusCode::BAD_REQUEST,
                "bad stall parameter `for`: missing, e.g. /stall?for=1s\n",
            );
        };
        let d = match parse_delay(&value) {
            Ok(d) => d,
            Err(e) => {
                return text_owned(
                    StatusCode::BAD_REQUEST,
                    format!("bad stall parameter `for`: {e}\n"),
                )
            }
        };
        if d > self.limits.max_delay {
            return text_owned(
                StatusCode::BAD_REQUEST,
                format!(
                    "bad stall parameter `for`: {} exceeds the cap of {}\n",
                    DisplayDuration(d),
                    humantime::format_duration(self.limits.max_delay)
                ),
            );
        }
        self.switches.stall_for(d);
        text_owned(
            StatusCode::OK,
            format!("stalling for {}\n", DisplayDuration(d)),
        )
    }

    async fn call(&self, req: Request<Incoming>) -> Response<Body> {
        let tail = req.uri().path().strip_prefix("/call/").unwrap_or("");
        let (name, rest) = match tail.find('/') {
            Some(i) => (&tail[..i], &tail[i..]),
            None => (tail, ""),
        };
        if name.is_empty() {
            return text(StatusCode::NOT_FOUND, "not found: use /call/{name}\n");
        }
        let outcome = self
            .forwarder
            .call(name, rest, req.headers(), &self.identity)
            .await;
        let mut resp = json_response(outcome.status, &outcome.body);
        resp.headers_mut().insert(X_REQUEST_ID, outcome.request_id);
        resp
    }
}

fn wants_json(req: &Request<Incoming>) -> bool {
    req.headers().get_all(ACCEPT).iter().any(|v| {
        v.as_bytes()
            .windows(16)
            .any(|w| w.eq_ignore_ascii_case(b"application/json"))
    })
}

fn json_response(status: StatusCode, doc: &Value) -> Response<Body> {
    let mut body = doc.to_string();
    body.push('\n');
    let mut resp = with_type(Response::new(Body::full(body)), JSON);
    *resp.status_mut() = status;
    resp
}

fn method_not_allowed(allow: HeaderValue) -> Response<Body> {
    let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    resp.headers_mut().insert(ALLOW, allow);
    resp
}
