//! Sends stay idempotent through the staging thread's shortcuts (`server/src/idem_filter.rs`,
//! `server/src/read_cache.rs`): a resend of a msg_id is answered with the first ack, whether it
//! lands in the same group commit as the first send, in a later one (the sender's idempotency set
//! is loaded by then), or after the server was killed and restarted (the set loads again from the
//! store); and a head read from the staging thread's cache keeps seqs contiguous across all of it.

use std::collections::HashMap;
use std::time::Duration;

use chime_proto::pb;
use chime_proto::pb::frame::Body;
use chime_proto::pb::request::Kind as ReqKind;
use chime_proto::pb::response::Kind as RespKind;
use chime_tests::wire::{WireClient, c2c_text};
use chime_tests::{APP_ID, TestServer};

/// Longest wait for one frame of a pipelined stream.
const FRAME_WAIT: Duration = Duration::from_secs(30);

/// Distinct messages in the pipelined burst.
const BURST: usize = 200;

async fn wire_login(server: &TestServer, user: &str) -> WireClient {
    WireClient::login(&server.ws_url(), APP_ID, user, &server.user_sig(user), user)
        .await
        .unwrap_or_else(|e| panic!("login of {user}: {e}"))
}

fn send_req(msg_id: &str) -> ReqKind {
    ReqKind::SendMessage(pb::SendMessageReq {
        message: Some(c2c_text("bob", msg_id, &format!("text of {msg_id}"))),
    })
}

/// Sends `msg_id` and answers its ack: (seq, server time).
async fn send(alice: &mut WireClient, msg_id: &str) -> (u64, i64) {
    let r = alice.call(send_req(msg_id)).await.expect("send");
    let Some(RespKind::SendMessage(s)) = r.kind else {
        panic!("send answered {:?}", r.kind);
    };
    assert_eq!(s.msg_id, msg_id);
    (s.seq, s.server_time_ms)
}

/// Pipelines every id of the burst twice in a row (so most pairs share a group commit) and
/// answers each id's acks.
async fn pipelined_twice(alice: WireClient) -> HashMap<String, Vec<(u64, i64)>> {
    let (mut tx, mut rx) = alice.split();
    let sender = tokio::spawn(async move {
        for i in 0..BURST {
            for _ in 0..2 {
                tx.request(send_req(&format!("id-{i}")))
                    .await
                    .expect("pipelined send");
            }
        }
        tx
    });
    let mut acks: HashMap<String, Vec<(u64, i64)>> = HashMap::new();
    let mut answered = 0;
    // Bounded: every frame is one of the 2 × BURST answers or a push to alice's other devices
    // (none here).
    for _ in 0..BURST * 4 {
        if answered == BURST * 2 {
            break;
        }
        let frame = tokio::time::timeout(FRAME_WAIT, rx.next_frame())
            .await
            .expect("a frame in time")
            .expect("connection open");
        if let Some(Body::Response(r)) = frame.body {
            assert_eq!(r.code, 0, "send refused: {}", r.desc);
            let Some(RespKind::SendMessage(s)) = r.kind else {
                panic!("send answered {:?}", r.kind);
            };
            acks.entry(s.msg_id)
                .or_default()
                .push((s.seq, s.server_time_ms));
            answered += 1;
        }
    }
    assert_eq!(answered, BURST * 2);
    let mut tx = sender.await.expect("sender task");
    tx.close().await;
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_gets_the_first_ack_in_the_same_batch_a_later_one_and_after_a_kill() {
    let mut server = TestServer::start().await;
    let acks = pipelined_twice(wire_login(&server, "alice").await).await;

    // Each id stored once: both answers carry the same seq and time, and the seqs are 1..=BURST.
    assert_eq!(acks.len(), BURST);
    let mut first: HashMap<String, (u64, i64)> = HashMap::new();
    for (id, a) in &acks {
        assert_eq!(a.len(), 2, "{id} answered twice");
        assert_eq!(a[0], a[1], "{id}: the resend gets the first ack");
        first.insert(id.clone(), a[0]);
    }
    let mut seqs: Vec<u64> = first.values().map(|(seq, _)| *seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=BURST as u64).collect::<Vec<u64>>());

    // Later batches: the sender's idempotency set is loaded and answers from the store.
    let mut alice = wire_login(&server, "alice").await;
    for id in ["id-0", "id-77", "id-199"] {
        assert_eq!(send(&mut alice, id).await, first[id], "{id} resent later");
    }
    assert_eq!(send(&mut alice, "fresh-1").await.0, BURST as u64 + 1);
    assert_eq!(send(&mut alice, "fresh-1").await.0, BURST as u64 + 1);

    // Killed and restarted: the set loads again from the store; the head continues.
    server.kill().await;
    server.restart().await;
    let mut alice = wire_login(&server, "alice").await;
    for id in ["id-3", "id-150"] {
        assert_eq!(
            send(&mut alice, id).await,
            first[id],
            "{id} resent after a restart"
        );
    }
    assert_eq!(send(&mut alice, "fresh-1").await.0, BURST as u64 + 1);
    assert_eq!(send(&mut alice, "fresh-2").await.0, BURST as u64 + 2);
    // The same msg_id from another sender is another message.
    let mut carol = wire_login(&server, "carol").await;
    let r = carol
        .call(ReqKind::SendMessage(pb::SendMessageReq {
            message: Some(c2c_text("bob", "id-3", "carol's own")),
        }))
        .await
        .expect("carol's send");
    let Some(RespKind::SendMessage(s)) = r.kind else {
        panic!("send answered {:?}", r.kind);
    };
    assert_eq!(s.seq, 1, "carol's first message to bob");
}
