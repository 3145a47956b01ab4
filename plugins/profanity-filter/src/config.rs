//! The plugin's JSON config and its word lists.

use std::path::PathBuf;

use serde::Deserialize;

/// What to do with a text that contains a term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Replace the matched characters (default).
    #[default]
    Replace,
    /// Refuse the send (the engine answers 80001).
    Block,
}

fn default_replacement() -> String {
    "*".to_owned()
}

/// `{word_lists, words, action, replacement, filter_custom_description, filter_incoming}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Word list files: UTF-8, one term per line, blank lines and lines starting with `#`
    /// ignored. Relative paths are resolved against the process's current directory.
    #[serde(default)]
    pub word_lists: Vec<PathBuf>,
    /// Extra terms given inline.
    #[serde(default)]
    pub words: Vec<String>,
    /// `replace` (default) or `block`.
    #[serde(default)]
    pub action: Action,
    /// One character: it replaces every matched character. Anything longer (or empty): it
    /// replaces each whole match once. Default `*`.
    #[serde(default = "default_replacement")]
    pub replacement: String,
    /// Also filter custom elements' `description` (default false).
    #[serde(default)]
    pub filter_custom_description: bool,
    /// Also filter received text (default false). Received text is always replaced, never
    /// blocked: it has already been sent.
    #[serde(default)]
    pub filter_incoming: bool,
}

impl Config {
    /// Parses the config JSON.
    pub fn parse(json: &str) -> Result<Self, String> {
        let json = if json.trim().is_empty() { "{}" } else { json };
        serde_json::from_str(json)
            .map_err(|error| format!("invalid profanity-filter config: {error}"))
    }

    /// Every term: the inline ones, then each word list's lines.
    pub fn terms(&self) -> Result<Vec<String>, String> {
        let mut terms: Vec<String> = self.words.clone();
        for path in &self.word_lists {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read word list {}: {error}", path.display()))?;
            terms.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        Ok(terms)
    }
}
