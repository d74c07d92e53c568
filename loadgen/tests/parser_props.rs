//! Property tests of what reads untrusted input: the report decoder and the target URL
//! parser (the response-head parser's live in `http1.rs`, beside the private parser).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

fn no_env(_: &str) -> Option<String> {
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Any string: an error or a histogram, never a panic or an unbounded allocation.
    #[test]
    fn decode_never_panics(s in ".{0,400}") {
        let _ = loadgen::report::json::decode(&s);
    }

    /// Arbitrary bytes, base64-encoded so they reach the histogram parser.
    #[test]
    fn decode_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        use base64::Engine as _;
        let _ = loadgen::report::json::decode(&base64::engine::general_purpose::STANDARD.encode(bytes));
    }

    /// What loadgen writes, it reads back exactly.
    #[test]
    fn encode_decode_round_trips(values in proptest::collection::vec(1u64..3_600_000_000, 1..200)) {
        let mut h = loadgen::hist::new_histogram();
        for v in &values {
            h.record(*v).unwrap();
        }
        let back = loadgen::report::json::decode(&loadgen::report::json::encode(&h)).unwrap();
        prop_assert_eq!(back.len(), h.len());
        prop_assert_eq!(back.max(), h.max());
        prop_assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    /// Any target spec: a usage error or targets, never a panic.
    #[test]
    fn target_specs_never_panic(spec in ".{0,120}") {
        let _ = loadgen::configured::target::resolve(&[spec], None, None, &Default::default(), &no_env);
    }

    /// http://HOST:PORT/ is accepted exactly when the port is 1-65535, and then that port
    /// is the one connected to (never a fallback).
    #[test]
    fn ports_are_exact(port in 0u32..200_000) {
        let spec = format!("t=http://127.0.0.1:{port}/");
        match loadgen::configured::target::resolve(&[spec], None, None, &Default::default(), &no_env) {
            Ok(t) => {
                prop_assert!((1..=65_535).contains(&port));
                prop_assert_eq!(t[0].host_port().1 as u32, port);
            }
            Err(_) => prop_assert!(port == 0 || port > 65_535),
        }
    }
}
