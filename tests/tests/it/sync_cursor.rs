//! The login/reconnect sync is proportional to what changed (issue 3, ARCHITECTURE.md §3): the
//! server's change version travels with every live answer and push that carries a change of the
//! user's change log, the engine advances its persisted cursor over the unbroken run of versions
//! it applied, and the next sync restates only what the device has not seen — nothing after a
//! session received live, exactly the missed conversations after lost pushes, a change made on
//! another device, and the same across a server restart. Counted with `get_sync_stats`.

use std::time::Duration;

use chime_tests::{TestClient, TestProxy, TestServer, eventually, send_c2c_text, total_unread};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn fast(platform: &str) -> Value {
    json!({"reconnect_min_ms": 50, "reconnect_max_ms": 300, "platform": platform})
}

/// Logs `c` in as `id` and waits for its login sync to finish.
async fn login_synced(c: &TestClient, id: &str) {
    c.login(id).await;
    c.expect_event("on_sync_server_finish", WAIT).await;
}

async fn user(server: &TestServer, id: &str) -> TestClient {
    let c = TestClient::with_config(server, fast("windows")).await;
    login_synced(&c, id).await;
    c
}

async fn stats(c: &TestClient) -> Value {
    c.ok("get_sync_stats", json!({})).await
}

/// Waits until every change up to `version` is applied with nothing pending above it.
async fn cursor_reaches(c: &TestClient, version: u64) {
    eventually(&format!("change cursor {version}"), || async {
        let s = stats(c).await;
        s["change_cursor"] == version && s["pending_change_count"] == 0
    })
    .await;
}

async fn conv(c: &TestClient, id: &str) -> Value {
    c.ok("get_conversation", json!({ "conversation_id": id }))
        .await
}

fn last_text(conv: &Value) -> String {
    conv["last_message"]["elem_list"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_device_that_received_everything_live_restates_nothing_at_its_next_login() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let alice = TestClient::with_data_dir(&server, dir.path(), fast("windows")).await;
    login_synced(&alice, "alice").await;
    assert_eq!(stats(&alice).await["change_cursor"], 0);
    let bob = user(&server, "bob").await;
    let carol = user(&server, "carol").await;

    // Alice's change log, one version per change: bob's 3 messages (1-3), her 2 replies (4-5,
    // from her acks), her read of bob's conversation (6), bob reading her replies (7, a peer
    // read push), carol's message (8), her pin of carol's conversation (9).
    for i in 0..3 {
        send_c2c_text(&bob, "alice", &format!("b{i}")).await;
    }
    alice.expect_messages(3, WAIT).await;
    for i in 0..2 {
        send_c2c_text(&alice, "bob", &format!("a{i}")).await;
    }
    bob.expect_messages(2, WAIT).await;
    alice
        .ok("mark_c2c_message_as_read", json!({"user_id": "bob"}))
        .await;
    bob.ok("mark_c2c_message_as_read", json!({"user_id": "alice"}))
        .await;
    alice.expect_event("on_recv_c2c_read_receipt", WAIT).await;
    send_c2c_text(&carol, "alice", "c0").await;
    alice.expect_messages(1, WAIT).await;
    alice
        .ok(
            "pin_conversation",
            json!({"conversation_id": "c2c_carol", "is_pinned": true}),
        )
        .await;
    cursor_reaches(&alice, 9).await;

    alice.ok("logout", json!({})).await;
    alice.shutdown().await;
    drop(alice);
    let alice = TestClient::with_data_dir(&server, dir.path(), fast("windows")).await;
    login_synced(&alice, "alice").await;
    let s = stats(&alice).await;
    // The persisted cursor.
    assert_eq!(s["last_sync_from_cursor"], 9);
    assert_eq!(s["last_sync_conversation_count"], 0, "{s}");
    assert_eq!(s["change_cursor"], 9);
    // Everything is still there, from the store.
    let b = conv(&alice, "c2c_bob").await;
    assert_eq!(b["unread_count"], 0);
    assert_eq!(last_text(&b), "a1");
    let c = conv(&alice, "c2c_carol").await;
    assert_eq!(c["unread_count"], 1);
    assert_eq!(c["is_pinned"], true);
    assert_eq!(last_text(&c), "c0");
    assert_eq!(total_unread(&alice).await, 1);
}

#[tokio::test]
async fn pushes_lost_on_a_dead_link_restate_exactly_their_conversations() {
    let server = TestServer::start().await;
    let proxy = TestProxy::start(&server).await;
    let alice = TestClient::at_url(
        &proxy.ws_url(),
        json!({"reconnect_min_ms": 50, "reconnect_max_ms": 300}),
    )
    .await;
    login_synced(&alice, "alice").await;
    let bob = user(&server, "bob").await;
    let carol = user(&server, "carol").await;
    let dave = user(&server, "dave").await;
    for p in [&bob, &carol, &dave] {
        send_c2c_text(p, "alice", "live").await;
    }
    alice.expect_messages(3, WAIT).await;
    cursor_reaches(&alice, 3).await;
    let before = stats(&alice).await;

    // The link goes dead silently: carol's and dave's next messages (versions 4-6) are lost.
    proxy.set_blackhole(true);
    send_c2c_text(&carol, "alice", "lost1").await;
    send_c2c_text(&dave, "alice", "lost2").await;
    send_c2c_text(&carol, "alice", "lost3").await;
    proxy.set_blackhole(false);
    proxy.cut();
    eventually(
        "alice's reconnect sync restates the two missed conversations",
        || async {
            let s = stats(&alice).await;
            s["sync_count"].as_u64() > before["sync_count"].as_u64() && s["change_cursor"] == 6
        },
    )
    .await;
    let s = stats(&alice).await;
    assert_eq!(
        s["restated_conversation_count"].as_u64().unwrap()
            - before["restated_conversation_count"].as_u64().unwrap(),
        2,
        "{s}"
    );
    assert_eq!(s["pending_change_count"], 0);
    eventually("the missed messages are pulled", || async {
        let c = conv(&alice, "c2c_carol").await;
        let d = conv(&alice, "c2c_dave").await;
        c["unread_count"] == 3
            && last_text(&c) == "lost3"
            && d["unread_count"] == 2
            && last_text(&d) == "lost2"
    })
    .await;
    assert_eq!(conv(&alice, "c2c_bob").await["unread_count"], 1);
    assert_eq!(total_unread(&alice).await, 6);
    // Live again: the run continues from the sync's cursor.
    send_c2c_text(&bob, "alice", "after").await;
    cursor_reaches(&alice, 7).await;
}

#[tokio::test]
async fn changes_made_on_another_device_are_picked_up_live_and_after_a_login() {
    let server = TestServer::start().await;
    let pc = user(&server, "alice").await;
    let web_dir = tempfile::tempdir().unwrap();
    let web = TestClient::with_data_dir(&server, web_dir.path(), fast("web")).await;
    login_synced(&web, "alice").await;
    let bob = user(&server, "bob").await;

    // Versions: bob's 2 messages (1-2), the pc's pin (3, a settings push to the web), the pc's
    // read (4, a read push), the pc's message to bob (5, the sender's other device's push).
    send_c2c_text(&bob, "alice", "b0").await;
    send_c2c_text(&bob, "alice", "b1").await;
    pc.expect_messages(2, WAIT).await;
    web.expect_messages(2, WAIT).await;
    pc.ok(
        "pin_conversation",
        json!({"conversation_id": "c2c_bob", "is_pinned": true}),
    )
    .await;
    pc.ok("mark_c2c_message_as_read", json!({"user_id": "bob"}))
        .await;
    send_c2c_text(&pc, "bob", "from pc").await;
    cursor_reaches(&pc, 5).await;
    cursor_reaches(&web, 5).await;
    let c = conv(&web, "c2c_bob").await;
    assert_eq!(c["is_pinned"], true);
    assert_eq!(c["unread_count"], 0);
    assert_eq!(last_text(&c), "from pc");

    // The web is away while the pc changes one conversation: its login restates exactly it.
    web.shutdown().await;
    drop(web);
    pc.ok(
        "mark_conversation",
        json!({"conversation_ids": ["c2c_bob"], "mark_type": "star", "enable_mark": true}),
    )
    .await;
    cursor_reaches(&pc, 6).await;
    let web = TestClient::with_data_dir(&server, web_dir.path(), fast("web")).await;
    login_synced(&web, "alice").await;
    let s = stats(&web).await;
    assert_eq!(s["last_sync_from_cursor"], 5, "{s}");
    assert_eq!(s["last_sync_conversation_count"], 1, "{s}");
    assert_eq!(s["change_cursor"], 6);
    let c = conv(&web, "c2c_bob").await;
    assert_eq!(c["mark_list"], json!([1]));
    assert_eq!(c["is_pinned"], true);
    assert_eq!(c["unread_count"], 0);
}

#[tokio::test]
async fn versions_survive_a_server_restart() {
    let mut server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    let bob = user(&server, "bob").await;
    for i in 0..4 {
        send_c2c_text(&bob, "alice", &format!("b{i}")).await;
    }
    alice.expect_messages(4, WAIT).await;
    cursor_reaches(&alice, 4).await;
    let before = stats(&alice).await;
    let bob_before = stats(&bob).await;

    server.restart().await;
    eventually("alice and bob sync after the restart", || async {
        stats(&alice).await["sync_count"].as_u64() > before["sync_count"].as_u64()
            && stats(&bob).await["sync_count"].as_u64() > bob_before["sync_count"].as_u64()
    })
    .await;
    let s = stats(&alice).await;
    assert_eq!(
        s["restated_conversation_count"],
        before["restated_conversation_count"]
    );
    assert_eq!(s["change_cursor"], 4);
    // The server's versions continue where they were: bob's next message is version 5.
    send_c2c_text(&bob, "alice", "b4").await;
    cursor_reaches(&alice, 5).await;
    let c = conv(&alice, "c2c_bob").await;
    assert_eq!(c["unread_count"], 5);
    assert_eq!(last_text(&c), "b4");
}

#[tokio::test]
async fn a_change_no_push_carries_is_closed_by_a_sync_of_what_followed_it() {
    let server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    let bob = user(&server, "bob").await;
    // Bob adds alice to a group: her change (version 1) reaches her only as the group's tips,
    // shared by every member, so no push carries her version. Bob's message is version 2.
    bob.ok(
        "create_group",
        json!({"group_type": "Work", "group_id": "g1", "group_name": "g1",
               "member_list": [{"user_id": "alice"}]}),
    )
    .await;
    let before = stats(&alice).await;
    send_c2c_text(&bob, "alice", "hi").await;
    alice.expect_messages(1, WAIT).await;
    // The gap at 1 holds the cursor until a sync closes it, restating what changed since.
    cursor_reaches(&alice, 2).await;
    let s = stats(&alice).await;
    assert!(
        s["sync_count"].as_u64() > before["sync_count"].as_u64(),
        "{s}"
    );
    assert_eq!(conv(&alice, "c2c_bob").await["unread_count"], 1);
    eventually("the group conversation is there", || async {
        alice
            .call("get_conversation", json!({"conversation_id": "group_g1"}))
            .await
            .is_ok()
    })
    .await;
}
