//! Messaging end to end (engine): C2C and group text/custom in both directions through both
//! listener kinds, exactly-once delivery, offline messages, history paging (local and cloud),
//! conversations and unread counts, send options, the 12 KB limit, 6014 and account switching.

use std::collections::HashSet;
use std::time::Duration;

use chime_proto::codes;
use chime_tests::{TestClient, TestServer, eventually, send_c2c_text, text_of, total_unread};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

fn seqs(list: &[Value]) -> Vec<u64> {
    list.iter()
        .map(|m| m["seq"].as_u64().unwrap_or(0))
        .collect()
}

fn history(v: &Value) -> Vec<Value> {
    v["message_list"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn c2c_text_and_custom_both_directions_via_both_listeners() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    let bob = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;
    bob.ok("add_simple_msg_listener", json!({})).await;

    let sent = send_c2c_text(&alice, "bob", "hello bob").await;
    assert_eq!(sent["status"], "send_succ");
    assert_eq!(sent["seq"], 1);
    assert_eq!(sent["is_self"], true);
    assert_eq!(sent["conversation_id"], "c2c_bob");
    let custom = alice
        .ok(
            "send_c2c_custom_message",
            json!({"data": "{\"k\":1}", "user_id": "bob"}),
        )
        .await;
    assert_eq!(custom["seq"], 2);

    let got = bob.expect_messages(2, WAIT).await;
    assert_eq!(got[0]["msg_id"], sent["msg_id"]);
    assert_eq!(text_of(&got[0]), "hello bob");
    assert_eq!(got[0]["sender"], "alice");
    assert_eq!(got[0]["user_id"], "alice");
    assert_eq!(got[0]["conversation_id"], "c2c_alice");
    assert_eq!(got[0]["is_self"], false);
    assert_eq!(got[0]["seq"], 1);
    assert_eq!(got[1]["elem_list"][0]["elem_type"], "custom");
    assert_eq!(got[1]["elem_list"][0]["data"], "{\"k\":1}");
    let simple = bob.expect_event("on_recv_c2c_text_message", WAIT).await;
    assert_eq!(
        simple,
        json!({"msg_id": sent["msg_id"], "sender": "alice", "text": "hello bob"})
    );
    let simple = bob.expect_event("on_recv_c2c_custom_message", WAIT).await;
    assert_eq!(simple["data"], "{\"k\":1}");
    assert_eq!(simple["sender"], "alice");

    // And back, binary custom data travels as data_base64.
    bob.ok(
        "send_c2c_text_message",
        json!({"text": "hi alice", "user_id": "alice"}),
    )
    .await;
    let m = bob
        .ok(
            "create_custom_message",
            json!({"data_base64": "AP8=", "description": "bin"}),
        )
        .await;
    bob.ok("send_message", json!({"message": m, "receiver": "alice"}))
        .await;
    let got = alice.expect_messages(2, WAIT).await;
    assert_eq!(text_of(&got[0]), "hi alice");
    assert_eq!(got[0]["seq"], 3);
    assert_eq!(got[1]["elem_list"][0]["data_base64"], "AP8=");
    assert_eq!(got[1]["elem_list"][0]["description"], "bin");
    // The simple listener is off on alice's side by default.
    assert_eq!(alice.event_count("on_recv_c2c_text_message"), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bob.event_count("on_recv_new_message"), 2);
    assert_eq!(alice.event_count("on_recv_new_message"), 2);
}

#[tokio::test]
async fn group_text_and_custom_both_directions() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    let bob = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;
    bob.ok("add_simple_msg_listener", json!({})).await;
    let created = alice
        .ok(
            "create_group",
            json!({"group_type": "Public", "group_id": "g1", "group_name": "Team"}),
        )
        .await;
    assert_eq!(created["group_id"], "g1");
    bob.ok("join_group", json!({"group_id": "g1", "message": "hi"}))
        .await;
    let joined = bob.ok("get_joined_group_list", json!({})).await;
    assert_eq!(joined["group_list"][0]["group_id"], "g1");
    assert_eq!(joined["group_list"][0]["group_name"], "Team");

    let sent = alice
        .ok(
            "send_group_text_message",
            json!({"text": "hello group", "group_id": "g1", "priority": "high"}),
        )
        .await;
    assert_eq!(sent["group_id"], "g1");
    assert_eq!(sent["priority"], "high");
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["msg_id"], sent["msg_id"]);
    assert_eq!(got[0]["conversation_id"], "group_g1");
    assert_eq!(got[0]["group_id"], "g1");
    assert_eq!(got[0]["user_id"], "");
    let simple = bob.expect_event("on_recv_group_text_message", WAIT).await;
    assert_eq!(
        simple,
        json!({"msg_id": sent["msg_id"], "group_id": "g1", "sender": "alice", "text": "hello group"})
    );

    let back = bob
        .ok(
            "send_group_custom_message",
            json!({"data": "ping", "group_id": "g1"}),
        )
        .await;
    assert_eq!(
        back["seq"].as_u64(),
        Some(sent["seq"].as_u64().unwrap() + 1)
    );
    let got = alice.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["sender"], "bob");
    assert_eq!(got[0]["elem_list"][0]["data"], "ping");

    // A non-member is refused by the server (10007), and the message is marked failed.
    let carol = TestClient::new(&server).await;
    carol.login("carol").await;
    assert_eq!(
        carol
            .err_code(
                "send_group_text_message",
                json!({"text": "x", "group_id": "g1"})
            )
            .await,
        codes::ERR_SVR_GROUP_PERMISSION_DENIED
    );
    let failed = carol
        .ok(
            "get_history_message_list",
            json!({"get_type": "local_older", "group_id": "g1", "count": 1}),
        )
        .await;
    let failed = history(&failed)[0].clone();
    assert_eq!(failed["status"], "send_fail");
    // After joining, resending the failed message delivers it with the same msg_id.
    carol
        .ok("join_group", json!({"group_id": "g1", "message": ""}))
        .await;
    let resent = carol
        .ok("resend_message", json!({"msg_id": failed["msg_id"]}))
        .await;
    assert_eq!(resent["msg_id"], failed["msg_id"]);
    assert_eq!(resent["status"], "send_succ");
    let got = alice.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["msg_id"], failed["msg_id"]);
    carol.ok("quit_group", json!({"group_id": "g1"})).await;
    // The group's history from the cloud, newest first.
    let h = carol
        .call(
            "get_group_history_message_list",
            json!({"group_id": "g1", "count": 10}),
        )
        .await;
    assert!(h.is_err() || history(&h.unwrap()).is_empty());
    let h = bob
        .ok(
            "get_group_history_message_list",
            json!({"group_id": "g1", "count": 10}),
        )
        .await;
    // Membership changes are group tips messages in the history too; this checks the sends.
    assert_eq!(
        history(&h)
            .iter()
            .filter(|m| !chime_tests::is_group_tips(m))
            .map(|m| m["msg_id"].clone())
            .collect::<Vec<_>>(),
        [
            resent["msg_id"].clone(),
            back["msg_id"].clone(),
            sent["msg_id"].clone()
        ]
    );
    // Filter by elem type.
    let h = bob
        .ok(
            "get_history_message_list",
            json!({"get_type": "local_older", "group_id": "g1", "count": 10,
                   "message_type_list": ["custom"]}),
        )
        .await;
    assert_eq!(
        history(&h)
            .iter()
            .map(|m| m["msg_id"].clone())
            .collect::<Vec<_>>(),
        [back["msg_id"].clone()]
    );

    // Group info, quit, dismiss.
    let info = bob
        .ok("get_groups_info", json!({"group_ids": ["g1", "nope"]}))
        .await;
    let results = info["group_info_result_list"].as_array().cloned().unwrap();
    assert_eq!(results[0]["result_code"], 0);
    assert_eq!(results[0]["group_info"]["group_type"], "Public");
    assert_eq!(results[0]["group_info"]["owner"], "alice");
    assert_eq!(results[1]["result_code"], codes::ERR_SVR_GROUP_NOT_FOUND);
    bob.ok("quit_group", json!({"group_id": "g1"})).await;
    assert_eq!(
        bob.err_code(
            "send_group_text_message",
            json!({"text": "x", "group_id": "g1"})
        )
        .await,
        codes::ERR_SVR_GROUP_PERMISSION_DENIED
    );
    let joined = bob.ok("get_joined_group_list", json!({})).await;
    assert_eq!(joined["group_list"], json!([]));
    alice.ok("dismiss_group", json!({"group_id": "g1"})).await;
    assert_eq!(
        alice
            .err_code(
                "send_group_text_message",
                json!({"text": "x", "group_id": "g1"})
            )
            .await,
        codes::ERR_SVR_GROUP_NOT_FOUND
    );
}

#[tokio::test]
async fn offline_messages_arrive_once_after_login() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    alice.login("alice").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(send_c2c_text(&alice, "bob", &format!("offline {i}")).await["msg_id"].clone());
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let bob = TestClient::with_data_dir(&server, dir.path(), json!({})).await;
        bob.login("bob").await;
        let got = bob.expect_messages(3, WAIT).await;
        assert_eq!(
            got.iter().map(|m| m["msg_id"].clone()).collect::<Vec<_>>(),
            ids
        );
        assert_eq!(seqs(&got), [1, 2, 3]);
        bob.expect_event("on_sync_server_finish", WAIT).await;
        assert_eq!(total_unread(&bob).await, 3);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(bob.event_count("on_recv_new_message"), 3);
        bob.shutdown().await;
    }
    // A later login of the same store announces only what is new.
    send_c2c_text(&alice, "bob", "one more").await;
    let bob = TestClient::with_data_dir(&server, dir.path(), json!({})).await;
    bob.login("bob").await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "one more");
    assert_eq!(got[0]["seq"], 4);
    bob.expect_event("on_sync_server_finish", WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bob.event_count("on_recv_new_message"), 1);
    assert_eq!(total_unread(&bob).await, 4);
}

#[tokio::test]
async fn history_pages_local_and_cloud_and_is_never_announced() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    alice.login("alice").await;
    for i in 1..=120 {
        send_c2c_text(&alice, "bob", &format!("m{i}")).await;
    }
    let bob = TestClient::new(&server).await;
    bob.login("bob").await;
    // The sync eagerly takes the newest 100 (seq 21..=120) and announces them once.
    let got = bob.expect_messages(100, WAIT).await;
    assert_eq!(seqs(&got), (21..=120).collect::<Vec<u64>>());
    bob.expect_event("on_sync_server_finish", WAIT).await;

    let local = |extra: Value| {
        let mut p = json!({"get_type": "local_older", "user_id": "alice", "count": 10});
        if let (Some(o), Value::Object(e)) = (p.as_object_mut(), extra) {
            o.extend(e);
        }
        p
    };
    let h = bob.ok("get_history_message_list", local(json!({}))).await;
    assert_eq!(seqs(&history(&h)), (111..=120).rev().collect::<Vec<u64>>());
    let last = history(&h)[9]["msg_id"].clone();
    let h = bob
        .ok(
            "get_history_message_list",
            local(json!({"last_msg_id": last})),
        )
        .await;
    assert_eq!(seqs(&history(&h)), (101..=110).rev().collect::<Vec<u64>>());
    assert_eq!(text_of(&history(&h)[0]), "m110");
    // Below seq 21 the store has nothing yet.
    let h = bob
        .ok(
            "get_history_message_list",
            local(json!({"last_msg_seq": 25})),
        )
        .await;
    assert_eq!(seqs(&history(&h)), [24, 23, 22, 21]);
    // The cloud fills the gap and records it as synced.
    let h = bob
        .ok(
            "get_history_message_list",
            json!({"get_type": "cloud_older", "user_id": "alice", "count": 10, "last_msg_seq": 25}),
        )
        .await;
    assert_eq!(seqs(&history(&h)), (15..=24).rev().collect::<Vec<u64>>());
    let h = bob
        .ok(
            "get_history_message_list",
            local(json!({"last_msg_seq": 25})),
        )
        .await;
    assert_eq!(seqs(&history(&h)), (15..=24).rev().collect::<Vec<u64>>());
    // Newer, oldest first.
    let h = bob
        .ok(
            "get_history_message_list",
            json!({"get_type": "cloud_newer", "user_id": "alice", "count": 10, "last_msg_seq": 115}),
        )
        .await;
    assert_eq!(seqs(&history(&h)), [116, 117, 118, 119, 120]);
    let h = bob
        .ok(
            "get_history_message_list",
            json!({"get_type": "local_newer", "user_id": "alice", "count": 3, "last_msg_seq": 14}),
        )
        .await;
    assert_eq!(seqs(&history(&h)), [15, 16, 17]);
    // The shorthand asks the cloud, newest first.
    let h = bob
        .ok(
            "get_c2c_history_message_list",
            json!({"user_id": "alice", "count": 5}),
        )
        .await;
    assert_eq!(seqs(&history(&h)), [120, 119, 118, 117, 116]);
    // find_messages by id.
    let f = bob
        .ok(
            "find_messages",
            json!({"msg_ids": [got[0]["msg_id"], "nope"]}),
        )
        .await;
    assert_eq!(seqs(&history(&f)), [21]);
    // History is never announced.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bob.event_count("on_recv_new_message"), 100);
}

#[tokio::test]
async fn conversations_are_ordered_and_unread_counts_follow_the_rule() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    let bob = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;
    alice
        .ok(
            "create_group",
            json!({"group_type": "Work", "group_id": "w1", "group_name": "Work",
                   "member_list": [{"user_id": "bob"}]}),
        )
        .await;
    for i in 0..3 {
        send_c2c_text(&alice, "bob", &format!("c{i}")).await;
    }
    // Excluded from unread: counts nothing, but is the last message.
    let m = alice
        .ok("create_text_message", json!({"text": "quiet"}))
        .await;
    alice
        .ok(
            "send_message",
            json!({"message": m, "receiver": "bob", "is_excluded_from_unread_count": true}),
        )
        .await;
    alice
        .ok(
            "send_group_text_message",
            json!({"text": "g0", "group_id": "w1"}),
        )
        .await;
    alice
        .ok(
            "send_group_text_message",
            json!({"text": "g1", "group_id": "w1"}),
        )
        .await;
    bob.expect_messages(6, WAIT).await;
    eventually("bob's total unread is 5", || async {
        total_unread(&bob).await == 5
    })
    .await;

    let list = bob
        .ok("get_conversation_list", json!({"next_seq": 0, "count": 10}))
        .await;
    let convs = list["conversation_list"].as_array().cloned().unwrap();
    assert_eq!(list["is_finished"], true);
    assert_eq!(
        convs
            .iter()
            .map(|c| c["conversation_id"].clone())
            .collect::<Vec<_>>(),
        [json!("group_w1"), json!("c2c_alice")]
    );
    assert_eq!(convs[0]["unread_count"], 2);
    assert_eq!(convs[0]["type"], "group");
    assert_eq!(text_of(&convs[0]["last_message"]), "g1");
    assert_eq!(convs[1]["unread_count"], 3);
    assert_eq!(text_of(&convs[1]["last_message"]), "quiet");
    let page = bob
        .ok("get_conversation_list", json!({"next_seq": 0, "count": 1}))
        .await;
    assert_eq!(page["is_finished"], false);
    let page2 = bob
        .ok(
            "get_conversation_list",
            json!({"next_seq": page["next_seq"], "count": 1}),
        )
        .await;
    assert_eq!(
        page2["conversation_list"][0]["conversation_id"],
        "c2c_alice"
    );

    bob.ok("mark_c2c_message_as_read", json!({"user_id": "alice"}))
        .await;
    assert_eq!(total_unread(&bob).await, 2);
    let c = bob
        .ok("get_conversation", json!({"conversation_id": "c2c_alice"}))
        .await;
    assert_eq!(c["unread_count"], 0);
    bob.ok("mark_group_message_as_read", json!({"group_id": "w1"}))
        .await;
    assert_eq!(total_unread(&bob).await, 0);
    // Events reach the handler on the engine's delivery thread, a moment after the answer.
    eventually("bob's last total event says 0", || async {
        let totals = bob.events("on_total_unread_message_count_changed");
        totals.last().map(|e| e["total_unread_count"].clone()) == Some(json!(0))
    })
    .await;
    assert!(!bob.events("on_new_conversation").is_empty());

    // A second device of bob's (web class, so both stay online) sees the read state at login.
    let bob_web = TestClient::with_config(&server, json!({"platform": "web"})).await;
    bob_web.login("bob").await;
    bob_web.expect_event("on_sync_server_finish", WAIT).await;
    assert_eq!(total_unread(&bob_web).await, 0);
}

#[tokio::test]
async fn send_options_are_carried_to_the_receiver() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    let bob = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;
    let m = alice
        .ok("create_text_message", json!({"text": "opts"}))
        .await;
    assert_eq!(m["status"], "sending");
    let sent = alice
        .ok(
            "send_message",
            json!({
                "message": m, "receiver": "bob", "priority": "low",
                "cloud_custom_data": "ccd", "need_read_receipt": true,
                "offline_push_info": {"title": "T", "desc": "D", "ext": "E", "disable_push": true},
                "is_excluded_from_last_message": true,
            }),
        )
        .await;
    assert_eq!(sent["msg_id"], m["msg_id"]);
    let got = bob.expect_messages(1, WAIT).await;
    let r = &got[0];
    assert_eq!(r["priority"], "low");
    assert_eq!(r["cloud_custom_data"], "ccd");
    assert_eq!(r["need_read_receipt"], true);
    assert_eq!(r["is_excluded_from_last_message"], true);
    assert_eq!(r["offline_push_info"]["title"], "T");
    assert_eq!(r["offline_push_info"]["ext"], "E");
    assert_eq!(r["offline_push_info"]["disable_push"], true);
    // Sending the same message object again is an invalid operation; resend of a sent one too.
    assert_eq!(
        alice
            .err_code("send_message", json!({"message": m, "receiver": "bob"}))
            .await,
        codes::ERR_INVALID_OPERATION
    );
    assert_eq!(
        alice
            .err_code("resend_message", json!({"msg_id": m["msg_id"]}))
            .await,
        codes::ERR_INVALID_OPERATION
    );
    // Online-only: delivered to the online receiver, never stored.
    let m = alice
        .ok("create_text_message", json!({"text": "live"}))
        .await;
    let s = alice
        .ok(
            "send_message",
            json!({"message": m, "receiver": "bob", "online_user_only": true}),
        )
        .await;
    assert_eq!(s["seq"], 0);
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "live");
    assert_eq!(got[0]["online_user_only"], true);
    let h = bob
        .ok(
            "get_history_message_list",
            json!({"get_type": "local_older", "user_id": "alice", "count": 10}),
        )
        .await;
    assert_eq!(seqs(&history(&h)), [1]);
}

#[tokio::test]
async fn oversize_not_logged_in_and_account_switch() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    // 6014 before login (create works: nothing is sent).
    assert_eq!(
        alice
            .err_code(
                "send_c2c_text_message",
                json!({"text": "x", "user_id": "bob"})
            )
            .await,
        codes::ERR_SDK_NOT_LOGGED_IN
    );
    assert_eq!(
        alice.err_code("get_conversation_list", json!({})).await,
        codes::ERR_SDK_NOT_LOGGED_IN
    );
    assert_eq!(
        alice.err_code("no_such_method", json!({})).await,
        codes::ERR_INVALID_PARAMETERS
    );
    alice.login("alice").await;
    // 12 KB: refused locally with 8001, nothing stored or sent.
    let big = "x".repeat(12 * 1024 + 1);
    assert_eq!(
        alice
            .err_code(
                "send_c2c_text_message",
                json!({"text": big, "user_id": "bob"})
            )
            .await,
        codes::ERR_MSG_TOO_LARGE
    );
    let fits = "y".repeat(12 * 1024 - 16);
    let ok = alice
        .ok(
            "send_c2c_text_message",
            json!({"text": fits, "user_id": "bob"}),
        )
        .await;
    assert_eq!(ok["seq"], 1);
    assert_eq!(
        alice
            .err_code("send_c2c_text_message", json!({"text": "x", "user_id": ""}))
            .await,
        codes::ERR_INVALID_USER_ID
    );
    // Switching account: login as carol logs alice out; carol's store is her own.
    alice.login("carol").await;
    let u = alice.ok("get_login_user", json!({})).await;
    assert_eq!(u["user_id"], "carol");
    let h = alice
        .ok(
            "get_history_message_list",
            json!({"get_type": "local_older", "user_id": "bob", "count": 10}),
        )
        .await;
    assert!(history(&h).is_empty());
    alice.ok("logout", json!({})).await;
    assert_eq!(
        alice.ok("get_login_status", json!({})).await["status"],
        "logout"
    );
    // Back to alice: her store still has the message.
    alice.login("alice").await;
    let h = alice
        .ok(
            "get_history_message_list",
            json!({"get_type": "local_older", "user_id": "bob", "count": 10}),
        )
        .await;
    let ids: HashSet<String> = history(&h)
        .iter()
        .map(|m| m["msg_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(ids.contains(ok["msg_id"].as_str().unwrap()));
}

#[tokio::test]
async fn offline_group_messages_arrive_once_after_login() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    alice.login("alice").await;
    alice
        .ok(
            "create_group",
            json!({"group_type": "Meeting", "group_id": "m1", "group_name": "Meet"}),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    {
        let bob = TestClient::with_data_dir(&server, dir.path(), json!({})).await;
        bob.login("bob").await;
        bob.ok("join_group", json!({"group_id": "m1", "message": ""}))
            .await;
        alice
            .ok(
                "send_group_text_message",
                json!({"text": "while on", "group_id": "m1"}),
            )
            .await;
        let got = bob.expect_messages(1, WAIT).await;
        assert_eq!(text_of(&got[0]), "while on");
        bob.shutdown().await;
    }
    for i in 0..3 {
        alice
            .ok(
                "send_group_text_message",
                json!({"text": format!("while off {i}"), "group_id": "m1"}),
            )
            .await;
    }
    let bob = TestClient::with_data_dir(&server, dir.path(), json!({})).await;
    bob.login("bob").await;
    let got = bob.expect_messages(3, WAIT).await;
    assert_eq!(
        got.iter().map(text_of).collect::<Vec<_>>(),
        ["while off 0", "while off 1", "while off 2"]
    );
    bob.expect_event("on_sync_server_finish", WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bob.event_count("on_recv_new_message"), 3);
    let c = bob
        .ok("get_conversation", json!({"conversation_id": "group_m1"}))
        .await;
    assert_eq!(text_of(&c["last_message"]), "while off 2");
    assert_eq!(c["unread_count"], 4);
    // A third login of the same store has nothing new.
    bob.shutdown().await;
    drop(bob);
    let bob = TestClient::with_data_dir(&server, dir.path(), json!({})).await;
    bob.login("bob").await;
    bob.expect_event("on_sync_server_finish", WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bob.event_count("on_recv_new_message"), 0);
}
