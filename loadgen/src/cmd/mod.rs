//! The commands: each drives the stages for one kind of invocation and ends, when it
//! produces a report, through [`crate::report::finish`].
//!
//! - [`run`]: one load run (`loadgen [flags]`).
//! - [`merge`]: shards of one run merged exactly (`loadgen merge`).
//! - [`compare`]: the p95/p99 regression gate against a baseline (`loadgen compare`).
//! - [`lab`]: the embedded two-region fleet and a run against it (`loadgen lab`).

pub(crate) mod compare;
pub mod lab;
pub(crate) mod merge;
pub mod run;
