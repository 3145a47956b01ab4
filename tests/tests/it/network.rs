//! The network breaking under live engines while the server stays up (through
//! [`chime_tests::TestProxy`]): connections cut mid-stream and a silent black hole that only the
//! heartbeat can detect. The engine must reconnect, re-login and resync by itself, and every
//! message must arrive exactly once in both directions.

use std::collections::HashSet;
use std::time::Duration;

use chime_tests::{TestClient, TestProxy, TestServer, text_of};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const QUIET: Duration = Duration::from_millis(1000);

/// Quick reconnects so a test does not wait out the default backoff.
fn fast() -> Value {
    json!({ "reconnect_min_ms": 50, "reconnect_max_ms": 400 })
}

fn ids(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .map(|m| m["msg_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn distinct(ids: &[String]) -> HashSet<String> {
    ids.iter().cloned().collect()
}

#[tokio::test]
async fn connections_cut_mid_stream_lose_and_duplicate_nothing() {
    let server = TestServer::start().await;
    let proxy = TestProxy::start(&server).await;
    let alice = TestClient::at_url(&proxy.ws_url(), fast()).await;
    alice.login("alice").await;
    let bob = TestClient::with_config(&server, fast()).await;
    bob.login("bob").await;

    // Bob streams 40 messages to alice, one after the other; alice sends 20 at once to bob.
    let bob_engine = bob.engine.clone();
    let bob_sends = tokio::spawn(async move {
        let mut sent = Vec::new();
        for i in 0..40 {
            let m = bob_engine
                .call(
                    "send_c2c_text_message",
                    json!({ "text": format!("b{i}"), "user_id": "alice" }),
                )
                .await;
            sent.push(m);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sent
    });
    let mut alice_sends = Vec::new();
    for i in 0..20 {
        let e = alice.engine.clone();
        alice_sends.push(tokio::spawn(async move {
            e.call(
                "send_c2c_text_message",
                json!({ "text": format!("a{i}"), "user_id": "bob" }),
            )
            .await
        }));
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        proxy.cut();
    }

    let mut bob_ids = Vec::new();
    for r in tokio::time::timeout(WAIT, bob_sends)
        .await
        .expect("bob's sends finish")
        .expect("bob's send task")
    {
        let m = r.unwrap_or_else(|e| panic!("bob's send failed: {e}"));
        bob_ids.push(m["msg_id"].as_str().unwrap_or_default().to_owned());
    }
    let mut alice_ids = Vec::new();
    for h in alice_sends {
        let m = tokio::time::timeout(WAIT, h)
            .await
            .expect("alice's send finishes across the cuts")
            .expect("alice's send task")
            .unwrap_or_else(|e| panic!("alice's send failed across the cuts: {e}"));
        assert_eq!(m["status"], json!("send_succ"));
        alice_ids.push(m["msg_id"].as_str().unwrap_or_default().to_owned());
    }

    let at_alice = ids(&alice.expect_messages(40, WAIT).await);
    assert_eq!(
        distinct(&at_alice),
        distinct(&bob_ids),
        "alice got bob's 40"
    );
    let at_bob = ids(&bob.expect_messages(20, WAIT).await);
    assert_eq!(
        distinct(&at_bob),
        distinct(&alice_ids),
        "bob got alice's 20"
    );

    // Nothing more arrives later (no duplicates from resync or resends).
    assert_eq!(alice.next_event("on_recv_new_message", QUIET).await, None);
    assert_eq!(bob.next_event("on_recv_new_message", QUIET).await, None);
    assert!(proxy.accepted() >= 2, "the proxy saw no reconnect");
    assert!(
        alice.event_count("on_connect_success") >= 2,
        "alice never reconnected: {}",
        alice.event_summary()
    );
    assert_eq!(
        alice.ok("get_login_status", json!({})).await["status"],
        json!("logined")
    );

    // The conversation holds exactly the 60 messages, seq 1..=60, on both sides.
    let history = alice
        .ok(
            "get_c2c_history_message_list",
            json!({ "user_id": "bob", "count": 100 }),
        )
        .await;
    let mut seqs: Vec<u64> = history["message_list"]
        .as_array()
        .map(|l| l.iter().filter_map(|m| m["seq"].as_u64()).collect())
        .unwrap_or_default();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=60).collect::<Vec<u64>>());
}

#[tokio::test]
async fn a_silent_network_is_detected_by_heartbeat_and_recovers() {
    let server = TestServer::start_with_config("heartbeat_interval_ms = 300\n").await;
    let proxy = TestProxy::start(&server).await;
    let alice = TestClient::at_url(&proxy.ws_url(), fast()).await;
    alice.login("alice").await;
    let bob = TestClient::with_config(&server, fast()).await;
    bob.login("bob").await;
    alice.expect_event("on_connect_success", WAIT).await;

    proxy.set_blackhole(true);
    // Bob keeps talking; alice's link is silently dead.
    let mut sent = Vec::new();
    for i in 0..3 {
        let m = bob
            .ok(
                "send_c2c_text_message",
                json!({ "text": format!("into the void {i}"), "user_id": "alice" }),
            )
            .await;
        sent.push(m["msg_id"].as_str().unwrap_or_default().to_owned());
    }
    // Only the heartbeat can notice: no close ever arrives.
    alice.expect_event("on_connect_failed", WAIT).await;
    proxy.set_blackhole(false);

    alice.expect_event("on_connect_success", WAIT).await;
    let got = alice.expect_messages(3, WAIT).await;
    assert_eq!(distinct(&ids(&got)), distinct(&sent));
    let texts: HashSet<String> = got.iter().map(text_of).collect();
    assert_eq!(
        texts,
        (0..3)
            .map(|i| format!("into the void {i}"))
            .collect::<HashSet<_>>()
    );
    assert_eq!(alice.next_event("on_recv_new_message", QUIET).await, None);
    assert_eq!(
        alice.ok("get_login_status", json!({})).await["status"],
        json!("logined")
    );
}
