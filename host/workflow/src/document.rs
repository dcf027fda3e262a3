//! The workflow document as written: its steps, their kinds and their reliability settings.
//!
//! These types are the format's single definition: serde reads documents into them, and the
//! published JSON Schema (`GET /api/v1/schemas/workflow.json`) is derived from them, so the
//! two cannot drift. What the types cannot say (unique ids, expressions that compile, limits)
//! is checked by [`crate::validate`].

use omniforge_types::SkillName;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A workflow: steps run in order, and the run's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "OmniForge workflow")]
pub struct Workflow {
    /// The steps, run one after another (as a `sequence`).
    #[schemars(length(min = 1))]
    pub steps: Vec<Step>,
    /// The run's output, a template over `input` and `steps` (default: the output of the
    /// last step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

/// One step. Every step has an `id`, unique in the document, under which its result is
/// available to later expressions as `steps.<id>.output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Step {
    /// Invokes a skill.
    Skill(SkillStep),
    /// Runs steps in order; its output is the last one's.
    Sequence(SequenceStep),
    /// Runs branches at once and joins them.
    Parallel(ParallelStep),
    /// Runs one step per item of an array; its output is their outputs in input order.
    Map(MapStep),
    /// Runs the first case whose condition holds, else the default.
    Switch(SwitchStep),
    /// Runs another agent of the tenant as a child run.
    Agent(AgentStep),
}

/// A step's id: a CEL identifier (`steps.<id>.output` must parse), at most 64 characters.
pub type StepId = String;

/// Invokes a skill of the tenant (its own or installed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillStep {
    /// The step's id.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"))]
    pub id: StepId,
    /// The skill, `namespace/name`.
    #[schemars(
        with = "String",
        regex(pattern = r"^[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9-]*$")
    )]
    pub skill: SkillName,
    /// A semver requirement (default: the newest version). Saving an agent pins the version
    /// it resolves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The skill's input: a template (default: the run's input, `"${input}"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// How failed attempts are retried (default: not at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// The longest one attempt may run, in milliseconds (default: the skill's time limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,
}

/// Steps in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SequenceStep {
    /// The step's id.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"))]
    pub id: StepId,
    /// The steps.
    #[schemars(length(min = 1))]
    pub steps: Vec<Step>,
}

/// Branches at once. The output is an object with each finished branch's output under its
/// id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParallelStep {
    /// The step's id.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"))]
    pub id: StepId,
    /// The branches, each one step (a `sequence` for more).
    #[schemars(length(min = 1))]
    pub branches: Vec<Step>,
    /// When the step is done (default: `all`).
    #[serde(default)]
    pub join: Join,
    /// What a failed branch does (default: `fail-fast`).
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// The longest the branches may run together, in milliseconds; branches still running
    /// then are canceled and the step fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,
}

/// When a `parallel` step is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Join {
    /// When every branch has finished.
    #[default]
    All,
    /// When the first branch succeeds (the others are canceled).
    Any,
    /// When `n` branches have succeeded (the others are canceled).
    Quorum(u32),
}

/// What a failed branch of a `parallel` step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// The step fails at once; the other branches are canceled.
    #[default]
    FailFast,
    /// The other branches go on; the failure is recorded as `steps.<branch>.error` and the
    /// branch's output is `null`.
    Continue,
    /// The branch is left out of the output as if it had not been there.
    Drop,
}

/// One step per item of an array, at most `concurrency` at once. In the item's step,
/// expressions also see `item` and `index`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapStep {
    /// The step's id.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"))]
    pub id: StepId,
    /// A CEL expression giving the array.
    pub over: String,
    /// How many items run at once (default 4, at most 64).
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 64))]
    pub concurrency: u32,
    /// The step run for each item.
    pub step: Box<Step>,
    /// The longest the whole map may run, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,
}

fn default_concurrency() -> u32 {
    4
}

/// The first case whose condition holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchStep {
    /// The step's id.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"))]
    pub id: StepId,
    /// The cases, tried in order.
    #[schemars(length(min = 1))]
    pub cases: Vec<Case>,
    /// Run when no case holds (without one, the step's output is `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Box<Step>>,
}

/// A case of a `switch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// A CEL expression that must give a boolean.
    pub when: String,
    /// The step run when it holds.
    pub step: Step,
}

/// Another agent of the same tenant, run as a child run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentStep {
    /// The step's id.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"))]
    pub id: StepId,
    /// The agent's name.
    pub agent: String,
    /// The child run's input: a template (default: this run's input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// How failed child runs are retried (default: not at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// The longest the child run may take, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,
}

/// How a step's failed attempts are retried: exponential backoff with full jitter (attempt
/// `n` waits a random time between 0 and `min(max_delay_ms, initial_delay_ms × multiplier^(n-1))`),
/// as a durable timer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 to 20).
    #[schemars(range(min = 1, max = 20))]
    pub max_attempts: u32,
    /// The first backoff's upper bound, in milliseconds (default 200).
    #[serde(default = "default_initial_delay")]
    pub initial_delay_ms: u64,
    /// No backoff is longer, in milliseconds (default 30000).
    #[serde(default = "default_max_delay")]
    pub max_delay_ms: u64,
    /// Each backoff's bound grows by this factor (default 2, at least 1).
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    /// Which outcomes are retried (default: `timeout`, `trap` and `unavailable`).
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<RetryOn>,
}

fn default_initial_delay() -> u64 {
    200
}

fn default_max_delay() -> u64 {
    30_000
}

fn default_multiplier() -> f64 {
    2.0
}

fn default_retry_on() -> Vec<RetryOn> {
    vec![RetryOn::Timeout, RetryOn::Trap, RetryOn::Unavailable]
}

/// An outcome a retry policy may retry. Invalid input is never retried: the same input
/// would be refused again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    /// The attempt ran out of time.
    Timeout,
    /// The guest trapped.
    Trap,
    /// The skill answered its `unavailable` error.
    Unavailable,
    /// The skill answered its `failed` error.
    Failed,
    /// A fuel, memory or output limit.
    Limit,
    /// A quota, rate or concurrency refusal (the retry waits at least its `Retry-After`).
    Refused,
}

impl Step {
    /// The step's id.
    pub fn id(&self) -> &str {
        match self {
            Step::Skill(s) => &s.id,
            Step::Sequence(s) => &s.id,
            Step::Parallel(s) => &s.id,
            Step::Map(s) => &s.id,
            Step::Switch(s) => &s.id,
            Step::Agent(s) => &s.id,
        }
    }

    /// The steps directly inside this one, in document order, with their JSON pointers
    /// below it.
    pub fn children(&self) -> Vec<(String, &Step)> {
        fn list<'a>(name: &str, steps: &'a [Step]) -> Vec<(String, &'a Step)> {
            steps
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("/{name}/{i}"), s))
                .collect()
        }
        match self {
            Step::Skill(_) | Step::Agent(_) => Vec::new(),
            Step::Sequence(s) => list("steps", &s.steps),
            Step::Parallel(p) => list("branches", &p.branches),
            Step::Map(m) => vec![("/step".to_owned(), &*m.step)],
            Step::Switch(s) => s
                .cases
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("/cases/{i}/step"), &c.step))
                .chain(s.default.as_deref().map(|d| ("/default".to_owned(), d)))
                .collect(),
        }
    }
}

impl Workflow {
    /// Every step with its JSON pointer in the document, depth first in document order.
    pub fn located_steps(&self) -> Vec<(String, &Step)> {
        let mut all = Vec::new();
        let mut pending: Vec<(String, &Step)> = self
            .steps
            .iter()
            .enumerate()
            .rev()
            .map(|(i, s)| (format!("/steps/{i}"), s))
            .collect();
        while let Some((at, step)) = pending.pop() {
            pending.extend(
                step.children()
                    .into_iter()
                    .rev()
                    .map(|(below, child)| (format!("{at}{below}"), child)),
            );
            all.push((at, step));
        }
        all
    }

    /// Every step, depth first in document order.
    pub fn all_steps(&self) -> Vec<&Step> {
        self.located_steps().into_iter().map(|(_, s)| s).collect()
    }

    /// The `skill` steps.
    pub fn skill_steps(&self) -> impl Iterator<Item = &SkillStep> {
        self.all_steps().into_iter().filter_map(|s| match s {
            Step::Skill(skill) => Some(skill),
            _ => None,
        })
    }

    /// The names of the agents that `agent` steps run.
    pub fn agents(&self) -> std::collections::BTreeSet<&str> {
        self.all_steps()
            .into_iter()
            .filter_map(|s| match s {
                Step::Agent(a) => Some(a.agent.as_str()),
                _ => None,
            })
            .collect()
    }

    /// A workflow of one `skill` step (an agent defined by a single skill).
    pub fn single_skill(skill: SkillName, version: Option<String>) -> Self {
        Workflow {
            steps: vec![Step::Skill(SkillStep {
                id: "skill".into(),
                skill,
                version,
                input: None,
                retry: None,
                timeout_ms: None,
            })],
            output: None,
        }
    }
}
