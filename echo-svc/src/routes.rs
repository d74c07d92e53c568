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
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::body::Body;
use crate::config::Config;
use crate::faults::{parse_delay, DisplayDuration, FaultSpec, Limits, Plan};
use crate::identity::Identity;
use crate::metrics::{FaultKind, MethodLabel, Metrics};
pub(crate) use crate::route::Route;
use crate::switches::Switches;
use crate::upstream::{Forwarder, X_REQUEST_ID};

const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const OPENMETRICS: HeaderValue =
    HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");
const GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");
const POST: HeaderValue = HeaderValue::from_static("POST");
const CLOSE: HeaderValue = HeaderValue::from_static("close");

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
    max_body: u64,
    body_read_timeout: Duration,
    /// One permit per body-reading request, held until its answer is sent.
    body_slots: Arc<tokio::sync::Semaphore>,
    forwarder: Forwarder,
}

/// How long a body-reading request waits for a free slot before it is turned away.
const BODY_SLOT_WAIT: Duration = Duration::from_secs(1);

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
            max_body: config.max_body_bytes,
            body_read_timeout: config.body_read_timeout,
            body_slots: Arc::new(tokio::sync::Semaphore::new(config.max_body_requests)),
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
    ) -> Response<Body> {
        let start = Instant::now();
        let _in_flight = self.metrics.in_flight();
        let route = Route::classify(req.uri().path());
        let method = MethodLabel::of(req.method());
        let mut resp = self.respond(req, route, access).await;
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
            return self.route(req, route).await;
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
            None => self.route(req, route).await,
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

    async fn route(&self, req: Request<Incoming>, route: Route) -> Response<Body> {
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
            Route::Echo => self.echo(req).await,
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

    async fn echo(&self, req: Request<Incoming>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body) {
            return self.too_large();
        }
        // Bounded memory: at most --max-body-requests bodies are read or answered at once.
        let permit =
            match tokio::time::timeout(BODY_SLOT_WAIT, self.body_slots.clone().acquire_owned())
                .await
            {
                Ok(Ok(p)) => p,
                _ => {
                    let mut resp = text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "busy: too many request bodies in progress, retry later\n",
                    );
                    resp.headers_mut()
                        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
                    resp.headers_mut().insert(CONNECTION, CLOSE);
                    return resp;
                }
            };
        let limit = usize::try_from(self.max_body).unwrap_or(usize::MAX);
        let read =
            tokio::time::timeout(self.body_read_timeout, Limited::new(body, limit).collect());
        let bytes: Bytes = match read.await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return self.too_large(),
            Ok(Err(e)) => {
                return text_owned(
                    StatusCode::BAD_REQUEST,
                    format!("could not read the request body: {e}\n"),
                )
            }
            Err(_) => {
                let mut resp = text_owned(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {}\n",
                        humantime::format_duration(self.body_read_timeout)
                    ),
                );
                resp.headers_mut().insert(CONNECTION, CLOSE);
                return resp;
            }
        };
        let mut headers = serde_json::Map::new();
        for name in parts.headers.keys() {
            let values: Vec<Value> = parts
                .headers
                .get_all(name)
                .iter()
                .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            let value = if values.len() == 1 {
                values.into_iter().next().unwrap_or(Value::Null)
            } else {
                Value::Array(values)
            };
            headers.insert(name.as_str().to_owned(), value);
        }
        let doc = json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "http_version": format!("{:?}", parts.version),
            "headers": headers,
            "body_bytes": bytes.len(),
            "region": self.identity.region,
            "version": self.identity.version,
            "pod": self.identity.pod,
        });
        let mut resp = with_type(
            Response::new(Body::held(echo_document(&doc, &bytes), permit)),
            JSON,
        );
        *resp.status_mut() = StatusCode::OK;
        resp
    }

    fn too_large(&self) -> Response<Body> {
        let mut resp = text_owned(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body exceeds the limit of {} bytes\n",
                self.max_body
            ),
        );
        // The unread rest of the body makes the connection unusable for another request.
        resp.headers_mut().insert(CONNECTION, CLOSE);
        resp
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

#[inline]
fn with_type(mut resp: Response<Body>, content_type: HeaderValue) -> Response<Body> {
    resp.headers_mut().insert(CONTENT_TYPE, content_type);
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = with_type(
        Response::new(Body::full(Bytes::from_static(body.as_bytes()))),
        TEXT,
    );
    *resp.status_mut() = status;
    resp
}

fn text_owned(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = with_type(Response::new(Body::full(body)), TEXT);
    *resp.status_mut() = status;
    resp
}

/// `/echo`'s answer in one buffer: `doc` with the body added as `body` (a JSON string,
/// escaped straight into the buffer) or, when it is not UTF-8 or escaping would more than
/// double it (control bytes become six), as `body_base64`. So the answer is at most about
/// twice the body, and the body is never held in a third form.
fn echo_document(doc: &Value, body: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(body).ok().filter(|s| {
        let escaped: usize = s
            .bytes()
            .map(|b| match b {
                b'"' | b'\\' => 2,
                0..=0x1f => 6,
                _ => 1,
            })
            .sum();
        escaped <= 2 * s.len() + 16
    });
    let extra = match text {
        Some(_) => 2 * body.len() + 16,
        None => body.len().div_ceil(3) * 4 + 24,
    };
    let mut out = serde_json::to_vec(doc).unwrap_or_else(|_| b"{}".to_vec());
    out.reserve(extra + 2);
    // Reopen the object: `{...}` becomes `{...,"body":...}`.
    out.pop();
    match text {
        Some(s) => {
            out.extend_from_slice(b",\"body\":");
            // Writing into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, s);
        }
        None => {
            use base64::Engine as _;
            out.extend_from_slice(b",\"body_base64\":\"");
            let start = out.len();
            out.resize(start + body.len().div_ceil(3) * 4, 0);
            let n = base64::engine::general_purpose::STANDARD
                .encode_slice(body, &mut out[start..])
                .unwrap_or(0);
            out.truncate(start + n);
            out.push(b'"');
        }
    }
    out.extend_from_slice(b"}\n");
    out
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
