//! What the workflow engine needs from the platform for one run: the journal in the
//! database (each write with its task event, under the run's lease), skill steps through
//! the invocation service at the agent version's pinned versions behind the tenant's
//! circuit breakers, and child runs as tasks.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use omniforge_runtime::{GuestErrorKind, Outcome, TaskRun, Usage};
use omniforge_store::{
    EventKind, NewEvent, Pin, StepChange, StepWrite, Submission, Task, TaskId, TaskState,
    TaskUsage, now_ms,
};
use omniforge_types::SkillName;
use omniforge_workflow::document::RetryOn;
use omniforge_workflow::engine::{
    ChildCall, Entry, Host, HostError, SkillCall, StepError, StepKey,
};
use omniforge_workflow::reliability::{Admission, Transition};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tracing::Instrument;

use super::Tasks;
use super::runs::{SubmitRun, system_audit};
use crate::catalog::ResolveError;
use crate::invocations::{Call, EntryPoint, InvokeError};

/// How long a step refused before its skill ran (a quota, the concurrency limit) should
/// wait at least before its retry.
const REFUSED_WAIT_MS: u64 = 1_000;

/// The engine's host for one run of `task`.
pub(super) struct RunHost<'a> {
    tasks: &'a Tasks,
    task: &'a Task,
    pins: Vec<Pin>,
    usage: Mutex<TaskUsage>,
}

impl<'a> RunHost<'a> {
    pub(super) fn new(tasks: &'a Tasks, task: &'a Task, pins: Vec<Pin>) -> Self {
        Self {
            tasks,
            task,
            pins,
            usage: Mutex::default(),
        }
    }

    /// What the run's skill steps used so far in this process.
    pub(super) fn usage(&self) -> TaskUsage {
        self.usage.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn add_usage(&self, usage: &Usage) {
        let mut sum = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        sum.fuel += usage.fuel_consumed;
        sum.wall_us += usage.wall_time_us;
        sum.peak_memory_bytes = sum.peak_memory_bytes.max(usage.peak_memory_bytes);
        sum.log_messages += usage.log_messages;
        sum.http_requests += usage.http_requests;
        sum.skill_calls += usage.skill_calls + 1;
    }

    /// The requirement a step's skill runs at: the version its agent version pinned.
    fn pinned(&self, skill: &SkillName, requirement: Option<&str>) -> Option<String> {
        let requirement = requirement.unwrap_or("");
        self.pins
            .iter()
            .find(|p| &p.skill == skill && p.requirement == requirement)
            .map(|p| format!("={}", p.version))
            .or_else(|| Some(requirement.to_owned()).filter(|r| !r.is_empty()))
    }

    /// A journal entry as the store writes it, with its event.
    fn change(&self, entry: &Entry) -> StepChange {
        let text = |value: &Value| value.to_string();
        let (write, event) = match entry {
            Entry::Started {
                key,
                kind,
                attempt,
                at_ms,
            } => {
                let mut data = step_fields(key);
                data.insert("kind".into(), json!(kind.as_str()));
                data.insert("attempt".into(), json!(attempt));
                (
                    StepWrite::Started {
                        step: key.step.clone(),
                        item: key.item.clone(),
                        kind: kind.as_str(),
                        attempt: i64::from(*attempt),
                        at_ms: ms(*at_ms),
                    },
                    Some((EventKind::StepStarted, data)),
                )
            }
            Entry::ChildStarted { key, child, .. } => (
                StepWrite::ChildStarted {
                    step: key.step.clone(),
                    item: key.item.clone(),
                    child: TaskId::from(child.clone()),
                },
                None,
            ),
            Entry::RetryScheduled {
                key,
                attempt,
                not_before_ms,
                error,
            } => {
                let mut data = step_fields(key);
                data.insert("attempt".into(), json!(attempt));
                data.insert("not_before_ms".into(), json!(not_before_ms));
                data.insert(
                    "delay_ms".into(),
                    json!(not_before_ms.saturating_sub(self.now_ms())),
                );
                data.insert("error".into(), brief(error));
                (
                    StepWrite::RetryScheduled {
                        step: key.step.clone(),
                        item: key.item.clone(),
                        attempt: i64::from(*attempt),
                        not_before_ms: ms(*not_before_ms),
                        error: serde_json::to_string(error).unwrap_or_default(),
                    },
                    Some((EventKind::RetryScheduled, data)),
                )
            }
            Entry::Finished {
                key,
                attempt,
                result,
            } => {
                let mut data = step_fields(key);
                data.insert("attempt".into(), json!(attempt));
                let (output, error) = match result {
                    Ok(output) => {
                        data.insert("output".into(), output.clone());
                        (Some(text(output)), None)
                    }
                    Err(error) => {
                        data.insert("error".into(), brief(error));
                        (None, Some(serde_json::to_string(error).unwrap_or_default()))
                    }
                };
                (
                    StepWrite::Finished {
                        step: key.step.clone(),
                        item: key.item.clone(),
                        output,
                        error,
                        at_ms: now_ms(),
                    },
                    Some((EventKind::StepFinished, data)),
                )
            }
        };
        StepChange {
            write,
            event: event.map(|(kind, data)| NewEvent {
                kind,
                data: Value::Object(data),
            }),
        }
    }

    async fn event(&self, kind: EventKind, data: Value) {
        let event = NewEvent { kind, data };
        let platform = self.tasks.db.platform();
        match platform
            .append_run_event(&self.task.id, &self.tasks.owner, &event, now_ms())
            .await
        {
            Ok(_) => self.tasks.signals.events(&self.task.id),
            Err(e) => tracing::warn!(task = %self.task.id, "cannot append a run event: {e}"),
        }
    }
}

fn step_fields(key: &StepKey) -> serde_json::Map<String, Value> {
    let mut data = serde_json::Map::new();
    data.insert("step".into(), json!(key.step));
    if !key.item.is_empty() {
        data.insert("item".into(), json!(key.item));
    }
    data
}

fn brief(error: &StepError) -> Value {
    json!({"code": error.code, "message": error.message})
}

fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Host for RunHost<'_> {
    fn now_ms(&self) -> u64 {
        u64::try_from(now_ms()).unwrap_or(0)
    }

    fn jitter(&self) -> f64 {
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_err() {
            return 1.0;
        }
        (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
    }

    async fn record(&self, entries: &[Entry]) -> Result<(), HostError> {
        let changes: Vec<StepChange> = entries.iter().map(|e| self.change(e)).collect();
        let written = self
            .tasks
            .db
            .platform()
            .write_steps(&self.task.id, &self.tasks.owner, &changes, now_ms())
            .await
            .map_err(|e| HostError(format!("cannot write the run's journal: {e}")))?;
        if !written {
            return Err(HostError("the run's lease was lost".into()));
        }
        if changes.iter().any(|c| c.event.is_some()) {
            self.tasks.signals.events(&self.task.id);
        }
        Ok(())
    }

    async fn invoke(&self, call: SkillCall) -> Result<Value, StepError> {
        let tenant = &self.task.tenant_id;
        let breakers = &self.tasks.breakers;
        let now = self.now_ms();
        if let Admission::Rejected { retry_after_ms } = breakers.admit(tenant, &call.skill, now) {
            let mut data = step_fields(&call.key);
            data.insert("skill".into(), json!(call.skill.as_str()));
            data.insert("retry_after_ms".into(), json!(retry_after_ms));
            self.event(EventKind::BreakerOpen, Value::Object(data))
                .await;
            let mut error = StepError::new(
                "breaker-open",
                format!(
                    "the circuit breaker of {} is open after repeated failures",
                    call.skill
                ),
            )
            .retried_as(RetryOn::Refused);
            error.retry_after_ms = Some(retry_after_ms);
            return Err(error);
        }
        let input = RawValue::from_string(call.input.to_string())
            .map_err(|e| StepError::expression(format!("the input is not JSON: {e}")))?;
        let step = tracing::info_span!("step", step = %call.key, attempt = call.attempt);
        let invoked = self
            .tasks
            .invocations
            .invoke(Call {
                tenant: tenant.clone(),
                skill: call.skill.clone(),
                requirement: self.pinned(&call.skill, call.requirement.as_deref()),
                input,
                request_id: self.task.request_id.clone(),
                deadline: call
                    .timeout_ms
                    .map(|t| Instant::now() + Duration::from_millis(t)),
                // Only A2A gives runs a context: its runs' steps count as A2A's work.
                entry: match self.task.context_id {
                    Some(_) => EntryPoint::A2a,
                    None => EntryPoint::Workflow,
                },
                cancel: Some(call.cancel.clone()),
                task: Some(TaskRun {
                    id: self.task.id.clone(),
                    attempt: call.attempt,
                    logs: None,
                }),
            })
            .instrument(step)
            .await;
        let result = match invoked {
            Ok(invoked) => {
                self.add_usage(&invoked.usage);
                serde_json::from_str(invoked.output.get())
                    .map_err(|e| StepError::new("invalid-output", e.to_string()))
            }
            Err(error) => {
                if let Some(usage) = error.usage() {
                    self.add_usage(usage);
                }
                Err(step_error(error, &call.skill, &*self.tasks.problems))
            }
        };
        let failed = result.as_ref().err().is_some_and(|e| {
            matches!(
                e.retry_as,
                Some(
                    RetryOn::Timeout
                        | RetryOn::Trap
                        | RetryOn::Unavailable
                        | RetryOn::Failed
                        | RetryOn::Limit
                )
            )
        });
        if !call.cancel.is_cancelled()
            && breakers.record(tenant, &call.skill, self.now_ms(), failed)
                == Some(Transition::Opened)
        {
            let mut data = step_fields(&call.key);
            data.insert("skill".into(), json!(call.skill.as_str()));
            data.insert("opened".into(), json!(true));
            data.insert("retry_after_ms".into(), json!(breakers.policy().open_ms));
            self.event(EventKind::BreakerOpen, Value::Object(data))
                .await;
        }
        result
    }

    async fn start_child(&self, call: ChildCall) -> Result<String, StepError> {
        let store = self.tasks.db.tenant(&self.task.tenant_id);
        let internal = |e: &dyn std::fmt::Display| {
            StepError::new("internal", e.to_string()).retried_as(RetryOn::Unavailable)
        };
        let agent = store
            .agent_named(&call.agent)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(|| {
                StepError::new("not-found", format!("no agent named {:?}", call.agent))
            })?;
        let input = RawValue::from_string(call.input.to_string())
            .map_err(|e| StepError::expression(format!("the input is not JSON: {e}")))?;
        // One child per step, item and attempt, however often this is replayed.
        let key = format!("run:{}:{}:{}", self.task.id, call.key, call.attempt);
        let submitted = self
            .tasks
            .submit_run(
                &self.task.tenant_id,
                SubmitRun {
                    agent: agent.id,
                    input,
                    priority: self.task.priority,
                    created_by: self.task.created_by.clone(),
                    request_id: self.task.request_id.clone(),
                    idempotency: Some((key, String::new())),
                    parent: Some(self.task.id.clone()),
                    context: None,
                },
            )
            .await;
        match submitted {
            Ok(Submission::Created(child) | Submission::Replayed(child)) => {
                Ok(child.id.to_string())
            }
            Ok(Submission::QueueFull { max_queued }) => {
                let mut error = StepError::new(
                    "queue-full",
                    format!("the tenant already has {max_queued} queued tasks"),
                )
                .retried_as(RetryOn::Refused);
                error.retry_after_ms = Some(REFUSED_WAIT_MS);
                Err(error)
            }
            Ok(Submission::KeyReused) => Err(StepError::new(
                "internal",
                "the child run's idempotency key was used for another request",
            )),
            Err(super::SubmitError::InvalidInput(e)) => {
                Err(StepError::new("invalid-input", e.message))
            }
            Err(super::SubmitError::NoAgent) => Err(StepError::new(
                "not-found",
                format!("no agent named {:?}", call.agent),
            )),
            Err(e) => Err(internal(&e)),
        }
    }

    async fn child_result(
        &self,
        child: &str,
    ) -> Result<Option<Result<Value, StepError>>, HostError> {
        let task = self
            .tasks
            .db
            .tenant(&self.task.tenant_id)
            .task(&TaskId::from(child.to_owned()))
            .await
            .map_err(|e| HostError(e.to_string()))?;
        let Some(task) = task else {
            return Ok(Some(Err(StepError::new(
                "not-found",
                format!("the child run {child} is gone"),
            ))));
        };
        Ok(match task.state {
            TaskState::Completed => Some(
                task.output
                    .map(|o| serde_json::from_str(o.get()))
                    .transpose()
                    .map_err(|e| HostError(e.to_string()))?
                    .ok_or_else(|| StepError::new("invalid-output", "the child has no output"))
                    .map(Ok)
                    .unwrap_or_else(Err),
            ),
            TaskState::Failed | TaskState::Canceled => {
                let detail = task
                    .error
                    .as_ref()
                    .and_then(|e| e.get("detail"))
                    .and_then(Value::as_str)
                    .unwrap_or("the child run did not complete")
                    .to_owned();
                let code = if task.state == TaskState::Canceled {
                    "canceled"
                } else {
                    "failed"
                };
                let mut error = StepError::new(code, detail).retried_as(RetryOn::Failed);
                error.problem = task.error;
                Some(Err(error))
            }
            TaskState::Submitted | TaskState::Working => None,
        })
    }

    async fn cancel_child(&self, child: &str) {
        let child = TaskId::from(child.to_owned());
        let audit = system_audit(self.task);
        if let Err(e) = self
            .tasks
            .cancel(&self.task.tenant_id, &audit, &child)
            .await
        {
            tracing::warn!(task = %self.task.id, %child, "cannot cancel a child run: {e}");
        }
    }
}

/// A failed invocation as a step error: its code, the retry class a policy names, and the
/// problem document the same call answers over REST.
fn step_error(
    error: InvokeError,
    skill: &SkillName,
    problems: &dyn super::TaskProblems,
) -> StepError {
    let (code, class, wait): (&str, Option<RetryOn>, Option<u64>) = match &error {
        InvokeError::InvalidInput(_) => ("invalid-input", None, None),
        InvokeError::Resolve(ResolveError::Compiling { .. }) => {
            ("compiling", Some(RetryOn::Unavailable), Some(5_000))
        }
        InvokeError::Resolve(_) => ("not-found", None, None),
        InvokeError::Quota(_) => (
            "quota-exceeded",
            Some(RetryOn::Refused),
            Some(REFUSED_WAIT_MS),
        ),
        InvokeError::InvalidOutput { .. } => ("invalid-output", None, None),
        InvokeError::Unavailable(_) => ("unavailable", Some(RetryOn::Unavailable), Some(1_000)),
        InvokeError::Internal(_) => ("internal", Some(RetryOn::Unavailable), None),
        InvokeError::Ended { outcome, .. } => match outcome {
            Outcome::GuestError { kind, .. } => match kind {
                GuestErrorKind::Unavailable => ("unavailable", Some(RetryOn::Unavailable), None),
                GuestErrorKind::Failed => ("failed", Some(RetryOn::Failed), None),
                GuestErrorKind::InvalidInput => ("invalid-input", None, None),
                GuestErrorKind::Denied => ("denied", None, None),
                GuestErrorKind::NotFound => ("not-found", None, None),
            },
            Outcome::InvalidInput { .. } => ("invalid-input", None, None),
            Outcome::Timeout { .. } => ("timeout", Some(RetryOn::Timeout), None),
            Outcome::Trap { .. } => ("trap", Some(RetryOn::Trap), None),
            Outcome::FuelExhausted { .. }
            | Outcome::MemoryLimit { .. }
            | Outcome::OutputLimit { .. } => ("limit", Some(RetryOn::Limit), None),
            Outcome::ConcurrencyLimit { .. } | Outcome::MemoryBudget { .. } => {
                ("refused", Some(RetryOn::Refused), Some(REFUSED_WAIT_MS))
            }
            Outcome::Canceled => ("canceled", None, None),
            Outcome::Ok { .. } => ("internal", None, None),
        },
    };
    let message = error.to_string();
    let problem = problems.failed(error, skill);
    StepError {
        code: code.to_owned(),
        message,
        step: None,
        retry_as: class,
        retry_after_ms: wait,
        problem: Some(problem),
    }
}
