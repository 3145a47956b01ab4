//! `xlog-bench`: how fast chime-xlog writes at debug level and how well it compresses a
//! realistic session log.
//!
//! It replays a synthetic IM engine session through the `tracing` macros — connection and
//! login events, heartbeats, sends with their acks and message ids, incoming pushes, sync
//! pages, the odd reconnect — with a deterministic pseudo-random generator, so every run logs
//! the same text. Two passes:
//!
//! 1. **burst, default queue**: the host logs as fast as it can into the default 16384-line
//!    queue; reports the rate the calls return at, and how many lines the writer kept up with
//!    and how many were dropped (and counted).
//! 2. **sustained, no drops**: a queue as long as the run, timed until the last block is
//!    flushed; reports end-to-end lines per second and the compression ratio
//!    (text bytes / file bytes).
//!
//! Usage: `cargo run --release -p chime-xlog --bin xlog-bench -- [--lines N] [--keep]`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chime_xlog::{Level, LogConfig, LogStats, Logger, XlogError, decode_file};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "xlog-bench",
    about = "Benchmark chime-xlog writing and compression"
)]
struct Args {
    /// Lines to log per pass.
    #[arg(long, default_value_t = 200_000)]
    lines: u32,
    /// Directory for the temporary log files (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the sustained pass's log directory (its path is printed) to inspect or decode it.
    #[arg(long)]
    keep: bool,
}

/// A small deterministic generator (xorshift64*), so runs log identical text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PEERS: [&str; 8] = [
    "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
];
const GROUPS: [&str; 3] = ["@TGS#1A2B3C", "@TGS#2FAMILY", "@TGS#3WORK"];

/// Logs `n` lines the way an engine's session would, returning how many it logged.
fn session(n: u32, rng: &mut Rng) -> u32 {
    let span = tracing::info_span!("engine", user = "alice", sdk_app_id = 1_400_000_001u64);
    let _entered = span.enter();
    let mut logged = 0u32;
    let mut msg_seq = 1_000u64;
    let mut server_seq = 52_310u64;
    while logged < n {
        match rng.below(100) {
            0 => {
                tracing::warn!(target: "chime_engine::actors::connection", error = "connection reset by peer", backoff_ms = 1000 * (1 + rng.below(8)), "socket closed, reconnecting");
                tracing::info!(target: "chime_engine::actors::connection", url = "ws://im.example.com:8443/ws", attempt = 1 + rng.below(3), "connecting");
                tracing::info!(target: "chime_engine::session", user_id = "alice", platform = "linux", "login ok, resuming sync");
                logged += 3;
            }
            1..=9 => {
                tracing::debug!(target: "chime_engine::session", rtt_ms = 20 + rng.below(180), "heartbeat ack");
                logged += 1;
            }
            10..=29 => {
                let page = rng.below(5);
                let count = 1 + rng.below(50);
                tracing::debug!(target: "chime_engine::sync", cursor = server_seq, page, count, more = page < 4, "sync page applied");
                server_seq += count;
                logged += 1;
            }
            30..=64 => {
                msg_seq += 1;
                let peer = PEERS[rng.below(PEERS.len() as u64) as usize];
                let random = rng.next() as u32;
                let client_msg_id = format!("{:016x}-{random:08x}", rng.next());
                tracing::debug!(target: "chime_engine::outbox", %client_msg_id, to = peer, elem = "text", len = 5 + rng.below(200), "send queued");
                tracing::debug!(target: "chime_engine::actors::connection", cmd = "SendMsg", seq = msg_seq, bytes = 80 + rng.below(400), "frame out");
                server_seq += 1;
                tracing::info!(target: "chime_engine::outbox", %client_msg_id, server_seq, random, latency_ms = 15 + rng.below(120), "send acked");
                logged += 3;
            }
            65..=94 => {
                server_seq += 1;
                let from = PEERS[rng.below(PEERS.len() as u64) as usize];
                if rng.below(3) == 0 {
                    let group = GROUPS[rng.below(GROUPS.len() as u64) as usize];
                    tracing::debug!(target: "chime_engine::recv", group_id = group, from, seq = server_seq, "group message pushed");
                } else {
                    tracing::debug!(target: "chime_engine::recv", from, seq = server_seq, unread = rng.below(20), "c2c message pushed");
                }
                tracing::debug!(target: "chime_engine::store", table = "messages", keys = 1, "batch committed");
                logged += 2;
            }
            _ => {
                tracing::info!(target: "chime_engine::conversation", conv = format!("c2c_{}", PEERS[rng.below(8) as usize]), unread = 0, "mark read");
                logged += 1;
            }
        }
    }
    logged
}

struct Pass {
    logged: u32,
    emit_secs: f64,
    total_secs: f64,
    stats: LogStats,
    decoded: usize,
}

fn run(dir: &Path, lines: u32, queue: usize, keep: bool) -> Result<Pass, XlogError> {
    let _ = std::fs::remove_dir_all(dir);
    let mut config = LogConfig::new(dir);
    config.level = Level::Debug;
    config.queue_lines = queue;
    let logger = Logger::start(config)?;
    let dispatch = logger.dispatch();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let start = Instant::now();
    let logged = tracing::dispatcher::with_default(&dispatch, || session(lines, &mut rng));
    let emit_secs = start.elapsed().as_secs_f64();
    logger.flush()?;
    let total_secs = start.elapsed().as_secs_f64();
    let stats = logger.stats();
    let decoded = decode_file(logger.today_file())?.lines.len();
    drop(logger);
    if !keep {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(Pass {
        logged,
        emit_secs,
        total_secs,
        stats,
        decoded,
    })
}

fn main() -> Result<(), XlogError> {
    let args = Args::parse();
    let base = args.dir.unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("chime-xlog-bench-{}", std::process::id()));

    let burst = run(&dir, args.lines, LogConfig::new(&dir).queue_lines, false)?;
    println!(
        "burst, default queue ({} lines):",
        LogConfig::new(&dir).queue_lines
    );
    println!(
        "  {} lines logged in {:.3} s: {:.0} calls/s; written {}, dropped {} (counted)",
        burst.logged,
        burst.emit_secs,
        f64::from(burst.logged) / burst.emit_secs,
        burst.stats.lines_written,
        burst.stats.dropped_lines
    );

    let full = run(&dir, args.lines, args.lines as usize + 16, args.keep)?;
    let s = full.stats;
    println!("sustained, queue as long as the run:");
    println!(
        "  {} lines logged in {:.3} s, on disk after {:.3} s: {:.0} lines/s end to end; \
         dropped {}",
        full.logged,
        full.emit_secs,
        full.total_secs,
        f64::from(full.logged) / full.total_secs,
        s.dropped_lines
    );
    println!(
        "  text {} bytes ({:.1} bytes/line) -> file {} bytes in {} blocks: ratio {:.2}:1",
        s.text_bytes,
        s.text_bytes as f64 / s.lines_written.max(1) as f64,
        s.file_bytes,
        s.blocks,
        s.text_bytes as f64 / s.file_bytes.max(1) as f64
    );
    println!(
        "  decoded back: {} lines (written {})",
        full.decoded, s.lines_written
    );
    if args.keep {
        println!("  kept: {}", dir.display());
    }
    Ok(())
}
