//! Profanity-filter throughput through the real plugin path: the `cdylib` loaded by path, each
//! call run by the host on a plugin call thread.
//!
//! Run: `cargo bench -p chime-plugin-api --bench filter_throughput` (prints MB/s). It builds the
//! plugin with the bench's own profile, generates a 10,000-term word list (8,000 Latin, 2,000
//! Chinese) and about 4 MiB of mixed English/Chinese text with some terms and evasions in it, then
//! filters the text in 64 KiB chunks (matcher-bound) and in 200-byte chunks (message-sized, where
//! the per-call cost of the thread hop shows).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chime_plugin_api::host::{ContentFilterPlugin, HostConfig, LoadedPlugin, PluginHost};
use chime_plugin_api::{ContentKind, Direction, FilterOutcome};

/// A small deterministic generator (xorshift64*), so every run filters the same text.
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

    fn latin_word(&mut self, min: u64, max: u64) -> String {
        let len = min + self.below(max - min + 1);
        (0..len)
            .map(|_| (b'a' + self.below(26) as u8) as char)
            .collect()
    }

    fn hanzi(&mut self, len: u64) -> String {
        (0..len)
            .filter_map(|_| char::from_u32(0x4E00 + self.below(0x51A5) as u32))
            .collect()
    }
}

fn build_plugin() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("profile dir")
        .to_path_buf();
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") => "dev".to_owned(),
        Some(other) => other.to_owned(),
        None => "release".to_owned(),
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .args([
            "--profile",
            &profile,
            "-p",
            "chime-profanity-filter",
            "--target-dir",
        ])
        .arg(profile_dir.parent().expect("target dir"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building the profanity filter failed");
    profile_dir.join(format!(
        "{}chime_profanity_filter{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

fn generate(rng: &mut Rng) -> (Vec<String>, String) {
    let mut terms: Vec<String> = (0..8_000).map(|_| rng.latin_word(5, 9)).collect();
    terms.extend((0..2_000).map(|_| {
        let len = 2 + rng.below(2);
        rng.hanzi(len)
    }));
    let mut text = String::with_capacity(4 << 20);
    while text.len() < 4 << 20 {
        match rng.below(100) {
            0 => {
                let term = &terms[rng.below(terms.len() as u64) as usize];
                text.push_str(term);
            }
            1 => {
                // An evasion: the term with dots between its letters.
                let term = &terms[rng.below(8_000) as usize];
                let dotted: Vec<String> = term.chars().map(String::from).collect();
                text.push_str(&dotted.join("."));
            }
            2..=20 => {
                let len = 2 + rng.below(6);
                text.push_str(&rng.hanzi(len));
            }
            _ => {
                let word = rng.latin_word(2, 8);
                text.push_str(&word);
            }
        }
        text.push(if rng.below(12) == 0 { '.' } else { ' ' });
    }
    (terms, text)
}

fn chunks(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

async fn run(filter: &ContentFilterPlugin, pieces: &[&str]) -> (Duration, usize) {
    let started = Instant::now();
    let mut replaced = 0;
    for piece in pieces {
        match filter
            .filter(piece, Direction::Outgoing, ContentKind::Text)
            .await
        {
            Ok(FilterOutcome::Replaced(_)) => replaced += 1,
            Ok(_) => {}
            Err(error) => panic!("filter failed: {error}"),
        }
    }
    (started.elapsed(), replaced)
}

fn main() {
    let plugin = build_plugin();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (terms, text) = generate(&mut rng);
    let dir = tempfile::tempdir().expect("temp dir");
    let list = dir.path().join("large.txt");
    std::fs::write(&list, terms.join("\n")).expect("write the word list");

    let host = PluginHost::new(HostConfig::default());
    let config = serde_json::json!({"word_lists": [list]}).to_string();
    let load_started = Instant::now();
    let LoadedPlugin::ContentFilter(filter) = host.load(&plugin, &config).expect("load") else {
        panic!("not a content filter");
    };
    let load_time = load_started.elapsed();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let megabytes = text.len() as f64 / (1024.0 * 1024.0);
    println!(
        "profanity filter: {} terms loaded and compiled in {:.1} ms; text {:.2} MiB",
        terms.len(),
        load_time.as_secs_f64() * 1000.0,
        megabytes
    );
    for (label, size) in [("64 KiB chunks", 64 * 1024), ("200 B messages", 200)] {
        let pieces = chunks(&text, size);
        // One warm-up pass, then the best of three.
        runtime.block_on(run(&filter, &pieces));
        let mut best = Duration::MAX;
        let mut replaced = 0;
        for _ in 0..3 {
            let (elapsed, count) = runtime.block_on(run(&filter, &pieces));
            best = best.min(elapsed);
            replaced = count;
        }
        println!(
            "{label:>15}: {:>8.1} MB/s ({} calls, {:.1} µs/call, {} replaced)",
            megabytes / best.as_secs_f64(),
            pieces.len(),
            best.as_secs_f64() * 1e6 / pieces.len() as f64,
            replaced
        );
    }
}
