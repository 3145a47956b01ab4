//! Truncated and corrupted files decode everything intact and report the rest.

use std::path::{Path, PathBuf};

use chime_xlog::block::{BlockHeader, HEADER_LEN};
use chime_xlog::{Damage, DamageKind, LogConfig, Logger, decode_bytes};

use crate::helpers::with_logger;

/// Writes `n` lines in small blocks and returns the file's bytes.
fn small_blocks(dir: &Path, n: u32) -> Vec<u8> {
    small_blocks_at(dir, n).1
}

/// Writes `n` lines in small blocks and returns the file's path and bytes.
fn small_blocks_at(dir: &Path, n: u32) -> (PathBuf, Vec<u8>) {
    let mut config = LogConfig::new(dir);
    config.block_bytes = 1024;
    let logger = Logger::start(config).unwrap();
    with_logger(&logger, || {
        for i in 0..n {
            tracing::info!(target: "chime_engine::conn", attempt = i, "reconnect scheduled");
        }
    });
    logger.flush().unwrap();
    let path = logger.today_file();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// The (offset, length) of every block, from their headers.
fn blocks(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let h = BlockHeader::decode(&bytes[at..]).unwrap();
        let len = HEADER_LEN + h.body_len as usize;
        out.push((at, len));
        at += len;
    }
    out
}

#[test]
fn a_file_cut_inside_its_last_block_keeps_all_earlier_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = small_blocks(dir.path(), 400);
    let all = decode_bytes(&bytes);
    assert!(all.is_intact());
    let b = blocks(&bytes);
    assert!(b.len() >= 5, "want several blocks, got {}", b.len());
    let (last_at, last_len) = *b.last().unwrap();
    let cut = last_at + last_len / 2;
    let report = decode_bytes(&bytes[..cut]);
    let last_lines = decode_bytes(&bytes[last_at..]).lines.len();
    assert_eq!(report.lines, all.lines[..all.lines.len() - last_lines]);
    assert_eq!(report.blocks as usize, b.len() - 1);
    assert_eq!(report.skipped_bytes, (cut - last_at) as u64);
    assert_eq!(
        report.damaged_blocks,
        [Damage {
            offset: last_at as u64,
            len: (cut - last_at) as u64,
            kind: DamageKind::Truncated,
            seq: Some((b.len() - 1) as u32),
        }]
    );
}

#[test]
fn a_file_cut_inside_a_header_keeps_all_earlier_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = small_blocks(dir.path(), 200);
    let b = blocks(&bytes);
    let (last_at, _) = *b.last().unwrap();
    let report = decode_bytes(&bytes[..last_at + 10]);
    assert_eq!(report.blocks as usize, b.len() - 1);
    assert_eq!(
        report.damaged_blocks,
        [Damage {
            offset: last_at as u64,
            len: 10,
            kind: DamageKind::Truncated,
            seq: None
        }]
    );
}

#[test]
fn corrupted_middle_blocks_are_reported_and_the_rest_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = small_blocks(dir.path(), 400);
    let all = decode_bytes(&bytes);
    let b = blocks(&bytes);
    let (body_at, body_len) = b[2];
    let (head_at, head_len) = b[4];
    let mut bad = bytes.clone();
    bad[body_at + HEADER_LEN + 7] ^= 0x5a; // body byte: body CRC fails
    bad[head_at + 30] ^= 0x01; // line count field: header CRC fails
    let report = decode_bytes(&bad);
    assert_eq!(
        report.damaged_blocks,
        [
            Damage {
                offset: body_at as u64,
                len: body_len as u64,
                kind: DamageKind::BadBodyCrc,
                seq: Some(2)
            },
            Damage {
                offset: head_at as u64,
                len: head_len as u64,
                kind: DamageKind::BadHeader,
                seq: None
            },
        ]
    );
    assert_eq!(report.skipped_bytes, (body_len + head_len) as u64);
    assert_eq!(report.blocks as usize, b.len() - 2);
    let mut want = Vec::new();
    for (i, (at, len)) in b.iter().enumerate() {
        if i != 2 && i != 4 {
            want.extend(decode_bytes(&bytes[*at..at + len]).lines);
        }
    }
    assert_eq!(report.lines, want);
    assert_eq!(
        report.lines.len(),
        all.lines.len()
            - decode_bytes(&bytes[body_at..body_at + body_len])
                .lines
                .len()
            - decode_bytes(&bytes[head_at..head_at + head_len])
                .lines
                .len()
    );
}

#[test]
fn a_session_after_a_crash_appends_after_the_torn_block() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = small_blocks_at(dir.path(), 100);
    let b = blocks(&bytes);
    let (last_at, last_len) = *b.last().unwrap();
    // A crash in the middle of writing the last block, then a new session on the same day.
    std::fs::write(&path, &bytes[..last_at + last_len / 2]).unwrap();
    let logger = Logger::start(LogConfig::new(dir.path())).unwrap();
    with_logger(&logger, || tracing::warn!(target: "t", "after the crash"));
    logger.flush().unwrap();
    let report = decode_bytes(&std::fs::read(&path).unwrap());
    let before = decode_bytes(&bytes[..last_at]).lines;
    assert_eq!(report.lines[..before.len()], before[..]);
    assert_eq!(report.lines.len(), before.len() + 2);
    assert!(
        report.lines[before.len()]
            .ends_with("logging started level=debug retention_days=7 removed_files=0")
    );
    assert!(report.lines[before.len() + 1].ends_with(" WARN t: after the crash"));
    assert_eq!(
        report.damaged_blocks,
        [Damage {
            offset: last_at as u64,
            len: (last_len / 2) as u64,
            kind: DamageKind::BadBodyCrc,
            seq: Some((b.len() - 1) as u32),
        }]
    );
}
