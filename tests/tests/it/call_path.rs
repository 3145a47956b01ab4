//! The engine's call path end to end (issue 2, W1 through the engines): the login check of every
//! call reads the status the ConnectionActor publishes instead of asking the actor, so it must
//! say "not logged in" exactly when the actor would — right after a refused login, a logout or a
//! kick — and let calls through while logged in; and one-in-flight sends (the W1 pattern) keep
//! `sending → send_succ`, contiguous seqs and exactly-once delivery.

use std::time::Duration;

use chime_proto::codes;
use chime_server::usersig;
use chime_tests::{APP_ID, TestClient, TestServer, text_of};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

async fn status(client: &TestClient) -> String {
    let v = client.ok("get_login_status", json!({})).await;
    v["status"].as_str().unwrap_or_default().to_owned()
}

/// A refused login answers its code, and the very next call is refused with 6014 without
/// touching the account the failed login had opened; a good login after it works.
#[tokio::test]
async fn a_call_right_after_a_refused_login_is_not_logged_in() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    let bad = usersig::gen_user_sig(APP_ID, "not-the-app-key", "alice", 86_400);
    for _ in 0..3 {
        let e = alice
            .login_with("alice", &bad)
            .await
            .expect_err("a login with a foreign key's UserSig must fail");
        assert_eq!(e.code, codes::ERR_SVR_USER_SIG_INVALID);
        assert_eq!(
            alice
                .err_code(
                    "send_c2c_text_message",
                    json!({ "text": "too early", "user_id": "bob" })
                )
                .await,
            codes::ERR_SDK_NOT_LOGGED_IN
        );
        assert_eq!(
            alice.err_code("get_conversation_list", json!({})).await,
            codes::ERR_SDK_NOT_LOGGED_IN
        );
        assert_eq!(status(&alice).await, "logout");
    }
    alice.login("alice").await;
    assert_eq!(status(&alice).await, "logined");
    let sent = alice
        .ok(
            "send_c2c_text_message",
            json!({ "text": "now", "user_id": "bob" }),
        )
        .await;
    assert_eq!(sent["status"], "send_succ");
    assert_eq!(sent["seq"], 1);
    // Nothing of the refused attempts reached the store or the server.
    let history = alice
        .ok(
            "get_c2c_history_message_list",
            json!({ "user_id": "bob", "count": 10 }),
        )
        .await;
    let texts: Vec<String> = history["message_list"]
        .as_array()
        .map(|l| l.iter().map(text_of).collect())
        .unwrap_or_default();
    assert_eq!(texts, ["now"]);
}

/// Logged in, logged out, logged in again: the guard follows each step at once.
#[tokio::test]
async fn the_login_guard_follows_login_logout_login() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    for round in 1..=2u64 {
        alice.login("alice").await;
        let sent = alice
            .ok(
                "send_c2c_text_message",
                json!({ "text": format!("round {round}"), "user_id": "bob" }),
            )
            .await;
        assert_eq!(sent["status"], "send_succ");
        assert_eq!(sent["seq"], round);
        alice.ok("logout", json!({})).await;
        assert_eq!(
            alice
                .err_code(
                    "send_c2c_text_message",
                    json!({ "text": "logged out", "user_id": "bob" })
                )
                .await,
            codes::ERR_SDK_NOT_LOGGED_IN
        );
    }
}

/// The W1 pattern: one message in flight, each call answered `send_succ` with the next seq, and
/// each delivered to the peer exactly once, in order.
#[tokio::test]
async fn one_in_flight_sends_are_acked_in_seq_order_and_delivered_once() {
    const N: u64 = 40;
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    let bob = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;
    for i in 1..=N {
        let sent = alice
            .ok(
                "send_c2c_text_message",
                json!({ "text": format!("m{i}"), "user_id": "bob" }),
            )
            .await;
        assert_eq!(sent["status"], "send_succ");
        assert_eq!(sent["seq"], i);
        let got = bob.expect_event("on_recv_new_message", WAIT).await;
        assert_eq!(text_of(&got["message"]), format!("m{i}"));
        assert_eq!(got["message"]["seq"], i);
        assert_eq!(got["message"]["msg_id"], sent["msg_id"]);
    }
    // Exactly once: no further deliveries.
    assert_eq!(
        bob.next_event("on_recv_new_message", Duration::from_millis(300))
            .await,
        None
    );
    // The sender's store holds every message as sent, none left in the outbox.
    let history = alice
        .ok(
            "get_c2c_history_message_list",
            json!({ "user_id": "bob", "count": 100 }),
        )
        .await;
    let list = history["message_list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(list.len(), N as usize);
    assert!(list.iter().all(|m| m["status"] == "send_succ"), "{list:?}");
}
