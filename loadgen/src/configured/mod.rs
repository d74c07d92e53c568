//! The first stage: what the user asked for, checked. The flags ([`cli`]) become a
//! [`config::RunConfig`] whose named targets ([`target`], or a [`targets_file`]) each carry what they are sent
//! ([`request`]), the HTTP version they speak ([`protocol`]) and, for `https://`, the
//! trusted roots ([`tls`]). Everything after this
//! stage reads the checked configuration, never the flags.

pub mod checks;
pub mod cli;
pub mod config;
pub mod protocol;
pub mod request;
pub mod requests_file;
pub mod target;
pub mod targets_file;
pub mod tls;

/// Most targets in one run (each gets its own connection pool and histograms).
pub const MAX_TARGETS: usize = 1024;
