//! Log set-up: `tracing` to stderr, as text or JSON lines, filtered by `--log-level`.
//!
//! Requests are not logged one by one (that would dominate the cost of `GET /`); the server
//! logs its lifecycle, configuration problems and connection errors at debug level.
//!
//! A log line that cannot be written (stderr closed or full) is dropped: logging must never
//! take the server down. tracing-subscriber would otherwise report its own write failure
//! with `eprintln!`, which panics on the same broken stderr (and the release profile
//! aborts on panic).

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Install the global subscriber.
pub fn init(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_new(level).with_context(|| format!("invalid --log-level {level:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}

/// Writes one line to stderr, ignoring failure (`eprintln!` panics when stderr is closed
/// or full).
pub fn stderr_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}
