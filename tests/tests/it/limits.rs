//! Input limits end to end: oversize messages (8001 before anything is sent), invalid user and
//! group ids (7003 / 8501), unknown methods (6017) — each refused with nothing lost or sent.

use std::time::Duration;

use chime_proto::codes;
use chime_tests::{TestClient, TestServer, text_of};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(800);

async fn pair(server: &TestServer) -> (TestClient, TestClient) {
    let alice = TestClient::new(server).await;
    alice.login("alice").await;
    let bob = TestClient::new(server).await;
    bob.login("bob").await;
    (alice, bob)
}

#[tokio::test]
async fn a_message_over_12_kb_answers_8001_and_is_not_sent() {
    let server = TestServer::start().await;
    let (alice, bob) = pair(&server).await;
    let big = "x".repeat(12 * 1024 + 1);
    let msg = alice
        .ok("create_text_message", json!({ "text": big }))
        .await;
    assert_eq!(
        alice
            .err_code("send_message", json!({ "message": msg, "receiver": "bob" }))
            .await,
        codes::ERR_MSG_TOO_LARGE
    );
    assert_eq!(
        alice
            .err_code(
                "send_c2c_text_message",
                json!({ "text": big, "user_id": "bob" })
            )
            .await,
        codes::ERR_MSG_TOO_LARGE
    );

    // The next, normal message is the first thing bob sees.
    alice
        .ok(
            "send_c2c_text_message",
            json!({ "text": "small", "user_id": "bob" }),
        )
        .await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "small");
    assert_eq!(bob.next_event("on_recv_new_message", QUIET).await, None);
    let h = bob
        .ok(
            "get_c2c_history_message_list",
            json!({ "user_id": "alice", "count": 20 }),
        )
        .await;
    let texts: Vec<String> = h["message_list"]
        .as_array()
        .map(|l| l.iter().map(text_of).collect())
        .unwrap_or_default();
    assert_eq!(texts, vec!["small".to_owned()]);
}

#[tokio::test]
async fn a_message_just_under_the_limit_is_delivered() {
    let server = TestServer::start().await;
    let (alice, bob) = pair(&server).await;
    let text = "y".repeat(12 * 1024 - 64);
    alice
        .ok(
            "send_c2c_text_message",
            json!({ "text": text, "user_id": "bob" }),
        )
        .await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]).len(), 12 * 1024 - 64);
}

#[tokio::test]
async fn invalid_user_ids_answer_7003() {
    let server = TestServer::start().await;
    let (alice, _bob) = pair(&server).await;
    for bad in ["u".repeat(33), "tab\tid".to_owned(), "ünicode".to_owned()] {
        assert_eq!(
            alice
                .err_code(
                    "send_c2c_text_message",
                    json!({ "text": "hi", "user_id": bad })
                )
                .await,
            codes::ERR_INVALID_USER_ID,
            "user id {bad:?}"
        );
    }
}

#[tokio::test]
async fn invalid_group_ids_answer_8501() {
    let server = TestServer::start().await;
    let (alice, _bob) = pair(&server).await;
    for bad in ["g".repeat(49), "new\nline".to_owned()] {
        assert_eq!(
            alice
                .err_code(
                    "send_group_text_message",
                    json!({ "text": "hi", "group_id": bad })
                )
                .await,
            codes::ERR_INVALID_GROUP_ID,
            "group id {bad:?}"
        );
    }
}

#[tokio::test]
async fn an_unknown_method_answers_6017_naming_it() {
    let server = TestServer::start().await;
    let client = TestClient::new(&server).await;
    let err = client
        .call("no_such_method", json!({}))
        .await
        .expect_err("an unknown method must fail");
    assert_eq!(err.code, codes::ERR_INVALID_PARAMETERS);
    assert!(
        err.desc.contains("no_such_method"),
        "desc {:?} does not name the method",
        err.desc
    );
}
