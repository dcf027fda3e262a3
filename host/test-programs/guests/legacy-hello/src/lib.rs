//! `hello` built against WIT 0.1.0 (`../wit-0.1.0`), before 0.1.1 added `skills`: it imports
//! `omniforge:skill/log@0.1.0` and exports `omniforge:skill/handler@0.1.0`, so the tests can
//! prove that a 0.1.0 component still publishes and runs on a 0.1.1 host.

wit_bindgen::generate!({ path: "../wit-0.1.0", world: "omniforge:skill/tool" });

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::log::{Level, log};
use omniforge::skill::types::{Invocation, SkillError};

struct LegacyHello;

impl Guest for LegacyHello {
    fn invoke(ctx: Invocation, input: String) -> Result<String, SkillError> {
        let input: serde_json::Value =
            serde_json::from_str(&input).map_err(|e| SkillError::InvalidInput(e.to_string()))?;
        let name = input
            .get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("world");
        log(Level::Info, &format!("legacy greeting for {}", ctx.tenant));
        Ok(serde_json::json!({ "greeting": format!("Hello, {name}!") }).to_string())
    }
}

export!(LegacyHello);
