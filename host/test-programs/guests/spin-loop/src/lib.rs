//! Burns CPU. `{"iterations": n}` runs n rounds of an integer hash and returns the result;
//! without `iterations` it never stops. Used for fuel and deadline tests and the metering
//! benchmark.

wit_bindgen::generate!({ path: "../../../../wit", world: "omniforge:skill/tool" });

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::types::{Invocation, SkillError};

struct SpinLoop;

impl Guest for SpinLoop {
    fn invoke(_ctx: Invocation, input: String) -> Result<String, SkillError> {
        let input: serde_json::Value =
            serde_json::from_str(&input).map_err(|e| SkillError::InvalidInput(e.to_string()))?;
        let iterations = input.get("iterations").and_then(serde_json::Value::as_u64);
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut done: u64 = 0;
        while iterations.is_none_or(|n| done < n) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            done = std::hint::black_box(done + 1);
        }
        Ok(format!("{{\"state\": {state}, \"iterations\": {done}}}"))
    }
}

export!(SpinLoop);
