//! What the server tells operators: Prometheus metrics (on unless turned off) and traces
//! to an OTLP/HTTP collector (off unless configured).

use serde::Deserialize;

/// Metrics and trace export settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Count and serve `/metrics`. Off: nothing is counted and `/metrics` answers 404.
    pub metrics: bool,
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); spans go to its
    /// `/v1/traces`. Unset: no traces are made or sent.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` the spans carry.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            metrics: true,
            otlp_endpoint: None,
            service_name: "omniforge".into(),
        }
    }
}

impl TelemetryConfig {
    /// The URL spans are posted to, when traces are on.
    pub fn traces_url(&self) -> Option<String> {
        self.otlp_endpoint
            .as_deref()
            .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    }

    /// Adds a problem for every unusable value.
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if let Some(endpoint) = &self.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            problems.push(format!(
                "telemetry.otlp_endpoint: {endpoint:?} is not an http:// or https:// URL"
            ));
        }
        if self.service_name.trim().is_empty() {
            problems.push("telemetry.service_name: must not be empty".into());
        }
    }
}
