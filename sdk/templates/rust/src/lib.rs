//! `%%NAMESPACE%%/%%NAME%%`: greets someone by name. Replace this with your skill.

use omniforge_sdk::{Context, Error, log};
use serde::{Deserialize, Serialize};

/// The input, parsed from the caller's JSON (`omniforge.toml` holds its JSON Schema, which
/// the host checks first).
#[derive(Deserialize)]
struct Input {
    name: String,
}

/// The output, written back as JSON.
#[derive(Serialize)]
struct Output {
    greeting: String,
}

fn run(ctx: Context, input: Input) -> Result<Output, Error> {
    let name = input.name.trim();
    if name.is_empty() {
        return Err(Error::invalid_input("name must not be blank"));
    }
    log::info(&format!("greeting {name} (request {})", ctx.request_id));
    Ok(Output {
        greeting: format!("Hello, {name}!"),
    })
}

omniforge_sdk::skill!(run);
