//! The message lifecycle end to end (issue 4): revoke, modify, delete for me, clear history,
//! insert into local storage and local custom data — across two users with two devices each,
//! live and on a device that was offline, with the permission, window and conflict errors.

use std::time::Duration;

use chime_proto::codes;
use chime_tests::{TestClient, TestServer, eventually, send_c2c_text, text_of};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(800);

/// A device of `id` on `platform` (one native and one web device may be online together).
async fn device(server: &TestServer, id: &str, platform: &str) -> TestClient {
    let c = TestClient::with_config(
        server,
        json!({"reconnect_min_ms": 50, "reconnect_max_ms": 500, "platform": platform}),
    )
    .await;
    c.login(id).await;
    c
}

async fn find(c: &TestClient, msg_id: &Value) -> Option<Value> {
    let r = c.ok("find_messages", json!({ "msg_ids": [msg_id] })).await;
    r["message_list"]
        .as_array()
        .and_then(|l| l.first().cloned())
}

async fn history(c: &TestClient, get_type: &str, user_id: &str) -> Vec<Value> {
    let r = c
        .ok(
            "get_history_message_list",
            json!({ "get_type": get_type, "user_id": user_id, "count": 50 }),
        )
        .await;
    r["message_list"].as_array().cloned().unwrap_or_default()
}

fn texts(list: &[Value]) -> Vec<String> {
    list.iter().map(text_of).collect()
}

async fn conversation(c: &TestClient, id: &str) -> Value {
    c.ok("get_conversation", json!({ "conversation_id": id }))
        .await
}

#[tokio::test]
async fn revoke_reaches_the_peer_and_every_device_live_and_after_reconnect() {
    let server = TestServer::start().await;
    let alice = device(&server, "alice", "windows").await;
    let alice_web = device(&server, "alice", "web").await;
    let bob = device(&server, "bob", "windows").await;
    let bob_web = device(&server, "bob", "web").await;

    let sent = send_c2c_text(&alice, "bob", "the password is hunter2").await;
    let id = sent["msg_id"].clone();
    for c in [&bob, &bob_web, &alice_web] {
        let got = c.expect_messages(1, WAIT).await;
        assert_eq!(got[0]["msg_id"], id);
    }
    eventually("bob sees one unread", || async {
        conversation(&bob, "c2c_alice").await["unread_count"] == json!(1)
    })
    .await;
    bob_web.ok("logout", json!({})).await;

    assert_eq!(
        alice
            .ok("revoke_message", json!({ "msg_id": id, "reason": "oops" }))
            .await,
        json!({})
    );
    let expected = json!({ "msg_id": id, "operate_user": "alice", "reason": "oops" });
    for c in [&bob, &alice_web] {
        assert_eq!(
            c.expect_event("on_recv_message_revoked", WAIT).await,
            expected
        );
    }
    // The revoking device learns it from the call, not from an event.
    assert_eq!(
        alice.next_event("on_recv_message_revoked", QUIET).await,
        None
    );
    for c in [&alice, &alice_web, &bob] {
        let m = find(c, &id).await.expect("revoked message stays");
        assert_eq!(m["status"], "local_revoked");
        assert_eq!(m["revoker"], "alice");
        assert_eq!(m["revoke_reason"], "oops");
        assert_eq!(m["version"], 1);
    }
    // A revoked message is not unread; the last message shows it revoked.
    eventually("bob's unread drops to 0", || async {
        let c = conversation(&bob, "c2c_alice").await;
        c["unread_count"] == json!(0) && c["last_message"]["status"] == json!("local_revoked")
    })
    .await;

    // The device that was offline catches up: one event, the stored copy revoked.
    bob_web.login("bob").await;
    assert_eq!(
        bob_web.expect_event("on_recv_message_revoked", WAIT).await,
        expected
    );
    let m = find(&bob_web, &id).await.expect("message kept");
    assert_eq!(m["status"], "local_revoked");
    // Exactly once, also after another reconnect.
    bob_web.ok("logout", json!({})).await;
    bob_web.login("bob").await;
    assert_eq!(
        bob_web.next_event("on_recv_message_revoked", QUIET).await,
        None
    );
    // A device that never had it gets the message already revoked from the server.
    let bob_new = device(&server, "bob", "mac").await;
    let cloud = history(&bob_new, "cloud_older", "alice").await;
    assert_eq!(cloud.len(), 1);
    assert_eq!(cloud[0]["status"], "local_revoked");
    // Revoking again is harmless.
    alice
        .ok("revoke_message", json!({ "msg_id": id, "reason": "" }))
        .await;
}

#[tokio::test]
async fn revoke_errors_others_c2c_message_unknown_id_and_the_window() {
    let server = TestServer::start_with_config("revoke_window_secs = 1\n").await;
    let alice = device(&server, "alice", "windows").await;
    let bob = device(&server, "bob", "windows").await;
    let sent = send_c2c_text(&alice, "bob", "hi").await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(
        bob.err_code("revoke_message", json!({ "msg_id": got[0]["msg_id"] }))
            .await,
        codes::ERR_INVALID_OPERATION,
        "only the sender revokes a C2C message"
    );
    assert_eq!(
        alice
            .err_code("revoke_message", json!({ "msg_id": "no-such-id" }))
            .await,
        codes::ERR_INVALID_PARAMETERS
    );
    assert_eq!(
        alice.err_code("revoke_message", json!({})).await,
        codes::ERR_INVALID_PARAMETERS
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        alice
            .err_code("revoke_message", json!({ "msg_id": sent["msg_id"] }))
            .await,
        codes::ERR_SVR_REVOKE_TIME_LIMIT
    );
    let m = find(&alice, &sent["msg_id"]).await.expect("kept");
    assert_eq!(m["status"], "send_succ");
}

#[tokio::test]
async fn group_owner_and_admins_revoke_others_messages_members_may_not() {
    let server = TestServer::start().await;
    let owner = device(&server, "owner", "windows").await;
    let admin = device(&server, "admin", "windows").await;
    let m1 = device(&server, "m1", "windows").await;
    let m2 = device(&server, "m2", "windows").await;
    owner
        .ok(
            "create_group",
            json!({ "group_type": "Meeting", "group_id": "room", "group_name": "room" }),
        )
        .await;
    for c in [&admin, &m1, &m2] {
        c.ok("join_group", json!({ "group_id": "room", "message": "" }))
            .await;
    }
    owner
        .ok(
            "set_group_member_role",
            json!({ "group_id": "room", "user_id": "admin", "role": "admin" }),
        )
        .await;
    let a = m1
        .ok(
            "send_group_text_message",
            json!({ "group_id": "room", "text": "first" }),
        )
        .await;
    let b = m1
        .ok(
            "send_group_text_message",
            json!({ "group_id": "room", "text": "second" }),
        )
        .await;
    for c in [&owner, &admin, &m2] {
        let got = c.expect_messages(2, WAIT).await;
        assert_eq!(texts(&got), ["first", "second"]);
    }
    assert_eq!(
        m2.err_code("revoke_message", json!({ "msg_id": a["msg_id"] }))
            .await,
        10007
    );
    admin
        .ok(
            "revoke_message",
            json!({ "msg_id": a["msg_id"], "reason": "spam" }),
        )
        .await;
    for c in [&owner, &m1, &m2] {
        assert_eq!(
            c.expect_event("on_recv_message_revoked", WAIT).await,
            json!({ "msg_id": a["msg_id"], "operate_user": "admin", "reason": "spam" })
        );
    }
    owner
        .ok("revoke_message", json!({ "msg_id": b["msg_id"] }))
        .await;
    for c in [&admin, &m1, &m2] {
        let ev = c.expect_event("on_recv_message_revoked", WAIT).await;
        assert_eq!(ev["msg_id"], b["msg_id"]);
        assert_eq!(ev["operate_user"], "owner");
    }
    // The sender revokes their own.
    let c = m2
        .ok(
            "send_group_text_message",
            json!({ "group_id": "room", "text": "third" }),
        )
        .await;
    m1.expect_messages(1, WAIT).await;
    m2.ok("revoke_message", json!({ "msg_id": c["msg_id"] }))
        .await;
    let ev = m1.expect_event("on_recv_message_revoked", WAIT).await;
    assert_eq!(ev["msg_id"], c["msg_id"]);
    let list = m1
        .ok(
            "get_group_history_message_list",
            json!({ "group_id": "room", "count": 50 }),
        )
        .await;
    let revoked: Vec<&Value> = list["message_list"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|m| m["status"] == json!("local_revoked"))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(revoked.len(), 3);
}

#[tokio::test]
async fn modify_reaches_everyone_and_a_stale_edit_gets_8006() {
    let server = TestServer::start().await;
    let alice = device(&server, "alice", "windows").await;
    let alice_web = device(&server, "alice", "web").await;
    let bob = device(&server, "bob", "windows").await;
    let bob_web = device(&server, "bob", "web").await;
    let sent = send_c2c_text(&alice, "bob", "meet at 5").await;
    for c in [&bob, &bob_web, &alice_web] {
        c.expect_messages(1, WAIT).await;
    }
    bob_web.ok("logout", json!({})).await;

    let mut edited = sent.clone();
    edited["elem_list"] = json!([{ "elem_type": "text", "text": "meet at 6" }]);
    edited["cloud_custom_data"] = json!("edited");
    let r = alice
        .ok("modify_message", json!({ "message": edited }))
        .await;
    assert_eq!(text_of(&r), "meet at 6");
    assert_eq!(r["version"], 1);
    assert_eq!(r["cloud_custom_data"], "edited");
    for c in [&bob, &alice_web] {
        let ev = c.expect_event("on_recv_message_modified", WAIT).await;
        assert_eq!(ev["message"]["msg_id"], sent["msg_id"]);
        assert_eq!(text_of(&ev["message"]), "meet at 6");
        assert_eq!(ev["message"]["version"], 1);
        assert_eq!(ev["message"]["cloud_custom_data"], "edited");
    }
    // The same stale object again: conflict, nothing changes, the current version is stored.
    let mut stale = sent.clone();
    stale["elem_list"] = json!([{ "elem_type": "text", "text": "meet at 7" }]);
    assert_eq!(
        alice
            .err_code("modify_message", json!({ "message": stale }))
            .await,
        codes::ERR_MODIFY_CONFLICT
    );
    let m = find(&bob, &sent["msg_id"]).await.expect("kept");
    assert_eq!(text_of(&m), "meet at 6");
    // Only the sender edits.
    let mut theirs = find(&bob, &sent["msg_id"]).await.expect("kept");
    theirs["elem_list"] = json!([{ "elem_type": "text", "text": "no" }]);
    assert_eq!(
        bob.err_code("modify_message", json!({ "message": theirs }))
            .await,
        codes::ERR_INVALID_OPERATION
    );
    // The offline device catches up with the newest content, announced once.
    bob_web.login("bob").await;
    let ev = bob_web.expect_event("on_recv_message_modified", WAIT).await;
    assert_eq!(text_of(&ev["message"]), "meet at 6");
    assert_eq!(
        bob_web.next_event("on_recv_message_modified", QUIET).await,
        None
    );
    // A revoked message cannot be edited.
    alice
        .ok("revoke_message", json!({ "msg_id": sent["msg_id"] }))
        .await;
    let current = find(&alice, &sent["msg_id"]).await.expect("kept");
    assert_eq!(
        alice
            .err_code("modify_message", json!({ "message": current }))
            .await,
        codes::ERR_INVALID_OPERATION
    );
}

#[tokio::test]
async fn delete_for_me_reaches_my_devices_and_never_comes_back_from_the_cloud() {
    let server = TestServer::start().await;
    let alice = device(&server, "alice", "windows").await;
    let bob = device(&server, "bob", "windows").await;
    let bob_web = device(&server, "bob", "web").await;
    let mut ids = Vec::new();
    for t in ["one", "two", "three"] {
        ids.push(send_c2c_text(&alice, "bob", t).await["msg_id"].clone());
    }
    for c in [&bob, &bob_web] {
        c.expect_messages(3, WAIT).await;
    }
    bob.ok("delete_messages", json!({ "msg_ids": [ids[1]] }))
        .await;
    assert_eq!(find(&bob, &ids[1]).await, None);
    assert_eq!(
        texts(&history(&bob, "local_older", "alice").await),
        ["three", "one"]
    );
    eventually("the other device drops it", || async {
        find(&bob_web, &ids[1]).await.is_none()
    })
    .await;
    // Only for me: alice keeps all three.
    assert_eq!(
        texts(&history(&alice, "cloud_older", "bob").await),
        ["three", "two", "one"]
    );
    // Local delete: this device only.
    bob.ok(
        "delete_message_from_local_storage",
        json!({ "msg_id": ids[0] }),
    )
    .await;
    assert_eq!(find(&bob, &ids[0]).await, None);
    assert!(find(&bob_web, &ids[0]).await.is_some());
    // A new device never gets the deleted one from the server.
    bob_web.ok("logout", json!({})).await;
    let bob_new = device(&server, "bob", "web").await;
    assert_eq!(
        texts(&history(&bob_new, "cloud_older", "alice").await),
        ["three", "one"]
    );
    assert_eq!(
        bob.err_code("delete_messages", json!({ "msg_ids": ["nope"] }))
            .await,
        codes::ERR_INVALID_PARAMETERS
    );
    assert_eq!(
        bob.err_code("delete_messages", json!({ "msg_ids": [] }))
            .await,
        codes::ERR_INVALID_PARAMETERS
    );
}

#[tokio::test]
async fn clear_history_empties_it_for_me_on_all_devices_and_keeps_the_conversation() {
    let server = TestServer::start().await;
    let alice = device(&server, "alice", "windows").await;
    let bob = device(&server, "bob", "windows").await;
    let bob_web = device(&server, "bob", "web").await;
    for t in ["a", "b"] {
        send_c2c_text(&alice, "bob", t).await;
    }
    for c in [&bob, &bob_web] {
        c.expect_messages(2, WAIT).await;
    }
    bob_web.ok("logout", json!({})).await;
    bob.ok("clear_c2c_history_message", json!({ "user_id": "alice" }))
        .await;
    assert!(history(&bob, "local_older", "alice").await.is_empty());
    assert!(history(&bob, "cloud_older", "alice").await.is_empty());
    assert_eq!(
        conversation(&bob, "c2c_alice").await["conversation_id"],
        "c2c_alice"
    );
    assert_eq!(
        texts(&history(&alice, "cloud_older", "bob").await),
        ["b", "a"]
    );
    // The offline device clears on reconnect.
    bob_web.login("bob").await;
    eventually("the other device clears", || async {
        history(&bob_web, "local_older", "alice").await.is_empty()
    })
    .await;
    // New messages after the clear arrive as usual.
    send_c2c_text(&alice, "bob", "c").await;
    bob.expect_messages(1, WAIT).await;
    assert_eq!(texts(&history(&bob, "cloud_older", "alice").await), ["c"]);
    assert_eq!(
        bob.err_code("clear_c2c_history_message", json!({ "user_id": "" }))
            .await,
        codes::ERR_INVALID_USER_ID
    );
    assert_eq!(
        bob.err_code("clear_group_history_message", json!({ "group_id": "none" }))
            .await,
        10010
    );
}

#[tokio::test]
async fn inserted_local_messages_and_local_custom_data_stay_on_this_device() {
    let server = TestServer::start().await;
    let alice = device(&server, "alice", "windows").await;
    let alice_web = device(&server, "alice", "web").await;
    let sent = send_c2c_text(&alice, "bob", "real").await;
    alice_web.expect_messages(1, WAIT).await;

    let created = alice
        .ok("create_text_message", json!({ "text": "a tip" }))
        .await;
    let ins = alice
        .ok(
            "insert_c2c_message_to_local_storage",
            json!({ "message": created, "user_id": "bob", "sender": "bob" }),
        )
        .await;
    assert_eq!(ins["msg_id"], created["msg_id"]);
    assert_eq!(ins["status"], "local_imported");
    assert_eq!(ins["sender"], "bob");
    assert_eq!(ins["conversation_id"], "c2c_bob");
    assert_eq!(ins["seq"], 0);
    let local = history(&alice, "local_older", "bob").await;
    assert_eq!(texts(&local), ["a tip", "real"]);
    assert_eq!(
        alice
            .err_code("resend_message", json!({ "msg_id": ins["msg_id"] }))
            .await,
        codes::ERR_INVALID_OPERATION
    );
    let g = alice
        .ok(
            "insert_group_message_to_local_storage",
            json!({
                "message": { "elem_list": [{ "elem_type": "text", "text": "group note" }] },
                "group_id": "g1",
                "sender": "alice",
            }),
        )
        .await;
    assert_eq!(g["conversation_id"], "group_g1");
    assert_eq!(g["is_self"], true);

    alice
        .ok(
            "set_local_custom_data",
            json!({ "msg_id": sent["msg_id"], "local_custom_data": "starred" }),
        )
        .await;
    alice
        .ok(
            "set_local_custom_int",
            json!({ "msg_id": sent["msg_id"], "local_custom_int": 7 }),
        )
        .await;
    let m = find(&alice, &sent["msg_id"]).await.expect("kept");
    assert_eq!(m["local_custom_data"], "starred");
    assert_eq!(m["local_custom_int"], 7);
    // Another device has neither.
    let other = find(&alice_web, &sent["msg_id"]).await.expect("kept");
    assert_eq!(other["local_custom_data"], "");
    assert_eq!(other["local_custom_int"], 0);
    assert_eq!(find(&alice_web, &ins["msg_id"]).await, None);
    assert_eq!(
        alice
            .err_code(
                "set_local_custom_int",
                json!({ "msg_id": sent["msg_id"], "local_custom_int": "x" })
            )
            .await,
        codes::ERR_INVALID_PARAMETERS
    );
    assert_eq!(
        alice
            .err_code(
                "insert_c2c_message_to_local_storage",
                json!({ "message": created, "user_id": "bob", "sender": "" })
            )
            .await,
        codes::ERR_INVALID_USER_ID
    );
}

#[tokio::test]
async fn forward_and_merger_messages_reach_the_receiver_with_their_content() {
    let server = TestServer::start().await;
    let alice = device(&server, "alice", "windows").await;
    let bob = device(&server, "bob", "windows").await;
    let carol = device(&server, "carol", "windows").await;
    send_c2c_text(&alice, "bob", "fwd me").await;
    send_c2c_text(&alice, "bob", "and me").await;
    let got = bob.expect_messages(2, WAIT).await;

    let fwd = bob
        .ok(
            "create_forward_message",
            json!({ "msg_id": got[0]["msg_id"] }),
        )
        .await;
    assert_ne!(fwd["msg_id"], got[0]["msg_id"]);
    assert_eq!(fwd["status"], "sending");
    assert_eq!(fwd["sender"], "bob");
    let sent = bob
        .ok(
            "send_message",
            json!({ "message": fwd, "receiver": "carol" }),
        )
        .await;
    assert_eq!(sent["status"], "send_succ");
    let recv = carol.expect_messages(1, WAIT).await;
    assert_eq!(recv[0]["msg_id"], fwd["msg_id"]);
    assert_eq!(recv[0]["sender"], "bob");
    assert_eq!(text_of(&recv[0]), "fwd me");

    let ids = json!([got[1]["msg_id"], got[0]["msg_id"]]);
    let merger = bob
        .ok(
            "create_merger_message",
            json!({
                "message_list": ids,
                "title": "alice and bob",
                "abstract_list": ["alice: fwd me", "alice: and me"],
                "compatible_text": "upgrade to read chat history",
            }),
        )
        .await;
    assert_eq!(merger["elem_list"][0]["elem_type"], "merger");
    assert_eq!(merger["elem_list"][0]["layers"], 1);
    bob.ok(
        "send_message",
        json!({ "message": merger, "receiver": "carol" }),
    )
    .await;
    let recv = carol.expect_messages(1, WAIT).await;
    let e = &recv[0]["elem_list"][0];
    assert_eq!(e["elem_type"], "merger");
    assert_eq!(e["title"], "alice and bob");
    assert_eq!(
        e["abstract_list"],
        json!(["alice: fwd me", "alice: and me"])
    );
    assert_eq!(e["compatible_text"], "upgrade to read chat history");
    let inner = carol
        .ok(
            "download_merger_message",
            json!({ "msg_id": recv[0]["msg_id"] }),
        )
        .await;
    let list = inner["message_list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(texts(&list), ["fwd me", "and me"], "oldest first");
    assert_eq!(list[0]["sender"], "alice");
    assert_eq!(list[0]["msg_id"], got[0]["msg_id"]);
    // A merger of a merger nests one level deeper.
    let nested = carol
        .ok(
            "create_merger_message",
            json!({ "message_list": [recv[0]["msg_id"]], "title": "t",
                    "compatible_text": "c" }),
        )
        .await;
    assert_eq!(nested["elem_list"][0]["layers"], 2);

    for bad in [
        json!({ "message_list": [], "compatible_text": "c" }),
        json!({ "message_list": [got[0]["msg_id"]] }),
        json!({ "message_list": ["no-such"], "compatible_text": "c" }),
        json!({ "message_list": vec!["x"; 301], "compatible_text": "c" }),
    ] {
        assert_eq!(
            bob.err_code("create_merger_message", bad).await,
            codes::ERR_INVALID_PARAMETERS
        );
    }
    assert_eq!(
        carol
            .err_code(
                "download_merger_message",
                json!({ "msg_id": fwd["msg_id"] })
            )
            .await,
        codes::ERR_INVALID_MSG_ELEM
    );
    assert_eq!(
        bob.err_code("create_forward_message", json!({ "msg_id": "no-such" }))
            .await,
        codes::ERR_INVALID_PARAMETERS
    );
}

#[tokio::test]
async fn reactions_are_counted_per_user_and_reach_the_other_devices() {
    let server = TestServer::start().await;
    let alice = device(&server, "alice", "windows").await;
    let alice_web = device(&server, "alice", "web").await;
    let bob = device(&server, "bob", "windows").await;
    let sent = send_c2c_text(&alice, "bob", "party?").await;
    let id = sent["msg_id"].clone();
    bob.expect_messages(1, WAIT).await;
    alice_web.expect_messages(1, WAIT).await;

    bob.ok(
        "add_message_reaction",
        json!({ "msg_id": id, "reaction_id": "thumbs_up" }),
    )
    .await;
    for c in [&alice, &alice_web] {
        let ev = c
            .expect_event("on_recv_message_reaction_changed", WAIT)
            .await;
        assert_eq!(
            ev,
            json!({ "change_info_list": [{ "msg_id": id, "reaction_list": [{
                "reaction_id": "thumbs_up", "total_user_count": 1,
                "partial_user_list": [{ "user_id": "bob" }],
            }] }] })
        );
    }
    alice
        .ok(
            "add_message_reaction",
            json!({ "msg_id": id, "reaction_id": "thumbs_up" }),
        )
        .await;
    // Adding twice is harmless.
    alice
        .ok(
            "add_message_reaction",
            json!({ "msg_id": id, "reaction_id": "thumbs_up" }),
        )
        .await;
    alice
        .ok(
            "add_message_reaction",
            json!({ "msg_id": id, "reaction_id": "heart" }),
        )
        .await;
    let ev = bob
        .expect_event("on_recv_message_reaction_changed", WAIT)
        .await;
    assert_eq!(
        ev["change_info_list"][0]["reaction_list"][0]["total_user_count"],
        2
    );
    let r = bob
        .ok(
            "get_message_reactions",
            json!({ "msg_ids": [id], "max_user_count_per_reaction": 1 }),
        )
        .await;
    assert_eq!(
        r,
        json!({ "result_list": [{ "msg_id": id, "reaction_list": [
            { "reaction_id": "thumbs_up", "total_user_count": 2,
              "partial_user_list": [{ "user_id": "alice" }], "reacted_by_myself": true },
            { "reaction_id": "heart", "total_user_count": 1,
              "partial_user_list": [{ "user_id": "alice" }], "reacted_by_myself": false },
        ] }] })
    );
    let page = bob
        .ok(
            "get_all_user_list_of_message_reaction",
            json!({ "msg_id": id, "reaction_id": "thumbs_up", "next_seq": 0, "count": 1 }),
        )
        .await;
    assert_eq!(
        page,
        json!({ "user_info_list": [{ "user_id": "alice" }], "next_seq": 1, "is_finished": false })
    );
    let page = bob
        .ok(
            "get_all_user_list_of_message_reaction",
            json!({ "msg_id": id, "reaction_id": "thumbs_up", "next_seq": 1, "count": 1 }),
        )
        .await;
    assert_eq!(
        page,
        json!({ "user_info_list": [{ "user_id": "bob" }], "next_seq": 2, "is_finished": true })
    );
    bob.ok(
        "remove_message_reaction",
        json!({ "msg_id": id, "reaction_id": "thumbs_up" }),
    )
    .await;
    let r = alice_web
        .ok("get_message_reactions", json!({ "msg_ids": [id] }))
        .await;
    assert_eq!(
        r["result_list"][0]["reaction_list"][0]["total_user_count"],
        1
    );
    assert_eq!(
        bob.err_code(
            "add_message_reaction",
            json!({ "msg_id": id, "reaction_id": "" })
        )
        .await,
        codes::ERR_INVALID_PARAMETERS
    );
    assert_eq!(
        bob.err_code(
            "add_message_reaction",
            json!({ "msg_id": "nope", "reaction_id": "x" })
        )
        .await,
        codes::ERR_INVALID_PARAMETERS
    );
}

#[tokio::test]
async fn extensions_compare_and_set_and_reach_the_other_side() {
    let server = TestServer::start().await;
    let alice = device(&server, "alice", "windows").await;
    let bob = device(&server, "bob", "windows").await;
    let sent = send_c2c_text(&alice, "bob", "poll: pizza or sushi").await;
    let id = sent["msg_id"].clone();
    bob.expect_messages(1, WAIT).await;

    let r = alice
        .ok(
            "set_message_extensions",
            json!({ "msg_id": id, "extensions": [
                { "key": "pizza", "value": "1", "version": 0 },
                { "key": "sushi", "value": "0" },
            ] }),
        )
        .await;
    assert_eq!(
        r,
        json!({ "result_list": [
            { "key": "pizza", "result_code": 0, "value": "1", "version": 1 },
            { "key": "sushi", "result_code": 0, "value": "0", "version": 1 },
        ] })
    );
    let ev = bob
        .expect_event("on_recv_message_extensions_changed", WAIT)
        .await;
    assert_eq!(
        ev,
        json!({ "msg_id": id, "extensions": [
            { "key": "pizza", "value": "1", "version": 1 },
            { "key": "sushi", "value": "0", "version": 1 },
        ] })
    );
    // Bob votes with the version he saw: it wins; a second stale write of the same version loses.
    let r = bob
        .ok(
            "set_message_extensions",
            json!({ "msg_id": id, "extensions": [{ "key": "pizza", "value": "2", "version": 1 }] }),
        )
        .await;
    assert_eq!(r["result_list"][0]["result_code"], 0);
    assert_eq!(r["result_list"][0]["version"], 2);
    let r = alice
        .ok(
            "set_message_extensions",
            json!({ "msg_id": id, "extensions": [{ "key": "pizza", "value": "2", "version": 1 }] }),
        )
        .await;
    assert_eq!(
        r["result_list"][0],
        json!({ "key": "pizza", "result_code": 23001, "value": "2", "version": 2 })
    );
    let got = alice
        .ok("get_message_extensions", json!({ "msg_id": id }))
        .await;
    assert_eq!(
        got,
        json!({ "extension_list": [
            { "key": "pizza", "value": "2", "version": 2 },
            { "key": "sushi", "value": "0", "version": 1 },
        ] })
    );
    let r = alice
        .ok(
            "delete_message_extensions",
            json!({ "msg_id": id, "keys": ["sushi", "nope"] }),
        )
        .await;
    assert_eq!(
        r,
        json!({ "result_list": [
            { "key": "sushi", "result_code": 0 },
            { "key": "nope", "result_code": 23004 },
        ] })
    );
    assert_eq!(
        bob.expect_event("on_recv_message_extensions_deleted", WAIT)
            .await,
        json!({ "msg_id": id, "keys": ["sushi"] })
    );
    alice
        .ok("delete_message_extensions", json!({ "msg_id": id }))
        .await;
    let got = bob
        .ok("get_message_extensions", json!({ "msg_id": id }))
        .await;
    assert_eq!(got, json!({ "extension_list": [] }));
    let big = "x".repeat(1025);
    assert_eq!(
        alice
            .err_code(
                "set_message_extensions",
                json!({ "msg_id": id, "extensions": [{ "key": "k", "value": big }] })
            )
            .await,
        90002
    );
    assert_eq!(
        alice
            .err_code(
                "set_message_extensions",
                json!({ "msg_id": id, "extensions": [] })
            )
            .await,
        codes::ERR_INVALID_PARAMETERS
    );
}

#[tokio::test]
async fn owners_and_admins_pin_group_messages_members_see_the_list_and_events() {
    let server = TestServer::start().await;
    let owner = device(&server, "owner", "windows").await;
    let member = device(&server, "member", "windows").await;
    owner
        .ok(
            "create_group",
            json!({ "group_type": "Meeting", "group_id": "pins", "group_name": "pins" }),
        )
        .await;
    member
        .ok("join_group", json!({ "group_id": "pins", "message": "" }))
        .await;
    let mut ids = Vec::new();
    for t in ["rules", "schedule"] {
        let m = owner
            .ok(
                "send_group_text_message",
                json!({ "group_id": "pins", "text": t }),
            )
            .await;
        ids.push(m["msg_id"].clone());
    }
    member.expect_messages(2, WAIT).await;

    assert_eq!(
        member
            .err_code(
                "pin_group_message",
                json!({ "group_id": "pins", "msg_id": ids[0], "is_pinned": true })
            )
            .await,
        10007
    );
    for id in &ids {
        owner
            .ok(
                "pin_group_message",
                json!({ "group_id": "pins", "msg_id": id, "is_pinned": true }),
            )
            .await;
    }
    for id in &ids {
        let ev = member.expect_event("on_group_message_pinned", WAIT).await;
        assert_eq!(ev["group_id"], "pins");
        assert_eq!(ev["is_pinned"], true);
        assert_eq!(ev["op_user"], "owner");
        assert_eq!(ev["message"]["msg_id"], *id);
        assert_eq!(ev["message"]["pinner"], "owner");
    }
    let list = member
        .ok("get_pinned_group_messages", json!({ "group_id": "pins" }))
        .await;
    let pinned: Vec<String> = texts(list["message_list"].as_array().map_or(&[][..], |v| v));
    assert_eq!(pinned, ["schedule", "rules"], "newest pin first");
    owner
        .ok(
            "pin_group_message",
            json!({ "group_id": "pins", "msg_id": ids[1], "is_pinned": false }),
        )
        .await;
    let ev = member.expect_event("on_group_message_pinned", WAIT).await;
    assert_eq!(ev["is_pinned"], false);
    assert_eq!(ev["message"]["msg_id"], ids[1]);
    let list = owner
        .ok("get_pinned_group_messages", json!({ "group_id": "pins" }))
        .await;
    assert_eq!(
        texts(list["message_list"].as_array().map_or(&[][..], |v| v)),
        ["rules"]
    );
    assert_eq!(
        owner
            .err_code("get_pinned_group_messages", json!({ "group_id": "nope" }))
            .await,
        10010
    );
}

#[tokio::test]
async fn a_message_waiting_offline_can_be_cancelled_and_never_leaves() {
    let mut server = TestServer::start().await;
    let alice = device(&server, "alice", "windows").await;
    let bob = device(&server, "bob", "windows").await;
    let before = send_c2c_text(&alice, "bob", "before").await;
    bob.expect_messages(1, WAIT).await;
    assert_eq!(
        alice
            .err_code("cancel_send_message", json!({ "msg_id": before["msg_id"] }))
            .await,
        codes::ERR_INVALID_CANCEL_MESSAGE,
        "a sent message cannot be cancelled"
    );
    server.kill().await;
    alice.expect_event("on_connect_failed", WAIT).await;
    let created = alice
        .ok("create_text_message", json!({ "text": "never" }))
        .await;
    let id = created["msg_id"].clone();
    let engine = alice.engine.clone();
    let pending = tokio::spawn(async move {
        engine
            .call(
                "send_message",
                json!({ "message": created, "receiver": "bob" }),
            )
            .await
    });
    // Stored, not just created: `find_messages` also answers a message whose send has not
    // reached the store yet (content filters run first); local history lists stored ones only.
    eventually("the message waits in the outbox", || async {
        history(&alice, "local_older", "bob")
            .await
            .iter()
            .any(|m| m["msg_id"] == id && m["status"] == json!("sending"))
    })
    .await;
    alice
        .ok("cancel_send_message", json!({ "msg_id": id }))
        .await;
    let r = tokio::time::timeout(WAIT, pending)
        .await
        .expect("the send call ends")
        .expect("task");
    assert_eq!(r.map_err(|e| e.code).err(), Some(codes::ERR_SEND_CANCELLED));
    assert_eq!(find(&alice, &id).await, None);
    server.restart().await;
    let after = send_c2c_text(&alice, "bob", "after").await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["msg_id"], after["msg_id"]);
    assert_eq!(
        texts(&history(&bob, "cloud_older", "alice").await),
        ["after", "before"]
    );
}

#[tokio::test]
async fn targeted_group_messages_reach_only_their_receiver_and_follow_the_seed_rules() {
    let server = TestServer::start().await;
    let owner = device(&server, "owner", "windows").await;
    let m1 = device(&server, "m1", "windows").await;
    let m2 = device(&server, "m2", "windows").await;
    owner
        .ok(
            "create_group",
            json!({ "group_type": "Meeting", "group_id": "t", "group_name": "t" }),
        )
        .await;
    for c in [&m1, &m2] {
        c.ok("join_group", json!({ "group_id": "t", "message": "" }))
            .await;
    }
    let text = owner
        .ok("create_text_message", json!({ "text": "psst" }))
        .await;
    let sent = owner
        .ok(
            "send_message",
            json!({ "message": text, "group_id": "t", "receiver": "m1" }),
        )
        .await;
    let got = m1.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["msg_id"], sent["msg_id"]);
    let seen = |c: &TestClient| {
        c.events("on_recv_new_message")
            .iter()
            .any(|e| e["message"]["msg_id"] == sent["msg_id"])
    };
    tokio::time::sleep(QUIET).await;
    assert!(!seen(&m2), "only the receiver gets a targeted message");

    let at = owner
        .ok(
            "create_text_at_message",
            json!({ "text": "@m1 psst", "at_user_list": ["m1"] }),
        )
        .await;
    assert_eq!(
        owner
            .err_code(
                "send_message",
                json!({ "message": at, "group_id": "t", "receiver": "m1" })
            )
            .await,
        10004
    );
    owner
        .ok(
            "create_group",
            json!({ "group_type": "AVChatRoom", "group_id": "live", "group_name": "live" }),
        )
        .await;
    m1.ok("join_group", json!({ "group_id": "live", "message": "" }))
        .await;
    let text = owner
        .ok("create_text_message", json!({ "text": "psst" }))
        .await;
    assert_eq!(
        owner
            .err_code(
                "send_message",
                json!({ "message": text, "group_id": "live", "receiver": "m1" })
            )
            .await,
        10004
    );
}

#[tokio::test]
async fn reactions_and_extensions_reach_a_device_that_was_offline_once() {
    let server = TestServer::start().await;
    let alice = device(&server, "alice", "windows").await;
    let alice_web = device(&server, "alice", "web").await;
    let bob = device(&server, "bob", "windows").await;
    let sent = send_c2c_text(&alice, "bob", "vote!").await;
    let id = sent["msg_id"].clone();
    bob.expect_messages(1, WAIT).await;
    alice_web.expect_messages(1, WAIT).await;
    alice_web.ok("logout", json!({})).await;

    // While alice's web device is offline: bob reacts, alice (on windows) sets and deletes
    // extensions.
    bob.ok(
        "add_message_reaction",
        json!({ "msg_id": id, "reaction_id": "heart" }),
    )
    .await;
    alice
        .expect_event("on_recv_message_reaction_changed", WAIT)
        .await;
    alice
        .ok(
            "set_message_extensions",
            json!({ "msg_id": id, "extensions": [
                { "key": "a", "value": "1" }, { "key": "b", "value": "2" },
            ] }),
        )
        .await;
    alice
        .ok(
            "delete_message_extensions",
            json!({ "msg_id": id, "keys": ["b"] }),
        )
        .await;
    bob.expect_event("on_recv_message_extensions_deleted", WAIT)
        .await;

    // The web device comes back: each change once, in order, from the change log.
    alice_web.login("alice").await;
    let reaction = alice_web
        .expect_event("on_recv_message_reaction_changed", WAIT)
        .await;
    assert_eq!(
        reaction,
        json!({ "change_info_list": [{ "msg_id": id, "reaction_list": [{
            "reaction_id": "heart", "total_user_count": 1,
            "partial_user_list": [{ "user_id": "bob" }],
        }] }] })
    );
    let changed = alice_web
        .expect_event("on_recv_message_extensions_changed", WAIT)
        .await;
    assert_eq!(
        changed,
        json!({ "msg_id": id, "extensions": [
            { "key": "a", "value": "1", "version": 1 },
            { "key": "b", "value": "2", "version": 1 },
        ] })
    );
    let deleted = alice_web
        .expect_event("on_recv_message_extensions_deleted", WAIT)
        .await;
    assert_eq!(deleted, json!({ "msg_id": id, "keys": ["b"] }));

    // The device that made the changes learnt them from its answers: a reconnect of it does
    // not announce them; nor does another reconnect of the web device repeat them.
    alice.ok("logout", json!({})).await;
    alice.login("alice").await;
    alice_web.ok("logout", json!({})).await;
    alice_web.login("alice").await;
    for c in [&alice, &alice_web] {
        assert_eq!(
            c.next_event("on_recv_message_extensions_changed", QUIET)
                .await,
            None
        );
    }
    assert_eq!(alice.events("on_recv_message_extensions_changed").len(), 0);
    assert_eq!(
        alice_web.events("on_recv_message_reaction_changed").len(),
        1
    );
    assert_eq!(
        alice_web.events("on_recv_message_extensions_changed").len(),
        1
    );
    assert_eq!(
        alice_web.events("on_recv_message_extensions_deleted").len(),
        1
    );
    assert_eq!(alice.events("on_recv_message_reaction_changed").len(), 1);
    // Bob got alice's extension changes live, once each.
    assert_eq!(bob.events("on_recv_message_extensions_changed").len(), 1);
    assert_eq!(bob.events("on_recv_message_extensions_deleted").len(), 1);
    // And the state read on demand agrees.
    let got = alice_web
        .ok("get_message_extensions", json!({ "msg_id": id }))
        .await;
    assert_eq!(
        got,
        json!({ "extension_list": [{ "key": "a", "value": "1", "version": 1 }] })
    );
}
