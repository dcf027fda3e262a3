//! `kv-counter`: counts how often it has been called for a key, in the tenant's key-value
//! store. `{"key": "visits"}` → `{"key": "visits", "count": 3}`. Needs `[permissions] kv = true`.

wit_bindgen::generate!({ path: "../../../wit", world: "omniforge:skill/skill", generate_all });

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::kv::{self, KvError};
use omniforge::skill::log::{self, Level};
use omniforge::skill::types::{Invocation, SkillError};

#[derive(serde::Deserialize)]
struct Input {
    key: String,
    /// How much to add (default 1).
    #[serde(default = "one")]
    by: i64,
}

fn one() -> i64 {
    1
}

#[derive(serde::Serialize)]
struct Output {
    key: String,
    count: i64,
}

struct KvCounter;

impl Guest for KvCounter {
    fn invoke(_ctx: Invocation, input: String) -> Result<String, SkillError> {
        let input: Input = serde_json::from_str(&input)
            .map_err(|e| SkillError::InvalidInput(format!("expected {{\"key\": string}}: {e}")))?;
        let count = kv::increment(&input.key, input.by).map_err(|e| match e {
            KvError::Denied => SkillError::Denied("the key-value store was not granted".into()),
            KvError::TooLarge(limit) => SkillError::InvalidInput(limit),
            other => SkillError::Unavailable(format!("{other:?}")),
        })?;
        log::log(Level::Info, &format!("{} is now {count}", input.key));
        serde_json::to_string(&Output {
            key: input.key,
            count,
        })
        .map_err(|e| SkillError::Failed(e.to_string()))
    }
}

export!(KvCounter);
