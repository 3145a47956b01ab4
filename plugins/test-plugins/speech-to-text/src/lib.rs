//! Test fixture: a deterministic speech-to-text plugin, so the engine's `convert_voice_to_text`
//! can be tested end to end through a real `cdylib` and a real sound message.
//!
//! The "audio" carries its own transcripts: every line `transcript:<language>=<text>` anywhere in
//! the file (after whatever binary header it starts with) is the text in that language.
//! Config: `{"default_language": "en"}` (default `en`), used when the call names no language.
//!
//! A file without a transcript in the language fails (status FAILED, `no <language> transcript
//! in <file name>`); a transcript `!fail` fails, `!panic` panics inside the plugin.

use chime_plugin_api::{PluginCallError, SpeechToText, export_speech_to_text};
use serde_json::Value;

/// The transcript reader.
#[derive(Debug)]
pub struct TestSpeechToText {
    default_language: String,
}

/// The transcript in `language` embedded in `audio`.
fn transcript(audio: &[u8], language: &str) -> Option<String> {
    let marker = format!("transcript:{language}=");
    audio
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let at = line
                .windows(marker.len())
                .position(|w| w == marker.as_bytes())?;
            String::from_utf8(line[at + marker.len()..].to_vec()).ok()
        })
        .next()
}

impl SpeechToText for TestSpeechToText {
    fn create(config_json: &str) -> Result<Self, PluginCallError> {
        let config: Value = serde_json::from_str(config_json)
            .map_err(|error| PluginCallError::invalid(format!("bad config: {error}")))?;
        let default_language = config
            .get("default_language")
            .and_then(Value::as_str)
            .unwrap_or("en")
            .to_owned();
        Ok(Self { default_language })
    }

    fn convert(&self, audio_path: &str, language: Option<&str>) -> Result<String, PluginCallError> {
        let audio = std::fs::read(audio_path)
            .map_err(|error| PluginCallError::failed(format!("{audio_path}: {error}")))?;
        let language = language.unwrap_or(&self.default_language);
        let name = std::path::Path::new(audio_path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match transcript(&audio, language) {
            None => Err(PluginCallError::failed(format!(
                "no {language} transcript in {name}"
            ))),
            Some(text) if text == "!fail" => Err(PluginCallError::failed("recogniser failed")),
            Some(text) if text == "!panic" => panic!("speech-to-text told to panic"),
            Some(text) => Ok(text),
        }
    }
}

export_speech_to_text!(TestSpeechToText, "test-speech-to-text");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcripts_are_found_by_language_after_a_binary_header() {
        let audio = b"\0\0\0\x20ftypM4A \xff\nxx transcript:en=hello world\ntranscript:zh=\xe4\xbd\xa0\xe5\xa5\xbd\n";
        assert_eq!(transcript(audio, "en").as_deref(), Some("hello world"));
        assert_eq!(transcript(audio, "zh").as_deref(), Some("你好"));
        assert_eq!(transcript(audio, "fr"), None);
    }
}
