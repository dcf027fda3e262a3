//! The published JSON Schema of workflow documents, derived from [`crate::document`].

use serde_json::Value;

use crate::document::Workflow;

/// Where the schema is published, relative to a server's base URL.
pub const SCHEMA_PATH: &str = "/api/v1/schemas/workflow.json";

/// The JSON Schema (draft 2020-12) of a workflow document. Expressions are strings to it;
/// what a schema cannot say (unique ids, expressions that compile) is in docs/workflows.md
/// and checked at save.
pub fn json_schema() -> Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(Workflow)).expect("a schema is JSON");
    if let Value::Object(fields) = &mut schema {
        fields.insert(
            "$id".into(),
            Value::String(format!("https://omniforge.dev{SCHEMA_PATH}")),
        );
    }
    schema
}
