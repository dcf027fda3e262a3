//! The invocation service: the one pipeline every entry point runs a skill through (REST
//! today; skills calling skills, MCP, tasks, workflows and A2A build on it).
//!
//! [`Invocations::invoke`] checks the input's depth, resolves the version the tenant runs
//! (its own skill, or an installed one whose permissions it accepted), checks the input
//! against the schema, computes the limits (min of manifest, tenant policy and platform
//! maximum) and grants, reserves the tenant's quota, runs the skill in a fresh sandbox,
//! checks the output against its schema and settles what it used. Every way this can fail is
//! an [`InvokeError`], which each transport maps once (the HTTP problem table lives in the
//! server).

use std::sync::Arc;
use std::time::{Duration, Instant};

use omniforge_runtime::{
    InvocationContext, InvocationReport, InvocationRequest, Outcome, Runtime, TaskRun, Usage,
};
use omniforge_store::{StoreError, TenantId};
use omniforge_types::SkillName;
use semver::Version;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::catalog::{Catalog, PendingUpdate, ResolveError};
use crate::changes::{Applied, Change, ChangeFeed};
use crate::input::{self, InputError};
use crate::limits::{PlatformLimits, grants};
use crate::meter::{QuotaExceeded, QuotaLedger, Reservation, Spent};
use crate::metrics::{Metrics, Refusal};
use crate::policy::Policies;

/// One invocation to run.
#[derive(Debug)]
pub struct Call {
    /// The tenant on whose behalf it runs (and whose quotas it uses).
    pub tenant: TenantId,
    /// The skill.
    pub skill: SkillName,
    /// A version requirement; `None`: the newest version not yanked.
    pub requirement: Option<String>,
    /// The input as the caller sent it (JSON text, passed to the guest unchanged).
    pub input: Box<RawValue>,
    /// The request it belongs to, for logs and the guest's context.
    pub request_id: String,
    /// When the caller stops waiting: the invocation's time limit ends before it.
    pub deadline: Option<Instant>,
    /// Where it came in, recorded with it.
    pub entry: EntryPoint,
    /// Cancelling it stops the invocation, which then ends `canceled` and is charged what
    /// it used (a task's cancel). `None`: it runs to its end even if its caller goes away.
    pub cancel: Option<CancellationToken>,
    /// The durable task it runs for: its id and attempt reach the skill, its log lines the
    /// task's events.
    pub task: Option<TaskRun>,
}

/// Where an invocation came in. Every invocation is recorded with it (the
/// `omniforge::invocation` log event; the metrics of step 11 use the same labels), and a
/// nested call carries what it shares with its caller.
#[derive(Debug, Clone)]
pub enum EntryPoint {
    /// `POST /api/v1/skills/{ns}/{name}/invoke`.
    Rest,
    /// An MCP `tools/call`.
    Mcp,
    /// A durable task's run.
    Task,
    /// A `skill` step of an agent's run.
    Workflow,
    /// A `skill` step of an agent's run started over A2A (a run with an A2A context).
    A2a,
    /// A running skill calling another (`omniforge:skill/skills`).
    Nested(Nesting),
}

impl EntryPoint {
    /// The stable lower-case label it is recorded under: `rest`, `mcp`, `task`, `workflow`,
    /// `a2a`, `nested`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Rest => "rest",
            Self::Mcp => "mcp",
            Self::Task => "task",
            Self::Workflow => "workflow",
            Self::A2a => "a2a",
            Self::Nested(_) => "nested",
        }
    }
}

/// A call made by a running skill: it shares its caller's budget.
#[derive(Debug, Clone)]
pub struct Nesting {
    /// The skills on the call stack, outermost first, ending with the caller.
    pub callers: Vec<SkillName>,
    /// The most fuel the callee may burn, out of the caller's (`None`: not metered).
    pub fuel: Option<u64>,
}

/// A successful invocation.
#[derive(Debug)]
pub struct Invoked {
    /// The version that ran.
    pub version: Version,
    /// The skill's output (JSON text, as the skill wrote it).
    pub output: Box<RawValue>,
    /// What it used.
    pub usage: Usage,
    /// A newer version the installation does not use yet because it asks for permissions
    /// not accepted.
    pub pending_update: Option<PendingUpdate>,
}

/// Why an invocation did not answer an output.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The input is refused before anything runs (too deep, not the schema's).
    #[error("invalid input: {}", .0.message)]
    InvalidInput(InputError),
    /// No version of the skill can run for this tenant.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// A quota of the tenant for this period is used up.
    #[error(transparent)]
    Quota(QuotaExceeded),
    /// The skill ran (or the runtime refused to start it) and did not end `ok`.
    #[error("{outcome}")]
    Ended {
        /// How it ended.
        outcome: Outcome,
        /// What it used.
        usage: Usage,
    },
    /// The skill answered an output that breaks its output schema.
    #[error("invalid output: {}", violation.message)]
    InvalidOutput {
        /// Where and how.
        violation: InputError,
        /// What it used.
        usage: Usage,
    },
    /// A service the replicas share (Redis, for quotas) cannot be reached and the operator
    /// chose to refuse meanwhile (`redis.failure_mode = "closed"`).
    #[error("{0}")]
    Unavailable(String),
    /// The platform failed (database, a lost task).
    #[error("{0}")]
    Internal(String),
}

impl InvokeError {
    /// The stable snake_case name of how it ended, as recorded: the runtime's outcome code
    /// when the skill ran, otherwise why it did not.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "invalid_input",
            Self::Resolve(_) => "unresolved",
            Self::Quota(_) => "quota_exceeded",
            Self::Ended { outcome, .. } => outcome.code(),
            Self::InvalidOutput { .. } => "invalid_output",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// What it used, if it ran.
    pub fn usage(&self) -> Option<&Usage> {
        match self {
            Self::Ended { usage, .. } | Self::InvalidOutput { usage, .. } => Some(usage),
            _ => None,
        }
    }
}

impl From<StoreError> for InvokeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(why) => Self::Unavailable(why),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// The shortest time limit an invocation gets, however close the caller's deadline is.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// The invocation service of one server.
pub struct Invocations {
    parts: Parts,
}

/// What [`Invocations`] is built from.
pub struct Parts {
    /// Runs skills.
    pub runtime: Arc<Runtime>,
    /// Resolves and prepares versions.
    pub catalog: Arc<Catalog>,
    /// Tenant policies.
    pub policies: Arc<Policies>,
    /// Quota counters.
    pub ledger: Arc<dyn QuotaLedger>,
    /// Where changes to skills and policies are announced.
    pub changes: Arc<dyn ChangeFeed>,
    /// The changes this process's caches applied, from this replica or another.
    pub applied: Applied,
    /// The platform's per-invocation maximum (also the runtime's).
    pub platform_max: PlatformLimits,
    /// The longest chain of skills calling skills, the top-level invocation included.
    pub max_depth: u32,
    /// Where every invocation is counted.
    pub metrics: Arc<Metrics>,
}

impl Invocations {
    /// The service over its parts.
    pub fn new(parts: Parts) -> Self {
        Self { parts }
    }

    /// Resolution and preparation of skills.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.parts.catalog
    }

    /// Tenant policies.
    pub fn policies(&self) -> &Arc<Policies> {
        &self.parts.policies
    }

    /// Quota counters.
    pub fn ledger(&self) -> &Arc<dyn QuotaLedger> {
        &self.parts.ledger
    }

    /// Announces a change to skills or policies so that no cache keeps serving the old view.
    pub fn changed(&self, change: Change) {
        self.parts.changes.publish(change);
    }

    /// Every change to skills and policies applied here from now on (see [`Applied`]).
    pub fn follow_changes(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.parts.applied.follow()
    }

    /// Where invocations and refusals are counted.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.parts.metrics
    }

    /// The longest chain of skills calling skills.
    pub fn max_depth(&self) -> u32 {
        self.parts.max_depth
    }

    /// Runs one invocation through the whole pipeline and records how it ended: a run that
    /// started is recorded where it is settled (even when its caller has gone away), one
    /// refused before it ran here.
    pub async fn invoke(&self, call: Call) -> Result<Invoked, InvokeError> {
        let entry = call.entry.label();
        let skill = call.skill.clone();
        // One span per invocation (a nested call's is a child of its caller's), filled in
        // by `record` once it has ended.
        let span = tracing::info_span!(
            "invocation",
            request_id = %call.request_id,
            tenant = %call.tenant,
            skill = %call.skill,
            entry,
            version = tracing::field::Empty,
            outcome = tracing::field::Empty,
            fuel = tracing::field::Empty,
        );
        let result = self.run(call, entry).instrument(span.clone()).await;
        if let Err(error) = &result
            && error.usage().is_none()
        {
            let metrics = &self.parts.metrics;
            record(metrics, &span, entry, &skill, None, error.code(), None);
            if let InvokeError::Quota(quota) = error {
                metrics.refused(match quota.quota {
                    "fuel" => Refusal::QuotaFuel,
                    _ => Refusal::QuotaInvocations,
                });
            }
        }
        result
    }

    async fn run(&self, call: Call, entry: &'static str) -> Result<Invoked, InvokeError> {
        input::check_depth(&call.input).map_err(InvokeError::InvalidInput)?;
        let resolved = self
            .catalog()
            .resolve(&call.tenant, &call.skill, call.requirement.as_deref())
            .await?;
        let prepared = Arc::clone(&resolved.prepared);
        if let Some(schema) = &prepared.validator {
            input::check_input(schema, &call.input).map_err(InvokeError::InvalidInput)?;
        }
        let policy = self.parts.policies.get(&call.tenant).await?;
        let manifest = &prepared.manifest;
        let mut limits = policy.limits(&manifest.limits, &self.parts.platform_max);
        // A nested call counts as an invocation of the tenant but holds no fuel of its own:
        // it burns its caller's, which the top-level invocation holds and settles.
        let asked_fuel = match &call.entry {
            EntryPoint::Nested(_) => 0,
            _ => limits.fuel.unwrap_or(self.parts.platform_max.fuel),
        };
        let reservation =
            Reservation::reserve(&self.parts.ledger, &call.tenant, &policy, asked_fuel)
                .await?
                .map_err(InvokeError::Quota)?;
        let (callers, nested) = match call.entry {
            EntryPoint::Nested(nesting) => {
                if let Some(fuel) = nesting.fuel {
                    limits.fuel = Some(limits.fuel.map_or(fuel, |own| own.min(fuel)));
                }
                (nesting.callers, true)
            }
            EntryPoint::Rest
            | EntryPoint::Mcp
            | EntryPoint::Task
            | EntryPoint::Workflow
            | EntryPoint::A2a => {
                limits.fuel = Some(reservation.fuel());
                (Vec::new(), false)
            }
        };
        if let Some(deadline) = call.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            limits.timeout = limits.timeout.min(left.max(MIN_TIMEOUT));
        }
        let request = InvocationRequest {
            context: InvocationContext {
                tenant: call.tenant,
                skill: call.skill,
                version: resolved.version.to_string(),
                request_id: call.request_id,
                trace_parent: crate::trace::trace_parent(&tracing::Span::current()),
            },
            input: String::from(call.input.get()),
            limits,
            grants: grants(&manifest.permissions, policy.http_allow.as_deref()),
            callers,
            cancel: call.cancel,
            task: call.task,
        };
        let runtime = Arc::clone(&self.parts.runtime);
        let metrics = Arc::clone(&self.parts.metrics);
        let version = resolved.version.clone();
        let run = async move {
            let skill = request.context.skill.clone();
            let report = runtime.invoke(&prepared.loaded, request).await;
            let checked = match (&report.outcome, &prepared.output_validator) {
                (Outcome::Ok { output }, Some(schema)) => input::check_output(schema, output),
                _ => Ok(()),
            };
            settle(reservation, &report, checked.is_err(), nested);
            let outcome = match checked {
                Ok(()) => report.outcome.code(),
                Err(_) => "invalid_output",
            };
            record(
                &metrics,
                &tracing::Span::current(),
                entry,
                &skill,
                Some(&version),
                outcome,
                Some(&report.usage),
            );
            refusal(&metrics, &report.outcome);
            (report, checked)
        }
        // The record stays in the request's log even though the run is a task of its own.
        .instrument(tracing::Span::current());
        let (report, checked) = if nested {
            // Inside the caller's host call, under its CPU slot (`Runtime::invoke`); a task of
            // its own would cost a hand-over to another task and back for every call.
            Box::pin(run).await
        } else {
            // Runs in its own task: if the caller goes away the invocation still finishes
            // (bounded by its limits) and is charged what it really used. Under load this is
            // also faster than running it in the caller's task (28k against 20k requests/s,
            // docs/performance.md): an idle worker steals invocations while the other serves
            // connections. Boxed, so the task holds a pointer, not the invocation's whole
            // future, which tokio would copy in, out as the output, and again when it is read.
            tokio::spawn(Box::pin(run))
                .await
                .map_err(|e| InvokeError::Internal(format!("the invocation task failed: {e}")))?
        };
        let usage = report.usage;
        let output = match report.outcome {
            Outcome::Ok { output } => output,
            outcome => return Err(InvokeError::Ended { outcome, usage }),
        };
        if let Err(violation) = checked {
            return Err(InvokeError::InvalidOutput { violation, usage });
        }
        let output = RawValue::from_string(output).map_err(|e| {
            InvokeError::Internal(format!("the runtime passed on non-JSON output: {e}"))
        })?;
        Ok(Invoked {
            version: resolved.version,
            output,
            usage,
            pending_update: resolved.pending,
        })
    }
}

/// The one record of every invocation: on its span, in the log of the request it belongs
/// to, and in the metrics — under its skill's name once the skill was found (`version` is known, or the
/// refusal came after resolution), so names nobody published never become series.
fn record(
    metrics: &Metrics,
    span: &tracing::Span,
    entry: &'static str,
    skill: &SkillName,
    version: Option<&Version>,
    outcome: &'static str,
    usage: Option<&Usage>,
) {
    if let Some(version) = version {
        span.record("version", tracing::field::display(version));
    }
    span.record("outcome", outcome);
    if let Some(usage) = usage {
        span.record("fuel", usage.fuel_consumed);
    }
    let found = version.is_some() || outcome == "quota_exceeded";
    metrics.invocation(
        entry,
        if found { skill.as_str() } else { "" },
        outcome,
        usage,
    );
    tracing::info!(
        target: "omniforge::invocation",
        entry,
        skill = %skill,
        version = version.map(tracing::field::display),
        outcome,
        fuel = usage.map(|u| u.fuel_consumed),
        wall_us = usage.map(|u| u.wall_time_us),
        "invocation finished"
    );
}

/// Counts an outcome that is a refusal by a limit rather than the skill's own ending.
fn refusal(metrics: &Metrics, outcome: &Outcome) {
    match outcome {
        Outcome::ConcurrencyLimit { .. } => metrics.refused(Refusal::Concurrency),
        Outcome::MemoryBudget { .. } => metrics.refused(Refusal::MemoryBudget),
        _ => {}
    }
}

/// Gives back or settles what `reservation` held, once the invocation has ended.
fn settle(reservation: Reservation, report: &InvocationReport, failed_output: bool, nested: bool) {
    let failed = failed_output || !matches!(report.outcome, Outcome::Ok { .. });
    if report.outcome.refused_before_running() {
        reservation.release();
    } else if nested {
        // Its fuel and time are in its caller's usage, settled with the top level.
        reservation.settle(Spent {
            fuel: 0,
            wall_us: 0,
            failed,
        });
    } else {
        reservation.settle(Spent {
            fuel: report.usage.fuel_consumed,
            wall_us: report.usage.wall_time_us,
            failed,
        });
    }
}
