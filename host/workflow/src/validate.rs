//! Reading a document and checking what its types cannot say, with problems that name the
//! step and the field.
//!
//! The rules: ids are CEL identifiers, unique in the document; expressions compile (see
//! [`crate::expr`]) and read only steps that have finished by the time they run (earlier
//! steps of an enclosing sequence and what those contain; never a sibling branch, the step
//! itself or a later one); requirements are semver; quorums fit their branches; retry
//! policies are sane; and the document stays within [`MAX_STEPS`] steps and
//! [`MAX_DEPTH`] levels of nesting.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::document::{RetryOn, RetryPolicy, Step, Workflow};
use crate::expr::{Expression, Scope, Template};

/// The most steps a document may hold, counting nested ones.
pub const MAX_STEPS: usize = 1000;

/// The deepest steps may nest.
pub const MAX_DEPTH: usize = 16;

/// The most branches of one `parallel` step.
pub const MAX_BRANCHES: usize = 256;

/// The most problems reported for one document.
const MAX_PROBLEMS: usize = 50;

/// CEL's reserved words, which cannot follow `steps.`.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// What is wrong with a document, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The id of the step it is in, when it is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// A JSON pointer to the field in the document.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.step {
            Some(step) => write!(f, "step {step:?}, {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// The compiled expressions of one step.
#[derive(Debug, Default)]
pub struct Compiled {
    /// A `skill` or `agent` step's input.
    pub input: Option<Template>,
    /// A `map` step's array.
    pub over: Option<Expression>,
    /// A `switch` step's conditions, in case order.
    pub conditions: Vec<Expression>,
}

/// A checked document with its expressions compiled: what the engine runs.
#[derive(Debug)]
pub struct Plan {
    workflow: Workflow,
    steps: HashMap<String, Compiled>,
    output: Option<Template>,
}

impl Plan {
    /// The document.
    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    /// The compiled expressions of step `id`.
    pub fn compiled(&self, id: &str) -> Option<&Compiled> {
        self.steps.get(id)
    }

    /// The run's output template (`None`: the last step's output).
    pub fn output(&self) -> Option<&Template> {
        self.output.as_ref()
    }
}

/// Checks `workflow` and compiles its expressions.
pub fn check(workflow: Workflow) -> Result<Plan, Vec<Problem>> {
    let mut checker = Checker::default();
    let mut available = BTreeSet::new();
    checker.sequence(&workflow.steps, "/steps", Scope::Run, &mut available, 1);
    let output = match &workflow.output {
        None => None,
        Some(template) => checker.template(template, "/output", None, Scope::Run, &available),
    };
    if checker.problems.is_empty() {
        Ok(Plan {
            workflow,
            steps: checker.compiled,
            output,
        })
    } else {
        checker.problems.truncate(MAX_PROBLEMS);
        Err(checker.problems)
    }
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
    ids: HashMap<String, String>,
    compiled: HashMap<String, Compiled>,
    count: usize,
}

impl Checker {
    fn problem(&mut self, step: Option<&str>, field: String, message: impl Into<String>) {
        self.problems.push(Problem {
            step: step.map(str::to_owned),
            field,
            message: message.into(),
        });
    }

    /// Steps in order: each sees what the ones before it made available.
    fn sequence(
        &mut self,
        steps: &[Step],
        at: &str,
        scope: Scope,
        available: &mut BTreeSet<String>,
        depth: usize,
    ) {
        if steps.is_empty() {
            self.problem(None, at.to_owned(), "at least one step is needed");
        }
        for (i, step) in steps.iter().enumerate() {
            let made = self.step(step, &format!("{at}/{i}"), scope, available, depth);
            available.extend(made);
        }
    }

    /// Checks one step; answers the ids it makes available to later steps (its own and
    /// those inside it).
    fn step(
        &mut self,
        step: &Step,
        at: &str,
        scope: Scope,
        available: &BTreeSet<String>,
        depth: usize,
    ) -> BTreeSet<String> {
        let id = step.id();
        self.count += 1;
        if self.count == MAX_STEPS + 1 {
            self.problem(
                Some(id),
                at.to_owned(),
                format!("a document holds at most {MAX_STEPS} steps"),
            );
        }
        if depth > MAX_DEPTH {
            self.problem(
                Some(id),
                at.to_owned(),
                format!("steps nest at most {MAX_DEPTH} levels deep"),
            );
            return BTreeSet::new();
        }
        self.id(id, at);
        let mut made = BTreeSet::from([id.to_owned()]);
        let mut compiled = Compiled::default();
        match step {
            Step::Skill(s) => {
                if let Some(requirement) = &s.version
                    && let Err(e) = parse_requirement(requirement)
                {
                    self.problem(
                        Some(id),
                        format!("{at}/version"),
                        format!("not a semver requirement: {e}"),
                    );
                }
                compiled.input = self.input(s.input.as_ref(), at, id, scope, available);
                self.retry(s.retry.as_ref(), at, id);
                self.timeout(s.timeout_ms, at, id);
            }
            Step::Agent(a) => {
                if !is_agent_name(&a.agent) {
                    self.problem(Some(id), format!("{at}/agent"), "an agent name: lowercase letters, digits and dashes, starting with a letter or digit, at most 63 characters");
                }
                compiled.input = self.input(a.input.as_ref(), at, id, scope, available);
                self.retry(a.retry.as_ref(), at, id);
                self.timeout(a.timeout_ms, at, id);
            }
            Step::Sequence(s) => {
                let mut inner = available.clone();
                self.sequence(
                    &s.steps,
                    &format!("{at}/steps"),
                    scope,
                    &mut inner,
                    depth + 1,
                );
                made.extend(inner.difference(available).cloned());
            }
            Step::Parallel(p) => {
                if p.branches.is_empty() || p.branches.len() > MAX_BRANCHES {
                    self.problem(
                        Some(id),
                        format!("{at}/branches"),
                        format!("1 to {MAX_BRANCHES} branches"),
                    );
                }
                if let crate::document::Join::Quorum(n) = p.join
                    && (n == 0 || n as usize > p.branches.len())
                {
                    self.problem(
                        Some(id),
                        format!("{at}/join"),
                        format!(
                            "a quorum is 1 to the number of branches ({})",
                            p.branches.len()
                        ),
                    );
                }
                self.timeout(p.timeout_ms, at, id);
                // Branches run at once: none sees another's steps.
                for (i, branch) in p.branches.iter().enumerate() {
                    made.extend(self.step(
                        branch,
                        &format!("{at}/branches/{i}"),
                        scope,
                        available,
                        depth + 1,
                    ));
                }
            }
            Step::Map(m) => {
                compiled.over =
                    self.expression(&m.over, &format!("{at}/over"), id, scope, available);
                if !(1..=64).contains(&m.concurrency) {
                    self.problem(Some(id), format!("{at}/concurrency"), "1 to 64");
                }
                self.timeout(m.timeout_ms, at, id);
                // The item's steps run once per item: outside the map only its own output
                // (theirs, in item order) is available.
                self.step(
                    &m.step,
                    &format!("{at}/step"),
                    Scope::MapItem,
                    available,
                    depth + 1,
                );
            }
            Step::Switch(s) => {
                if s.cases.is_empty() {
                    self.problem(
                        Some(id),
                        format!("{at}/cases"),
                        "at least one case is needed",
                    );
                }
                for (i, case) in s.cases.iter().enumerate() {
                    let expression = self.expression(
                        &case.when,
                        &format!("{at}/cases/{i}/when"),
                        id,
                        scope,
                        available,
                    );
                    compiled.conditions.extend(expression);
                    made.extend(self.step(
                        &case.step,
                        &format!("{at}/cases/{i}/step"),
                        scope,
                        available,
                        depth + 1,
                    ));
                }
                if let Some(default) = &s.default {
                    made.extend(self.step(
                        default,
                        &format!("{at}/default"),
                        scope,
                        available,
                        depth + 1,
                    ));
                }
            }
        }
        self.compiled.insert(id.to_owned(), compiled);
        made
    }

    fn id(&mut self, id: &str, at: &str) {
        let valid = id.len() <= 64
            && id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !RESERVED.contains(&id);
        if !valid {
            self.problem(Some(id), format!("{at}/id"), "an id is a letter or _ followed by letters, digits and _, at most 64 characters, and not a CEL reserved word");
        }
        if let Some(first) = self.ids.insert(id.to_owned(), at.to_owned()) {
            self.problem(
                Some(id),
                format!("{at}/id"),
                format!("the id is already used by the step at {first}"),
            );
        }
    }

    fn input(
        &mut self,
        input: Option<&Value>,
        at: &str,
        id: &str,
        scope: Scope,
        available: &BTreeSet<String>,
    ) -> Option<Template> {
        let default = Value::String("${input}".into());
        self.template(
            input.unwrap_or(&default),
            &format!("{at}/input"),
            Some(id),
            scope,
            available,
        )
    }

    fn template(
        &mut self,
        value: &Value,
        at: &str,
        step: Option<&str>,
        scope: Scope,
        available: &BTreeSet<String>,
    ) -> Option<Template> {
        match Template::compile(value, scope) {
            Err((below, message)) => {
                self.problem(step, format!("{at}{below}"), message);
                None
            }
            Ok(template) => {
                for missing in template.step_references().difference(available) {
                    self.unavailable(step, at, missing);
                }
                Some(template)
            }
        }
    }

    fn expression(
        &mut self,
        source: &str,
        at: &str,
        id: &str,
        scope: Scope,
        available: &BTreeSet<String>,
    ) -> Option<Expression> {
        match Expression::compile(source, scope) {
            Err(message) => {
                self.problem(Some(id), at.to_owned(), message);
                None
            }
            Ok(expression) => {
                for missing in expression.step_references().difference(available) {
                    self.unavailable(Some(id), at, missing);
                }
                Some(expression)
            }
        }
    }

    fn unavailable(&mut self, step: Option<&str>, at: &str, missing: &str) {
        self.problem(step, at.to_owned(), format!("steps.{missing} is not available here: expressions read only steps that have finished before them (earlier in an enclosing sequence)"));
    }

    fn retry(&mut self, policy: Option<&RetryPolicy>, at: &str, id: &str) {
        let Some(policy) = policy else { return };
        let at = format!("{at}/retry");
        if !(1..=20).contains(&policy.max_attempts) {
            self.problem(Some(id), format!("{at}/max_attempts"), "1 to 20");
        }
        if policy.initial_delay_ms > policy.max_delay_ms {
            self.problem(
                Some(id),
                format!("{at}/initial_delay_ms"),
                "at most max_delay_ms",
            );
        }
        if policy.max_delay_ms > 24 * 3_600_000 {
            self.problem(
                Some(id),
                format!("{at}/max_delay_ms"),
                "at most a day (86400000)",
            );
        }
        if !(policy.multiplier.is_finite() && (1.0..=10.0).contains(&policy.multiplier)) {
            self.problem(Some(id), format!("{at}/multiplier"), "1 to 10");
        }
        let distinct: HashSet<RetryOn> = policy.retry_on.iter().copied().collect();
        if distinct.len() != policy.retry_on.len() {
            self.problem(Some(id), format!("{at}/retry_on"), "each outcome once");
        }
    }

    fn timeout(&mut self, timeout_ms: Option<u64>, at: &str, id: &str) {
        if timeout_ms == Some(0) {
            self.problem(Some(id), format!("{at}/timeout_ms"), "at least 1");
        }
    }
}

/// A requirement as the registry reads it: empty or `latest` is any version.
fn parse_requirement(text: &str) -> Result<semver::VersionReq, semver::Error> {
    match text.trim() {
        "" | "latest" => Ok(semver::VersionReq::STAR),
        other => semver::VersionReq::parse(other),
    }
}

/// Whether `name` is an agent name: lowercase letters, digits and `-`, starting with a letter
/// or digit, at most 63 characters (a URL segment of the A2A endpoint).
pub fn is_agent_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}
