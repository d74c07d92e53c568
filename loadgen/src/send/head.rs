//! Parsing a response head: status, the region and version labels, framing and
//! keep-alive, with httparse (no allocation but the labels' beyond 24 bytes).

use std::mem::MaybeUninit;

use http::header::HeaderName;

use crate::configured::checks::Checks;

/// Most response headers parsed (RFC 9112 sets no limit; 128 is generous for any real
/// server and bounds the parse).
const MAX_HEADERS: usize = 128;

/// A region or version header's value: inline up to 24 bytes, so the usual short
/// values cost no allocation per answer.
pub type Label = smallvec::SmallVec<[u8; 24]>;

/// How the response body is delimited.
pub(super) enum BodyLen {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

pub(super) struct Head {
    pub(super) status: u16,
    pub(super) region: Option<Label>,
    pub(super) version: Option<Label>,
    pub(super) len: usize,
    pub(super) body: BodyLen,
    pub(super) keep: bool,
    /// The status and header checks (`--check`) passed (true without any).
    pub(super) passes: bool,
}

/// Parses a response head at the start of `buf`: `Ok(None)` if incomplete, `Err` if
/// malformed (including contradictory or unparseable framing).
pub(super) fn parse_head(
    buf: &[u8],
    region_header: &HeaderName,
    version_header: &HeaderName,
    checks: Option<&Checks>,
) -> Result<Option<Head>, ()> {
    // Uninitialised slots: zeroing 128 headers (4 KiB) on every parse was the largest
    // single cost in user space at the maximum rate.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let status = resp.code.ok_or(())?;
    if !(100..600).contains(&status) {
        return Err(());
    }
    // HTTP/1.0 closes after each response unless told otherwise; we do not ask.
    let mut keep = resp.version == Some(1);
    let mut region = None;
    let mut version = None;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case(region_header.as_str()) {
            region = Some(Label::from_slice(h.value));
        } else if name.eq_ignore_ascii_case(version_header.as_str()) {
            version = Some(Label::from_slice(h.value));
        } else if name.eq_ignore_ascii_case("content-length") {
            // 1*DIGIT only: Rust's parse would also take "+2".
            let v = h.value.trim_ascii();
            if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
                return Err(());
            }
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(())?;
            if length.is_some_and(|m| m != n) {
                return Err(());
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .split(|&b| b == b',')
                .next_back()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                return Err(());
            }
        } else if name.eq_ignore_ascii_case("connection") {
            let v = h.value;
            if v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
            {
                keep = false;
            }
        }
    }
    if chunked && length.is_some() {
        return Err(());
    }
    let body = if chunked {
        BodyLen::Chunked
    } else if let Some(n) = length {
        if n == 0 {
            BodyLen::None
        } else {
            BodyLen::Length(n)
        }
    } else if (100..200).contains(&status) {
        BodyLen::None
    } else {
        BodyLen::UntilClose
    };
    let passes = checks.map_or(true, |c| {
        c.status_passes(status)
            && c.headers_pass(|n| {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(n.as_str()))
                    .map(|h| h.value)
            })
    });
    Ok(Some(Head {
        status,
        region,
        version,
        len,
        body,
        keep,
        passes,
    }))
}

#[cfg(test)]
mod head_props {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    const REGION: HeaderName = HeaderName::from_static("x-echo-region");
    const VERSION: HeaderName = HeaderName::from_static("x-echo-version");

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, .. ProptestConfig::default() })]

        /// Any bytes: incomplete, malformed or a head, never a panic.
        #[test]
        fn any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_head(&bytes, &REGION, &VERSION, None);
        }

        /// A well-formed head parses to what it says; a status outside 100-599 or a
        /// length that is not all digits is malformed.
        #[test]
        fn heads_mean_what_they_say(status in 0u16..1000, len in 0u64..100_000, plus in any::<bool>(),
                                    region in "[a-z]{1,8}") {
            let cl = if plus { format!("+{len}") } else { len.to_string() };
            let text = format!("HTTP/1.1 {status:03} X\r\nx-echo-region: {region}\r\ncontent-length: {cl}\r\n\r\n");
            match parse_head(text.as_bytes(), &REGION, &VERSION, None) {
                Ok(Some(h)) => {
                    prop_assert!((100..600).contains(&status) && !plus);
                    prop_assert_eq!(h.status, status);
                    prop_assert_eq!(h.region.as_deref(), Some(region.as_bytes()));
                    prop_assert_eq!(h.len, text.len());
                    match h.body {
                        BodyLen::Length(n) => prop_assert_eq!(n, len),
                        BodyLen::None => prop_assert!(len == 0 || (100..200).contains(&status)),
                        _ => prop_assert!(false, "unexpected framing"),
                    }
                }
                Ok(None) => prop_assert!(false, "a complete head was taken as partial"),
                Err(()) => prop_assert!(!(100..600).contains(&status) || plus),
            }
        }

        /// Chunked together with a length is refused, in either order.
        #[test]
        fn te_with_cl_is_refused(first_te in any::<bool>(), len in 0u64..1000) {
            let (a, b) = (format!("content-length: {len}"), "transfer-encoding: chunked".to_string());
            let (x, y) = if first_te { (b, a) } else { (a, b) };
            let text = format!("HTTP/1.1 200 OK\r\n{x}\r\n{y}\r\n\r\n");
            prop_assert!(parse_head(text.as_bytes(), &REGION, &VERSION, None).is_err());
        }
    }
}
