//! A requests file (`--requests [TARGET=]FILE`): many requests for one target, each with an
//! optional name that makes it a latency group and an SLO scope of its own.
//!
//! Two formats, told apart by the file's extension:
//!
//! - **loadgen's own** (`.yaml`, `.yml`, `.toml`, `.json`): a list under `requests`, each
//!   entry with `path` (and query; default `/`), and optionally `name`, `method`,
//!   `headers`, `content_type`, `body` or `body_file` (beside the file), and `weight` (for
//!   `--pick weight`, default 1);
//! - **vegeta's plain targets** (any other name), read as vegeta reads them: a line
//!   `METHOD URL`, then `Name: value` header lines and an optional `@body-file` line;
//!   blank lines and `#` comments between. The URL's path and query are sent; its scheme
//!   and host are the target's, so a file written for one cluster replays against another.
//!   Vegeta's format has no names: its requests share the target's groups.
//!
//! Bounded: the file at [`crate::error::MAX_INPUT_BYTES`], at most [`MAX_REQUESTS`]
//! requests and [`MAX_NAMES`] names, body files as a targets file's are.

use std::collections::BTreeMap;
use std::path::Path;

use http::uri::PathAndQuery;
use serde::Deserialize;

use crate::configured::request::{self, BodyFiles, RequestOverride};
use crate::error::UsageError;

/// Most requests one file may hold (each is serialised once per worker).
pub const MAX_REQUESTS: usize = 100_000;
/// Most distinct names (each is a latency group per served region and version).
pub const MAX_NAMES: usize = 256;
/// Longest name.
const MAX_NAME_BYTES: usize = 64;

/// `--pick`: which of a target's requests goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Pick {
    /// Each in turn, in the file's order.
    #[default]
    Turn,
    /// Uniformly at random.
    Random,
    /// At random, in proportion to each request's `weight`.
    Weight,
}

/// One request of a requests file.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its latency group and SLO scope (`name:`); `None` shares the target's.
    pub name: Option<String>,
    pub path: PathAndQuery,
    /// What it changes from the target's request.
    pub request: RequestOverride,
    /// Its share under `--pick weight`.
    pub weight: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRequest {
    name: Option<String>,
    #[serde(default = "root")]
    path: String,
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    content_type: Option<String>,
    body: Option<String>,
    body_file: Option<std::path::PathBuf>,
    weight: Option<f64>,
}

fn root() -> String {
    "/".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    requests: Vec<FileRequest>,
}

/// Reads a requests file, in the format its extension says.
pub fn load(path: &Path) -> Result<Vec<Endpoint>, UsageError> {
    let text = crate::error::read_input(path, "requests file")?;
    let what = format!("requests file {}", path.display());
    let base = path.parent().unwrap_or(Path::new("."));
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let endpoints = match ext {
        "yaml" | "yml" | "toml" | "json" => structured(&text, ext, &what, base)?,
        _ => vegeta(&text, &what, base)?,
    };
    if endpoints.is_empty() {
        return Err(UsageError::new(format!("{what}: holds no request")));
    }
    let names: std::collections::BTreeSet<&str> =
        endpoints.iter().filter_map(|e| e.name.as_deref()).collect();
    if names.len() > MAX_NAMES {
        return Err(UsageError::new(format!(
            "{what}: {} names; at most {MAX_NAMES} (each is a latency group)",
            names.len()
        )));
    }
    Ok(endpoints)
}

/// Reads `--requests` files (each once) and says which requests each of the targets
/// `names` gets: `NAME=FILE` the target so named, a bare `FILE` every target without its
/// own; an empty list for a target without any.
pub fn for_targets(specs: &[String], names: &[&str]) -> Result<Vec<Vec<Endpoint>>, UsageError> {
    let mut read: BTreeMap<&str, Vec<Endpoint>> = BTreeMap::new();
    let mut own: Vec<Option<&str>> = vec![None; names.len()];
    let mut every: Option<&str> = None;
    for spec in specs {
        let (name, file) = match spec.split_once('=') {
            Some((n, f)) if names.contains(&n) => (Some(n), f),
            _ => (None, spec.as_str()),
        };
        if !read.contains_key(file) {
            read.insert(file, load(Path::new(file))?);
        }
        match name {
            Some(n) => {
                for (slot, _) in own.iter_mut().zip(names).filter(|(_, x)| **x == n) {
                    *slot = Some(file);
                }
            }
            None if every.is_some() => {
                return Err(UsageError::new(format!(
                    "--requests {spec}: a second file for every target (name one: TARGET=FILE)"
                )))
            }
            None => every = Some(file),
        }
    }
    Ok(own
        .into_iter()
        .map(|f| f.or(every).map_or_else(Vec::new, |f| read[f].clone()))
        .collect())
}

/// A target's request names in the order the recorder numbers them: `""` (unnamed) at
/// 0, then each name of `endpoints` once, in the file's order.
pub fn names(endpoints: &[Endpoint]) -> Vec<String> {
    let mut out = vec![String::new()];
    for n in endpoints.iter().filter_map(|e| e.name.as_ref()) {
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    out
}

fn too_many(what: &str) -> UsageError {
    UsageError::new(format!("{what}: more than {MAX_REQUESTS} requests"))
}

fn structured(text: &str, ext: &str, what: &str, base: &Path) -> Result<Vec<Endpoint>, UsageError> {
    let shape: FileShape = match ext {
        "toml" => toml::from_str(text).map_err(|e| e.to_string()),
        "json" => serde_json::from_str(text).map_err(|e| e.to_string()),
        _ => serde_norway::from_str(text).map_err(|e| e.to_string()),
    }
    .map_err(|e| UsageError::new(format!("{what}: {e}")))?;
    if shape.requests.len() > MAX_REQUESTS {
        return Err(too_many(what));
    }
    let mut bodies = BodyFiles::default();
    shape
        .requests
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let what = format!("{what}: request {}", i + 1);
            let parts = request::FileParts {
                method: r.method.as_deref(),
                headers: &r.headers,
                content_type: r.content_type.as_deref(),
                body: r.body.as_deref(),
                body_file: r.body_file.as_deref(),
            };
            let over = parts.to_override(&what, base, &mut bodies)?;
            Ok(Endpoint {
                name: r.name.map(|n| check_name(&what, n)).transpose()?,
                path: parse_path(&what, &r.path)?,
                request: over,
                weight: check_weight(&what, r.weight.unwrap_or(1.0))?,
            })
        })
        .collect()
}

fn check_name(what: &str, name: String) -> Result<String, UsageError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok {
        Ok(name)
    } else {
        Err(UsageError::new(format!(
            "{what}: name {name:?}: 1 to {MAX_NAME_BYTES} letters, digits, '-', '_', '.' or '/'"
        )))
    }
}

fn check_weight(what: &str, w: f64) -> Result<f64, UsageError> {
    if w.is_finite() && w > 0.0 {
        Ok(w)
    } else {
        Err(UsageError::new(format!("{what}: weight {w}: must be > 0")))
    }
}

fn parse_path(what: &str, raw: &str) -> Result<PathAndQuery, UsageError> {
    if !raw.starts_with('/') {
        return Err(UsageError::new(format!(
            "{what}: path {raw:?} must start with '/'"
        )));
    }
    raw.parse()
        .map_err(|e| UsageError::new(format!("{what}: path {raw:?}: {e}")))
}

/// Vegeta's plain targets format.
fn vegeta(text: &str, what: &str, base: &Path) -> Result<Vec<Endpoint>, UsageError> {
    let mut out: Vec<Endpoint> = Vec::new();
    let mut bodies = BodyFiles::default();
    // Whether the latest request may still take headers and a body (a blank line ends it).
    let mut open = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let at = format!("{what}: line {}", i + 1);
        if line.trim().is_empty() {
            open = false;
            continue;
        }
        if line.trim_start().starts_with('#') {
            continue;
        }
        if let Some(ep) = request_line(&at, line)? {
            if out.len() == MAX_REQUESTS {
                return Err(too_many(what));
            }
            out.push(ep);
            open = true;
            continue;
        }
        let Some(last) = out.last_mut().filter(|_| open) else {
            return Err(UsageError::new(format!(
                "{at}: {line:?} is not a request line (`METHOD URL`)"
            )));
        };
        if let Some(file) = line.strip_prefix('@') {
            if last.request.body.is_some() {
                return Err(UsageError::new(format!(
                    "{at}: a second body for one request"
                )));
            }
            last.request.body = Some(bodies.read(&at, &base.join(file.trim()))?);
        } else if let Some((n, v)) = line.split_once(':').filter(|(n, _)| !n.contains(' ')) {
            let (n, v) = request::header(&at, n, v.trim())?;
            last.request.headers.append(n, v);
        } else {
            return Err(UsageError::new(format!(
                "{at}: {line:?} is neither a header (`Name: value`) nor a body (`@file`)"
            )));
        }
    }
    Ok(out)
}

/// `METHOD URL` (an absolute `http(s)://` URL, or a path): a request, or `None` when the
/// line is something else.
fn request_line(at: &str, line: &str) -> Result<Option<Endpoint>, UsageError> {
    let mut words = line.split_whitespace();
    let (Some(method), Some(url), None) = (words.next(), words.next(), words.next()) else {
        return Ok(None);
    };
    if !method.bytes().all(|b| b.is_ascii_alphabetic()) || method.ends_with(':') {
        return Ok(None);
    }
    let path = if url.starts_with('/') {
        url.to_string()
    } else if url.starts_with("http://") || url.starts_with("https://") {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| UsageError::new(format!("{at}: URL {url:?}: {e}")))?;
        uri.path_and_query()
            .map_or("/".to_string(), |p| p.to_string())
    } else {
        return Ok(None);
    };
    Ok(Some(Endpoint {
        name: None,
        path: parse_path(at, &path)?,
        request: RequestOverride {
            method: Some(request::parse_method(&format!("{at}: method"), method)?),
            ..Default::default()
        },
        weight: 1.0,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn vegeta_text(text: &str) -> Result<Vec<Endpoint>, UsageError> {
        vegeta(text, "f", Path::new("."))
    }

    #[test]
    fn reads_vegeta_targets_as_vegeta_writes_them() {
        let eps = vegeta_text(
            "# recorded\nGET http://goku:9090/path/to/dragon?item=ball\nX-Account-ID: 8675309\n\n\
             DELETE https://goku/path/to/remove\nConfirmation-Token: 90215\nAuthorization: Token DEADBEEF\n\n\
             post /things\n",
        )
        .unwrap();
        assert_eq!(eps.len(), 3);
        assert_eq!(eps[0].path.as_str(), "/path/to/dragon?item=ball");
        assert_eq!(eps[0].request.headers["x-account-id"], "8675309");
        assert_eq!(eps[1].request.method, Some(http::Method::DELETE));
        assert_eq!(eps[1].request.headers.len(), 2);
        assert_eq!(eps[2].request.method, Some(http::Method::POST));
        assert!(eps.iter().all(|e| e.name.is_none()));
    }

    #[test]
    fn a_line_that_is_not_a_request_is_named_with_its_number() {
        let e = vegeta_text("GET http://a/\n\nthis is not a request\n").unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        let e = vegeta_text("X-Header: 1\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = vegeta_text("GET http://a/\n@no-such-body-file\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = vegeta_text("CONNECT http://a/\n").unwrap_err();
        assert!(e.to_string().contains("CONNECT"), "{e}");
    }

    #[test]
    fn a_file_of_too_many_requests_is_refused_before_it_is_kept() {
        let text = "GET /\n".repeat(MAX_REQUESTS + 1);
        let e = vegeta_text(&text).unwrap_err();
        assert!(e.to_string().contains("more than 100000 requests"), "{e}");
    }

    #[test]
    fn reads_the_structured_format_with_names_and_weights() {
        let yaml = "requests:\n  - {name: home, path: /}\n  - {name: checkout, path: /cart?x=1, method: post, body: '{}', weight: 2}\n";
        let eps = structured(yaml, "yaml", "f", Path::new(".")).unwrap();
        assert_eq!(eps[1].name.as_deref(), Some("checkout"));
        assert_eq!(eps[1].weight, 2.0);
        assert_eq!(eps[1].path.as_str(), "/cart?x=1");
        let bad = "requests:\n  - {name: 'no spaces please', path: /}\n";
        assert!(structured(bad, "yaml", "f", Path::new(".")).is_err());
        let bad = "requests:\n  - {path: nope}\n";
        assert!(structured(bad, "yaml", "f", Path::new(".")).is_err());
        let bad = "requests:\n  - {path: /, weight: 0}\n";
        assert!(structured(bad, "yaml", "f", Path::new(".")).is_err());
    }
}
