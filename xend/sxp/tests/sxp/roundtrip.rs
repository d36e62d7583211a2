//! Property tests: whatever the writer or the pretty printer prints, the reader
//! reads back as the same value.

use proptest::prelude::*;
use sxp::{Value, parse, parse_all, pretty};

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        // Anything at all: quotes, backslashes, control characters, non-ASCII.
        any::<String>(),
        // Strings built from the characters that matter to the writer.
        proptest::collection::vec(
            prop_oneof![
                Just('\''),
                Just('"'),
                Just('\\'),
                Just('#'),
                Just('('),
                Just(')'),
                Just(' '),
                Just('\n'),
                Just('\t'),
                Just('\r'),
                Just('\x00'),
                Just('\x04'),
                Just('\x7f'),
                Just('@'),
                Just('x'),
                Just('0'),
                Just('-'),
                Just('é'),
                Just('\u{85}'),
                Just('\u{2028}'),
            ],
            0..12,
        )
        .prop_map(|cs| cs.into_iter().collect()),
        "[a-z0-9.:/_~-]{1,12}",
    ]
}

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = any_string().prop_map(Value::Str);
    leaf.prop_recursive(6, 96, 10, |inner| {
        proptest::collection::vec(inner, 0..10).prop_map(Value::List)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn show_then_read_is_identity(v in any_value()) {
        prop_assert_eq!(parse(&v.to_string()).unwrap(), v);
    }

    #[test]
    fn pretty_then_read_is_identity(v in any_value()) {
        prop_assert_eq!(parse(&pretty(&v)).unwrap(), v);
    }

    #[test]
    fn show_is_one_line(v in any_value()) {
        prop_assert!(!v.to_string().contains('\n'));
    }

    #[test]
    fn sequences_round_trip(vs in proptest::collection::vec(any_value(), 0..5)) {
        let text: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
        prop_assert_eq!(parse_all(&text.join("\n")).unwrap(), vs);
    }

    #[test]
    fn reader_never_panics(text in any::<String>()) {
        let _ = parse_all(&text);
    }
}
