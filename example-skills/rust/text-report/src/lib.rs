//! `examples/text-report`: a skill that composes two others through the host. It calls
//! `examples/markdown-to-text` for the document's plain text and headings, then
//! `examples/text-stats` on that text, and reports both. Either callee's error (a Markdown
//! document too large, say) passes through to the caller unchanged with `?`.

use omniforge_sdk::{Context, Error, log, skills};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Input {
    markdown: String,
    #[serde(default = "default_top")]
    top: u32,
}

fn default_top() -> u32 {
    3
}

/// What `examples/markdown-to-text` answers (the fields this skill uses).
#[derive(Deserialize)]
struct Plain {
    text: String,
    headings: Vec<Heading>,
}

#[derive(Deserialize, Serialize)]
struct Heading {
    level: u8,
    text: String,
}

/// What `examples/text-stats` answers (the fields this skill uses).
#[derive(Deserialize)]
struct Stats {
    words: u64,
    sentences: u64,
    top_words: Vec<Value>,
}

#[derive(Serialize)]
struct Report {
    headings: Vec<Heading>,
    words: u64,
    sentences: u64,
    top_words: Vec<Value>,
}

fn report(ctx: Context, input: Input) -> Result<Report, Error> {
    let plain: Plain = skills::invoke(
        "examples/markdown-to-text",
        &json!({ "markdown": input.markdown }),
    )?;
    let stats: Stats = skills::invoke(
        "examples/text-stats",
        &json!({ "text": plain.text, "top": input.top }),
    )?;
    log::info(&format!(
        "reported {} words under {} headings for {}",
        stats.words,
        plain.headings.len(),
        ctx.request_id
    ));
    Ok(Report {
        headings: plain.headings,
        words: stats.words,
        sentences: stats.sentences,
        top_words: stats.top_words,
    })
}

omniforge_sdk::skill!(report);
