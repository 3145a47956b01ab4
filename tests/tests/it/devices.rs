//! Multi-device login policies end to end: a newer login of the same platform class kicks the
//! older session (`on_kicked_offline`, no reconnect), different classes coexist under the default
//! policy, and `single` allows one session in all.

use std::time::Duration;

use chime_proto::codes;
use chime_tests::{TestClient, TestServer, text_of};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(1500);

async fn device(server: &TestServer, platform: &str) -> TestClient {
    TestClient::with_config(server, json!({ "platform": platform })).await
}

async fn status(client: &TestClient) -> String {
    let v = client.ok("get_login_status", json!({})).await;
    v["status"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_second_desktop_login_kicks_the_first() {
    let server = TestServer::start().await;
    let first = device(&server, "windows").await;
    first.login("alice").await;
    let second = device(&server, "mac").await;
    second.login("alice").await;

    first.expect_event("on_kicked_offline", WAIT).await;
    assert_eq!(status(&first).await, "logout");
    assert_eq!(
        first
            .err_code(
                "send_c2c_text_message",
                json!({ "text": "x", "user_id": "bob" })
            )
            .await,
        codes::ERR_SDK_NOT_LOGGED_IN
    );
    // The kicked engine does not fight back: the second stays logged in.
    assert_eq!(second.next_event("on_kicked_offline", QUIET).await, None);
    assert_eq!(status(&second).await, "logined");
    assert_eq!(
        first.event_count("on_connect_success"),
        1,
        "{}",
        first.event_summary()
    );

    // Messages now reach only the second device.
    let bob = TestClient::new(&server).await;
    bob.login("bob").await;
    bob.ok(
        "send_c2c_text_message",
        json!({ "text": "after the kick", "user_id": "alice" }),
    )
    .await;
    let got = second.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "after the kick");
    assert_eq!(first.next_event("on_recv_new_message", QUIET).await, None);
}

#[tokio::test]
async fn desktop_and_web_stay_online_together_and_both_receive() {
    let server = TestServer::start().await;
    let desktop = device(&server, "linux").await;
    desktop.login("alice").await;
    let web = device(&server, "web").await;
    web.login("alice").await;

    let bob = TestClient::new(&server).await;
    bob.login("bob").await;
    let sent = bob
        .ok(
            "send_c2c_text_message",
            json!({ "text": "to both", "user_id": "alice" }),
        )
        .await;
    for d in [&desktop, &web] {
        let got = d.expect_messages(1, WAIT).await;
        assert_eq!(got[0]["msg_id"], sent["msg_id"]);
        assert_eq!(text_of(&got[0]), "to both");
        assert_eq!(
            d.event_count("on_kicked_offline"),
            0,
            "{}",
            d.event_summary()
        );
    }

    // A message alice sends from one device appears on her other device (multi-device sync).
    let mine = web
        .ok(
            "send_c2c_text_message",
            json!({ "text": "from web", "user_id": "bob" }),
        )
        .await;
    let echoed = desktop.expect_messages(1, WAIT).await;
    assert_eq!(echoed[0]["msg_id"], mine["msg_id"]);
    assert_eq!(echoed[0]["is_self"], json!(true));
}

#[tokio::test]
async fn the_single_policy_lets_a_web_login_kick_a_desktop() {
    let server = TestServer::start_with_config("multi_device_policy = \"single\"\n").await;
    let desktop = device(&server, "windows").await;
    desktop.login("alice").await;
    let web = device(&server, "web").await;
    web.login("alice").await;
    desktop.expect_event("on_kicked_offline", WAIT).await;
    assert_eq!(status(&web).await, "logined");
    assert_eq!(status(&desktop).await, "logout");
}
