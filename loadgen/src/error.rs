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
    read_regular_file(path, MAX_INPUT_BYTES)
        .map_err(|e| UsageError::new(format!("cannot read {what} {}: {e}", path.display())))
}

/// The one way a file the user named is read: only a regular file (a FIFO that no one
/// writes would block the open for ever, and a device such as /dev/zero never ends),
/// and at most `max` bytes of it, checked before and while reading.
pub fn read_regular_file(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind};
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a regular file (a pipe or a device): write it to a file first",
        ));
    }
    let too_large = || {
        Error::new(
            ErrorKind::InvalidData,
            format!("larger than {} MiB", max >> 20),
        )
    };
    if meta.len() > max {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    // It may have grown between the look and the read.
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_regular_file_over_the_cap_is_refused_and_one_under_it_read_whole() {
        let dir = std::env::temp_dir().join(format!("loadgen-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big");
        std::fs::write(&big, vec![b'a'; (2 << 20) + 1]).unwrap();
        let err = read_regular_file(&big, 2 << 20).unwrap_err();
        assert!(err.to_string().contains("larger than 2 MiB"), "{err}");
        assert_eq!(
            read_regular_file(&big, 3 << 20).unwrap().len(),
            (2 << 20) + 1
        );
        let err = read_regular_file(&dir, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }
}
