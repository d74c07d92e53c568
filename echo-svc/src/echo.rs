//! `/echo`: the request described back, body included, within a memory budget no client can
//! take for itself.
//!
//! The budget is bytes, `--max-body-bytes` x `--max-body-requests`, shared by every `/echo`
//! request from its first body byte until its answer is sent. A request reserves what has
//! arrived, as it arrives, so a client trickling a byte holds a byte, not a slot. One
//! connection holds at most a quarter of the budget (or one largest body), so one HTTP/2
//! connection with many streams cannot take it all. An answer must be read within
//! `--body-read-timeout` of being handed over: a reader that stops (a zero window that still
//! answers PINGs) has its connection closed, which frees what it held. The answer is at most
//! about twice the body, so memory stays under budget x 3. The budget itself is
//! [`crate::budget`].

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::body::{text, text_owned, with_type, Body, CLOSE, JSON};
use crate::budget::{Budget, Refused, Reservation};
use crate::config::Config;
use crate::deadlines::Watch;
use crate::identity::Identity;

/// The `/echo` handler and its budget.
#[derive(Debug)]
pub(crate) struct Echo {
    budget: Budget,
    max_body: u64,
    body_read_timeout: Duration,
}

/// Why a body was not read.
#[derive(Debug)]
enum ReadError {
    TooLarge,
    Refused(Refused),
    Broken(hyper::Error),
}

impl Echo {
    pub(crate) fn new(config: &Config) -> Self {
        Echo {
            budget: Budget::new(config.max_body_bytes, config.max_body_requests),
            max_body: config.max_body_bytes,
            body_read_timeout: config.body_read_timeout,
        }
    }

    /// Serve `POST /echo` (any method is echoed).
    pub(crate) async fn answer(
        &self,
        req: Request<Incoming>,
        conn: &Arc<Watch>,
        identity: &Identity,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body) {
            return self.too_large();
        }
        let mut held = self.budget.open(conn);
        let read = tokio::time::timeout(self.body_read_timeout, self.read(body, &mut held));
        let bytes = match read.await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(ReadError::TooLarge)) => return self.too_large(),
            Ok(Err(ReadError::Refused(why))) => return busy(why),
            Ok(Err(ReadError::Broken(e))) => {
                return text_owned(
                    StatusCode::BAD_REQUEST,
                    format!("could not read the request body: {e}\n"),
                )
            }
            Err(_) => return self.too_slow(),
        };
        let doc = describe(&parts, bytes.len(), identity);
        let answer = echo_document(&doc, &bytes);
        drop(bytes);
        held.send_within(self.body_read_timeout);
        let mut resp = with_type(Response::new(Body::held(answer, held)), JSON);
        *resp.status_mut() = StatusCode::OK;
        resp
    }

    /// Reads the body, reserving budget for each piece as it arrives.
    async fn read(&self, mut body: Incoming, held: &mut Reservation) -> Result<Bytes, ReadError> {
        let limit = usize::try_from(self.max_body).unwrap_or(usize::MAX);
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(ReadError::Broken)?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            if buf.len() + data.len() > limit {
                return Err(ReadError::TooLarge);
            }
            self.budget
                .reserve(held, data.len())
                .await
                .map_err(ReadError::Refused)?;
            buf.extend_from_slice(&data);
        }
        Ok(buf.freeze())
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

    fn too_slow(&self) -> Response<Body> {
        let mut resp = text_owned(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {}\n",
                humantime::format_duration(self.body_read_timeout)
            ),
        );
        resp.headers_mut().insert(CONNECTION, CLOSE);
        resp
    }
}

fn busy(why: Refused) -> Response<Body> {
    let mut resp = text(
        StatusCode::SERVICE_UNAVAILABLE,
        match why {
            Refused::Busy => "busy: too many request bodies in progress, retry later\n",
            Refused::ConnectionShare => {
                "busy: this connection holds its share of request bodies, retry later\n"
            }
        },
    );
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    resp.headers_mut().insert(CONNECTION, CLOSE);
    resp
}

fn describe(parts: &http::request::Parts, body_bytes: usize, identity: &Identity) -> Value {
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
    json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "http_version": format!("{:?}", parts.version),
        "headers": headers,
        "body_bytes": body_bytes,
        "region": identity.region,
        "version": identity.version,
        "pod": identity.pod,
    })
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
