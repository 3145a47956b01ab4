//! User profiles and status end to end (issue 10): `set_self_info` reaches all my devices,
//! others read it, friends and subscribers learn of changes, messages carry the sender's current
//! nick name and face URL, and online / offline / custom status with subscriptions.

use std::time::Duration;

use chime_tests::{TestClient, TestServer, send_c2c_text};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(800);

async fn user(server: &TestServer, id: &str) -> TestClient {
    let c = TestClient::new(server).await;
    c.login(id).await;
    c
}

#[tokio::test]
async fn set_self_info_reaches_all_my_devices_and_others_read_it() {
    let server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    let alice2 = TestClient::with_config(&server, json!({ "platform": "web" })).await;
    alice2.login("alice").await;
    let bob = user(&server, "bob").await;

    alice
        .ok(
            "set_self_info",
            json!({
                "nick_name": "Alice", "face_url": "https://f/a.png", "self_signature": "hi",
                "gender": "female", "birthday": 19900101, "level": 3, "role": 2,
                "allow_type": "deny_any", "custom_info": {"Tag_Profile_Custom_city": "Oslo", "mood": "ok"}
            }),
        )
        .await;
    let expected = json!({
        "user_id": "alice", "nick_name": "Alice", "face_url": "https://f/a.png",
        "self_signature": "hi", "gender": "female", "birthday": 19900101, "level": 3, "role": 2,
        "allow_type": "deny_any", "custom_info": {"city": "Oslo", "mood": "ok"}
    });
    for c in [&alice, &alice2] {
        let ev = c.expect_event("on_self_info_updated", WAIT).await;
        assert_eq!(ev["info"], expected);
    }
    let got = bob
        .ok("get_users_info", json!({ "user_ids": ["alice", "nobody"] }))
        .await;
    assert_eq!(got["user_info_list"], json!([expected]));

    // A partial update changes only what it names; an empty custom value deletes the key.
    alice2
        .ok(
            "set_self_info",
            json!({ "nick_name": "Al", "custom_info": {"mood": ""} }),
        )
        .await;
    let ev = alice.expect_event("on_self_info_updated", WAIT).await;
    assert_eq!(ev["info"]["nick_name"], "Al");
    assert_eq!(ev["info"]["face_url"], "https://f/a.png");
    assert_eq!(ev["info"]["custom_info"], json!({"city": "Oslo"}));
}

#[tokio::test]
async fn messages_carry_the_senders_current_nick_and_face() {
    let server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    let bob = user(&server, "bob").await;
    alice
        .ok(
            "set_self_info",
            json!({ "nick_name": "Alice", "face_url": "a.png" }),
        )
        .await;
    send_c2c_text(&alice, "bob", "one").await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["nick_name"], "Alice");
    assert_eq!(got[0]["face_url"], "a.png");
    alice
        .ok("set_self_info", json!({ "nick_name": "Ally" }))
        .await;
    send_c2c_text(&alice, "bob", "two").await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["nick_name"], "Ally");
}

#[tokio::test]
async fn friends_see_profile_changes_and_subscribers_get_user_info_changed() {
    let server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    let bob = user(&server, "bob").await;
    let carol = user(&server, "carol").await;
    alice
        .ok("set_self_info", json!({ "allow_type": "allow_any" }))
        .await;
    bob.ok(
        "add_friend",
        json!({ "user_id": "alice", "add_type": "single" }),
    )
    .await;
    carol
        .ok("subscribe_user_info", json!({ "user_ids": ["alice"] }))
        .await;

    alice
        .ok("set_self_info", json!({ "nick_name": "Alice" }))
        .await;
    let ev = bob.expect_event("on_friend_info_changed", WAIT).await;
    assert_eq!(ev["friend_info_list"][0]["user_id"], "alice");
    assert_eq!(
        ev["friend_info_list"][0]["user_full_info"]["nick_name"],
        "Alice"
    );
    let list = bob.ok("get_friend_list", json!({})).await;
    assert_eq!(
        list["friend_info_list"][0]["user_full_info"]["nick_name"],
        "Alice"
    );
    let ev = carol.expect_event("on_user_info_changed", WAIT).await;
    assert_eq!(ev["user_info_list"][0]["nick_name"], "Alice");
    assert_eq!(bob.event_count("on_user_info_changed"), 0);

    carol
        .ok("unsubscribe_user_info", json!({ "user_ids": ["alice"] }))
        .await;
    alice
        .ok("set_self_info", json!({ "nick_name": "A." }))
        .await;
    bob.expect_event("on_friend_info_changed", WAIT).await;
    assert_eq!(carol.next_event("on_user_info_changed", QUIET).await, None);
}

#[tokio::test]
async fn user_status_online_offline_custom_and_subscription() {
    let server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    let alice2 = TestClient::with_config(&server, json!({ "platform": "web" })).await;
    alice2.login("alice").await;
    let bob = user(&server, "bob").await;
    let carol = TestClient::new(&server).await;
    carol.login("carol").await;
    carol.ok("logout", json!({})).await;

    bob.ok(
        "subscribe_user_status",
        json!({ "user_ids": ["alice", "carol"] }),
    )
    .await;
    alice
        .ok("set_self_status", json!({ "custom_status": "gaming" }))
        .await;
    let ev = bob.expect_event("on_user_status_changed", WAIT).await;
    let s = &ev["user_status_list"][0];
    assert_eq!(s["user_id"], "alice");
    assert_eq!(s["custom_status"], "gaming");
    // My other device learns my custom status.
    let ev = alice2.expect_event("on_user_status_changed", WAIT).await;
    assert_eq!(ev["user_status_list"][0]["custom_status"], "gaming");

    let st = bob
        .ok(
            "get_user_status",
            json!({ "user_ids": ["alice", "carol", "nobody"] }),
        )
        .await;
    let list = &st["user_status_list"];
    assert_eq!(list[0]["status_type"], "online");
    assert_eq!(list[0]["custom_status"], "gaming");
    let mut devices: Vec<String> = list[0]["online_devices"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    devices.sort();
    assert_eq!(devices.len(), 2, "{devices:?}");
    assert!(devices.contains(&"web".to_owned()), "{devices:?}");
    assert_eq!(list[1]["status_type"], "offline");
    assert_eq!(list[2]["status_type"], "unlogined");

    // No user ids: unsubscribe from everyone.
    bob.ok("unsubscribe_user_status", json!({})).await;
    alice
        .ok("set_self_status", json!({ "custom_status": "away" }))
        .await;
    alice2.expect_event("on_user_status_changed", WAIT).await;
    assert_eq!(bob.next_event("on_user_status_changed", QUIET).await, None);
}
