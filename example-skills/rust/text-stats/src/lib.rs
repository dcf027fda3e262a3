//! `text-stats`: counts characters, words, lines and sentences in `{"text": "..."}`, and lists
//! the most frequent words. A pure function, so it uses the `tool` world.

wit_bindgen::generate!({ path: "../../../wit", world: "omniforge:skill/tool" });

use std::collections::HashMap;

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::types::{Invocation, SkillError};

#[derive(serde::Deserialize)]
struct Input {
    text: String,
    /// How many of the most frequent words to return (default 5).
    #[serde(default = "default_top")]
    top: usize,
}

fn default_top() -> usize {
    5
}

#[derive(serde::Serialize)]
struct Output {
    characters: usize,
    bytes: usize,
    words: usize,
    lines: usize,
    sentences: usize,
    top_words: Vec<WordCount>,
}

#[derive(serde::Serialize)]
struct WordCount {
    word: String,
    count: usize,
}

struct TextStats;

impl Guest for TextStats {
    fn invoke(_ctx: Invocation, input: String) -> Result<String, SkillError> {
        let input: Input = serde_json::from_str(&input)
            .map_err(|e| SkillError::InvalidInput(format!("expected {{\"text\": string}}: {e}")))?;
        serde_json::to_string(&stats(&input.text, input.top))
            .map_err(|e| SkillError::Failed(e.to_string()))
    }
}

fn stats(text: &str, top: usize) -> Output {
    let mut frequency: HashMap<String, usize> = HashMap::new();
    let mut words = 0;
    for word in text.split_whitespace() {
        words += 1;
        let word: String = word
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        if !word.is_empty() {
            *frequency.entry(word).or_default() += 1;
        }
    }
    let mut top_words: Vec<WordCount> = frequency
        .into_iter()
        .map(|(word, count)| WordCount { word, count })
        .collect();
    // Most frequent first; ties in alphabetical order so the output is deterministic.
    top_words.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.word.cmp(&b.word)));
    top_words.truncate(top);
    Output {
        characters: text.chars().count(),
        bytes: text.len(),
        words,
        lines: text.lines().count(),
        sentences: text
            .split(['.', '!', '?'])
            .filter(|s| s.chars().any(char::is_alphanumeric))
            .count(),
        top_words,
    }
}

export!(TextStats);
