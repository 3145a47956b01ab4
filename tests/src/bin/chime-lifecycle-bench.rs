//! `chime-lifecycle-bench`: `search_local_messages` and history paging over a large local store
//! (issue 4's benchmark).
//!
//! A real `chime-server`, two real engines: bob sends N C2C text messages (default 100,000) to
//! alice, who is online and stores them through the normal receive pipeline (sled store, search
//! index). Then, on alice's engine, through the public `call` API:
//! - `search_local_messages` for a rare keyword (~0.1% of messages), a common one (~2%), an "and"
//!   of two words, and a search by sender only (no keyword: reads every message — the cost the
//!   index avoids), each in the conversation and over all conversations;
//! - `get_history_message_list` pages of 20 (`local_older`) from the newest message and from the
//!   middle of the conversation.
//!
//! Figures are printed (p50 / p99 of the repeated calls), never asserted.
//!
//! ```text
//! cargo build --release -p chime-server
//! cargo run --release -p chime-tests --bin chime-lifecycle-bench -- --messages 100000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use chime_tests::{TestClient, TestServer, percentile};
use clap::Parser;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "chime-lifecycle-bench",
    about = "search_local_messages and history paging over N stored messages"
)]
struct Args {
    /// Messages stored in the conversation.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// Messages sent but not yet acked.
    #[arg(long, default_value_t = 200)]
    window: usize,
    /// Repetitions of each measured call.
    #[arg(long, default_value_t = 50)]
    runs: usize,
}

/// Syllables of the synthetic vocabulary (20 × 20 × 5 = 2,000 words).
const A: [&str; 20] = [
    "ka", "lo", "mi", "nu", "pe", "ra", "so", "ti", "vu", "we", "ba", "ce", "di", "fo", "gu", "ha",
    "ji", "ko", "lu", "ma",
];
const B: [&str; 20] = [
    "ran", "lem", "tis", "vop", "dag", "nex", "mur", "sol", "bik", "fet", "gon", "hul", "jas",
    "kev", "lin", "mot", "nup", "pax", "quo", "rez",
];
const C: [&str; 5] = ["a", "o", "is", "en", "ut"];

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize
    }

    fn word(&mut self) -> String {
        format!(
            "{}{}{}",
            A[self.next() % A.len()],
            B[self.next() % B.len()],
            C[self.next() % C.len()]
        )
    }

    /// 4–10 words; "zephyrine" in 1 of 1,000, "quartzite" in 1 of 50.
    fn text(&mut self, i: usize) -> String {
        let n = 4 + self.next() % 7;
        let mut words: Vec<String> = (0..n).map(|_| self.word()).collect();
        if i % 1000 == 7 {
            words.push("zephyrine".into());
        }
        if i % 50 == 3 {
            words.push("quartzite".into());
        }
        words.join(" ")
    }
}

async fn timed(c: &TestClient, method: &str, params: &Value, runs: usize) -> (u64, u64, Value) {
    let mut us = Vec::with_capacity(runs);
    let mut last = Value::Null;
    for _ in 0..runs {
        let t = Instant::now();
        last = c.ok(method, params.clone()).await;
        us.push(t.elapsed().as_micros() as u64);
    }
    us.sort_unstable();
    (percentile(&us, 50.0), percentile(&us, 99.0), last)
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

async fn run(server: &TestServer, args: &Args) -> Result<(), String> {
    let alice = TestClient::new(server).await;
    alice.login("alice").await;
    let bob = TestClient::new(server).await;
    bob.login("bob").await;
    println!(
        "== storing {} C2C messages bob → alice (window {})",
        args.messages, args.window
    );
    let t0 = Instant::now();
    let slots = Arc::new(Semaphore::new(args.window));
    let mut rng = Lcg(7);
    let mut tasks = Vec::with_capacity(args.messages);
    for i in 0..args.messages {
        let permit = Arc::clone(&slots)
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let engine = bob.engine.clone();
        let text = rng.text(i);
        tasks.push(tokio::spawn(async move {
            let r = engine
                .call(
                    "send_c2c_text_message",
                    json!({ "user_id": "alice", "text": text }),
                )
                .await;
            drop(permit);
            r.map(drop)
                .map_err(|e| format!("send: {} {}", e.code, e.desc))
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let sent_s = t0.elapsed().as_secs_f64();
    // Alice has them all when the newest one is in her store.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let r = alice
            .ok(
                "get_history_message_list",
                json!({ "get_type": "local_older", "user_id": "bob", "count": 1 }),
            )
            .await;
        if r["message_list"][0]["seq"].as_u64() == Some(args.messages as u64) {
            break;
        }
        if Instant::now() > deadline {
            return Err("alice did not receive every message within 600 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "sent in {:.1} s, all stored on alice's device after {:.1} s ({:.0} msg/s end to end)",
        sent_s,
        t0.elapsed().as_secs_f64(),
        args.messages as f64 / t0.elapsed().as_secs_f64()
    );

    println!(
        "== search_local_messages (count 20), {} runs each",
        args.runs
    );
    let cases = [
        (
            "rare keyword (0.1%)",
            json!({ "keyword_list": ["zephyrine"] }),
        ),
        (
            "common keyword (2%)",
            json!({ "keyword_list": ["quartzite"] }),
        ),
        (
            "and of two keywords",
            json!({ "keyword_list": ["quartzite", "zephyrine"], "keyword_list_match_type": "and" }),
        ),
        (
            "sender only (no index)",
            json!({ "sender_user_id_list": ["bob"] }),
        ),
    ];
    for (label, base) in &cases {
        for conv in [Some("c2c_bob"), None] {
            let mut p = base.clone();
            p["count"] = json!(20);
            if let Some(c) = conv {
                p["conversation_id"] = json!(c);
            }
            let runs = if label.contains("no index") {
                5
            } else {
                args.runs
            };
            let (p50, p99, last) = timed(&alice, "search_local_messages", &p, runs).await;
            println!(
                "{label:<26} {:<22} total {:>6}  p50 {:>10}  p99 {:>10}",
                conv.map_or("all conversations".to_owned(), |c| format!("in {c}")),
                last["total_count"],
                ms(p50),
                ms(p99)
            );
        }
    }

    println!(
        "== get_history_message_list local_older, 20 per page, {} runs each",
        args.runs * 4
    );
    let newest = json!({ "get_type": "local_older", "user_id": "bob", "count": 20 });
    let (p50, p99, _) = timed(&alice, "get_history_message_list", &newest, args.runs * 4).await;
    println!(
        "from the newest               p50 {:>10}  p99 {:>10}",
        ms(p50),
        ms(p99)
    );
    let middle = json!({
        "get_type": "local_older", "user_id": "bob", "count": 20,
        "last_msg_seq": (args.messages / 2) as u64,
    });
    let (p50, p99, last) = timed(&alice, "get_history_message_list", &middle, args.runs * 4).await;
    let first = last["message_list"][0]["seq"].clone();
    println!(
        "from the middle (seq {first})     p50 {:>10}  p99 {:>10}",
        ms(p50),
        ms(p99)
    );
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
            eprintln!("chime-lifecycle-bench: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let server = TestServer::start().await;
        println!("chime-server pid {} at {}", server.pid(), server.ws_url());
        run(&server, &args).await
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chime-lifecycle-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
