//! Running one claimed task: the invocation, its log lines as events, and how it ended.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use omniforge_runtime::{GuestLogLine, Outcome, TaskRun, Usage};
use omniforge_store::{
    Ending, EventKind, Finish, NewEvent, Release, Task, TaskId, TaskState, TaskTarget, TaskUsage,
    now_ms,
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{RunHandle, Tasks};
use crate::catalog::ResolveError;
use crate::invocations::{Call, EntryPoint, InvokeError};

/// Log lines are appended as events in batches of at most this many …
const LOG_BATCH: usize = 64;
/// … or after at most this long.
const LOG_FLUSH: Duration = Duration::from_millis(100);

/// How long a run refused before it started (the tenant at its concurrency limit, the
/// server at its memory budget) waits in the queue before it is claimed again.
const REFUSED_RETRY: Duration = Duration::from_secs(1);

/// How long a run whose skill is still compiling here waits in the queue.
const COMPILING_RETRY: Duration = Duration::from_secs(5);

/// How an attempt stopped, for the queue.
pub(super) enum Settled {
    /// The task ended (completed, failed, canceled).
    Ended(Ending),
    /// The task goes back to the queue.
    Released(Release),
}

impl Tasks {
    pub(super) fn register(&self, id: &TaskId) -> Arc<RunHandle> {
        let handle = Arc::new(RunHandle {
            token: CancellationToken::new(),
            asked: Default::default(),
        });
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), Arc::clone(&handle));
        handle
    }

    pub(super) fn handle(&self, id: &TaskId) -> Option<Arc<RunHandle>> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Runs a claimed task's attempt and records how it ended.
    pub(super) async fn run_task(&self, task: Task, handle: Arc<RunHandle>) {
        let (skill, version) = match &task.target {
            TaskTarget::Skill { skill, version, .. } => (skill.clone(), version.clone()),
            TaskTarget::Agent { .. } => return self.run_agent(task, handle).await,
        };
        let id = task.id.clone();
        self.signals.events(&id);
        if task.cancel_requested {
            handle.asked.store(true, Ordering::SeqCst);
            handle.token.cancel();
        }
        let (logs, lines) = mpsc::unbounded_channel();
        let ran = CancellationToken::new();
        let pump = tokio::spawn(pump_logs(
            Arc::clone(&self.signals),
            self.db.clone(),
            self.owner.clone(),
            id.clone(),
            lines,
            ran.clone(),
        ));
        let call = Call {
            tenant: task.tenant_id.clone(),
            skill: skill.clone(),
            requirement: Some(format!("={version}")),
            input: task.input,
            request_id: task.request_id.clone(),
            deadline: None,
            entry: EntryPoint::Task,
            cancel: Some(handle.token.clone()),
            task: Some(TaskRun {
                id: id.clone(),
                attempt: task.attempts,
                logs: Some(logs),
            }),
        };
        let result = if handle.token.is_cancelled() {
            Err(InvokeError::Ended {
                outcome: Outcome::Canceled,
                usage: Usage::default(),
            })
        } else {
            self.invocations.invoke(call).await
        };
        // The run is over: the pump hands back what it did not append, which goes in with
        // the ending.
        ran.cancel();
        let unwritten = pump.await.unwrap_or_default();
        let settled = self.settle(&skill, result, &handle);
        self.record_stop(&id, task.attempts, settled, unwritten)
            .await;
    }

    /// Records where attempt `attempt` of task `id` stopped — its ending, or its release
    /// back to the queue — forgets its handle, and tells the claimers and the event
    /// watchers.
    pub(super) async fn record_stop(
        &self,
        id: &TaskId,
        attempt: u32,
        settled: Settled,
        logs: Vec<NewEvent>,
    ) {
        let released = matches!(settled, Settled::Released(_));
        let written = match settled {
            Settled::Ended(ending) => {
                let finish = Finish {
                    task: id.clone(),
                    attempt,
                    ending,
                    logs,
                };
                self.endings
                    .call(finish)
                    .await
                    .unwrap_or_else(|| Err(super::uncommitted()))
            }
            Settled::Released(release) => {
                self.db
                    .platform()
                    .release_task(id, &self.owner, &release, &logs, now_ms())
                    .await
            }
        };
        match written {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(task = %id, "the task's lease was lost before it stopped; its new attempt records the result")
            }
            // The lease lapses and the sweep puts the task back in the queue.
            Err(e) => tracing::error!(task = %id, "cannot record where the task stopped: {e}"),
        }
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if released {
            self.signals.wake();
        }
        self.signals.events(id);
    }

    fn settle(
        &self,
        skill: &omniforge_types::SkillName,
        result: Result<crate::Invoked, InvokeError>,
        handle: &RunHandle,
    ) -> Settled {
        let release = |after: Duration, counts: bool, reason: String| {
            Settled::Released(Release {
                not_before_ms: now_ms() + i64::try_from(after.as_millis()).unwrap_or(0),
                counts,
                reason,
                children: Vec::new(),
            })
        };
        let error = match result {
            Ok(invoked) => {
                return Settled::Ended(Ending {
                    state: TaskState::Completed,
                    output: Some(invoked.output.get().to_owned()),
                    error: None,
                    usage: Some(task_usage(&invoked.usage)),
                });
            }
            Err(error) => error,
        };
        match &error {
            InvokeError::Ended {
                outcome: Outcome::Canceled,
                ..
            } if !handle.asked.load(Ordering::SeqCst) && self.is_draining() => {
                return release(
                    Duration::ZERO,
                    true,
                    "the server running it stopped; it runs again".into(),
                );
            }
            InvokeError::Ended { outcome, .. } if outcome.refused_before_running() => {
                return release(REFUSED_RETRY, false, format!("not started: {outcome}"));
            }
            InvokeError::Resolve(ResolveError::Compiling { version }) => {
                return release(
                    COMPILING_RETRY,
                    false,
                    format!("version {version} is still compiling on this server"),
                );
            }
            _ => {}
        }
        let state = match &error {
            InvokeError::Ended {
                outcome: Outcome::Canceled,
                ..
            } => TaskState::Canceled,
            _ => TaskState::Failed,
        };
        let usage = error.usage().map(task_usage);
        Settled::Ended(Ending {
            state,
            output: None,
            error: Some(self.problems.failed(error, skill)),
            usage,
        })
    }
}

fn task_usage(usage: &Usage) -> TaskUsage {
    TaskUsage {
        fuel: usage.fuel_consumed,
        wall_us: usage.wall_time_us,
        peak_memory_bytes: usage.peak_memory_bytes,
        log_messages: usage.log_messages,
        http_requests: usage.http_requests,
        skill_calls: usage.skill_calls,
    }
}

fn log_event(line: GuestLogLine) -> NewEvent {
    NewEvent {
        kind: EventKind::Log,
        data: json!({ "level": line.level, "message": line.message }),
    }
}

/// Appends the run's log lines as events, in batches, while it runs; returns the lines it
/// did not append (those of the last moments, or all after a failure) once `done`, which
/// the ending records with the result.
async fn pump_logs(
    signals: Arc<super::Signals>,
    db: omniforge_store::Database,
    owner: String,
    task: TaskId,
    mut lines: mpsc::UnboundedReceiver<GuestLogLine>,
    done: CancellationToken,
) -> Vec<NewEvent> {
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => batch.push(log_event(line)),
                None => return batch,
            },
            () = done.cancelled() => break,
        }
        // Gather what follows for a moment, so a chatty skill writes batches, not lines.
        let flush_at = tokio::time::Instant::now() + LOG_FLUSH;
        while batch.len() < LOG_BATCH {
            tokio::select! {
                line = lines.recv() => match line {
                    Some(line) => batch.push(log_event(line)),
                    None => return batch,
                },
                () = tokio::time::sleep_until(flush_at) => break,
                () = done.cancelled() => break,
            }
        }
        if done.is_cancelled() {
            break;
        }
        match db
            .platform()
            .append_task_events(&task, &owner, &batch, now_ms())
            .await
        {
            Ok(true) => {
                batch.clear();
                signals.events(&task);
            }
            // Lost the task, or the database failed: keep the lines for the ending.
            Ok(false) => {}
            Err(e) => tracing::warn!(%task, "cannot append log events: {e}"),
        }
    }
    while let Ok(line) = lines.try_recv() {
        batch.push(log_event(line));
    }
    batch
}
