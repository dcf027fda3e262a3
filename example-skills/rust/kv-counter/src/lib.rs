//! `kv-counter`: counts how often it has been called for a key, in the tenant's key-value
//! store. `{"key": "visits"}` → `{"key": "visits", "count": 3}`. Needs `[permissions] kv = true`.

use omniforge_sdk::{Context, Error, kv, log};

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

fn count(_ctx: Context, input: Input) -> Result<Output, Error> {
    let count = kv::increment(&input.key, input.by)?;
    log::info(&format!("{} is now {count}", input.key));
    Ok(Output {
        key: input.key,
        count,
    })
}

omniforge_sdk::skill!(count);
