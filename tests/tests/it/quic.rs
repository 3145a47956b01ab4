//! Messaging over QUIC (issue 5): engines with `transport: "quic"` load the real
//! `chime-quic-transport` cdylib by path and reach the server's QUIC endpoint, directly or through
//! [`chime_tests::lossy::LossyRelay`], which drops datagrams both ways. Everything above the
//! transport (login, sync, pushes, the outbox) is the same code as over WebSocket, so the proof is
//! end to end: every message arrives exactly once, in order, through a path that loses 30% of its
//! datagrams; an unreachable endpoint falls back to WebSocket with `on_transport_fallback` (or
//! fails the login when the fallback is off); a certificate whose fingerprint is not the pinned
//! one is refused.

use std::collections::HashSet;
use std::time::Duration;

use chime_tests::lossy::{Impairment, LossyRelay};
use chime_tests::{TestClient, TestServer, quic_engine_config, text_of};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const QUIET: Duration = Duration::from_millis(1500);
/// Messages each way in the lossy test.
const N: usize = 20;

/// A free UDP port on 127.0.0.1 with nothing listening (the socket is closed again).
fn unused_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    socket.local_addr().expect("local address").port()
}

async fn send_texts(from: &TestClient, to: &str, prefix: &str, n: usize) -> Vec<Value> {
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        sent.push(
            from.ok(
                "send_c2c_text_message",
                json!({ "text": format!("{prefix}{i}"), "user_id": to }),
            )
            .await,
        );
    }
    sent
}

/// Sends `n` texts from `from` to `to` all at once (the outbox pipelines them, so a lossy path
/// recovers by acknowledgements rather than by one timer per message); answers the sent
/// messages in seq order.
async fn send_burst(from: &TestClient, to: &str, prefix: &str, n: usize) -> Vec<Value> {
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let engine = from.engine.clone();
            let params = json!({ "text": format!("{prefix}{i}"), "user_id": to });
            tokio::spawn(async move { engine.call("send_c2c_text_message", params).await })
        })
        .collect();
    let mut sent = Vec::with_capacity(n);
    for call in calls {
        match call.await {
            Ok(Ok(message)) => sent.push(message),
            other => panic!("send from {prefix}: {other:?}"),
        }
    }
    sent.sort_by_key(|m| m["seq"].as_u64().unwrap_or(0));
    sent
}

fn ids(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["msg_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn messages_arrive_exactly_once_over_quic_at_30_percent_loss() {
    let server = TestServer::start_with_quic().await;
    let relay = LossyRelay::start(server.quic_addr(), Impairment::new(30, 5), 0x5eed).await;
    let alice = TestClient::with_config(
        &server,
        quic_engine_config(&relay.quic_url(), &server.quic_cert_sha256(), false, 20_000),
    )
    .await;
    alice.login("alice").await;
    let bob = TestClient::with_config(
        &server,
        quic_engine_config(&relay.quic_url(), &server.quic_cert_sha256(), false, 20_000),
    )
    .await;
    bob.login("bob").await;

    let (from_alice, from_bob) = tokio::join!(
        send_burst(&alice, "bob", "a", N),
        send_burst(&bob, "alice", "b", N)
    );
    // One conversation: the server numbered all of them 1..=2N, each once.
    let mut seqs: Vec<u64> = from_alice
        .iter()
        .chain(&from_bob)
        .map(|m| m["seq"].as_u64().unwrap_or(0))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=2 * N as u64).collect::<Vec<u64>>());
    assert!(
        from_alice
            .iter()
            .chain(&from_bob)
            .all(|m| m["status"] == "send_succ")
    );

    let at_bob = bob.expect_messages(N, WAIT).await;
    let at_alice = alice.expect_messages(N, WAIT).await;
    assert_eq!(ids(&at_bob), ids(&from_alice));
    assert_eq!(ids(&at_alice), ids(&from_bob));
    let mut texts: Vec<String> = at_bob.iter().map(text_of).collect();
    texts.sort();
    let mut expected: Vec<String> = (0..N).map(|i| format!("a{i}")).collect();
    expected.sort();
    assert_eq!(texts, expected);
    let mut texts: Vec<String> = at_alice.iter().map(text_of).collect();
    texts.sort();
    let mut expected: Vec<String> = (0..N).map(|i| format!("b{i}")).collect();
    expected.sort();
    assert_eq!(texts, expected);
    // Nothing arrives twice, not even late.
    assert_eq!(
        bob.next_event("on_recv_new_message", QUIET).await,
        None,
        "a duplicate reached bob"
    );
    assert_eq!(
        alice
            .next_event("on_recv_new_message", Duration::ZERO)
            .await,
        None,
        "a duplicate reached alice"
    );
    let distinct: HashSet<String> = ids(&at_bob).into_iter().chain(ids(&at_alice)).collect();
    assert_eq!(distinct.len(), 2 * N);
    // It really went through QUIC, and the relay really lost datagrams both ways.
    assert_eq!(alice.event_count("on_transport_fallback"), 0);
    assert_eq!(bob.event_count("on_transport_fallback"), 0);
    let stats = relay.stats();
    assert!(
        stats.up_dropped > 0 && stats.down_dropped > 0,
        "the relay dropped nothing: {stats:?}"
    );
    assert!(
        stats.up_forwarded > 2 * N as u64 && stats.down_forwarded > 2 * N as u64,
        "{stats:?}"
    );
    // History over QUIC matches what was received.
    let history = alice
        .ok(
            "get_c2c_history_message_list",
            json!({ "user_id": "bob", "count": 2 * N }),
        )
        .await;
    let mut listed: Vec<String> = history["message_list"]
        .as_array()
        .map(|l| l.iter().map(text_of).collect())
        .unwrap_or_default();
    listed.sort();
    let mut expected: Vec<String> = (0..N)
        .flat_map(|i| [format!("a{i}"), format!("b{i}")])
        .collect();
    expected.sort();
    assert_eq!(listed, expected, "{history}");
}

#[tokio::test]
async fn an_unreachable_quic_endpoint_falls_back_to_websocket_and_says_so() {
    let server = TestServer::start_with_quic().await;
    let port = unused_udp_port();
    let url = format!("quic://127.0.0.1:{port}");
    let alice = TestClient::with_config(
        &server,
        quic_engine_config(&url, &server.quic_cert_sha256(), true, 1_000),
    )
    .await;
    alice.login("alice").await;
    let fallback = alice
        .expect_event("on_transport_fallback", Duration::from_secs(1))
        .await;
    assert_eq!(fallback["transport"], "quic");
    assert_eq!(fallback["fallback_transport"], "websocket");
    assert_eq!(fallback["code"], 9510);
    let desc = fallback["desc"].as_str().unwrap_or_default();
    assert!(
        desc.contains(&format!("connect {url}: timed out")),
        "fallback desc: {desc}"
    );
    // Over WebSocket everything works.
    let bob = TestClient::new(&server).await;
    bob.login("bob").await;
    let sent = send_texts(&alice, "bob", "hi", 1).await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(ids(&got), ids(&sent));
    assert_eq!(alice.event_count("on_transport_fallback"), 1);

    // With the fallback off the same login fails with the transport's reason.
    let strict = TestClient::with_config(
        &server,
        quic_engine_config(&url, &server.quic_cert_sha256(), false, 1_000),
    )
    .await;
    let refused = strict
        .login_with("carol", &server.user_sig("carol"))
        .await
        .unwrap_err();
    assert_eq!(refused.code, 9510, "{refused:?}");
    assert!(refused.desc.contains("timed out"), "{refused:?}");
    assert_eq!(strict.event_count("on_transport_fallback"), 0);
    let status = strict.ok("get_login_status", json!({})).await;
    assert_eq!(status["status"], "logout");
}

#[tokio::test]
async fn a_certificate_that_is_not_the_pinned_one_is_refused() {
    let server = TestServer::start_with_quic().await;
    let wrong = "ab".repeat(32);
    let strict = TestClient::with_config(
        &server,
        quic_engine_config(&server.quic_url(), &wrong, false, 5_000),
    )
    .await;
    let refused = strict
        .login_with("alice", &server.user_sig("alice"))
        .await
        .unwrap_err();
    assert_eq!(refused.code, 9510, "{refused:?}");
    let expected = format!(
        "server certificate sha256 {} does not match the pinned {wrong}",
        server.quic_cert_sha256()
    );
    assert!(refused.desc.contains(&expected), "{refused:?}");

    // With the fallback on, the refusal is reported and the session goes on over WebSocket.
    let lenient = TestClient::with_config(
        &server,
        quic_engine_config(&server.quic_url(), &wrong, true, 5_000),
    )
    .await;
    lenient.login("alice").await;
    let fallback = lenient
        .expect_event("on_transport_fallback", Duration::from_secs(1))
        .await;
    assert_eq!(fallback["code"], 9510);
    assert!(
        fallback["desc"]
            .as_str()
            .unwrap_or_default()
            .contains(&expected),
        "{fallback}"
    );

    // The right pin connects over QUIC.
    let pinned = TestClient::with_config(
        &server,
        quic_engine_config(&server.quic_url(), &server.quic_cert_sha256(), false, 5_000),
    )
    .await;
    pinned.login("bob").await;
    assert_eq!(pinned.event_count("on_transport_fallback"), 0);
    let sent = send_texts(&lenient, "bob", "pinned", 1).await;
    assert_eq!(ids(&pinned.expect_messages(1, WAIT).await), ids(&sent));
}

#[tokio::test]
async fn a_quic_path_that_dies_is_retried_then_put_aside_for_websocket() {
    let server = TestServer::start_with_quic().await;
    let relay = LossyRelay::start(server.quic_addr(), Impairment::new(0, 0), 0x0dd).await;
    let mut config = quic_engine_config(&relay.quic_url(), &server.quic_cert_sha256(), true, 1_000);
    // A silent path is declared dead after a second.
    config["plugins"][0]["config"]["idle_timeout_ms"] = json!(1_000);
    config["plugins"][0]["config"]["keep_alive_ms"] = json!(250);
    let alice = TestClient::with_config(&server, config).await;
    alice.login("alice").await;
    let bob = TestClient::new(&server).await;
    bob.login("bob").await;
    let sent = send_texts(&alice, "bob", "quic", 1).await;
    assert_eq!(ids(&bob.expect_messages(1, WAIT).await), ids(&sent));
    let loaded = alice.ok("get_loaded_plugins", json!({})).await;
    assert_eq!(loaded["plugin_list"][0]["name"], "quic", "{loaded}");
    assert_eq!(loaded["plugin_list"][0]["is_disabled"], false, "{loaded}");
    assert_eq!(alice.event_count("on_transport_fallback"), 0);

    // The QUIC path dies: the connection is lost, reconnecting through the plugin fails three
    // times in a row, the host puts the plugin aside and the session moves to WebSocket.
    relay.set(Impairment::new(100, 0));
    let fallback = alice.expect_event("on_transport_fallback", WAIT).await;
    assert_eq!(fallback["transport"], "quic");
    assert_eq!(fallback["fallback_transport"], "websocket");
    assert_eq!(fallback["code"], 9510);
    let desc = fallback["desc"].as_str().unwrap_or_default();
    assert!(
        desc.starts_with("transport put aside after 3 failed connection attempt(s) in a row: ")
            && desc.contains("timed out"),
        "fallback desc: {desc}"
    );
    let loaded = alice.ok("get_loaded_plugins", json!({})).await;
    let info = &loaded["plugin_list"][0];
    assert_eq!(info["is_disabled"], true, "{loaded}");
    assert!(
        info["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out"),
        "{loaded}"
    );

    // Over WebSocket both ways work, and nothing sent before is delivered twice.
    let sent = send_texts(&alice, "bob", "ws", 2).await;
    assert_eq!(ids(&bob.expect_messages(2, WAIT).await), ids(&sent));
    let back = send_texts(&bob, "alice", "back", 1).await;
    assert_eq!(ids(&alice.expect_messages(1, WAIT).await), ids(&back));
    assert_eq!(alice.event_count("on_transport_fallback"), 1);
    assert_eq!(
        bob.next_event("on_recv_new_message", QUIET).await,
        None,
        "a duplicate reached bob"
    );
}
