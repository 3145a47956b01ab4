//! Translation and speech-to-text (api.md §4.2): `translate_text {texts, source_language?,
//! target_language}` → `{translate_result_list: [{source_text, target_text}]}` and
//! `convert_voice_to_text {msg_id, language?}` → `{text}`.
//!
//! The engine does neither itself: they are served by the plugins of kind translator and
//! speech-to-text (ABI 1.1, `docs/plugins.md`), whose calls run on the plugin host's call threads
//! with its timeout, never on an actor. This module validates the parameters, finds the plugin
//! (7013 without one), makes a sound message's audio local for the recogniser (the sender's own
//! file, else the account's media cache, downloaded through `download_elem`'s path when missing)
//! and maps the plugin's failures to the seed's codes (2117 / 2118, the plugin's message in
//! `desc`). Both need a logged-in account, as in Tencent's SDK.

use std::path::{Path, PathBuf};

use chime_plugin_api::host::PluginError;
use chime_plugin_api::language::TranslateRequest;
use chime_proto::codes::{self, ERR_TRANSLATE_TEXT_FAIL, ERR_VOICE_TO_TEXT_FAIL};
use chime_proto::pb::elem::Content;
use serde_json::{Value, json};

use super::params::*;
use crate::actors::Peers;
use crate::events::EventBus;
use crate::media::download::{self, ElemOf};
use crate::model::StoredElem;
use crate::{ApiError, Result, codec, media};

/// The methods this area answers.
pub(super) const METHODS: &[&str] = &["translate_text", "convert_voice_to_text"];

/// None works before login: both act for the account.
pub(super) const PRE_LOGIN: &[&str] = &[];

/// Calls one method of this area.
pub(super) async fn call(
    peers: &Peers,
    events: &EventBus,
    method: &str,
    p: Value,
) -> Result<Value> {
    match method {
        "translate_text" => translate_text(peers, &p).await,
        "convert_voice_to_text" => convert_voice_to_text(peers, events, &p).await,
        _ => Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    }
}

/// A language parameter: absent, null or empty is `None`.
fn language(p: &Value, field: &str) -> Result<Option<String>> {
    Ok(opt_str(p, field)?.filter(|l| !l.is_empty()))
}

/// The `translate_text` parameters.
fn translate_request(p: &Value) -> Result<TranslateRequest> {
    let texts = codec::string_list(p, "texts")?;
    if texts.is_empty() {
        return Err(ApiError::invalid_param(
            "texts (a non-empty list of strings) is required",
        ));
    }
    let target_language = language(p, "target_language")?
        .ok_or_else(|| ApiError::invalid_param("target_language (non-empty string) is required"))?;
    Ok(TranslateRequest {
        texts,
        source_language: language(p, "source_language")?,
        target_language,
    })
}

/// `{translate_result_list: [{source_text, target_text}]}`, in the order of the source texts
/// (the seed's `MessageTranslateTextResult` keys without their prefix).
fn translate_result(sources: &[String], targets: &[String]) -> Value {
    let list: Vec<Value> = sources
        .iter()
        .zip(targets)
        .map(|(source, target)| json!({"source_text": source, "target_text": target}))
        .collect();
    json!({ "translate_result_list": list })
}

/// A plugin call's failure as the API's error: `code` with the plugin's own message; a plugin
/// switched off after repeated failures is "not available" (7013).
fn plugin_failure(code: i32, error: PluginError) -> ApiError {
    match error {
        PluginError::CallFailed { message, .. } | PluginError::Panicked { message, .. } => {
            ApiError::new(code, message)
        }
        PluginError::Disabled { .. } => ApiError::new(codes::ERR_NOT_AVAILABLE, error.to_string()),
        other => ApiError::new(code, other.to_string()),
    }
}

fn no_plugin(kind: &str, method: &str) -> ApiError {
    ApiError::new(
        codes::ERR_NOT_AVAILABLE,
        format!("no {kind} plugin is loaded ({method} needs one)"),
    )
}

async fn translate_text(peers: &Peers, p: &Value) -> Result<Value> {
    let request = translate_request(p)?;
    let plugin = peers
        .plugins
        .translator()
        .ok_or_else(|| no_plugin("translator", "translate_text"))?;
    let sources = request.texts.clone();
    let targets = plugin
        .translate(request)
        .await
        .map_err(|e| plugin_failure(ERR_TRANSLATE_TEXT_FAIL, e))?;
    Ok(translate_result(&sources, &targets))
}

/// The sender's own copy of a sound elem's audio, when it is still there with its size.
fn local_sound(e: &StoredElem) -> Option<PathBuf> {
    let record = e.media.as_ref()?;
    record
        .files
        .iter()
        .filter(|f| f.variants.iter().any(|v| v == "sound"))
        .map(|f| (PathBuf::from(&f.path), f.size))
        .find(|(path, size)| std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == *size))
        .map(|(path, _)| path)
}

/// The file a sound message's audio is cached at, downloaded first when missing.
async fn cached_sound(
    peers: &Peers,
    events: &EventBus,
    msg_id: &str,
    e: &StoredElem,
    cache: &Path,
) -> Result<PathBuf> {
    let remote = download::remote_of(e, None)?;
    let cached = cache.join(&remote.uuid);
    // `download_elem`'s path: the uuid's checks, the cache hit, the signed URL, the uploader
    // plugin, resumption, progress events.
    download::download(
        peers,
        events,
        download::Request {
            msg_id: msg_id.to_owned(),
            elem_index: 0,
            image_type: None,
            path: cached.clone(),
        },
    )
    .await?;
    Ok(cached)
}

async fn convert_voice_to_text(peers: &Peers, events: &EventBus, p: &Value) -> Result<Value> {
    let msg_id = req_str(p, "msg_id")?;
    if msg_id.is_empty() {
        return Err(ApiError::invalid_param("msg_id is empty"));
    }
    let language = language(p, "language")?;
    let plugin = peers
        .plugins
        .speech_to_text()
        .ok_or_else(|| no_plugin("speech-to-text", "convert_voice_to_text"))?;
    let (elem, cache) = peers
        .msg
        .send(ElemOf {
            msg_id: msg_id.clone(),
            elem_index: 0,
        })
        .await
        .map_err(mailbox)??;
    if !matches!(media::content(&elem), Some(Content::Sound(_))) {
        return Err(ApiError::invalid_param(format!(
            "msg_id {msg_id} is not a sound message"
        )));
    }
    let audio = match local_sound(&elem) {
        Some(path) => path,
        None => cached_sound(peers, events, &msg_id, &elem, &cache).await?,
    };
    let text = plugin
        .convert(&audio.display().to_string(), language.as_deref())
        .await
        .map_err(|e| plugin_failure(ERR_VOICE_TO_TEXT_FAIL, e))?;
    Ok(json!({ "text": text }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translate_params_name_the_bad_field() {
        let err = |p: Value| translate_request(&p).unwrap_err();
        let e = err(json!({"target_language": "en"}));
        assert_eq!(
            (e.code, e.desc.as_str()),
            (6017, "texts (a non-empty list of strings) is required")
        );
        assert_eq!(
            err(json!({"texts": "hi", "target_language": "en"})).desc,
            "texts must be a list"
        );
        assert_eq!(
            err(json!({"texts": ["a", 1], "target_language": "en"})).desc,
            "texts must hold strings"
        );
        assert_eq!(
            err(json!({"texts": ["a"], "target_language": ""})).desc,
            "target_language (non-empty string) is required"
        );
        assert_eq!(
            err(json!({"texts": ["a"], "target_language": "en", "source_language": 3})).desc,
            "source_language must be a string"
        );
        let ok = translate_request(
            &json!({"texts": ["a", "b"], "source_language": "", "target_language": "en"}),
        )
        .unwrap();
        assert_eq!(
            ok,
            TranslateRequest {
                texts: vec!["a".into(), "b".into()],
                source_language: None,
                target_language: "en".into(),
            }
        );
    }

    #[test]
    fn the_result_pairs_each_source_with_its_translation_in_order() {
        let sources = vec!["你好".to_owned(), "你好".to_owned(), "世界".to_owned()];
        let targets = vec!["hello".to_owned(), "hello".to_owned(), "world".to_owned()];
        assert_eq!(
            translate_result(&sources, &targets),
            json!({"translate_result_list": [
                {"source_text": "你好", "target_text": "hello"},
                {"source_text": "你好", "target_text": "hello"},
                {"source_text": "世界", "target_text": "world"},
            ]})
        );
    }

    #[test]
    fn plugin_failures_keep_the_plugin_message_and_disabled_is_not_available() {
        let failed = plugin_failure(
            ERR_TRANSLATE_TEXT_FAIL,
            PluginError::CallFailed {
                name: "t".into(),
                status: 1,
                message: "no such language".into(),
            },
        );
        assert_eq!(
            (failed.code, failed.desc.as_str()),
            (2117, "no such language")
        );
        let panicked = plugin_failure(
            ERR_VOICE_TO_TEXT_FAIL,
            PluginError::Panicked {
                name: "s".into(),
                message: "plugin panicked: boom".into(),
            },
        );
        assert_eq!(
            (panicked.code, panicked.desc.as_str()),
            (2118, "plugin panicked: boom")
        );
        let disabled = plugin_failure(
            ERR_TRANSLATE_TEXT_FAIL,
            PluginError::Disabled {
                name: "t".into(),
                failures: 3,
                last_error: "x".into(),
            },
        );
        assert_eq!(disabled.code, 7013);
        let timed_out = plugin_failure(
            ERR_TRANSLATE_TEXT_FAIL,
            PluginError::TimedOut {
                name: "t".into(),
                timeout: std::time::Duration::from_secs(5),
            },
        );
        assert_eq!(
            (timed_out.code, timed_out.desc.as_str()),
            (2117, "plugin t: call timed out after 5s")
        );
    }
}
