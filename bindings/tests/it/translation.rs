//! `translate_text` through the C ABI (api.md §4.2): a translator plugin loaded by path from
//! `chime_create`'s config serves it; without one it answers 7013.

use chime::chime_destroy;
use chime_tests::{TestServer, plugin_library};
use serde_json::json;

use crate::support::{call_sync, config, create};

#[tokio::test]
async fn translate_text_through_the_c_abi_with_and_without_a_translator() {
    let server = TestServer::start().await;
    let url = server.ws_url();
    let sigs = (server.user_sig("alice"), server.user_sig("bob"));
    let translator = plugin_library("chime-test-translator", "chime_test_translator");
    tokio::task::spawn_blocking(move || {
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let with = create(&config(
            &url,
            dirs.0.path(),
            json!({"plugins": [{
                "path": translator,
                "config": {"dictionary": {"en>zh": {"hello": "你好"}}},
            }]}),
        ));
        let without = create(&config(&url, dirs.1.path(), json!({})));
        let params = json!({"texts": ["hello", "bye"], "source_language": "en",
                            "target_language": "zh"});
        // Before login: 6014, plugin or not.
        assert_eq!(call_sync(with, "translate_text", &params)["code"], 6014);
        for (engine, user, sig) in [(with, "alice", &sigs.0), (without, "bob", &sigs.1)] {
            assert_eq!(
                call_sync(engine, "login", &json!({"user_id": user, "user_sig": sig})),
                json!({})
            );
        }
        assert_eq!(
            call_sync(with, "translate_text", &params),
            json!({"translate_result_list": [
                {"source_text": "hello", "target_text": "你好"},
                {"source_text": "bye", "target_text": "[en>zh] bye"},
            ]})
        );
        assert_eq!(
            call_sync(
                with,
                "translate_text",
                &json!({"texts": ["!panic"], "target_language": "zh"})
            ),
            json!({"code": 2117, "desc": "plugin panicked: translator told to panic"})
        );
        assert_eq!(
            call_sync(without, "translate_text", &params),
            json!({"code": 7013,
                   "desc": "no translator plugin is loaded (translate_text needs one)"})
        );
        // SAFETY: live handles, destroyed once.
        unsafe {
            chime_destroy(with);
            chime_destroy(without);
        }
    })
    .await
    .unwrap();
}
