//! Translation and speech-to-text end to end (api.md §4.2, ABI 1.1): real server, real engines,
//! the deterministic test translator and speech-to-text plugins loaded by path (with the real
//! uploader, `plugins/upload`, for sound messages). Results, auto-detected and explicit source
//! languages, 7013 without a plugin, 2117 / 2118 with the plugin's message when it fails or
//! panics (the engine goes on), a sound message converted by its receiver (the audio comes from
//! the file store) and by its sender (its own file), 6017 for anything that is not one.

use std::path::Path;
use std::time::Duration;

use chime_tests::{TestClient, TestServer, plugin_library, send_c2c_text};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn translator() -> Value {
    json!({
        "path": plugin_library("chime-test-translator", "chime_test_translator"),
        "config": {"dictionary": {
            "zh>en": {"你好": "hello", "世界": "world"},
            "en>zh": {"hello": "你好"},
        }},
    })
}

fn speech_to_text() -> Value {
    json!({
        "path": plugin_library("chime-test-speech-to-text", "chime_test_speech_to_text"),
        "config": {"default_language": "en"},
    })
}

fn uploader() -> Value {
    json!({
        "path": plugin_library("chime-upload-plugin", "chime_upload_plugin"),
        "config": {"chunk_bytes": 64 * 1024},
    })
}

async fn client(server: &TestServer, plugins: Vec<Value>, user: &str) -> TestClient {
    let c = TestClient::with_config(server, json!({"plugins": plugins})).await;
    c.login(user).await;
    c
}

/// The error of a call that must fail: `(code, desc)`.
async fn error(c: &TestClient, method: &str, params: Value) -> (i32, String) {
    match c.call(method, params.clone()).await {
        Ok(v) => panic!("{method}({params}) succeeded with {v}, an error was expected"),
        Err(e) => (e.code, e.desc),
    }
}

/// A sound file the file store accepts (an M4A signature) whose body carries the transcripts the
/// test recogniser reads.
fn voice_file(dir: &Path, name: &str, transcripts: &[(&str, &str)]) -> String {
    let mut bytes = b"\0\0\0\x20ftypM4A ".to_vec();
    bytes.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 | 0x80));
    bytes.push(b'\n');
    for (language, text) in transcripts {
        bytes.extend_from_slice(format!("transcript:{language}={text}\n").as_bytes());
    }
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("writing the voice file");
    path.display().to_string()
}

#[tokio::test]
async fn translate_text_translates_every_text_with_a_detected_or_given_source() {
    let server = TestServer::start().await;
    let alice = client(&server, vec![translator()], "alice").await;

    let detected = alice
        .ok(
            "translate_text",
            json!({"texts": ["你好", "世界", "hello", "привет"], "target_language": "en"}),
        )
        .await;
    assert_eq!(
        detected,
        json!({"translate_result_list": [
            {"source_text": "你好", "target_text": "hello"},
            {"source_text": "世界", "target_text": "world"},
            {"source_text": "hello", "target_text": "[en>en] hello"},
            {"source_text": "привет", "target_text": "[ru>en] привет"},
        ]})
    );
    let explicit = alice
        .ok(
            "translate_text",
            json!({"texts": ["hello", "你好"], "source_language": "en", "target_language": "zh"}),
        )
        .await;
    assert_eq!(
        explicit,
        json!({"translate_result_list": [
            {"source_text": "hello", "target_text": "你好"},
            {"source_text": "你好", "target_text": "[en>zh] 你好"},
        ]})
    );
    // An empty source language means "detect", as an absent one.
    let empty_source = alice
        .ok(
            "translate_text",
            json!({"texts": ["你好"], "source_language": "", "target_language": "en"}),
        )
        .await;
    assert_eq!(
        empty_source["translate_result_list"][0]["target_text"],
        "hello"
    );

    let plugins = alice.ok("get_loaded_plugins", json!({})).await;
    assert_eq!(plugins["plugin_list"][0]["kind"], "translator");
    assert_eq!(plugins["plugin_list"][0]["name"], "test-translator");
}

#[tokio::test]
async fn translate_text_checks_its_params_and_needs_login() {
    let server = TestServer::start().await;
    let alice = TestClient::with_config(&server, json!({"plugins": [translator()]})).await;
    let good = json!({"texts": ["你好"], "target_language": "en"});
    assert_eq!(alice.err_code("translate_text", good.clone()).await, 6014);
    assert_eq!(
        alice
            .err_code("convert_voice_to_text", json!({"msg_id": "x"}))
            .await,
        6014
    );
    alice.login("alice").await;
    for (params, desc) in [
        (
            json!({"target_language": "en"}),
            "texts (a non-empty list of strings) is required",
        ),
        (
            json!({"texts": [], "target_language": "en"}),
            "texts (a non-empty list of strings) is required",
        ),
        (
            json!({"texts": ["a", 2], "target_language": "en"}),
            "texts must hold strings",
        ),
        (
            json!({"texts": ["a"]}),
            "target_language (non-empty string) is required",
        ),
        (
            json!({"texts": ["a"], "target_language": "en", "source_language": 1}),
            "source_language must be a string",
        ),
    ] {
        assert_eq!(
            error(&alice, "translate_text", params).await,
            (6017, desc.to_owned())
        );
    }
    assert_eq!(
        alice.ok("translate_text", good).await["translate_result_list"][0]["target_text"],
        "hello"
    );
}

#[tokio::test]
async fn without_the_plugins_both_methods_answer_7013() {
    let server = TestServer::start().await;
    let alice = client(&server, vec![uploader()], "alice").await;
    assert_eq!(
        error(
            &alice,
            "translate_text",
            json!({"texts": ["你好"], "target_language": "en"})
        )
        .await,
        (
            7013,
            "no translator plugin is loaded (translate_text needs one)".to_owned()
        )
    );
    let sent = send_c2c_text(&alice, "bob", "hi").await;
    assert_eq!(
        error(
            &alice,
            "convert_voice_to_text",
            json!({"msg_id": sent["msg_id"]})
        )
        .await,
        (
            7013,
            "no speech-to-text plugin is loaded (convert_voice_to_text needs one)".to_owned()
        )
    );
}

#[tokio::test]
async fn a_failing_or_panicking_translator_answers_2117_and_the_engine_goes_on() {
    let server = TestServer::start().await;
    let alice = client(&server, vec![translator()], "alice").await;
    assert_eq!(
        error(
            &alice,
            "translate_text",
            json!({"texts": ["你好", "!fail"], "target_language": "en"})
        )
        .await,
        (2117, "cannot translate !fail".to_owned())
    );
    assert_eq!(
        error(
            &alice,
            "translate_text",
            json!({"texts": ["!panic"], "target_language": "en"})
        )
        .await,
        (2117, "plugin panicked: translator told to panic".to_owned())
    );
    // The engine and the plugin are still there.
    assert_eq!(
        alice
            .ok(
                "translate_text",
                json!({"texts": ["世界"], "target_language": "en"})
            )
            .await["translate_result_list"][0]["target_text"],
        "world"
    );
    let sent = send_c2c_text(&alice, "bob", "still sending").await;
    assert!(sent["msg_id"].is_string(), "{sent}");
}

#[tokio::test]
async fn the_receiver_converts_a_sound_message_fetched_from_the_file_store() {
    let server = TestServer::start().await;
    let plugins = || vec![uploader(), speech_to_text()];
    let alice = client(&server, plugins(), "alice").await;
    let bob = client(&server, plugins(), "bob").await;
    let dir = tempfile::tempdir().unwrap();
    let voice = voice_file(
        dir.path(),
        "voice.m4a",
        &[("en", "see you at noon"), ("zh", "中午见")],
    );
    let msg = alice
        .ok(
            "create_sound_message",
            json!({"sound_path": voice, "duration": 3}),
        )
        .await;
    alice
        .ok("send_message", json!({"message": msg, "receiver": "bob"}))
        .await;
    let got = bob.expect_messages(1, WAIT).await;
    let msg_id = got[0]["msg_id"].clone();
    assert_eq!(got[0]["elem_list"][0]["elem_type"], "sound");

    assert_eq!(
        bob.ok("convert_voice_to_text", json!({"msg_id": msg_id}))
            .await,
        json!({"text": "see you at noon"})
    );
    // Again, in another language: from the media cache this time.
    assert_eq!(
        bob.ok(
            "convert_voice_to_text",
            json!({"msg_id": msg_id, "language": "zh"})
        )
        .await,
        json!({"text": "中午见"})
    );
    assert_eq!(
        error(
            &bob,
            "convert_voice_to_text",
            json!({"msg_id": msg_id, "language": "fr"})
        )
        .await
        .0,
        2118
    );
    // The sender converts her own message from her own file.
    assert_eq!(
        alice
            .ok(
                "convert_voice_to_text",
                json!({"msg_id": msg["msg_id"], "language": "zh"})
            )
            .await,
        json!({"text": "中午见"})
    );
}

#[tokio::test]
async fn convert_voice_to_text_refuses_other_messages_and_reports_plugin_failures() {
    let server = TestServer::start().await;
    let alice = client(&server, vec![uploader(), speech_to_text()], "alice").await;
    let text = send_c2c_text(&alice, "bob", "not a voice").await;
    assert_eq!(
        error(
            &alice,
            "convert_voice_to_text",
            json!({"msg_id": text["msg_id"]})
        )
        .await,
        (
            6017,
            format!(
                "msg_id {} is not a sound message",
                text["msg_id"].as_str().unwrap()
            )
        )
    );
    assert_eq!(
        error(&alice, "convert_voice_to_text", json!({})).await,
        (6017, "msg_id (string) is required".to_owned())
    );
    assert_eq!(
        error(
            &alice,
            "convert_voice_to_text",
            json!({"msg_id": "no-such-message"})
        )
        .await,
        (6017, "msg_id no-such-message not found".to_owned())
    );
    assert_eq!(
        error(
            &alice,
            "convert_voice_to_text",
            json!({"msg_id": text["msg_id"], "language": 5})
        )
        .await,
        (6017, "language must be a string".to_owned())
    );

    let dir = tempfile::tempdir().unwrap();
    let failing = alice
        .ok(
            "create_sound_message",
            json!({"sound_path": voice_file(dir.path(), "f.m4a", &[("en", "!fail")]), "duration": 1}),
        )
        .await;
    assert_eq!(
        error(
            &alice,
            "convert_voice_to_text",
            json!({"msg_id": failing["msg_id"]})
        )
        .await,
        (2118, "recogniser failed".to_owned())
    );
    let panicking = alice
        .ok(
            "create_sound_message",
            json!({"sound_path": voice_file(dir.path(), "p.m4a", &[("en", "!panic")]), "duration": 1}),
        )
        .await;
    assert_eq!(
        error(
            &alice,
            "convert_voice_to_text",
            json!({"msg_id": panicking["msg_id"]})
        )
        .await,
        (
            2118,
            "plugin panicked: speech-to-text told to panic".to_owned()
        )
    );
    let fine = alice
        .ok(
            "create_sound_message",
            json!({"sound_path": voice_file(dir.path(), "ok.m4a", &[("en", "all good")]), "duration": 1}),
        )
        .await;
    assert_eq!(
        alice
            .ok("convert_voice_to_text", json!({"msg_id": fine["msg_id"]}))
            .await,
        json!({"text": "all good"})
    );
}
