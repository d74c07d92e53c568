//! The error every stage raises for bad input from the user (exit code 2), and the
//! guarded reads of user-named files, kept apart so any stage can use them without
//! reaching into the configuration.

use std::io::Read as _;
use std::path::Path;

/// Bad input from the user; the process exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

impl UsageError {
    pub fn new(msg: impl Into<String>) -> UsageError {
        UsageError(msg.into())
    }
}

/// Largest SLO or targets file read: far beyond any real one, and small enough that
/// `--slo-file /dev/zero` is an error rather than memory exhaustion.
pub const MAX_INPUT_BYTES: u64 = 4 * 1024 * 1024;

/// Reads a small text file the user named (`what` says which, for the message), at most
/// [`MAX_INPUT_BYTES`].
pub fn read_input(path: &Path, what: &str) -> Result<String, UsageError> {
    let bytes = read_input_bytes(path, what)?;
    String::from_utf8(bytes).map_err(|_| {
        UsageError::new(format!(
            "cannot read {what} {}: not UTF-8 text",
            path.display()
        ))
    })
}

/// Reads a user-supplied file as bytes, at most [`MAX_INPUT_BYTES`] of them.
pub fn read_input_bytes(path: &Path, what: &str) -> Result<Vec<u8>, UsageError> {
    let fail = |e: String| UsageError::new(format!("cannot read {what} {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(fail(format!("larger than {} MiB", MAX_INPUT_BYTES >> 20)));
    }
    Ok(bytes)
}
