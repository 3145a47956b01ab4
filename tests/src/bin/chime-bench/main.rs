//! `chime-bench`: the end-to-end benchmark workloads W1–W4 of `shared/spec/benchmarks.md`.
//!
//! A real `chime-server` process (found next to this binary: build it with `cargo build --release
//! -p chime-server`) and real engines on loopback. Figures are printed, never asserted: this is a
//! program, not a test.
//!
//! - **W1**: one pair, 200 warm-up + 5,000 measured C2C text messages of 100 bytes, one in flight;
//!   one-way latency (sender's call → recipient's event) and the sender's ack latency.
//! - **w1-wire** ([`w1_wire`]): W1 with raw-protocol connections, the server's share of W1.
//! - **W2**: 50 sender/receiver pairs, 2,000 messages each, at most 100 not yet received per pair;
//!   delivered msg/s, latency, exactly-once and per-pair seq order, server CPU per message.
//! - **w2-wire** ([`wire_pairs`]): W2 with raw-protocol connections instead of engines, so that
//!   the server's share and the engines' share of W2 can be told apart.
//! - **W3** ([`fanout`]): one group with 200 online members, one sender, 500 messages, window 10;
//!   deliveries/s, latency, server CPU per delivery (its own server, per-group rate limit lifted).
//! - **W4** ([`idle`]): 2,000 idle connections opened 50 at a time; server RSS per connection,
//!   logins/s, server CPU per login (its own fresh server).
//!
//! Every wait is bounded; a workload that stalls reports what it got and fails.
//!
//! ```text
//! cargo build --release -p chime-server
//! cargo run --release -p chime-tests --bin chime-bench -- all
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod avchatroom;
mod big_group;
mod fanout;
mod idle;
mod w1_wire;
mod wire_pairs;

use chime_engine::Event;
use chime_tests::{TestClient, TestServer, percentile, text_of};
use clap::{Parser, ValueEnum};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

// The engines allocate per message (sled nodes, JSON); the bench measures them with the allocator
// the server uses (a game host brings its own).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Body size of every benchmark message, in bytes.
const BODY_BYTES: usize = 100;
/// Longest wait for one message in W1.
const W1_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a whole W2 run may take.
const W2_TIMEOUT: Duration = Duration::from_secs(600);

/// Which workloads to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// One pair, one message in flight: latency.
    W1,
    /// W1 with raw-protocol connections instead of engines: the server's share of W1.
    W1Wire,
    /// 50 pairs with a window of 100: throughput.
    W2,
    /// W2 with raw-protocol connections instead of engines: the server alone.
    W2Wire,
    /// One group, 200 online members, window 10: fan-out.
    W3,
    /// 2,000 idle connections: memory and login rate.
    W4,
    /// AVChatRoom fan-out: 2,000 online viewers ([`avchatroom`]).
    Avchatroom,
    /// Sender ack latency in a 5,000-member group ([`big_group`]).
    BigGroup,
    /// W1, w1-wire, W2, w2-wire, W3 then W4.
    All,
}

/// Command-line options (defaults are the benchmark's definitions).
#[derive(Debug, Parser)]
#[command(name = "chime-bench", about = "Chime end-to-end benchmarks (W1-W4)")]
struct Args {
    /// The workload to run.
    workload: Workload,
    /// W1 warm-up messages.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// W1 measured messages.
    #[arg(long, default_value_t = 5_000)]
    w1_messages: usize,
    /// W2 sender/receiver pairs.
    #[arg(long, default_value_t = 50)]
    pairs: usize,
    /// W2 messages per pair.
    #[arg(long, default_value_t = 2_000)]
    w2_messages: usize,
    /// W2 window: messages sent but not yet received, per pair.
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// W3 online group members.
    #[arg(long, default_value_t = 200)]
    w3_members: usize,
    /// W3 messages.
    #[arg(long, default_value_t = 500)]
    w3_messages: usize,
    /// W3 window: messages not yet delivered to every member.
    #[arg(long, default_value_t = 10)]
    w3_window: usize,
    /// W4 idle connections.
    #[arg(long, default_value_t = 2_000)]
    w4_connections: usize,
    /// W4 logins in flight at once.
    #[arg(long, default_value_t = 50)]
    w4_concurrency: usize,
}

/// One received benchmark message: which pair, which index, its seq, when it arrived.
struct Receipt {
    pair: usize,
    index: usize,
    seq: u64,
    at: Instant,
}

/// The 100-byte body: `<pair>:<index>:` padded with `x`.
fn body(pair: usize, index: usize) -> String {
    let mut s = format!("{pair}:{index}:");
    while s.len() < BODY_BYTES {
        s.push('x');
    }
    s
}

/// Parses `<pair>:<index>:...` back.
fn parse_body(text: &str) -> Option<(usize, usize)> {
    let mut parts = text.splitn(3, ':');
    let pair = parts.next()?.parse().ok()?;
    let index = parts.next()?.parse().ok()?;
    Some((pair, index))
}

/// Replaces the client's event recorder with a timestamping one that forwards every received
/// benchmark message to `tx` (the recorder's JSON bookkeeping is not what we measure).
fn forward_receipts(client: &TestClient, tx: mpsc::UnboundedSender<Receipt>) {
    client
        .engine
        .set_event_handler(Some(Arc::new(move |event: Event| {
            if event.name != "on_recv_new_message" {
                return;
            }
            let at = Instant::now();
            let message = &event.data["message"];
            if let Some((pair, index)) = parse_body(&text_of(message)) {
                let seq = message["seq"].as_u64().unwrap_or(0);
                let _ = tx.send(Receipt {
                    pair,
                    index,
                    seq,
                    at,
                });
            }
        })));
}

/// Server CPU time (user + system) in microseconds, from `/proc/<pid>/stat`.
fn process_cpu_micros(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Field 14 (utime) and 15 (stime) of proc(5); `fields[0]` is field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

async fn logged_in(server: &TestServer, user: &str) -> TestClient {
    let client = TestClient::new(server).await;
    client.login(user).await;
    client
}

/// Latency summary line.
fn summary(label: &str, mut values: Vec<u64>) -> String {
    values.sort_unstable();
    format!(
        "{label:<28} n={:<7} p50={:>7} µs  p99={:>7} µs  max={:>7} µs",
        values.len(),
        percentile(&values, 50.0),
        percentile(&values, 99.0),
        values.last().copied().unwrap_or(0)
    )
}

async fn run_w1(server: &TestServer, args: &Args) -> Result<(), String> {
    println!(
        "== W1: one pair, {} warm-up + {} measured, one in flight",
        args.warmup, args.w1_messages
    );
    let alice = logged_in(server, "w1-alice").await;
    let bob = logged_in(server, "w1-bob").await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    forward_receipts(&bob, tx);

    let mut one_way = Vec::with_capacity(args.w1_messages);
    let mut ack = Vec::with_capacity(args.w1_messages);
    let writes_before = chime_engine::store::write_counts();
    for i in 0..args.warmup + args.w1_messages {
        let start = Instant::now();
        alice
            .call(
                "send_c2c_text_message",
                json!({ "text": body(0, i), "user_id": "w1-bob" }),
            )
            .await
            .map_err(|e| format!("W1 send {i}: {e}"))?;
        let acked = start.elapsed();
        let receipt = match tokio::time::timeout(W1_MESSAGE_TIMEOUT, rx.recv()).await {
            Ok(Some(r)) if r.index == i => r,
            Ok(Some(r)) => return Err(format!("W1: expected message {i}, got {}", r.index)),
            Ok(None) | Err(_) => return Err(format!("W1: message {i} not received")),
        };
        if i >= args.warmup {
            one_way.push(micros(receipt.at.duration_since(start)));
            ack.push(micros(acked));
        }
    }
    println!("{}", summary("one-way (call → event)", one_way));
    println!("{}", summary("sender ack (call → ack)", ack));
    alice.shutdown().await;
    bob.shutdown().await;
    print_store_writes(writes_before, args.warmup + args.w1_messages);
    Ok(())
}

/// The engines' store writes since `before`, per message: what the batches asked for (a store
/// without the write-behind overlay writes that much to sled) and what reached sled.
fn print_store_writes(before: chime_engine::store::WriteCounts, messages: usize) {
    let now = chime_engine::store::write_counts();
    let per = |n: u64| n as f64 / messages.max(1) as f64;
    println!(
        "engine store writes through logout: {:.1} batched, {:.1} to sled per message",
        per(now.batched - before.batched),
        per(now.sled - before.sled)
    );
}

/// What one W2 pair observed.
#[derive(Default)]
struct PairResult {
    latencies: Vec<u64>,
    duplicates: usize,
    out_of_order: usize,
    received: usize,
    last: Option<Instant>,
}

async fn run_w2(server: &TestServer, args: &Args) -> Result<(), String> {
    println!(
        "== W2: {} pairs × {} messages, window {} per pair",
        args.pairs, args.w2_messages, args.window
    );
    let mut senders = Vec::with_capacity(args.pairs);
    let (tx, mut rx) = mpsc::unbounded_channel::<Receipt>();
    let mut receivers = Vec::with_capacity(args.pairs);
    let login_start = Instant::now();
    for p in 0..args.pairs {
        senders.push(Arc::new(logged_in(server, &format!("w2-s{p}")).await));
        let r = logged_in(server, &format!("w2-r{p}")).await;
        forward_receipts(&r, tx.clone());
        receivers.push(r);
    }
    drop(tx);
    println!(
        "logged in {} engines in {:?}",
        args.pairs * 2,
        login_start.elapsed()
    );

    let windows: Vec<Arc<Semaphore>> = (0..args.pairs)
        .map(|_| Arc::new(Semaphore::new(args.window)))
        .collect();
    let send_times: Arc<Vec<std::sync::Mutex<Vec<Option<Instant>>>>> = Arc::new(
        (0..args.pairs)
            .map(|_| std::sync::Mutex::new(vec![None; args.w2_messages]))
            .collect(),
    );

    let cpu_before = process_cpu_micros(server.pid());
    let engines_cpu_before = process_cpu_micros(std::process::id());
    let writes_before = chime_engine::store::write_counts();
    let start = Instant::now();
    let mut send_tasks = tokio::task::JoinSet::new();
    for (p, sender) in senders.iter().enumerate() {
        let sender = sender.clone();
        let window = windows[p].clone();
        let times = send_times.clone();
        let n = args.w2_messages;
        send_tasks.spawn(async move {
            let mut inflight = tokio::task::JoinSet::new();
            for i in 0..n {
                let permit = window.acquire().await.map_err(|e| e.to_string())?;
                permit.forget();
                if let Ok(mut t) = times[p].lock() {
                    t[i] = Some(Instant::now());
                }
                let sender = sender.clone();
                inflight.spawn(async move {
                    sender
                        .call(
                            "send_c2c_text_message",
                            json!({ "text": body(p, i), "user_id": format!("w2-r{p}") }),
                        )
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("pair {p} message {i}: {e}"))
                });
                while let Some(done) = inflight.try_join_next() {
                    done.map_err(|e| e.to_string())??;
                }
            }
            while let Some(done) = inflight.join_next().await {
                done.map_err(|e| e.to_string())??;
            }
            Ok::<(), String>(())
        });
    }

    let total = args.pairs * args.w2_messages;
    let mut results: Vec<PairResult> = (0..args.pairs).map(|_| PairResult::default()).collect();
    let mut seen: Vec<HashSet<usize>> = vec![HashSet::new(); args.pairs];
    let mut last_seq = vec![0u64; args.pairs];
    let mut distinct = 0usize;
    let deadline = tokio::time::Instant::now() + W2_TIMEOUT;
    while distinct < total {
        let receipt = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => break,
        };
        let Some(res) = results.get_mut(receipt.pair) else {
            continue;
        };
        if !seen[receipt.pair].insert(receipt.index) {
            res.duplicates += 1;
            continue;
        }
        distinct += 1;
        res.received += 1;
        res.last = Some(receipt.at);
        if receipt.seq <= last_seq[receipt.pair] {
            res.out_of_order += 1;
        }
        last_seq[receipt.pair] = receipt.seq;
        let sent_at = send_times[receipt.pair]
            .lock()
            .ok()
            .and_then(|t| t.get(receipt.index).copied().flatten());
        if let Some(sent_at) = sent_at {
            res.latencies
                .push(micros(receipt.at.duration_since(sent_at)));
        }
        windows[receipt.pair].add_permits(1);
    }
    let cpu_after = process_cpu_micros(server.pid());
    let engines_cpu_after = process_cpu_micros(std::process::id());
    let mut send_errors = Vec::new();
    while let Some(done) = send_tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => send_errors.push(e),
            Err(e) => send_errors.push(e.to_string()),
        }
    }
    // Late duplicates would show up within a moment of the last message.
    let settle = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some(r)) = tokio::time::timeout_at(settle, rx.recv()).await {
        if let Some(res) = results.get_mut(r.pair)
            && seen[r.pair].contains(&r.index)
        {
            res.duplicates += 1;
        }
    }

    let last = results.iter().filter_map(|r| r.last).max().unwrap_or(start);
    let elapsed = last.duration_since(start);
    let rate = distinct as f64 / elapsed.as_secs_f64().max(1e-9);
    let duplicates: usize = results.iter().map(|r| r.duplicates).sum();
    let out_of_order: usize = results.iter().map(|r| r.out_of_order).sum();
    let latencies: Vec<u64> = results
        .iter()
        .flat_map(|r| r.latencies.iter().copied())
        .collect();
    println!("{}", summary("latency (call → event)", latencies));
    println!("delivered: {distinct} of {total} distinct in {elapsed:?} = {rate:.0} msg/s");
    println!("duplicates: {duplicates}   out of seq order: {out_of_order}");
    match (cpu_before, cpu_after) {
        (Some(b), Some(a)) if distinct > 0 => println!(
            "server CPU: {} ms total, {:.1} µs per message",
            (a - b) / 1000,
            (a - b) as f64 / distinct as f64
        ),
        _ => println!("server CPU: unavailable (/proc/{}/stat)", server.pid()),
    }
    if let (Some(b), Some(a)) = (engines_cpu_before, engines_cpu_after)
        && distinct > 0
    {
        println!(
            "engines CPU (this process, {} engines): {} ms total, {:.1} µs per message",
            args.pairs * 2,
            (a - b) / 1000,
            (a - b) as f64 / distinct as f64
        );
    }
    let exactly_once = distinct == total && duplicates == 0;
    println!(
        "exactly once: {}   per-pair order: {}",
        if exactly_once { "yes" } else { "NO" },
        if out_of_order == 0 { "yes" } else { "NO" }
    );
    for s in senders {
        s.shutdown().await;
    }
    for r in receivers {
        r.shutdown().await;
    }
    // What the engines defer past the last delivery (the search index's flush, the stores'
    // close) counts too: from the start to every engine shut down, 500 ms of settling included.
    if let (Some(b), Some(a)) = (engines_cpu_before, process_cpu_micros(std::process::id()))
        && distinct > 0
    {
        println!(
            "engines CPU through logout: {} ms total, {:.1} µs per message",
            (a - b) / 1000,
            (a - b) as f64 / distinct as f64
        );
        print_store_writes(writes_before, distinct);
    }
    if !send_errors.is_empty() {
        return Err(format!("W2 send errors: {}", send_errors.join("; ")));
    }
    if !exactly_once || out_of_order > 0 {
        return Err("W2: delivery check failed".to_owned());
    }
    Ok(())
}

/// The `name: number` fields of the `Debug`-printed struct in a log line, in order.
fn stat_fields(line: &str) -> Vec<(String, u64)> {
    let (Some(open), Some(close)) = (line.find('{'), line.rfind('}')) else {
        return Vec::new();
    };
    if close <= open {
        return Vec::new();
    }
    line[open + 1..close]
        .split(',')
        .filter_map(|field| {
            let (name, value) = field.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// One of the server's `... totals` log lines (commit-task counters) as `N batches; per batch:
/// field value, ...`; a line of another shape is printed as it is.
fn commit_summary(line: &str) -> String {
    let fields = stat_fields(line);
    let batches = fields
        .iter()
        .find(|(name, _)| name == "batches")
        .map_or(0, |(_, v)| *v);
    let label = line
        .find(" totals")
        .map(|end| {
            let start = line[..end].rfind(' ').map_or(0, |i| i + 1);
            &line[start..end]
        })
        .unwrap_or("commit");
    if batches == 0 {
        return format!("server: {}", line.trim());
    }
    let per_batch: Vec<String> = fields
        .iter()
        .filter(|(name, _)| name != "batches")
        .map(|(name, v)| format!("{name} {:.1}", *v as f64 / batches as f64))
        .collect();
    format!(
        "server {label} totals (whole run): {batches} batches; per batch: {}",
        per_batch.join(", ")
    )
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chime-bench: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let mut server = TestServer::start().await;
        println!("chime-server pid {} at {}", server.pid(), server.ws_url());
        if matches!(args.workload, Workload::W1 | Workload::All) {
            run_w1(&server, &args).await?;
        }
        if matches!(args.workload, Workload::W1Wire | Workload::All) {
            w1_wire::run(&server, args.warmup, args.w1_messages).await?;
        }
        if matches!(args.workload, Workload::W2 | Workload::All) {
            run_w2(&server, &args).await?;
        }
        if matches!(args.workload, Workload::W2Wire | Workload::All) {
            wire_pairs::run(&server, args.pairs, args.w2_messages, args.window).await?;
        }
        if matches!(args.workload, Workload::W3 | Workload::All) {
            let w3 = TestServer::start_with_config(fanout::SERVER_CONFIG).await;
            println!(
                "chime-server pid {} at {} (W3: {})",
                w3.pid(),
                w3.ws_url(),
                fanout::SERVER_CONFIG.trim()
            );
            let shape = fanout::FanoutArgs {
                members: args.w3_members,
                messages: args.w3_messages,
                window: args.w3_window,
            };
            fanout::run(&w3, &shape).await?;
        }
        if matches!(args.workload, Workload::Avchatroom | Workload::All) {
            avchatroom::run().await?;
        }
        if matches!(args.workload, Workload::BigGroup | Workload::All) {
            big_group::run().await?;
        }
        if matches!(args.workload, Workload::W4 | Workload::All) {
            let mut w4 = TestServer::start().await;
            println!("chime-server pid {} at {} (W4)", w4.pid(), w4.ws_url());
            let shape = idle::IdleArgs {
                connections: args.w4_connections,
                concurrency: args.w4_concurrency,
            };
            idle::run(&mut w4, &shape).await?;
        }
        // A graceful stop makes the server log its commit-task totals (batches, fsync time).
        if server.stop(Duration::from_secs(10)).await {
            for line in server.log_tail().lines().filter(|l| l.contains(" totals")) {
                println!("{}", commit_summary(line));
            }
        }
        Ok::<(), String>(())
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chime-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_totals_are_summarised() {
        let line = "INFO chime_server::commit: apply totals stats=Stats { batches: 57, \
                    writes: 604, flush_us: 158859 }";
        assert_eq!(
            commit_summary(line),
            "server apply totals (whole run): 57 batches; per batch: writes 10.6, \
             flush_us 2787.0"
        );
        assert_eq!(commit_summary("no stats here"), "server: no stats here");
    }

    #[test]
    fn bodies_are_100_bytes_and_parse_back() {
        let b = body(49, 1999);
        assert_eq!(b.len(), BODY_BYTES);
        assert_eq!(parse_body(&b), Some((49, 1999)));
        assert_eq!(parse_body("hello"), None);
    }
}
