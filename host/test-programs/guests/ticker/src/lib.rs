//! Writes log lines over time: `{"lines": n, "every_ms": m}` logs `tick 1` … `tick n` at
//! info level, sleeping m milliseconds before each (defaults 10 and 100), then returns how
//! many it wrote with the task and attempt it ran as (`omniforge:skill/context`). A task's
//! event stream has something to follow while it runs.

wit_bindgen::generate!({ path: "../../../../wit", world: "omniforge:skill/tool" });

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::context;
use omniforge::skill::log::{Level, log};
use omniforge::skill::types::{Invocation, SkillError};

struct Ticker;

impl Guest for Ticker {
    fn invoke(_ctx: Invocation, input: String) -> Result<String, SkillError> {
        let input: serde_json::Value =
            serde_json::from_str(&input).map_err(|e| SkillError::InvalidInput(e.to_string()))?;
        let number =
            |key: &str, default: u64| input.get(key).and_then(|v| v.as_u64()).unwrap_or(default);
        let (lines, every_ms) = (number("lines", 10), number("every_ms", 100));
        for i in 1..=lines {
            std::thread::sleep(std::time::Duration::from_millis(every_ms));
            log(Level::Info, &format!("tick {i}"));
        }
        let answer = serde_json::json!({
            "ticks": lines,
            "task": context::task_id(),
            "attempt": context::attempt(),
        });
        Ok(answer.to_string())
    }
}

export!(Ticker);
