//! Property tests for the fault-parameter parser: it never panics, valid specifications
//! round-trip through their display form, and weights are validated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use echo_svc::faults::FaultSpec;
use echo_svc::weighted::Weighted;
use proptest::prelude::*;

fn weights(max_entries: usize) -> impl Strategy<Value = Vec<f64>> {
    // Percentages in hundredths so sums stay exact enough, scaled to total <= 100.
    prop::collection::vec(0u32..=10_000, 1..=max_entries).prop_map(|raw| {
        let total: u32 = raw.iter().sum();
        raw.iter()
            .map(|&w| {
                if total > 10_000 {
                    f64::from(w * 10_000 / total / 100) // whole percents after scaling
                } else {
                    f64::from(w) / 100.0
                }
            })
            .collect()
    })
}

fn weighted<T: Clone + std::fmt::Debug + 'static>(
    values: impl Strategy<Value = T> + Clone + 'static,
) -> impl Strategy<Value = Weighted<T>> {
    prop_oneof![
        values.clone().prop_map(Weighted::always),
        weights(5).prop_flat_map(move |ws| {
            let n = ws.len();
            prop::collection::vec(values.clone(), n).prop_map(move |vs| {
                Weighted::new(vs.into_iter().zip(ws.iter().copied()).collect()).unwrap()
            })
        }),
    ]
}

fn durations() -> impl Strategy<Value = Duration> + Clone {
    prop_oneof![
        (0u64..100_000).prop_map(Duration::from_millis),
        (0u64..10_000_000).prop_map(Duration::from_micros),
        (0u64..1_000_000_000).prop_map(Duration::from_nanos),
        (0u64..1000).prop_map(Duration::from_secs),
    ]
}

fn header() -> impl Strategy<Value = (http::HeaderName, http::HeaderValue)> {
    ("x-[a-z0-9-]{1,12}", "[ -~]{0,20}").prop_filter_map("valid header", |(n, v)| {
        let v = v.trim_start().to_owned();
        Some((
            http::HeaderName::from_bytes(n.as_bytes()).ok()?,
            http::HeaderValue::from_str(&v).ok()?,
        ))
    })
}

fn spec() -> impl Strategy<Value = FaultSpec> {
    (
        prop::option::of(weighted(durations())),
        prop::option::of(weighted(200u16..=599)),
        prop::option::of(weighted(0u64..100_000_000)),
        prop::option::of(weighted(any::<bool>())),
        prop::collection::vec(header(), 0..4),
    )
        .prop_filter("x-echo-* headers are reserved", |s| {
            !s.4.iter().any(|(n, _)| n.as_str().starts_with("x-echo-"))
        })
        .prop_map(|(delay, status, size, close, headers)| FaultSpec {
            delay,
            status,
            size,
            close,
            headers,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_text(s in ".{0,200}") {
        let _ = FaultSpec::from_query(&s);
        let _ = s.parse::<FaultSpec>();
    }

    #[test]
    fn never_panics_on_plausible_queries(
        key in prop::sample::select(vec!["delay", "status", "size", "close", "header", "for"]),
        value in "[0-9a-zA-Z:,.%&=+ -]{0,40}",
    ) {
        let q = format!("{key}={value}");
        if let Err(e) = FaultSpec::from_query(&q) {
            // Errors always name the parameter at fault.
            prop_assert_eq!(e.param, key);
        }
    }

    #[test]
    fn valid_specs_round_trip(spec in spec()) {
        let text = spec.to_string();
        let parsed: FaultSpec = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(&parsed, &spec, "text was {}", text);
        // The lenient parser agrees.
        prop_assert_eq!(FaultSpec::from_query(&text).unwrap(), spec);
    }

    #[test]
    fn weights_over_100_are_rejected(a in 50.01f64..100.0, b in 50.01f64..100.0) {
        let q = format!("status=503:{a},500:{b}");
        let err = FaultSpec::from_query(&q).unwrap_err();
        prop_assert_eq!(err.param, "status");
    }

    #[test]
    fn negative_or_non_finite_weights_are_rejected(
        w in prop_oneof![(-1000.0f64..-0.001).prop_map(|w| w.to_string()),
                         Just("NaN".to_owned()), Just("inf".to_owned()), Just("-inf".to_owned())]
    ) {
        let q = format!("delay=10ms:{w}");
        prop_assert_eq!(FaultSpec::from_query(&q).unwrap_err().param, "delay");
    }

    #[test]
    fn sampling_respects_weights_bounds(w in 0.0f64..=100.0, roll in 0.0f64..100.0) {
        let choice = Weighted::new(vec![(1u16, w)]).unwrap();
        prop_assert_eq!(choice.pick(roll).is_some(), roll < w);
    }
}
