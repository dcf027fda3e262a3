//! A skill's input as the caller sent it: JSON text passed to the guest unchanged (key order
//! and number spelling kept), checked once at the boundary; and the check of its output
//! against the output schema after it returns.
//!
//! The request body's parser accepts a value of any depth without recursing, but the schema
//! check needs the input as a tree, and deeper trees than [`MAX_INPUT_DEPTH`] are refused
//! there. So the depth is checked once, on the text, before anything else looks at it, and
//! every entry point refuses the same inputs with the same 4xx.

use serde_json::value::RawValue;

/// How deeply arrays and objects may nest in a skill's input: the deepest tree serde_json
/// builds (the schema check needs one), so every skill, with a schema or without, accepts
/// the same inputs.
pub const MAX_INPUT_DEPTH: usize = 127;

/// Why an input is refused before the skill runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// What is wrong.
    pub message: String,
    /// The JSON pointer of the offending value (`""`: the whole input).
    pub pointer: String,
}

/// Checks that `input` nests no deeper than [`MAX_INPUT_DEPTH`], scanning the text once
/// (strings skipped, nothing allocated).
pub fn check_depth(input: &RawValue) -> Result<(), InputError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for byte in input.get().bytes() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_INPUT_DEPTH {
                    return Err(InputError {
                        message: format!(
                            "the input nests arrays and objects deeper than {MAX_INPUT_DEPTH} levels"
                        ),
                        pointer: String::new(),
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The input as a tree, for the schema check. Only called on input [`check_depth`] passed.
pub fn parse(input: &RawValue) -> Result<serde_json::Value, InputError> {
    serde_json::from_str(input.get()).map_err(|e| InputError {
        message: format!("the input cannot be read: {e}"),
        pointer: String::new(),
    })
}

/// The first place where `value` breaks `schema`, if any. Valid values (the common case) are
/// checked without building errors.
fn first_violation(
    schema: &jsonschema::Validator,
    value: &serde_json::Value,
) -> Option<InputError> {
    if schema.is_valid(value) {
        return None;
    }
    schema.iter_errors(value).next().map(|error| InputError {
        pointer: error.instance_path().to_string(),
        message: error.to_string(),
    })
}

/// How a pointer reads in a message (`/` for the whole value).
fn shown(pointer: &str) -> &str {
    if pointer.is_empty() { "/" } else { pointer }
}

/// Checks `input` (already through [`check_depth`]) against the skill's input schema.
pub fn check_input(schema: &jsonschema::Validator, input: &RawValue) -> Result<(), InputError> {
    match first_violation(schema, &parse(input)?) {
        None => Ok(()),
        Some(violation) => Err(InputError {
            message: format!(
                "the input does not match the skill's schema at {:?}: {}",
                shown(&violation.pointer),
                violation.message
            ),
            pointer: violation.pointer,
        }),
    }
}

/// Where `output` breaks the skill's output schema, if it does (the first place). The
/// output schema is the skill's promise (wit/handler.wit): a violation is its failure.
pub fn check_output(schema: &jsonschema::Validator, output: &str) -> Result<(), InputError> {
    let value: serde_json::Value = serde_json::from_str(output).map_err(|e| InputError {
        message: format!("the output cannot be read as a tree: {e}"),
        pointer: String::new(),
    })?;
    match first_violation(schema, &value) {
        None => Ok(()),
        Some(violation) => Err(InputError {
            message: format!(
                "the skill's output does not match its output schema at {:?}: {}",
                shown(&violation.pointer),
                violation.message
            ),
            pointer: violation.pointer,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn depth_counts_containers_not_brackets_in_strings() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(check_depth(&raw(&deep(MAX_INPUT_DEPTH))).is_ok());
        assert!(check_depth(&raw(&deep(MAX_INPUT_DEPTH + 1))).is_err());
        assert!(parse(&raw(&deep(MAX_INPUT_DEPTH))).is_ok());
        let strings = format!(r#"{{"a": "{}", "b": "\"[[\\"}}"#, "[{".repeat(500));
        assert!(check_depth(&raw(&strings)).is_ok());
        let wide = format!("[{}]", vec!["{}"; 1000].join(","));
        assert!(check_depth(&raw(&wide)).is_ok());
    }

    #[test]
    fn schema_checks_name_the_first_place_that_breaks_the_schema() {
        let schema = jsonschema::validator_for(&serde_json::json!({
            "type": "object",
            "properties": {"n": {"type": "integer"}},
            "required": ["n"]
        }))
        .unwrap();
        assert!(check_input(&schema, &raw(r#"{"n": 3}"#)).is_ok());
        let wrong = check_input(&schema, &raw(r#"{"n": "three"}"#)).unwrap_err();
        assert_eq!(wrong.pointer, "/n");
        assert!(wrong.message.contains("at \"/n\""), "{}", wrong.message);
        let missing = check_output(&schema, "{}").unwrap_err();
        assert_eq!(missing.pointer, "");
        assert!(
            missing.message.contains("output schema at \"/\""),
            "{}",
            missing.message
        );
        assert!(check_output(&schema, r#"{"n": 1}"#).is_ok());
    }
}
