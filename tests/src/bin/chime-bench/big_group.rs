//! big-group: the sender's ack latency for a message to a 5,000-member Public group, in three
//! phases on one server, 1,000 messages each, one in flight: (1) the 5,000-member group with no
//! member online, (2) a 2-member group, (3) the 5,000-member group with 100 members online
//! (raw-protocol connections draining their pushes). (1) against (2) is what the group's size
//! costs the sender (read diffusion: one append; nothing per member); (3) against (1) is what
//! the fan-out to the online members costs on a shared machine. At the end the server's
//! commit-thread totals (staging, fsync, apply, emit) are printed.

use std::time::{Duration, Instant};

use chime_proto::pb;
use chime_proto::pb::request::Kind as ReqKind;
use chime_tests::wire::{self, WireClient};
use chime_tests::{APP_ID, TestServer};

use super::{commit_summary, micros, process_cpu_micros, summary};

/// Group members (the owner included).
const MEMBERS: usize = 5_000;
/// Members online (raw connections draining their pushes).
const ONLINE: usize = 100;
/// Messages sent before measuring.
const WARMUP: usize = 50;
/// Messages measured per group.
const MESSAGES: usize = 1_000;
/// Logins in flight at once.
const CONCURRENCY: usize = 50;

/// The server config: room for 5,000 in a Public group, the per-group rate limit lifted.
const SERVER_CONFIG: &str = "group_message_rate = 1000000\n[group_member_limits]\nPublic = 6000\n";

async fn login(server: &TestServer, user: &str) -> Result<WireClient, String> {
    WireClient::login(&server.ws_url(), APP_ID, user, &server.user_sig(user), user)
        .await
        .map_err(|e| format!("login {user}: {e}"))
}

async fn create(owner: &mut WireClient, group_id: &str, members: &[String]) -> Result<(), String> {
    let member_list = members
        .iter()
        .map(|m| pb::GroupMember {
            user_id: m.clone(),
            ..Default::default()
        })
        .collect();
    owner
        .call(ReqKind::CreateGroup(pb::CreateGroupReq {
            group_type: "Public".into(),
            group_id: group_id.into(),
            name: group_id.into(),
            member_list,
            ..Default::default()
        }))
        .await
        .map(drop)
        .map_err(|e| format!("create {group_id}: {e}"))
}

/// Sends `n` messages to `group_id`, one in flight, with msg ids `<phase>-<i>`; answers each
/// ack's latency in µs.
async fn acks(
    owner: &mut WireClient,
    group_id: &str,
    phase: &str,
    n: usize,
) -> Result<Vec<u64>, String> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let m = wire::group_text(group_id, &format!("{phase}-{i}"), "ack latency");
        let t = Instant::now();
        owner
            .call(ReqKind::SendMessage(pb::SendMessageReq {
                message: Some(m),
            }))
            .await
            .map_err(|e| format!("send to {group_id}: {e}"))?;
        out.push(micros(t.elapsed()));
    }
    Ok(out)
}

/// Runs the workload on its own server.
pub async fn run() -> Result<(), String> {
    let mut server = TestServer::start_with_config(SERVER_CONFIG).await;
    println!(
        "== big-group: ack latency, {MEMBERS}-member Public group ({ONLINE} online) vs a \
         2-member group, {MESSAGES} messages each, one in flight (server pid {})",
        server.pid()
    );
    let mut owner = login(&server, "bg_owner").await?;
    let members: Vec<String> = (1..MEMBERS).map(|i| format!("bg_m{i:04}")).collect();
    create(&mut owner, "bg_big", &members).await?;
    create(&mut owner, "bg_small", &members[..1]).await?;
    acks(&mut owner, "bg_big", "warm-big", WARMUP).await?;
    acks(&mut owner, "bg_small", "warm-small", WARMUP).await?;
    let cpu_0 = process_cpu_micros(server.pid());
    let offline = acks(&mut owner, "bg_big", "offline", MESSAGES).await?;
    let cpu_1 = process_cpu_micros(server.pid());
    let small = acks(&mut owner, "bg_small", "small", MESSAGES).await?;
    let cpu_2 = process_cpu_micros(server.pid());
    // The online members drain their pushes and count the big group's messages.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut readers = Vec::new();
    for chunk in members[..ONLINE].chunks(CONCURRENCY) {
        let logins = chunk.iter().map(|m| login(&server, m));
        for conn in futures_util::future::join_all(logins).await {
            let (keep, mut frames) = conn?.split();
            let tx = tx.clone();
            readers.push(tokio::spawn(async move {
                let _keep = keep;
                while let Ok(f) = frames.next_frame().await {
                    if let Some(pb::frame::Body::Push(pb::Push {
                        kind: Some(pb::push::Kind::Message(p)),
                    })) = f.body
                        && p.message.is_some_and(|m| m.group_id == "bg_big")
                        && tx.send(()).is_err()
                    {
                        break;
                    }
                }
            }));
        }
    }
    drop(tx);
    let cpu_3 = process_cpu_micros(server.pid());
    let online = acks(&mut owner, "bg_big", "online", MESSAGES).await?;
    let cpu_4 = process_cpu_micros(server.pid());
    println!("{}", summary("ack, 5,000, none online", offline));
    println!("{}", summary("ack, 2 members", small));
    println!("{}", summary("ack, 5,000, 100 online", online));
    let per = |a: Option<u64>, b: Option<u64>| {
        a.zip(b).map_or(f64::NAN, |(a, b)| {
            b.saturating_sub(a) as f64 / MESSAGES as f64
        })
    };
    println!(
        "server CPU per message: {:.1} µs (5,000, none online), {:.1} µs (2 members), {:.1} µs \
         (5,000, {ONLINE} online)",
        per(cpu_0, cpu_1),
        per(cpu_1, cpu_2),
        per(cpu_3, cpu_4)
    );
    // Every online member got every message of the third phase.
    let want = ONLINE * MESSAGES;
    let mut got = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got < want {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(())) => got += 1,
            _ => break,
        }
    }
    println!("deliveries to the online members: {got} of {want}");
    for r in &readers {
        r.abort();
    }
    if server.stop(Duration::from_secs(10)).await {
        for line in server.log_tail().lines().filter(|l| l.contains(" totals")) {
            println!("{}", commit_summary(line));
        }
    }
    if got != want {
        return Err("big-group: not every online member got every message".into());
    }
    Ok(())
}
