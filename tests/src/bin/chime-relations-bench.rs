//! `chime-relations-bench`: the friend list benchmark of issue 10.
//!
//! A real `chime-server` and real engines. N users (default 3,000) are registered with bare
//! protocol logins (each sets "allow any" and a nick name); alice adds them all as friends, one
//! `add_friend` at a time (each synced before it answers). Then, on a device directory of its own:
//! - **cold**: a new device — `login` → `get_friend_list` holding all N (synced from the server
//!   by version, page by page);
//! - **warm**: the same device again — `login` → `get_friend_list` of N (read from its store,
//!   then an empty sync);
//! - `search_friends` over the N friends (one keyword, the default fields, first page), repeated.
//!
//! Each round is repeated `--rounds` times with a fresh device directory; figures are printed
//! (median and worst of the rounds, p50 / p99 of the searches), never asserted.
//!
//! ```text
//! cargo build --release -p chime-server
//! cargo run --release -p chime-tests --bin chime-relations-bench -- --friends 3000
//! ```

use std::time::{Duration, Instant};

use chime_proto::pb::{self, request::Kind};
use chime_tests::wire::WireClient;
use chime_tests::{APP_ID, TestClient, TestServer, percentile};
use clap::Parser;
use serde_json::{Value, json};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "chime-relations-bench",
    about = "friend list of N friends, cold and warm, and search_friends over them"
)]
struct Args {
    /// Friends of alice.
    #[arg(long, default_value_t = 3_000)]
    friends: usize,
    /// Cold + warm rounds (each on a fresh device directory).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// `search_friends` calls measured.
    #[arg(long, default_value_t = 200)]
    searches: usize,
}

type BenchResult<T> = Result<T, String>;

/// Registers `users` with a bare protocol login each (a real login through the gateway, without
/// an engine and its store), 16 at a time, and sets each one's allow type to "allow any".
async fn register_allow_any(server: &TestServer, users: &[String]) -> BenchResult<()> {
    for chunk in users.chunks(16) {
        let jobs = chunk.iter().map(|u| async move {
            let device = format!("bench-{u}");
            let mut c =
                WireClient::login(&server.ws_url(), APP_ID, u, &server.user_sig(u), &device)
                    .await
                    .map_err(|e| format!("login of {u}: {e}"))?;
            let allow = pb::RelationReq {
                op: Some(pb::relation_req::Op::SetProfile(pb::SetProfileReq {
                    allow_type: Some(1),
                    nick_name: Some(format!("Nick {u}")),
                    ..Default::default()
                })),
            };
            c.call(Kind::Relation(allow))
                .await
                .map_err(|e| format!("allow type of {u}: {e}"))?;
            let (mut tx, _) = c.split();
            tx.close().await;
            Ok::<(), String>(())
        });
        for r in futures_util::future::join_all(jobs).await {
            r?;
        }
    }
    Ok(())
}

fn friend_count(v: &Value) -> usize {
    v["friend_info_list"].as_array().map_or(0, Vec::len)
}

/// `login` → `get_friend_list` until it holds `n` (bounded); answers the time taken.
async fn login_to_full_list(c: &TestClient, n: usize) -> BenchResult<Duration> {
    let t = Instant::now();
    c.login("alice").await;
    let deadline = t + Duration::from_secs(120);
    loop {
        let got = friend_count(&c.ok("get_friend_list", json!({})).await);
        if got == n {
            return Ok(t.elapsed());
        }
        if Instant::now() > deadline {
            return Err(format!("the friend list held {got} of {n} after 120 s"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and worst of `times`, in ms.
fn summary(times: &mut [Duration]) -> String {
    times.sort_unstable();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    let worst = times.last().copied().unwrap_or_default();
    format!("median {:.1} ms, worst {:.1} ms", ms(median), ms(worst))
}

async fn run(server: &TestServer, args: &Args) -> BenchResult<()> {
    let n = args.friends;
    let users: Vec<String> = (0..n).map(|i| format!("f{i:05}")).collect();
    let t = Instant::now();
    register_allow_any(server, &users).await?;
    println!("registered {n} users in {:.1} s", t.elapsed().as_secs_f64());

    let alice = TestClient::new(server).await;
    alice.login("alice").await;
    let t = Instant::now();
    for u in &users {
        let r = alice
            .ok("add_friend", json!({ "user_id": u, "add_type": "single" }))
            .await;
        if r["result_code"] != 0 {
            return Err(format!("add_friend {u}: {r}"));
        }
    }
    println!(
        "added {n} friends in {:.1} s ({:.2} ms each)",
        t.elapsed().as_secs_f64(),
        ms(t.elapsed()) / n as f64
    );
    alice.shutdown().await;

    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    let mut searches = Vec::with_capacity(args.searches);
    for round in 0..args.rounds.max(1) {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let c = TestClient::with_data_dir(server, dir.path(), json!({})).await;
        cold.push(login_to_full_list(&c, n).await?);
        c.shutdown().await;
        drop(c);
        let c = TestClient::with_data_dir(server, dir.path(), json!({})).await;
        warm.push(login_to_full_list(&c, n).await?);
        if round == 0 {
            for i in 0..args.searches {
                // "f0001" … "f0029": about 10 to 100 friends match by user id.
                let keyword = format!("f{:04}", 1 + i % 29);
                let t = Instant::now();
                let r = c
                    .ok("search_friends", json!({ "keyword_list": [keyword] }))
                    .await;
                searches.push(t.elapsed().as_micros() as u64);
                if r["friend_info_list"].as_array().is_none_or(Vec::is_empty) {
                    return Err(format!("search_friends {keyword} found nothing: {r}"));
                }
            }
        }
        c.shutdown().await;
    }
    println!(
        "cold: new device, login -> get_friend_list of {n}: {}",
        summary(&mut cold)
    );
    println!(
        "warm: same device, login -> get_friend_list of {n}: {}",
        summary(&mut warm)
    );
    searches.sort_unstable();
    println!(
        "search_friends over {n} ({} calls): p50 {:.2} ms, p99 {:.2} ms",
        searches.len(),
        percentile(&searches, 50.0) as f64 / 1000.0,
        percentile(&searches, 99.0) as f64 / 1000.0
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
            eprintln!("chime-relations-bench: runtime: {e}");
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
            eprintln!("chime-relations-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
