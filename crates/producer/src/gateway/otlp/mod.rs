//! OpenTelemetry trace ingest: OTLP/HTTP (`POST /v1/traces`, protobuf or
//! JSON, optionally gzip) and OTLP/gRPC (`TraceService/Export`).
//!
//! - [`attributes`]: reading attribute values as instrumentations send them.
//! - [`mapping`]: one GenAI span to latency and usage event objects.
//! - [`http`] and [`grpc`]: the two transports, each answering in its own
//!   protocol's terms.
//!
//! Both transports end in [`export`]: the key's tenancy, rate and limits
//! apply as on the JSON routes; each model-call span is validated by the
//! same field rules; spans that are not model calls are counted and
//! ignored. A span that cannot be an event is rejected alone and reported
//! through OTLP's partial success, while every other span is published:
//! exporters do not retry a partial success, and dropping a whole batch for
//! one odd span would lose good data. Publishing itself is all or nothing:
//! if the broker does not acknowledge every event, the export is answered
//! "unavailable, retry", and the retry counts nothing twice because event
//! ids come from the trace and span ids.

pub mod attributes;
pub mod grpc;
pub mod http;
pub mod mapping;

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use self::{
    attributes::Attributes,
    mapping::{SpanOutcome, SpanRules},
};
use super::{
    answer::Rejection,
    fields::{event, EventKind},
    ids::IdSource,
    ingest::{collapse, content_print, kind_of, publish, unavailable},
    Gateway,
};

/// At most this many rejected spans are described in a partial success.
const MAX_DESCRIBED: usize = 10;

/// What an export came to, for the answer and the metrics.
#[derive(Debug, Default, PartialEq)]
pub struct Exported {
    pub accepted_spans: usize,
    pub ignored_spans: usize,
    pub rejected_spans: usize,
    /// The first rejected spans, each with its ids, attribute and reason.
    pub reasons: Vec<String>,
}

impl Exported {
    /// The OTLP answer: `partial_success` only when a span was rejected.
    pub fn response(&self) -> ExportTraceServiceResponse {
        let partial_success = (self.rejected_spans > 0).then(|| {
            let mut message = format!(
                "{} span(s) rejected, {} accepted: {}",
                self.rejected_spans,
                self.accepted_spans,
                self.reasons.join("; ")
            );
            if self.rejected_spans > self.reasons.len() {
                message.push_str(&format!(
                    "; and {} more",
                    self.rejected_spans - self.reasons.len()
                ));
            }
            ExportTracePartialSuccess {
                rejected_spans: self.rejected_spans as i64,
                error_message: message,
            }
        });
        ExportTraceServiceResponse { partial_success }
    }
}

/// Maps, validates and publishes the spans of one export for `tenant`.
pub async fn export(
    gateway: &Arc<Gateway>,
    tenant: &str,
    request: &ExportTraceServiceRequest,
) -> Result<Exported, Rejection> {
    let spans: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let limit = gateway.settings.max_batch_events;
    if spans > limit {
        return Err(Rejection::TooLarge(format!(
            "{spans} spans in one export, limit {limit}"
        )));
    }
    if !gateway.readiness.is_ready() {
        return Err(unavailable(gateway, "the broker is unreachable"));
    }
    let rules = SpanRules {
        settings: &gateway.settings,
    };
    let ids = IdSource::Random;
    let intake = gateway.intake(tenant, &ids);
    let mut outcome = Exported::default();
    let mut events = Vec::new();
    let mut index = 0;
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map_or(&[][..], |r| &r.attributes[..]);
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            let attributes = Attributes {
                span: &span.attributes,
                resource,
            };
            let refused = match rules.map(span, attributes) {
                SpanOutcome::Ignored => {
                    outcome.ignored_spans += 1;
                    None
                }
                SpanOutcome::Refused(reason) => Some(reason),
                SpanOutcome::Mapped(mapped) => {
                    let mut read = vec![event(EventKind::Latency, index, &mapped.latency, &intake)];
                    if let Some(usage) = &mapped.usage {
                        read.push(event(EventKind::Usage, index, usage, &intake));
                    }
                    match read.into_iter().collect::<Result<Vec<_>, _>>() {
                        Ok(read) => {
                            outcome.accepted_spans += 1;
                            events.extend(read);
                            None
                        }
                        Err(problems) => Some(
                            problems
                                .iter()
                                .map(|p| format!("{}: {}", p.field, p.reason))
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                    }
                }
            };
            if let Some(reason) = refused {
                outcome.rejected_spans += 1;
                if outcome.reasons.len() < MAX_DESCRIBED {
                    outcome.reasons.push(format!(
                        "span {}/{} ({:?}): {reason}",
                        hex::encode(&span.trace_id),
                        hex::encode(&span.span_id),
                        span.name
                    ));
                }
            }
            index += 1;
        }
    }
    if events.is_empty() {
        return Ok(outcome);
    }
    let prints = events.iter().map(content_print).collect();
    // Identical copies of a span within one export collapse to one; the
    // same ids with different content refuse the export.
    let (events, prints, kept) = collapse(events, prints)?;
    let kinds: Vec<EventKind> = events.iter().map(kind_of).collect();
    publish(gateway, tenant, events, prints, &kept).await?;
    for kind in kinds {
        gateway
            .metrics
            .accepted
            .with_label_values(&[kind.label()])
            .inc();
    }
    Ok(outcome)
}
