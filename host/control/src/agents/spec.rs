//! An agent's definition as users write it, and the checks that need nothing but the
//! definition itself.

use omniforge_types::SkillName;
use omniforge_workflow::{Problem, Workflow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The longest description, in characters.
const DESCRIPTION_MAX: usize = 4000;

/// The most skills an agent's card advertises.
const CARD_SKILLS_MAX: usize = 32;

/// An agent as a user writes it (the body of `POST /agents` and `PUT /agents/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Its name: lowercase letters, digits and `-`, unique among the tenant's agents; the
    /// last segment of its A2A URL.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$", min_length = 1, max_length = 63)]
    pub name: String,
    /// What it does (on its card).
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub description: String,
    /// What it runs: a workflow document (docs/workflows.md,
    /// `GET /api/v1/schemas/workflow.json`). Give this or `skill`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub workflow: Option<Value>,
    /// What it runs when it is one skill. Give this or `workflow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<SkillTarget>,
    /// The JSON Schema of a run's input (checked when a run starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<Value>,
    /// The JSON Schema of a run's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
    /// What its A2A agent card advertises.
    #[serde(default)]
    pub card: CardSpec,
    /// Whether its card is visible without credentials (runs always need them).
    #[serde(default)]
    pub public: bool,
}

/// The one skill an agent runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillTarget {
    /// `namespace/name`.
    #[schema(pattern = "^[^/]+/[^/]+$", min_length = 3, max_length = 200)]
    pub name: String,
    /// A semver requirement (default: the newest version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200)]
    pub version: Option<String>,
}

/// What an agent's card advertises beyond its name and description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardSpec {
    /// The abilities it lists (default: one, the agent itself).
    #[serde(default)]
    #[schema(max_items = 32)]
    pub skills: Vec<AdvertisedSkill>,
    /// Whether it offers streaming (`SendStreamingMessage`, `SubscribeToTask`); default true.
    #[serde(default = "yes")]
    pub streaming: bool,
}

impl Default for CardSpec {
    fn default() -> Self {
        Self {
            skills: Vec::new(),
            streaming: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// One ability on an agent's card (A2A's `AgentSkill`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvertisedSkill {
    /// A stable id.
    #[schema(min_length = 1, max_length = 64)]
    pub id: String,
    /// A human name.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// What it does.
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub description: String,
    /// Keywords.
    #[serde(default)]
    #[schema(max_items = 16)]
    pub tags: Vec<String>,
    /// Example prompts or inputs.
    #[serde(default)]
    #[schema(max_items = 16)]
    pub examples: Vec<String>,
}

/// A problem at `field` outside any step.
pub(crate) fn problem(field: &str, message: impl Into<String>) -> Problem {
    Problem {
        step: None,
        field: field.to_owned(),
        message: message.into(),
    }
}

impl AgentSpec {
    /// The workflow this agent runs, checked, or what is wrong with the definition on its
    /// own (skills are resolved by the caller).
    pub fn check(&self) -> Result<omniforge_workflow::Plan, Vec<Problem>> {
        let mut problems = Vec::new();
        if !omniforge_workflow::validate::is_agent_name(&self.name) {
            problems.push(problem(
                "/name",
                "lowercase letters, digits and -, starting with a letter or digit, at most 63 \
                 characters",
            ));
        }
        if self.description.chars().count() > DESCRIPTION_MAX {
            problems.push(problem(
                "/description",
                format!("at most {DESCRIPTION_MAX} characters"),
            ));
        }
        for (field, schema) in [
            ("/input_schema", &self.input_schema),
            ("/output_schema", &self.output_schema),
        ] {
            if let Some(schema) = schema
                && let Err(e) = jsonschema::validator_for(schema)
            {
                problems.push(problem(field, format!("not a JSON Schema: {e}")));
            }
        }
        if self.card.skills.len() > CARD_SKILLS_MAX {
            problems.push(problem(
                "/card/skills",
                format!("at most {CARD_SKILLS_MAX}"),
            ));
        }
        for (i, skill) in self.card.skills.iter().enumerate() {
            let at = format!("/card/skills/{i}");
            if skill.id.is_empty() || skill.id.len() > 64 {
                problems.push(problem(&format!("{at}/id"), "1 to 64 characters"));
            }
            if skill.name.is_empty() || skill.name.len() > 200 {
                problems.push(problem(&format!("{at}/name"), "1 to 200 characters"));
            }
            if skill.tags.len() > 16 || skill.examples.len() > 16 {
                problems.push(problem(&at, "at most 16 tags and 16 examples"));
            }
        }
        let workflow = match (&self.workflow, &self.skill) {
            (Some(_), Some(_)) | (None, None) => {
                problems.push(problem("/workflow", "give a workflow or a skill, not both"));
                None
            }
            (Some(document), None) => match omniforge_workflow::parse::from_value(document) {
                Ok(workflow) => Some(workflow),
                Err(found) => {
                    problems.extend(found.into_iter().map(|p| under("/workflow", p)));
                    None
                }
            },
            (None, Some(target)) => match target.name.parse::<SkillName>() {
                Ok(name) => Some(Workflow::single_skill(name, target.version.clone())),
                Err(e) => {
                    problems.push(problem("/skill/name", e.to_string()));
                    None
                }
            },
        };
        let plan = workflow.map(omniforge_workflow::validate::check);
        match plan {
            Some(Ok(plan)) if problems.is_empty() => Ok(plan),
            Some(Ok(_)) | None => Err(problems),
            Some(Err(found)) => {
                problems.extend(found.into_iter().map(|mut p| {
                    p.field = self.workflow_field(&p.field);
                    p
                }));
                Err(problems)
            }
        }
    }

    /// Where a field of the workflow (a JSON pointer into it) is in this definition: below
    /// `/workflow`, or for a single skill the field of `skill` it came from.
    pub(crate) fn workflow_field(&self, pointer: &str) -> String {
        if self.skill.is_none() {
            return format!("/workflow{pointer}");
        }
        match pointer.strip_prefix("/steps/0") {
            Some("/version") => "/skill/version".into(),
            Some("/skill") => "/skill/name".into(),
            _ => "/skill".into(),
        }
    }
}

/// `problem` with its field moved below `prefix`.
fn under(prefix: &str, mut problem: Problem) -> Problem {
    problem.field = format!("{prefix}{}", problem.field);
    problem
}
