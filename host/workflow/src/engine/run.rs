//! The interpreter: one method per step kind, each replaying its journal record first.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::{
    ChildCall, Entry, Host, HostError, Journal, MAX_MAP_ITEMS, RunEnd, SkillCall, StepError,
    StepKey, StepKind, StepState, Wake,
};
use crate::document::{
    AgentStep, FailurePolicy, Join, MapStep, ParallelStep, RetryPolicy, SkillStep, Step, SwitchStep,
};
use crate::expr::Template;
use crate::validate::Plan;

/// Runs `plan` on `input` from `journal` until it ends or must wait. `Err`: the host failed;
/// the run is where its journal says and can run again.
pub async fn run<H: Host>(
    plan: &Plan,
    input: &Value,
    journal: Journal,
    host: &H,
    cancel: CancellationToken,
) -> Result<RunEnd, HostError> {
    let run = Run {
        plan,
        input,
        host,
        journal: Mutex::new(journal),
        wake: Mutex::new(Wake::default()),
    };
    let top = Position {
        item: String::new(),
        map_item: None,
        cancel: cancel.clone(),
    };
    let mut last = Value::Null;
    for step in &plan.workflow().steps {
        match run.step(step, &top).await {
            Ok(output) => last = output,
            Err(stop) => return run.stopped(stop, &cancel),
        }
    }
    let output = match plan.output() {
        None => last,
        Some(template) => {
            let steps = run.visible_steps("");
            match template.render(&[("input", input), ("steps", &steps)]) {
                Ok(output) => output,
                Err(e) => return Ok(RunEnd::Failed(StepError::expression(e))),
            }
        }
    };
    Ok(RunEnd::Completed(output))
}

/// Why a step did not produce an output.
enum Stop {
    Failed(Box<StepError>),
    Suspend,
    Canceled,
    Host(HostError),
}

type Flow<T> = Result<T, Stop>;

fn fail(error: StepError) -> Stop {
    Stop::Failed(Box::new(error))
}

/// Where in the document a step runs.
#[derive(Clone)]
struct Position {
    /// The item path (see [`StepKey::item`]).
    item: String,
    /// The current `map` item and its index.
    map_item: Option<(Value, u64)>,
    /// Cancelled when this branch's result is no longer wanted.
    cancel: CancellationToken,
}

impl Position {
    fn key(&self, step: &str) -> StepKey {
        StepKey::new(step, self.item.clone())
    }

    fn branch(&self) -> Self {
        Self {
            cancel: self.cancel.child_token(),
            ..self.clone()
        }
    }
}

struct Run<'a, H> {
    plan: &'a Plan,
    input: &'a Value,
    host: &'a H,
    journal: Mutex<Journal>,
    wake: Mutex<Wake>,
}

impl<H: Host> Run<'_, H> {
    fn stopped(&self, stop: Stop, cancel: &CancellationToken) -> Result<RunEnd, HostError> {
        Ok(match stop {
            Stop::Host(e) => return Err(e),
            _ if cancel.is_cancelled() => RunEnd::Canceled,
            Stop::Failed(e) => RunEnd::Failed(*e),
            Stop::Suspend => {
                RunEnd::Suspended(self.wake.lock().unwrap_or_else(|e| e.into_inner()).clone())
            }
            Stop::Canceled => RunEnd::Canceled,
        })
    }

    fn record_of(&self, key: &StepKey) -> Option<super::StepRecord> {
        self.lock().get(key).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn write(&self, entry: Entry) -> Flow<()> {
        self.host.record(&entry).await.map_err(Stop::Host)?;
        self.lock().apply(&entry);
        Ok(())
    }

    /// Suspends this branch until `at_ms` or the end of `child`.
    fn wait(&self, at_ms: Option<u64>, child: Option<&str>) -> Stop {
        let mut wake = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = at_ms {
            wake.at(at);
        }
        if let Some(child) = child {
            wake.children.push(child.to_owned());
        }
        Stop::Suspend
    }

    /// The `steps` variable at item path `item`: every finished step of that item and of
    /// the enclosing ones. Validation guarantees an expression reads only steps that
    /// finished before it, so the finished records are exactly what it may see.
    fn visible_steps(&self, item: &str) -> Value {
        let journal = self.lock();
        let mut steps = Map::new();
        for (key, record) in &journal.records {
            if !is_enclosing(&key.item, item) {
                continue;
            }
            let entry = match record.state {
                StepState::Succeeded => json!({ "output": record.output }),
                StepState::Failed => json!({
                    "output": null,
                    "error": record.error.as_ref().map(|e| json!({"code": e.code, "message": e.message})),
                }),
                StepState::Running | StepState::Waiting => continue,
            };
            steps.insert(key.step.clone(), entry);
        }
        Value::Object(steps)
    }

    /// Calls `f` with the variables expressions see at `at`: `input`, `steps`, and inside a
    /// `map` item, `item` and `index`.
    fn with_variables<T>(&self, at: &Position, f: impl FnOnce(&[(&str, &Value)]) -> T) -> T {
        let steps = self.visible_steps(&at.item);
        match &at.map_item {
            None => f(&[("input", self.input), ("steps", &steps)]),
            Some((item, index)) => {
                let index = Value::from(*index);
                f(&[
                    ("input", self.input),
                    ("steps", &steps),
                    ("item", item),
                    ("index", &index),
                ])
            }
        }
    }

    /// A step's input: its template's value, or the run's input.
    fn render(&self, template: Option<&Template>, at: &Position) -> Result<Value, String> {
        match template {
            None => Ok(self.input.clone()),
            Some(template) => self.with_variables(at, |variables| template.render(variables)),
        }
    }

    /// Runs one step: its journal record first (a finished step answers from it), then its
    /// kind's work.
    fn step<'s>(&'s self, step: &'s Step, at: &'s Position) -> BoxFuture<'s, Flow<Value>> {
        Box::pin(async move {
            let key = at.key(step.id());
            let record = self.record_of(&key);
            match record.as_ref().map(|r| r.state) {
                Some(StepState::Succeeded) => {
                    return Ok(record.and_then(|r| r.output).unwrap_or(Value::Null));
                }
                Some(StepState::Failed) => {
                    let error = record.and_then(|r| r.error);
                    return Err(fail(error.unwrap_or_else(|| {
                        StepError::new("failed", "the step failed").at(step.id())
                    })));
                }
                _ => {}
            }
            if at.cancel.is_cancelled() {
                return Err(Stop::Canceled);
            }
            match step {
                Step::Skill(s) => self.skill(s, key, record, at).await,
                Step::Agent(a) => self.agent(a, key, record, at).await,
                composite => {
                    let started_at_ms = match &record {
                        Some(r) => r.started_at_ms,
                        None => {
                            let at_ms = self.host.now_ms();
                            self.write(Entry::Started {
                                key: key.clone(),
                                kind: kind(composite),
                                attempt: 1,
                                at_ms,
                            })
                            .await?;
                            at_ms
                        }
                    };
                    let result = match composite {
                        Step::Sequence(s) => self.sequence(&s.steps, at).await,
                        Step::Parallel(p) => self.parallel(p, started_at_ms, at).await,
                        Step::Map(m) => self.map(m, started_at_ms, at).await,
                        Step::Switch(s) => self.switch(s, at).await,
                        Step::Skill(_) | Step::Agent(_) => unreachable!("leaf steps return above"),
                    };
                    self.finish(key, 1, result, step.id()).await
                }
            }
        })
    }

    /// Records how a step ended, when it did.
    async fn finish(
        &self,
        key: StepKey,
        attempt: u32,
        result: Flow<Value>,
        id: &str,
    ) -> Flow<Value> {
        let result = match result {
            Ok(output) => Ok(output),
            Err(Stop::Failed(error)) => Err((*error).at(id)),
            Err(other) => return Err(other),
        };
        self.write(Entry::Finished {
            key,
            attempt,
            result: result.clone(),
        })
        .await?;
        result.map_err(fail)
    }

    async fn sequence(&self, steps: &[Step], at: &Position) -> Flow<Value> {
        let mut last = Value::Null;
        for step in steps {
            last = self.step(step, at).await?;
        }
        Ok(last)
    }

    /// The attempt to run now, or the suspension when the step's timer has not fired.
    fn next_attempt(&self, record: Option<&super::StepRecord>) -> Flow<u32> {
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
    ) -> Flow<Value> {
        let error = error.at(id);
        let retried = match (policy, error.retry_as) {
            (Some(policy), Some(class)) => policy.retries(attempt, class),
            _ => false,
        };
        if !retried {
            return self.finish(key, attempt, Err(fail(error)), id).await;
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

    async fn skill(
        &self,
        s: &SkillStep,
        key: StepKey,
        record: Option<super::StepRecord>,
        at: &Position,
    ) -> Flow<Value> {
        let attempt = self.next_attempt(record.as_ref())?;
        let compiled = self.plan.compiled(&s.id);
        let input = match self.render(compiled.and_then(|c| c.input.as_ref()), at) {
            Ok(input) => input,
            Err(e) => {
                self.write_started(&key, StepKind::Skill, attempt).await?;
                let error = StepError::expression(e);
                return self.finish(key, attempt, Err(fail(error)), &s.id).await;
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
            Ok(output) => self.finish(key, attempt, Ok(output), &s.id).await,
            // Abandoned or canceled: the caller decides; nothing is recorded, so a replay
            // runs the step again.
            Err(_) if at.cancel.is_cancelled() => Err(Stop::Canceled),
            Err(error) => {
                self.failed_attempt(key, attempt, error, s.retry.as_ref(), &s.id)
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

    async fn agent(
        &self,
        a: &AgentStep,
        key: StepKey,
        record: Option<super::StepRecord>,
        at: &Position,
    ) -> Flow<Value> {
        // A child already started: wait for it.
        if let Some(r) = record.as_ref().filter(|r| r.state == StepState::Running)
            && let Some(child) = r.child.clone()
        {
            return self
                .await_child(a, key, r.attempt, r.started_at_ms, &child)
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
                return self.finish(key, attempt, Err(fail(error)), &a.id).await;
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
                    .failed_attempt(key, attempt, error, a.retry.as_ref(), &a.id)
                    .await;
            }
        };
        self.write(Entry::ChildStarted {
            key: key.clone(),
            attempt,
            child: child.clone(),
        })
        .await?;
        self.await_child(a, key, attempt, started_at_ms, &child)
            .await
    }

    async fn await_child(
        &self,
        a: &AgentStep,
        key: StepKey,
        attempt: u32,
        started_at_ms: u64,
        child: &str,
    ) -> Flow<Value> {
        let result = self.host.child_result(child).await.map_err(Stop::Host)?;
        let deadline = a.timeout_ms.map(|t| started_at_ms.saturating_add(t));
        match result {
            Some(Ok(output)) => self.finish(key, attempt, Ok(output), &a.id).await,
            Some(Err(error)) => {
                self.failed_attempt(key, attempt, error, a.retry.as_ref(), &a.id)
                    .await
            }
            None => match deadline {
                Some(deadline) if deadline <= self.host.now_ms() => {
                    self.host.cancel_child(child).await;
                    let error = StepError::timeout(format!(
                        "the child run took longer than {} ms",
                        a.timeout_ms.unwrap_or_default()
                    ));
                    self.failed_attempt(key, attempt, error, a.retry.as_ref(), &a.id)
                        .await
                }
                _ => Err(self.wait(deadline, Some(child))),
            },
        }
    }

    async fn parallel(&self, p: &ParallelStep, started_at_ms: u64, at: &Position) -> Flow<Value> {
        let deadline = p.timeout_ms.map(|t| started_at_ms.saturating_add(t));
        let branches: Vec<Position> = p.branches.iter().map(|_| at.branch()).collect();
        let mut running: FuturesUnordered<_> = p
            .branches
            .iter()
            .zip(&branches)
            .enumerate()
            .map(|(i, (branch, position))| async move { (i, self.step(branch, position).await) })
            .collect();
        let needed = match p.join {
            Join::All => p.branches.len(),
            Join::Any => 1,
            Join::Quorum(n) => n as usize,
        };
        let mut outputs: Vec<Option<Value>> = vec![None; p.branches.len()];
        let (mut succeeded, mut settled, mut suspended) = (0, 0, false);
        let mut continued: Vec<usize> = Vec::new();
        let met = loop {
            let next = match self.until(deadline, running.next()).await {
                Some(Some(next)) => next,
                Some(None) => break false,
                None => {
                    drop(running);
                    self.abandon(&p.branches, &branches, at).await;
                    return Err(fail(StepError::timeout(format!(
                        "the branches took longer than {} ms",
                        p.timeout_ms.unwrap_or_default()
                    ))));
                }
            };
            let (i, result) = next;
            settled += 1;
            match result {
                Ok(output) => {
                    outputs[i] = Some(output);
                    succeeded += 1;
                    if p.join != Join::All && succeeded >= needed {
                        break true;
                    }
                }
                Err(Stop::Failed(error)) => match p.on_failure {
                    FailurePolicy::FailFast => {
                        drop(running);
                        self.abandon(&p.branches, &branches, at).await;
                        return Err(Stop::Failed(error));
                    }
                    FailurePolicy::Continue => continued.push(i),
                    FailurePolicy::Drop => {}
                },
                Err(Stop::Suspend) => suspended = true,
                Err(Stop::Canceled) => return Err(Stop::Canceled),
                Err(Stop::Host(e)) => return Err(Stop::Host(e)),
            }
            let open = p.branches.len() - settled;
            if !suspended && p.join != Join::All && succeeded + open < needed {
                drop(running);
                self.abandon(&p.branches, &branches, at).await;
                return Err(fail(StepError::new(
                    "join",
                    format!(
                        "{succeeded} of {} branches succeeded; the join needs {needed}",
                        p.branches.len()
                    ),
                )));
            }
        };
        drop(running);
        if met {
            self.abandon(&p.branches, &branches, at).await;
        } else if suspended {
            return Err(Stop::Suspend);
        }
        let mut object = Map::new();
        for (i, branch) in p.branches.iter().enumerate() {
            match &outputs[i] {
                Some(output) => {
                    object.insert(branch.id().to_owned(), output.clone());
                }
                None if continued.contains(&i) => {
                    object.insert(branch.id().to_owned(), Value::Null);
                }
                None => {}
            }
        }
        Ok(Value::Object(object))
    }

    /// Waits for `future` until `deadline` (unix ms): `None` when the deadline came first.
    async fn until<F: Future>(&self, deadline: Option<u64>, future: F) -> Option<F::Output> {
        match deadline {
            None => Some(future.await),
            Some(deadline) => {
                let left = deadline.saturating_sub(self.host.now_ms());
                tokio::time::timeout(Duration::from_millis(left), future)
                    .await
                    .ok()
            }
        }
    }

    /// Stops the branches whose results are no longer wanted, and the child runs they
    /// started.
    async fn abandon(&self, steps: &[Step], branches: &[Position], at: &Position) {
        for position in branches {
            position.cancel.cancel();
        }
        let mut ids = std::collections::HashSet::new();
        for step in steps {
            collect_ids(step, &mut ids);
        }
        let children: Vec<String> = self
            .lock()
            .records
            .iter()
            .filter(|(key, r)| {
                r.state == StepState::Running
                    && ids.contains(key.step.as_str())
                    && is_enclosing(&at.item, &key.item)
            })
            .filter_map(|(_, r)| r.child.clone())
            .collect();
        for child in children {
            self.host.cancel_child(&child).await;
        }
    }

    async fn map(&self, m: &MapStep, started_at_ms: u64, at: &Position) -> Flow<Value> {
        let deadline = m.timeout_ms.map(|t| started_at_ms.saturating_add(t));
        let expression = self
            .plan
            .compiled(&m.id)
            .and_then(|c| c.over.as_ref())
            .ok_or_else(|| fail(StepError::expression("the map has no array")))?;
        let over = self
            .with_variables(at, |variables| expression.evaluate(variables))
            .map_err(|e| fail(StepError::expression(e)))?;
        let Value::Array(items) = over else {
            return Err(fail(StepError::expression(format!(
                "`over` gave {}, not an array",
                type_name(&over)
            ))));
        };
        if items.len() > MAX_MAP_ITEMS {
            return Err(fail(StepError::new(
                "limit",
                format!(
                    "`over` gave {} items; a map runs at most {MAX_MAP_ITEMS}",
                    items.len()
                ),
            )));
        }
        let positions: Vec<Position> = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| Position {
                item: if at.item.is_empty() {
                    i.to_string()
                } else {
                    format!("{}.{i}", at.item)
                },
                map_item: Some((item, i as u64)),
                cancel: at.cancel.child_token(),
            })
            .collect();
        let mut outputs: Vec<Option<Value>> = vec![None; positions.len()];
        let mut pending = positions.iter().enumerate();
        let mut running = FuturesUnordered::new();
        let concurrency = m.concurrency.max(1) as usize;
        let mut suspended = false;
        loop {
            while running.len() < concurrency {
                let Some((i, position)) = pending.next() else {
                    break;
                };
                running.push(async move { (i, self.step(&m.step, position).await) });
            }
            let next = match self.until(deadline, running.next()).await {
                Some(Some(next)) => next,
                Some(None) => break,
                None => {
                    drop(running);
                    self.abandon_items(m, &positions).await;
                    return Err(fail(StepError::timeout(format!(
                        "the items took longer than {} ms",
                        m.timeout_ms.unwrap_or_default()
                    ))));
                }
            };
            match next {
                (i, Ok(output)) => outputs[i] = Some(output),
                (_, Err(Stop::Failed(error))) => {
                    drop(running);
                    self.abandon_items(m, &positions).await;
                    return Err(Stop::Failed(error));
                }
                (_, Err(Stop::Suspend)) => suspended = true,
                (_, Err(other)) => return Err(other),
            }
        }
        if suspended || outputs.iter().any(Option::is_none) {
            return Err(Stop::Suspend);
        }
        Ok(Value::Array(outputs.into_iter().flatten().collect()))
    }

    async fn abandon_items(&self, m: &MapStep, positions: &[Position]) {
        for position in positions {
            position.cancel.cancel();
            self.abandon(std::slice::from_ref(&*m.step), &[], position)
                .await;
        }
    }

    async fn switch(&self, s: &SwitchStep, at: &Position) -> Flow<Value> {
        let conditions = self
            .plan
            .compiled(&s.id)
            .map(|c| c.conditions.as_slice())
            .unwrap_or_default();
        for (case, condition) in s.cases.iter().zip(conditions) {
            match self.with_variables(at, |variables| condition.evaluate(variables)) {
                Ok(Value::Bool(true)) => return self.step(&case.step, at).await,
                Ok(Value::Bool(false)) => {}
                Ok(other) => {
                    return Err(fail(StepError::expression(format!(
                        "{}: gave {}, not a boolean",
                        condition.source(),
                        type_name(&other)
                    ))));
                }
                Err(e) => return Err(fail(StepError::expression(e))),
            }
        }
        match &s.default {
            Some(default) => self.step(default, at).await,
            None => Ok(Value::Null),
        }
    }
}

/// Whether item path `outer` is `inner` or encloses it.
fn is_enclosing(outer: &str, inner: &str) -> bool {
    outer.is_empty()
        || outer == inner
        || (inner.starts_with(outer) && inner.as_bytes().get(outer.len()) == Some(&b'.'))
}

fn collect_ids<'s>(step: &'s Step, ids: &mut std::collections::HashSet<&'s str>) {
    ids.insert(step.id());
    for (_, child) in step.children() {
        collect_ids(child, ids);
    }
}

fn kind(step: &Step) -> StepKind {
    match step {
        Step::Skill(_) => StepKind::Skill,
        Step::Sequence(_) => StepKind::Sequence,
        Step::Parallel(_) => StepKind::Parallel,
        Step::Map(_) => StepKind::Map,
        Step::Switch(_) => StepKind::Switch,
        Step::Agent(_) => StepKind::Agent,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
