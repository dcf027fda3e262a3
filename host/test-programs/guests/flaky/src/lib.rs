//! Fails on purpose, for the tests of retries and circuit breakers: every call counts itself
//! in the tenant's key-value store under `key`, and calls up to `fails` answer the
//! `unavailable` error; later ones answer `{"key": …, "call": n}`. `{"invalid": true}`
//! answers `invalid-input` (which no retry policy retries). Needs `[permissions] kv = true`.

wit_bindgen::generate!({
    path: "../../../../wit",
    world: "omniforge:skill/skill",
    generate_all,
});

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::kv;
use omniforge::skill::types::{Invocation, SkillError};

struct Flaky;

impl Guest for Flaky {
    fn invoke(_ctx: Invocation, input: String) -> Result<String, SkillError> {
        let input: serde_json::Value =
            serde_json::from_str(&input).map_err(|e| SkillError::InvalidInput(e.to_string()))?;
        if input.get("invalid").and_then(serde_json::Value::as_bool) == Some(true) {
            return Err(SkillError::InvalidInput("asked to refuse its input".into()));
        }
        let key = input.get("key").and_then(|v| v.as_str()).unwrap_or("flaky");
        let fails = input.get("fails").and_then(|v| v.as_i64()).unwrap_or(0);
        let call = kv::increment(key, 1).map_err(|e| SkillError::Failed(format!("kv: {e:?}")))?;
        if call <= fails {
            return Err(SkillError::Unavailable(format!(
                "call {call} of {key}: failing as asked ({fails} times)"
            )));
        }
        Ok(serde_json::json!({ "key": key, "call": call }).to_string())
    }
}

export!(Flaky);
