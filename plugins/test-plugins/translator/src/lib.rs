//! Test fixture: a deterministic translator plugin, so the engine's `translate_text` can be tested
//! end to end through a real `cdylib` without a web service.
//!
//! Config: `{"dictionary": {"<source>><target>": {"<text>": "<translation>"}}}`, e.g.
//! `{"zh>en": {"你好": "hello"}}`.
//!
//! Each text is translated on its own. Its source language is the request's, or (when absent)
//! detected by script: Han → `zh`, kana → `ja`, Hangul → `ko`, Cyrillic → `ru`, else `en`. A text
//! found in the dictionary of `<source>><target>` becomes its entry; any other becomes
//! `[<source>><target>] <text>`, which shows the language the plugin used. On command: a text
//! `!fail` fails the whole call (status FAILED, message `cannot translate !fail`), a text `!panic`
//! panics inside the plugin.

use std::collections::HashMap;

use chime_plugin_api::{PluginCallError, Translator, export_translator};
use serde_json::Value;

/// The dictionary translator.
#[derive(Debug)]
pub struct TestTranslator {
    /// `"<source>><target>"` → text → translation.
    dictionary: HashMap<String, HashMap<String, String>>,
}

/// The language of `text` by the first letter of a script we know.
fn detect(text: &str) -> &'static str {
    for c in text.chars() {
        match c {
            '\u{3040}'..='\u{30ff}' => return "ja",
            '\u{ac00}'..='\u{d7af}' | '\u{1100}'..='\u{11ff}' => return "ko",
            '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}' => return "zh",
            '\u{0400}'..='\u{04ff}' => return "ru",
            _ => {}
        }
    }
    "en"
}

impl Translator for TestTranslator {
    fn create(config_json: &str) -> Result<Self, PluginCallError> {
        let config: Value = serde_json::from_str(config_json)
            .map_err(|error| PluginCallError::invalid(format!("bad config: {error}")))?;
        let mut dictionary = HashMap::new();
        if let Some(pairs) = config.get("dictionary").and_then(Value::as_object) {
            for (pair, entries) in pairs {
                let entries = entries
                    .as_object()
                    .ok_or_else(|| PluginCallError::invalid(format!("dictionary {pair}")))?
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect();
                dictionary.insert(pair.clone(), entries);
            }
        }
        Ok(Self { dictionary })
    }

    fn translate(
        &self,
        texts: &[String],
        source_language: Option<&str>,
        target_language: &str,
    ) -> Result<Vec<String>, PluginCallError> {
        texts
            .iter()
            .map(|text| {
                match text.as_str() {
                    "!fail" => return Err(PluginCallError::failed("cannot translate !fail")),
                    "!panic" => panic!("translator told to panic"),
                    _ => {}
                }
                let source = source_language.unwrap_or_else(|| detect(text));
                let pair = format!("{source}>{target_language}");
                Ok(self
                    .dictionary
                    .get(&pair)
                    .and_then(|entries| entries.get(text))
                    .cloned()
                    .unwrap_or_else(|| format!("[{pair}] {text}")))
            })
            .collect()
    }
}

export_translator!(TestTranslator, "test-translator");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_by_script() {
        assert_eq!(detect("你好"), "zh");
        assert_eq!(detect("こんにちは"), "ja");
        assert_eq!(detect("안녕"), "ko");
        assert_eq!(detect("привет"), "ru");
        assert_eq!(detect("hello 1"), "en");
    }
}
