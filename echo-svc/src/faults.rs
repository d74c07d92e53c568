//! Fault injection: parsing, validating and sampling fault specifications.
//!
//! A fault specification uses query-string syntax, both in request query parameters and in the
//! server-wide default (`--faults`):
//!
//! | parameter | example | effect |
//! |---|---|---|
//! | `delay` | `delay=10ms:90,200ms:10` | wait before answering |
//! | `status` | `status=503:5,429:1` | answer with this status instead of the route's |
//! | `size` | `size=1024` | replace the response body with this many bytes |
//! | `close` | `close=true` | close the (HTTP/1) connection after the response |
//! | `header` | `header=X-Foo:bar` (repeatable) | add a response header: `x-*` (not `x-echo-*`) or one of [`ALLOWED_HEADERS`] |
//!
//! `delay`, `status`, `size` and `close` take a *weighted choice*: comma-separated
//! `value:weight` entries, where weights are percentages of requests. The weights may add up to
//! less than 100; the remainder of requests is unaffected. A single value without a weight
//! applies to every request. Each parameter is rolled independently per request.
//!
//! Parsing never panics; every error names the parameter at fault so the HTTP layer can answer
//! 400 with a useful message. Caps (`--max-delay`, `--max-size`) are checked separately by
//! [`FaultSpec::check_caps`] because they depend on configuration.

use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use rand::Rng;

use crate::weighted::{truncate, Weighted};

/// Most `header=` parameters accepted in one specification.
pub const MAX_HEADERS: usize = 16;

/// Standard response headers a `header=` fault may set besides `x-` names: ones that
/// change caching and retry behaviour, which is what fault testing wants to exercise.
/// Everything else is refused: framing and content headers (a second Content-Type would
/// turn `/echo`'s reflected input into HTML), Location (an open redirect), Set-Cookie
/// (session fixation), and the `x-echo-` identity headers, which must always tell the truth.
pub const ALLOWED_HEADERS: &[&str] = &[
    "cache-control",
    "expires",
    "pragma",
    "retry-after",
    "server-timing",
    "vary",
    "warning",
];

/// Whether a `header=` fault may set `name` (lower case, as `HeaderName` keeps it).
fn injectable(name: &str) -> bool {
    (name.starts_with("x-") && !name.starts_with("x-echo-")) || ALLOWED_HEADERS.contains(&name)
}

/// A malformed or out-of-range fault parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad fault parameter `{param}`: {reason}")]
pub struct FaultError {
    /// The parameter at fault (`delay`, `status`, ...).
    pub param: &'static str,
    /// What is wrong with it, quoting the offending value.
    pub reason: String,
}

impl FaultError {
    fn new(param: &'static str, reason: impl Into<String>) -> Self {
        Self {
            param,
            reason: reason.into(),
        }
    }
}

/// Upper bounds applied to fault values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted `delay` (and `POST /stall?for=`).
    pub max_delay: Duration,
    /// Largest accepted `size` in bytes.
    pub max_size: u64,
}

/// A set of faults to inject; see the module documentation for the syntax.
///
/// Build one with `"delay=40ms".parse::<FaultSpec>()` (strict: unknown parameters are errors)
/// or [`FaultSpec::from_query`] (lenient: other query parameters are ignored).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSpec {
    /// Delay before answering.
    pub delay: Option<Weighted<Duration>>,
    /// Status code replacing the route's answer (200..=599).
    pub status: Option<Weighted<u16>>,
    /// Response body size in bytes, replacing the route's body.
    pub size: Option<Weighted<u64>>,
    /// Close the connection after the response.
    pub close: Option<Weighted<bool>>,
    /// Extra response headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// The faults chosen for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Answer with this status instead.
    pub status: Option<u16>,
    /// Replace the body with this many bytes.
    pub size: Option<u64>,
    /// Close the connection afterwards.
    pub close: bool,
}

impl fmt::Display for Plan {
    /// The applied faults as `delay=200ms,status=503,size=10,close`; empty when none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(d) = self.delay {
            write!(f, "delay={}", DisplayDuration(d))?;
            sep = ",";
        }
        if let Some(s) = self.status {
            write!(f, "{sep}status={s}")?;
            sep = ",";
        }
        if let Some(n) = self.size {
            write!(f, "{sep}size={n}")?;
            sep = ",";
        }
        if self.close {
            write!(f, "{sep}close")?;
        }
        Ok(())
    }
}

impl FaultSpec {
    /// True when nothing would be injected.
    pub fn is_empty(&self) -> bool {
        self.delay.is_none()
            && self.status.is_none()
            && self.size.is_none()
            && self.close.is_none()
            && self.headers.is_empty()
    }

    /// Parse the fault parameters out of a request query string, ignoring other parameters.
    pub fn from_query(query: &str) -> Result<Self, FaultError> {
        Self::parse_pairs(query, false)
    }

    fn parse_pairs(query: &str, strict: bool) -> Result<Self, FaultError> {
        let mut spec = FaultSpec::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "delay" => {
                    once(&spec.delay, "delay")?;
                    spec.delay = Some(Weighted::parse(&value, parse_delay).map_err(|e| FaultError::new("delay", e))?);
                }
                "status" => {
                    once(&spec.status, "status")?;
                    spec.status = Some(Weighted::parse(&value, parse_status).map_err(|e| FaultError::new("status", e))?);
                }
                "size" => {
                    once(&spec.size, "size")?;
                    spec.size = Some(Weighted::parse(&value, parse_size).map_err(|e| FaultError::new("size", e))?);
                }
                "close" => {
                    once(&spec.close, "close")?;
                    spec.close = Some(Weighted::parse(&value, parse_close).map_err(|e| FaultError::new("close", e))?);
                }
                "header" => {
                    if spec.headers.len() >= MAX_HEADERS {
                        return Err(FaultError::new(
                            "header",
                            format!("more than {MAX_HEADERS} headers"),
                        ));
                    }
                    spec.headers.push(parse_header(&value)?);
                }
                "" if strict && value.is_empty() => {}
                other if strict => {
                    return Err(FaultError::new(
                        "faults",
                        format!(
                            "unknown fault parameter {:?} (expected delay, status, size, close or header)",
                            truncate(other)
                        ),
                    ))
                }
                _ => {}
            }
        }
        Ok(spec)
    }

    /// Check every value against the configured caps.
    pub fn check_caps(&self, limits: &Limits) -> Result<(), FaultError> {
        if let Some(delay) = &self.delay {
            for (d, _) in delay.choices() {
                if *d > limits.max_delay {
                    return Err(FaultError::new(
                        "delay",
                        format!(
                            "{} exceeds the cap of {}",
                            DisplayDuration(*d),
                            humantime::format_duration(limits.max_delay)
                        ),
                    ));
                }
            }
        }
        if let Some(size) = &self.size {
            for (s, _) in size.choices() {
                if *s > limits.max_size {
                    return Err(FaultError::new(
                        "size",
                        format!("{s} bytes exceeds the cap of {} bytes", limits.max_size),
                    ));
                }
            }
        }
        Ok(())
    }

    /// This specification with every parameter given in `over` replaced by `over`'s value;
    /// headers from both are kept.
    pub fn overlay(&self, over: &FaultSpec) -> FaultSpec {
        let mut headers = self.headers.clone();
        headers.extend(over.headers.iter().cloned());
        FaultSpec {
            delay: over.delay.clone().or_else(|| self.delay.clone()),
            status: over.status.clone().or_else(|| self.status.clone()),
            size: over.size.clone().or_else(|| self.size.clone()),
            close: over.close.clone().or_else(|| self.close.clone()),
            headers,
        }
    }

    /// Roll the dice for one request.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Plan {
        Plan {
            delay: self.delay.as_ref().and_then(|w| w.sample(rng)).copied(),
            status: self.status.as_ref().and_then(|w| w.sample(rng)).copied(),
            size: self.size.as_ref().and_then(|w| w.sample(rng)).copied(),
            close: self
                .close
                .as_ref()
                .and_then(|w| w.sample(rng))
                .copied()
                .unwrap_or(false),
        }
    }
}

impl FromStr for FaultSpec {
    type Err = FaultError;

    /// Strict parse for configuration: unknown parameters are errors. An empty string is the
    /// empty specification.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_pairs(s.trim(), true)
    }
}

impl fmt::Display for FaultSpec {
    /// Query-string form that [`FromStr`] parses back to an equal value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let sep = |out: &mut String, key: &str| {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(key);
            out.push('=');
        };
        if let Some(w) = &self.delay {
            sep(&mut out, "delay");
            w.write(&mut out, |d, o| {
                let _ = write!(o, "{}", DisplayDuration(*d));
            });
        }
        if let Some(w) = &self.status {
            sep(&mut out, "status");
            w.write(&mut out, |v, o| {
                let _ = write!(o, "{v}");
            });
        }
        if let Some(w) = &self.size {
            sep(&mut out, "size");
            w.write(&mut out, |v, o| {
                let _ = write!(o, "{v}");
            });
        }
        if let Some(w) = &self.close {
            sep(&mut out, "close");
            w.write(&mut out, |v, o| {
                let _ = write!(o, "{v}");
            });
        }
        for (name, value) in &self.headers {
            sep(&mut out, "header");
            escape_into(&mut out, name.as_str().as_bytes());
            out.push(':');
            escape_into(&mut out, value.as_bytes());
        }
        f.write_str(&out)
    }
}

/// Formats a duration compactly and exactly (`40ms`, `1500us`, `7ns`), without the spaces
/// `humantime` puts between units, so it can sit in a query string.
#[derive(Debug, Clone, Copy)]
pub struct DisplayDuration(pub Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            f.write_str("0s")
        } else if nanos % 1_000_000_000 == 0 {
            write!(f, "{}s", nanos / 1_000_000_000)
        } else if nanos % 1_000_000 == 0 {
            write!(f, "{}ms", nanos / 1_000_000)
        } else if nanos % 1_000 == 0 {
            write!(f, "{}us", nanos / 1_000)
        } else {
            write!(f, "{nanos}ns")
        }
    }
}

fn once<T>(slot: &Option<T>, param: &'static str) -> Result<(), FaultError> {
    match slot {
        Some(_) => Err(FaultError::new(param, "given more than once")),
        None => Ok(()),
    }
}

/// Parse a humantime duration (`10ms`, `1s`), as used for `delay` and `POST /stall?for=`.
pub fn parse_delay(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{:?} is not a duration like 10ms or 1s: {e}", truncate(s)))
}

fn parse_status(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(code) if (200..=599).contains(&code) => Ok(code),
        _ => Err(format!(
            "{:?} is not a status code between 200 and 599",
            truncate(s)
        )),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| format!("{:?} is not a byte count", truncate(s)))
}

fn parse_close(s: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{:?} is not true or false", truncate(s))),
    }
}

fn parse_header(raw: &str) -> Result<(HeaderName, HeaderValue), FaultError> {
    let Some((name, value)) = raw.split_once(':') else {
        return Err(FaultError::new(
            "header",
            format!("{:?} is not `Name:Value`", truncate(raw)),
        ));
    };
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
        FaultError::new(
            "header",
            format!("{:?} is not a valid header name", truncate(name)),
        )
    })?;
    if !injectable(name.as_str()) {
        return Err(FaultError::new(
            "header",
            format!(
                "header {:?} may not be injected (allowed: x-* names other than x-echo-*, and {})",
                name.as_str(),
                ALLOWED_HEADERS.join(", ")
            ),
        ));
    }
    let value = HeaderValue::from_str(value.trim_start()).map_err(|_| {
        FaultError::new(
            "header",
            format!("{:?} is not a valid header value", truncate(value)),
        )
    })?;
    Ok((name, value))
}

/// Percent-encode the few bytes that would change the meaning of a query string.
fn escape_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'&' | b'=' | b'%' | b'+' | b'#' | b' ' | b',' => {
                let _ = write!(out, "%{b:02X}");
            }
            0x21..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_the_documented_examples() {
        let spec: FaultSpec =
            "delay=10ms:90,200ms:10&status=503:5,429:1&size=1024&close=true&header=X-A:b"
                .parse()
                .unwrap();
        assert_eq!(
            spec.delay.unwrap().choices(),
            &[
                (Duration::from_millis(10), 90.0),
                (Duration::from_millis(200), 10.0)
            ]
        );
        assert_eq!(spec.status.unwrap().choices(), &[(503, 5.0), (429, 1.0)]);
        assert_eq!(spec.size.unwrap().choices(), &[(1024, 100.0)]);
        assert_eq!(spec.close.unwrap().choices(), &[(true, 100.0)]);
        assert_eq!(spec.headers[0].0.as_str(), "x-a");
    }

    #[test]
    fn errors_name_the_parameter() {
        for (query, param) in [
            ("delay=abc", "delay"),
            ("status=700", "status"),
            ("status=503:60,500:50", "status"),
            ("size=-1", "size"),
            ("close=maybe", "close"),
            ("header=nocolon", "header"),
            ("header=content-length:5", "header"),
            ("delay=1ms,2ms", "delay"),
            ("delay=1ms&delay=2ms", "delay"),
        ] {
            let err = FaultSpec::from_query(query).unwrap_err();
            assert_eq!(err.param, param, "{query}: {err}");
        }
    }

    #[test]
    fn caps_are_enforced() {
        let limits = Limits {
            max_delay: Duration::from_secs(1),
            max_size: 10,
        };
        let spec = FaultSpec::from_query("delay=2s").unwrap();
        assert_eq!(spec.check_caps(&limits).unwrap_err().param, "delay");
        let spec = FaultSpec::from_query("size=11").unwrap();
        assert_eq!(spec.check_caps(&limits).unwrap_err().param, "size");
        let spec = FaultSpec::from_query("size=10&delay=1s").unwrap();
        spec.check_caps(&limits).unwrap();
    }

    #[test]
    fn lenient_query_ignores_other_keys_but_config_does_not() {
        assert!(FaultSpec::from_query("for=1s&x=y").unwrap().is_empty());
        assert_eq!("x=y".parse::<FaultSpec>().unwrap_err().param, "faults");
        assert!("".parse::<FaultSpec>().unwrap().is_empty());
    }

    #[test]
    fn pick_walks_cumulative_weights() {
        let w = Weighted::new(vec![(1, 90.0), (2, 10.0)]).unwrap();
        assert_eq!(w.pick(0.0), Some(&1));
        assert_eq!(w.pick(89.99), Some(&1));
        assert_eq!(w.pick(90.0), Some(&2));
        let partial = Weighted::new(vec![(1, 5.0)]).unwrap();
        assert_eq!(partial.pick(5.0), None);
    }
}
