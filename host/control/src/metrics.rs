//! The process's Prometheus metrics: every family in one registry, named `omniforge_*`, with
//! the one function per event that counts it, so each number is counted in one place.
//!
//! Labels are bounded by what the operator controls: route templates (never raw paths),
//! methods, statuses, skills that exist (an invocation refused before its skill was found
//! carries an empty skill, so made-up names cannot grow the series), outcome and entry
//! names from fixed lists. No tenant label: tenants are data, not configuration.
//!
//! Counts that live elsewhere — tasks and the queue in the database, the compile cache in
//! the runtime — are read when a scraper asks ([`Metrics::render`]), not kept on hot paths.

use std::sync::Mutex;
use std::time::Duration;

use omniforge_runtime::{CacheStats, Usage};
use omniforge_store::{Census, TaskState};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Seconds, from a fraction of a millisecond (a cached `hello`) to a long task step.
const SECONDS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0,
];

/// Fuel units, by tens from a trivial call to the platform's largest budgets.
const FUEL: &[f64] = &[1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11];

/// Why a request or an invocation was refused before it ran: the `kind` label of
/// `omniforge_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A tenant's request rate.
    RateLimitTenant,
    /// An API key's or user's request rate.
    RateLimitCredential,
    /// A tenant's invocation quota for the period.
    QuotaInvocations,
    /// A tenant's fuel quota for the period.
    QuotaFuel,
    /// A tenant's concurrent invocations.
    Concurrency,
    /// The process's memory budget for running skills.
    MemoryBudget,
    /// A tenant's queue of tasks is full.
    QueueFull,
    /// A tenant's open event streams.
    Streams,
}

impl Refusal {
    /// Every kind.
    pub const ALL: &'static [Self] = &[
        Self::RateLimitTenant,
        Self::RateLimitCredential,
        Self::QuotaInvocations,
        Self::QuotaFuel,
        Self::Concurrency,
        Self::MemoryBudget,
        Self::QueueFull,
        Self::Streams,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimitTenant => "rate_limit_tenant",
            Self::RateLimitCredential => "rate_limit_credential",
            Self::QuotaInvocations => "quota_invocations",
            Self::QuotaFuel => "quota_fuel",
            Self::Concurrency => "concurrency",
            Self::MemoryBudget => "memory_budget",
            Self::QueueFull => "queue_full",
            Self::Streams => "streams",
        }
    }
}

/// The metrics of one process.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    invocations: IntCounterVec,
    invocation_duration: HistogramVec,
    invocation_fuel: HistogramVec,
    refusals: IntCounterVec,
    compiles: IntCounter,
    cache_hits: IntCounterVec,
    tasks: IntGaugeVec,
    queue_depth: IntGauge,
    active_tasks: IntGauge,
    tenants: IntGauge,
    skills: IntGauge,
    agents: IntGauge,
    /// One scrape at a time sets the read-at-scrape families.
    scrape: Mutex<()>,
    /// Whether anything is counted (an operator may turn metrics off).
    enabled: bool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Families that count nothing, for a server with metrics turned off.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::new()
        }
    }

    /// Whether anything is counted.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Every family, registered and at zero.
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("omniforge".into()), None).expect("a valid metric prefix");
        let http = ["route", "method", "status"];
        let invocation = ["skill", "outcome", "entry"];
        let metrics = Self {
            http_requests: counters(
                "http_requests_total",
                "HTTP requests answered, by route template, method and status.",
                &http,
            ),
            http_duration: histograms(
                "http_request_duration_seconds",
                "Time from a request's arrival to its response's head, by route template, method and status.",
                &http,
                SECONDS,
            ),
            invocations: counters(
                "invocations_total",
                "Skill invocations, by skill, outcome and entry point (rest, mcp, a2a, task, workflow, nested).",
                &invocation,
            ),
            invocation_duration: histograms(
                "invocation_duration_seconds",
                "Wall time of the invocations that ran, by skill, outcome and entry point.",
                &invocation,
                SECONDS,
            ),
            invocation_fuel: histograms(
                "invocation_fuel",
                "Fuel the invocations that ran consumed, by skill, outcome and entry point.",
                &invocation,
                FUEL,
            ),
            refusals: counters(
                "refusals_total",
                "Requests and invocations refused by a limit or quota before they ran, by kind.",
                &["kind"],
            ),
            compiles: IntCounter::with_opts(Opts::new(
                "compiles_total",
                "Components compiled by this process.",
            ))
            .expect("valid metric options"),
            cache_hits: counters(
                "compile_cache_hits_total",
                "Components loaded without compiling, by where they were found (memory, disk).",
                &["cache"],
            ),
            tasks: IntGaugeVec::new(
                Opts::new("tasks", "Tasks and agent runs in the database, by state."),
                &["state"],
            )
            .expect("valid metric options"),
            queue_depth: gauge("task_queue_depth", "Queued tasks that could start now."),
            active_tasks: gauge("active_tasks", "Tasks and agent runs being worked on."),
            tenants: gauge("tenants", "Active tenants."),
            skills: gauge("skills", "Skills published and not deleted."),
            agents: gauge("agents", "Agents saved and not deleted."),
            scrape: Mutex::new(()),
            enabled: true,
            registry,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(metrics.http_requests.clone()),
            Box::new(metrics.http_duration.clone()),
            Box::new(metrics.invocations.clone()),
            Box::new(metrics.invocation_duration.clone()),
            Box::new(metrics.invocation_fuel.clone()),
            Box::new(metrics.refusals.clone()),
            Box::new(metrics.compiles.clone()),
            Box::new(metrics.cache_hits.clone()),
            Box::new(metrics.tasks.clone()),
            Box::new(metrics.queue_depth.clone()),
            Box::new(metrics.active_tasks.clone()),
            Box::new(metrics.tenants.clone()),
            Box::new(metrics.skills.clone()),
            Box::new(metrics.agents.clone()),
        ];
        for collector in collectors {
            metrics
                .registry
                .register(collector)
                .expect("each family registered once");
        }
        // Every refusal kind and task state shows from the start, at zero, so a query
        // over them does not depend on one having happened.
        for kind in Refusal::ALL {
            metrics.refusals.with_label_values(&[kind.as_str()]);
        }
        metrics
    }

    /// An HTTP request answered: `route` is its template (`/api/v1/skills/{namespace}/…`),
    /// or `unmatched`.
    pub fn http_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        let status = status_label(status);
        let labels = [route, method, status];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// An invocation ended: `skill` is empty when it was refused before its skill was found;
    /// `usage` is there when the skill ran.
    pub fn invocation(&self, entry: &str, skill: &str, outcome: &str, usage: Option<&Usage>) {
        if !self.enabled {
            return;
        }
        let labels = [skill, outcome, entry];
        self.invocations.with_label_values(&labels).inc();
        if let Some(usage) = usage {
            self.invocation_duration
                .with_label_values(&labels)
                .observe(usage.wall_time_us as f64 / 1e6);
            self.invocation_fuel
                .with_label_values(&labels)
                .observe(usage.fuel_consumed as f64);
        }
    }

    /// A request or invocation refused before it ran.
    pub fn refused(&self, kind: Refusal) {
        if !self.enabled {
            return;
        }
        self.refusals.with_label_values(&[kind.as_str()]).inc();
    }

    /// The text exposition of every family, with the read-at-scrape ones set from `census`
    /// (when the database answered) and `cache`.
    pub fn render(&self, census: Option<&Census>, cache: CacheStats) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        set_counter(&self.compiles, cache.compiled);
        set_counter(
            &self.cache_hits.with_label_values(&["memory"]),
            cache.memory_hits,
        );
        set_counter(
            &self.cache_hits.with_label_values(&["disk"]),
            cache.loaded_from_disk,
        );
        if let Some(census) = census {
            for &state in TaskState::ALL {
                let count = census
                    .tasks
                    .iter()
                    .find(|c| c.state == state)
                    .map_or(0, |c| c.count);
                self.tasks.with_label_values(&[state.as_str()]).set(count);
                if state == TaskState::Working {
                    self.active_tasks.set(count);
                }
            }
            self.queue_depth.set(census.ready);
            self.tenants.set(census.tenants);
            self.skills.set(census.skills);
            self.agents.set(census.agents);
        }
        let mut text = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut text) {
            tracing::error!("cannot encode the metrics: {e}");
        }
        String::from_utf8(text).unwrap_or_default()
    }
}

fn counters(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric options")
}

fn histograms(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid metric options")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::with_opts(Opts::new(name, help)).expect("valid metric options")
}

/// A counter kept elsewhere (the runtime's own), copied in at a scrape.
fn set_counter(counter: &IntCounter, value: u64) {
    let now = counter.get();
    if value >= now {
        counter.inc_by(value - now);
    } else {
        counter.reset();
        counter.inc_by(value);
    }
}

/// The status as a label without allocating for the common ones.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        206 => "206",
        301 => "301",
        302 => "302",
        304 => "304",
        307 => "307",
        308 => "308",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        406 => "406",
        408 => "408",
        409 => "409",
        410 => "410",
        412 => "412",
        413 => "413",
        415 => "415",
        422 => "422",
        428 => "428",
        429 => "429",
        500 => "500",
        501 => "501",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => match status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_with_help_and_counts() {
        let metrics = Metrics::new();
        metrics.http_request(
            "/api/v1/skills/{namespace}/{name}/invoke",
            "POST",
            200,
            Duration::from_millis(2),
        );
        metrics.invocation(
            "rest",
            "examples/hello",
            "ok",
            Some(&Usage {
                fuel_consumed: 12_345,
                wall_time_us: 800,
                ..Usage::default()
            }),
        );
        metrics.invocation("mcp", "", "unresolved", None);
        metrics.refused(Refusal::QuotaFuel);
        let census = Census {
            ready: 3,
            tenants: 2,
            ..Census::default()
        };
        let text = metrics.render(
            Some(&census),
            CacheStats {
                compiled: 4,
                loaded_from_disk: 1,
                memory_hits: 9,
            },
        );
        for line in [
            "# HELP omniforge_http_requests_total ",
            "omniforge_http_requests_total{method=\"POST\",route=\"/api/v1/skills/{namespace}/{name}/invoke\",status=\"200\"} 1",
            "omniforge_invocations_total{entry=\"rest\",outcome=\"ok\",skill=\"examples/hello\"} 1",
            "omniforge_invocations_total{entry=\"mcp\",outcome=\"unresolved\",skill=\"\"} 1",
            "omniforge_invocation_fuel_sum{entry=\"rest\",outcome=\"ok\",skill=\"examples/hello\"} 12345",
            "omniforge_refusals_total{kind=\"quota_fuel\"} 1",
            "omniforge_refusals_total{kind=\"rate_limit_tenant\"} 0",
            "omniforge_compiles_total 4",
            "omniforge_compile_cache_hits_total{cache=\"memory\"} 9",
            "omniforge_tasks{state=\"working\"} 0",
            "omniforge_task_queue_depth 3",
            "omniforge_tenants 2",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        // A runtime restarted with fewer counts is copied as it is, not added.
        let text = metrics.render(None, CacheStats::default());
        assert!(text.contains("omniforge_compiles_total 0"), "{text}");
    }
}
