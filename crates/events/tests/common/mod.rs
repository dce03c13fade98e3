//! What the README's publishing examples (Python and Java) encode, so the
//! interop tests that run them check one expectation.

use std::collections::BTreeMap;

use centile_events::{decode_message, Decoded, LatencyEvent, Schemas};

/// Decodes a message written by a README example run at `before..=after`
/// (ms) and checks it is the documented event with id `event_id`, in the
/// specification's fingerprint order.
pub fn assert_readme_example(bytes: &[u8], event_id: &str, before: i64, after: i64) {
    let decoded = decode_message(&Schemas::new(), bytes).unwrap();
    assert_eq!(decoded.legacy_fingerprint, None);
    let Decoded::Latency(event) = decoded.message else {
        panic!("expected a latency event");
    };
    assert!(
        (before..=after).contains(&event.occurred_at),
        "occurred_at {} is not the time the example ran ({before}..{after})",
        event.occurred_at
    );
    assert_eq!(
        event,
        LatencyEvent {
            event_id: event_id.into(),
            occurred_at: event.occurred_at,
            tenant_id: "acme".into(),
            model_id: "gpt-4o".into(),
            provider: "openai".into(),
            tool: "chat".into(),
            parameters: BTreeMap::from([("streaming".into(), "true".into())]),
            response_time_ms: 812.5,
            success: true,
            error_type: None,
            input_tokens: Some(120),
            output_tokens: Some(48),
            session_id: None,
        }
    );
}
