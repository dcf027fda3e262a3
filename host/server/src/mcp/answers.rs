//! What a tool call answers: the skill's output as text and structured content, or a tool
//! result marked `isError` that a model can act on. The wording comes from the same problem
//! table as REST (`api::invoke::invoke_error`), so an error reads the same on both: its
//! slug, its detail, and for refusals which limit and when to retry. Only protocol problems
//! (an unknown tool, a failing server) are JSON-RPC errors.

use omniforge_control::catalog::ResolveError;
use omniforge_control::{InvokeError, Invoked};
use omniforge_types::SkillName;
use rmcp::ErrorData;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use serde_json::Value;

use super::tools::{self, Shape};
use crate::api::invoke::invoke_error;
use crate::error::ApiError;

/// The skill's output: JSON text, and structured content (wrapped when the tool's output
/// schema wraps it, or when it is not an object).
pub(crate) fn output(invoked: &Invoked, shape: Option<Shape>) -> CallToolResult {
    let output: Value = serde_json::from_str(invoked.output.get()).unwrap_or(Value::Null);
    let shape = shape.unwrap_or(if output.is_object() {
        Shape::Object
    } else {
        Shape::Wrapped
    });
    let mut result = CallToolResult::success(vec![ContentBlock::text(invoked.output.get())]);
    result.structured_content = Some(tools::structured(output, shape));
    result
}

/// An invocation that did not answer an output.
pub(crate) fn failed(error: InvokeError, skill: &SkillName) -> Result<CallToolResponse, ErrorData> {
    match error {
        InvokeError::Resolve(ResolveError::NotFound) => Err(ErrorData::invalid_params(
            format!("no tool named {:?}", super::tools::tool_name(skill)),
            None,
        )),
        InvokeError::Internal(cause) => Err(super::internal(&cause)),
        error => Ok(refused(&invoke_error(error, skill)).into()),
    }
}

/// Arguments that do not carry the skill's input.
pub(crate) fn invalid_arguments(message: &str) -> CallToolResult {
    error_result(format!("invalid-input: {message}"))
}

/// A problem of the REST table as a tool result.
pub(crate) fn refused(error: &ApiError) -> CallToolResult {
    error_result(error.message())
}

/// A tool result whose only content is `message`, marked as an error.
fn error_result(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}
