//! Who answered: the instance identity (region, version, pod, ...) and the cloud identity the
//! pod was given.
//!
//! The identity is fixed for the life of a server, so its header values and the `GET /` bodies
//! are rendered once at start-up. The strings are leaked (a few bytes per server instance) so
//! that stamping the headers on every response copies pointers instead of touching reference
//! counts.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

use crate::config::{Config, ConfigError};

/// Response header carrying the region.
pub const X_ECHO_REGION: HeaderName = HeaderName::from_static("x-echo-region");
/// Response header carrying the version.
pub const X_ECHO_VERSION: HeaderName = HeaderName::from_static("x-echo-version");
/// Response header carrying the pod name.
pub const X_ECHO_POD: HeaderName = HeaderName::from_static("x-echo-pod");

/// The crate version, reported as `build`.
pub const BUILD: &str = env!("CARGO_PKG_VERSION");

/// The instance identity with pre-rendered headers and bodies.
#[derive(Debug)]
pub(crate) struct Identity {
    pub service: String,
    pub region: String,
    pub zone: String,
    pub version: String,
    pub pod: String,
    pub node: String,
    pub namespace: String,
    region_header: HeaderValue,
    version_header: HeaderValue,
    pod_header: HeaderValue,
    text: Bytes,
    json: Bytes,
    pub cloud: CloudIdentity,
}

impl Identity {
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let pod = config.pod();
        let header = |field: &'static str, value: &str| -> Result<HeaderValue, ConfigError> {
            // Validate first: `from_static` would panic on bad input.
            HeaderValue::from_str(value).map_err(|_| ConfigError::HeaderValue {
                field,
                value: value.to_owned(),
            })?;
            Ok(HeaderValue::from_static(leak(value)))
        };
        let region_header = header("--region", &config.region)?;
        let version_header = header("--app-version", &config.version)?;
        let pod_header = header("--pod-name", &pod)?;
        let text = format!(
            "region={} version={} pod={}\n",
            config.region, config.version, pod
        );
        let json_body = json!({
            "service": config.service_name,
            "region": config.region,
            "zone": config.zone,
            "version": config.version,
            "pod": pod,
            "node": config.node_name,
            "namespace": config.pod_namespace,
            "build": BUILD,
        });
        let mut json_text = json_body.to_string();
        json_text.push('\n');
        Ok(Identity {
            service: config.service_name.clone(),
            region: config.region.clone(),
            zone: config.zone.clone(),
            version: config.version.clone(),
            pod,
            node: config.node_name.clone(),
            namespace: config.pod_namespace.clone(),
            region_header,
            version_header,
            pod_header,
            text: Bytes::from_static(leak(&text).as_bytes()),
            json: Bytes::from_static(leak(&json_text).as_bytes()),
            cloud: CloudIdentity::from_config(config),
        })
    }

    /// Add the three identity headers.
    #[inline]
    pub fn stamp(&self, headers: &mut HeaderMap) {
        headers.insert(X_ECHO_REGION, self.region_header.clone());
        headers.insert(X_ECHO_VERSION, self.version_header.clone());
        headers.insert(X_ECHO_POD, self.pod_header.clone());
    }

    /// `region=us version=v1 pod=<name>\n`
    #[inline]
    pub fn text(&self) -> Bytes {
        self.text.clone()
    }

    /// The JSON identity document.
    #[inline]
    pub fn json(&self) -> Bytes {
        self.json.clone()
    }

    /// This instance as one hop of a `/call` chain.
    pub fn hop(&self) -> Value {
        json!({
            "region": self.region,
            "version": self.version,
            "pod": self.pod,
            "zone": self.zone,
        })
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// The AWS workload identity mechanism the pod was configured with, detected from the
/// environment variables EKS injects. Token files are only checked for existence, never read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudIdentity {
    /// IAM Roles for Service Accounts: `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`.
    Irsa {
        /// The role to assume.
        role_arn: String,
        /// Path of the projected token.
        token_file: String,
    },
    /// EKS Pod Identity: `AWS_CONTAINER_CREDENTIALS_FULL_URI` +
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`.
    PodIdentity {
        /// The agent endpoint.
        credentials_uri: String,
        /// Path of the projected token.
        token_file: String,
    },
    /// Neither mechanism is fully configured; `partial` lists variables set without their pair.
    None {
        /// Variables that were set but are not enough on their own.
        partial: Vec<&'static str>,
    },
}

impl CloudIdentity {
    /// Detect from the (environment-backed) configuration fields. IRSA wins when both are
    /// present, matching the order of the AWS SDK credential chain.
    pub fn from_config(config: &Config) -> Self {
        let set = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
        let role = set(&config.aws_role_arn);
        let web_token = set(&config.aws_web_identity_token_file);
        let uri = set(&config.aws_container_credentials_full_uri);
        let pod_token = set(&config.aws_container_authorization_token_file);
        match (role, web_token, uri, pod_token) {
            (Some(role_arn), Some(token_file), _, _) => CloudIdentity::Irsa {
                role_arn,
                token_file,
            },
            (_, _, Some(credentials_uri), Some(token_file)) => CloudIdentity::PodIdentity {
                credentials_uri,
                token_file,
            },
            (role, web, uri, tok) => {
                let mut partial = Vec::new();
                for (present, name) in [
                    (role.is_some(), "AWS_ROLE_ARN"),
                    (web.is_some(), "AWS_WEB_IDENTITY_TOKEN_FILE"),
                    (uri.is_some(), "AWS_CONTAINER_CREDENTIALS_FULL_URI"),
                    (tok.is_some(), "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
                ] {
                    if present {
                        partial.push(name);
                    }
                }
                CloudIdentity::None { partial }
            }
        }
    }

    /// The `/identity` document. Reports whether the token file exists, never its contents.
    pub fn describe(&self) -> Value {
        let exists = |p: &str| std::path::Path::new(p).exists();
        match self {
            CloudIdentity::Irsa {
                role_arn,
                token_file,
            } => json!({
                "mechanism": "irsa",
                "role_arn": role_arn,
                "token_file": token_file,
                "token_file_present": exists(token_file),
            }),
            CloudIdentity::PodIdentity {
                credentials_uri,
                token_file,
            } => json!({
                "mechanism": "eks-pod-identity",
                "credentials_uri": credentials_uri,
                "token_file": token_file,
                "token_file_present": exists(token_file),
            }),
            CloudIdentity::None { partial } => json!({
                "mechanism": "none",
                "incomplete_variables": partial,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn detects_each_mechanism() {
        let mut cfg = Config::local("us", "v1");
        assert_eq!(
            CloudIdentity::from_config(&cfg),
            CloudIdentity::None { partial: vec![] }
        );
        cfg.aws_role_arn = Some("arn:aws:iam::1:role/r".into());
        assert_eq!(
            CloudIdentity::from_config(&cfg),
            CloudIdentity::None {
                partial: vec!["AWS_ROLE_ARN"]
            }
        );
        cfg.aws_web_identity_token_file = Some("/var/run/token".into());
        assert!(matches!(
            CloudIdentity::from_config(&cfg),
            CloudIdentity::Irsa { .. }
        ));
        let mut cfg = Config::local("us", "v1");
        cfg.aws_container_credentials_full_uri =
            Some("http://169.254.170.23/v1/credentials".into());
        cfg.aws_container_authorization_token_file = Some("/var/run/pod-token".into());
        assert!(matches!(
            CloudIdentity::from_config(&cfg),
            CloudIdentity::PodIdentity { .. }
        ));
    }
}
