//! SDKAppID isolation: two apps on one server with the same user and group ids never see each
//! other's accounts, messages, groups or device sessions.

use std::time::Duration;

use chime_tests::{APP2_ID, TestClient, TestServer, text_of};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(800);

async fn client_of(server: &TestServer, app: u64, user: &str) -> TestClient {
    let c = TestClient::with_config(server, json!({ "sdk_app_id": app })).await;
    c.login(user).await;
    c
}

#[tokio::test]
async fn same_user_ids_in_two_apps_never_cross() {
    let server = TestServer::start().await;
    let alice1 = client_of(&server, chime_tests::APP_ID, "alice").await;
    let bob1 = client_of(&server, chime_tests::APP_ID, "bob").await;
    let alice2 = client_of(&server, APP2_ID, "alice").await;
    let bob2 = client_of(&server, APP2_ID, "bob").await;

    alice1
        .ok(
            "send_c2c_text_message",
            json!({ "text": "app one", "user_id": "bob" }),
        )
        .await;
    alice2
        .ok(
            "send_c2c_text_message",
            json!({ "text": "app two", "user_id": "bob" }),
        )
        .await;

    let got1 = bob1.expect_messages(1, WAIT).await;
    let got2 = bob2.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got1[0]), "app one");
    assert_eq!(text_of(&got2[0]), "app two");

    // Nothing else arrives on either side, and nobody was kicked by the other app's login.
    assert_eq!(bob1.next_event("on_recv_new_message", QUIET).await, None);
    assert_eq!(bob2.next_event("on_recv_new_message", QUIET).await, None);
    for c in [&alice1, &bob1, &alice2, &bob2] {
        assert_eq!(
            c.event_count("on_kicked_offline"),
            0,
            "{}",
            c.event_summary()
        );
    }

    // Cloud history holds only the app's own message.
    for (bob, text) in [(&bob1, "app one"), (&bob2, "app two")] {
        let h = bob
            .ok(
                "get_c2c_history_message_list",
                json!({ "user_id": "alice", "count": 20 }),
            )
            .await;
        let list = h["message_list"].as_array().cloned().unwrap_or_default();
        let texts: Vec<String> = list.iter().map(text_of).collect();
        assert_eq!(texts, vec![text.to_owned()]);
    }
}

#[tokio::test]
async fn same_group_id_in_two_apps_is_two_groups() {
    let server = TestServer::start().await;
    let owner1 = client_of(&server, chime_tests::APP_ID, "owner").await;
    let owner2 = client_of(&server, APP2_ID, "owner").await;
    let member2 = client_of(&server, APP2_ID, "member").await;

    for owner in [&owner1, &owner2] {
        let r = owner
            .ok(
                "create_group",
                json!({ "group_type": "Public", "group_id": "shared-id", "group_name": "g" }),
            )
            .await;
        assert_eq!(r["group_id"], json!("shared-id"));
    }
    member2
        .ok(
            "join_group",
            json!({ "group_id": "shared-id", "message": "" }),
        )
        .await;

    owner1
        .ok(
            "send_group_text_message",
            json!({ "text": "only app one", "group_id": "shared-id" }),
        )
        .await;
    owner2
        .ok(
            "send_group_text_message",
            json!({ "text": "only app two", "group_id": "shared-id" }),
        )
        .await;

    let got = member2.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "only app two");
    assert_eq!(member2.next_event("on_recv_new_message", QUIET).await, None);

    let joined = owner1.ok("get_joined_group_list", json!({})).await;
    let count = joined
        .as_array()
        .or_else(|| joined["group_list"].as_array())
        .map_or(0, Vec::len);
    assert_eq!(count, 1, "app one owner's groups: {joined}");
}
