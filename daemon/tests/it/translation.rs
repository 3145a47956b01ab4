//! `translate_text` through `chimed --stdio` (api.md §4.2): served by a translator plugin loaded
//! by path from `init_sdk`'s `plugins`, and 7013 when none is loaded.

use chime_tests::{TestServer, plugin_library};
use serde_json::{Value, json};

use super::{Daemon, error_code};

/// `init_sdk` with `plugins`, then login as `user`.
async fn init_and_login(d: &mut Daemon, server: &TestServer, plugins: Value, user: &str) {
    d.init_with(server, json!({ "plugins": plugins })).await;
    d.ok(
        "login",
        json!({ "user_id": user, "user_sig": server.user_sig(user) }),
    )
    .await;
}

#[tokio::test]
async fn translate_text_through_the_daemon_with_and_without_a_translator() {
    let server = TestServer::start().await;
    let params = json!({"texts": ["你好", "hello"], "target_language": "en"});

    let mut with = Daemon::spawn();
    let translator = json!([{
        "path": plugin_library("chime-test-translator", "chime_test_translator"),
        "config": {"dictionary": {"zh>en": {"你好": "hello"}}},
    }]);
    init_and_login(&mut with, &server, translator, "alice").await;
    assert_eq!(
        with.ok("translate_text", params.clone()).await,
        json!({"translate_result_list": [
            {"source_text": "你好", "target_text": "hello"},
            {"source_text": "hello", "target_text": "[en>en] hello"},
        ]})
    );
    let failed = with
        .request(
            "translate_text",
            json!({"texts": ["!fail"], "target_language": "en"}),
        )
        .await;
    assert_eq!(error_code(&failed), 2117);

    let mut without = Daemon::spawn();
    init_and_login(&mut without, &server, json!([]), "bob").await;
    let a = without.request("translate_text", params).await;
    assert_eq!(error_code(&a), 7013);
    let a = without
        .request("convert_voice_to_text", json!({"msg_id": "m"}))
        .await;
    assert_eq!(error_code(&a), 7013);
}
