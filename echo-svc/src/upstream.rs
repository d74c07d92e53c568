//! Allow-listed upstream calls: `/call/{name}[/path]`.
//!
//! Only upstreams named in the configuration can be called (no open proxy; redirects are not
//! followed and system proxies are ignored). The rest of the path after the name is appended to
//! the upstream's base URL, so `/call/eu/call/us` asks eu to call us and the hop chain shows
//! every instance that answered. Tracing headers (`x-request-id`, W3C trace context, b3) are
//! propagated; a missing `x-request-id` is generated so every hop logs the same id.
//!
//! Bounds: each hop sends `x-echo-hops` (how many echo instances the request has passed)
//! and `x-echo-chain` (which ones) upstream, and a request arriving with `--max-hops` hops
//! already is refused with 508 Loop Detected, so two regions that allow-list each other
//! cannot be made to bounce a request back and forth until the file descriptors run out.
//! The path after the name may not contain `.`/`..` segments (raw or percent-encoded):
//! resolving them would leave the upstream's configured base path.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{json, Value};

use crate::config::Upstream;
use crate::identity::{Identity, X_ECHO_POD, X_ECHO_REGION, X_ECHO_VERSION};

/// Tracing headers copied from the incoming request to the upstream call (the request id
/// is set apart: it is generated when missing).
const PROPAGATED: &[&str] = &[
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-ot-span-context",
];

/// Largest upstream response body we buffer to read its hop chain.
const MAX_UPSTREAM_BODY: usize = 1024 * 1024;

/// Request id header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Echo instances a request has passed through so far.
pub const X_ECHO_HOPS: HeaderName = HeaderName::from_static("x-echo-hops");
/// Which instances (`region/pod`, comma-separated), oldest first.
pub const X_ECHO_CHAIN: HeaderName = HeaderName::from_static("x-echo-chain");

/// The outcome of a `/call`: status and JSON document to send back.
#[derive(Debug)]
pub(crate) struct CallOutcome {
    pub status: StatusCode,
    pub body: Value,
    pub request_id: HeaderValue,
}

/// Calls configured upstreams.
#[derive(Debug)]
pub(crate) struct Forwarder {
    client: reqwest::Client,
    upstreams: Vec<Upstream>,
    timeout: Duration,
    max_hops: u32,
}

/// Whether `rest` (the path after `/call/{name}`) has a `.` or `..` segment, raw or
/// percent-encoded. A backslash separates segments too: the URL parser reads `\` as `/`
/// in http URLs, so `..\..\x` would climb out of the base just as `../../x` would.
fn has_dot_segment(rest: &str) -> bool {
    let lower = rest.to_ascii_lowercase().replace("%5c", "\\");
    lower.split(['/', '\\']).any(|seg| {
        let decoded = seg.replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

/// The upstream's URL with `rest` (the path after `/call/{name}`) appended to its base
/// path, or why that would leave the base: a `.`/`..` segment, or a path the parser
/// resolved to somewhere else.
fn url_under(base_url: &reqwest::Url, rest: &str) -> Result<reqwest::Url, &'static str> {
    if has_dot_segment(rest) {
        return Err("the path after /call/{name} may not contain . or .. segments");
    }
    let mut url = base_url.clone();
    let base = url.path().trim_end_matches('/').to_owned();
    let path = if rest.is_empty() && base.is_empty() {
        "/".to_owned()
    } else {
        format!("{base}{rest}")
    };
    url.set_path(&path);
    let inside =
        base.is_empty() || url.path() == base || url.path().starts_with(&format!("{base}/"));
    if inside {
        Ok(url)
    } else {
        Err("the path after /call/{name} leaves the upstream's base path")
    }
}

impl Forwarder {
    pub fn new(upstreams: Vec<Upstream>, timeout: Duration, max_hops: u32) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .context("building the upstream HTTP client")?;
        Ok(Forwarder {
            client,
            upstreams,
            timeout,
            max_hops,
        })
    }

    /// Call upstream `name` with `rest` (path after the name, may be empty).
    pub async fn call(
        &self,
        name: &str,
        rest: &str,
        incoming: &HeaderMap,
        me: &Identity,
    ) -> CallOutcome {
        let request_id = incoming
            .get(X_REQUEST_ID)
            .cloned()
            .unwrap_or_else(new_request_id);
        let call = match self.check(name, rest, incoming, me) {
            Ok(call) => call,
            Err((status, body)) => {
                return CallOutcome {
                    status,
                    body,
                    request_id,
                }
            }
        };
        let (status, body) = match self.exchange(&call, incoming, &request_id).await {
            Ok((upstream_status, upstream_hop, body)) => {
                answered(&call, &request_id, upstream_status, upstream_hop, &body)
            }
            Err((status, error)) => (
                status,
                json!({
                    "error": error,
                    "upstream": call.name,
                    "url": call.url.as_str(),
                    "request_id": request_id.to_str().unwrap_or(""),
                    "hops": [call.me],
                }),
            ),
        };
        CallOutcome {
            status,
            body,
            request_id,
        }
    }

    /// What a call needs, once the upstream is allow-listed, the hop limit holds and the
    /// path stays under the upstream's base; otherwise the refusal to send back.
    fn check<'a>(
        &self,
        name: &'a str,
        rest: &str,
        incoming: &HeaderMap,
        me: &Identity,
    ) -> Result<Call<'a>, (StatusCode, Value)> {
        let Some(upstream) = self.upstreams.iter().find(|u| u.name == name) else {
            let known: Vec<&str> = self.upstreams.iter().map(|u| u.name.as_str()).collect();
            return Err((
                StatusCode::NOT_FOUND,
                json!({
                    "error": format!("upstream {name:?} is not in the allow-list"),
                    "allowed": known,
                    "hops": [me.hop()],
                }),
            ));
        };
        let hops: u32 = incoming
            .get(X_ECHO_HOPS)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let chain = incoming
            .get(X_ECHO_CHAIN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if hops >= self.max_hops {
            return Err((
                StatusCode::LOOP_DETECTED,
                json!({
                    "error": format!(
                        "hop limit reached: this request already passed {hops} echo instances (--max-hops {})",
                        self.max_hops
                    ),
                    "chain": chain,
                    "hops": [me.hop()],
                }),
            ));
        }
        let url = url_under(&upstream.url, rest).map_err(|why| {
            (
                StatusCode::BAD_REQUEST,
                json!({ "error": why, "hops": [me.hop()] }),
            )
        })?;
        let me_text = format!("{}/{}", me.region, me.pod);
        Ok(Call {
            name,
            url,
            hops: hops + 1,
            chain: if chain.is_empty() {
                me_text
            } else {
                format!("{chain},{me_text}")
            },
            me: me.hop(),
        })
    }

    /// Sends the call and reads the answer (at most [`MAX_UPSTREAM_BODY`]): its status,
    /// who answered, and its body; or the status and error to answer with instead.
    async fn exchange(
        &self,
        call: &Call<'_>,
        incoming: &HeaderMap,
        request_id: &HeaderValue,
    ) -> Result<(StatusCode, Value, Vec<u8>), (StatusCode, String)> {
        let name = call.name;
        let mut req = self
            .client
            .get(call.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .header(X_REQUEST_ID, request_id.clone())
            .header(X_ECHO_HOPS, call.hops.to_string());
        if let Ok(v) = HeaderValue::from_str(&call.chain) {
            req = req.header(X_ECHO_CHAIN, v);
        }
        for header in PROPAGATED {
            for value in incoming.get_all(*header) {
                req = req.header(*header, value.clone());
            }
        }
        let failed = |e: reqwest::Error, while_: &str| {
            if e.is_timeout() {
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    match while_ {
                        "" => format!(
                            "upstream {name:?} did not answer within {}",
                            humantime::format_duration(self.timeout)
                        ),
                        _ => format!("upstream {name:?} timed out{while_}"),
                    },
                )
            } else {
                (
                    StatusCode::BAD_GATEWAY,
                    format!("upstream {name:?} failed{while_}: {}", error_chain(&e)),
                )
            }
        };
        let mut resp = req.send().await.map_err(|e| failed(e, ""))?;
        let status = resp.status();
        let header = |h: &HeaderName| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let hop = json!({
            "region": header(&X_ECHO_REGION),
            "version": header(&X_ECHO_VERSION),
            "pod": header(&X_ECHO_POD),
            "status": status.as_u16(),
        });
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| failed(e, " while sending its body"))?
        {
            if body.len() + chunk.len() > MAX_UPSTREAM_BODY {
                return Err((
                    StatusCode::BAD_GATEWAY,
                    format!("upstream {name:?} sent a body larger than {MAX_UPSTREAM_BODY} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, hop, body))
    }
}

/// One allowed call: the upstream's name, the URL under its base, and the hop headers
/// to send (this instance added).
#[derive(Debug)]
struct Call<'a> {
    name: &'a str,
    url: reqwest::Url,
    hops: u32,
    chain: String,
    /// This instance's own hop entry.
    me: Value,
}

/// The status and document for an upstream that answered. A nested /call answers with its
/// own chain; it is spliced in so the whole path shows. A 5xx upstream is a 502 here.
fn answered(
    call: &Call<'_>,
    request_id: &HeaderValue,
    upstream_status: StatusCode,
    upstream_hop: Value,
    body: &[u8],
) -> (StatusCode, Value) {
    let mut hops = vec![call.me.clone()];
    match serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("hops").and_then(Value::as_array).cloned())
    {
        Some(mut nested) if !nested.is_empty() => {
            if let Some(first) = nested.first_mut().and_then(Value::as_object_mut) {
                first.insert("status".into(), json!(upstream_status.as_u16()));
            }
            hops.extend(nested);
        }
        _ => hops.push(upstream_hop),
    }
    let mut doc = json!({
        "upstream": call.name,
        "url": call.url.as_str(),
        "request_id": request_id.to_str().unwrap_or(""),
        "upstream_status": upstream_status.as_u16(),
        "hops": hops,
    });
    if upstream_status.is_server_error() {
        doc["error"] = json!(format!(
            "upstream {:?} answered {}",
            call.name,
            upstream_status.as_u16()
        ));
        return (StatusCode::BAD_GATEWAY, doc);
    }
    (upstream_status, doc)
}

/// A random 128-bit hex request id.
fn new_request_id() -> HeaderValue {
    let id: u128 = rand::random();
    let text = format!("{id:032x}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// `error: cause: cause` for a reqwest error, whose Display hides the cause.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
