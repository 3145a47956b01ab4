//! W4: idle connections. 2,000 users log in (first login registers the account, with the full
//! UserSig check), 50 at a time, and stay connected doing nothing; reported: the server's RSS
//! before and 5 s after the last login, KB per connection, logins per second, server CPU per
//! login and the bench's own CPU per login (its clients share the server's cores, so they bound
//! the rate too). Raw-protocol connections ([`chime_tests::wire`]), as the workload is the server's.
//! Three more rounds split the figure (see [`run`]): the same users returning (no registration
//! write, the common case of a real app), new users on the warm server, and the first users
//! returning to a restarted server (the memory of a connection without any registration).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chime_tests::wire::WireClient;
use chime_tests::{APP_ID, TestServer};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::process_cpu_micros;

/// Read buffer of each client connection: an idle connection receives nothing but its login
/// response (tungstenite's default, 128 KiB allocated and zeroed per connection, made the
/// bench's page faults cost more CPU per login than the whole server's login).
const CLIENT_READ_BUFFER_BYTES: usize = 4096;

/// W4's shape (defaults are the definitions).
pub struct IdleArgs {
    /// Connections opened.
    pub connections: usize,
    /// Logins in flight at once.
    pub concurrency: usize,
}

/// Resident set size of a process in KB, from `/proc/<pid>/status`.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
}

/// What one round of logins measured.
struct Round {
    connections: Vec<WireClient>,
    seconds: f64,
    cpu_micros: Option<u64>,
    /// This process's CPU over the round: the clients' side of the logins, on the same cores.
    client_cpu_micros: Option<u64>,
}

/// Logs every `(user, sig)` in, `concurrency` at a time; keeps the connections open.
async fn login_round(
    server: &TestServer,
    users: &[(String, String)],
    concurrency: usize,
) -> Result<Round, String> {
    let pid = server.pid();
    let url = server.ws_url();
    let slots = Arc::new(Semaphore::new(concurrency));
    let cpu_before = process_cpu_micros(pid);
    let client_before = process_cpu_micros(std::process::id());
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(users.len());
    for (user, sig) in users {
        let (user, sig) = (user.clone(), sig.clone());
        let permit = Arc::clone(&slots)
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER_BYTES);
            let client =
                WireClient::login_with_config(&url, Some(config), APP_ID, &user, &sig, &user).await;
            drop(permit);
            client.map_err(|e| format!("login {user}: {e}"))
        }));
    }
    let mut connections = Vec::with_capacity(tasks.len());
    for t in tasks {
        connections.push(t.await.map_err(|e| e.to_string())??);
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_micros = process_cpu_micros(pid)
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let client_cpu_micros = process_cpu_micros(std::process::id())
        .zip(client_before)
        .map(|(after, before)| after.saturating_sub(before));
    Ok(Round {
        connections,
        seconds,
        cpu_micros,
        client_cpu_micros,
    })
}

/// Prints a round's login rate and CPU, waits 5 s and prints the RSS growth since
/// `rss_before` per connection.
async fn report(label: &str, pid: u32, rss_before: u64, round: &Round) -> Result<(), String> {
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_after = rss_kb(pid).ok_or("cannot read the server's RSS")?;
    let n = round.connections.len();
    println!(
        "{label}logins: {n} in {:.3} s = {:.0} logins/s",
        round.seconds,
        n as f64 / round.seconds.max(1e-9)
    );
    if let Some(cpu) = round.cpu_micros {
        println!(
            "{label}server CPU: {} ms total, {:.1} µs per login",
            cpu / 1000,
            cpu as f64 / n.max(1) as f64
        );
    }
    if let Some(cpu) = round.client_cpu_micros {
        println!(
            "{label}bench client CPU: {} ms total, {:.1} µs per login",
            cpu / 1000,
            cpu as f64 / n.max(1) as f64
        );
    }
    println!(
        "{label}server RSS: {rss_before} KB before, {rss_after} KB 5 s after the last login = {:.1} KB per connection",
        rss_after.saturating_sub(rss_before) as f64 / n.max(1) as f64
    );
    Ok(())
}

/// `count` users named `<prefix><index>` with their signatures (made before any clock starts:
/// the client's cost is not the server's).
fn users(server: &TestServer, prefix: &str, count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| {
            let u = format!("{prefix}{i:05}");
            let sig = server.user_sig(&u);
            (u, sig)
        })
        .collect()
}

/// Closes a round's connections and waits until the server has ended their sessions; answers
/// the server's RSS then.
async fn close(pid: u32, round: Round) -> Result<u64, String> {
    drop(round);
    tokio::time::sleep(Duration::from_secs(3)).await;
    rss_kb(pid).ok_or_else(|| "cannot read the server's RSS".to_owned())
}

/// Runs W4 against a fresh `server`, then three more rounds that split the figure:
/// 1. first logins on the fresh server (the W4 definition: each registers its account);
/// 2. the same users again in the same process (their accounts exist: no write) — the CPU of
///    a returning user's login (its RSS growth says little: the allocator reuses round 1's);
/// 3. as many new users on the now warm server — what a registration adds in steady state,
///    without the store's and the allocator's one-off start-up growth;
/// 4. the server stopped and started again on the same data, then round 1's users return —
///    the memory of an idle logged-in connection with no registration in the process.
pub async fn run(server: &mut TestServer, args: &IdleArgs) -> Result<(), String> {
    println!(
        "== W4: {} idle connections, opened {} at a time",
        args.connections, args.concurrency
    );
    // Let the server settle after start-up before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = server.pid();
    let rss_before = rss_kb(pid).ok_or("cannot read the server's RSS")?;
    let first_users = users(server, "w4_u", args.connections);
    let new_users = users(server, "w4_n", args.connections);
    let first = login_round(server, &first_users, args.concurrency).await?;
    report("", pid, rss_before, &first).await?;
    let rss_between = close(pid, first).await?;
    let again = login_round(server, &first_users, args.concurrency).await?;
    report("returning users: ", pid, rss_between, &again).await?;
    let rss_between = close(pid, again).await?;
    let fresh = login_round(server, &new_users, args.concurrency).await?;
    report("new users, warm server: ", pid, rss_between, &fresh).await?;
    drop(fresh);
    if !server.stop(Duration::from_secs(10)).await {
        return Err("the W4 server did not stop gracefully".into());
    }
    for line in server.log_tail().lines().filter(|l| l.contains(" totals")) {
        println!("W4 rounds 1-3: {}", super::commit_summary(line));
    }
    server.restart().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = server.pid();
    let rss_restarted = rss_kb(pid).ok_or("cannot read the server's RSS")?;
    let back = login_round(server, &first_users, args.concurrency).await?;
    report(
        "returning users, restarted server: ",
        pid,
        rss_restarted,
        &back,
    )
    .await?;
    Ok(())
}
