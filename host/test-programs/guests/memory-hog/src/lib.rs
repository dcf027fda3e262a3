//! Allocates memory without bound, touching every page, until the host refuses to grow its
//! linear memory. `{"mib": n}` stops after n MiB instead and reports how much it holds.

wit_bindgen::generate!({ path: "../../../../wit", world: "omniforge:skill/tool" });

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::types::{Invocation, SkillError};

struct MemoryHog;

impl Guest for MemoryHog {
    fn invoke(_ctx: Invocation, input: String) -> Result<String, SkillError> {
        let input: serde_json::Value =
            serde_json::from_str(&input).map_err(|e| SkillError::InvalidInput(e.to_string()))?;
        let stop_after = input.get("mib").and_then(serde_json::Value::as_u64);
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        while stop_after.is_none_or(|n| (hoard.len() as u64) < n) {
            hoard.push(vec![0xA5; 1024 * 1024]);
        }
        let total: usize = hoard.iter().map(Vec::len).sum();
        Ok(format!("{{\"held_bytes\": {total}}}"))
    }
}

export!(MemoryHog);
