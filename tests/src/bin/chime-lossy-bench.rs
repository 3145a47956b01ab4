//! `chime-lossy-bench`: delivery time of a burst of C2C messages over QUIC through a lossy path,
//! at several loss rates (issue 5's weak-network proof), with WebSocket on a clean path as the
//! reference.
//!
//! A real `chime-server` with its QUIC endpoint, two real engines (`transport: "quic"`, the real
//! `chime-quic-transport` cdylib), both reaching the server through one
//! [`chime_tests::lossy::LossyRelay`] that drops the given share of datagrams in each direction
//! and delays the rest. For each loss rate: log both in (the QUIC handshake crosses the lossy
//! path too), send N messages at once, and time until the receiver has all of them; every
//! message must arrive exactly once. Figures are printed, never asserted.
//!
//! WebSocket through a lossy path is not measured: that needs packet loss under TCP (`tc netem`),
//! and this kernel has no netem qdisc (docs/performance.md).
//!
//! ```text
//! cargo build --release -p chime-server -p chime-quic-transport
//! cargo run --release -p chime-tests --bin chime-lossy-bench -- --loss 0,10,30,50
//! ```

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chime_tests::lossy::{Impairment, LossyRelay};
use chime_tests::{APP_ID, TestClient, TestServer, percentile, quic_engine_config, user_sig_for};
use clap::Parser;
use serde_json::{Value, json};

/// Longest one round (login + all messages) may take.
const ROUND_TIMEOUT: Duration = Duration::from_secs(300);
/// Login attempts per user before a round gives up.
const LOGIN_ATTEMPTS: u32 = 3;
/// How long after the last message a duplicate is still watched for.
const DUPLICATE_WATCH: Duration = Duration::from_millis(500);

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "chime-lossy-bench",
    about = "Delivery time of N messages over QUIC at several datagram loss rates"
)]
struct Args {
    /// Messages per round.
    #[arg(long, default_value_t = 100)]
    messages: usize,
    /// Loss rates in percent, each direction.
    #[arg(long, value_delimiter = ',', default_value = "0,10,30,50")]
    loss: Vec<u32>,
    /// One-way delay added by the relay, in milliseconds.
    #[arg(long, default_value_t = 10)]
    delay_ms: u64,
    /// Seed of the relay's loss draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The QUIC handshake timeout of the plugin (long: the handshake crosses the lossy path).
    #[arg(long, default_value_t = 60_000)]
    connect_timeout_ms: u64,
}

/// What one round measured.
struct Round {
    login: Duration,
    delivery: Duration,
    latencies_ms: Vec<u64>,
    /// Sends whose ack did not come within `send_timeout_ms` (9520): the message was delivered
    /// and stays in the outbox until its ack arrives.
    late_acks: usize,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Logs `user` in (up to [`LOGIN_ATTEMPTS`] times: on a very lossy path a handshake can fail)
/// and answers the time it took, all attempts included.
async fn login(client: &TestClient, user: &str) -> Result<Duration, String> {
    let start = Instant::now();
    let params = json!({ "user_id": user, "user_sig": user_sig_for(APP_ID, user, 86_400) });
    let mut attempt = 1;
    loop {
        match client.call("login", params.clone()).await {
            Ok(_) => return Ok(start.elapsed()),
            Err(e) if attempt < LOGIN_ATTEMPTS => {
                println!("  login {user} attempt {attempt} failed: {e}");
                attempt += 1;
            }
            Err(e) => return Err(format!("login {user}: {e} ({attempt} attempts)")),
        }
    }
}

/// Logs `alice` and `bob` in as `<tag>-alice` / `<tag>-bob` (fresh users: no history to sync),
/// sends `n` messages from alice to bob at once and waits until bob has all of them, exactly
/// once.
async fn round(alice: &TestClient, bob: &TestClient, n: usize, tag: &str) -> Result<Round, String> {
    let bob_id = format!("{tag}-bob");
    let login = login(alice, &format!("{tag}-alice")).await? + login(bob, &bob_id).await?;
    let start = Instant::now();
    let mut sends = Vec::with_capacity(n);
    for i in 0..n {
        let engine = alice.engine.clone();
        let params = json!({ "text": format!("{tag}-{i}"), "user_id": bob_id });
        sends.push(tokio::spawn(async move {
            engine.call("send_c2c_text_message", params).await
        }));
    }
    let mut latencies_ms = Vec::with_capacity(n);
    let mut seen = HashSet::with_capacity(n);
    let deadline = tokio::time::Instant::now() + ROUND_TIMEOUT;
    while seen.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(event) = bob.next_event("on_recv_new_message", left).await else {
            return Err(format!(
                "{tag}: {} of {n} messages within {ROUND_TIMEOUT:?}",
                seen.len()
            ));
        };
        let message = event.get("message").cloned().unwrap_or(event);
        let id = message["msg_id"].as_str().unwrap_or_default().to_owned();
        if !seen.insert(id.clone()) {
            return Err(format!("{tag}: message {id} delivered twice"));
        }
        latencies_ms.push(millis(start.elapsed()));
    }
    let delivery = start.elapsed();
    let mut late_acks = 0;
    for send in sends {
        match send.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.code == chime_proto::codes::ERR_NET_WAIT_ACK_TIMEOUT => late_acks += 1,
            Ok(Err(e)) => return Err(format!("{tag}: send failed: {e}")),
            Err(e) => return Err(format!("{tag}: send task: {e}")),
        }
    }
    if let Some(extra) = bob.next_event("on_recv_new_message", DUPLICATE_WATCH).await {
        return Err(format!("{tag}: an extra message arrived: {extra}"));
    }
    Ok(Round {
        login,
        delivery,
        latencies_ms,
        late_acks,
    })
}

fn report(label: &str, round: &Round, extra: &str) {
    let mut sorted = round.latencies_ms.clone();
    sorted.sort_unstable();
    println!(
        "{label:<22} login {:>6} ms   all {} delivered in {:>6} ms   per message p50 {:>6} ms  \
         p99 {:>6} ms   late acks {}   {extra}",
        millis(round.login),
        sorted.len(),
        millis(round.delivery),
        percentile(&sorted, 50.0),
        percentile(&sorted, 99.0),
        round.late_acks,
    )
}

async fn run(args: &Args) -> Result<(), String> {
    let server = TestServer::start_with_quic().await;
    println!(
        "chime-server pid {} at {} and {} (sha256 {})",
        server.pid(),
        server.ws_url(),
        server.quic_url(),
        server.quic_cert_sha256()
    );
    println!(
        "== {} messages at once, alice → bob, both through the relay ({} ms one-way delay)",
        args.messages, args.delay_ms
    );
    {
        let alice = TestClient::new(&server).await;
        let bob = TestClient::new(&server).await;
        let measured = round(&alice, &bob, args.messages, "ws").await?;
        report("websocket, clean path", &measured, "(reference, no relay)");
        alice.shutdown().await;
        bob.shutdown().await;
    }
    for &loss in &args.loss {
        let relay = LossyRelay::start(
            server.quic_addr(),
            Impairment::new(loss, args.delay_ms),
            args.seed,
        )
        .await;
        let config: Value = quic_engine_config(
            &relay.quic_url(),
            &server.quic_cert_sha256(),
            false,
            args.connect_timeout_ms,
        );
        let alice = TestClient::with_config(&server, config.clone()).await;
        let bob = TestClient::with_config(&server, config).await;
        let measured = round(&alice, &bob, args.messages, &format!("quic{loss}")).await?;
        let stats = relay.stats();
        report(
            &format!("quic, {loss}% loss"),
            &measured,
            &format!(
                "datagrams up {}/{} down {}/{} dropped/forwarded",
                stats.up_dropped, stats.up_forwarded, stats.down_dropped, stats.down_forwarded
            ),
        );
        alice.shutdown().await;
        bob.shutdown().await;
    }
    println!("websocket through a lossy path: not measured (no tc netem in this kernel)");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chime-lossy-bench: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chime-lossy-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
