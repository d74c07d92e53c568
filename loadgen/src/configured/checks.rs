//! Response checks (`--check`): what an answer must say besides arriving, as k6's `check()`
//! asks. An answer below 400 that fails one lands in the `check` bucket (its latency still
//! recorded); `checks>=99%` judges the share of checked answers that passed.
//!
//! ```text
//! status in 200,204,300-399      status==200
//! header x-echo-region == eu     header content-type ~ ^application/json
//! body contains region=eu        body ~ version=v[12]
//! {target:eu} body contains region=eu      (only eu's answers)
//! ```
//!
//! Regular expressions are the `regex` crate's: matching time is linear in the text, so no
//! pattern can make a check catastrophic, and compiled patterns are size-limited. A body is
//! read for its checks up to `--check-body-bytes` (a prefix: a check never holds a whole
//! large body in memory).

use std::sync::Arc;

use http::HeaderName;
use regex::bytes::{Regex, RegexBuilder};

use crate::error::UsageError;

/// Bytes of an answer's body the body checks read, unless `--check-body-bytes` says.
pub const DEFAULT_BODY_BYTES: usize = 64 * 1024;
/// Largest `--check-body-bytes`.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Largest compiled pattern (the regex crate's own default is 10 MiB).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What one check looks at.
#[derive(Debug, Clone)]
pub enum Check {
    /// The status is in one of these inclusive ranges.
    Status(Vec<(u16, u16)>),
    /// A header (its first value) equals a text, or matches a pattern.
    HeaderEquals(HeaderName, Vec<u8>),
    HeaderMatches(HeaderName, Regex),
    /// The body's prefix holds a text, or matches a pattern.
    BodyContains(Vec<u8>),
    BodyMatches(Regex),
}

/// One `--check` as given: for which target (`None`: every target) and what.
#[derive(Debug, Clone)]
pub struct Scoped {
    pub target: Option<String>,
    pub check: Check,
    pub text: String,
}

/// Every check of one target, split by when it can be decided.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    /// Decided by the head: status and headers.
    pub head: Vec<Check>,
    /// Decided by the body's first `body_bytes` bytes.
    pub body: Vec<Check>,
    pub body_bytes: usize,
}

impl Checks {
    /// The checks of `target` among all given.
    pub fn for_target(all: &[Scoped], target: &str, body_bytes: usize) -> Option<Arc<Checks>> {
        let mine = all
            .iter()
            .filter(|s| s.target.as_deref().map_or(true, |t| t == target));
        let mut c = Checks {
            body_bytes,
            ..Checks::default()
        };
        for s in mine {
            match &s.check {
                Check::BodyContains(_) | Check::BodyMatches(_) => c.body.push(s.check.clone()),
                _ => c.head.push(s.check.clone()),
            }
        }
        (!c.head.is_empty() || !c.body.is_empty()).then(|| Arc::new(c))
    }

    /// Whether the status passes every status check.
    pub fn status_passes(&self, status: u16) -> bool {
        self.head.iter().all(|c| match c {
            Check::Status(ranges) => ranges.iter().any(|(a, b)| (*a..=*b).contains(&status)),
            _ => true,
        })
    }

    /// Whether the header checks pass, given a lookup of a header's first value.
    pub fn headers_pass<'h>(&self, value: impl Fn(&HeaderName) -> Option<&'h [u8]>) -> bool {
        self.head.iter().all(|c| match c {
            Check::HeaderEquals(n, want) => value(n).is_some_and(|v| v == want.as_slice()),
            Check::HeaderMatches(n, re) => value(n).is_some_and(|v| re.is_match(v)),
            _ => true,
        })
    }

    /// Whether the body's prefix passes every body check.
    pub fn body_passes(&self, prefix: &[u8]) -> bool {
        self.body.iter().all(|c| match c {
            Check::BodyContains(t) => t.is_empty() || prefix.windows(t.len()).any(|w| w == t),
            Check::BodyMatches(re) => re.is_match(prefix),
            _ => true,
        })
    }
}

fn bad(text: &str, why: impl std::fmt::Display) -> UsageError {
    UsageError::new(format!("--check {text:?}: {why}"))
}

/// Parses one `--check`.
pub fn parse(text: &str) -> Result<Scoped, UsageError> {
    let mut rest = text.trim();
    let mut target = None;
    if let Some(after) = rest.strip_prefix('{') {
        let (scope, tail) = after
            .split_once('}')
            .ok_or_else(|| bad(text, "a scope opened with '{' is not closed"))?;
        let name = scope
            .trim()
            .strip_prefix("target:")
            .ok_or_else(|| bad(text, "the scope is {target:NAME}"))?
            .trim();
        if name.is_empty() {
            return Err(bad(text, "the scope names no target"));
        }
        target = Some(name.to_string());
        rest = tail.trim();
    }
    let check = if let Some(s) = rest.strip_prefix("status") {
        status(text, s.trim())?
    } else if let Some(s) = rest.strip_prefix("header ") {
        header(text, s.trim())?
    } else if let Some(s) = rest.strip_prefix("body") {
        body(text, s.trim())?
    } else {
        return Err(bad(
            text,
            "expected `status in 200,204`, `header NAME == TEXT`, `header NAME ~ REGEX`, \
             `body contains TEXT` or `body ~ REGEX`",
        ));
    };
    Ok(Scoped {
        target,
        check,
        text: text.trim().to_string(),
    })
}

fn status(text: &str, s: &str) -> Result<Check, UsageError> {
    let list = s
        .strip_prefix("==")
        .or_else(|| s.strip_prefix("in "))
        .ok_or_else(|| bad(text, "expected `status in 200,204` or `status==200`"))?;
    let mut ranges = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let code = |x: &str| {
            x.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| bad(text, format!("{x:?} is not a status (100-599)")))
        };
        let range = match part.split_once('-') {
            Some((a, b)) => (code(a)?, code(b)?),
            None => (code(part)?, code(part)?),
        };
        if range.0 > range.1 {
            return Err(bad(text, format!("{part}: the range runs backwards")));
        }
        ranges.push(range);
    }
    if ranges.is_empty() {
        return Err(bad(text, "no status given"));
    }
    Ok(Check::Status(ranges))
}

fn header(text: &str, s: &str) -> Result<Check, UsageError> {
    let (name, op_rest) = s.split_once(char::is_whitespace).ok_or_else(|| {
        bad(
            text,
            "expected `header NAME == TEXT` or `header NAME ~ REGEX`",
        )
    })?;
    let name: HeaderName = name
        .parse()
        .map_err(|_| bad(text, format!("{name:?} is not a header name")))?;
    let op_rest = op_rest.trim();
    if let Some(v) = op_rest.strip_prefix("==") {
        Ok(Check::HeaderEquals(name, v.trim().as_bytes().to_vec()))
    } else if let Some(p) = op_rest.strip_prefix('~') {
        Ok(Check::HeaderMatches(name, regex(text, p.trim())?))
    } else {
        Err(bad(text, "the header operators are == and ~"))
    }
}

fn body(text: &str, s: &str) -> Result<Check, UsageError> {
    if let Some(t) = s.strip_prefix("contains") {
        let t = t.trim();
        if t.is_empty() {
            return Err(bad(text, "`body contains` needs a text"));
        }
        Ok(Check::BodyContains(t.as_bytes().to_vec()))
    } else if let Some(p) = s.strip_prefix('~') {
        Ok(Check::BodyMatches(regex(text, p.trim())?))
    } else {
        Err(bad(text, "the body operators are `contains` and ~"))
    }
}

fn regex(text: &str, pattern: &str) -> Result<Regex, UsageError> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| bad(text, format!("bad pattern: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn checks(texts: &[&str], target: &str) -> Arc<Checks> {
        let all: Vec<Scoped> = texts.iter().map(|t| parse(t).unwrap()).collect();
        Checks::for_target(&all, target, DEFAULT_BODY_BYTES).unwrap()
    }

    #[test]
    fn statuses_headers_and_bodies_are_judged() {
        let c = checks(&["status in 200,204, 300-399", "status==200"], "us");
        assert!(c.status_passes(200));
        assert!(!c.status_passes(204), "both status checks must pass");
        let c = checks(
            &["header x-echo-region == eu", "header content-type ~ ^text/"],
            "us",
        );
        let h = |n: &HeaderName| match n.as_str() {
            "x-echo-region" => Some(&b"eu"[..]),
            "content-type" => Some(&b"text/plain"[..]),
            _ => None,
        };
        assert!(c.headers_pass(h));
        assert!(!c.headers_pass(|_| None));
        let c = checks(&["body contains region=eu", "body ~ version=v[12]"], "us");
        assert!(c.body_passes(b"region=eu version=v2"));
        assert!(!c.body_passes(b"region=us version=v2"));
    }

    #[test]
    fn a_scope_keeps_a_check_to_its_target() {
        let all = vec![parse("{target:eu} body contains eu").unwrap()];
        assert!(Checks::for_target(&all, "us", 10).is_none());
        assert_eq!(Checks::for_target(&all, "eu", 10).unwrap().body.len(), 1);
    }

    #[test]
    fn bad_checks_say_why() {
        for (text, says) in [
            ("status in 99", "not a status"),
            ("status in 300-200", "runs backwards"),
            ("status 200", "expected `status in"),
            ("header bad\u{1} == x", "not a header name"),
            ("header x-a != b", "operators are == and ~"),
            ("body ~ (", "bad pattern"),
            ("body contains ", "needs a text"),
            ("{target:eu body contains x", "not closed"),
            ("{region:eu} status==200", "{target:NAME}"),
            ("latency < 5ms", "expected `status in"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
        // A pattern too large to compile within the limit is refused, not built.
        let huge = format!("body ~ {}", "(a|b|c|d|e){1000}".repeat(20));
        assert!(parse(&huge)
            .unwrap_err()
            .to_string()
            .contains("bad pattern"));
    }
}
