//! A skill as an MCP tool: its name, description, schemas and annotations, and the way back
//! from a tool call's arguments to the skill's input.
//!
//! A skill `ns/name` is the tool `ns.name`: skill names use only lowercase letters, digits and
//! `-`, so the one `.` splits a tool name unambiguously, and MCP tool names allow `.`. MCP
//! requires a tool's input (and output) schema to describe an object; a skill whose input is
//! anything else is wrapped as `{"input": <the skill's input>}`.

use std::sync::Arc;

use omniforge_registry::{Manifest, World};
use omniforge_types::SkillName;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

/// The member a wrapped input or output travels in.
pub(crate) const WRAPPED: &str = "input";
/// The member a wrapped output travels in.
pub(crate) const WRAPPED_OUTPUT: &str = "output";

/// The tool name of `skill`.
pub(crate) fn tool_name(skill: &SkillName) -> String {
    format!("{}.{}", skill.namespace(), skill.name())
}

/// The skill a tool name stands for; `None` for a name no skill can have.
pub(crate) fn skill_name(tool: &str) -> Option<SkillName> {
    let (namespace, name) = tool.split_once('.')?;
    format!("{namespace}/{name}").parse().ok()
}

/// How a skill's input or output maps to a tool's object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The skill's schema describes an object: the tool's object is the skill's value.
    Object,
    /// Anything else: the value travels in one member of the tool's object.
    Wrapped,
}

/// The tool's schema for a skill schema (stored JSON text), and how values map.
pub(crate) fn object_schema(schema: Option<&str>, member: &str) -> (JsonObject, Shape) {
    let parsed: Option<Value> = schema.and_then(|text| serde_json::from_str(text).ok());
    match parsed {
        None => (
            // No schema: any object, passed through.
            json_object(json!({"type": "object"})),
            Shape::Object,
        ),
        Some(Value::Object(object)) if describes_object(&object) => (object, Shape::Object),
        Some(schema) => (
            json_object(json!({
                "type": "object",
                "properties": {member: schema},
                "required": [member],
                "additionalProperties": false,
            })),
            Shape::Wrapped,
        ),
    }
}

/// Whether a schema says its values are objects (`"type": "object"`, alone or as the only
/// type besides none), so that a tool can use it as is.
fn describes_object(schema: &JsonObject) -> bool {
    match schema.get("type") {
        Some(Value::String(kind)) => kind == "object",
        Some(Value::Array(kinds)) => kinds.len() == 1 && kinds[0] == "object",
        _ => false,
    }
}

fn json_object(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        _ => JsonObject::new(),
    }
}

/// How the input and output of one tool map to its skill's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shapes {
    /// The input.
    pub(crate) input: Shape,
    /// The output (`None`: the skill declares no output schema).
    pub(crate) output: Option<Shape>,
}

/// How values map for a skill version's schemas (stored JSON text).
pub(crate) fn shapes(input_schema: Option<&str>, output_schema: Option<&str>) -> Shapes {
    Shapes {
        input: object_schema(input_schema, WRAPPED).1,
        output: output_schema.map(|s| object_schema(Some(s), WRAPPED_OUTPUT).1),
    }
}

/// The tool for a skill's version: what `tools/list` shows.
pub(crate) fn tool(
    skill: &SkillName,
    manifest: &Manifest,
    input_schema: Option<&str>,
    output_schema: Option<&str>,
) -> Tool {
    let (input, _) = object_schema(input_schema, WRAPPED);
    let description = manifest.package.description.clone();
    let tool = Tool::new(tool_name(skill), description, Arc::new(input))
        .with_title(skill.to_string())
        .with_annotations(annotations(manifest));
    match output_schema {
        Some(schema) => {
            let (output, _) = object_schema(Some(schema), WRAPPED_OUTPUT);
            tool.with_raw_output_schema(Arc::new(output))
        }
        None => tool,
    }
}

/// What the manifest says about the tool's behaviour. A `tool`-world skill can only compute
/// and log: read-only, idempotent and closed-world. A `skill`-world one is read-only only
/// when it asks for nothing that could change state (no kv, no HTTP, no calls), and reaches
/// the outside world when it may make HTTP requests or use an LLM.
fn annotations(manifest: &Manifest) -> ToolAnnotations {
    let permissions = &manifest.permissions;
    let pure = manifest.skill.world == World::Tool || permissions.is_empty();
    let writes =
        !pure && (permissions.kv || !permissions.http.is_empty() || !permissions.skills.is_empty());
    let open = !pure && (!permissions.http.is_empty() || permissions.llm);
    ToolAnnotations::new()
        .read_only(!writes)
        .destructive(false)
        .idempotent(pure)
        .open_world(open)
}

/// The skill's input for a tool call's arguments.
pub(crate) fn input(arguments: Option<JsonObject>, shape: Shape) -> Result<Value, String> {
    let mut arguments = arguments.unwrap_or_default();
    match shape {
        Shape::Object => Ok(Value::Object(arguments)),
        Shape::Wrapped => arguments
            .remove(WRAPPED)
            .ok_or_else(|| format!("the arguments need an `{WRAPPED}` member: the skill's input")),
    }
}

/// The tool's structured content for a skill's output.
pub(crate) fn structured(output: Value, shape: Shape) -> Value {
    match shape {
        Shape::Object => output,
        Shape::Wrapped => json!({ WRAPPED_OUTPUT: output }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Manifest {
        toml::from_str(text).expect("a manifest")
    }

    const TOOL: &str = r#"
        [package]
        name = "examples/hello"
        version = "1.0.0"
        description = "Greets."
        license = "MIT"
        [skill]
        world = "tool"
    "#;

    #[test]
    fn names_map_both_ways_and_only_for_skill_names() {
        let skill: SkillName = "examples/hello-world".parse().unwrap();
        assert_eq!(tool_name(&skill), "examples.hello-world");
        assert_eq!(skill_name("examples.hello-world"), Some(skill));
        for bad in [
            "examples",
            "examples/hello",
            "a.b.c",
            "Ex.hello",
            ".hello",
            "a.",
        ] {
            assert_eq!(skill_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn object_schemas_are_used_as_they_are_and_others_are_wrapped() {
        let object = r#"{"type": "object", "properties": {"name": {"type": "string"}}}"#;
        let (schema, shape) = object_schema(Some(object), WRAPPED);
        assert_eq!(shape, Shape::Object);
        assert_eq!(
            Value::Object(schema),
            serde_json::from_str::<Value>(object).unwrap()
        );

        let (schema, shape) = object_schema(Some(r#"{"type": "string"}"#), WRAPPED);
        assert_eq!(shape, Shape::Wrapped);
        assert_eq!(schema["properties"]["input"], json!({"type": "string"}));
        assert_eq!(schema["required"], json!(["input"]));

        let (schema, shape) = object_schema(None, WRAPPED);
        assert_eq!(
            (Value::Object(schema), shape),
            (json!({"type": "object"}), Shape::Object)
        );

        let args = json!({"input": "text"}).as_object().cloned();
        assert_eq!(input(args, Shape::Wrapped), Ok(json!("text")));
        assert!(input(None, Shape::Wrapped).is_err());
        assert_eq!(input(None, Shape::Object), Ok(json!({})));
        assert_eq!(structured(json!(3), Shape::Wrapped), json!({"output": 3}));
    }

    #[test]
    fn annotations_follow_the_manifest() {
        let skill: SkillName = "examples/hello".parse().unwrap();
        let output = Some(r#"{"type": "string"}"#);
        let tool = tool(&skill, &manifest(TOOL), None, output);
        let hints = tool.annotations.expect("annotated");
        assert_eq!(hints.read_only_hint, Some(true));
        assert_eq!(hints.idempotent_hint, Some(true));
        assert_eq!(hints.open_world_hint, Some(false));
        assert_eq!(tool.description.as_deref(), Some("Greets."));
        assert_eq!(shapes(None, output).output, Some(Shape::Wrapped));
        assert!(tool.output_schema.is_some());

        let fetcher = manifest(&format!(
            "{}\n[permissions]\nhttp = [\"api.example.com\"]\n",
            TOOL.replace("world = \"tool\"", "world = \"skill\"")
        ));
        let hints = super::tool(&skill, &fetcher, None, None)
            .annotations
            .unwrap();
        assert_eq!(hints.read_only_hint, Some(false));
        assert_eq!(hints.open_world_hint, Some(true));
        assert_eq!(hints.idempotent_hint, Some(false));
    }
}
