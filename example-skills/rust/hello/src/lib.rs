//! `hello`: the smallest useful skill. `{"name": "Ada"}` → `{"greeting": "Hello, Ada!"}`.

use omniforge_sdk::{Context, Error};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    name: String,
}

#[derive(Serialize)]
struct Output {
    greeting: String,
}

fn hello(_ctx: Context, input: Input) -> Result<Output, Error> {
    Ok(Output {
        greeting: format!("Hello, {}!", input.name),
    })
}

omniforge_sdk::skill!(hello);
