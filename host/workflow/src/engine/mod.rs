//! The engine: runs a [`Plan`](crate::Plan) durably against a [`Host`] that does the I/O.
//!
//! A run is replayed from its journal every time a worker picks it up. Every step's start,
//! retry and end is written through [`Host::record`] before the run moves on, so a run that
//! was interrupted (a crash, a suspension) resumes where it was: a step with a finished
//! record is never run again, its output is read from the journal; only a step that was in
//! flight runs again (at-least-once for that one step). Expressions are deterministic
//! functions of the run's input and the journal, so replaying them takes the same path.
//!
//! "Before the run moves on" is exact, not eager: where nothing else in the run can be
//! running (outside every `parallel` and `map` branch), a step's end is held back and
//! written in the same [`Host::record`] call as whatever the run writes next — in a
//! sequence, the next step's start — and before any other call to the host or the end of
//! [`run`]. A sequence of n skills thus costs n + 1 durable writes, not 2n, and a crash
//! between a step's end and the next write loses only that step's end (the step runs
//! again, as when the crash comes a moment earlier). Inside branches every end is written
//! at once, so one branch's finished step never waits on another branch's work.
//!
//! Waiting holds nothing: a backoff or a child run that has not finished ends the call to
//! [`run`] with [`RunEnd::Suspended`], saying when (or on which child) to run it again; the
//! caller releases the run until then. A branch that must wait stops there while the others
//! go on as far as they can; the run suspends once nothing more can move, so a wait in one
//! branch never holds back another (a `parallel` joined by `any` finishes through its fast
//! branch while a slow child run is pending in another).
//!
//! The engine holds no policy about skills: which version a step runs (the agent's pins),
//! circuit breakers, metering and events are the host's, behind [`Host::invoke`] and
//! [`Host::record`].

mod run;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;

use omniforge_types::SkillName;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::document::RetryOn;

pub use run::run;

/// The most items a `map` step fans out over.
pub const MAX_MAP_ITEMS: usize = 10_000;

/// Where a step runs: its id and, inside `map` steps, the item it runs for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StepKey {
    /// The step's id.
    pub step: String,
    /// The item indexes of the enclosing `map` steps, outermost first, joined by `.`
    /// (`""` outside any map; `"3"`; `"3.0"` in a map inside a map).
    pub item: String,
}

impl StepKey {
    /// The key of step `step` at item path `item`.
    pub fn new(step: impl Into<String>, item: impl Into<String>) -> Self {
        Self {
            step: step.into(),
            item: item.into(),
        }
    }
}

impl std::fmt::Display for StepKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.item.is_empty() {
            f.write_str(&self.step)
        } else {
            write!(f, "{}[{}]", self.step, self.item)
        }
    }
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    /// An attempt started (and, after a crash, may have been lost).
    Running,
    /// Waiting for its next attempt's timer.
    Waiting,
    /// Finished with an output.
    Succeeded,
    /// Finished without one.
    Failed,
}

impl StepState {
    /// The stable lower-case name the journal stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

impl std::str::FromStr for StepState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "running" => Self::Running,
            "waiting" => Self::Waiting,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            other => return Err(format!("unknown step state {other:?}")),
        })
    }
}

/// A step's journal record: what the run knows about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Where it is.
    pub state: StepState,
    /// The current (or last) attempt, from 1.
    pub attempt: u32,
    /// The output, once succeeded.
    pub output: Option<Value>,
    /// Why it failed, once failed (or why the last attempt failed, while waiting).
    pub error: Option<StepError>,
    /// When the next attempt may start, while waiting; unix ms.
    pub not_before_ms: Option<u64>,
    /// The child run of an `agent` step's current attempt.
    pub child: Option<String>,
    /// When the current attempt (a composite step: the step) started, unix ms.
    pub started_at_ms: u64,
}

/// A run's journal as read back: every step record it has.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    records: HashMap<StepKey, StepRecord>,
}

impl Journal {
    /// The records of one run.
    pub fn new(records: impl IntoIterator<Item = (StepKey, StepRecord)>) -> Self {
        Self {
            records: records.into_iter().collect(),
        }
    }

    /// The record of `key`.
    pub fn get(&self, key: &StepKey) -> Option<&StepRecord> {
        self.records.get(key)
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Applies an entry the host has written.
    fn apply(&mut self, entry: &Entry) {
        match entry {
            Entry::Started {
                key,
                attempt,
                at_ms,
                ..
            } => {
                self.records.insert(
                    key.clone(),
                    StepRecord {
                        state: StepState::Running,
                        attempt: *attempt,
                        output: None,
                        error: None,
                        not_before_ms: None,
                        child: None,
                        started_at_ms: *at_ms,
                    },
                );
            }
            Entry::ChildStarted { key, child, .. } => {
                if let Some(record) = self.records.get_mut(key) {
                    record.child = Some(child.clone());
                }
            }
            Entry::RetryScheduled {
                key,
                attempt,
                not_before_ms,
                error,
            } => {
                if let Some(record) = self.records.get_mut(key) {
                    record.state = StepState::Waiting;
                    record.attempt = *attempt;
                    record.not_before_ms = Some(*not_before_ms);
                    record.error = Some(error.clone());
                    record.child = None;
                }
            }
            Entry::Finished { key, result, .. } => {
                if let Some(record) = self.records.get_mut(key) {
                    match result {
                        Ok(output) => {
                            record.state = StepState::Succeeded;
                            record.output = Some(output.clone());
                            record.error = None;
                        }
                        Err(error) => {
                            record.state = StepState::Failed;
                            record.error = Some(error.clone());
                        }
                    }
                    record.not_before_ms = None;
                }
            }
        }
    }
}

/// What a step failed with. `code` is a stable kebab-case name (`timeout`, `trap`,
/// `unavailable`, `failed`, `limit`, `refused`, `invalid-input`, `expression`, `canceled`,
/// `join`, the skill's or the platform's own codes); `retry_as` is the class a retry policy
/// names, `None` when no policy may retry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepError {
    /// The error's stable name.
    pub code: String,
    /// What happened, for people.
    pub message: String,
    /// The id of the step where it happened (the innermost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The outcome class a retry policy's `retry_on` matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_as: Option<RetryOn>,
    /// The least a retry should wait (a refusal's `Retry-After`), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// The problem document the skill's call answered, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<Value>,
}

impl StepError {
    /// An error no policy retries.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            step: None,
            retry_as: None,
            retry_after_ms: None,
            problem: None,
        }
    }

    /// The same error, retried by policies that name `class`.
    pub fn retried_as(mut self, class: RetryOn) -> Self {
        self.retry_as = Some(class);
        self
    }

    /// What a step's expression failed with.
    pub fn expression(message: impl Into<String>) -> Self {
        Self::new("expression", message)
    }

    /// A step that ran out of time.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new("timeout", message).retried_as(RetryOn::Timeout)
    }

    fn at(mut self, step: &str) -> Self {
        self.step.get_or_insert_with(|| step.to_owned());
        self
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.step {
            Some(step) => write!(f, "step {step}: {} ({})", self.message, self.code),
            None => write!(f, "{} ({})", self.message, self.code),
        }
    }
}

/// The kinds of steps, as journal entries name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// A `skill` step.
    Skill,
    /// A `sequence` step.
    Sequence,
    /// A `parallel` step.
    Parallel,
    /// A `map` step.
    Map,
    /// A `switch` step.
    Switch,
    /// An `agent` step.
    Agent,
}

impl StepKind {
    /// The kind's name in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skill => "skill",
            Self::Sequence => "sequence",
            Self::Parallel => "parallel",
            Self::Map => "map",
            Self::Switch => "switch",
            Self::Agent => "agent",
        }
    }
}

/// A journal write the host must make durable before [`Host::record`] returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// An attempt of a step (a composite step: the step) started.
    Started {
        /// The step.
        key: StepKey,
        /// Its kind.
        kind: StepKind,
        /// The attempt, from 1.
        attempt: u32,
        /// When, unix ms.
        at_ms: u64,
    },
    /// An `agent` step's attempt started its child run.
    ChildStarted {
        /// The step.
        key: StepKey,
        /// The attempt.
        attempt: u32,
        /// The child run's id.
        child: String,
    },
    /// An attempt failed and the next one waits for a timer.
    RetryScheduled {
        /// The step.
        key: StepKey,
        /// The next attempt.
        attempt: u32,
        /// When it may start, unix ms.
        not_before_ms: u64,
        /// Why the last one failed.
        error: StepError,
    },
    /// The step finished.
    Finished {
        /// The step.
        key: StepKey,
        /// Its last attempt.
        attempt: u32,
        /// Its output, or why it failed.
        result: Result<Value, StepError>,
    },
}

/// One attempt of a `skill` step, for the host to run.
#[derive(Debug, Clone)]
pub struct SkillCall {
    /// The step.
    pub key: StepKey,
    /// The skill.
    pub skill: SkillName,
    /// The requirement the document wrote (the host runs the version it pinned for it).
    pub requirement: Option<String>,
    /// The input.
    pub input: Value,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The longest the attempt may run, ms.
    pub timeout_ms: Option<u64>,
    /// Cancelled when the attempt's result is no longer wanted (the run was canceled, or
    /// the branch it is in was abandoned).
    pub cancel: CancellationToken,
}

/// One attempt of an `agent` step: a child run to start.
#[derive(Debug, Clone)]
pub struct ChildCall {
    /// The step.
    pub key: StepKey,
    /// The agent's name.
    pub agent: String,
    /// The child run's input.
    pub input: Value,
    /// The attempt, from 1 (with the key, it makes starting the child idempotent).
    pub attempt: u32,
}

/// The host failed (the database, most likely): the run stops where it is and runs again
/// from its journal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HostError(pub String);

/// What the engine needs from the platform. Every method but the clocks may fail with a
/// [`HostError`], which stops the run without recording anything more.
pub trait Host: Send + Sync {
    /// The current time, unix ms.
    fn now_ms(&self) -> u64;
    /// A uniform random number in `[0, 1)`, for backoff jitter.
    fn jitter(&self) -> f64;
    /// Makes `entries` durable, all or none, in their order (and tells the run's watchers).
    /// The engine hands over more than one when a step's end waited for what the run does
    /// next (see [`run`]).
    fn record(&self, entries: &[Entry]) -> impl Future<Output = Result<(), HostError>> + Send;
    /// Runs one attempt of a skill step: its output, or why not.
    fn invoke(&self, call: SkillCall) -> impl Future<Output = Result<Value, StepError>> + Send;
    /// Starts a child run (idempotent per key and attempt); its id.
    fn start_child(
        &self,
        call: ChildCall,
    ) -> impl Future<Output = Result<String, StepError>> + Send;
    /// A child run's result, or `None` while it has not ended.
    fn child_result(
        &self,
        child: &str,
    ) -> impl Future<Output = Result<Option<Result<Value, StepError>>, HostError>> + Send;
    /// Cancels a child run whose result is no longer wanted.
    fn cancel_child(&self, child: &str) -> impl Future<Output = ()> + Send;
}

/// When a suspended run should run again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wake {
    /// At this time, unix ms (a retry's timer, a step's deadline).
    pub at_ms: Option<u64>,
    /// When any of these child runs ends.
    pub children: Vec<String>,
}

impl Wake {
    fn at(&mut self, ms: u64) {
        self.at_ms = Some(self.at_ms.map_or(ms, |at| at.min(ms)));
    }
}

/// How a call to [`run`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// The run finished with its output.
    Completed(Value),
    /// The run failed.
    Failed(StepError),
    /// The run waits; run it again as [`Wake`] says.
    Suspended(Wake),
    /// The run's cancel token was cancelled.
    Canceled,
}
