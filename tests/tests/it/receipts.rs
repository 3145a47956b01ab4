//! Read state end to end: the C2C read receipt (`on_recv_c2c_read_receipt`, `is_peer_read`) live
//! and after a restart, and the convergence invariant — two devices of one user and a peer
//! exchange a few hundred messages while connections drop and the server restarts; afterwards
//! both devices hold the same conversation list, the same unread counts (checked against the
//! unread rule computed here, independently, from the messages and read positions) and the right
//! `is_peer_read`.

use std::time::Duration;

use chime_proto::codes;
use chime_tests::{TestClient, TestProxy, TestServer, eventually, send_c2c_text, text_of};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn fast(platform: &str) -> Value {
    json!({"reconnect_min_ms": 50, "reconnect_max_ms": 500, "platform": platform})
}

async fn conv(c: &TestClient, id: &str) -> Value {
    c.ok("get_conversation", json!({ "conversation_id": id }))
        .await
}

#[tokio::test]
async fn c2c_read_receipts_reach_the_sender_live_and_after_a_restart() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bob = TestClient::with_config(&server, fast("windows")).await;
    bob.login("bob").await;
    {
        let alice = TestClient::with_data_dir(&server, dir.path(), fast("windows")).await;
        alice.login("alice").await;
        send_c2c_text(&alice, "bob", "one").await;
        let two = send_c2c_text(&alice, "bob", "two").await;
        bob.expect_messages(2, WAIT).await;
        assert_eq!(
            conv(&alice, "c2c_bob").await["last_message"]["is_peer_read"],
            false
        );

        bob.ok("mark_c2c_message_as_read", json!({"user_id": "alice"}))
            .await;
        let ev = alice.expect_event("on_recv_c2c_read_receipt", WAIT).await;
        let r = &ev["receipt_list"][0];
        assert_eq!(r["user_id"], "bob");
        assert_eq!(r["is_peer_read"], true);
        assert_eq!(r["peer_read_seq"], two["seq"]);
        let c = conv(&alice, "c2c_bob").await;
        assert_eq!(c["last_message"]["is_peer_read"], true);
        assert_eq!(c["peer_read_seq"], two["seq"]);

        let three = send_c2c_text(&alice, "bob", "three").await;
        bob.expect_messages(1, WAIT).await;
        assert_eq!(three["seq"], 3);
        assert_eq!(
            conv(&alice, "c2c_bob").await["last_message"]["is_peer_read"],
            false
        );
        alice.shutdown().await;
    }
    // Read while alice is away: her next sync carries it.
    bob.ok("mark_c2c_message_as_read", json!({"user_id": "alice"}))
        .await;
    let alice = TestClient::with_data_dir(&server, dir.path(), fast("windows")).await;
    alice.login("alice").await;
    let ev = alice.expect_event("on_recv_c2c_read_receipt", WAIT).await;
    assert_eq!(ev["receipt_list"][0]["peer_read_seq"], 3);
    let c = conv(&alice, "c2c_bob").await;
    assert_eq!(text_of(&c["last_message"]), "three");
    assert_eq!(c["last_message"]["is_peer_read"], true);
    // A device that never saw the receipt live has it too.
    let web = TestClient::with_config(&server, fast("web")).await;
    web.login("alice").await;
    web.expect_event("on_sync_server_finish", WAIT).await;
    assert_eq!(conv(&web, "c2c_bob").await["peer_read_seq"], 3);
}

/// Every message of a conversation from the cloud, oldest first (paged, bounded).
async fn all_messages(c: &TestClient, key: (&str, &str)) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut anchor = 0u64;
    for _ in 0..100 {
        let mut p = json!({"get_type": "cloud_older", "count": 100});
        p[key.0] = json!(key.1);
        if anchor > 0 {
            p["last_msg_seq"] = json!(anchor);
        }
        let page = c.ok("get_history_message_list", p).await;
        let list = page["message_list"].as_array().cloned().unwrap_or_default();
        let oldest = list
            .iter()
            .filter_map(|m| m["seq"].as_u64())
            .filter(|s| *s > 0)
            .min();
        let before = out.len();
        for m in list {
            if !out.iter().any(|o| o["msg_id"] == m["msg_id"]) {
                out.push(m);
            }
        }
        match oldest {
            Some(s) if s > 1 && out.len() > before => anchor = s,
            _ => break,
        }
    }
    out.sort_by_key(|m| m["seq"].as_u64().unwrap_or(0));
    out
}

/// The unread rule, computed here from the messages: from someone else, above the read
/// position, not a group tips message.
fn expected_unread(messages: &[Value], me: &str, read_seq: u64) -> u64 {
    messages
        .iter()
        .filter(|m| {
            m["sender"] != me
                && m["seq"].as_u64().unwrap_or(0) > read_seq
                && m["elem_list"][0]["elem_type"] != "group_tips"
        })
        .count() as u64
}

/// (conversation id, unread, read_seq, last message id, is_peer_read of the last message).
async fn snapshot(c: &TestClient) -> Vec<(String, u64, u64, String, bool)> {
    let list = c
        .ok(
            "get_conversation_list",
            json!({"next_seq": 0, "count": 100}),
        )
        .await;
    list["conversation_list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["conversation_id"].as_str().unwrap_or_default().to_owned(),
                c["unread_count"].as_u64().unwrap_or(u64::MAX),
                c["read_seq"].as_u64().unwrap_or(u64::MAX),
                c["last_message"]["msg_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                c["last_message"]["is_peer_read"] == true,
            )
        })
        .collect()
}

#[tokio::test]
async fn two_devices_and_a_peer_converge_across_drops_and_a_server_restart() {
    // Sends here come faster than the seed's 40 group messages/s, past which the server drops
    // messages by priority: lift the limit so that every send is stored.
    let mut server = TestServer::start_with_config("group_message_rate = 100000\n").await;
    let proxy = TestProxy::start(&server).await;
    let pc = TestClient::with_config(&server, fast("windows")).await;
    pc.login("alice").await;
    let web = TestClient::at_url(&proxy.ws_url(), fast("web")).await;
    web.login("alice").await;
    let bob = TestClient::with_config(&server, fast("android")).await;
    bob.login("bob").await;
    bob.ok(
        "create_group",
        json!({"group_type": "Work", "group_id": "conv", "group_name": "conv",
               "member_list": [{"user_id": "alice"}]}),
    )
    .await;

    let mut sent = 0;
    for round in 0..2 {
        for i in 0..150 {
            let text = format!("r{round} m{i}");
            match i % 5 {
                0 | 1 => {
                    bob.ok(
                        "send_c2c_text_message",
                        json!({"text": text, "user_id": "alice"}),
                    )
                    .await;
                }
                2 => {
                    bob.ok(
                        "send_group_text_message",
                        json!({"text": text, "group_id": "conv"}),
                    )
                    .await;
                }
                3 => {
                    pc.ok(
                        "send_c2c_text_message",
                        json!({"text": text, "user_id": "bob"}),
                    )
                    .await;
                }
                _ => {
                    web.ok(
                        "send_group_text_message",
                        json!({"text": text, "group_id": "conv"}),
                    )
                    .await;
                }
            }
            sent += 1;
            if i % 37 == 36 {
                proxy.cut();
            }
            if i == 60 {
                pc.ok("mark_c2c_message_as_read", json!({"user_id": "bob"}))
                    .await;
            }
            if i == 100 {
                web.ok("mark_group_message_as_read", json!({"group_id": "conv"}))
                    .await;
            }
        }
        if round == 0 {
            server.restart().await;
        }
    }
    assert_eq!(sent, 300);
    // Bob reads everything of alice's: her last C2C message is then peer-read.
    bob.ok(
        "send_c2c_text_message",
        json!({"text": "last from bob", "user_id": "alice"}),
    )
    .await;
    pc.ok(
        "send_c2c_text_message",
        json!({"text": "last from alice", "user_id": "bob"}),
    )
    .await;
    eventually("bob has alice's last message", || async {
        text_of(&conv(&bob, "c2c_alice").await["last_message"]) == "last from alice"
    })
    .await;
    bob.ok("mark_c2c_message_as_read", json!({"user_id": "alice"}))
        .await;

    // The last group sends reach this device by push a moment after their acks.
    eventually("pc has every group message", || async {
        let last = conv(&pc, "group_conv").await["last_message"]["seq"].as_u64();
        last == Some(120)
    })
    .await;
    let c2c = all_messages(&pc, ("user_id", "bob")).await;
    let group = all_messages(&pc, ("group_id", "conv")).await;
    assert_eq!(c2c.len(), 182, "C2C messages in the cloud");
    assert_eq!(
        group
            .iter()
            .filter(|m| m["elem_list"][0]["elem_type"] == "text")
            .count(),
        120,
        "group texts in the cloud"
    );
    eventually("both devices hold the same list", || async {
        let (a, b) = (snapshot(&pc).await, snapshot(&web).await);
        a == b && a.len() == 2 && a.iter().all(|c| c.4 || c.0 == "group_conv")
    })
    .await;
    for c in [&pc, &web] {
        let snap = snapshot(c).await;
        let mut total = 0;
        for (id, unread, read_seq, _, peer_read) in &snap {
            let msgs = if id == "c2c_bob" { &c2c } else { &group };
            assert_eq!(
                *unread,
                expected_unread(msgs, "alice", *read_seq),
                "{id}: unread by the rule"
            );
            if id == "c2c_bob" {
                assert!(*peer_read, "alice's last C2C message is read by bob");
            }
            total += unread;
        }
        let t = c.ok("get_total_unread_message_count", json!({})).await;
        assert_eq!(t["total_unread_count"], total);
        assert!(
            total > 0,
            "bob's last message and the group's later ones are unread"
        );
    }
}

#[tokio::test]
async fn message_read_receipts_count_readers_in_groups_and_c2c() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for id in ["alice", "bob", "carol"] {
        let c = TestClient::with_config(&server, fast("windows")).await;
        c.login(id).await;
        clients.push(c);
    }
    let (alice, bob, carol) = (&clients[0], &clients[1], &clients[2]);
    alice
        .ok(
            "create_group",
            json!({"group_type": "Work", "group_id": "rr", "group_name": "rr",
                   "member_list": [{"user_id": "bob"}, {"user_id": "carol"}]}),
        )
        .await;
    let m = alice
        .ok("create_text_message", json!({"text": "please read"}))
        .await;
    let sent = alice
        .ok(
            "send_message",
            json!({"message": m, "group_id": "rr", "need_read_receipt": true}),
        )
        .await;
    let id = sent["msg_id"].clone();
    for c in [bob, carol] {
        eventually("the member has the message", || async {
            let f = c
                .ok("find_messages", json!({ "msg_ids": [id.clone()] }))
                .await;
            f["message_list"].as_array().is_some_and(|l| l.len() == 1)
        })
        .await;
    }
    let receipts = alice
        .ok(
            "get_message_read_receipts",
            json!({ "msg_ids": [id.clone()] }),
        )
        .await;
    let r = &receipts["receipt_list"][0];
    assert_eq!(
        (r["read_count"].clone(), r["unread_count"].clone()),
        (json!(0), json!(2))
    );
    assert_eq!(r["group_id"], "rr");

    bob.ok(
        "send_message_read_receipts",
        json!({ "msg_ids": [id.clone()] }),
    )
    .await;
    let ev = alice
        .expect_event("on_recv_message_read_receipts", WAIT)
        .await;
    let r = &ev["receipt_list"][0];
    assert_eq!(r["msg_id"], id);
    assert_eq!(
        (r["read_count"].clone(), r["unread_count"].clone()),
        (json!(1), json!(1))
    );
    // A second receipt from the same reader counts once.
    bob.ok(
        "send_message_read_receipts",
        json!({ "msg_ids": [id.clone()] }),
    )
    .await;
    let members =
        |filter: &str| json!({"msg_id": id.clone(), "filter": filter, "next_seq": 0, "count": 10});
    let read = alice
        .ok("get_group_message_read_member_list", members("read"))
        .await;
    assert_eq!(read["member_list"], json!([{"user_id": "bob"}]));
    assert_eq!(read["is_finished"], true);
    let unread = alice
        .ok("get_group_message_read_member_list", members("unread"))
        .await;
    assert_eq!(unread["member_list"], json!([{"user_id": "carol"}]));
    let r = alice
        .ok(
            "get_message_read_receipts",
            json!({ "msg_ids": [id.clone()] }),
        )
        .await;
    assert_eq!(r["receipt_list"][0]["read_count"], 1);

    // C2C.
    let m = alice
        .ok("create_text_message", json!({"text": "c2c receipt"}))
        .await;
    let sent = alice
        .ok(
            "send_message",
            json!({"message": m, "receiver": "bob", "need_read_receipt": true}),
        )
        .await;
    let c2c_id = sent["msg_id"].clone();
    eventually("bob has the C2C message", || async {
        let f = bob
            .ok("find_messages", json!({ "msg_ids": [c2c_id.clone()] }))
            .await;
        f["message_list"].as_array().is_some_and(|l| l.len() == 1)
    })
    .await;
    bob.ok(
        "send_message_read_receipts",
        json!({ "msg_ids": [c2c_id.clone()] }),
    )
    .await;
    let ev = alice
        .expect_event("on_recv_message_read_receipts", WAIT)
        .await;
    let r = &ev["receipt_list"][0];
    assert_eq!(r["msg_id"], c2c_id);
    assert_eq!(r["user_id"], "bob");
    assert_eq!(r["is_peer_read"], true);

    // Errors.
    let own = json!({ "msg_ids": [c2c_id.clone()] });
    assert_eq!(
        alice.err_code("send_message_read_receipts", own).await,
        codes::ERR_INVALID_PARAMETERS
    );
    let plain = send_c2c_text(alice, "bob", "no receipt wanted").await;
    eventually("bob has the plain message", || async {
        let f = bob
            .ok(
                "find_messages",
                json!({ "msg_ids": [plain["msg_id"].clone()] }),
            )
            .await;
        f["message_list"].as_array().is_some_and(|l| l.len() == 1)
    })
    .await;
    assert_eq!(
        bob.err_code(
            "send_message_read_receipts",
            json!({ "msg_ids": [plain["msg_id"].clone()] })
        )
        .await,
        codes::ERR_INVALID_PARAMETERS
    );
    assert_eq!(
        bob.err_code("send_message_read_receipts", json!({ "msg_ids": ["nope"] }))
            .await,
        codes::ERR_INVALID_PARAMETERS
    );
    assert_eq!(
        alice
            .err_code("get_group_message_read_member_list", members("sideways"))
            .await,
        codes::ERR_INVALID_PARAMETERS
    );
}
