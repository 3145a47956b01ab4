//! W3: group fan-out. One group with 200 online members, one sender, 500 messages, at most 10
//! in flight (a slot closes when every member has the message). Members are raw-protocol
//! connections ([`chime_tests::wire`]): the workload measures the server's fan-out, and 200
//! engines in one process would measure the bench's own threads instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chime_proto::pb;
use chime_proto::pb::request::Kind as ReqKind;
use chime_tests::wire::{self, WireClient};
use chime_tests::{APP_ID, TestServer};
use tokio::sync::{Semaphore, mpsc};

use super::{micros, process_cpu_micros, summary};

/// Longest a whole W3 run may take.
const W3_TIMEOUT: Duration = Duration::from_secs(300);
/// The group's id.
const GROUP_ID: &str = "w3_fanout";

/// W3's shape (defaults are the definitions).
pub struct FanoutArgs {
    /// Online members receiving every message.
    pub members: usize,
    /// Messages sent.
    pub messages: usize,
    /// Messages in flight.
    pub window: usize,
}

/// The server config of the run: the seed's per-group rate limit (40 messages/s, dropping by
/// priority beyond) would otherwise be the quantity measured.
pub const SERVER_CONFIG: &str = "group_message_rate = 1000000\n";

/// One delivery: message index and when a member got it.
struct Delivery {
    index: usize,
    at: Instant,
}

fn body(index: usize) -> String {
    format!("w3:{index:06}")
}

fn parse_body(text: &str) -> Option<usize> {
    text.strip_prefix("w3:")?.parse().ok()
}

/// Logs `user` in over a raw-protocol connection.
pub async fn login(server: &TestServer, user: &str) -> Result<WireClient, String> {
    WireClient::login(&server.ws_url(), APP_ID, user, &server.user_sig(user), user)
        .await
        .map_err(|e| format!("login {user}: {e}"))
}

/// Runs W3 against `server` (started with [`SERVER_CONFIG`]).
pub async fn run(server: &TestServer, args: &FanoutArgs) -> Result<(), String> {
    println!(
        "== W3: one group, {} online members, one sender, {} messages, window {}",
        args.members, args.messages, args.window
    );
    let mut sender = login(server, "w3_sender").await?;
    let members: Vec<String> = (0..args.members).map(|i| format!("w3_m{i:04}")).collect();
    let mut connections = Vec::with_capacity(members.len());
    for m in &members {
        connections.push(login(server, m).await?);
    }
    sender
        .call(ReqKind::CreateGroup(pb::CreateGroupReq {
            group_type: "Public".into(),
            group_id: GROUP_ID.into(),
            name: "W3".into(),
            member_list: members
                .iter()
                .map(|m| pb::GroupMember {
                    user_id: m.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }))
        .await
        .map_err(|e| format!("create group: {e}"))?;

    // Every member's pushes go to one collector.
    let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
    for conn in connections {
        // The sending half lives as long as the reader: dropping it would close the socket.
        let (sending_half, mut frames) = conn.split();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _sending_half = sending_half;
            while let Ok(frame) = frames.next_frame().await {
                if let Some(pb::frame::Body::Push(pb::Push {
                    kind: Some(pb::push::Kind::Message(p)),
                })) = frame.body
                    && let Some(index) = p
                        .message
                        .as_ref()
                        .and_then(|m| parse_body(wire::first_text(m)))
                    && tx
                        .send(Delivery {
                            index,
                            at: Instant::now(),
                        })
                        .is_err()
                {
                    break;
                }
            }
        });
    }
    drop(tx);

    let slots = Arc::new(Semaphore::new(args.window));
    let sent_at: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; args.messages]));
    let (mut sink, mut acks) = sender.split();
    // Acks: every one must be a success.
    let ack_task = tokio::spawn(async move {
        let mut refused = 0usize;
        while let Ok(frame) = acks.next_frame().await {
            if let Some(pb::frame::Body::Response(r)) = frame.body
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
        let messages = args.messages;
        tokio::spawn(async move {
            for index in 0..messages {
                let permit = slots.acquire().await.map_err(|e| e.to_string())?;
                permit.forget();
                if let Ok(mut s) = sent_at.lock() {
                    s[index] = Some(Instant::now());
                }
                let m = wire::group_text(GROUP_ID, &format!("w3-{index}"), &body(index));
                sink.request(ReqKind::SendMessage(pb::SendMessageReq {
                    message: Some(m),
                }))
                .await
                .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(sink)
        })
    };

    let total = args.messages * args.members;
    let mut per_message = vec![0usize; args.messages];
    let mut latencies = Vec::with_capacity(total);
    let mut duplicates = 0usize;
    let mut last = start;
    let deadline = tokio::time::Instant::now() + W3_TIMEOUT;
    while latencies.len() + duplicates < total {
        let d = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(_) => {
                return Err(format!(
                    "W3 timed out with {} of {total} deliveries",
                    latencies.len()
                ));
            }
        };
        let Some(count) = per_message.get_mut(d.index) else {
            continue;
        };
        *count += 1;
        if *count > args.members {
            duplicates += 1;
            continue;
        }
        let sent = sent_at.lock().ok().and_then(|s| s[d.index]);
        if let Some(sent) = sent {
            latencies.push(micros(d.at.saturating_duration_since(sent)));
        }
        last = last.max(d.at);
        if *count == args.members {
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
        "W3",
        "latency (send → member)",
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

/// What a fan-out run measured.
pub struct Outcome {
    /// Send → member latency of each delivery (µs).
    pub latencies: Vec<u64>,
    /// Deliveries expected (messages × members).
    pub total: usize,
    /// First send → last delivery.
    pub elapsed: Duration,
    /// Deliveries of a message a member already had.
    pub duplicates: usize,
    /// Sends the server refused.
    pub refused: usize,
    /// Server CPU over the run (µs), when readable.
    pub cpu: Option<u64>,
}

/// Prints a fan-out run's figures (latency, deliveries/s, duplicates, server CPU per delivery)
/// and fails unless every delivery happened exactly once.
pub fn report(workload: &str, latency_label: &str, o: Outcome) -> Result<(), String> {
    let delivered = o.latencies.len();
    println!("{}", summary(latency_label, o.latencies));
    println!(
        "delivered: {delivered} of {} deliveries in {:.3} s = {:.0} deliveries/s",
        o.total,
        o.elapsed.as_secs_f64(),
        delivered as f64 / o.elapsed.as_secs_f64().max(1e-9)
    );
    println!(
        "duplicates: {}   refused sends: {}",
        o.duplicates, o.refused
    );
    if let Some(cpu) = o.cpu {
        println!(
            "server CPU: {} ms total, {:.2} µs per delivery",
            cpu / 1000,
            cpu as f64 / delivered.max(1) as f64
        );
    }
    if delivered != o.total || o.duplicates != 0 || o.refused != 0 {
        return Err(format!(
            "{workload}: not every delivery happened exactly once"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_back() {
        assert_eq!(parse_body(&body(499)), Some(499));
        assert_eq!(parse_body("w2:1"), None);
    }
}
