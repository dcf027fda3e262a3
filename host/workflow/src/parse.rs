//! Reading a document from JSON or YAML text, or from a JSON value, into [`Workflow`], with
//! errors that point at the field.

use serde_json::Value;

use serde::Deserialize;

use crate::document::{
    AgentStep, MapStep, ParallelStep, SequenceStep, SkillStep, Step, SwitchStep, Workflow,
};
use crate::validate::{Plan, Problem, check};

/// How a document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML (1.2; anchors and aliases within a budget).
    Yaml,
}

impl Format {
    /// The format a file name suggests: `.yaml` and `.yml` are YAML, anything else JSON.
    pub fn of_path(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            _ => Format::Json,
        }
    }
}

/// The largest document read, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Reads `text` as a JSON value.
pub fn value_of(text: &str, format: Format) -> Result<Value, Vec<Problem>> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(vec![whole(format!(
            "the document is larger than {MAX_DOCUMENT_BYTES} bytes"
        ))]);
    }
    match format {
        Format::Json => {
            serde_json::from_str(text).map_err(|e| vec![whole(format!("not JSON: {e}"))])
        }
        Format::Yaml => {
            serde_saphyr::from_str(text).map_err(|e| vec![whole(format!("not YAML: {e}"))])
        }
    }
}

fn whole(message: String) -> Problem {
    Problem {
        step: None,
        field: String::new(),
        message,
    }
}

/// Reads a JSON value as a document (types only; [`check`] does the rest).
pub fn from_value(value: &Value) -> Result<Workflow, Vec<Problem>> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let pointer = pointer_of(e.path());
        let located = value
            .pointer(&pointer)
            .filter(|at| at.get("kind").is_some())
            .and_then(|step| locate(step, &pointer));
        vec![located.unwrap_or_else(|| Problem {
            step: step_at(value, &pointer),
            field: pointer,
            message: e.into_inner().to_string(),
        })]
    })
}

/// The problem inside `step` (at `at`), which does not read as a [`Step`]. serde reads a
/// tagged step as a whole, so its error stops at the step; this descends to the innermost
/// step that fails, then reads that step's own fields as its kind's type to find the field.
fn locate(step: &Value, at: &str) -> Option<Problem> {
    for (below, child) in child_steps(step) {
        if Step::deserialize(child).is_err() {
            return locate(child, &format!("{at}{below}"));
        }
    }
    let id = step.get("id").and_then(Value::as_str).map(str::to_owned);
    let mut fields = step.as_object()?.clone();
    let kind = fields.remove("kind")?;
    let fields = Value::Object(fields);
    fn own<T: serde::de::DeserializeOwned>(fields: &Value) -> Option<(String, String)> {
        serde_path_to_error::deserialize::<_, T>(fields)
            .err()
            .map(|e| (pointer_of(e.path()), e.into_inner().to_string()))
    }
    let (below, message) = match kind.as_str()? {
        "skill" => own::<SkillStep>(&fields),
        "sequence" => own::<SequenceStep>(&fields),
        "parallel" => own::<ParallelStep>(&fields),
        "map" => own::<MapStep>(&fields),
        "switch" => own::<SwitchStep>(&fields),
        "agent" => own::<AgentStep>(&fields),
        _ => None,
    }?;
    Some(Problem {
        step: id,
        field: format!("{at}{below}"),
        message,
    })
}

/// The steps directly inside a step as written, with their pointers below it.
fn child_steps(step: &Value) -> Vec<(String, &Value)> {
    let mut children = Vec::new();
    for list in ["steps", "branches"] {
        if let Some(Value::Array(items)) = step.get(list) {
            children.extend(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (format!("/{list}/{i}"), s)),
            );
        }
    }
    for one in ["step", "default"] {
        if let Some(child) = step.get(one) {
            children.push((format!("/{one}"), child));
        }
    }
    if let Some(Value::Array(cases)) = step.get("cases") {
        for (i, case) in cases.iter().enumerate() {
            if let Some(child) = case.get("step") {
                children.push((format!("/cases/{i}/step"), child));
            }
        }
    }
    children
}

/// Reads and checks a document: what `omniforge workflow validate` and saving an agent do
/// before the skills are resolved.
pub fn plan(text: &str, format: Format) -> Result<Plan, Vec<Problem>> {
    let value = value_of(text, format)?;
    check(from_value(&value)?)
}

/// A serde path as a JSON pointer.
fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    pointer
}

/// The id of the innermost step on the way to `pointer`.
fn step_at(document: &Value, pointer: &str) -> Option<String> {
    let mut step = None;
    let mut at = document;
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        at = match at {
            Value::Object(fields) => fields.get(&token)?,
            Value::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return step,
        };
        if let Some(Value::String(id)) = at.get("id")
            && at.get("kind").is_some()
        {
            step = Some(id.clone());
        }
    }
    step
}
