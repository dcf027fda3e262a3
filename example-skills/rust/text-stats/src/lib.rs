//! `text-stats`: counts characters, words, lines and sentences in `{"text": "..."}`, and lists
//! the most frequent words. A pure function, so it uses the `tool` world.

use std::collections::HashMap;

use omniforge_sdk::{Context, Error};

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

fn text_stats(_ctx: Context, input: Input) -> Result<Output, Error> {
    Ok(stats(&input.text, input.top))
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

omniforge_sdk::skill!(text_stats);
