//! One GenAI span to Centile's event objects (the gateway's JSON fields),
//! following the OpenTelemetry GenAI semantic conventions. Pure: no I/O, so
//! the rules are tested span by span.
//!
//! - A span with a model attribute (`gen_ai.request.model`, then
//!   `gen_ai.response.model` by default) is a model call. It becomes a
//!   latency event, and a usage event too when it reports token counts.
//! - Token classes (cache reads and writes, reasoning) go to the usage
//!   event as they are: by the conventions they are parts of the input and
//!   output counts, and a span saying otherwise is refused by the usage
//!   event's rules.
//! - A span whose operation is an agent run or a tool call
//!   (`gateway.otlp_ignored_operations`) is not a model call even when it
//!   names a model: its tokens are the sum of the chat spans inside it.
//! - Any other span (HTTP handlers, agent and tool steps without a model,
//!   database calls) is ignored, not refused.
//! - Both events take their id from the trace and span ids, so a re-exported
//!   span is counted once.

use centile_runtime::config::GatewayConfig;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};
use serde_json::{Map, Value};

use super::attributes::{number, scalar_text, Attributes};

/// Input tokens: the current name first, then the pre-1.27 one.
const INPUT_TOKENS: [&str; 2] = ["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"];
/// Output tokens: the current name first, then the pre-1.27 one.
const OUTPUT_TOKENS: [&str; 2] = [
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
];
/// Cache reads, part of the input tokens.
const CACHE_READ: [&str; 2] = [
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
];
/// Cache writes, part of the input tokens: the semantic conventions' name,
/// then the newer `cache_write`, then the flattened spellings.
const CACHE_WRITE: [&str; 4] = [
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.cache_write_input_tokens",
];
/// Reasoning, part of the output tokens.
const REASONING: [&str; 2] = [
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
];
/// A provider-reported cost in US dollars (OpenLIT, OpenLLMetry).
const COST_USD: &str = "gen_ai.usage.cost";
const ERROR_TYPE: &str = "error.type";
const OPERATION: &str = "gen_ai.operation.name";

/// What became of one span.
#[derive(Debug, PartialEq)]
pub enum SpanOutcome {
    /// Not a model call.
    Ignored,
    /// A model call that cannot be an event: the attribute and the reason.
    Refused(String),
    Mapped(Mapped),
}

/// The event objects of one model call, in the gateway's JSON fields.
#[derive(Debug, PartialEq)]
pub struct Mapped {
    pub latency: Map<String, Value>,
    pub usage: Option<Map<String, Value>>,
}

/// Which attributes become which fields (`gateway.otlp_*`).
#[derive(Debug, Clone, Copy)]
pub struct SpanRules<'a> {
    pub settings: &'a GatewayConfig,
}

impl SpanRules<'_> {
    pub fn map(&self, span: &Span, attributes: Attributes<'_>) -> SpanOutcome {
        let settings = self.settings;
        let Some((_, model)) = attributes.first_text(&settings.otlp_model_attributes) else {
            return SpanOutcome::Ignored;
        };
        let operation = attributes.get(OPERATION).and_then(scalar_text);
        if operation.is_some_and(|op| settings.otlp_ignored_operations.contains(&op)) {
            return SpanOutcome::Ignored;
        }
        match self.events(span, attributes, model) {
            Ok(mapped) => SpanOutcome::Mapped(mapped),
            Err(reason) => SpanOutcome::Refused(reason),
        }
    }

    fn events(
        &self,
        span: &Span,
        attributes: Attributes<'_>,
        model: String,
    ) -> Result<Mapped, String> {
        let settings = self.settings;
        let event_id = event_id(span)?;
        let provider = attributes
            .first_text(&settings.otlp_provider_attributes)
            .map(|(_, p)| p)
            .ok_or_else(|| {
                format!(
                    "{}: missing; a model call needs its provider",
                    settings.otlp_provider_attributes.join(" or ")
                )
            })?;
        if span.start_time_unix_nano == 0 {
            return Err("start_time_unix_nano: missing".into());
        }
        if span.end_time_unix_nano < span.start_time_unix_nano {
            return Err(format!(
                "end_time_unix_nano: {} is before start_time_unix_nano {}",
                span.end_time_unix_nano, span.start_time_unix_nano
            ));
        }
        let occurred_at = (span.start_time_unix_nano / 1_000_000) as i64;
        let response_time_ms =
            (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1_000_000.0;
        let input = attributes.first_count(&INPUT_TOKENS)?;
        let output = attributes.first_count(&OUTPUT_TOKENS)?;
        let classes = [
            (
                "cache_read_input_tokens",
                attributes.first_count(&CACHE_READ)?,
            ),
            (
                "cache_write_input_tokens",
                attributes.first_count(&CACHE_WRITE)?,
            ),
            (
                "reasoning_output_tokens",
                attributes.first_count(&REASONING)?,
            ),
        ];
        let error_type = attributes
            .get(ERROR_TYPE)
            .and_then(scalar_text)
            .filter(|e| !e.is_empty());
        let failed = error_type.is_some()
            || span
                .status
                .as_ref()
                .is_some_and(|s| s.code == StatusCode::Error as i32);
        let tool = attributes
            .first_text(&settings.otlp_tool_attributes)
            .map_or_else(|| settings.otlp_default_tool.clone(), |(_, t)| t);
        let parameters: Map<String, Value> = settings
            .otlp_parameters
            .iter()
            .filter_map(|(name, key)| {
                let text = attributes.get(key).and_then(scalar_text)?;
                Some((name.clone(), Value::String(text)))
            })
            .collect();

        let mut latency = Map::new();
        latency.insert("event_id".into(), event_id.clone().into());
        latency.insert("occurred_at".into(), occurred_at.into());
        latency.insert("model_id".into(), model.clone().into());
        latency.insert("provider".into(), provider.clone().into());
        latency.insert("tool".into(), tool.into());
        latency.insert("parameters".into(), Value::Object(parameters));
        latency.insert("response_time_ms".into(), response_time_ms.into());
        latency.insert("success".into(), (!failed).into());
        if failed {
            let kind = error_type.unwrap_or_else(|| "error".into());
            latency.insert("error_type".into(), kind.into());
        }
        if let Some((_, n)) = &input {
            latency.insert("input_tokens".into(), (*n).into());
        }
        if let Some((_, n)) = &output {
            latency.insert("output_tokens".into(), (*n).into());
        }
        let session = attributes
            .first_text(&settings.otlp_session_attributes)
            .map(|(_, s)| s);
        if let Some(session) = &session {
            latency.insert("session_id".into(), session.clone().into());
        }

        let usage = if input.is_some() || output.is_some() {
            // No reported cost: the price book prices the tokens.
            let cost_nanos = match attributes.get(COST_USD) {
                None => None,
                Some(value) => {
                    let usd = number(value).map_err(|reason| format!("{COST_USD}: {reason}"))?;
                    Some((usd * 1e9).round() as i64)
                }
            };
            let feature = attributes
                .first_text(&settings.otlp_feature_attributes)
                .map_or_else(|| settings.otlp_default_feature.clone(), |(_, f)| f);
            let mut usage = Map::new();
            usage.insert("event_id".into(), event_id.into());
            usage.insert("occurred_at".into(), occurred_at.into());
            if let Some((_, user)) = attributes.first_text(&settings.otlp_user_attributes) {
                usage.insert("user_id".into(), user.into());
            }
            if let Some(session) = session {
                usage.insert("session_id".into(), session.into());
            }
            usage.insert("model_id".into(), model.into());
            usage.insert("provider".into(), provider.into());
            usage.insert("feature".into(), feature.into());
            usage.insert("input_tokens".into(), input.map_or(0, |(_, n)| n).into());
            usage.insert("output_tokens".into(), output.map_or(0, |(_, n)| n).into());
            if let Some(cost) = cost_nanos {
                usage.insert("cost_usd_nanos".into(), cost.into());
            }
            for (field, count) in classes {
                if let Some((_, n)) = count {
                    usage.insert(field.into(), n.into());
                }
            }
            Some(usage)
        } else {
            None
        };
        Ok(Mapped { latency, usage })
    }
}

/// `<trace id><span id>` in lowercase hex: stable across re-exports, and
/// unique as long as span ids are (W3C: random 8 bytes within a trace).
pub fn event_id(span: &Span) -> Result<String, String> {
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|b| *b == 0) {
        return Err(format!(
            "trace_id: must be 16 bytes and not all zero, got {} bytes",
            span.trace_id.len()
        ));
    }
    if span.span_id.len() != 8 || span.span_id.iter().all(|b| *b == 0) {
        return Err(format!(
            "span_id: must be 8 bytes and not all zero, got {} bytes",
            span.span_id.len()
        ));
    }
    Ok(format!(
        "{}{}",
        hex::encode(&span.trace_id),
        hex::encode(&span.span_id)
    ))
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::{
        common::v1::{any_value::Value as V, AnyValue, KeyValue},
        trace::v1::Status,
    };

    use super::*;

    fn kv(key: &str, value: V) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn text(key: &str, value: &str) -> KeyValue {
        kv(key, V::StringValue(value.into()))
    }

    fn span(attributes: Vec<KeyValue>) -> Span {
        Span {
            trace_id: vec![0x5b; 16],
            span_id: vec![0x0a, 1, 2, 3, 4, 5, 6, 7],
            name: "chat gpt-4o".into(),
            start_time_unix_nano: 1_767_225_600_000_000_000,
            end_time_unix_nano: 1_767_225_600_250_500_000,
            attributes,
            ..Default::default()
        }
    }

    fn map(span: &Span, resource: &[KeyValue]) -> SpanOutcome {
        let settings = GatewayConfig::default();
        SpanRules {
            settings: &settings,
        }
        .map(
            span,
            Attributes {
                span: &span.attributes,
                resource,
            },
        )
    }

    #[test]
    fn a_chat_span_becomes_a_latency_and_a_usage_event() {
        let span = span(vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.provider.name", "openai"),
            text("gen_ai.request.model", "gpt-4o"),
            text("gen_ai.response.model", "gpt-4o-2024-08-06"),
            kv("gen_ai.usage.input_tokens", V::IntValue(1200)),
            kv("gen_ai.usage.output_tokens", V::DoubleValue(80.0)),
            kv("gen_ai.usage.cache_read.input_tokens", V::IntValue(1000)),
            kv("gen_ai.usage.cache_write.input_tokens", V::IntValue(100)),
            kv("gen_ai.usage.reasoning.output_tokens", V::IntValue(30)),
            kv("gen_ai.request.temperature", V::DoubleValue(0.2)),
            kv("gen_ai.request.stream", V::BoolValue(true)),
            text("user.id", "u-7"),
            text("session.id", "conv-9"),
        ]);
        let resource = [text("service.name", "checkout")];
        let SpanOutcome::Mapped(mapped) = map(&span, &resource) else {
            panic!("mapped");
        };
        let latency = Value::Object(mapped.latency);
        assert_eq!(
            latency,
            serde_json::json!({
                "event_id": "5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b0a01020304050607",
                "occurred_at": 1_767_225_600_000_i64,
                "model_id": "gpt-4o",
                "provider": "openai",
                "tool": "chat",
                "parameters": {"temperature": "0.2", "stream": "true"},
                "response_time_ms": 250.5,
                "success": true,
                "input_tokens": 1200,
                "output_tokens": 80,
                "session_id": "conv-9"
            })
        );
        let usage = Value::Object(mapped.usage.expect("usage"));
        assert_eq!(usage["feature"], "checkout", "from the resource");
        assert_eq!(usage["user_id"], "u-7");
        assert_eq!(usage["session_id"], "conv-9");
        assert_eq!(usage["input_tokens"], 1200);
        assert!(
            usage.get("cost_usd_nanos").is_none(),
            "no reported cost: the price book prices it"
        );
        assert_eq!(usage["cache_read_input_tokens"], 1000);
        assert_eq!(
            usage["cache_write_input_tokens"], 100,
            "the newer cache_write name"
        );
        assert_eq!(usage["reasoning_output_tokens"], 30);
        assert_eq!(usage["event_id"], latency["event_id"]);
    }

    #[test]
    fn legacy_names_errors_and_costs() {
        let mut span = span(vec![
            text("gen_ai.system", "anthropic"),
            text("gen_ai.response.model", "claude-sonnet-4"),
            kv("gen_ai.usage.prompt_tokens", V::StringValue("30".into())),
            kv("gen_ai.usage.cost", V::DoubleValue(0.000_45)),
            text("error.type", "rate_limit_exceeded"),
        ]);
        span.status = Some(Status {
            code: StatusCode::Error as i32,
            message: "429".into(),
        });
        let SpanOutcome::Mapped(mapped) = map(&span, &[]) else {
            panic!("mapped");
        };
        assert_eq!(mapped.latency["provider"], "anthropic");
        assert_eq!(mapped.latency["model_id"], "claude-sonnet-4");
        assert_eq!(mapped.latency["tool"], "model", "the default tool");
        assert_eq!(mapped.latency["success"], false);
        assert_eq!(mapped.latency["error_type"], "rate_limit_exceeded");
        let usage = mapped.usage.expect("usage");
        assert_eq!(usage["input_tokens"], 30);
        assert_eq!(usage["output_tokens"], 0);
        assert_eq!(usage["cost_usd_nanos"], 450_000);
        assert_eq!(usage["feature"], "default");
        assert!(
            usage.get("cache_read_input_tokens").is_none(),
            "absent, not 0"
        );
    }

    #[test]
    fn spans_without_a_model_are_ignored_and_bad_model_calls_refused() {
        assert_eq!(
            map(&span(vec![text("http.route", "/checkout")]), &[]),
            SpanOutcome::Ignored
        );
        assert_eq!(
            map(
                &span(vec![text("gen_ai.operation.name", "invoke_agent")]),
                &[]
            ),
            SpanOutcome::Ignored,
            "an agent step without a model is not a model call"
        );
        assert_eq!(
            map(
                &span(vec![
                    text("gen_ai.operation.name", "invoke_agent"),
                    text("gen_ai.request.model", "gpt-4o"),
                    text("gen_ai.provider.name", "openai"),
                    kv("gen_ai.usage.input_tokens", V::IntValue(900)),
                ]),
                &[]
            ),
            SpanOutcome::Ignored,
            "an agent run naming its model repeats its chat spans' tokens"
        );
        let no_provider = map(&span(vec![text("gen_ai.request.model", "m")]), &[]);
        assert!(
            matches!(&no_provider, SpanOutcome::Refused(r) if r.contains("gen_ai.provider.name")),
            "{no_provider:?}"
        );
        let negative = map(
            &span(vec![
                text("gen_ai.request.model", "m"),
                text("gen_ai.provider.name", "p"),
                kv("gen_ai.usage.output_tokens", V::IntValue(-3)),
            ]),
            &[],
        );
        assert!(
            matches!(&negative, SpanOutcome::Refused(r) if r.starts_with("gen_ai.usage.output_tokens: must not be negative")),
            "{negative:?}"
        );
        let mut no_ids = span(vec![
            text("gen_ai.request.model", "m"),
            text("gen_ai.provider.name", "p"),
        ]);
        no_ids.span_id = vec![0; 8];
        assert!(matches!(map(&no_ids, &[]), SpanOutcome::Refused(r) if r.starts_with("span_id")));
    }
}
