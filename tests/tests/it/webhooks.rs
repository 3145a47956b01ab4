//! Webhooks end to end: a real server calls a backend that this test runs on 127.0.0.1 (an axum
//! receiver recording every call): before-send allows, rewrites, blocks (20006) and silently
//! drops; after-send reports stored messages; every call is signed with the app key; a backend
//! that does not answer in time lets the message through (the default policy); login state,
//! group joins / exits and friend adds are reported; a message may opt out of either callback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Json;
use axum::routing::post;
use chime_tests::{APP_ID, TestClient, TestServer, app_key, send_c2c_text, text_of};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(600);

/// Every callback received: (command, body, signature valid).
type Calls = Arc<Mutex<Vec<(String, Value, bool)>>>;

async fn hook(State(calls): State<Calls>, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let text = String::from_utf8_lossy(&body).into_owned();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let ts: i64 = headers
        .get("X-Chime-Timestamp")
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let sig = headers
        .get("X-Chime-Signature")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let valid = sig == chime_server::webhooks::sign(app_key(APP_ID), ts, &text);
    let cmd = v["CallbackCommand"].as_str().unwrap_or("").to_owned();
    if let Ok(mut c) = calls.lock() {
        c.push((cmd.clone(), v.clone(), valid));
    }
    let said = v["MsgBody"][0]["MsgContent"]["Text"].as_str().unwrap_or("");
    if said.contains("slow") {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    Json(if !cmd.ends_with("BeforeSendMsg") {
        json!({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""})
    } else if said.contains("forbidden") {
        json!({"ActionStatus": "OK", "ErrorCode": 1, "ErrorInfo": "not on my watch"})
    } else if said.contains("silent") {
        json!({"ActionStatus": "OK", "ErrorCode": 2, "ErrorInfo": ""})
    } else if said.contains("darn") {
        json!({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": "",
               "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": said.replace("darn", "****")}}],
               "CloudCustomData": "rewritten"})
    } else {
        json!({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""})
    })
}

/// Starts the backend; answers its URL and the recorded calls.
async fn backend() -> (String, Calls) {
    let calls: Calls = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/im/callback", post(hook))
        .with_state(Arc::clone(&calls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/im/callback"), calls)
}

fn calls_of(calls: &Calls, command: &str) -> Vec<Value> {
    calls
        .lock()
        .map(|c| {
            c.iter()
                .filter(|(cmd, _, _)| cmd == command)
                .map(|(_, v, _)| v.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn before_send_allows_rewrites_blocks_and_drops_and_after_send_reports() {
    let (url, calls) = backend().await;
    let server =
        TestServer::start_with_config(&format!("[webhook]\nurl = \"{url}\"\ntimeout_ms = 500\n"))
            .await;
    let alice = TestClient::new(&server).await;
    let bob = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;

    let sent = send_c2c_text(&alice, "bob", "hello").await;
    assert_eq!(sent["seq"], 1);
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "hello");

    // Rewritten by the backend: the receiver sees the new text and custom data.
    send_c2c_text(&alice, "bob", "darn it").await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "**** it");
    assert_eq!(got[0]["cloud_custom_data"], "rewritten");

    // Blocked: the sender gets 20006 with the backend's reason; nothing is delivered.
    let msg = alice
        .ok("create_text_message", json!({"text": "forbidden words"}))
        .await;
    let code = alice
        .err_code("send_message", json!({"message": msg, "receiver": "bob"}))
        .await;
    assert_eq!(code, 20006);
    // Silently dropped: success for the sender, nothing for bob.
    let msg = alice
        .ok("create_text_message", json!({"text": "silent treatment"}))
        .await;
    alice
        .ok("send_message", json!({"message": msg, "receiver": "bob"}))
        .await;
    assert_eq!(bob.next_event("on_recv_new_message", QUIET).await, None);
    // The backend is too slow (1.5 s > 500 ms): allowed by the default policy.
    send_c2c_text(&alice, "bob", "slow backend").await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "slow backend");

    let before = calls_of(&calls, "C2C.CallbackBeforeSendMsg");
    let texts: Vec<&str> = before
        .iter()
        .map(|v| v["MsgBody"][0]["MsgContent"]["Text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        texts,
        [
            "hello",
            "darn it",
            "forbidden words",
            "silent treatment",
            "slow backend"
        ]
    );
    assert_eq!(before[0]["From_Account"], "alice");
    assert_eq!(before[0]["To_Account"], "bob");
    // After-send: the three stored messages, with their seqs.
    let mut after = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        after = calls_of(&calls, "C2C.CallbackAfterSendMsg");
        if after.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut seqs: Vec<u64> = after
        .iter()
        .map(|v| v["MsgSeq"].as_u64().unwrap_or(0))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(
        after
            .iter()
            .any(|v| v["MsgBody"][0]["MsgContent"]["Text"] == "**** it")
    );
    // Every call was signed with the app key.
    assert!(
        calls
            .lock()
            .map(|c| c.iter().all(|(_, _, valid)| *valid))
            .unwrap_or(false)
    );
}

#[tokio::test]
async fn group_sends_are_called_back_and_a_dead_backend_blocks_when_configured() {
    let (url, calls) = backend().await;
    let server =
        TestServer::start_with_config(&format!("[webhook]\nurl = \"{url}\"\nafter_send = false\n"))
            .await;
    let alice = TestClient::new(&server).await;
    alice.login("alice").await;
    alice
        .ok(
            "create_group",
            json!({"group_type": "Work", "group_id": "hooked", "group_name": "h"}),
        )
        .await;
    let msg = alice
        .ok(
            "create_text_message",
            json!({"text": "forbidden in groups too"}),
        )
        .await;
    assert_eq!(
        alice
            .err_code(
                "send_message",
                json!({"message": msg, "group_id": "hooked"})
            )
            .await,
        20006
    );
    let before = calls_of(&calls, "Group.CallbackBeforeSendMsg");
    assert_eq!(before.len(), 1);
    assert_eq!(before[0]["GroupId"], "hooked");
    assert!(calls_of(&calls, "Group.CallbackAfterSendMsg").is_empty());

    // A backend nobody listens on, with block_on_failure: every send is refused.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let dead_url = format!(
        "http://{}/cb",
        dead.local_addr().unwrap_or_else(|e| panic!("addr: {e}"))
    );
    drop(dead);
    let server2 = TestServer::start_with_config(&format!(
        "[webhook]\nurl = \"{dead_url}\"\ntimeout_ms = 300\nblock_on_failure = true\n"
    ))
    .await;
    let carol = TestClient::new(&server2).await;
    carol.login("carol").await;
    let msg = carol
        .ok("create_text_message", json!({"text": "anyone there?"}))
        .await;
    assert_eq!(
        carol
            .err_code("send_message", json!({"message": msg, "receiver": "dave"}))
            .await,
        20006
    );
}

/// Waits (bounded) until the backend has `n` calls of `command`; answers them.
async fn wait_calls(calls: &Calls, command: &str, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        got = calls_of(calls, command);
        if got.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got.len(), n, "{command}: {got:?}");
    got
}

fn all_signed(calls: &Calls) -> bool {
    calls
        .lock()
        .map(|c| c.iter().all(|(_, _, valid)| *valid))
        .unwrap_or(false)
}

#[tokio::test]
async fn login_logout_replacement_and_disconnect_are_called_back() {
    use chime_tests::wire::WireClient;

    let (url, calls) = backend().await;
    let server = TestServer::start_with_config(&format!("[webhook]\nurl = \"{url}\"\n")).await;
    let ws = server.ws_url();
    let sig = server.user_sig("ann");
    let first = WireClient::login(&ws, APP_ID, "ann", &sig, "phone")
        .await
        .unwrap_or_else(|e| panic!("login: {e}"));
    // The same device logs in again: the first session is replaced (Logout / Kicked).
    let second = WireClient::login(&ws, APP_ID, "ann", &sig, "phone")
        .await
        .unwrap_or_else(|e| panic!("login again: {e}"));
    wait_calls(&calls, "State.StateChange", 2).await;
    // The replaced session ends when its connection does (the server closed it).
    drop(first);
    wait_calls(&calls, "State.StateChange", 3).await;
    // The connection goes away without a logout (Disconnect / LinkClose).
    drop(second);
    wait_calls(&calls, "State.StateChange", 4).await;
    // An engine's login and logout (Login / Register, Logout / Unregister).
    let bob = TestClient::new(&server).await;
    bob.login("bob").await;
    bob.ok("logout", json!({})).await;
    // Kicked by the backend over REST (Logout / Kicked once the session ends).
    let cy = TestClient::new(&server).await;
    cy.login("cy").await;
    wait_calls(&calls, "State.StateChange", 7).await;
    let kick = format!(
        "{}/v4/im_open_login_svc/kick?sdkappid={APP_ID}&identifier=administrator&usersig={}\
         &random=1&contenttype=json",
        server.http_url(),
        chime_tests::user_sig_for(APP_ID, "administrator", 3600)
    );
    let out: Value = reqwest::Client::new()
        .post(kick)
        .body(json!({"UserID": "cy"}).to_string())
        .timeout(WAIT)
        .send()
        .await
        .unwrap_or_else(|e| panic!("kick: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("kick answer: {e}"));
    assert_eq!(out["ErrorCode"], 0, "{out}");
    cy.expect_event("on_kicked_offline", WAIT).await;
    let got = wait_calls(&calls, "State.StateChange", 8).await;
    let mut seen: Vec<(String, String, String)> = got
        .iter()
        .map(|v| {
            assert!(v["EventTime"].as_i64().unwrap_or(0) > 0, "{v}");
            let info = &v["Info"];
            let s = |k: &str| info[k].as_str().unwrap_or("").to_owned();
            (s("To_Account"), s("Action"), s("Reason"))
        })
        .collect();
    seen.sort();
    let t = |u: &str, a: &str, r: &str| (u.to_owned(), a.to_owned(), r.to_owned());
    assert_eq!(
        seen,
        [
            t("ann", "Disconnect", "LinkClose"),
            t("ann", "Login", "Register"),
            t("ann", "Login", "Register"),
            t("ann", "Logout", "Kicked"),
            t("bob", "Login", "Register"),
            t("bob", "Logout", "Unregister"),
            t("cy", "Login", "Register"),
            t("cy", "Logout", "Kicked"),
        ]
    );
    assert!(all_signed(&calls));
}

/// A server calling back to `url` with the login state callbacks off (only the ones under test
/// arrive), and alice, bob and carol logged in to it.
async fn alice_bob_carol(url: &str) -> (TestServer, TestClient, TestClient, TestClient) {
    let server = TestServer::start_with_config(&format!(
        "[webhook]\nurl = \"{url}\"\nstate_change = false\n"
    ))
    .await;
    let alice = TestClient::new(&server).await;
    let bob = TestClient::new(&server).await;
    let carol = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;
    carol.login("carol").await;
    (server, alice, bob, carol)
}

#[tokio::test]
async fn group_joins_exits_and_friend_adds_are_called_back() {
    let (url, calls) = backend().await;
    let (_server, alice, bob, carol) = alice_bob_carol(&url).await;

    // Public group: bob joins by himself, then quits.
    alice
        .ok(
            "create_group",
            json!({"group_type": "Public", "group_id": "club", "group_name": "Club"}),
        )
        .await;
    bob.ok("join_group", json!({"group_id": "club", "message": "hi"}))
        .await;
    bob.ok("quit_group", json!({"group_id": "club"})).await;
    // Work group: alice invites carol, then kicks her.
    alice
        .ok(
            "create_group",
            json!({"group_type": "Work", "group_id": "team", "group_name": "Team"}),
        )
        .await;
    alice
        .ok(
            "invite_user_to_group",
            json!({"group_id": "team", "user_list": ["carol"]}),
        )
        .await;
    alice
        .ok(
            "kick_group_member",
            json!({"group_id": "team", "member_list": ["carol"]}),
        )
        .await;
    let joins = wait_calls(&calls, "Group.CallbackAfterNewMemberJoin", 2).await;
    let exits = wait_calls(&calls, "Group.CallbackAfterMemberExit", 2).await;
    let strip = |mut v: Value| {
        assert!(v["EventTime"].as_i64().unwrap_or(0) > 0, "{v}");
        if let Some(o) = v.as_object_mut() {
            o.remove("EventTime");
        }
        v
    };
    let mut joins: Vec<Value> = joins.into_iter().map(strip).collect();
    let mut exits: Vec<Value> = exits.into_iter().map(strip).collect();
    let by_group = |a: &Value, b: &Value| a["GroupId"].to_string().cmp(&b["GroupId"].to_string());
    joins.sort_by(by_group);
    exits.sort_by(by_group);
    assert_eq!(
        joins,
        [
            json!({"CallbackCommand": "Group.CallbackAfterNewMemberJoin", "GroupId": "club",
                   "Type": "Public", "JoinType": "Apply", "Operator_Account": "bob",
                   "NewMemberList": [{"Member_Account": "bob"}]}),
            json!({"CallbackCommand": "Group.CallbackAfterNewMemberJoin", "GroupId": "team",
                   "Type": "Work", "JoinType": "Invited", "Operator_Account": "alice",
                   "NewMemberList": [{"Member_Account": "carol"}]}),
        ]
    );
    assert_eq!(
        exits,
        [
            json!({"CallbackCommand": "Group.CallbackAfterMemberExit", "GroupId": "club",
                   "Type": "Public", "ExitType": "Quit", "Operator_Account": "bob",
                   "ExitMemberList": [{"Member_Account": "bob"}]}),
            json!({"CallbackCommand": "Group.CallbackAfterMemberExit", "GroupId": "team",
                   "Type": "Work", "ExitType": "Kicked", "Operator_Account": "alice",
                   "ExitMemberList": [{"Member_Account": "carol"}]}),
        ]
    );

    // Friends: bob allows anyone, so alice's two-way add makes both pairs at once; carol needs
    // to confirm, so her acceptance makes the pair (a response).
    bob.ok("set_self_info", json!({"allow_type": "allow_any"}))
        .await;
    let r = alice
        .ok("add_friend", json!({"user_id": "bob", "add_type": "both"}))
        .await;
    assert_eq!(r["result_code"], 0);
    let adds = wait_calls(&calls, "Sns.CallbackFriendAdd", 1).await;
    assert_eq!(adds[0]["ClientCmdType"], "Add");
    assert_eq!(
        adds[0]["PairList"],
        json!([
            {"From_Account": "alice", "To_Account": "bob", "Initiator_Account": "alice"},
            {"From_Account": "bob", "To_Account": "alice", "Initiator_Account": "alice"},
        ])
    );
    alice
        .ok(
            "add_friend",
            json!({"user_id": "carol", "add_type": "single"}),
        )
        .await;
    carol
        .expect_event("on_friend_application_list_added", WAIT)
        .await;
    assert_eq!(calls_of(&calls, "Sns.CallbackFriendAdd").len(), 1);
    carol
        .ok(
            "accept_friend_application",
            json!({"user_id": "alice", "response_type": "agree"}),
        )
        .await;
    let adds = wait_calls(&calls, "Sns.CallbackFriendAdd", 2).await;
    assert_eq!(adds[1]["ClientCmdType"], "Response");
    assert_eq!(
        adds[1]["PairList"],
        json!([{"From_Account": "alice", "To_Account": "carol", "Initiator_Account": "alice"}])
    );
    assert!(calls_of(&calls, "State.StateChange").is_empty());
    assert!(all_signed(&calls));
}

#[tokio::test]
async fn a_message_may_opt_out_of_the_before_and_after_send_callbacks() {
    let (url, calls) = backend().await;
    let server = TestServer::start_with_config(&format!("[webhook]\nurl = \"{url}\"\n")).await;
    let alice = TestClient::new(&server).await;
    let bob = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;

    // Without the before-send callback the backend cannot block it.
    let mut msg = alice
        .ok(
            "create_text_message",
            json!({"text": "forbidden but unhooked"}),
        )
        .await;
    msg["disable_cloud_message_pre_hook"] = json!(true);
    let sent = alice
        .ok("send_message", json!({"message": msg, "receiver": "bob"}))
        .await;
    assert_eq!(sent["disable_cloud_message_pre_hook"], true);
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "forbidden but unhooked");
    assert_eq!(got[0]["disable_cloud_message_pre_hook"], true);
    assert_eq!(got[0]["disable_cloud_message_post_hook"], false);
    // Without the after-send callback: called before, not after.
    let mut msg = alice
        .ok("create_text_message", json!({"text": "no report"}))
        .await;
    msg["disable_cloud_message_post_hook"] = json!(true);
    alice
        .ok("send_message", json!({"message": msg, "receiver": "bob"}))
        .await;
    bob.expect_messages(1, WAIT).await;
    // A message with neither flag: both callbacks.
    send_c2c_text(&alice, "bob", "plain").await;
    bob.expect_messages(1, WAIT).await;

    let after = wait_calls(&calls, "C2C.CallbackAfterSendMsg", 2).await;
    let text = |v: &Value| {
        v["MsgBody"][0]["MsgContent"]["Text"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let mut after: Vec<String> = after.iter().map(text).collect();
    after.sort();
    assert_eq!(after, ["forbidden but unhooked", "plain"]);
    let before: Vec<String> = calls_of(&calls, "C2C.CallbackBeforeSendMsg")
        .iter()
        .map(text)
        .collect();
    assert_eq!(before, ["no report", "plain"]);
    // Still exactly two after-send calls once things settle.
    tokio::time::sleep(QUIET).await;
    assert_eq!(calls_of(&calls, "C2C.CallbackAfterSendMsg").len(), 2);
    // A flag that is not a boolean is refused before anything is sent.
    let mut msg = alice.ok("create_text_message", json!({"text": "x"})).await;
    msg["disable_cloud_message_pre_hook"] = json!("yes");
    assert_eq!(
        alice
            .err_code("send_message", json!({"message": msg, "receiver": "bob"}))
            .await,
        6017
    );
}

/// `v` without its `EventTime` (checked to be set).
fn without_time(mut v: Value) -> Value {
    assert!(v["EventTime"].as_i64().unwrap_or(0) > 0, "{v}");
    if let Some(o) = v.as_object_mut() {
        o.remove("EventTime");
    }
    v
}

#[tokio::test]
async fn group_create_dismiss_live_rooms_and_friend_deletes_are_called_back() {
    let (url, calls) = backend().await;
    let server = TestServer::start_with_config(&format!(
        "live_room_offline_grace_secs = 1\n[webhook]\nurl = \"{url}\"\nstate_change = false\n"
    ))
    .await;
    let alice = TestClient::new(&server).await;
    let bob = TestClient::new(&server).await;
    let carol = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;
    carol.login("carol").await;

    // Created with members, then dismissed.
    alice
        .ok(
            "create_group",
            json!({"group_type": "Work", "group_id": "team", "group_name": "Team",
                   "member_list": [{"user_id": "bob"}, {"user_id": "carol"}]}),
        )
        .await;
    let created = wait_calls(&calls, "Group.CallbackAfterCreateGroup", 1).await;
    assert_eq!(
        without_time(created[0].clone()),
        json!({"CallbackCommand": "Group.CallbackAfterCreateGroup", "GroupId": "team",
               "Type": "Work", "Owner_Account": "alice", "Operator_Account": "alice",
               "Name": "Team", "CreatedGroupNum": 1,
               "MemberList": [{"Member_Account": "bob"}, {"Member_Account": "carol"}],
               "UserDefinedDataList": []})
    );
    alice.ok("dismiss_group", json!({"group_id": "team"})).await;
    let destroyed = wait_calls(&calls, "Group.CallbackAfterGroupDestroyed", 1).await;
    let mut d = without_time(destroyed[0].clone());
    let mut members: Vec<String> = d["MemberList"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["Member_Account"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    members.sort();
    assert_eq!(members, vec!["alice", "bob", "carol"]);
    if let Some(o) = d.as_object_mut() {
        o.remove("MemberList");
    }
    assert_eq!(
        d,
        json!({"CallbackCommand": "Group.CallbackAfterGroupDestroyed", "GroupId": "team",
               "Type": "Work", "Owner_Account": "alice", "Name": "Team"})
    );

    // An AVChatRoom: bob joins and quits, carol joins and goes offline past the grace period.
    alice
        .ok(
            "create_group",
            json!({"group_type": "AVChatRoom", "group_id": "live", "group_name": "Live"}),
        )
        .await;
    bob.ok("join_group", json!({"group_id": "live", "message": ""}))
        .await;
    carol
        .ok("join_group", json!({"group_id": "live", "message": ""}))
        .await;
    bob.ok("quit_group", json!({"group_id": "live"})).await;
    let joins = wait_calls(&calls, "Group.CallbackAfterNewMemberJoin", 2).await;
    let join = |who: &str| {
        json!({"CallbackCommand": "Group.CallbackAfterNewMemberJoin", "GroupId": "live",
               "Type": "AVChatRoom", "JoinType": "Apply", "Operator_Account": who,
               "NewMemberList": [{"Member_Account": who}]})
    };
    let joins: Vec<Value> = joins.into_iter().map(without_time).collect();
    assert_eq!(joins, vec![join("bob"), join("carol")]);
    let exit = |who: &str| {
        json!({"CallbackCommand": "Group.CallbackAfterMemberExit", "GroupId": "live",
               "Type": "AVChatRoom", "ExitType": "Quit", "Operator_Account": who,
               "ExitMemberList": [{"Member_Account": who}]})
    };
    let exits = wait_calls(&calls, "Group.CallbackAfterMemberExit", 1).await;
    assert_eq!(without_time(exits[0].clone()), exit("bob"));
    carol.ok("logout", json!({})).await;
    let exits = wait_calls(&calls, "Group.CallbackAfterMemberExit", 2).await;
    assert_eq!(without_time(exits[1].clone()), exit("carol"));

    // Friends: a one-way delete, then a two-way one.
    bob.ok("set_self_info", json!({"allow_type": "allow_any"}))
        .await;
    alice
        .ok("add_friend", json!({"user_id": "bob", "add_type": "both"}))
        .await;
    alice
        .ok(
            "delete_from_friend_list",
            json!({"user_ids": ["bob"], "delete_type": "single"}),
        )
        .await;
    let deletes = wait_calls(&calls, "Sns.CallbackFriendDelete", 1).await;
    assert_eq!(
        without_time(deletes[0].clone()),
        json!({"CallbackCommand": "Sns.CallbackFriendDelete",
               "PairList": [{"From_Account": "alice", "To_Account": "bob"}]})
    );
    alice
        .ok(
            "add_friend",
            json!({"user_id": "bob", "add_type": "single"}),
        )
        .await;
    let r = alice
        .ok(
            "delete_from_friend_list",
            json!({"user_ids": ["bob", "carol"], "delete_type": "both"}),
        )
        .await;
    assert_eq!(r["result_list"][1]["result_code"], 31704);
    let deletes = wait_calls(&calls, "Sns.CallbackFriendDelete", 2).await;
    assert_eq!(
        deletes[1]["PairList"],
        json!([{"From_Account": "alice", "To_Account": "bob"},
               {"From_Account": "bob", "To_Account": "alice"}])
    );
    tokio::time::sleep(QUIET).await;
    // Carol was nobody's friend: her failed delete made no callback.
    assert_eq!(calls_of(&calls, "Sns.CallbackFriendDelete").len(), 2);
    assert_eq!(calls_of(&calls, "Group.CallbackAfterCreateGroup").len(), 2);
    assert!(all_signed(&calls));
}

/// Blocking a friend ends the friendship both ways (Tencent: "拉黑时会解除双向好友关系"), and
/// that is called back as a friend delete, one pair per list that changed; blocking someone who
/// is nobody's friend, or blocking again, calls nothing back.
#[tokio::test]
async fn blocking_a_friend_is_called_back_as_a_friend_delete() {
    let (url, calls) = backend().await;
    let (_server, alice, bob, carol) = alice_bob_carol(&url).await;
    for peer in [&bob, &carol] {
        peer.ok("set_self_info", json!({"allow_type": "allow_any"}))
            .await;
    }
    // Alice and bob are friends both ways; carol is on alice's list only.
    alice
        .ok("add_friend", json!({"user_id": "bob", "add_type": "both"}))
        .await;
    alice
        .ok(
            "add_friend",
            json!({"user_id": "carol", "add_type": "single"}),
        )
        .await;
    wait_calls(&calls, "Sns.CallbackFriendAdd", 2).await;

    // Alice blocks bob (a friend both ways) and dave (nobody's friend).
    let r = alice
        .ok("add_to_black_list", json!({"user_ids": ["bob", "dave"]}))
        .await;
    assert_eq!(r["result_list"][0]["result_code"], 0, "{r}");
    assert_eq!(r["result_list"][1]["result_code"], 0, "{r}");
    let deletes = wait_calls(&calls, "Sns.CallbackFriendDelete", 1).await;
    assert_eq!(
        without_time(deletes[0].clone()),
        json!({"CallbackCommand": "Sns.CallbackFriendDelete",
               "PairList": [{"From_Account": "alice", "To_Account": "bob"},
                            {"From_Account": "bob", "To_Account": "alice"}]})
    );

    // Carol blocks alice: only alice's list had carol on it.
    carol
        .ok("add_to_black_list", json!({"user_ids": ["alice"]}))
        .await;
    let deletes = wait_calls(&calls, "Sns.CallbackFriendDelete", 2).await;
    assert_eq!(
        deletes[1]["PairList"],
        json!([{"From_Account": "alice", "To_Account": "carol"}])
    );

    // Blocking bob again changes no friend list: nothing more is called back.
    alice
        .ok("add_to_black_list", json!({"user_ids": ["bob"]}))
        .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(calls_of(&calls, "Sns.CallbackFriendDelete").len(), 2);
    assert!(all_signed(&calls));
}
