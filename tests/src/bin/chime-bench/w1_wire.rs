//! W1 at the protocol level (`w1-wire`): one pair of raw-protocol connections
//! ([`chime_tests::wire`]), one message in flight. Set beside W1 it splits W1's latency into the
//! server's share (read, commit queue, write-ahead log, apply, ack and push writes, with the
//! loopback and WebSocket framing of both hops) and the two engines' share (the sender's call to
//! its WebSocket write and back, the receiver's read to its event).

use std::time::{Duration, Instant};

use chime_proto::pb;
use chime_proto::pb::request::Kind as ReqKind;
use chime_tests::wire::{self, WireClient};
use chime_tests::{APP_ID, TestServer};

use super::{body, micros, summary};

/// Longest wait for one ack or push.
const WAIT: Duration = Duration::from_secs(10);

async fn login(server: &TestServer, user: &str) -> Result<WireClient, String> {
    WireClient::login(&server.ws_url(), APP_ID, user, &server.user_sig(user), user)
        .await
        .map_err(|e| format!("login {user}: {e}"))
}

/// Runs `warmup + messages` sends one at a time; prints send → ack and send → push.
pub async fn run(server: &TestServer, warmup: usize, messages: usize) -> Result<(), String> {
    println!(
        "== w1-wire: one raw-protocol pair, {warmup} warm-up + {messages} measured, one in flight"
    );
    let mut alice = login(server, "w1w-alice").await?;
    let mut bob = login(server, "w1w-bob").await?;
    let mut one_way = Vec::with_capacity(messages);
    let mut ack = Vec::with_capacity(messages);
    for i in 0..warmup + messages {
        let m = wire::c2c_text("w1w-bob", &format!("w1w-{i}"), &body(0, i));
        let start = Instant::now();
        // Both sides are awaited together, each timed when its frame is read.
        let send = async {
            let r = alice
                .call(ReqKind::SendMessage(pb::SendMessageReq {
                    message: Some(m),
                }))
                .await;
            (r, start.elapsed())
        };
        let pushed = async {
            let p = bob.next_push().await;
            (p, start.elapsed())
        };
        let ((sent, acked), (push, at)) =
            tokio::time::timeout(WAIT, async { tokio::join!(send, pushed) })
                .await
                .map_err(|_| format!("w1-wire: message {i} not acked and pushed in {WAIT:?}"))?;
        sent.map_err(|e| format!("w1-wire send {i}: {e}"))?;
        let push = push.map_err(|e| format!("w1-wire push {i}: {e}"))?;
        match push.kind {
            Some(pb::push::Kind::Message(p))
                if p.message
                    .as_ref()
                    .is_some_and(|m| m.msg_id == format!("w1w-{i}")) => {}
            other => return Err(format!("w1-wire: expected message {i}, got {other:?}")),
        }
        if i >= warmup {
            one_way.push(micros(at));
            ack.push(micros(acked));
        }
    }
    println!("{}", summary("one-way (send → push)", one_way));
    println!("{}", summary("ack (send → ack)", ack));
    Ok(())
}
