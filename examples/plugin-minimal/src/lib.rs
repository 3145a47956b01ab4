//! A minimal Chime plugin: a content filter that blocks outgoing text containing one configured
//! word. It is the example of `docs/plugins.md`; copy it to start a plugin of your own.
//!
//! Build: `cargo build -p chime-plugin-minimal` gives `target/debug/libchime_plugin_minimal.so`
//! (`.dylib` on macOS, `chime_plugin_minimal.dll` on Windows). Load it from the engine config:
//!
//! ```json
//! {"plugins": [{"path": "target/debug/libchime_plugin_minimal.so",
//!               "config": {"blocked_word": "spoiler"}}]}
//! ```

use chime_plugin_api::{
    ContentFilter, ContentKind, Direction, FilterOutcome, PluginCallError, export_content_filter,
};

/// The plugin instance: built from its JSON config by [`ContentFilter::create`].
#[derive(Debug)]
pub struct BlockWord {
    word: String,
}

impl ContentFilter for BlockWord {
    fn create(config_json: &str) -> Result<Self, PluginCallError> {
        let config: serde_json::Value = serde_json::from_str(config_json)
            .map_err(|error| PluginCallError::invalid(format!("config is not JSON: {error}")))?;
        let word = config
            .get("blocked_word")
            .and_then(|word| word.as_str())
            .filter(|word| !word.is_empty())
            .ok_or_else(|| PluginCallError::invalid("config needs a non-empty `blocked_word`"))?;
        Ok(Self {
            word: word.to_lowercase(),
        })
    }

    fn filter(
        &self,
        text: &str,
        direction: Direction,
        content: ContentKind,
    ) -> Result<FilterOutcome, PluginCallError> {
        if direction == Direction::Outgoing
            && content == ContentKind::Text
            && text.to_lowercase().contains(&self.word)
        {
            return Ok(FilterOutcome::Blocked {
                reason: format!("no {} please", self.word),
            });
        }
        Ok(FilterOutcome::Pass)
    }
}

// Generates `chime_plugin_entry`, the declaration and the vtable; catches panics at the boundary.
export_content_filter!(BlockWord, "block-word");
