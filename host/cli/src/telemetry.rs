//! Traces over OTLP/HTTP, when `telemetry.otlp_endpoint` names a collector: every
//! `omniforge*` span (`request`, `task`, `step`, `invocation`) becomes an OpenTelemetry span,
//! exported in batches by the SDK's own thread, and W3C `traceparent` headers join incoming
//! requests to their callers' traces.

use std::time::Duration;

use anyhow::{Context, Result};
use omniforge_server::config::TelemetryConfig;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// How long one export may take before it is given up (the collector is down or slow).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The running exporter; [`Traces::shutdown`] sends what is still queued.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Starts exporting to the configured collector, or `None` when none is configured.
    pub fn start(config: &TelemetryConfig) -> Result<Option<Self>> {
        let Some(url) = config.traces_url() else {
            return Ok(None);
        };
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .with_context(|| format!("cannot set up the trace exporter for {url}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        Ok(Some(Self { provider }))
    }

    /// The tracer spans are made with.
    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer("omniforge")
    }

    /// Exports what is queued and stops (blocks for at most a few seconds).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("cannot send the last traces: {e}");
        }
    }
}
