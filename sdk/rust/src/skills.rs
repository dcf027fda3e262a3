//! Calling other skills through the host (since WIT 0.1.1). Needs `world = "skill"` and the callee
//! under `[permissions] skills` in `omniforge.toml`:
//!
//! ```toml
//! [permissions]
//! skills = { "examples/text-stats" = "^0.1" }
//! ```
//!
//! The callee runs in its own sandbox on the same tenant's behalf, and shares this
//! invocation's budget: it may burn the fuel this skill has left (less a small reserve kept
//! for this skill) and ends by this skill's deadline. Its error comes back as an [`Error`]:
//! the callee's own error unchanged, `denied` for a callee not granted, not installed, a cycle
//! or too deep a chain, `not-found` for a missing skill or version, `failed` when it ran out
//! of a limit or trapped. Returning it with `?` passes it on to this skill's caller.
//!
//! ```no_run
//! use omniforge_sdk::{Error, skills};
//! use serde_json::{Value, json};
//!
//! fn words(text: &str) -> Result<u64, Error> {
//!     let stats: Value = skills::invoke("examples/text-stats", &json!({ "text": text }))?;
//!     Ok(stats["words"].as_u64().unwrap_or(0))
//! }
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::omniforge::skill::skills as wit;

/// Invokes `name` (`namespace/name`) with `input` at the version its manifest grants, and
/// parses its output.
pub fn invoke<I: Serialize + ?Sized, O: DeserializeOwned>(
    name: &str,
    input: &I,
) -> Result<O, Error> {
    invoke_version(name, "", input)
}

/// Like [`invoke`], narrowing the manifest's version requirement with `requirement`
/// (`"=1.4.2"`, `"<2"`; empty: none).
pub fn invoke_version<I: Serialize + ?Sized, O: DeserializeOwned>(
    name: &str,
    requirement: &str,
    input: &I,
) -> Result<O, Error> {
    let input = serde_json::to_string(input).map_err(|e| {
        Error::failed(format!(
            "the input for {name} is not representable as JSON: {e}"
        ))
    })?;
    let output = invoke_json(name, requirement, &input)?;
    serde_json::from_str(&output)
        .map_err(|e| Error::failed(format!("the output of {name} does not fit: {e}")))
}

/// Invokes `name` with JSON text and answers its JSON text, unparsed.
pub fn invoke_json(name: &str, requirement: &str, input: &str) -> Result<String, Error> {
    wit::invoke(name, requirement, input).map_err(Error::from_wit)
}
