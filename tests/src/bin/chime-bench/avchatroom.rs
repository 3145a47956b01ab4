//! avchatroom: live-room fan-out. One AVChatRoom with 2,000 online viewers (raw-protocol
//! connections that joined it), one sender, 200 online-only messages, at most 10 in flight (a
//! slot closes when every viewer has the message); deliveries/s, send → viewer latency p50/p99,
//! exactly-once, server CPU per delivery.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chime_proto::pb;
use chime_proto::pb::request::Kind as ReqKind;
use chime_tests::TestServer;
use chime_tests::wire::{self, WireClient};
use tokio::sync::{Semaphore, mpsc};

use super::fanout::{Outcome, SERVER_CONFIG, login, report};
use super::{micros, process_cpu_micros};

/// Viewers online in the room.
const VIEWERS: usize = 2_000;
/// Messages sent.
const MESSAGES: usize = 200;
/// Messages in flight.
const WINDOW: usize = 10;
/// Logins and joins in flight at once.
const CONCURRENCY: usize = 50;
/// Longest the run may take.
const TIMEOUT: Duration = Duration::from_secs(300);
/// The room.
const ROOM: &str = "bench_live";

fn body(index: usize) -> String {
    format!("live:{index:06}")
}

fn parse_body(text: &str) -> Option<usize> {
    text.strip_prefix("live:")?.parse().ok()
}

async fn viewer(server: &TestServer, user: &str) -> Result<WireClient, String> {
    let mut c = login(server, user).await?;
    c.call(ReqKind::JoinGroup(pb::JoinGroupReq {
        group_id: ROOM.into(),
        message: String::new(),
    }))
    .await
    .map_err(|e| format!("join {user}: {e}"))?;
    Ok(c)
}

/// Runs the workload on its own server.
pub async fn run() -> Result<(), String> {
    let server = TestServer::start_with_config(SERVER_CONFIG).await;
    println!(
        "== avchatroom: {VIEWERS} online viewers, one sender, {MESSAGES} messages, window \
         {WINDOW} (server pid {})",
        server.pid()
    );
    let mut host = login(&server, "live_host").await?;
    host.call(ReqKind::CreateGroup(pb::CreateGroupReq {
        group_type: "AVChatRoom".into(),
        group_id: ROOM.into(),
        name: "Live".into(),
        ..Default::default()
    }))
    .await
    .map_err(|e| format!("create: {e}"))?;
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let names: Vec<String> = (0..VIEWERS).map(|i| format!("live_v{i:04}")).collect();
    let joined = Instant::now();
    for chunk in names.chunks(CONCURRENCY) {
        let joins = chunk.iter().map(|n| viewer(&server, n));
        for conn in futures_util::future::join_all(joins).await {
            let (keep, mut frames) = conn?.split();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _keep = keep;
                while let Ok(f) = frames.next_frame().await {
                    if let Some(pb::frame::Body::Push(pb::Push {
                        kind: Some(pb::push::Kind::Message(p)),
                    })) = f.body
                        && let Some(index) = p
                            .message
                            .as_ref()
                            .and_then(|m| parse_body(wire::first_text(m)))
                        && tx.send((index, Instant::now())).is_err()
                    {
                        break;
                    }
                }
            });
        }
    }
    drop(tx);
    println!(
        "{VIEWERS} viewers logged in and joined in {:.2} s",
        joined.elapsed().as_secs_f64()
    );

    let slots = Arc::new(Semaphore::new(WINDOW));
    let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; MESSAGES]));
    let (mut sink, mut acks) = host.split();
    let ack_task = tokio::spawn(async move {
        let mut refused = 0usize;
        while let Ok(f) = acks.next_frame().await {
            if let Some(pb::frame::Body::Response(r)) = f.body
                && r.code != 0
            {
                refused += 1;
            }
        }
        refused
    });
    let cpu_before = process_cpu_micros(server.pid());
    let start = Instant::now();
    let send_task = {
        let slots = Arc::clone(&slots);
        let sent_at = Arc::clone(&sent_at);
        tokio::spawn(async move {
            for index in 0..MESSAGES {
                slots.acquire().await.map_err(|e| e.to_string())?.forget();
                if let Ok(mut s) = sent_at.lock() {
                    s[index] = Some(Instant::now());
                }
                let m = wire::group_text(ROOM, &format!("live-{index}"), &body(index));
                sink.request(ReqKind::SendMessage(pb::SendMessageReq {
                    message: Some(m),
                }))
                .await
                .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(sink)
        })
    };
    let total = MESSAGES * VIEWERS;
    let mut per_message = vec![0usize; MESSAGES];
    let mut latencies = Vec::with_capacity(total);
    let mut duplicates = 0usize;
    let mut last = start;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while latencies.len() + duplicates < total {
        let Ok(Some((index, at))) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            return Err(format!(
                "avchatroom stalled with {} of {total} deliveries",
                latencies.len()
            ));
        };
        let Some(count) = per_message.get_mut(index) else {
            continue;
        };
        *count += 1;
        if *count > VIEWERS {
            duplicates += 1;
            continue;
        }
        if let Some(sent) = sent_at.lock().ok().and_then(|s| s[index]) {
            latencies.push(micros(at.saturating_duration_since(sent)));
        }
        last = last.max(at);
        if *count == VIEWERS {
            slots.add_permits(1);
        }
    }
    let elapsed = last.duration_since(start);
    let cpu = process_cpu_micros(server.pid())
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let mut sink = send_task
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("send: {e}"))?;
    sink.close().await;
    let refused = ack_task.await.unwrap_or(0);
    report(
        "avchatroom",
        "latency (send → viewer)",
        Outcome {
            latencies,
            total,
            elapsed,
            duplicates,
            refused,
            cpu,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_back() {
        assert_eq!(parse_body(&body(199)), Some(199));
        assert_eq!(parse_body("w3:000001"), None);
    }
}
