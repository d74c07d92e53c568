//! A targets file (`--targets-file`, TOML or YAML): named targets with a URL, a weight and
//! what their request changes from the flags, body files read once each and bounded
//! together.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::configured::request::{self, BodyFiles, RequestOverride};
use crate::configured::MAX_TARGETS;
use crate::error::UsageError;

/// One entry of a targets file: a URL, or a table with a URL and a weight.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileEntry {
    Url(String),
    Full {
        url: String,
        weight: Option<f64>,
        method: Option<String>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        content_type: Option<String>,
        body: Option<String>,
        body_file: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileShape {
    Wrapped {
        targets: BTreeMap<String, FileEntry>,
    },
    Flat(BTreeMap<String, FileEntry>),
}

/// One target of a targets file.
#[derive(Debug, Clone)]
pub struct FileTarget {
    pub url: String,
    pub weight: Option<f64>,
    /// What this target's request changes from the flags'.
    pub request: RequestOverride,
}

/// Targets loaded from a file, by name.
pub type FileTargets = BTreeMap<String, FileTarget>;

/// Reads a TOML or YAML targets file (chosen by extension; otherwise TOML, then YAML).
pub fn load_file(path: &Path) -> Result<FileTargets, UsageError> {
    let text = crate::error::read_input(path, "targets file")?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let shape: FileShape = match ext {
        "yaml" | "yml" => serde_norway::from_str(&text).map_err(|e| e.to_string()),
        "toml" => toml::from_str(&text).map_err(|e| e.to_string()),
        _ => toml::from_str(&text)
            .or_else(|_| serde_norway::from_str(&text))
            .map_err(|e: serde_norway::Error| e.to_string()),
    }
    .map_err(|e| UsageError::new(format!("targets file {}: {e}", path.display())))?;
    let map = match shape {
        FileShape::Wrapped { targets } => targets,
        FileShape::Flat(m) => m,
    };
    // Counted before anything else is read: each entry may name a body file.
    if map.len() > MAX_TARGETS {
        return Err(UsageError::new(format!(
            "targets file {}: {} targets; at most {MAX_TARGETS}",
            path.display(),
            map.len()
        )));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    // Each body file is read once, however many targets name it, and all of them
    // together are bounded.
    let mut bodies = BodyFiles::default();
    map.into_iter()
        .map(|(k, v)| {
            let t = match v {
                FileEntry::Url(url) => FileTarget {
                    url,
                    weight: None,
                    request: RequestOverride::default(),
                },
                FileEntry::Full {
                    url,
                    weight,
                    method,
                    headers,
                    content_type,
                    body,
                    body_file,
                } => {
                    let what = format!("targets file {}: target {k:?}", path.display());
                    let parts = request::FileParts {
                        method: method.as_deref(),
                        headers: &headers,
                        content_type: content_type.as_deref(),
                        body: body.as_deref(),
                        body_file: body_file.as_deref(),
                    };
                    let over = parts.to_override(&what, base, &mut bodies)?;
                    FileTarget {
                        url,
                        weight,
                        request: over,
                    }
                }
            };
            Ok((k, t))
        })
        .collect()
}
