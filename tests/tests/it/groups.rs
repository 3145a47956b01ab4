//! Group delivery rules end to end: AVChatRoom messages reach online members only and are never
//! stored, and the per-group rate limit drops low priority first while high priority always
//! passes and every sender is still told success.

use std::collections::HashSet;
use std::time::Duration;

use chime_tests::{TestClient, TestServer, text_of};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(1000);

async fn member(server: &TestServer, user: &str) -> TestClient {
    let c = TestClient::new(server).await;
    c.login(user).await;
    c
}

fn history_len(v: &Value) -> usize {
    v["message_list"].as_array().map_or(usize::MAX, Vec::len)
}

#[tokio::test]
async fn avchatroom_messages_reach_online_members_only_and_are_never_stored() {
    let server = TestServer::start().await;
    let host = member(&server, "host").await;
    let viewer = member(&server, "viewer").await;
    let late = member(&server, "late").await;
    host.ok(
        "create_group",
        json!({ "group_type": "AVChatRoom", "group_id": "live", "group_name": "Live" }),
    )
    .await;
    for c in [&viewer, &late] {
        c.ok("join_group", json!({ "group_id": "live", "message": "" }))
            .await;
    }
    late.ok("logout", json!({})).await;

    let sent = host
        .ok(
            "send_group_text_message",
            json!({ "text": "on air", "group_id": "live" }),
        )
        .await;
    assert_eq!(sent["status"], json!("send_succ"));
    assert_eq!(sent["seq"], json!(0), "an online-only message has no seq");

    let got = viewer.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["msg_id"], sent["msg_id"]);
    assert_eq!(text_of(&got[0]), "on air");
    assert_eq!(got[0]["group_id"], json!("live"));

    // The member who was offline never gets it, not even after logging back in.
    late.login("late").await;
    assert_eq!(late.next_event("on_recv_new_message", QUIET).await, None);
    let cloud = late
        .ok(
            "get_group_history_message_list",
            json!({ "group_id": "live", "count": 20 }),
        )
        .await;
    assert_eq!(history_len(&cloud), 0, "stored: {cloud}");
    // And it never counts as unread.
    let total = viewer.ok("get_total_unread_message_count", json!({})).await;
    assert_eq!(total["total_unread_count"], json!(0));
}

#[tokio::test]
async fn the_group_rate_limit_drops_low_priority_and_keeps_high() {
    // Two messages per second per group: a burst of 20 cannot all pass.
    let server = TestServer::start_with_config("group_message_rate = 2\n").await;
    let owner = member(&server, "owner").await;
    let reader = member(&server, "reader").await;
    owner
        .ok(
            "create_group",
            json!({ "group_type": "Public", "group_id": "busy", "group_name": "Busy" }),
        )
        .await;
    reader
        .ok("join_group", json!({ "group_id": "busy", "message": "" }))
        .await;

    let mut high = Vec::new();
    let mut low = Vec::new();
    for i in 0..10 {
        for (priority, list) in [("high", &mut high), ("low", &mut low)] {
            let m = owner
                .ok(
                    "send_group_text_message",
                    json!({ "text": format!("{priority} {i}"), "group_id": "busy",
                            "priority": priority }),
                )
                .await;
            assert_eq!(
                m["status"],
                json!("send_succ"),
                "the sender is told success: {m}"
            );
            list.push(m);
        }
    }
    let stored = |list: &[Value]| -> HashSet<String> {
        list.iter()
            .filter(|m| m["seq"].as_u64().unwrap_or(0) > 0)
            .map(|m| m["msg_id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let high_stored = stored(&high);
    let low_stored = stored(&low);
    assert_eq!(high_stored.len(), 10, "every high-priority message passes");
    assert!(
        low_stored.len() < 10,
        "a burst of 10 low-priority messages at 2/s was not limited"
    );

    // The reader gets exactly the messages that passed, once each.
    let expected: HashSet<String> = high_stored.union(&low_stored).cloned().collect();
    let got = reader.expect_messages(expected.len(), WAIT).await;
    let got_ids: HashSet<String> = got
        .iter()
        .map(|m| m["msg_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(got_ids, expected);
    assert_eq!(reader.next_event("on_recv_new_message", QUIET).await, None);
}
