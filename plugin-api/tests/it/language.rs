//! The translator and speech-to-text vtables (ABI 1.1) end to end, through the deterministic test
//! plugins: results, failures and panics caught at the boundary, and the host's health counting.

use chime_plugin_api::host::{
    LoadedPlugin, PluginError, PluginKind, SpeechToTextPlugin, TranslatorPlugin,
};
use chime_plugin_api::language::TranslateRequest;

use crate::support::{GENEROUS, host_with_timeout, plugin_path};

fn translator(config: &str) -> TranslatorPlugin {
    let host = host_with_timeout(GENEROUS);
    let loaded = host
        .load(plugin_path("chime_test_translator"), config)
        .unwrap();
    assert!(host.translator().is_some());
    assert!(host.speech_to_text().is_none());
    match loaded {
        LoadedPlugin::Translator(translator) => translator,
        other => panic!("expected a translator, got {other:?}"),
    }
}

fn speech() -> SpeechToTextPlugin {
    let host = host_with_timeout(GENEROUS);
    match host
        .load(
            plugin_path("chime_test_speech_to_text"),
            r#"{"default_language": "en"}"#,
        )
        .unwrap()
    {
        LoadedPlugin::SpeechToText(speech) => speech,
        other => panic!("expected speech-to-text, got {other:?}"),
    }
}

fn request(texts: &[&str], source: Option<&str>, target: &str) -> TranslateRequest {
    TranslateRequest {
        texts: texts.iter().map(|t| (*t).to_owned()).collect(),
        source_language: source.map(str::to_owned),
        target_language: target.to_owned(),
    }
}

#[tokio::test]
async fn a_translator_translates_each_text_detecting_or_given_the_source() {
    let plugin = translator(r#"{"dictionary": {"zh>en": {"你好": "hello"}}}"#);
    assert_eq!(plugin.info().kind, PluginKind::Translator);
    assert_eq!(plugin.info().kind.as_str(), "translator");
    assert_eq!(plugin.info().name, "test-translator");
    assert_eq!(
        plugin
            .translate(request(&["你好", "世界", "hi"], None, "en"))
            .await
            .unwrap(),
        vec!["hello", "[zh>en] 世界", "[en>en] hi"]
    );
    assert_eq!(
        plugin
            .translate(request(&["你好"], Some("ja"), "en"))
            .await
            .unwrap(),
        vec!["[ja>en] 你好"]
    );
}

#[tokio::test]
async fn a_failing_or_panicking_translator_is_an_error_and_the_host_survives() {
    let plugin = translator("{}");
    let failed = plugin
        .translate(request(&["a", "!fail"], None, "en"))
        .await
        .unwrap_err();
    assert_eq!(
        failed,
        PluginError::CallFailed {
            name: "test-translator".to_owned(),
            status: chime_plugin_api::abi::CHIME_STATUS_FAILED,
            message: "cannot translate !fail".to_owned(),
        }
    );
    let panicked = plugin
        .translate(request(&["!panic"], None, "en"))
        .await
        .unwrap_err();
    assert_eq!(
        panicked,
        PluginError::Panicked {
            name: "test-translator".to_owned(),
            message: "plugin panicked: translator told to panic".to_owned(),
        }
    );
    assert_eq!(plugin.info().status.consecutive_failures, 2);
    assert_eq!(
        plugin
            .translate(request(&["ok"], None, "fr"))
            .await
            .unwrap(),
        vec!["[en>fr] ok"]
    );
    assert_eq!(plugin.info().status.consecutive_failures, 0);
    assert_eq!(plugin.info().status.total_failures, 2);
}

#[tokio::test]
async fn speech_to_text_reads_the_file_in_the_asked_or_default_language() {
    let plugin = speech();
    assert_eq!(plugin.info().kind.as_str(), "speech_to_text");
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("voice.m4a");
    let mut bytes = b"\0\0\0\x20ftypM4A \xff\xfe\n".to_vec();
    bytes.extend_from_slice("transcript:en=hello there\ntranscript:zh=你好\n".as_bytes());
    std::fs::write(&audio, bytes).unwrap();
    let path = audio.to_str().unwrap();
    assert_eq!(plugin.convert(path, None).await.unwrap(), "hello there");
    assert_eq!(plugin.convert(path, Some("zh")).await.unwrap(), "你好");
    assert_eq!(
        plugin.convert(path, Some("fr")).await.unwrap_err(),
        PluginError::CallFailed {
            name: "test-speech-to-text".to_owned(),
            status: chime_plugin_api::abi::CHIME_STATUS_FAILED,
            message: "no fr transcript in voice.m4a".to_owned(),
        }
    );
    let panicking = dir.path().join("panic.m4a");
    std::fs::write(&panicking, "transcript:en=!panic\n").unwrap();
    assert!(matches!(
        plugin.convert(panicking.to_str().unwrap(), None).await,
        Err(PluginError::Panicked { .. })
    ));
    assert_eq!(plugin.convert(path, None).await.unwrap(), "hello there");
}
