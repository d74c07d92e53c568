//! Which slice of the schedule this process sends: `--shard i/n` (or the index of an
//! Indexed Job's pod, `JOB_COMPLETION_INDEX`, with `--shard-count`).
//!
//! Every worker thread already takes every `threads`-th request of each target's schedule.
//! Shard `i` of `n` with `T` threads runs workers `i*T .. i*T+T` of `n*T`: the shards
//! interleave request by request, so together they send exactly the whole schedule
//! (stages and warm-up included), each at 1/n of the rate. `loadgen merge` adds them back.

use std::fmt;

use crate::error::UsageError;

/// This process's part of a sharded run: `index` in `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard { index: 0, count: 1 }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Builds a shard from its parts, checking `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Shard, UsageError> {
        if count == 0 {
            return Err(UsageError::new("shard count must be at least 1"));
        }
        if index >= count {
            return Err(UsageError::new(format!(
                "shard index {index} is out of range for {count} shards (indexes start at 0)"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Parses `i/n` (zero-based index, as Kubernetes' `JOB_COMPLETION_INDEX`).
    pub fn parse(s: &str) -> Result<Shard, UsageError> {
        let bad = || UsageError::new(format!("bad shard {s:?}: expected INDEX/COUNT, e.g. 0/4"));
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let i: usize = i.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        Shard::new(i, n)
    }

    /// The shard from `--shard`, or else from an index (`JOB_COMPLETION_INDEX`) and a
    /// count (`--shard-count`); none of them means a single unsharded process.
    pub fn resolve(
        spec: Option<&str>,
        index: Option<&str>,
        count: Option<usize>,
    ) -> Result<Shard, UsageError> {
        match (spec, index, count) {
            (Some(s), _, _) => Shard::parse(s),
            (None, Some(i), Some(n)) => {
                let i: usize = i.trim().parse().map_err(|_| {
                    UsageError::new(format!("bad JOB_COMPLETION_INDEX {i:?}: expected a number"))
                })?;
                Shard::new(i, n)
            }
            (None, None, Some(n)) if n > 1 => Err(UsageError::new(format!(
                "--shard-count {n} needs a shard index: set JOB_COMPLETION_INDEX or use --shard i/{n}"
            ))),
            _ => Ok(Shard::default()),
        }
    }

    /// The global worker index and worker count for local worker `w` of `threads`.
    pub fn worker(&self, w: usize, threads: usize) -> (usize, usize) {
        (self.index * threads + w, self.count * threads)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_and_checks_shards() {
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
        assert!(Shard::parse("4/4").is_err());
        assert!(Shard::parse("1/0").is_err());
        assert!(Shard::parse("x").is_err());
        assert_eq!(
            Shard::resolve(None, Some("3"), Some(5)).unwrap(),
            Shard { index: 3, count: 5 }
        );
        assert!(Shard::resolve(None, None, Some(3)).is_err());
        assert_eq!(Shard::resolve(None, None, None).unwrap(), Shard::default());
        // An explicit --shard wins over the environment.
        assert_eq!(
            Shard::resolve(Some("0/2"), Some("7"), Some(9)).unwrap(),
            Shard { index: 0, count: 2 }
        );
        assert_eq!(Shard { index: 1, count: 3 }.worker(1, 2), (3, 6));
    }
}
