//! What a target is sent: method, extra headers and body.
//!
//! The flags (`--method`, `--header`, `--body`, `--body-file`, `--content-type`) give every
//! target the same request; an entry of the targets file may override any part for its own
//! target, so one run can mix `GET /` on one cluster with `POST /echo` on another. The
//! request is still serialised once per target, body included, and written with one
//! `write` per exchange: a body costs no copy on the hot path.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::Method;

use crate::error::UsageError;

/// One target's request, before `Host` is added.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Option<Arc<[u8]>>,
}

impl Default for RequestSpec {
    fn default() -> Self {
        RequestSpec {
            method: Method::GET,
            headers: HeaderMap::new(),
            body: None,
        }
    }
}

impl RequestSpec {
    /// A `HEAD` answer carries no body whatever its headers say (RFC 9110 §9.3.2).
    pub fn answer_has_body(&self) -> bool {
        self.method != Method::HEAD
    }

    /// `self` with the parts `over` sets replaced: method and body when given, headers
    /// name by name.
    pub fn overlay(&self, over: &RequestOverride) -> RequestSpec {
        let mut out = self.clone();
        if let Some(m) = &over.method {
            out.method = m.clone();
        }
        for name in over.headers.keys() {
            out.headers.remove(name);
        }
        for (name, value) in &over.headers {
            out.headers.append(name.clone(), value.clone());
        }
        if let Some(b) = &over.body {
            out.body = Some(b.clone());
        }
        out
    }

    /// One line for the run header, e.g. `POST, 512 B body`; `None` for a plain GET.
    pub fn describe(&self) -> Option<String> {
        match (&self.method, &self.body) {
            (&Method::GET, None) => None,
            (m, None) => Some(m.to_string()),
            (m, Some(b)) => Some(format!("{m}, {} B body", b.len())),
        }
    }
}

/// What a targets-file entry changes for its own target.
#[derive(Debug, Clone, Default)]
pub struct RequestOverride {
    pub method: Option<Method>,
    pub headers: HeaderMap,
    pub body: Option<Arc<[u8]>>,
}

/// Methods a load test may send. `CONNECT` asks for a tunnel and would leave the
/// connection speaking something other than HTTP, so it is refused.
pub fn parse_method(what: &str, raw: &str) -> Result<Method, UsageError> {
    // Methods are case-sensitive on the wire; people type `post`, so upper-case it.
    let m = Method::from_bytes(raw.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| UsageError::new(format!("{what} {raw:?}: not an HTTP method")))?;
    if m == Method::CONNECT {
        return Err(UsageError::new(format!(
            "{what} CONNECT: tunnels are not load-tested; use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS"
        )));
    }
    Ok(m)
}

/// Parses `Name: value`.
pub fn parse_header(what: &str, h: &str) -> Result<(HeaderName, HeaderValue), UsageError> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| UsageError::new(format!("{what} {h:?}: expected `Name: value`")))?;
    header(what, name, value)
}

/// Checks one header name and value.
pub fn header(
    what: &str,
    name: &str,
    value: &str,
) -> Result<(HeaderName, HeaderValue), UsageError> {
    let n: HeaderName = name
        .trim()
        .parse()
        .map_err(|_| UsageError::new(format!("{what} {name:?}: bad header name")))?;
    // The generator frames the body itself; a second length would be a smuggling pattern.
    if n == http::header::CONTENT_LENGTH || n == http::header::TRANSFER_ENCODING {
        return Err(UsageError::new(format!(
            "{what} {name:?}: set by loadgen from the body; do not give it"
        )));
    }
    let v: HeaderValue = value
        .trim()
        .parse()
        .map_err(|_| UsageError::new(format!("{what} {name:?}: bad header value")))?;
    Ok((n, v))
}

/// The body from `--body` or `--body-file` (at most one), as given: no newline is
/// added or removed.
pub fn body(
    what: &str,
    inline: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<Arc<[u8]>>, UsageError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(UsageError::new(format!(
            "{what}: give a body or a body file, not both"
        ))),
        (Some(s), None) => Ok(Some(Arc::from(s.as_bytes()))),
        (None, Some(p)) => Ok(Some(Arc::from(crate::error::read_input_bytes(
            p,
            "body file",
        )?))),
        (None, None) => Ok(None),
    }
}

/// Adds `Content-Type` unless the headers already carry one.
pub fn set_content_type(
    headers: &mut HeaderMap,
    what: &str,
    ct: Option<&str>,
) -> Result<(), UsageError> {
    if let Some(ct) = ct {
        let (n, v) = header(what, CONTENT_TYPE.as_str(), ct)?;
        headers.insert(n, v);
    }
    Ok(())
}

/// A request's parts as a targets or requests file gives them, before they are checked.
#[derive(Debug, Clone, Copy)]
pub struct FileParts<'a> {
    pub method: Option<&'a str>,
    pub headers: &'a BTreeMap<String, String>,
    pub content_type: Option<&'a str>,
    pub body: Option<&'a str>,
    /// Relative to `base` (the file's own folder).
    pub body_file: Option<&'a Path>,
}

impl FileParts<'_> {
    /// The parts checked, as an override of the flags' request; body files are read
    /// through `bodies` (once each, bounded together).
    pub fn to_override(
        self,
        what: &str,
        base: &Path,
        bodies: &mut BodyFiles,
    ) -> Result<RequestOverride, UsageError> {
        let mut over = RequestOverride {
            method: self
                .method
                .map(|m| parse_method(&format!("{what}: method"), m))
                .transpose()?,
            ..Default::default()
        };
        for (n, v) in self.headers {
            let (n, v) = header(&format!("{what}: header"), n, v)?;
            over.headers.append(n, v);
        }
        set_content_type(&mut over.headers, what, self.content_type)?;
        over.body = match self.body_file.map(|p| base.join(p)) {
            Some(file) if self.body.is_none() => Some(bodies.read(what, &file)?),
            file => body(what, self.body, file.as_deref())?,
        };
        Ok(over)
    }
}

/// Most bytes of body files one targets or requests file may name, all files together.
pub const MAX_BODY_FILES_BYTES: u64 = 64 * 1024 * 1024;

/// The body files a targets or requests file names, each read once and shared.
#[derive(Debug, Default)]
pub struct BodyFiles {
    read: BTreeMap<std::path::PathBuf, std::sync::Arc<[u8]>>,
    bytes: u64,
}

impl BodyFiles {
    pub fn read(&mut self, what: &str, file: &Path) -> Result<std::sync::Arc<[u8]>, UsageError> {
        if let Some(b) = self.read.get(file) {
            return Ok(b.clone());
        }
        let body: std::sync::Arc<[u8]> = std::sync::Arc::from(
            crate::error::read_input_bytes(file, "body file")
                .map_err(|e| UsageError::new(format!("{what}: {e}")))?,
        );
        self.bytes += body.len() as u64;
        if self.bytes > MAX_BODY_FILES_BYTES {
            return Err(UsageError::new(format!(
                "{what}: the body files together exceed {} MiB",
                MAX_BODY_FILES_BYTES >> 20
            )));
        }
        self.read.insert(file.to_owned(), body.clone());
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn methods_and_headers_are_checked() {
        assert_eq!(parse_method("--method", "post").unwrap(), Method::POST);
        assert!(parse_method("--method", "CONNECT").is_err());
        assert!(parse_method("--method", "GE T").is_err());
        assert_eq!(parse_method("--method", "PATCH").unwrap(), Method::PATCH);
        assert!(parse_header("--header", "content-length: 5").is_err());
        assert!(parse_header("--header", "x-a 1").is_err());
        assert!(parse_header("--header", "x-a: 1").is_ok());
    }

    #[test]
    fn an_override_replaces_only_what_it_sets() {
        let mut base = RequestSpec::default();
        base.headers.insert("x-a", HeaderValue::from_static("1"));
        base.headers.insert("x-b", HeaderValue::from_static("2"));
        let mut over = RequestOverride {
            method: Some(Method::POST),
            body: Some(Arc::from(&b"hi"[..])),
            ..Default::default()
        };
        over.headers.insert("x-b", HeaderValue::from_static("3"));
        let got = base.overlay(&over);
        assert_eq!(got.method, Method::POST);
        assert_eq!(got.headers["x-a"], "1");
        assert_eq!(got.headers.get_all("x-b").iter().count(), 1);
        assert_eq!(got.headers["x-b"], "3");
        assert_eq!(got.body.as_deref(), Some(&b"hi"[..]));
        assert_eq!(got.describe().as_deref(), Some("POST, 2 B body"));
        assert!(RequestSpec::default().describe().is_none());
    }

    #[test]
    fn a_body_comes_from_one_place() {
        assert!(body("--body", Some("a"), Some(Path::new("/x"))).is_err());
        let e = body("--body-file", None, Some(Path::new("/no/such/file"))).unwrap_err();
        assert!(e.to_string().contains("cannot read body file"), "{e}");
        assert!(body("x", None, None).unwrap().is_none());
    }
}
