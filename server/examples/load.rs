//! Server-only load generator (W2 shape at the protocol level, without engines): N
//! sender/receiver pairs of raw protocol clients, M C2C messages per pair, at most W unacknowledged
//! per pair (a slot closes when the receiver has the message). Prints delivered msg/s, latency
//! percentiles, exactly-once/order checks and the server's CPU per message from `/proc`.
//!
//! ```text
//! cargo build --release -p chime-server --examples
//! target/release/examples/load [--pairs 50] [--messages 2000] [--window 100] [--server-bin target/release/chime-server]
//! ```
//! Without `--server-bin` the server runs in-process (then no server-only CPU figure).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chime_proto::pb::{self, frame::Body, request::Kind as ReqKind};
use chime_server::{ServerConfig, usersig};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const APP: u64 = 1_400_000_000;
const KEY: &str = "load-test-key";

struct Args {
    idle: usize,
    pairs: usize,
    messages: usize,
    window: usize,
    server_bin: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        idle: 0,
        pairs: 50,
        messages: 2000,
        window: 100,
        server_bin: None,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < v.len() {
        let n = v[i + 1].parse().unwrap_or(0);
        match v[i].as_str() {
            "--pairs" => a.pairs = n,
            "--idle" => a.idle = n,
            "--messages" => a.messages = n,
            "--window" => a.window = n,
            "--server-bin" => a.server_bin = Some(v[i + 1].clone()),
            other => panic!("unknown flag {other}"),
        }
        i += 2;
    }
    a
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn login(url: &str, user: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let frame = pb::Frame {
        id: 1,
        body: Some(Body::Request(pb::Request {
            kind: Some(ReqKind::Login(pb::LoginReq {
                protocol_version: chime_proto::PROTOCOL_VERSION,
                sdk_app_id: APP,
                user_id: user.into(),
                user_sig: usersig::gen_user_sig(APP, KEY, user, 86_400),
                platform: pb::Platform::Linux as i32,
                device_id: user.into(),
                sdk_version: "load".into(),
            })),
        })),
    };
    ws.send(WsMessage::Binary(frame.encode_to_vec().into()))
        .await
        .expect("send login");
    while let Some(Ok(m)) = ws.next().await {
        if let WsMessage::Binary(b) = m
            && let Ok(f) = pb::Frame::decode(&b[..])
            && let Some(Body::Response(r)) = f.body
        {
            assert_eq!(r.code, 0, "login failed: {}", r.desc);
            return ws;
        }
    }
    panic!("connection closed during login");
}

fn now_us(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = None;
    let mut in_process = None;
    let url = if let Some(bin) = &a.server_bin {
        let mut c = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(["--app", &format!("{APP}:{KEY}")])
            .env(
                "RUST_LOG",
                std::env::var("SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn server");
        let mut line = String::new();
        BufReader::new(c.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        child = Some(c);
        line.trim()
            .strip_prefix("chime-server listening ")
            .expect("ready line")
            .to_owned()
    } else {
        let cfg =
            ServerConfig::new("127.0.0.1:0".parse().expect("addr"), dir.path()).with_app(APP, KEY);
        let s = chime_server::start(cfg).await.expect("start");
        let u = s.ws_url();
        in_process = Some(s);
        u
    };
    if a.idle > 0 {
        let pid = child
            .as_ref()
            .map(|c| c.id())
            .expect("--idle needs --server-bin");
        let before = rss_kb(pid).unwrap_or(0);
        let cpu0 = cpu_ticks(pid).unwrap_or(0);
        let t = Instant::now();
        let mut held = Vec::with_capacity(a.idle);
        for chunk in 0..a.idle.div_ceil(50) {
            let logins = (chunk * 50..((chunk + 1) * 50).min(a.idle))
                .map(|i| {
                    let url = url.clone();
                    tokio::spawn(async move { login(&url, &format!("idle{i}")).await })
                })
                .collect::<Vec<_>>();
            for l in logins {
                held.push(l.await.expect("login task"));
            }
        }
        let took = t.elapsed();
        let cpu = cpu_ticks(pid).unwrap_or(0) - cpu0;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after = rss_kb(pid).unwrap_or(0);
        println!(
            "{} idle logins in {took:?} = {:.0}/s; server CPU {:.0} us per login; RSS {before} KB -> {after} KB = {:.1} KB per connection",
            a.idle,
            a.idle as f64 / took.as_secs_f64(),
            cpu as f64 * 10_000.0 / a.idle as f64,
            (after.saturating_sub(before)) as f64 / a.idle as f64
        );
        drop(held);
        if let Some(mut c) = child {
            let _ = c.kill();
            let _ = c.wait();
        }
        return;
    }
    let t0 = Instant::now();
    let mut pairs = Vec::new();
    for p in 0..a.pairs {
        let tx = login(&url, &format!("s{p}")).await;
        let rx = login(&url, &format!("r{p}")).await;
        pairs.push((p, tx, rx));
    }
    println!("logged in {} clients in {:?}", a.pairs * 2, t0.elapsed());
    let pid = child.as_ref().map(|c| c.id());
    let cpu0 = pid.and_then(cpu_ticks);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (p, tx, rx) in pairs {
        let (messages, window) = (a.messages, a.window);
        tasks.push(tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(window));
            let (mut sink, mut acks) = tx.split();
            let sender_slots = Arc::clone(&slots);
            let sender = tokio::spawn(async move {
                for i in 0..messages {
                    sender_slots.acquire().await.expect("sem").forget();
                    let text = format!("{:020}{}", now_us(start), "x".repeat(80));
                    let msg = pb::Message {
                        msg_id: format!("p{p}-{i}"),
                        conv_type: pb::ConvType::C2c as i32,
                        receiver: format!("r{p}"),
                        elems: vec![pb::Elem {
                            content: Some(pb::elem::Content::Text(pb::TextElem { text })),
                        }],
                        ..Default::default()
                    };
                    let f = pb::Frame {
                        id: i as u64 + 1,
                        body: Some(Body::Request(pb::Request {
                            kind: Some(ReqKind::SendMessage(pb::SendMessageReq {
                                message: Some(msg),
                            })),
                        })),
                    };
                    sink.send(WsMessage::Binary(f.encode_to_vec().into()))
                        .await
                        .expect("send");
                }
                // Drain acks so the socket never backs up.
                let mut n = 0;
                while n < messages {
                    match tokio::time::timeout(Duration::from_secs(30), acks.next()).await {
                        Ok(Some(Ok(_))) => n += 1,
                        _ => break,
                    }
                }
                (sink, acks)
            });
            let (_, mut rx_stream) = rx.split();
            let mut lat = Vec::with_capacity(messages);
            let mut last_seq = 0u64;
            let mut dup_or_order = 0usize;
            let mut last_at = 0u64;
            while lat.len() < messages {
                let next = tokio::time::timeout(Duration::from_secs(30), rx_stream.next()).await;
                let Ok(Some(Ok(WsMessage::Binary(b)))) = next else {
                    break;
                };
                let Ok(f) = pb::Frame::decode(&b[..]) else {
                    continue;
                };
                if let Some(Body::Push(pb::Push {
                    kind: Some(pb::push::Kind::Message(m)),
                })) = f.body
                {
                    let msg = m.message.unwrap_or_default();
                    if msg.seq <= last_seq {
                        dup_or_order += 1;
                    }
                    last_seq = msg.seq;
                    let text = match msg.elems.first().and_then(|e| e.content.as_ref()) {
                        Some(pb::elem::Content::Text(t)) => t.text.clone(),
                        _ => String::new(),
                    };
                    let sent: u64 = text.get(..20).and_then(|s| s.parse().ok()).unwrap_or(0);
                    last_at = now_us(start);
                    lat.push(last_at.saturating_sub(sent));
                    slots.add_permits(1);
                }
            }
            let _ = sender.await;
            (lat, dup_or_order, last_at, last_seq)
        }));
    }
    let mut all = Vec::new();
    let mut bad = 0;
    let mut end = 0;
    let mut complete = 0;
    for t in tasks {
        let (lat, b, at, last_seq) = t.await.expect("task");
        if last_seq == a.messages as u64 && lat.len() == a.messages {
            complete += 1;
        }
        all.extend(lat);
        bad += b;
        end = end.max(at);
    }
    let cpu1 = pid.and_then(cpu_ticks);
    all.sort_unstable();
    let n = all.len();
    let pct = |q: f64| {
        all.get(((n as f64 * q) as usize).min(n.saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let secs = end as f64 / 1e6;
    println!(
        "pairs {} x {} msgs, window {}: delivered {n} in {secs:.3}s = {:.0} msg/s; latency p50 {} us p99 {} us max {} us; pairs complete {complete}/{}; duplicates/out-of-order {bad}",
        a.pairs,
        a.messages,
        a.window,
        n as f64 / secs,
        pct(0.5),
        pct(0.99),
        all.last().copied().unwrap_or(0),
        a.pairs,
    );
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        // Clock ticks are 100 Hz on Linux.
        let us = (c1 - c0) as f64 * 10_000.0 / n.max(1) as f64;
        println!("server CPU: {:.1} us per message", us);
    }
    if let Some(mut c) = child {
        // Graceful stop (SIGTERM) so that the server logs its commit totals.
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }
    if let Some(s) = in_process {
        s.shutdown().await;
    }
}
