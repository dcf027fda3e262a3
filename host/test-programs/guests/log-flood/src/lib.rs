//! Floods the host's log: `{"messages": n, "bytes": m}` writes n messages of m bytes each
//! (default a million messages of 64 KiB), then returns how many it wrote.

wit_bindgen::generate!({ path: "../../../../wit", world: "omniforge:skill/tool" });

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::types::{Invocation, SkillError};

use omniforge::skill::log::{Level, log};

struct LogFlood;

impl Guest for LogFlood {
    fn invoke(_ctx: Invocation, input: String) -> Result<String, SkillError> {
        let input: serde_json::Value =
            serde_json::from_str(&input).map_err(|e| SkillError::InvalidInput(e.to_string()))?;
        let messages = input
            .get("messages")
            .and_then(|v| v.as_u64())
            .unwrap_or(1_000_000);
        let bytes = input
            .get("bytes")
            .and_then(|v| v.as_u64())
            .unwrap_or(64 * 1024) as usize;
        let message = "x".repeat(bytes);
        for _ in 0..messages {
            log(Level::Error, &message);
        }
        Ok(format!("{{\"written\": {messages}}}"))
    }
}

export!(LogFlood);
