//! Calls skills through the host (`omniforge:skill/skills`), for the composition tests.
//! Published under several names with different `[permissions] skills` grants, it forms
//! chains, cycles and trees.
//!
//! Input `{"chain": ["ns/b", "ns/c"], "catch": false, "requirement": "", "tail": {...}}`:
//! calls the first skill of `chain` with the rest of the chain (and the same `catch`,
//! `requirement` and `tail`); the last one gets `tail` as its input. It answers
//! `{"via": <this skill>, "answer": <the callee's output>}`, or with an empty chain
//! `{"end": <this skill>}`. A callee's error passes through as this skill's error, unless
//! `catch` is set: then the answer is `{"via": …, "error": {"kind": …, "message": …}}`.

wit_bindgen::generate!({
    path: "../../../../wit",
    world: "omniforge:skill/skill",
    generate_all,
});

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::skills;
use omniforge::skill::types::{Invocation, SkillError};
use serde_json::{Value, json};

struct Relay;

fn kind(error: &SkillError) -> (&'static str, &str) {
    match error {
        SkillError::InvalidInput(m) => ("invalid-input", m),
        SkillError::Denied(m) => ("denied", m),
        SkillError::NotFound(m) => ("not-found", m),
        SkillError::Unavailable(m) => ("unavailable", m),
        SkillError::Failed(m) => ("failed", m),
    }
}

impl Guest for Relay {
    fn invoke(ctx: Invocation, input: String) -> Result<String, SkillError> {
        let input: Value =
            serde_json::from_str(&input).map_err(|e| SkillError::InvalidInput(e.to_string()))?;
        let chain: Vec<String> = input
            .get("chain")
            .and_then(Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let Some((next, rest)) = chain.split_first() else {
            return Ok(json!({ "end": ctx.skill }).to_string());
        };
        let catch = input.get("catch").and_then(Value::as_bool).unwrap_or(false);
        let requirement = input
            .get("requirement")
            .and_then(Value::as_str)
            .unwrap_or("");
        let callee_input = if rest.is_empty() && input.get("tail").is_some() {
            input["tail"].clone()
        } else {
            json!({
                "chain": rest,
                "catch": catch,
                "requirement": requirement,
                "tail": input.get("tail").cloned().unwrap_or(Value::Null),
            })
        };
        match skills::invoke(next, requirement, &callee_input.to_string()) {
            Ok(output) => {
                let answer: Value = serde_json::from_str(&output)
                    .map_err(|e| SkillError::Failed(format!("the callee's output: {e}")))?;
                Ok(json!({ "via": ctx.skill, "answer": answer }).to_string())
            }
            Err(error) if catch => {
                let (kind, message) = kind(&error);
                Ok(
                    json!({ "via": ctx.skill, "error": { "kind": kind, "message": message } })
                        .to_string(),
                )
            }
            Err(error) => Err(error),
        }
    }
}

export!(Relay);
