//! Configuration: command-line flags with environment fallbacks.
//!
//! [`Config`] is both the `clap` parser used by the binary and the struct library callers fill
//! in directly (see [`Config::local`]). Every field is public so callers can tweak it before
//! calling [`crate::spawn`].

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

use crate::faults::{FaultSpec, Limits};

const AFTER_HELP: &str = "\
Durations use humantime syntax: 10ms, 1s, 2m.
Fault query parameters (on any route, and in --faults): delay=10ms:90,200ms:10 status=503:5,429:1
size=1024 close=true header=Name:Value.

Exit codes:
  0  clean shutdown after SIGTERM or SIGINT (in-flight requests drained)
  1  runtime failure (e.g. the port could not be bound)
  2  usage error (bad flag or environment value)
  130 a second SIGTERM or SIGINT arrived during the drain (forced exit)";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// An allow-listed upstream for `/call/{name}`: `name=URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Name used in the route, `/call/{name}`.
    pub name: String,
    /// Base URL (plain `http`; the mesh provides TLS).
    pub url: reqwest::Url,
}

/// Why an `--upstream` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Not of the form `name=URL`.
    #[error("upstream {0:?} is not of the form name=URL")]
    Shape(String),
    /// The name has characters other than letters, digits, `-`, `_` and `.`.
    #[error("upstream name {0:?} must be non-empty letters, digits, '-', '_' or '.'")]
    Name(String),
    /// The URL does not parse.
    #[error("upstream URL {url:?} is invalid: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// Parser message.
        reason: String,
    },
    /// Only `http` is supported.
    #[error("upstream URL {0:?} must use http:// (TLS is the mesh's job)")]
    Scheme(String),
}

impl FromStr for Upstream {
    type Err = UpstreamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, url) = s
            .trim()
            .split_once('=')
            .ok_or_else(|| UpstreamError::Shape(s.to_owned()))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(UpstreamError::Name(name.to_owned()));
        }
        let parsed = reqwest::Url::parse(url.trim()).map_err(|e| UpstreamError::Url {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        if parsed.scheme() != "http" || parsed.host().is_none() {
            return Err(UpstreamError::Scheme(url.to_owned()));
        }
        Ok(Upstream {
            name: name.to_owned(),
            url: parsed,
        })
    }
}

/// Settings of one echo-svc instance.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "echo-svc",
    version,
    about = "Region- and version-aware HTTP echo workload with probes, metrics and fault injection",
    after_help = AFTER_HELP
)]
pub struct Config {
    /// Main HTTP port (HTTP/1.1 and h2c); 0 picks a free port.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Address to bind.
    #[arg(long = "bind", env = "BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// If set, the demo toggles (readiness, fault switch, stall) are served only on this port.
    #[arg(long, env = "ADMIN_PORT")]
    pub admin_port: Option<u16>,

    /// Serve the demo toggles at all; false makes them answer 403.
    #[arg(long, env = "ENABLE_TOGGLES", default_value_t = true, action = ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub enable_toggles: bool,

    /// Region label (us, eu).
    #[arg(long, env = "REGION", default_value = "local")]
    pub region: String,

    /// Zone label.
    #[arg(long, env = "ZONE", default_value = "")]
    pub zone: String,

    /// Service version label (v1, v2).
    #[arg(
        id = "app_version",
        long = "app-version",
        env = "APP_VERSION",
        default_value = "v1"
    )]
    pub version: String,

    /// Service name.
    #[arg(long, env = "SERVICE_NAME", default_value = "echo")]
    pub service_name: String,

    /// Pod name; defaults to the host name.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// Pod namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "")]
    pub pod_namespace: String,

    /// Node name.
    #[arg(long, env = "NODE_NAME", default_value = "")]
    pub node_name: String,

    /// After SIGTERM, keep serving this long with readiness failing.
    #[arg(long, env = "DRAIN_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain_delay: Duration,

    /// After the drain delay, wait at most this long for in-flight requests.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Close connections (HTTP/1 and h2c) that have no request in service for this long
    /// since they opened or handed over their last answer, or whose HTTP/1 answer stalls
    /// this long (slowloris guard; PINGs and 100 Continue do not count); 100ms to 5m.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Largest accepted /echo request body; larger gets 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1_048_576)]
    pub max_body_bytes: u64,

    /// A request body must arrive within this time of its headers (slower gets 408 and the
    /// connection is closed), and an /echo answer must be read within this time of being
    /// handed over (else the connection is closed).
    #[arg(long, env = "BODY_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Duration,

    /// /echo's memory budget, in largest bodies: max-body-bytes x max-body-requests bytes
    /// of bodies and their unsent answers at once, reserved as bytes arrive; one connection
    /// holds at most a quarter of it (or one largest body). A request that cannot get budget
    /// within a second gets 503. Body memory stays under budget x 3.
    #[arg(long, env = "MAX_BODY_REQUESTS", default_value_t = 32)]
    pub max_body_requests: usize,

    /// Cap for the delay= fault and for POST /stall?for= (at most 1h).
    #[arg(long, env = "MAX_DELAY", default_value = "30s", value_parser = humantime::parse_duration)]
    pub max_delay: Duration,

    /// Cap for the size= fault, in bytes.
    #[arg(
        long = "max-size",
        env = "MAX_RESPONSE_BYTES",
        default_value_t = 10_485_760
    )]
    pub max_size: u64,

    /// Server-wide default faults in query syntax, e.g. `delay=40ms`; applied to workload routes
    /// (not probes, /metrics or toggles). Request parameters override them one by one.
    #[arg(long = "faults", env = "DEFAULT_FAULTS", default_value = "")]
    pub faults: FaultSpec,

    /// Allow-listed upstream for /call/{name}, as name=URL; repeatable.
    #[arg(long = "upstream", env = "UPSTREAMS", value_delimiter = ',')]
    pub upstreams: Vec<Upstream>,

    /// Most /call hops one request may make through echo instances (carried in the
    /// `x-echo-hops` request header); a request over it gets 508 Loop Detected.
    #[arg(long, env = "MAX_HOPS", default_value_t = 8)]
    pub max_hops: u32,

    /// Timeout for one upstream call.
    #[arg(long, env = "UPSTREAM_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,

    /// Tokio worker threads; defaults to the number of CPUs. 1 runs a single-threaded runtime.
    #[arg(long, env = "WORKERS")]
    pub workers: Option<usize>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `echo_svc=debug`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// IRSA role (set by EKS); only reported by /identity.
    #[arg(long, env = "AWS_ROLE_ARN", hide = true)]
    pub aws_role_arn: Option<String>,

    /// IRSA token file path (never read); only reported by /identity.
    #[arg(long, env = "AWS_WEB_IDENTITY_TOKEN_FILE", hide = true)]
    pub aws_web_identity_token_file: Option<String>,

    /// EKS Pod Identity credentials URI; only reported by /identity.
    #[arg(long, env = "AWS_CONTAINER_CREDENTIALS_FULL_URI", hide = true)]
    pub aws_container_credentials_full_uri: Option<String>,

    /// EKS Pod Identity token file path (never read); only reported by /identity.
    #[arg(long, env = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", hide = true)]
    pub aws_container_authorization_token_file: Option<String>,
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A label would not fit in an HTTP header.
    #[error("{field} {value:?} cannot be sent as an HTTP header value")]
    HeaderValue {
        /// Which setting.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// The default faults exceed the caps.
    #[error("--faults: {0}")]
    Faults(#[from] crate::faults::FaultError),
    /// Two upstreams share a name.
    #[error("upstream {0:?} is configured twice")]
    DuplicateUpstream(String),
    /// Zero workers.
    #[error("--workers must be at least 1")]
    Workers,
    /// A bound out of its range.
    #[error("{flag} must be {range} (got {got})")]
    Range {
        /// Which setting.
        flag: &'static str,
        /// What it must be.
        range: &'static str,
        /// What it was.
        got: String,
    },
}

/// The largest --max-delay: long enough for any demo, short enough that a delay or
/// stall cannot hold resources for good.
pub const MAX_DELAY_CEILING: Duration = Duration::from_secs(3600);
/// Bounds of `--header-read-timeout`.
pub const MIN_HEADER_READ_TIMEOUT: Duration = Duration::from_millis(100);
pub const MAX_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(300);

impl Config {
    /// A loopback configuration for tests and embedding that ignores the environment:
    /// bind 127.0.0.1 on a free port, pod `<region>-<version>`, toggles on, no drain delay,
    /// a 5 s shutdown timeout and no default faults.
    ///
    /// Tweak the public fields afterwards, e.g. `cfg.faults = "delay=40ms".parse()?`.
    pub fn local(region: &str, version: &str) -> Config {
        Config {
            port: 0,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            admin_port: None,
            enable_toggles: true,
            region: region.to_owned(),
            zone: String::new(),
            version: version.to_owned(),
            service_name: "echo".to_owned(),
            pod_name: Some(format!("{region}-{version}")),
            pod_namespace: String::new(),
            node_name: String::new(),
            drain_delay: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(10),
            max_body_bytes: 1_048_576,
            body_read_timeout: Duration::from_secs(10),
            max_body_requests: 32,
            max_delay: Duration::from_secs(30),
            max_size: 10_485_760,
            faults: FaultSpec::default(),
            upstreams: Vec::new(),
            upstream_timeout: Duration::from_secs(5),
            max_hops: 8,
            workers: None,
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            aws_role_arn: None,
            aws_web_identity_token_file: None,
            aws_container_credentials_full_uri: None,
            aws_container_authorization_token_file: None,
        }
    }

    /// The fault caps.
    pub fn limits(&self) -> Limits {
        Limits {
            max_delay: self.max_delay,
            max_size: self.max_size,
        }
    }

    /// The pod name, falling back to the host name (`gethostname`, which macOS has too:
    /// there is no /proc, and shells do not export HOSTNAME).
    pub fn pod(&self) -> String {
        if let Some(name) = self.pod_name.as_deref().filter(|n| !n.is_empty()) {
            return name.to_owned();
        }
        host_name()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// Worker threads to run: `--workers` or the number of CPUs.
    pub fn worker_threads(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }

    /// Check what clap cannot: labels usable as header values, faults within caps,
    /// unique upstream names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let pod = self.pod();
        for (field, value) in [
            ("--region", self.region.as_str()),
            ("--app-version", self.version.as_str()),
            ("--pod-name", pod.as_str()),
        ] {
            if http::HeaderValue::from_str(value).is_err() {
                return Err(ConfigError::HeaderValue {
                    field,
                    value: value.to_owned(),
                });
            }
        }
        self.faults.check_caps(&self.limits())?;
        for (i, u) in self.upstreams.iter().enumerate() {
            if self.upstreams[..i].iter().any(|o| o.name == u.name) {
                return Err(ConfigError::DuplicateUpstream(u.name.clone()));
            }
        }
        if self.workers == Some(0) {
            return Err(ConfigError::Workers);
        }
        let range = |flag, range, bad: bool, got: String| {
            if bad {
                Err(ConfigError::Range { flag, range, got })
            } else {
                Ok(())
            }
        };
        range(
            "--max-delay",
            "at most 1h",
            self.max_delay > MAX_DELAY_CEILING,
            humantime::format_duration(self.max_delay).to_string(),
        )?;
        range(
            "--header-read-timeout",
            "between 100ms and 5m",
            self.header_read_timeout < MIN_HEADER_READ_TIMEOUT
                || self.header_read_timeout > MAX_HEADER_READ_TIMEOUT,
            humantime::format_duration(self.header_read_timeout).to_string(),
        )?;
        range(
            "--body-read-timeout",
            "between 1ms and 1h",
            self.body_read_timeout < Duration::from_millis(1)
                || self.body_read_timeout > MAX_DELAY_CEILING,
            humantime::format_duration(self.body_read_timeout).to_string(),
        )?;
        range(
            "--max-body-requests",
            "between 1 and 65536",
            !(1..=65_536).contains(&self.max_body_requests),
            self.max_body_requests.to_string(),
        )?;
        range(
            "--max-hops",
            "between 1 and 64",
            !(1..=64).contains(&self.max_hops),
            self.max_hops.to_string(),
        )?;
        Ok(())
    }
}

/// The machine's host name, if it has one that is valid UTF-8.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length; gethostname writes at most that many
    // bytes and the result is cut at the first NUL below.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..end])
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn upstream_parsing() {
        let u: Upstream = "eu=http://echo.eu.mesh.local".parse().unwrap();
        assert_eq!(u.name, "eu");
        assert_eq!(u.url.host_str(), Some("echo.eu.mesh.local"));
        assert!(matches!(
            "eu".parse::<Upstream>(),
            Err(UpstreamError::Shape(_))
        ));
        assert!(matches!(
            "e u=http://x".parse::<Upstream>(),
            Err(UpstreamError::Name(_))
        ));
        assert!(matches!(
            "eu=https://x".parse::<Upstream>(),
            Err(UpstreamError::Scheme(_))
        ));
        assert!(matches!(
            "eu=::".parse::<Upstream>(),
            Err(UpstreamError::Url { .. })
        ));
    }

    #[test]
    fn flags_parse() {
        let cfg = Config::try_parse_from([
            "echo-svc",
            "--port",
            "9000",
            "--region",
            "eu",
            "--faults",
            "delay=40ms",
            "--upstream",
            "us=http://127.0.0.1:1",
            "--enable-toggles",
            "false",
            "--drain-delay",
            "1s",
        ])
        .unwrap();
        assert_eq!(cfg.port, 9000);
        assert_eq!(cfg.region, "eu");
        assert!(!cfg.enable_toggles);
        assert_eq!(cfg.drain_delay, Duration::from_secs(1));
        assert_eq!(cfg.upstreams.len(), 1);
        assert!(cfg.faults.delay.is_some());
        cfg.validate().unwrap();
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for args in [
            vec!["echo-svc", "--faults", "delay=soon"],
            vec!["echo-svc", "--upstream", "nope"],
            vec!["echo-svc", "--drain-delay", "5 parsecs"],
            vec!["echo-svc", "--port", "70000"],
        ] {
            assert!(Config::try_parse_from(&args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn the_header_read_timeout_is_bounded() {
        let mut cfg = Config::local("us", "v1");
        for (t, ok) in [
            (Duration::ZERO, false),
            (Duration::from_millis(99), false),
            (Duration::from_millis(100), true),
            (Duration::from_secs(300), true),
            (Duration::from_secs(3600), false),
        ] {
            cfg.header_read_timeout = t;
            let got = cfg.validate();
            assert_eq!(got.is_ok(), ok, "{t:?}: {got:?}");
            if !ok {
                assert!(matches!(
                    got,
                    Err(ConfigError::Range {
                        flag: "--header-read-timeout",
                        ..
                    })
                ));
            }
        }
    }

    #[test]
    fn validate_rejects_faults_over_caps() {
        let mut cfg = Config::local("us", "v1");
        cfg.faults = "delay=1h".parse().unwrap();
        assert!(matches!(cfg.validate(), Err(ConfigError::Faults(_))));
    }
}
