//! W2 at the protocol level (`w2-wire`): the same 50 pairs × 2,000 C2C messages with a window of
//! 100, but each side is a raw-protocol connection ([`chime_tests::wire`]) instead of an engine.
//! Set beside W2, it separates what the server costs from what the engines cost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chime_proto::pb;
use chime_proto::pb::request::Kind as ReqKind;
use chime_tests::wire::{self, WireClient};
use chime_tests::{APP_ID, TestServer};
use tokio::sync::Semaphore;

use super::{body, micros, parse_body, process_cpu_micros, summary};

/// Longest one pair may take.
const PAIR_TIMEOUT: Duration = Duration::from_secs(300);

/// What one pair measured.
#[derive(Default)]
struct PairResult {
    latencies: Vec<u64>,
    duplicates: usize,
    out_of_order: usize,
    last: Option<Instant>,
}

async fn login(server: &TestServer, user: &str) -> Result<WireClient, String> {
    WireClient::login(&server.ws_url(), APP_ID, user, &server.user_sig(user), user)
        .await
        .map_err(|e| format!("login {user}: {e}"))
}

async fn run_pair(
    pair: usize,
    sender: WireClient,
    receiver: WireClient,
    messages: usize,
    window: usize,
    start: Instant,
) -> Result<PairResult, String> {
    let slots = Arc::new(Semaphore::new(window));
    let sent_at = Arc::new(std::sync::Mutex::new(vec![start; messages]));
    let (mut sink, mut acks) = sender.split();
    let send = {
        let slots = Arc::clone(&slots);
        let sent_at = Arc::clone(&sent_at);
        tokio::spawn(async move {
            for index in 0..messages {
                slots.acquire().await.map_err(|e| e.to_string())?.forget();
                if let Ok(mut s) = sent_at.lock() {
                    s[index] = Instant::now();
                }
                let m = wire::c2c_text(
                    &format!("wr{pair}"),
                    &format!("w{pair}-{index}"),
                    &body(pair, index),
                );
                sink.request(ReqKind::SendMessage(pb::SendMessageReq {
                    message: Some(m),
                }))
                .await
                .map_err(|e| e.to_string())?;
            }
            // Read every ack so that the socket never backs up.
            let mut acked = 0;
            while acked < messages {
                match acks.next_frame().await.map_err(|e| e.to_string())?.body {
                    Some(pb::frame::Body::Response(r)) if r.code != 0 => {
                        return Err(format!("send refused: {} {}", r.code, r.desc));
                    }
                    Some(pb::frame::Body::Response(_)) => acked += 1,
                    _ => {}
                }
            }
            sink.close().await;
            Ok::<(), String>(())
        })
    };
    // The receiver's sending half lives until the end: dropping it would close the socket.
    let (_receiver_sink, mut frames) = receiver.split();
    let mut result = PairResult::default();
    let mut seen = vec![false; messages];
    let mut received = 0;
    let mut last_seq = 0;
    let deadline = tokio::time::Instant::now() + PAIR_TIMEOUT;
    while received < messages {
        let frame = tokio::time::timeout_at(deadline, frames.next_frame())
            .await
            .map_err(|_| format!("pair {pair} timed out after {received} messages"))?
            .map_err(|e| e.to_string())?;
        let Some(pb::frame::Body::Push(pb::Push {
            kind: Some(pb::push::Kind::Message(p)),
        })) = frame.body
        else {
            continue;
        };
        let Some(m) = p.message else { continue };
        let Some((_, index)) = parse_body(wire::first_text(&m)) else {
            continue;
        };
        let at = Instant::now();
        if seen.get(index).copied().unwrap_or(true) {
            result.duplicates += 1;
            continue;
        }
        seen[index] = true;
        received += 1;
        if m.seq <= last_seq {
            result.out_of_order += 1;
        }
        last_seq = m.seq;
        let sent = sent_at.lock().map(|s| s[index]).unwrap_or(start);
        result
            .latencies
            .push(micros(at.saturating_duration_since(sent)));
        result.last = Some(at);
        slots.add_permits(1);
    }
    send.await.map_err(|e| e.to_string())??;
    Ok(result)
}

/// Runs `w2-wire` against `server`.
pub async fn run(
    server: &TestServer,
    pairs: usize,
    messages: usize,
    window: usize,
) -> Result<(), String> {
    println!(
        "== W2 (raw protocol clients): {pairs} pairs × {messages} messages, window {window} per pair"
    );
    let mut clients = Vec::with_capacity(pairs);
    for p in 0..pairs {
        let s = login(server, &format!("ws{p}")).await?;
        let r = login(server, &format!("wr{p}")).await?;
        clients.push((s, r));
    }
    let cpu_before = process_cpu_micros(server.pid());
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(p, (s, r))| tokio::spawn(run_pair(p, s, r, messages, window, start)))
        .collect();
    let mut latencies = Vec::with_capacity(pairs * messages);
    let (mut duplicates, mut out_of_order, mut last) = (0, 0, start);
    for t in tasks {
        let r = t.await.map_err(|e| e.to_string())??;
        latencies.extend(r.latencies);
        duplicates += r.duplicates;
        out_of_order += r.out_of_order;
        last = last.max(r.last.unwrap_or(start));
    }
    let cpu = process_cpu_micros(server.pid())
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let delivered = latencies.len();
    let secs = last.duration_since(start).as_secs_f64().max(1e-9);
    println!("{}", summary("latency (send → push)", latencies));
    println!(
        "delivered: {delivered} of {} distinct in {secs:.3} s = {:.0} msg/s",
        pairs * messages,
        delivered as f64 / secs
    );
    println!("duplicates: {duplicates}   out of seq order: {out_of_order}");
    if let Some(cpu) = cpu {
        println!(
            "server CPU: {} ms total, {:.1} µs per message",
            cpu / 1000,
            cpu as f64 / delivered.max(1) as f64
        );
    }
    if delivered != pairs * messages || duplicates != 0 || out_of_order != 0 {
        return Err("w2-wire: not every message arrived exactly once and in order".into());
    }
    Ok(())
}
