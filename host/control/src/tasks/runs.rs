//! Agent runs: a run is a task whose target is an agent's version. Submitting one checks the
//! input against the agent's input schema; running one replays its journal through the
//! workflow engine ([`omniforge_workflow::engine`]) with [`RunHost`] doing the I/O, and
//! settles the task by how the engine stopped: completed, failed, canceled, or released
//! until its timer or child run (a waiting run holds no worker slot).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use omniforge_store::{
    AgentId, Ending, JournalRow, NewTask, Release, StoreError, Submission, Task, TaskId, TaskState,
    TaskTarget, TenantId, now_ms,
};
use omniforge_workflow::engine::{self, Journal, RunEnd, StepError, StepKey, StepRecord};
use serde_json::value::RawValue;

use super::run_host::RunHost;
use super::runner::Settled;
use super::{RunHandle, SubmitError, Tasks};
use crate::agents::AgentSpec;
use crate::input;

/// How long a run waiting for a child looks at it again even if no wake-up came (the child's
/// end wakes it at once; this only bounds a wake-up lost with a crashed process).
const CHILD_RECHECK: Duration = Duration::from_secs(60);

/// How long a run whose host failed (the database) waits before it runs again.
const HOST_RETRY: Duration = Duration::from_secs(1);

/// A run of an agent to submit.
#[derive(Debug)]
pub struct SubmitRun {
    /// The agent (its current version runs).
    pub agent: AgentId,
    /// The run's input.
    pub input: Box<RawValue>,
    /// Higher runs first among the tenant's queued tasks.
    pub priority: i32,
    /// Who submits it.
    pub created_by: String,
    /// The submitting request.
    pub request_id: String,
    /// An idempotency key with a digest of the request it came with.
    pub idempotency: Option<(String, String)>,
    /// The run this one is a child of.
    pub parent: Option<TaskId>,
    /// The A2A context it belongs to (runs started over A2A).
    pub context: Option<String>,
}

impl Tasks {
    /// Queues a run of the tenant's agent `run.agent` at its current version, checking the
    /// input against the agent's input schema.
    pub async fn submit_run(
        &self,
        tenant: &TenantId,
        run: SubmitRun,
    ) -> Result<Submission, SubmitError> {
        input::check_depth(&run.input).map_err(SubmitError::InvalidInput)?;
        let agent = self
            .db
            .tenant(tenant)
            .agent(&run.agent)
            .await?
            .ok_or(SubmitError::NoAgent)?;
        let spec: AgentSpec = serde_json::from_value(agent.definition)
            .map_err(|e| StoreError::Corrupt(format!("agent definition: {e}")))?;
        if let Some(schema) = &spec.input_schema {
            let validator = jsonschema::validator_for(schema)
                .map_err(|e| StoreError::Corrupt(format!("agent input schema: {e}")))?;
            input::check_input(&validator, &run.input).map_err(SubmitError::InvalidInput)?;
        }
        let task = NewTask {
            target: TaskTarget::Agent {
                agent_id: agent.id,
                agent_version: agent.version,
            },
            parent_id: run.parent,
            context_id: run.context,
            input: String::from(run.input.get()),
            priority: run.priority,
            not_before_ms: None,
            retry_of: None,
            created_by: run.created_by,
            request_id: run.request_id,
        };
        self.enqueue(tenant, task, run.idempotency).await
    }

    /// Runs a claimed agent run until it ends or waits, and records which.
    pub(super) async fn run_agent(&self, task: Task, handle: Arc<RunHandle>) {
        let settled = match self.drive(&task, &handle).await {
            Ok(settled) => settled,
            Err(e) => {
                tracing::warn!(task = %task.id, "the run stopped: {e}; it runs again");
                Settled::Released(release(HOST_RETRY, format!("the run stopped: {e}"), vec![]))
            }
        };
        // A released run waits on purpose (a retry backoff, a child run) rather than for
        // a free slot: a local timer offers it back on time.
        let wake_at = match &settled {
            Settled::Released(release) => Some(release.not_before_ms),
            Settled::Ended(_) => None,
        };
        self.record_stop(&task.id, task.attempts, settled, Vec::new())
            .await;
        if let Some(at) = wake_at {
            self.wake_at(task.id.clone(), at);
        }
    }

    /// Offers `task` to this process's claimer at `at_ms` (another replica's sweep would
    /// find it too, a little later).
    fn wake_at(&self, task: TaskId, at_ms: i64) {
        let (db, signals) = (self.db.clone(), Arc::clone(&self.signals));
        let wait = Duration::from_millis(u64::try_from(at_ms - now_ms()).unwrap_or(0));
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Err(e) = db.platform().offer_task(&task).await {
                tracing::warn!(%task, "cannot offer a run whose timer is due: {e}");
            }
            signals.wake();
        });
    }

    async fn drive(&self, task: &Task, handle: &RunHandle) -> Result<Settled, StoreError> {
        let Some((agent_id, version)) = task.target.agent() else {
            return Err(StoreError::Corrupt("not an agent run".into()));
        };
        let store = self.db.tenant(&task.tenant_id);
        let failed = |message: String| {
            Settled::Ended(self.failed_ending(&StepError::new("invalid-agent", message)))
        };
        let Some(agent) = store.agent_version(agent_id, version).await? else {
            return Ok(failed(format!("agent {agent_id} has no version {version}")));
        };
        let plan = match serde_json::from_value::<AgentSpec>(agent.definition.clone())
            .map_err(|e| e.to_string())
            .and_then(|spec| {
                spec.check().map_err(|problems| {
                    problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            }) {
            Ok(plan) => plan,
            Err(e) => return Ok(failed(format!("the saved definition does not run: {e}"))),
        };
        let input: serde_json::Value = serde_json::from_str(task.input.get())
            .map_err(|e| StoreError::Corrupt(format!("run input: {e}")))?;
        let journal = journal(self.db.platform().journal(&task.id).await?)?;
        if task.cancel_requested {
            handle.asked.store(true, Ordering::SeqCst);
            handle.token.cancel();
        }
        let host = RunHost::new(self, task, agent.pins);
        let end = engine::run(&plan, &input, journal, &host, handle.token.clone()).await;
        let usage = host.usage();
        Ok(match end {
            Err(e) => Settled::Released(release(HOST_RETRY, e.to_string(), vec![])),
            Ok(RunEnd::Completed(output)) => Settled::Ended(Ending {
                state: TaskState::Completed,
                output: Some(output.to_string()),
                error: None,
                usage: Some(usage),
            }),
            Ok(RunEnd::Failed(error)) => Settled::Ended(Ending {
                usage: Some(usage),
                ..self.failed_ending(&error)
            }),
            Ok(RunEnd::Canceled) if !handle.asked.load(Ordering::SeqCst) && self.is_draining() => {
                Settled::Released(Release {
                    counts: true,
                    ..release(
                        Duration::ZERO,
                        "the server running it stopped; it runs again".into(),
                        vec![],
                    )
                })
            }
            Ok(RunEnd::Canceled) => {
                self.cancel_children(task).await;
                Settled::Ended(Ending {
                    state: TaskState::Canceled,
                    output: None,
                    error: Some(
                        self.problems
                            .run_failed(&StepError::new("canceled", "the run was canceled")),
                    ),
                    usage: Some(usage),
                })
            }
            Ok(RunEnd::Suspended(wake)) => {
                let children: Vec<TaskId> = wake.children.into_iter().map(TaskId::from).collect();
                let (after, reason) = match wake.at_ms {
                    Some(at) => (
                        Duration::from_millis(at.saturating_sub(now_ms().max(0) as u64)),
                        "waiting for a timer".to_owned(),
                    ),
                    None => (CHILD_RECHECK, "waiting for a child run".to_owned()),
                };
                let reason = if children.is_empty() || wake.at_ms.is_none() {
                    reason
                } else {
                    "waiting for a timer or a child run".to_owned()
                };
                Settled::Released(release(after, reason, children))
            }
        })
    }

    fn failed_ending(&self, error: &StepError) -> Ending {
        Ending {
            state: TaskState::Failed,
            output: None,
            error: Some(self.problems.run_failed(error)),
            usage: None,
        }
    }

    /// Cancels the child runs of `task` that have not ended (its own cancel reached it).
    pub(super) async fn cancel_children(&self, task: &Task) {
        let children = match self.db.platform().open_children(&task.id).await {
            Ok(children) => children,
            Err(e) => {
                tracing::warn!(task = %task.id, "cannot read the run's children: {e}");
                return;
            }
        };
        let audit = system_audit(task);
        for child in children {
            if let Err(e) = Box::pin(self.cancel(&task.tenant_id, &audit, &child)).await {
                tracing::warn!(task = %task.id, %child, "cannot cancel a child run: {e}");
            }
        }
    }
}

/// Who cancels what a run started: the run itself.
pub(super) fn system_audit(task: &Task) -> omniforge_store::AuditContext {
    omniforge_store::AuditContext {
        actor: format!("system:run {}", task.id),
        actor_tenant: None,
        request_id: task.request_id.clone(),
    }
}

fn release(after: Duration, reason: String, children: Vec<TaskId>) -> Release {
    Release {
        not_before_ms: now_ms().saturating_add(i64::try_from(after.as_millis()).unwrap_or(0)),
        counts: false,
        reason,
        children,
    }
}

/// The engine's journal from the stored rows.
fn journal(rows: Vec<JournalRow>) -> Result<Journal, StoreError> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("run journal {what}: {e}"))
    };
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        let record = StepRecord {
            state: row
                .state
                .parse()
                .map_err(|e: String| corrupt("state", &e))?,
            attempt: u32::try_from(row.attempt).map_err(|e| corrupt("attempt", &e))?,
            output: row
                .output
                .map(|o| serde_json::from_str(&o))
                .transpose()
                .map_err(|e| corrupt("output", &e))?,
            error: row
                .error
                .map(|o| serde_json::from_str(&o))
                .transpose()
                .map_err(|e| corrupt("error", &e))?,
            not_before_ms: row.not_before_ms.map(|ms| ms.max(0) as u64),
            child: row.child_id,
            started_at_ms: row.started_at_ms.max(0) as u64,
        };
        records.push((StepKey::new(row.step, row.item), record));
    }
    Ok(Journal::new(records))
}
