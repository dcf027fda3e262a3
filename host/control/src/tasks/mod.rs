//! Durable tasks: asynchronous invocations stored in the database, run by the workers of
//! every `serve` process, and never lost when a process dies.
//!
//! [`Tasks`] is the service the transports call (submit, cancel, retry, watch, metrics);
//! [`Tasks::run_workers`] is the part of each process that claims queued tasks and runs
//! them through [`Invocations::invoke`](crate::Invocations::invoke) with
//! [`EntryPoint::Task`](crate::EntryPoint::Task), so a task runs exactly what a REST call
//! runs. A run holds a lease it extends while it runs; a process that dies stops extending
//! it, and any process's sweep puts the task back in the queue as a new attempt
//! (at-least-once; the skill learns its task id and attempt to make its effects
//! idempotent).
//!
//! Wake-ups never wait for a poll: a submission wakes this process's claimer in memory and,
//! on PostgreSQL, every other replica through `NOTIFY` ([`signals`]); a one-second sweep
//! covers anything a signal missed.

mod batch;
mod bound;
mod metrics;
mod run_host;
mod runner;
mod runs;
pub mod signals;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omniforge_store::{
    AuditContext, Canceled, Database, Finish, Idempotency, NewTask, QueuedTask, StoreError,
    Submission, Task, TaskId, TaskState, TaskTarget, TenantId,
};
use omniforge_types::SkillName;
use omniforge_workflow::engine::StepError;
use omniforge_workflow::reliability::BreakerPolicy;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::breakers::Breakers;
use crate::catalog::ResolveError;
use crate::input::{self, InputError};
use crate::invocations::{Invocations, InvokeError};
use crate::metrics::Refusal;
use batch::Batcher;
use bound::QueueBound;

/// Submissions committed together at most.
const SUBMISSIONS_PER_COMMIT: usize = 256;

/// Endings committed together at most.
const ENDINGS_PER_COMMIT: usize = 256;

pub use metrics::{Percentiles, SkillTimes, TaskMetrics};
pub use runs::SubmitRun;
pub use signals::Signals;

/// How the workers of one process behave.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    /// Tasks this process runs at once.
    pub workers: usize,
    /// How long a claim holds a task without being extended, ms. A dead process's tasks
    /// run again this long after it died.
    pub lease_ms: u64,
    /// Attempts a task gets when its runs keep being lost (the process dies while it
    /// runs); then it fails.
    pub max_attempts: u32,
    /// How often expired leases are looked for, ms.
    pub sweep_ms: u64,
    /// Finished tasks and their events are deleted this long after they ended, ms.
    pub retention_ms: u64,
    /// Idempotency keys are remembered this long, ms (at least a day).
    pub idempotency_ttl_ms: u64,
    /// On shutdown, how long running tasks may take to finish before they are put back in
    /// the queue, ms.
    pub drain_ms: u64,
    /// When the circuit breaker of a (tenant, skill) pair opens for workflow steps.
    pub breakers: BreakerPolicy,
}

impl Default for TaskSettings {
    fn default() -> Self {
        Self {
            workers: 32,
            lease_ms: 30_000,
            max_attempts: 3,
            sweep_ms: 1_000,
            retention_ms: 7 * 24 * 3_600_000,
            idempotency_ttl_ms: 24 * 3_600_000,
            drain_ms: 10_000,
            breakers: BreakerPolicy::default(),
        }
    }
}

/// The problem documents stored as a task's `error`: the transport's problem table (the
/// server's, shared with REST), so a task's error reads as the same call's REST answer.
pub trait TaskProblems: Send + Sync {
    /// Why a run did not answer an output.
    fn failed(&self, error: InvokeError, skill: &SkillName) -> serde_json::Value;
    /// A task canceled before it started.
    fn canceled(&self) -> serde_json::Value;
    /// A task whose runs kept being lost until it had no attempts left.
    fn gave_up(&self, attempts: u32) -> serde_json::Value;
    /// Why an agent run did not complete: the step that failed and how.
    fn run_failed(&self, error: &StepError) -> serde_json::Value;
}

/// A task to submit.
#[derive(Debug)]
pub struct Submit {
    /// The skill.
    pub skill: SkillName,
    /// A version requirement; `None`: the newest not yanked.
    pub requirement: Option<String>,
    /// The input.
    pub input: Box<RawValue>,
    /// Higher runs first among the tenant's queued tasks.
    pub priority: i32,
    /// Not started before this time, unix ms.
    pub not_before_ms: Option<i64>,
    /// Who submits it.
    pub created_by: String,
    /// The submitting request.
    pub request_id: String,
    /// An idempotency key with a digest of the request it came with.
    pub idempotency: Option<(String, String)>,
}

/// Why a submission was refused before it reached the queue.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// No version of the skill can run for this tenant.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The input breaks the skill's (or the agent's) input schema.
    #[error("invalid input: {}", .0.message)]
    InvalidInput(InputError),
    /// No such agent (or it was deleted).
    #[error("no such agent")]
    NoAgent,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A task running in this process: how to stop it, and why it was stopped.
struct RunHandle {
    token: CancellationToken,
    /// Its tenant asked for the cancel (rather than the process stopping).
    asked: std::sync::atomic::AtomicBool,
}

/// The task service of one process.
pub struct Tasks {
    db: Database,
    invocations: Arc<Invocations>,
    settings: TaskSettings,
    problems: Arc<dyn TaskProblems>,
    signals: Arc<Signals>,
    /// This process's worker id, the owner of the leases it holds (new at every start).
    owner: String,
    running: Mutex<HashMap<TaskId, Arc<RunHandle>>>,
    /// Cancelled when the process stops claiming.
    draining: CancellationToken,
    /// Submissions without an idempotency key, committed together.
    submissions: Batcher<QueuedTask, Result<Task, StoreError>>,
    /// Endings of this process's runs, committed together.
    endings: Batcher<Finish, Result<bool, StoreError>>,
    /// Recent counts of tenants' queues, for `max_queued_tasks`.
    bound: QueueBound,
    /// The circuit breakers of workflow steps.
    breakers: Breakers,
}

impl Tasks {
    /// The service over `db`, running tasks through `invocations`.
    pub fn new(
        db: Database,
        invocations: Arc<Invocations>,
        settings: TaskSettings,
        problems: Arc<dyn TaskProblems>,
    ) -> Arc<Self> {
        let owner = omniforge_store::new_id("wrk");
        Arc::new(Self {
            signals: Arc::new(Signals::new(db.clone(), owner.clone())),
            submissions: submissions(db.clone()),
            endings: endings(db.clone(), owner.clone()),
            db,
            invocations,
            problems,
            owner,
            running: Mutex::default(),
            draining: CancellationToken::new(),
            bound: QueueBound::default(),
            breakers: Breakers::new(settings.breakers),
            settings,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &TaskSettings {
        &self.settings
    }

    /// Wake-ups and event notifications.
    pub fn signals(&self) -> &Arc<Signals> {
        &self.signals
    }

    /// The circuit breakers of workflow steps.
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// Resolves the skill (the version every attempt runs), checks the input against its
    /// schema when the version is ready to run, and queues the task within the tenant's
    /// queue bound, honouring an idempotency key.
    pub async fn submit(
        &self,
        tenant: &TenantId,
        submit: Submit,
    ) -> Result<Submission, SubmitError> {
        input::check_depth(&submit.input).map_err(SubmitError::InvalidInput)?;
        let catalog = self.invocations.catalog();
        let version = match catalog
            .resolve(tenant, &submit.skill, submit.requirement.as_deref())
            .await
        {
            Ok(resolved) => {
                if let Some(schema) = &resolved.prepared.validator {
                    input::check_input(schema, &submit.input).map_err(SubmitError::InvalidInput)?;
                }
                resolved.version
            }
            // Not compiled here yet: the task waits in the queue, not the request. Its input
            // is checked when it runs.
            Err(ResolveError::Compiling { version }) => version,
            Err(e) => return Err(e.into()),
        };
        let task = NewTask {
            target: TaskTarget::Skill {
                skill: submit.skill,
                requirement: submit.requirement,
                version,
            },
            parent_id: None,
            context_id: None,
            input: String::from(submit.input.get()),
            priority: submit.priority,
            not_before_ms: submit.not_before_ms,
            retry_of: None,
            created_by: submit.created_by,
            request_id: submit.request_id,
        };
        self.enqueue(tenant, task, submit.idempotency).await
    }

    /// Queues `task` within the tenant's queue bound, honouring an idempotency key (with the
    /// digest of the request it came with).
    async fn enqueue(
        &self,
        tenant: &TenantId,
        task: NewTask,
        idempotency: Option<(String, String)>,
    ) -> Result<Submission, SubmitError> {
        let policy = self.invocations.policies().get(tenant).await?;
        let idempotency = idempotency.map(|(key, body_sha256)| Idempotency {
            key,
            body_sha256,
            ttl_ms: i64::try_from(self.settings.idempotency_ttl_ms).unwrap_or(i64::MAX),
        });
        let store = self.db.tenant(tenant);
        let submission = match idempotency {
            // A key takes the tenant's lock to look itself up: such a submission commits alone.
            Some(key) => {
                store
                    .submit_task(task, policy.max_queued_tasks, Some(key))
                    .await?
            }
            None if !self.bound.admit(&store, policy.max_queued_tasks).await? => {
                Submission::QueueFull {
                    max_queued: policy.max_queued_tasks,
                }
            }
            None => Submission::Created(self.queue(tenant, task).await?),
        };
        self.submitted(&submission);
        Ok(submission)
    }

    /// Tells the workers of a new task, or counts a refusal.
    fn submitted(&self, submission: &Submission) {
        match submission {
            Submission::Created(task) => self.signals.submitted(task),
            Submission::QueueFull { .. } => self.invocations.metrics().refused(Refusal::QueueFull),
            Submission::Replayed(_) | Submission::KeyReused => {}
        }
    }

    /// Submits a new run of the tenant's failed or canceled task `id`, with the same skill,
    /// requirement, input and priority; its `retry_of` names `id`. `Ok(None)`: no such
    /// task; a task in another state is a conflict.
    pub async fn retry(
        &self,
        tenant: &TenantId,
        id: &TaskId,
        created_by: String,
        request_id: String,
    ) -> Result<Option<Submission>, SubmitError> {
        let store = self.db.tenant(tenant);
        let Some(earlier) = store.task(id).await? else {
            return Ok(None);
        };
        if !matches!(earlier.state, TaskState::Failed | TaskState::Canceled) {
            return Err(StoreError::Conflict(format!(
                "the task is {}; only a failed or canceled task can be retried",
                earlier.state
            ))
            .into());
        }
        let target = match earlier.target {
            TaskTarget::Skill {
                skill, requirement, ..
            } => {
                let version = match self
                    .invocations
                    .catalog()
                    .resolve(tenant, &skill, requirement.as_deref())
                    .await
                {
                    Ok(resolved) => resolved.version,
                    Err(ResolveError::Compiling { version }) => version,
                    Err(e) => return Err(e.into()),
                };
                TaskTarget::Skill {
                    skill,
                    requirement,
                    version,
                }
            }
            // A run retries the agent version it ran.
            agent @ TaskTarget::Agent { .. } => agent,
        };
        let policy = self.invocations.policies().get(tenant).await?;
        let task = NewTask {
            target,
            parent_id: earlier.parent_id,
            context_id: earlier.context_id,
            input: String::from(earlier.input.get()),
            priority: earlier.priority,
            not_before_ms: None,
            retry_of: Some(earlier.id),
            created_by,
            request_id,
        };
        let submission = if self.bound.admit(&store, policy.max_queued_tasks).await? {
            Submission::Created(self.queue(tenant, task).await?)
        } else {
            Submission::QueueFull {
                max_queued: policy.max_queued_tasks,
            }
        };
        self.submitted(&submission);
        Ok(Some(submission))
    }

    /// Cancels the tenant's task `id`: a queued one never starts; a running one is stopped
    /// at its next yield on whichever replica runs it, ends `canceled` and is charged what
    /// it used. `Ok(None)`: no such task.
    pub async fn cancel(
        &self,
        tenant: &TenantId,
        audit: &AuditContext,
        id: &TaskId,
    ) -> Result<Option<Canceled>, StoreError> {
        let canceled = self
            .db
            .tenant(tenant)
            .cancel_task(audit, id, &self.problems.canceled())
            .await?;
        match &canceled {
            Some(Canceled::Requested(_)) if !self.stop_local(id) => {
                self.signals.cancel_requested(id);
            }
            Some(Canceled::Dequeued(task)) => {
                self.signals.events(&task.id);
                // A run waiting for its children (queued, holding no slot) takes them along.
                if task.target.agent().is_some() {
                    self.cancel_children(task).await;
                }
                if task.parent_id.is_some() {
                    self.signals.wake();
                }
            }
            _ => {}
        }
        Ok(canceled)
    }

    /// Queues the tenant's `task` in the next group commit.
    async fn queue(&self, tenant: &TenantId, task: NewTask) -> Result<Task, StoreError> {
        let queued = QueuedTask {
            tenant: tenant.clone(),
            task,
        };
        self.submissions
            .call(queued)
            .await
            .unwrap_or_else(|| Err(uncommitted()))
    }

    /// Stops `id` if this process runs it, as its tenant asked; whether it did.
    fn stop_local(&self, id: &TaskId) -> bool {
        let handle = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        match handle {
            Some(handle) => {
                handle
                    .asked
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                handle.token.cancel();
                true
            }
            None => false,
        }
    }

    /// How long the claimer waits between sweeps.
    fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.settings.sweep_ms.max(10))
    }
}

/// What a caller of a group commit that panicked gets.
fn uncommitted() -> StoreError {
    StoreError::Interrupted("the group commit that carried it stopped".into())
}

/// The group commit of submissions. A batch that fails is committed again item by item, so
/// that one submission's failure (its tenant deleted meanwhile, say) fails no other.
fn submissions(db: Database) -> Batcher<QueuedTask, Result<Task, StoreError>> {
    Batcher::new(SUBMISSIONS_PER_COMMIT, move |batch: Vec<QueuedTask>| {
        let db = db.clone();
        async move {
            let platform = db.platform();
            match platform.queue_tasks(&batch).await {
                Ok(tasks) => tasks.into_iter().map(Ok).collect(),
                Err(e) if batch.len() == 1 => vec![Err(e)],
                Err(_) => {
                    let mut answers = Vec::with_capacity(batch.len());
                    for queued in batch {
                        let queued = platform.queue_tasks(std::slice::from_ref(&queued)).await;
                        answers.push(queued.and_then(|tasks| {
                            tasks.into_iter().next().ok_or_else(|| {
                                StoreError::Corrupt("a queued task went missing".into())
                            })
                        }));
                    }
                    answers
                }
            }
        }
    })
}

/// The group commit of this process's endings (`owner`'s runs), with the same fallback.
fn endings(db: Database, owner: String) -> Batcher<Finish, Result<bool, StoreError>> {
    Batcher::new(ENDINGS_PER_COMMIT, move |batch: Vec<Finish>| {
        let (db, owner) = (db.clone(), owner.clone());
        async move {
            let platform = db.platform();
            let now = omniforge_store::now_ms();
            match platform.finish_tasks(&owner, &batch, now).await {
                Ok(written) => written.into_iter().map(Ok).collect(),
                Err(e) if batch.len() == 1 => vec![Err(e)],
                Err(_) => {
                    let mut answers = Vec::with_capacity(batch.len());
                    for finish in &batch {
                        let written = platform
                            .finish_tasks(&owner, std::slice::from_ref(finish), now)
                            .await;
                        answers.push(written.map(|w| w.first().copied().unwrap_or(false)));
                    }
                    answers
                }
            }
        }
    })
}
