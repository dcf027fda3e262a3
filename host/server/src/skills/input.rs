//! A skill's input as the caller sent it: JSON text passed to the guest unchanged (key order
//! and number spelling kept), checked once at the boundary.
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
}
