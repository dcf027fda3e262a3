//! Reads tenant secrets (`omniforge:skill/secrets`) and reports what it got without ever
//! showing a value: `{"names": ["api-token", "other"]}` answers, per name, the value's length
//! and FNV-1a hash, or the error kind and message. Its manifest declares `api-token` and
//! `db-password`; any other name is the host's to deny.
//!
//! Careless on request, to test the host's masking: `"careless": true` logs each value it
//! read and writes it to stderr, and then fails with it in its error message.

wit_bindgen::generate!({
    path: "../../../../wit",
    world: "omniforge:skill/skill",
    generate_all,
});

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::log::{Level, log};
use omniforge::skill::secrets;
use omniforge::skill::types::{Invocation, SkillError};
use serde_json::{Value, json};

struct SecretReader;

/// FNV-1a, 64-bit: enough to tell values apart in a test, and no crate to build.
fn fnv1a(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

impl Guest for SecretReader {
    fn invoke(_ctx: Invocation, input: String) -> Result<String, SkillError> {
        let input: Value =
            serde_json::from_str(&input).map_err(|e| SkillError::InvalidInput(e.to_string()))?;
        let names = input["names"]
            .as_array()
            .ok_or_else(|| SkillError::InvalidInput("names: a list of strings".into()))?;
        let careless = input["careless"].as_bool().unwrap_or(false);
        let mut answers = serde_json::Map::new();
        let mut read = Vec::new();
        for name in names.iter().filter_map(Value::as_str) {
            let answer = match secrets::get(name) {
                Ok(value) => {
                    let answer = json!({ "len": value.len(), "fnv1a": fnv1a(value.as_bytes()) });
                    read.push(value);
                    answer
                }
                Err(error) => {
                    let (kind, message) = match error {
                        SkillError::InvalidInput(m) => ("invalid-input", m),
                        SkillError::Denied(m) => ("denied", m),
                        SkillError::NotFound(m) => ("not-found", m),
                        SkillError::Unavailable(m) => ("unavailable", m),
                        SkillError::Failed(m) => ("failed", m),
                    };
                    json!({ "error": kind, "message": message })
                }
            };
            answers.insert(name.to_owned(), answer);
        }
        if careless && !read.is_empty() {
            for value in &read {
                log(Level::Warn, &format!("the value is {value}!"));
                eprintln!("stderr has {value} too");
            }
            return Err(SkillError::Failed(format!(
                "failed holding {}",
                read.join(", ")
            )));
        }
        Ok(Value::Object(answers).to_string())
    }
}

export!(SecretReader);
