//! What loadgen prints: the report on stdout, notes on stderr.
//!
//! A closed or full stdout (`loadgen ... | head`, `> /dev/full`) must end the printing,
//! never the run: the report files are written before anything is printed, and these
//! functions drop what cannot be written (`print!` would panic on EPIPE, and the release
//! profile aborts on panic, losing the exit code the SLOs decided).

use std::io::Write as _;

/// Writes `text` to stdout; false when it could not be written.
pub fn out(text: &str) -> bool {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).is_ok() && stdout.flush().is_ok()
}

/// Writes one line to stderr, ignoring failure.
pub fn note(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
