//! Targets: named clusters and how a bare name becomes a URL.
//!
//! Resolution order for a bare name: `--target name=URL`, the targets file, the
//! environment variable `LOADGEN_TARGET_<NAME>`, then the mesh convention
//! `http://echo.<name>.mesh.local/`. `http://` and `https://` are spoken, both as
//! HTTP/1.1 written straight onto the connection to keep the per-request cost low.

use std::net::SocketAddr;

use http::uri::{Authority, PathAndQuery, Uri};

use crate::configured::request::RequestSpec;
use crate::configured::targets_file::FileTargets;
use crate::configured::MAX_TARGETS;
use crate::error::UsageError;

/// A resolved target.
#[derive(Debug, Clone)]
pub struct Target {
    /// Name used in reports and SLO scopes.
    pub name: String,
    /// Full URL as given or resolved.
    pub url: Uri,
    /// `host[:port]` for the Host header.
    pub authority: Authority,
    /// Path and query sent in each request.
    pub path: PathAndQuery,
    /// Share of the total rate (relative).
    pub weight: f64,
    /// Method, extra headers and body sent to it.
    pub request: RequestSpec,
    /// `https://`: connections are TLS, checked against this server name.
    pub tls: Option<rustls::pki_types::ServerName<'static>>,
    /// What its answers must say (`--check`), if anything.
    pub checks: Option<std::sync::Arc<crate::configured::checks::Checks>>,
    /// Its requests file's requests (`--requests`); empty: it is sent `path` and `request`.
    pub endpoints: Vec<crate::configured::requests_file::Endpoint>,
}

impl Target {
    /// Host and port to connect to.
    pub fn host_port(&self) -> (String, u16) {
        let host = self
            .authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let default_port = if self.tls.is_some() { 443 } else { 80 };
        (
            host.to_string(),
            self.authority.port_u16().unwrap_or(default_port),
        )
    }

    /// Resolves the host name to all its socket addresses.
    pub async fn resolve(&self) -> anyhow::Result<Vec<SocketAddr>> {
        use anyhow::Context as _;
        let (host, port) = self.host_port();
        // Bounded: a resolver that never answers must not hang the start of the run.
        let lookup = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 10s"))
        .and_then(|r| r.map_err(anyhow::Error::from));
        let addrs: Vec<SocketAddr> = lookup
            .with_context(|| format!("cannot resolve target {} ({})", self.name, self.url))?
            .collect();
        if addrs.is_empty() {
            anyhow::bail!("target {} ({}) resolved to no address", self.name, self.url);
        }
        Ok(addrs)
    }
}

/// Splits a trailing `@WEIGHT` off a target spec, if what follows `@` is a number.
fn split_weight(spec: &str) -> Result<(&str, Option<f64>), UsageError> {
    if let Some((head, tail)) = spec.rsplit_once('@') {
        if let Ok(w) = tail.parse::<f64>() {
            if !(w.is_finite() && w > 0.0) {
                return Err(UsageError::new(format!(
                    "target {spec:?}: weight must be > 0"
                )));
            }
            return Ok((head, Some(w)));
        }
    }
    Ok((spec, None))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// A target as asked for: its name (empty: named by its authority), its URL when given,
/// and its weight when given.
type Wanted = (String, Option<String>, Option<f64>);

/// Resolves target specs into targets. `env` looks up environment variables (a
/// parameter so tests need not touch the process environment).
pub fn resolve(
    specs: &[String],
    file: Option<&FileTargets>,
    path_override: Option<&str>,
    defaults: &RequestSpec,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Target>, UsageError> {
    let wanted = wanted(specs, file)?;
    let mut out: Vec<Target> = Vec::with_capacity(wanted.len());
    let mut seen = std::collections::HashSet::new();
    for (name, url, weight) in wanted {
        // A file entry's request changes apply to its name however its URL was found.
        let over = file.and_then(|f| f.get(&name)).map(|t| &t.request);
        let (url, file_weight) = match url {
            Some(u) => (u, None),
            None => url_of(&name, file, env)?,
        };
        let (uri, authority, tls) = parse_url(&name, &url)?;
        let name = if name.is_empty() {
            authority.to_string()
        } else {
            name
        };
        if !valid_name(&name) && !name.contains(':') {
            return Err(UsageError::new(format!(
                "target name {name:?} is not valid"
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(UsageError::new(format!("target {name:?} given twice")));
        }
        let path = match path_override {
            Some(p) => p
                .parse::<PathAndQuery>()
                .ok()
                .filter(|p| p.as_str().starts_with('/'))
                .ok_or_else(|| UsageError::new(format!("--path {p:?} is not a valid path")))?,
            None => uri
                .path_and_query()
                .cloned()
                .filter(|p| !p.as_str().is_empty())
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        };
        let weight = weight.or(file_weight).unwrap_or(1.0);
        if !(weight.is_finite() && weight > 0.0) {
            return Err(UsageError::new(format!(
                "target {name:?}: weight must be > 0"
            )));
        }
        out.push(Target {
            name,
            url: uri,
            authority,
            path,
            weight,
            request: match over {
                Some(o) => defaults.overlay(o),
                None => defaults.clone(),
            },
            tls,
            endpoints: Vec::new(),
            checks: None,
        });
    }
    let total: f64 = out.iter().map(|t| t.weight).sum();
    if !total.is_finite() {
        return Err(UsageError::new(
            "the target weights add up to more than a number can hold; use smaller weights",
        ));
    }
    Ok(out)
}

/// The targets the specs ask for (`NAME`, `NAME=URL`, `URL`, each with an optional
/// weight), or the targets file's when no spec is given; at most [`MAX_TARGETS`].
fn wanted(specs: &[String], file: Option<&FileTargets>) -> Result<Vec<Wanted>, UsageError> {
    let mut wanted: Vec<Wanted> = Vec::new();
    for raw in specs.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let (spec, weight) = split_weight(raw)?;
        if spec.starts_with("http://") || spec.starts_with("https://") {
            wanted.push((String::new(), Some(spec.to_string()), weight));
        } else if let Some((name, url)) = spec.split_once('=') {
            wanted.push((
                name.trim().to_string(),
                Some(url.trim().to_string()),
                weight,
            ));
        } else {
            wanted.push((spec.to_string(), None, weight));
        }
    }
    if wanted.is_empty() {
        match file {
            Some(f) if !f.is_empty() => {
                wanted = f
                    .iter()
                    .map(|(k, t)| (k.clone(), Some(t.url.clone()), t.weight))
                    .collect();
            }
            _ => {
                return Err(UsageError::new(
                    "no targets: give --target NAME[=URL] (or LOADGEN_TARGETS) or a --targets-file",
                ))
            }
        }
    }
    if wanted.len() > MAX_TARGETS {
        return Err(UsageError::new(format!(
            "{} targets given; at most {MAX_TARGETS} (each gets its own connection pool)",
            wanted.len()
        )));
    }
    Ok(wanted)
}

/// The URL of a target given by name only: the targets file's, else
/// `LOADGEN_TARGET_<NAME>`, else the course's `http://echo.<name>.mesh.local/`; and the
/// file's weight.
fn url_of(
    name: &str,
    file: Option<&FileTargets>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Option<f64>), UsageError> {
    if !valid_name(name) {
        return Err(UsageError::new(format!(
            "target {name:?}: a name may hold letters, digits, '-', '_' and '.'"
        )));
    }
    if let Some(t) = file.and_then(|f| f.get(name)) {
        return Ok((t.url.clone(), t.weight));
    }
    let key = format!(
        "LOADGEN_TARGET_{}",
        name.to_ascii_uppercase().replace(['-', '.'], "_")
    );
    Ok(match env(&key) {
        Some(u) if !u.trim().is_empty() => (u.trim().to_string(), None),
        _ => (format!("http://echo.{name}.mesh.local/"), None),
    })
}

/// A target's URL checked: `http://` or `https://` with a host (and a port 1-65535), and
/// for `https://` the name its certificate must carry.
fn parse_url(
    name: &str,
    url: &str,
) -> Result<
    (
        Uri,
        Authority,
        Option<rustls::pki_types::ServerName<'static>>,
    ),
    UsageError,
> {
    let uri: Uri = url
        .parse()
        .map_err(|e| UsageError::new(format!("target {name:?}: bad URL {url:?}: {e}")))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err(UsageError::new(format!(
            "target {name:?}: URL {url:?}: only http:// and https:// are supported, not {other}://"
        )))
        }
        None => {
            return Err(UsageError::new(format!(
                "target {name:?}: URL {url:?} needs a scheme, e.g. http://host:port/"
            )))
        }
    };
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| UsageError::new(format!("target {name:?}: URL {url:?} has no host")))?;
    check_authority(name, url, &authority)?;
    let tls = if https {
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        Some(
            crate::configured::tls::server_name(host)
                .map_err(|e| UsageError::new(format!("target {name:?}: URL {url:?}: {e}")))?,
        )
    } else {
        None
    };
    Ok((uri, authority, tls))
}

/// The URL forms connections can be made to: a host, and a port only if it is 1-65535
/// (the `http` crate keeps `:99999` as text whose number does not parse, which would
/// otherwise fall back to port 80), and no user info (it would go out in `Host`).
fn check_authority(name: &str, url: &str, a: &Authority) -> Result<(), UsageError> {
    let bad = |why: &str| {
        Err(UsageError::new(format!(
            "target {name:?}: URL {url:?}: {why}"
        )))
    };
    if a.as_str().contains('@') {
        return bad("user info (user@host) is not supported");
    }
    if a.host().is_empty() {
        return bad("no host");
    }
    // What follows the host is nothing or `:PORT` (`port()` is no help: it is None both
    // for no port and for one that does not fit a u16).
    let rest = a.as_str().strip_prefix(a.host()).unwrap_or(a.as_str());
    match rest.strip_prefix(':') {
        None if rest.is_empty() => Ok(()),
        Some("") => bad("an empty port; give one from 1 to 65535, or none for 80"),
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) && matches!(p.parse::<u16>(), Ok(1..)) => {
            Ok(())
        }
        _ => bad("the port must be between 1 and 65535"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::configured::request::RequestOverride;
    use crate::configured::targets_file::{load_file, FileTarget};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn resolution_order() {
        let mut file = FileTargets::new();
        let entry = |url: &str, weight| FileTarget {
            url: url.into(),
            weight,
            request: RequestOverride::default(),
        };
        file.insert("eu".into(), entry("http://eu.file:81/x", Some(3.0)));
        file.insert("us".into(), entry("http://us.file/", None));
        let env = |k: &str| (k == "LOADGEN_TARGET_AP").then(|| "http://ap.env:9/".to_string());
        let specs: Vec<String> = ["us=http://us.flag:8080/", "eu", "ap", "sa@2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let t = resolve(&specs, Some(&file), None, &RequestSpec::default(), &env).unwrap();
        assert_eq!(t[0].url.to_string(), "http://us.flag:8080/");
        assert_eq!(t[1].authority.as_str(), "eu.file:81");
        assert_eq!(t[1].path.as_str(), "/x");
        assert_eq!(t[1].weight, 3.0);
        assert_eq!(t[2].url.to_string(), "http://ap.env:9/");
        assert_eq!(t[3].url.to_string(), "http://echo.sa.mesh.local/");
        assert_eq!(t[3].weight, 2.0);
        assert_eq!(t[3].host_port(), ("echo.sa.mesh.local".to_string(), 80));
    }

    #[test]
    fn https_targets_default_to_port_443_and_carry_their_server_name() {
        let specs = [
            "a=https://echo.eu.example/".to_string(),
            "https://127.0.0.1:8443/x".to_string(),
        ];
        let t = resolve(&specs, None, None, &RequestSpec::default(), &no_env).unwrap();
        assert_eq!(t[0].host_port(), ("echo.eu.example".to_string(), 443));
        assert!(t[0].tls.is_some());
        assert_eq!(t[1].host_port(), ("127.0.0.1".to_string(), 8443));
        assert!(matches!(
            t[1].tls,
            Some(rustls::pki_types::ServerName::IpAddress(_))
        ));
        let plain = resolve(
            &["http://x/".to_string()],
            None,
            None,
            &RequestSpec::default(),
            &no_env,
        )
        .unwrap();
        assert!(plain[0].tls.is_none());
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "us=ftp://x",
            "us=not a url",
            "b@d name",
            "us@0",
            "x=/only/path",
        ] {
            assert!(
                resolve(
                    &[bad.to_string()],
                    None,
                    None,
                    &RequestSpec::default(),
                    &no_env
                )
                .is_err(),
                "{bad}"
            );
        }
        assert!(resolve(&[], None, None, &RequestSpec::default(), &no_env).is_err());
        let dup = vec!["us".to_string(), "us".to_string()];
        assert!(resolve(&dup, None, None, &RequestSpec::default(), &no_env).is_err());
    }

    #[test]
    fn file_formats() {
        let dir = std::env::temp_dir().join(format!("loadgen-tf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml_path = dir.join("t.toml");
        std::fs::write(
            &toml_path,
            "[targets]\nus = \"http://a/\"\neu = { url = \"http://b/\", weight = 2 }\n",
        )
        .unwrap();
        let yaml_path = dir.join("t.yaml");
        std::fs::write(
            &yaml_path,
            "us: http://a/\neu:\n  url: http://b/\n  weight: 2\n",
        )
        .unwrap();
        for p in [toml_path, yaml_path] {
            let f = load_file(&p).unwrap();
            assert_eq!((f["us"].url.as_str(), f["us"].weight), ("http://a/", None));
            assert_eq!(
                (f["eu"].url.as_str(), f["eu"].weight),
                ("http://b/", Some(2.0))
            );
            let t = resolve(
                &[],
                Some(&f),
                Some("/echo?x=1"),
                &RequestSpec::default(),
                &no_env,
            )
            .unwrap();
            assert_eq!(t.len(), 2);
            assert_eq!(t[0].path.as_str(), "/echo?x=1");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_file_entry_sets_its_own_request() {
        let dir = std::env::temp_dir().join(format!("loadgen-tr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("order.json"), b"{\"id\":1}").unwrap();
        let p = dir.join("t.yaml");
        std::fs::write(
            &p,
            "us: http://a/\neu:\n  url: http://b/echo\n  method: post\n  body_file: order.json\n  content_type: application/json\n  headers: {x-a: \"2\"}\n",
        )
        .unwrap();
        let f = load_file(&p).unwrap();
        let mut defaults = RequestSpec::default();
        defaults
            .headers
            .insert("x-a", http::HeaderValue::from_static("1"));
        let t = resolve(&[], Some(&f), None, &defaults, &no_env).unwrap();
        let (eu, us) = (&t[0], &t[1]);
        assert_eq!(eu.request.method, http::Method::POST);
        assert_eq!(eu.request.body.as_deref(), Some(&b"{\"id\":1}"[..]));
        assert_eq!(eu.request.headers["content-type"], "application/json");
        assert_eq!(eu.request.headers["x-a"], "2");
        assert_eq!(us.request.method, http::Method::GET);
        assert_eq!(us.request.headers["x-a"], "1");
        std::fs::write(&p, "eu:\n  url: http://b/\n  body_file: missing.bin\n").unwrap();
        let e = load_file(&p).unwrap_err().to_string();
        assert!(e.contains("cannot read body file"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
