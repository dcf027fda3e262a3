//! The interpreter: one method per step kind, each replaying its journal record first.
//! This module holds the run, the journal and the dispatch; [`leaf`] the steps that call out
//! (skills, child runs) and their retries, [`fan`] the steps that run others at once.

mod fan;
mod leaf;

use std::sync::Mutex;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::{
    Entry, Host, HostError, Journal, RunEnd, StepError, StepKey, StepKind, StepState, Wake,
};
use crate::document::{Step, SwitchStep};
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
        held: Mutex::new(Vec::new()),
        wake: Mutex::new(Wake::default()),
    };
    let top = Position {
        item: String::new(),
        map_item: None,
        cancel: cancel.clone(),
        alone: true,
    };
    let end = run.top(&top, &cancel).await?;
    run.flush().await.map_err(|stop| match stop {
        Stop::Host(e) => e,
        _ => HostError("the journal could not be written".into()),
    })?;
    Ok(end)
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
    /// Nothing else in the run can be running: outside every `parallel` and `map` branch.
    alone: bool,
}

impl Position {
    fn key(&self, step: &str) -> StepKey {
        StepKey::new(step, self.item.clone())
    }

    fn branch(&self) -> Self {
        Self {
            cancel: self.cancel.child_token(),
            alone: false,
            ..self.clone()
        }
    }
}

struct Run<'a, H> {
    plan: &'a Plan,
    input: &'a Value,
    host: &'a H,
    journal: Mutex<Journal>,
    /// Ends held back for the run's next write (see the module's documentation).
    held: Mutex<Vec<Entry>>,
    wake: Mutex<Wake>,
}

impl<H: Host> Run<'_, H> {
    /// The top-level steps in order, then the run's output.
    async fn top(&self, top: &Position, cancel: &CancellationToken) -> Result<RunEnd, HostError> {
        let mut last = Value::Null;
        for step in &self.plan.workflow().steps {
            match self.step(step, top).await {
                Ok(output) => last = output,
                Err(stop) => return self.stopped(stop, cancel),
            }
        }
        Ok(match self.plan.output() {
            None => RunEnd::Completed(last),
            Some(template) => {
                let steps = self.visible_steps("");
                match template.render(&[("input", self.input), ("steps", &steps)]) {
                    Ok(output) => RunEnd::Completed(output),
                    Err(e) => RunEnd::Failed(StepError::expression(e)),
                }
            }
        })
    }

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

    /// Makes `entry` durable, with the ends held back before it.
    async fn write(&self, entry: Entry) -> Flow<()> {
        let mut entries = self.take_held();
        entries.push(entry);
        self.host.record(&entries).await.map_err(Stop::Host)?;
        self.lock().apply(&entries[entries.len() - 1]);
        Ok(())
    }

    /// A step's end at `at`: held back for the run's next write where nothing else can be
    /// running, else written now. Either way the journal in memory has it at once, so the
    /// next step's expressions see it.
    async fn write_end(&self, entry: Entry, at: &Position) -> Flow<()> {
        if !at.alone {
            return self.write(entry).await;
        }
        self.lock().apply(&entry);
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry);
        Ok(())
    }

    /// Writes the ends held back, before the run waits on anything but its own next write.
    async fn flush(&self) -> Flow<()> {
        let entries = self.take_held();
        if !entries.is_empty() {
            self.host.record(&entries).await.map_err(Stop::Host)?;
        }
        Ok(())
    }

    fn take_held(&self) -> Vec<Entry> {
        std::mem::take(&mut *self.held.lock().unwrap_or_else(|e| e.into_inner()))
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
                    self.finish(key, 1, result, step.id(), at).await
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
        at: &Position,
    ) -> Flow<Value> {
        let result = match result {
            Ok(output) => Ok(output),
            Err(Stop::Failed(error)) => Err((*error).at(id)),
            Err(other) => return Err(other),
        };
        let end = Entry::Finished {
            key,
            attempt,
            result: result.clone(),
        };
        self.write_end(end, at).await?;
        result.map_err(fail)
    }

    async fn sequence(&self, steps: &[Step], at: &Position) -> Flow<Value> {
        let mut last = Value::Null;
        for step in steps {
            last = self.step(step, at).await?;
        }
        Ok(last)
    }

    async fn switch(&self, s: &SwitchStep, at: &Position) -> Flow<Value> {
        let conditions = self
            .plan
            .compiled(&s.id)
            .map(|c| c.conditions.as_slice())
            .unwrap_or_default();
        // The steps are gathered once for all the cases: they cannot change in between.
        let chosen = self.with_variables(at, |variables| {
            for (case, condition) in s.cases.iter().zip(conditions) {
                match condition.evaluate(variables) {
                    Ok(Value::Bool(true)) => return Ok(Some(case)),
                    Ok(Value::Bool(false)) => {}
                    Ok(other) => {
                        return Err(format!(
                            "{}: gave {}, not a boolean",
                            condition.source(),
                            type_name(&other)
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(None)
        });
        if let Some(case) = chosen.map_err(|e| fail(StepError::expression(e)))? {
            return self.step(&case.step, at).await;
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
