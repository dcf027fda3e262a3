//! The steps that call out: `skill` (an invocation through the host) and `agent` (a child
//! run), each attempt journaled, failed attempts retried on durable timers.

use serde_json::Value;

use super::{Flow, Position, Run, Stop, fail};
use crate::document::{AgentStep, RetryPolicy, SkillStep};
use crate::engine::{
    ChildCall, Entry, Host, SkillCall, StepError, StepKey, StepKind, StepRecord, StepState,
};

impl<H: Host> Run<'_, H> {
    /// The attempt to run now, or the suspension when the step's timer has not fired.
    fn next_attempt(&self, record: Option<&StepRecord>) -> Flow<u32> {
        match record {
            None => Ok(1),
            Some(r) if r.state == StepState::Waiting => match r.not_before_ms {
                Some(at) if at > self.host.now_ms() => Err(self.wait(Some(at), None)),
                _ => Ok(r.attempt),
            },
            Some(r) => Ok(r.attempt.max(1)),
        }
    }

    /// After a failed attempt: schedules the next one (and suspends) when the policy
    /// retries this failure, or records the step's failure.
    async fn failed_attempt(
        &self,
        key: StepKey,
        attempt: u32,
        error: StepError,
        policy: Option<&RetryPolicy>,
        id: &str,
        at: &Position,
    ) -> Flow<Value> {
        let error = error.at(id);
        let retried = match (policy, error.retry_as) {
            (Some(policy), Some(class)) => policy.retries(attempt, class),
            _ => false,
        };
        if !retried {
            return self.finish(key, attempt, Err(fail(error)), id, at).await;
        }
        let policy = policy.expect("retried implies a policy");
        let delay = policy
            .backoff_ms(attempt, self.host.jitter())
            .max(error.retry_after_ms.unwrap_or(0));
        let not_before_ms = self.host.now_ms() + delay;
        self.write(Entry::RetryScheduled {
            key,
            attempt: attempt + 1,
            not_before_ms,
            error,
        })
        .await?;
        Err(self.wait(Some(not_before_ms), None))
    }

    pub(super) async fn skill(
        &self,
        s: &SkillStep,
        key: StepKey,
        record: Option<StepRecord>,
        at: &Position,
    ) -> Flow<Value> {
        let attempt = self.next_attempt(record.as_ref())?;
        let compiled = self.plan.compiled(&s.id);
        let input = match self.render(compiled.and_then(|c| c.input.as_ref()), at) {
            Ok(input) => input,
            Err(e) => {
                self.write_started(&key, StepKind::Skill, attempt).await?;
                let error = StepError::expression(e);
                return self.finish(key, attempt, Err(fail(error)), &s.id, at).await;
            }
        };
        self.write_started(&key, StepKind::Skill, attempt).await?;
        let call = SkillCall {
            key: key.clone(),
            skill: s.skill.clone(),
            requirement: s.version.clone(),
            input,
            attempt,
            timeout_ms: s.timeout_ms,
            cancel: at.cancel.clone(),
        };
        match self.host.invoke(call).await {
            Ok(output) => self.finish(key, attempt, Ok(output), &s.id, at).await,
            // Abandoned or canceled: the caller decides; nothing is recorded, so a replay
            // runs the step again.
            Err(_) if at.cancel.is_cancelled() => Err(Stop::Canceled),
            Err(error) => {
                self.failed_attempt(key, attempt, error, s.retry.as_ref(), &s.id, at)
                    .await
            }
        }
    }

    async fn write_started(&self, key: &StepKey, kind: StepKind, attempt: u32) -> Flow<()> {
        self.write(Entry::Started {
            key: key.clone(),
            kind,
            attempt,
            at_ms: self.host.now_ms(),
        })
        .await
    }

    pub(super) async fn agent(
        &self,
        a: &AgentStep,
        key: StepKey,
        record: Option<StepRecord>,
        at: &Position,
    ) -> Flow<Value> {
        // A child already started: wait for it.
        if let Some(r) = record.as_ref().filter(|r| r.state == StepState::Running)
            && let Some(child) = r.child.clone()
        {
            return self
                .await_child(a, key, r.attempt, r.started_at_ms, &child, at)
                .await;
        }
        let attempt = self.next_attempt(record.as_ref())?;
        let compiled = self.plan.compiled(&a.id);
        let rendered = self.render(compiled.and_then(|c| c.input.as_ref()), at);
        self.write_started(&key, StepKind::Agent, attempt).await?;
        let started_at_ms = self.host.now_ms();
        let input = match rendered {
            Ok(input) => input,
            Err(e) => {
                let error = StepError::expression(e);
                return self.finish(key, attempt, Err(fail(error)), &a.id, at).await;
            }
        };
        let call = ChildCall {
            key: key.clone(),
            agent: a.agent.clone(),
            input,
            attempt,
        };
        let child = match self.host.start_child(call).await {
            Ok(child) => child,
            Err(error) => {
                return self
                    .failed_attempt(key, attempt, error, a.retry.as_ref(), &a.id, at)
                    .await;
            }
        };
        self.write(Entry::ChildStarted {
            key: key.clone(),
            attempt,
            child: child.clone(),
        })
        .await?;
        self.await_child(a, key, attempt, started_at_ms, &child, at)
            .await
    }

    async fn await_child(
        &self,
        a: &AgentStep,
        key: StepKey,
        attempt: u32,
        started_at_ms: u64,
        child: &str,
        at: &Position,
    ) -> Flow<Value> {
        self.flush().await?;
        let result = self.host.child_result(child).await.map_err(Stop::Host)?;
        let deadline = a.timeout_ms.map(|t| started_at_ms.saturating_add(t));
        match result {
            Some(Ok(output)) => self.finish(key, attempt, Ok(output), &a.id, at).await,
            Some(Err(error)) => {
                self.failed_attempt(key, attempt, error, a.retry.as_ref(), &a.id, at)
                    .await
            }
            None => match deadline {
                Some(deadline) if deadline <= self.host.now_ms() => {
                    self.host.cancel_child(child).await;
                    let error = StepError::timeout(format!(
                        "the child run took longer than {} ms",
                        a.timeout_ms.unwrap_or_default()
                    ));
                    self.failed_attempt(key, attempt, error, a.retry.as_ref(), &a.id, at)
                        .await
                }
                _ => Err(self.wait(deadline, Some(child))),
            },
        }
    }
}
