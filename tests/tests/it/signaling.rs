//! Signaling end to end: invitations between real engines through a real server — accept,
//! reject, cancel, modify, group invitations, the server-side timeout (on both sides, even with
//! the inviter gone), delivery to an invitee who logs in later, `get_signaling_info`, and the
//! 8010 / 8011 errors.

use std::time::Duration;

use chime_tests::{TestClient, TestServer};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(600);

async fn invite(from: &TestClient, to: &str, data: &str, timeout: u64) -> String {
    let out = from
        .ok(
            "invite",
            json!({"invitee": to, "data": data, "timeout": timeout}),
        )
        .await;
    let id = out["invite_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(id.len(), 32, "{out}");
    id
}

#[tokio::test]
async fn invite_accept_and_reject_between_online_users() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    let bob = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;

    let id = invite(&alice, "bob", "video call", 30).await;
    let got = bob.expect_event("on_received_new_invitation", WAIT).await;
    assert_eq!(
        got,
        json!({"invite_id": id, "inviter": "alice", "group_id": "", "invitee_list": ["bob"],
               "data": "video call", "timeout": 30, "online_user_only": false})
    );
    // The invitation is also a custom message in the C2C conversation.
    let msg = bob.expect_event("on_recv_new_message", WAIT).await;
    let msg_id = msg["message"]["msg_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let info = bob
        .ok("get_signaling_info", json!({"msg_id": msg_id}))
        .await;
    assert_eq!(info["invite_id"], id.as_str());
    assert_eq!(info["inviter"], "alice");
    assert_eq!(info["invitee_list"], json!(["bob"]));
    assert_eq!(info["data"], "video call");
    assert_eq!(info["timeout"], 30);

    // Only the invitee may accept; the inviter may not.
    assert_eq!(
        alice
            .err_code("accept", json!({"invite_id": id, "data": ""}))
            .await,
        8011
    );
    bob.ok("accept", json!({"invite_id": id, "data": "ok!"}))
        .await;
    let got = alice.expect_event("on_invitee_accepted", WAIT).await;
    assert_eq!(
        got,
        json!({"invite_id": id, "invitee": "bob", "data": "ok!"})
    );
    // Answered: the invitation is gone.
    assert_eq!(bob.err_code("reject", json!({"invite_id": id})).await, 8010);
    assert_eq!(
        alice.err_code("cancel", json!({"invite_id": id})).await,
        8010
    );

    let id2 = invite(&alice, "bob", "again", 0).await;
    bob.expect_event("on_received_new_invitation", WAIT).await;
    bob.ok("reject", json!({"invite_id": id2, "data": "busy"}))
        .await;
    let got = alice.expect_event("on_invitee_rejected", WAIT).await;
    assert_eq!(
        got,
        json!({"invite_id": id2, "invitee": "bob", "data": "busy"})
    );
    assert_eq!(
        bob.err_code("accept", json!({"invite_id": "nope"})).await,
        8010
    );
    assert_eq!(bob.err_code("accept", json!({"invite_id": ""})).await, 8010);
    assert_eq!(bob.err_code("invite", json!({"invitee": ""})).await, 7003);
    // Not a signaling message.
    let plain = chime_tests::send_c2c_text(&alice, "bob", "plain").await;
    assert_eq!(
        alice
            .err_code("get_signaling_info", json!({"msg_id": plain["msg_id"]}))
            .await,
        8010
    );
}

#[tokio::test]
async fn cancel_and_modify_reach_the_invitee_and_only_the_inviter_may() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    let bob = TestClient::new(&server).await;
    let carol = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;
    carol.login("carol").await;
    let id = invite(&alice, "bob", "v1", 60).await;
    bob.expect_event("on_received_new_invitation", WAIT).await;
    assert_eq!(
        bob.err_code("modify_invitation", json!({"invite_id": id, "data": "x"}))
            .await,
        8011
    );
    assert_eq!(
        carol.err_code("cancel", json!({"invite_id": id})).await,
        8011
    );
    alice
        .ok("modify_invitation", json!({"invite_id": id, "data": "v2"}))
        .await;
    let got = bob.expect_event("on_invitation_modified", WAIT).await;
    assert_eq!(got, json!({"invite_id": id, "data": "v2"}));
    alice
        .ok("cancel", json!({"invite_id": id, "data": "never mind"}))
        .await;
    let got = bob.expect_event("on_invitation_cancelled", WAIT).await;
    assert_eq!(
        got,
        json!({"invite_id": id, "inviter": "alice", "data": "never mind"})
    );
    assert_eq!(bob.err_code("accept", json!({"invite_id": id})).await, 8010);
    assert_eq!(carol.event_count("on_received_new_invitation"), 0);
}

#[tokio::test]
async fn group_invitation_answers_reach_everyone_and_timeout_names_the_rest() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    let bob = TestClient::new(&server).await;
    let carol = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;
    carol.login("carol").await;
    alice
        .ok(
            "create_group",
            json!({"group_type": "Work", "group_id": "sig_g", "group_name": "calls",
                   "member_list": [{"user_id": "bob"}, {"user_id": "carol"}]}),
        )
        .await;
    // Dave is no member: 10007.
    assert_eq!(
        alice
            .err_code(
                "invite_in_group",
                json!({"group_id": "sig_g", "invitee_list": ["dave"], "data": "", "timeout": 5}),
            )
            .await,
        10007
    );
    let out = alice
        .ok(
            "invite_in_group",
            json!({"group_id": "sig_g", "invitee_list": ["bob", "carol"], "data": "meeting",
                   "timeout": 2}),
        )
        .await;
    let id = out["invite_id"].as_str().unwrap_or_default().to_owned();
    for c in [&bob, &carol] {
        let got = c.expect_event("on_received_new_invitation", WAIT).await;
        assert_eq!(got["group_id"], "sig_g");
        assert_eq!(got["invitee_list"], json!(["bob", "carol"]));
    }
    bob.ok("accept", json!({"invite_id": id, "data": "in"}))
        .await;
    for c in [&alice, &carol] {
        let got = c.expect_event("on_invitee_accepted", WAIT).await;
        assert_eq!(got["invitee"], "bob");
    }
    // Carol never answers: after 2 s the server times the invitation out for her and alice.
    for c in [&alice, &carol] {
        let got = c.expect_event("on_invitation_timeout", WAIT).await;
        assert_eq!(got, json!({"invite_id": id, "invitee_list": ["carol"]}));
    }
    assert_eq!(bob.next_event("on_invitation_timeout", QUIET).await, None);
    assert_eq!(
        carol.err_code("accept", json!({"invite_id": id})).await,
        8010
    );
}

#[tokio::test]
async fn offline_invitee_gets_it_at_login_and_timeout_fires_without_the_inviter() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    alice.login("alice").await;
    let live = invite(&alice, "bob", "call me", 60).await;
    let online_only = alice
        .ok(
            "invite",
            json!({"invitee": "bob", "data": "now or never", "online_user_only": true,
                   "timeout": 60}),
        )
        .await;
    assert!(online_only["invite_id"].is_string());
    let short = invite(&alice, "bob", "short", 1).await;
    // Alice goes away; the server still times `short` out.
    alice.ok("logout", json!({})).await;
    tokio::time::sleep(Duration::from_millis(1800)).await;

    let bob = TestClient::new(&server).await;
    bob.login("bob").await;
    let got = bob.expect_event("on_received_new_invitation", WAIT).await;
    assert_eq!(got["invite_id"], live.as_str());
    assert_eq!(got["data"], "call me");
    // Neither the online-only nor the timed-out one arrives.
    assert_eq!(
        bob.next_event("on_received_new_invitation", QUIET).await,
        None
    );
    assert_eq!(
        bob.err_code("accept", json!({"invite_id": short})).await,
        8010
    );
    // The messages of both stored invitations are in the history; get_signaling_info reads them.
    let hist = bob
        .ok(
            "get_c2c_history_message_list",
            json!({"user_id": "alice", "count": 10}),
        )
        .await;
    let ids: Vec<String> = hist["message_list"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|m| m["msg_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(ids.len(), 2, "{hist}");
    let mut invite_ids = Vec::new();
    for msg_id in ids {
        let info: Value = bob
            .ok("get_signaling_info", json!({"msg_id": msg_id}))
            .await;
        invite_ids.push(info["invite_id"].as_str().unwrap_or_default().to_owned());
    }
    invite_ids.sort();
    let mut want = vec![live.clone(), short.clone()];
    want.sort();
    assert_eq!(invite_ids, want);
    // Alice comes back and sees bob accept the live one.
    alice.login("alice").await;
    bob.ok("accept", json!({"invite_id": live})).await;
    let got = alice.expect_event("on_invitee_accepted", WAIT).await;
    assert_eq!(got["invite_id"], live.as_str());
}

#[tokio::test]
async fn timeout_fires_on_both_sides_while_online() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    let bob = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;
    let id = invite(&alice, "bob", "ring", 1).await;
    bob.expect_event("on_received_new_invitation", WAIT).await;
    for c in [&alice, &bob] {
        let got = c.expect_event("on_invitation_timeout", WAIT).await;
        assert_eq!(got, json!({"invite_id": id, "invitee_list": ["bob"]}));
    }
    assert_eq!(bob.err_code("accept", json!({"invite_id": id})).await, 8010);
}
