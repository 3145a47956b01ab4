//! The language kinds (ABI 1.1): translator (`translate_text`) and speech-to-text
//! (`convert_voice_to_text`), the plugin side.
//!
//! Both cross the boundary as JSON in / JSON out, so later fields can be added without a new
//! vtable; this module owns those JSON shapes (the plugin glue below writes and reads them, the
//! host's handles in `host::language` read and write them through the same functions), and the
//! traits give plugin authors typed arguments instead. As for every kind, the generated `extern
//! "C"` functions catch panics at the boundary.

use std::ffi::c_void;

use serde_json::{Value, json};

use crate::abi::{ChimeBuf, ChimeStr};
use crate::plugin::{PluginCallError, create_with, destroy_with, guarded, instance_ref, utf8_arg};

/// A translator plugin (`CHIME_PLUGIN_KIND_TRANSLATOR`).
pub trait Translator: Send + Sync + Sized + 'static {
    /// Builds an instance from its JSON config.
    fn create(config_json: &str) -> Result<Self, PluginCallError>;

    /// Translates every text of `texts` into `target_language`, from `source_language` (`None`:
    /// detect it). Answers one translation per text, in order.
    fn translate(
        &self,
        texts: &[String],
        source_language: Option<&str>,
        target_language: &str,
    ) -> Result<Vec<String>, PluginCallError>;
}

/// A speech-to-text plugin (`CHIME_PLUGIN_KIND_SPEECH_TO_TEXT`).
pub trait SpeechToText: Send + Sync + Sized + 'static {
    /// Builds an instance from its JSON config.
    fn create(config_json: &str) -> Result<Self, PluginCallError>;

    /// Recognises the speech in the audio file at `audio_path`, in `language` (`None`: the
    /// plugin's default).
    fn convert(&self, audio_path: &str, language: Option<&str>) -> Result<String, PluginCallError>;
}

/// One `translate` request as it crosses the boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslateRequest {
    /// The source texts.
    pub texts: Vec<String>,
    /// The source language; `None` = detect.
    pub source_language: Option<String>,
    /// The target language.
    pub target_language: String,
}

impl TranslateRequest {
    /// `{"texts": [...], "source_language"?: "...", "target_language": "..."}`.
    pub fn to_json(&self) -> String {
        let mut request = json!({
            "texts": self.texts,
            "target_language": self.target_language,
        });
        if let Some(source) = &self.source_language {
            request["source_language"] = json!(source);
        }
        request.to_string()
    }

    /// Reads the request JSON (an empty `source_language` means "detect", like an absent one).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("request is not JSON: {e}"))?;
        let texts = string_list(&value, "texts")?;
        let source_language = match value.get("source_language") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("source_language is not a string".to_owned()),
        };
        let target_language = value
            .get("target_language")
            .and_then(Value::as_str)
            .ok_or("target_language (string) is missing")?
            .to_owned();
        Ok(Self {
            texts,
            source_language,
            target_language,
        })
    }
}

/// `{"target_texts": [...]}`.
pub fn translate_result_json(target_texts: &[String]) -> String {
    json!({ "target_texts": target_texts }).to_string()
}

/// Reads a translate result, which must hold exactly `expected` texts.
pub fn translate_result_from_json(text: &str, expected: usize) -> Result<Vec<String>, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("result is not JSON: {e}"))?;
    let texts = string_list(&value, "target_texts")?;
    if texts.len() != expected {
        return Err(format!(
            "{} target_texts for {expected} source texts",
            texts.len()
        ));
    }
    Ok(texts)
}

/// `{"language"?: "..."}`: the options of a `convert` call.
pub fn convert_options_json(language: Option<&str>) -> String {
    match language {
        Some(language) => json!({ "language": language }).to_string(),
        None => "{}".to_owned(),
    }
}

/// Reads `convert` options: the language, `None` when absent or empty.
pub fn convert_options_from_json(text: &str) -> Result<Option<String>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("options are not JSON: {e}"))?;
    match value.get("language") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err("language is not a string".to_owned()),
    }
}

/// `{"text": "..."}`.
pub fn convert_result_json(text: &str) -> String {
    json!({ "text": text }).to_string()
}

/// Reads a `convert` result.
pub fn convert_result_from_json(text: &str) -> Result<String, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("result is not JSON: {e}"))?;
    value
        .get("text")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "text (string) is missing".to_owned())
}

fn string_list(value: &Value, field: &str) -> Result<Vec<String>, String> {
    value
        .get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{field} (array of strings) is missing"))?
        .iter()
        .map(|t| {
            t.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{field} holds a non-string"))
        })
        .collect()
}

/// Writes a plugin-owned result buffer, or fails when the host passed null.
///
/// # Safety
/// `out` is null or valid for a write.
unsafe fn write_result(out: *mut ChimeBuf, json: String) -> Result<(), PluginCallError> {
    if out.is_null() {
        return Err(PluginCallError::invalid("null out_result_json"));
    }
    // SAFETY: checked non-null; the host passes a writable slot.
    unsafe { out.write(ChimeBuf::from_vec(json.into_bytes())) };
    Ok(())
}

/// Translator `create` for `T`.
///
/// # Safety
/// The ABI's `create` contract.
pub unsafe extern "C" fn translator_create<T: Translator>(
    config_json: ChimeStr,
    out_instance: *mut *mut c_void,
    out_error: *mut ChimeBuf,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { create_with::<T>(config_json, out_instance, out_error, T::create) }
}

/// Translator `destroy` for `T`.
///
/// # Safety
/// The ABI's `destroy` contract.
pub unsafe extern "C" fn translator_destroy<T: Translator>(instance: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { destroy_with::<T>(instance) }
}

/// Translator `translate` for `T`.
///
/// # Safety
/// The ABI's `translate` contract.
pub unsafe extern "C" fn translator_translate<T: Translator>(
    instance: *mut c_void,
    request_json: ChimeStr,
    out_result_json: *mut ChimeBuf,
    out_error: *mut ChimeBuf,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        guarded(out_error, || {
            let translator = instance_ref::<T>(instance)?;
            let request = TranslateRequest::from_json(utf8_arg(request_json, "request")?)
                .map_err(PluginCallError::invalid)?;
            let targets = translator.translate(
                &request.texts,
                request.source_language.as_deref(),
                &request.target_language,
            )?;
            if targets.len() != request.texts.len() {
                return Err(PluginCallError::failed(format!(
                    "the translator answered {} texts for {}",
                    targets.len(),
                    request.texts.len()
                )));
            }
            write_result(out_result_json, translate_result_json(&targets))
        })
    }
}

/// Speech-to-text `create` for `T`.
///
/// # Safety
/// The ABI's `create` contract.
pub unsafe extern "C" fn speech_create<T: SpeechToText>(
    config_json: ChimeStr,
    out_instance: *mut *mut c_void,
    out_error: *mut ChimeBuf,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { create_with::<T>(config_json, out_instance, out_error, T::create) }
}

/// Speech-to-text `destroy` for `T`.
///
/// # Safety
/// The ABI's `destroy` contract.
pub unsafe extern "C" fn speech_destroy<T: SpeechToText>(instance: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { destroy_with::<T>(instance) }
}

/// Speech-to-text `convert` for `T`.
///
/// # Safety
/// The ABI's `convert` contract.
pub unsafe extern "C" fn speech_convert<T: SpeechToText>(
    instance: *mut c_void,
    audio_path: ChimeStr,
    options_json: ChimeStr,
    out_result_json: *mut ChimeBuf,
    out_error: *mut ChimeBuf,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        guarded(out_error, || {
            let speech = instance_ref::<T>(instance)?;
            let path = utf8_arg(audio_path, "audio path")?;
            let language = convert_options_from_json(utf8_arg(options_json, "options")?)
                .map_err(PluginCallError::invalid)?;
            let text = speech.convert(path, language.as_deref())?;
            write_result(out_result_json, convert_result_json(&text))
        })
    }
}

/// Exports a [`Translator`] implementation as a plugin: `export_translator!(MyTranslator,
/// "my-translator");`.
#[macro_export]
macro_rules! export_translator {
    ($ty:ty, $name:literal) => {
        $crate::__export_plugin!(
            $crate::abi::CHIME_PLUGIN_KIND_TRANSLATOR,
            $name,
            $crate::abi::ChimeTranslatorVTable,
            $crate::abi::ChimeTranslatorVTable {
                struct_size: ::core::mem::size_of::<$crate::abi::ChimeTranslatorVTable>() as u32,
                create: Some($crate::language::translator_create::<$ty>),
                destroy: Some($crate::language::translator_destroy::<$ty>),
                translate: Some($crate::language::translator_translate::<$ty>),
                free_buf: Some($crate::plugin::free_buf),
            }
        );
    };
}

/// Exports a [`SpeechToText`] implementation as a plugin: `export_speech_to_text!(MyAsr,
/// "my-asr");`.
#[macro_export]
macro_rules! export_speech_to_text {
    ($ty:ty, $name:literal) => {
        $crate::__export_plugin!(
            $crate::abi::CHIME_PLUGIN_KIND_SPEECH_TO_TEXT,
            $name,
            $crate::abi::ChimeSpeechToTextVTable,
            $crate::abi::ChimeSpeechToTextVTable {
                struct_size: ::core::mem::size_of::<$crate::abi::ChimeSpeechToTextVTable>() as u32,
                create: Some($crate::language::speech_create::<$ty>),
                destroy: Some($crate::language::speech_destroy::<$ty>),
                convert: Some($crate::language::speech_convert::<$ty>),
                free_buf: Some($crate::plugin::free_buf),
            }
        );
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_translate_request_round_trips_and_empty_source_means_detect() {
        let request = TranslateRequest {
            texts: vec!["你好".to_owned(), "world".to_owned()],
            source_language: Some("zh".to_owned()),
            target_language: "en".to_owned(),
        };
        assert_eq!(TranslateRequest::from_json(&request.to_json()), Ok(request));
        let detect = TranslateRequest::from_json(
            r#"{"texts": ["a"], "source_language": "", "target_language": "fr"}"#,
        )
        .unwrap();
        assert_eq!(detect.source_language, None);
        assert_eq!(
            TranslateRequest::from_json(r#"{"texts": [1], "target_language": "fr"}"#),
            Err("texts holds a non-string".to_owned())
        );
        assert_eq!(
            TranslateRequest::from_json(r#"{"texts": []}"#),
            Err("target_language (string) is missing".to_owned())
        );
    }

    #[test]
    fn a_translate_result_must_hold_one_text_per_source() {
        let json = translate_result_json(&["hello".to_owned(), "world".to_owned()]);
        assert_eq!(json, r#"{"target_texts":["hello","world"]}"#);
        assert_eq!(
            translate_result_from_json(&json, 2),
            Ok(vec!["hello".to_owned(), "world".to_owned()])
        );
        assert_eq!(
            translate_result_from_json(&json, 3),
            Err("2 target_texts for 3 source texts".to_owned())
        );
    }

    #[test]
    fn convert_options_and_result_round_trip() {
        assert_eq!(convert_options_json(None), "{}");
        assert_eq!(
            convert_options_from_json(&convert_options_json(Some("zh"))),
            Ok(Some("zh".to_owned()))
        );
        assert_eq!(convert_options_from_json(r#"{"language": ""}"#), Ok(None));
        assert_eq!(convert_options_from_json(""), Ok(None));
        assert_eq!(
            convert_result_from_json(&convert_result_json("hi there")),
            Ok("hi there".to_owned())
        );
        assert_eq!(
            convert_result_from_json("{}"),
            Err("text (string) is missing".to_owned())
        );
    }
}
