//! `wal_probe`: what one durable log write costs on this machine, by way of writing it.
//!
//! The commit task acks a batch only after its write-ahead-log record is durable, so the cost of
//! that one write bounds single-message latency (W1). This probe times the candidate ways of
//! making an appended record durable, for record sizes of 512 B, 4 KB and 64 KB:
//!
//! - `append+fdatasync`: write at the end of a growing file, then `fdatasync` (the size and the
//!   new extents go through the filesystem journal as well);
//! - `fallocate'd+fdatasync`: overwrite a region reserved with `set_len` only (a sparse file:
//!   every first write allocates blocks, like an `fallocate`d unwritten extent that needs
//!   converting);
//! - `pre-zeroed+fdatasync`: overwrite a file that was written with zeros and synced once (data
//!   only: no metadata changes but the mtime, which `fdatasync` skips);
//! - `pre-zeroed O_DSYNC`: the same file opened with `O_DSYNC`, so the write itself returns when
//!   the data is durable (one system call instead of two);
//! - `append O_DSYNC`: a growing file opened with `O_DSYNC`.
//!
//! Usage: `cargo run --release -p chime-server --example wal_probe -- [DIR] [ITERATIONS]`
//! (DIR defaults to a temporary directory under the current one, so that it is on the disk the
//! server's data directory would use).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Instant;

/// `O_DSYNC` on Linux (x86_64 and aarch64 both use the generic value).
const O_DSYNC: i32 = 0o10000;

fn open(path: &Path, dsync: bool, append: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true);
    if append {
        o.append(true);
    }
    if dsync {
        o.custom_flags(O_DSYNC);
    }
    o.open(path)
}

fn zeroed(path: &Path, bytes: u64) -> std::io::Result<()> {
    let mut f = open(path, false, false)?;
    let chunk = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

fn report(name: &str, size: usize, mut us: Vec<u64>) {
    us.sort_unstable();
    let pct = |p: f64| us[((us.len() as f64 * p) as usize).min(us.len() - 1)];
    let mean = us.iter().sum::<u64>() / us.len() as u64;
    println!(
        "{name:<24} {size:>6} B  p50 {:>6} µs  p99 {:>6} µs  mean {:>6} µs",
        pct(0.5),
        pct(0.99),
        mean
    );
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| ".".into());
    let iterations: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(300);
    let dir = tempfile::tempdir_in(base)?;
    for size in [512usize, 4096, 65536] {
        let record = vec![0x5au8; size];
        let span = (size * iterations) as u64;

        let path = dir.path().join("append");
        let mut f = open(&path, false, true)?;
        let mut us = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            f.write_all(&record)?;
            f.sync_data()?;
            us.push(t.elapsed().as_micros() as u64);
        }
        report("append+fdatasync", size, us);
        drop(f);
        std::fs::remove_file(&path)?;

        let path = dir.path().join("sparse");
        let f = open(&path, false, false)?;
        f.set_len(span)?;
        f.sync_all()?;
        let mut us = Vec::with_capacity(iterations);
        for i in 0..iterations {
            let t = Instant::now();
            f.write_all_at(&record, (i * size) as u64)?;
            f.sync_data()?;
            us.push(t.elapsed().as_micros() as u64);
        }
        report("fallocate'd+fdatasync", size, us);
        drop(f);
        std::fs::remove_file(&path)?;

        let path = dir.path().join("zeroed");
        zeroed(&path, span)?;
        let f = open(&path, false, false)?;
        let mut us = Vec::with_capacity(iterations);
        for i in 0..iterations {
            let t = Instant::now();
            f.write_all_at(&record, (i * size) as u64)?;
            f.sync_data()?;
            us.push(t.elapsed().as_micros() as u64);
        }
        report("pre-zeroed+fdatasync", size, us);
        drop(f);

        let f = open(&path, true, false)?;
        let mut us = Vec::with_capacity(iterations);
        for i in 0..iterations {
            let t = Instant::now();
            f.write_all_at(&record, (i * size) as u64)?;
            us.push(t.elapsed().as_micros() as u64);
        }
        report("pre-zeroed O_DSYNC", size, us);
        drop(f);
        std::fs::remove_file(&path)?;

        let path = dir.path().join("append-dsync");
        let mut f = open(&path, true, true)?;
        f.seek(SeekFrom::End(0))?;
        let mut us = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            f.write_all(&record)?;
            us.push(t.elapsed().as_micros() as u64);
        }
        report("append O_DSYNC", size, us);
        drop(f);
        std::fs::remove_file(&path)?;
    }
    Ok(())
}
