//! The profanity-filter plugin (content-filter kind).
//!
//! Loads word lists (one term a line, any language) from its config, compiles them into one
//! Aho-Corasick automaton, and judges message text in one pass after normalising case, full-width
//! forms and separators inserted to evade it (see [`normalize`]). Matches in spaced scripts must be
//! whole words; Chinese, Japanese and Korean terms match anywhere (see [`matcher`]).
//!
//! Config (`plugins: [{path, config}]` in the engine config):
//!
//! ```json
//! {"word_lists": ["wordlists/en.txt", "wordlists/zh.txt"], "words": [],
//!  "action": "replace", "replacement": "*",
//!  "filter_custom_description": false, "filter_incoming": false}
//! ```
//!
//! `replace` stars exactly the matched original characters (separators inside a match included);
//! `block` refuses an outgoing text and the engine answers 80001. Received text, when
//! `filter_incoming` is on, is always replaced: it was already sent.
//!
//! The crate is also an `rlib` so its matcher can be benchmarked and unit-tested directly; the
//! engine only ever loads the `cdylib` by path.

pub mod config;
pub mod matcher;
pub mod normalize;

use std::cell::RefCell;

use chime_plugin_api::{
    ContentFilter, ContentKind, Direction, FilterOutcome, PluginCallError, export_content_filter,
};

use crate::config::{Action, Config};
use crate::matcher::{Matcher, Scratch, Span};

thread_local! {
    /// Per-thread buffers: the host calls one instance from several threads at once.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// One configured filter.
#[derive(Debug)]
pub struct ProfanityFilter {
    matcher: Matcher,
    config: Config,
}

impl ProfanityFilter {
    /// Builds a filter from a parsed config.
    pub fn from_config(config: Config) -> Result<Self, String> {
        let terms = config.terms()?;
        let matcher = Matcher::new(&terms)?;
        Ok(Self { matcher, config })
    }

    /// The number of distinct terms after normalisation.
    pub fn term_count(&self) -> usize {
        self.matcher.term_count()
    }

    /// Replaces every match in `text`, or answers `None` when nothing matched.
    pub fn censor(&self, text: &str) -> Option<String> {
        let spans = SCRATCH.with(|scratch| self.matcher.find(text, &mut scratch.borrow_mut()));
        if spans.is_empty() {
            return None;
        }
        Some(self.replace(text, &spans))
    }

    /// How many (non-overlapping) matches `text` contains.
    pub fn count_matches(&self, text: &str) -> usize {
        SCRATCH.with(|scratch| self.matcher.find(text, &mut scratch.borrow_mut()).len())
    }

    fn replace(&self, text: &str, spans: &[Span]) -> String {
        let replacement = &self.config.replacement;
        let per_char = replacement.chars().count() == 1;
        let mut out = String::with_capacity(text.len() + 8);
        let mut next = 0;
        for span in spans {
            out.push_str(&text[next..span.start]);
            if per_char {
                for _ in text[span.start..span.end].chars() {
                    out.push_str(replacement);
                }
            } else {
                out.push_str(replacement);
            }
            next = span.end;
        }
        out.push_str(&text[next..]);
        out
    }
}

impl ContentFilter for ProfanityFilter {
    fn create(config_json: &str) -> Result<Self, PluginCallError> {
        let config = Config::parse(config_json).map_err(PluginCallError::invalid)?;
        Self::from_config(config).map_err(PluginCallError::invalid)
    }

    fn filter(
        &self,
        text: &str,
        direction: Direction,
        content: ContentKind,
    ) -> Result<FilterOutcome, PluginCallError> {
        let applies = match content {
            ContentKind::Text => true,
            ContentKind::CustomDescription => self.config.filter_custom_description,
            ContentKind::Other(_) => false,
        };
        if !applies || (direction == Direction::Incoming && !self.config.filter_incoming) {
            return Ok(FilterOutcome::Pass);
        }
        let block = direction == Direction::Outgoing && self.config.action == Action::Block;
        if block {
            let found = self.count_matches(text);
            return Ok(if found == 0 {
                FilterOutcome::Pass
            } else {
                FilterOutcome::Blocked {
                    reason: format!("content blocked by the profanity filter ({found} match(es))"),
                }
            });
        }
        Ok(match self.censor(text) {
            None => FilterOutcome::Pass,
            Some(replaced) => FilterOutcome::Replaced(replaced),
        })
    }
}

export_content_filter!(ProfanityFilter, "profanity-filter");
