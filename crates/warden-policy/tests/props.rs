//! Property tests: arbitrary input never panics, and accepted amounts round-trip exactly.

use proptest::prelude::*;
use warden_policy::{format_minor_units, to_minor_units, ToolCall};

proptest! {
    #[test]
    fn any_amount_text_is_handled(text in "\\PC{0,40}", cur in "[A-Z]{3}") {
        let _ = to_minor_units(&text, &cur);
    }

    #[test]
    fn valid_amounts_round_trip(minor in 1i64..1_000_000_000_000, cur in prop::sample::select(vec!["USD", "JPY", "KWD", "EUR", "CLF"])) {
        let text = format_minor_units(minor, cur);
        prop_assert_eq!(to_minor_units(&text, cur), Ok(minor));
    }

    #[test]
    fn any_tool_call_json_is_handled(s in "\\PC{0,80}") {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&s) {
            let _ = ToolCall::from_any(&v);
        }
        let _ = ToolCall::from_openai(&serde_json::json!({"name": "t", "arguments": s}));
    }
}
