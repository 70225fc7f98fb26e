//! Property tests (proptest) of the event reader and the time and money parsers: whatever the
//! input, they never panic, whatever they accept is in range and reads back the same, and
//! whatever they refuse has a reason.
//! `make test` runs the default 256 cases per property; `make fuzz` raises `PROPTEST_CASES`.
//! A failure proptest finds is kept as a regression case in `regressions()` below.

use proptest::prelude::*;

use crate::event::{Event, Time, MAX_RECORD_BYTES};
use crate::money::Money;
use crate::read::read;
use crate::text::{parse_time, write_time, MAX_EVENT_MS, MIN_EVENT_MS};

/// Near-valid event times: every part drawn from valid and invalid spellings.
fn times() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt _][0-9]{2}:[0-9]{2}:[0-9]{2}([.,][0-9]{0,12})?(Z|z|[+-][0-9]{2}:?[0-9]{2}|)",
        "(19|20|21|99)[0-9]{2}-(0[0-9]|1[0-3])-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{1,9})?(Z|[+-][0-2][0-9]:[0-6][0-9])",
        any::<String>(),
    ]
}

/// Near-valid amounts.
fn amounts() -> impl Strategy<Value = String> {
    prop_oneof![
        "[+-]?[0-9]{0,30}(\\.[0-9]{0,30})?([eE][+-]?[0-9]{0,4})?",
        "[+-]?(NaN|nan|Infinity|inf|sNaN)",
        "[ _0-9\u{660}-\u{669}.eE+-]{0,12}",
        any::<String>(),
    ]
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string is JSON")
}

/// Records in the contract's shape with odd values in their fields.
fn records() -> impl Strategy<Value = Vec<u8>> {
    let kinds = prop_oneof![
        Just("page_viewed"),
        Just("product_viewed"),
        Just("cart_item_added"),
        Just("cart_item_removed"),
        Just("checkout_started"),
        Just("order_completed"),
        Just("nope"),
    ];
    let occurred = prop_oneof![
        times().prop_map(|t| json_string(&t)),
        any::<i64>().prop_map(|ms| ms.to_string()),
        (MIN_EVENT_MS - 10..MAX_EVENT_MS + 10).prop_map(|ms| ms.to_string()),
        Just("1e999".to_owned()),
    ];
    let ids = prop_oneof![Just("s1".to_owned()), Just(String::new()), any::<String>()];
    let quantity = prop_oneof![any::<i64>().prop_map(|q| q.to_string()), Just("1.5".into())];
    (
        kinds,
        occurred,
        ids.clone(),
        ids,
        amounts(),
        amounts(),
        quantity,
    )
        .prop_map(
            |(kind, occurred, session, product, price, value, quantity)| {
                format!(
                    "{{\"event_id\":\"e1\",\"type\":\"{kind}\",\"occurred_at\":{occurred},\
                 \"session_id\":{},\"product\":{{\"id\":{},\"price\":{},\"currency\":\"usd\"}},\
                 \"quantity\":{quantity},\"order\":{{\"value\":{}}}}}",
                    json_string(&session),
                    json_string(&product),
                    json_string(&price),
                    json_string(&value),
                )
                .into_bytes()
            },
        )
}

/// A valid record with a few bytes changed, inserted or cut.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let base = br#"{"event_id":"e1","type":"cart_item_added","occurred_at":"2019-10-01T00:10:00.5+02:00","session_id":"s1","customer_id":"c1","product":{"id":"p1","name":"Mug","price":"12.50","currency":"usd"},"quantity":2,"cart":{"id":"c","url":"https://x/c"},"order":{"value":"1"}}"#;
    prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6).prop_map(
        move |edits| {
            let mut raw = base.to_vec();
            for (at, byte, how) in edits {
                let i = at.index(raw.len());
                match how {
                    0 => raw[i] = byte,
                    1 => raw.insert(i, byte),
                    _ => {
                        raw.remove(i);
                    }
                }
            }
            raw
        },
    )
}

fn check_event(event: &Event) -> Result<(), TestCaseError> {
    prop_assert!((MIN_EVENT_MS..MAX_EVENT_MS).contains(&event.occurred_at));
    prop_assert!(!event.event_id.is_empty() && !event.session_id.is_empty());
    prop_assert!(event.quantity >= 1);
    for time in [Time::Text, Time::Millis] {
        let mut written = Vec::new();
        event.write_json(&mut written, time);
        let again = read(&written, usize::MAX);
        prop_assert_eq!(again.as_ref(), Ok(event), "reads back");
    }
    Ok(())
}

fn check_time(text: &str) -> Result<(), TestCaseError> {
    if let Ok(ms) = parse_time(text) {
        prop_assert!(
            (MIN_EVENT_MS..MAX_EVENT_MS).contains(&ms),
            "{text:?} → {ms}"
        );
        let mut written = Vec::new();
        write_time(&mut written, ms);
        prop_assert_eq!(parse_time(std::str::from_utf8(&written).unwrap()), Ok(ms));
    }
    Ok(())
}

fn check_amount(text: &str) -> Result<(), TestCaseError> {
    if let Ok(money) = Money::parse(text) {
        prop_assert!(money.coef >= 0 && money.coef < 10i128.pow(28), "{text:?}");
        prop_assert!((-28..=28).contains(&money.exp), "{text:?}");
        prop_assert_eq!(
            Money::parse(&money.to_text()),
            Ok(money),
            "{:?} reads back",
            text
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn the_event_reader_never_panics_and_what_it_accepts_reads_back(
        raw in prop_oneof![records(), mutated(), prop::collection::vec(any::<u8>(), 0..64)]
    ) {
        match read(&raw, MAX_RECORD_BYTES) {
            Ok(event) => check_event(&event)?,
            Err(refusal) => prop_assert!(!refusal.reason().is_empty()),
        }
    }

    #[test]
    fn accepted_times_are_in_range_and_read_back(text in times()) {
        check_time(&text)?;
    }

    #[test]
    fn every_time_in_range_is_written_and_read_back(ms in MIN_EVENT_MS..MAX_EVENT_MS) {
        let mut written = Vec::new();
        write_time(&mut written, ms);
        prop_assert_eq!(parse_time(std::str::from_utf8(&written).unwrap()), Ok(ms));
    }

    #[test]
    fn accepted_amounts_are_bounded_and_read_back(text in amounts()) {
        check_amount(&text)?;
    }
}

/// Inputs proptest (or a review) found; each stays a case here.
#[test]
fn regressions() {
    for text in [
        "2019-10-01T00:00:00,5Z",
        "2019-W40-2T00:00:00Z",
        "2019-10-01T00:00:00Z\0",
    ] {
        check_time(text).unwrap();
        assert!(parse_time(text).is_err(), "{text:?}");
    }
    for text in [
        "-0",
        "-0.00",
        "1_000",
        " 10",
        "\u{661}\u{660}",
        "1e99999999999999999999",
    ] {
        check_amount(text).unwrap();
    }
}
