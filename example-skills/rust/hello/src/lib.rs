//! `hello`: the smallest useful skill. `{"name": "Ada"}` → `{"greeting": "Hello, Ada!"}`.

wit_bindgen::generate!({ path: "../../../wit", world: "omniforge:skill/tool" });

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::types::{Invocation, SkillError};

#[derive(serde::Deserialize)]
struct Input {
    name: String,
}

#[derive(serde::Serialize)]
struct Output {
    greeting: String,
}

struct Hello;

impl Guest for Hello {
    fn invoke(_ctx: Invocation, input: String) -> Result<String, SkillError> {
        let input: Input = serde_json::from_str(&input)
            .map_err(|e| SkillError::InvalidInput(format!("expected {{\"name\": string}}: {e}")))?;
        let output = Output {
            greeting: format!("Hello, {}!", input.name),
        };
        serde_json::to_string(&output).map_err(|e| SkillError::Failed(e.to_string()))
    }
}

export!(Hello);
