//! Returns an output of `{"bytes": n}` bytes (a JSON string), to test the output limit.

wit_bindgen::generate!({ path: "../../../../wit", world: "omniforge:skill/tool" });

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::types::{Invocation, SkillError};

struct OutputFlood;

impl Guest for OutputFlood {
    fn invoke(_ctx: Invocation, input: String) -> Result<String, SkillError> {
        let input: serde_json::Value =
            serde_json::from_str(&input).map_err(|e| SkillError::InvalidInput(e.to_string()))?;
        let bytes = input.get("bytes").and_then(|v| v.as_u64()).unwrap_or(1024) as usize;
        let mut out = String::with_capacity(bytes + 2);
        out.push('"');
        out.extend(std::iter::repeat_n('a', bytes.saturating_sub(2)));
        out.push('"');
        Ok(out)
    }
}

export!(OutputFlood);
