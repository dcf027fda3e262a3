//! The trace context invocations carry: the W3C `traceparent` of the span an invocation
//! runs under, for the runtime to put on the skill's outbound HTTP requests. The spans
//! themselves are `tracing` spans (`request`, `task`, `step`, `invocation`), which the
//! binary exports over OTLP when traces are configured; without an exporter they have no
//! trace context and nothing is sent.

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `traceparent` header value of `span`: `None` when it has no valid trace context
/// (traces are off, or the span is disabled).
pub fn trace_parent(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}
