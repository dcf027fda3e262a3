//! Blocks in a host call: `{"ms": n}` sleeps n milliseconds through WASI clocks (default:
//! an hour), so the guest uses no CPU while it waits. Deadlines must still end it.

wit_bindgen::generate!({ path: "../../../../wit", world: "omniforge:skill/tool" });

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::types::{Invocation, SkillError};

struct Sleeper;

impl Guest for Sleeper {
    fn invoke(_ctx: Invocation, input: String) -> Result<String, SkillError> {
        let input: serde_json::Value =
            serde_json::from_str(&input).map_err(|e| SkillError::InvalidInput(e.to_string()))?;
        let ms = input
            .get("ms")
            .and_then(|v| v.as_u64())
            .unwrap_or(3_600_000);
        std::thread::sleep(std::time::Duration::from_millis(ms));
        Ok(format!("{{\"slept_ms\": {ms}}}"))
    }
}

export!(Sleeper);
