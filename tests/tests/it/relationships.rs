//! Friends, applications, friend groups, blacklist, follow and local friend search end to end
//! (issue 10): several users, two devices of one user, offline catch-up by version, and the
//! error codes of the seed (30xxx from the server, 9001–9006 and 7003 from the engine).

use std::time::Duration;

use chime_tests::{TestClient, TestServer, send_c2c_text, text_of};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(800);

async fn user(server: &TestServer, id: &str) -> TestClient {
    let c = TestClient::new(server).await;
    c.login(id).await;
    c
}

/// A second device of a user (web, so that both stay online under the default policy).
async fn second_device(server: &TestServer, id: &str) -> TestClient {
    let c = TestClient::with_config(server, json!({ "platform": "web" })).await;
    c.login(id).await;
    c
}

async fn allow(c: &TestClient, allow_type: &str) {
    c.ok("set_self_info", json!({ "allow_type": allow_type }))
        .await;
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    let mut v: Vec<String> = list[field]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["user_id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn friend_ids(c: &TestClient) -> Vec<String> {
    ids(
        &c.ok("get_friend_list", json!({})).await,
        "friend_info_list",
    )
}

async fn relation(c: &TestClient, other: &str) -> String {
    let r = c
        .ok(
            "check_friend",
            json!({ "user_ids": [other], "check_type": "both" }),
        )
        .await;
    r["check_result_list"][0]["result_type"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn allow_any_two_way_add_reaches_both_users_and_both_devices() {
    let server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    let alice2 = second_device(&server, "alice").await;
    let bob = user(&server, "bob").await;
    allow(&bob, "allow_any").await;

    let r = alice
        .ok(
            "add_friend",
            json!({
                "user_id": "bob", "remark": "Bobby", "add_wording": "hi",
                "add_source": "AddSource_Type_search", "add_type": "both", "friend_group": "work"
            }),
        )
        .await;
    assert_eq!(
        r,
        json!({"user_id": "bob", "result_code": 0, "result_info": ""})
    );

    for c in [&alice, &alice2] {
        let ev = c.expect_event("on_friend_list_added", WAIT).await;
        let f = &ev["friend_info_list"][0];
        assert_eq!(f["user_id"], "bob");
        assert_eq!(f["friend_remark"], "Bobby");
        assert_eq!(f["friend_groups"], json!(["work"]));
        assert_eq!(f["friend_add_source"], "AddSource_Type_search");
        assert_eq!(f["friend_add_wording"], "hi");
        assert_eq!(f["user_full_info"]["allow_type"], "allow_any");
        let g = c.expect_event("on_friend_group_created", WAIT).await;
        assert_eq!(g["group_name"], "work");
    }
    let ev = bob.expect_event("on_friend_list_added", WAIT).await;
    assert_eq!(ev["friend_info_list"][0]["user_id"], "alice");
    assert_eq!(ev["friend_info_list"][0]["friend_remark"], "");

    assert_eq!(friend_ids(&alice).await, vec!["bob"]);
    assert_eq!(friend_ids(&alice2).await, vec!["bob"]);
    assert_eq!(friend_ids(&bob).await, vec!["alice"]);
    assert_eq!(relation(&alice, "bob").await, "both_way");
    assert_eq!(relation(&bob, "alice").await, "both_way");
    // Adding again: already friends.
    let again = alice
        .ok(
            "add_friend",
            json!({ "user_id": "bob", "add_type": "both" }),
        )
        .await;
    assert_eq!(again["result_code"], 30015);
    // No application was created on either side.
    let apps = bob.ok("get_friend_application_list", json!({})).await;
    assert_eq!(apps, json!({"unread_count": 0, "application_list": []}));
}

#[tokio::test]
async fn single_add_is_one_way_and_delete_single_or_both() {
    let server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    let bob = user(&server, "bob").await;
    allow(&bob, "allow_any").await;
    allow(&alice, "allow_any").await;

    let r = alice
        .ok(
            "add_friend",
            json!({ "user_id": "bob", "add_type": "single" }),
        )
        .await;
    assert_eq!(r["result_code"], 0);
    assert_eq!(friend_ids(&alice).await, vec!["bob"]);
    assert_eq!(friend_ids(&bob).await, Vec::<String>::new());
    assert_eq!(relation(&alice, "bob").await, "in_my_friend_list");
    assert_eq!(relation(&bob, "alice").await, "in_other_friend_list");
    let single = bob
        .ok(
            "check_friend",
            json!({ "user_ids": ["alice"], "check_type": "single" }),
        )
        .await;
    assert_eq!(single["check_result_list"][0]["result_type"], "no_relation");
    // A one-way friendship is completed by a both-way add from the other side.
    let r = bob
        .ok(
            "add_friend",
            json!({ "user_id": "alice", "add_type": "single" }),
        )
        .await;
    assert_eq!(r["result_code"], 0);
    assert_eq!(relation(&alice, "bob").await, "both_way");

    // Single delete: only my list.
    let d = alice
        .ok(
            "delete_from_friend_list",
            json!({ "user_ids": ["bob"], "delete_type": "single" }),
        )
        .await;
    assert_eq!(
        d["result_list"],
        json!([{"user_id": "bob", "result_code": 0, "result_info": ""}])
    );
    let ev = alice.expect_event("on_friend_list_deleted", WAIT).await;
    assert_eq!(ev, json!({"user_ids": ["bob"]}));
    assert_eq!(relation(&alice, "bob").await, "in_other_friend_list");
    assert_eq!(friend_ids(&bob).await, vec!["alice"]);

    // Both: the other side loses me too; deleting a non-friend answers 31704 per user.
    alice
        .ok(
            "add_friend",
            json!({ "user_id": "bob", "add_type": "single" }),
        )
        .await;
    let d = alice
        .ok(
            "delete_from_friend_list",
            json!({ "user_ids": ["bob", "carol"], "delete_type": "both" }),
        )
        .await;
    assert_eq!(d["result_list"][0]["result_code"], 0);
    assert_eq!(d["result_list"][1]["result_code"], 31704);
    let ev = bob.expect_event("on_friend_list_deleted", WAIT).await;
    assert_eq!(ev, json!({"user_ids": ["alice"]}));
    assert_eq!(relation(&bob, "alice").await, "no_relation");
    assert_eq!(friend_ids(&bob).await, Vec::<String>::new());
}

#[tokio::test]
async fn need_confirm_applications_agree_agree_and_add_refuse_and_read() {
    let server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    let bob = user(&server, "bob").await;
    let carol = user(&server, "carol").await;
    let dave = user(&server, "dave").await;
    // bob keeps the default allow type: need confirmation.
    let r = alice
        .ok(
            "add_friend",
            json!({ "user_id": "bob", "add_wording": "it's alice", "remark": "B", "add_type": "both" }),
        )
        .await;
    assert_eq!(r["result_code"], 30539);
    let ev = bob
        .expect_event("on_friend_application_list_added", WAIT)
        .await;
    let a = &ev["application_list"][0];
    assert_eq!(a["user_id"], "alice");
    assert_eq!(a["type"], "come_in");
    assert_eq!(a["add_wording"], "it's alice");
    let ev = alice
        .expect_event("on_friend_application_list_added", WAIT)
        .await;
    assert_eq!(ev["application_list"][0]["user_id"], "bob");
    assert_eq!(ev["application_list"][0]["type"], "send_out");
    assert_eq!(friend_ids(&alice).await, Vec::<String>::new());

    let apps = bob.ok("get_friend_application_list", json!({})).await;
    assert_eq!(apps["unread_count"], 1);
    assert_eq!(ids(&apps, "application_list"), vec!["alice"]);
    bob.ok("set_friend_application_read", json!({})).await;
    bob.expect_event("on_friend_application_list_read", WAIT)
        .await;
    let apps = bob.ok("get_friend_application_list", json!({})).await;
    assert_eq!(apps["unread_count"], 0);

    // Agree: the applicant gets me (one way), the application goes on both sides.
    let r = bob
        .ok(
            "accept_friend_application",
            json!({ "user_id": "alice", "response_type": "agree" }),
        )
        .await;
    assert_eq!(r["result_code"], 0);
    let ev = alice.expect_event("on_friend_list_added", WAIT).await;
    assert_eq!(ev["friend_info_list"][0]["user_id"], "bob");
    assert_eq!(ev["friend_info_list"][0]["friend_remark"], "B");
    let ev = alice
        .expect_event("on_friend_application_list_deleted", WAIT)
        .await;
    assert_eq!(ev, json!({"user_ids": ["bob"]}));
    let ev = bob
        .expect_event("on_friend_application_list_deleted", WAIT)
        .await;
    assert_eq!(ev, json!({"user_ids": ["alice"]}));
    assert_eq!(relation(&alice, "bob").await, "in_my_friend_list");
    assert_eq!(friend_ids(&bob).await, Vec::<String>::new());

    // Agree and add: both ways.
    carol
        .ok(
            "add_friend",
            json!({ "user_id": "bob", "add_type": "both" }),
        )
        .await;
    bob.expect_event("on_friend_application_list_added", WAIT)
        .await;
    let r = bob
        .ok(
            "accept_friend_application",
            json!({ "user_id": "carol", "response_type": "agree_and_add", "remark": "C" }),
        )
        .await;
    assert_eq!(r["result_code"], 0);
    assert_eq!(relation(&bob, "carol").await, "both_way");
    let list = bob.ok("get_friend_list", json!({})).await;
    assert_eq!(list["friend_info_list"][0]["friend_remark"], "C");

    // Refuse: no friendship, the application is gone on both sides.
    dave.ok(
        "add_friend",
        json!({ "user_id": "bob", "add_type": "both" }),
    )
    .await;
    bob.expect_event("on_friend_application_list_added", WAIT)
        .await;
    let r = bob
        .ok("refuse_friend_application", json!({ "user_id": "dave" }))
        .await;
    assert_eq!(r["result_code"], 0);
    assert_eq!(relation(&bob, "dave").await, "no_relation");
    // Dave's device learns of the refusal by the relation push that follows bob's answer.
    chime_tests::eventually("dave's sent application is gone", || async {
        let apps = dave.ok("get_friend_application_list", json!({})).await;
        apps["application_list"] == json!([])
    })
    .await;
    // Accepting what no longer exists: 30614.
    let r = bob
        .ok("accept_friend_application", json!({ "user_id": "dave" }))
        .await;
    assert_eq!(r["result_code"], 30614);

    // Delete an application without answering it.
    dave.ok("add_friend", json!({ "user_id": "bob" })).await;
    bob.ok("delete_friend_application", json!({ "user_id": "dave" }))
        .await;
    let apps = bob.ok("get_friend_application_list", json!({})).await;
    assert_eq!(apps["application_list"], json!([]));
    assert_eq!(
        bob.err_code("delete_friend_application", json!({ "user_id": "dave" }))
            .await,
        30614
    );
}

#[tokio::test]
async fn deny_any_refuses_every_request() {
    let server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    let bob = user(&server, "bob").await;
    allow(&bob, "deny_any").await;
    for add_type in ["single", "both"] {
        let r = alice
            .ok(
                "add_friend",
                json!({ "user_id": "bob", "add_type": add_type }),
            )
            .await;
        assert_eq!(r["result_code"], 30516, "{add_type}");
    }
    assert_eq!(
        bob.next_event("on_friend_application_list_added", QUIET)
            .await,
        None
    );
    assert_eq!(relation(&alice, "bob").await, "no_relation");
    // A user that does not exist.
    let r = alice.ok("add_friend", json!({ "user_id": "nobody" })).await;
    assert_eq!(r["result_code"], 30003);
}

#[tokio::test]
async fn blacklist_blocks_messages_with_20007_and_adds_both_ways() {
    let server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    let bob = user(&server, "bob").await;
    let bob2 = second_device(&server, "bob").await;
    allow(&bob, "allow_any").await;
    allow(&alice, "allow_any").await;
    alice
        .ok(
            "add_friend",
            json!({ "user_id": "bob", "add_type": "both" }),
        )
        .await;

    let r = bob
        .ok("add_to_black_list", json!({ "user_ids": ["alice"] }))
        .await;
    assert_eq!(r["result_list"][0]["result_code"], 0);
    for c in [&bob, &bob2] {
        let ev = c.expect_event("on_black_list_added", WAIT).await;
        assert_eq!(ev["friend_info_list"][0]["user_id"], "alice");
        assert_eq!(
            ids(&c.ok("get_black_list", json!({})).await, "friend_info_list"),
            vec!["alice"]
        );
    }
    // Blocking ends the friendship both ways.
    assert_eq!(relation(&bob, "alice").await, "no_relation");
    let ev = alice.expect_event("on_friend_list_deleted", WAIT).await;
    assert_eq!(ev, json!({"user_ids": ["bob"]}));

    // The blocked user's messages fail with 20007 and never arrive.
    let msg = alice
        .ok("create_text_message", json!({ "text": "hello?" }))
        .await;
    let code = alice
        .err_code("send_message", json!({ "message": msg, "receiver": "bob" }))
        .await;
    assert_eq!(code, 20007);
    assert_eq!(bob.next_event("on_recv_new_message", QUIET).await, None);
    // Bob may still write to alice.
    send_c2c_text(&bob, "alice", "you are blocked").await;
    let got = alice.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "you are blocked");
    // Neither can add the other while blocked.
    let r = alice.ok("add_friend", json!({ "user_id": "bob" })).await;
    assert_eq!(r["result_code"], 30525);
    let r = bob.ok("add_friend", json!({ "user_id": "alice" })).await;
    assert_eq!(r["result_code"], 30515);
    // Self: refused per user.
    let r = bob
        .ok("add_to_black_list", json!({ "user_ids": ["bob"] }))
        .await;
    assert_eq!(r["result_list"][0]["result_code"], 30001);

    // Unblocked: messages flow again.
    bob.ok("delete_from_black_list", json!({ "user_ids": ["alice"] }))
        .await;
    for c in [&bob, &bob2] {
        let ev = c.expect_event("on_black_list_deleted", WAIT).await;
        assert_eq!(ev, json!({"user_ids": ["alice"]}));
    }
    send_c2c_text(&alice, "bob", "thanks").await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "thanks");
}

#[tokio::test]
async fn friend_groups_crud_with_events_on_both_devices() {
    let server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    let alice2 = second_device(&server, "alice").await;
    for u in ["bob", "carol"] {
        let c = user(&server, u).await;
        allow(&c, "allow_any").await;
        alice
            .ok("add_friend", json!({ "user_id": u, "add_type": "single" }))
            .await;
    }
    let r = alice
        .ok(
            "create_friend_group",
            json!({ "group_name": "work", "user_ids": ["bob", "zed"] }),
        )
        .await;
    assert_eq!(r["result_list"][0]["result_code"], 0);
    assert_eq!(r["result_list"][1]["result_code"], 31704);
    for c in [&alice, &alice2] {
        let ev = c.expect_event("on_friend_group_created", WAIT).await;
        assert_eq!(ev["group_name"], "work");
        assert_eq!(ids(&ev, "friend_info_list"), vec!["bob"]);
    }
    assert_eq!(
        alice
            .err_code("create_friend_group", json!({ "group_name": "work" }))
            .await,
        30001
    );
    alice
        .ok(
            "add_friends_to_friend_group",
            json!({ "group_name": "work", "user_ids": ["carol"] }),
        )
        .await;
    for c in [&alice, &alice2] {
        let ev = c
            .expect_event("on_friends_added_to_friend_group", WAIT)
            .await;
        assert_eq!(ev["group_name"], "work");
        assert_eq!(ids(&ev, "friend_info_list"), vec!["carol"]);
    }
    let groups = alice2.ok("get_friend_groups", json!({})).await;
    assert_eq!(
        groups["friend_group_list"],
        json!([{"name": "work", "friend_count": 2, "friend_id_list": ["bob", "carol"]}])
    );
    let friends = alice2.ok("get_friend_list", json!({})).await;
    assert_eq!(
        friends["friend_info_list"][1]["friend_groups"],
        json!(["work"])
    );

    alice
        .ok(
            "delete_friends_from_friend_group",
            json!({ "group_name": "work", "user_ids": ["bob"] }),
        )
        .await;
    for c in [&alice, &alice2] {
        let ev = c
            .expect_event("on_friends_deleted_from_friend_group", WAIT)
            .await;
        assert_eq!(ev, json!({"group_name": "work", "user_ids": ["bob"]}));
    }
    alice
        .ok(
            "rename_friend_group",
            json!({ "old_name": "work", "new_name": "team" }),
        )
        .await;
    for c in [&alice, &alice2] {
        let ev = c.expect_event("on_friend_group_name_changed", WAIT).await;
        assert_eq!(ev, json!({"old_name": "work", "new_name": "team"}));
        let groups = c.ok("get_friend_groups", json!({})).await;
        assert_eq!(
            groups["friend_group_list"],
            json!([{"name": "team", "friend_count": 1, "friend_id_list": ["carol"]}])
        );
    }
    assert_eq!(alice.event_count("on_friend_group_deleted"), 0);
    let friends = alice.ok("get_friend_list", json!({})).await;
    assert_eq!(
        friends["friend_info_list"][1]["friend_groups"],
        json!(["team"])
    );

    alice
        .ok("delete_friend_group", json!({ "group_names": ["team"] }))
        .await;
    for c in [&alice, &alice2] {
        let ev = c.expect_event("on_friend_group_deleted", WAIT).await;
        assert_eq!(ev, json!({"group_names": ["team"]}));
        let groups = c.ok("get_friend_groups", json!({})).await;
        assert_eq!(groups["friend_group_list"], json!([]));
    }
    let friends = alice.ok("get_friend_list", json!({})).await;
    assert_eq!(friends["friend_info_list"][1]["friend_groups"], json!([]));
}

#[tokio::test]
async fn an_offline_device_catches_up_on_friends_blacklist_and_remarks() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let web = json!({ "platform": "web" });
    let alice = user(&server, "alice").await;
    for u in ["bob", "carol", "dave"] {
        let c = user(&server, u).await;
        allow(&c, "allow_any").await;
    }
    alice
        .ok(
            "add_friend",
            json!({ "user_id": "bob", "add_type": "single" }),
        )
        .await;
    {
        let alice2 = TestClient::with_data_dir(&server, dir.path(), web.clone()).await;
        alice2.login("alice").await;
        assert_eq!(friend_ids(&alice2).await, vec!["bob"]);
        alice2.shutdown().await;
    }
    // While the second device is off: changes on the first.
    alice
        .ok(
            "add_friend",
            json!({ "user_id": "carol", "add_type": "single" }),
        )
        .await;
    alice
        .ok(
            "delete_from_friend_list",
            json!({ "user_ids": ["bob"], "delete_type": "single" }),
        )
        .await;
    alice
        .ok(
            "set_friend_info",
            json!({ "user_id": "carol", "friend_remark": "Caro", "friend_custom_info": {"Tag_SNS_Custom_city": "Paris"} }),
        )
        .await;
    alice
        .ok("add_to_black_list", json!({ "user_ids": ["dave"] }))
        .await;

    let alice2 = TestClient::with_data_dir(&server, dir.path(), web).await;
    // Before login, the stored state is what the device had.
    alice2.login("alice").await;
    let ev = alice2.expect_event("on_friend_list_added", WAIT).await;
    assert_eq!(ids(&ev, "friend_info_list"), vec!["carol"]);
    assert_eq!(ev["friend_info_list"][0]["friend_remark"], "Caro");
    assert_eq!(
        ev["friend_info_list"][0]["friend_custom_info"],
        json!({"city": "Paris"})
    );
    let ev = alice2.expect_event("on_friend_list_deleted", WAIT).await;
    assert_eq!(ev, json!({"user_ids": ["bob"]}));
    let ev = alice2.expect_event("on_black_list_added", WAIT).await;
    assert_eq!(ev["friend_info_list"][0]["user_id"], "dave");
    assert_eq!(
        alice2.ok("get_friend_list", json!({})).await,
        alice.ok("get_friend_list", json!({})).await
    );
    assert_eq!(
        alice2.ok("get_black_list", json!({})).await,
        alice.ok("get_black_list", json!({})).await
    );
    // A remark change while both are online reaches the other device.
    alice2
        .ok(
            "set_friend_info",
            json!({ "user_id": "carol", "friend_remark": "C." }),
        )
        .await;
    // (The first device saw its own earlier remark change first.)
    let mut remarks = Vec::new();
    for _ in 0..3 {
        let ev = alice.expect_event("on_friend_info_changed", WAIT).await;
        remarks.push(ev["friend_info_list"][0]["friend_remark"].clone());
        if remarks.last() == Some(&json!("C.")) {
            break;
        }
    }
    assert_eq!(remarks, vec![json!("Caro"), json!("C.")]);
    let info = alice
        .ok("get_friends_info", json!({ "user_ids": ["carol", "bob"] }))
        .await;
    let list = &info["friend_info_result_list"];
    assert_eq!(list[0]["relation"], "in_my_friend_list");
    assert_eq!(list[0]["friend_info"]["friend_remark"], "C.");
    assert_eq!(list[1]["relation"], "no_relation");
}

#[tokio::test]
async fn limits_and_invalid_input_answer_the_seed_codes() {
    let server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    let cases = [
        (
            "add_friend",
            json!({ "user_id": "bob", "remark": "r".repeat(97) }),
            9002,
        ),
        (
            "add_friend",
            json!({ "user_id": "bob", "add_wording": "w".repeat(121) }),
            9003,
        ),
        (
            "add_friend",
            json!({ "user_id": "bob", "add_source": "search" }),
            9004,
        ),
        (
            "add_friend",
            json!({ "user_id": "bob", "friend_group": "g".repeat(31) }),
            9005,
        ),
        ("add_friend", json!({ "user_id": "" }), 7003),
        (
            "add_friend",
            json!({ "user_id": "bob", "add_type": "triple" }),
            6017,
        ),
        (
            "set_friend_info",
            json!({ "user_id": "bob", "friend_remark": "r".repeat(97) }),
            9002,
        ),
        (
            "set_friend_info",
            json!({ "user_id": "bob", "friend_custom_info": {"bad_key1": "x"} }),
            9001,
        ),
        (
            "set_self_info",
            json!({ "custom_info": {"toolongkey": "x"} }),
            9001,
        ),
        ("set_self_info", json!({ "gender": "robot" }), 6017),
        ("create_friend_group", json!({ "group_name": "" }), 9005),
        (
            "rename_friend_group",
            json!({ "old_name": "a", "new_name": "n".repeat(31) }),
            9005,
        ),
        (
            "get_users_info",
            json!({ "user_ids": (0..1001).map(|i| format!("u{i}")).collect::<Vec<_>>() }),
            9006,
        ),
        (
            "subscribe_user_status",
            json!({ "user_ids": (0..101).map(|i| format!("u{i}")).collect::<Vec<_>>() }),
            9006,
        ),
        ("delete_from_friend_list", json!({ "user_ids": [] }), 6017),
        ("check_friend", json!({ "user_ids": ["bad\u{1}id"] }), 7003),
        ("search_friends", json!({ "keyword_list": [] }), 6017),
    ];
    for (method, params, code) in cases {
        assert_eq!(
            alice.err_code(method, params.clone()).await,
            code,
            "{method}({params})"
        );
    }
    // Server-side refusals.
    assert_eq!(
        alice
            .err_code(
                "set_friend_info",
                json!({ "user_id": "bob", "friend_remark": "x" })
            )
            .await,
        31704
    );
    assert_eq!(
        alice
            .err_code(
                "rename_friend_group",
                json!({ "old_name": "nope", "new_name": "x" })
            )
            .await,
        30001
    );
    assert_eq!(
        alice
            .err_code("set_self_info", json!({ "nick_name": "n".repeat(501) }))
            .await,
        6017
    );
    // Before login.
    let fresh = TestClient::new(&server).await;
    assert_eq!(fresh.err_code("get_friend_list", json!({})).await, 6014);
}

#[tokio::test]
async fn follow_lists_counts_types_and_events() {
    let server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    let bob = user(&server, "bob").await;
    let carol = user(&server, "carol").await;
    let r = alice
        .ok(
            "follow_user",
            json!({ "user_ids": ["bob", "carol", "ghost"] }),
        )
        .await;
    let codes: Vec<i64> = r["result_list"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["result_code"].as_i64().unwrap_or(-1))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(codes, vec![0, 0, 30003]);
    let ev = alice
        .expect_event("on_my_following_list_changed", WAIT)
        .await;
    assert_eq!(ev["is_add"], true);
    let ev = bob.expect_event("on_my_followers_list_changed", WAIT).await;
    assert_eq!(ids(&ev, "user_info_list"), vec!["alice"]);
    bob.ok("follow_user", json!({ "user_ids": ["alice"] }))
        .await;
    let ev = alice
        .expect_event("on_mutual_followers_list_changed", WAIT)
        .await;
    assert_eq!(ev["is_add"], true);
    assert_eq!(ids(&ev, "user_info_list"), vec!["bob"]);
    bob.expect_event("on_mutual_followers_list_changed", WAIT)
        .await;

    let following = alice.ok("get_my_following_list", json!({})).await;
    assert_eq!(ids(&following, "user_info_list"), vec!["bob", "carol"]);
    assert_eq!(following["next_cursor"], "");
    // Paged by cursor.
    let page = alice
        .ok(
            "get_my_following_list",
            json!({ "next_cursor": "", "count": 1 }),
        )
        .await;
    assert_eq!(ids(&page, "user_info_list"), vec!["bob"]);
    assert_eq!(page["next_cursor"], "bob");
    let page = alice
        .ok(
            "get_my_following_list",
            json!({ "next_cursor": "bob", "count": 1 }),
        )
        .await;
    assert_eq!(ids(&page, "user_info_list"), vec!["carol"]);
    assert_eq!(page["next_cursor"], "");
    let followers = alice.ok("get_my_followers_list", json!({})).await;
    assert_eq!(ids(&followers, "user_info_list"), vec!["bob"]);
    let mutual = alice.ok("get_mutual_followers_list", json!({})).await;
    assert_eq!(ids(&mutual, "user_info_list"), vec!["bob"]);

    let info = alice
        .ok(
            "get_user_follow_info",
            json!({ "user_ids": ["alice", "carol"] }),
        )
        .await;
    let a = &info["follow_info_list"][0];
    assert_eq!(
        (
            &a["following_count"],
            &a["followers_count"],
            &a["mutual_followers_count"]
        ),
        (&json!(2), &json!(1), &json!(1))
    );
    assert_eq!(info["follow_info_list"][1]["followers_count"], 1);
    let types = alice
        .ok("check_follow_type", json!({ "user_ids": ["bob", "carol"] }))
        .await;
    assert_eq!(
        types["follow_type_check_result_list"][0]["follow_type"],
        "in_both_following_list"
    );
    assert_eq!(
        types["follow_type_check_result_list"][1]["follow_type"],
        "in_my_following_list"
    );
    let types = carol
        .ok("check_follow_type", json!({ "user_ids": ["alice", "bob"] }))
        .await;
    assert_eq!(
        types["follow_type_check_result_list"][0]["follow_type"],
        "in_my_followers_list"
    );
    assert_eq!(
        types["follow_type_check_result_list"][1]["follow_type"],
        "none"
    );

    alice
        .ok("unfollow_user", json!({ "user_ids": ["bob"] }))
        .await;
    let ev = bob.expect_event("on_my_followers_list_changed", WAIT).await;
    let ev2 = if ev["is_add"] == true {
        bob.expect_event("on_my_followers_list_changed", WAIT).await
    } else {
        ev
    };
    assert_eq!(ev2["is_add"], false);
    let mutual = bob.ok("get_mutual_followers_list", json!({})).await;
    assert_eq!(mutual["user_info_list"], json!([]));
}

#[tokio::test]
async fn search_friends_matches_id_nick_and_remark_ranked_and_paged() {
    let server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    for (u, nick) in [
        ("bob", "Builder"),
        ("kabob", "Jake"),
        ("bobby", "Rob"),
        ("zoe", "Zo"),
    ] {
        let c = user(&server, u).await;
        c.ok(
            "set_self_info",
            json!({ "allow_type": "allow_any", "nick_name": nick }),
        )
        .await;
        alice
            .ok("add_friend", json!({ "user_id": u, "add_type": "single" }))
            .await;
    }
    alice
        .ok(
            "set_friend_info",
            json!({ "user_id": "zoe", "friend_remark": "bob's sister" }),
        )
        .await;
    let r = alice
        .ok("search_friends", json!({ "keyword_list": ["bob"] }))
        .await;
    // Exact id, then prefix (bobby id, zoe remark), then substring (kabob).
    let order: Vec<&str> = r["friend_info_list"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["user_id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(order, vec!["bob", "bobby", "zoe", "kabob"]);
    assert_eq!(r["total_count"], 4);
    let page = alice
        .ok(
            "search_friends",
            json!({ "keyword_list": ["bob"], "search_field_list": ["user_id"], "count": 2, "next_seq": 1 }),
        )
        .await;
    let order: Vec<&str> = page["friend_info_list"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["user_id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(order, vec!["bobby", "kabob"]);
    assert_eq!(page["is_finished"], true);
    let nick = alice
        .ok(
            "search_friends",
            json!({ "keyword_list": ["jak"], "search_field_list": ["nick_name"] }),
        )
        .await;
    assert_eq!(ids(&nick, "friend_info_list"), vec!["kabob"]);
}

#[tokio::test]
async fn messages_carry_the_receivers_current_friend_remark_for_the_sender() {
    let server = TestServer::start().await;
    let alice = user(&server, "alice").await;
    let bob = user(&server, "bob").await;
    let carol = user(&server, "carol").await;
    allow(&bob, "allow_any").await;
    let r = alice
        .ok(
            "add_friend",
            json!({ "user_id": "bob", "add_type": "single", "remark": "Bobby" }),
        )
        .await;
    assert_eq!(r["result_code"], 0);

    // A new message from a friend: my remark for them; from a stranger, or my own: none.
    let sent = send_c2c_text(&bob, "alice", "hi from bob").await;
    let got = alice.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["sender"], "bob");
    assert_eq!(got[0]["friend_remark"], "Bobby");
    send_c2c_text(&carol, "alice", "hi from carol").await;
    let got = alice.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["friend_remark"], "");
    let mine = send_c2c_text(&alice, "bob", "hi bob").await;
    assert_eq!(mine["friend_remark"], "");
    // Bob never set a remark for alice.
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["friend_remark"], "");

    // The remark changes: history, find results and the conversation's last message show the
    // current one, for old messages too.
    alice
        .ok(
            "set_friend_info",
            json!({ "user_id": "bob", "friend_remark": "B." }),
        )
        .await;
    let history = alice
        .ok(
            "get_c2c_history_message_list",
            json!({ "user_id": "bob", "count": 10 }),
        )
        .await;
    let remarks: Vec<(String, Value)> = history["message_list"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| (text_of(m), m["friend_remark"].clone()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        remarks,
        [
            ("hi bob".to_owned(), json!("")),
            ("hi from bob".to_owned(), json!("B."))
        ]
    );
    let found = alice
        .ok("find_messages", json!({ "msg_ids": [sent["msg_id"]] }))
        .await;
    assert_eq!(found["message_list"][0]["friend_remark"], "B.");
    assert_eq!(found["message_list"][0]["sender"], "bob");
    send_c2c_text(&bob, "alice", "again").await;
    let got = alice.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["friend_remark"], "B.");
    let conv = alice
        .ok("get_conversation", json!({ "conversation_id": "c2c_bob" }))
        .await;
    assert_eq!(conv["last_message"]["friend_remark"], "B.");

    // No longer a friend: no remark.
    alice
        .ok(
            "delete_from_friend_list",
            json!({ "user_ids": ["bob"], "delete_type": "single" }),
        )
        .await;
    let found = alice
        .ok("find_messages", json!({ "msg_ids": [sent["msg_id"]] }))
        .await;
    assert_eq!(found["message_list"][0]["friend_remark"], "");
}
