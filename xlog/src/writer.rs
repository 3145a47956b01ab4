//! The background writer: the only code that touches log files.
//!
//! The tracing layer hands each formatted line to this thread through a bounded channel and
//! never waits: when the channel is full the line is dropped and counted (see
//! [`Stats::dropped`]), so a slow disk can never stall an engine actor. The writer gathers lines
//! into a block and appends the block to the day file of its lines when the block reaches
//! [`WriterConfig::block_bytes`] of text, when [`WriterConfig::flush_interval`] has passed since
//! its first line, when the UTC day changes, on [`Command::Flush`] and on [`Command::Shutdown`].
//! A crash therefore loses at most the block being gathered. When lines were dropped since the
//! last block, the next block carries a line saying how many.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::block::encode_block;
use crate::clock::{self, Date};
use crate::retention::file_name;

/// A formatted line on its way to disk.
#[derive(Debug)]
pub(crate) struct Record {
    /// Its time, ms since the Unix epoch (decides the day file).
    pub ms: u64,
    /// The line, without a trailing newline and without embedded newlines.
    pub text: String,
}

/// What the writer thread is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Append a line.
    Line(Record),
    /// Write the pending block and sync the file; answer with the latest write error, if any.
    Flush(Sender<Result<(), String>>),
    /// Write the pending block, sync and stop.
    Shutdown,
}

/// Counters shared by the layer, the writer, the listener and the logger handle.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Lines dropped because the writer's queue was full.
    pub dropped: AtomicU64,
    /// Lines dropped because the listener's queue was full.
    pub listener_dropped: AtomicU64,
    /// Lines written to files (including the writer's own notices).
    pub lines_written: AtomicU64,
    /// Uncompressed bytes of those lines (with their newlines).
    pub text_bytes: AtomicU64,
    /// Bytes appended to files (headers and compressed bodies).
    pub file_bytes: AtomicU64,
    /// Blocks appended.
    pub blocks: AtomicU64,
    /// Blocks lost to write errors.
    pub write_errors: AtomicU64,
}

/// The writer's tuning.
#[derive(Debug, Clone)]
pub(crate) struct WriterConfig {
    pub dir: PathBuf,
    pub block_bytes: usize,
    pub flush_interval: Duration,
}

struct OpenFile {
    day: i64,
    path: PathBuf,
    file: File,
}

/// The writer thread's state.
pub(crate) struct Writer {
    config: WriterConfig,
    stats: Arc<Stats>,
    seq: u32,
    text: Vec<u8>,
    lines: u32,
    first_ms: u64,
    last_ms: u64,
    day: i64,
    deadline: Option<Instant>,
    reported_drops: u64,
    file: Option<OpenFile>,
    last_error: Option<String>,
}

impl Writer {
    pub(crate) fn new(config: WriterConfig, stats: Arc<Stats>) -> Self {
        Writer {
            text: Vec::with_capacity(config.block_bytes + 1024),
            config,
            stats,
            seq: 0,
            lines: 0,
            first_ms: 0,
            last_ms: 0,
            day: 0,
            deadline: None,
            reported_drops: 0,
            file: None,
            last_error: None,
        }
    }

    /// The thread body: runs until [`Command::Shutdown`] or until every sender is gone.
    pub(crate) fn run(mut self, rx: Receiver<Command>) {
        loop {
            let next = match self.deadline {
                Some(deadline) => {
                    rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                }
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match next {
                Ok(Command::Line(record)) => self.push(record),
                Ok(Command::Flush(reply)) => {
                    self.write_block();
                    self.sync();
                    // The asker may have given up waiting; nothing to do then.
                    let _ = reply.send(self.last_error.take().map_or(Ok(()), Err));
                }
                Ok(Command::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                    self.write_block();
                    self.sync();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => self.write_block(),
            }
        }
    }

    fn push(&mut self, record: Record) {
        let day = clock::day_of_ms(record.ms);
        if self.lines > 0 && day != self.day {
            self.write_block();
        }
        if self.lines == 0 {
            self.first_ms = record.ms;
            self.last_ms = record.ms;
            self.day = day;
            self.deadline = Some(Instant::now() + self.config.flush_interval);
        }
        self.last_ms = self.last_ms.max(record.ms);
        self.text.extend_from_slice(record.text.as_bytes());
        self.text.push(b'\n');
        self.lines += 1;
        if self.text.len() >= self.config.block_bytes {
            self.write_block();
        }
    }

    /// Adds a notice about dropped lines to the pending block, if any were dropped since the last.
    fn note_drops(&mut self) {
        let dropped = self.stats.dropped.load(Ordering::Relaxed);
        if dropped <= self.reported_drops {
            return;
        }
        let ms = clock::now_ms();
        let mut text = String::with_capacity(96);
        clock::format_timestamp(ms, &mut text);
        text.push_str(&format!(
            " WARN chime_xlog: {} log lines dropped (writer queue full)",
            dropped - self.reported_drops
        ));
        self.reported_drops = dropped;
        if self.lines > 0 && clock::day_of_ms(ms) != self.day {
            self.write_block_now();
        }
        if self.lines == 0 {
            self.first_ms = ms;
            self.last_ms = ms;
            self.day = clock::day_of_ms(ms);
        }
        self.last_ms = self.last_ms.max(ms);
        self.text.extend_from_slice(text.as_bytes());
        self.text.push(b'\n');
        self.lines += 1;
    }

    fn write_block(&mut self) {
        self.note_drops();
        self.write_block_now();
    }

    fn write_block_now(&mut self) {
        self.deadline = None;
        if self.lines == 0 {
            return;
        }
        let result = encode_block(
            self.seq,
            self.first_ms,
            self.last_ms,
            self.lines,
            &self.text,
        )
        .and_then(|block| self.append(&block).map(|()| block.len()));
        match result {
            Ok(len) => {
                self.seq = self.seq.wrapping_add(1);
                let s = &self.stats;
                s.blocks.fetch_add(1, Ordering::Relaxed);
                s.lines_written
                    .fetch_add(u64::from(self.lines), Ordering::Relaxed);
                s.text_bytes
                    .fetch_add(self.text.len() as u64, Ordering::Relaxed);
                s.file_bytes.fetch_add(len as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                self.last_error = Some(e.to_string());
                // Reopen next time: the file may have been removed or the disk replaced.
                self.file = None;
            }
        }
        self.text.clear();
        self.lines = 0;
    }

    fn append(&mut self, block: &[u8]) -> std::io::Result<()> {
        let day = self.day;
        let open = match self.file.take() {
            Some(f) if f.day == day => f,
            _ => open_day_file(&self.config.dir, day)?,
        };
        let file = self.file.insert(open);
        file.file
            .write_all(block)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", file.path.display())))
    }

    fn sync(&mut self) {
        if let Some(f) = &self.file
            && let Err(e) = f.file.sync_data()
        {
            self.last_error = Some(format!("{}: {e}", f.path.display()));
        }
    }
}

fn open_day_file(dir: &Path, day: i64) -> std::io::Result<OpenFile> {
    let path = dir.join(file_name(Date::from_days(day)));
    let open = || OpenOptions::new().create(true).append(true).open(&path);
    let file = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            open()?
        }
        Err(e) => {
            return Err(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            ));
        }
    };
    Ok(OpenFile { day, path, file })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_file;

    fn writer(dir: &Path, block_bytes: usize) -> (Writer, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        let config = WriterConfig {
            dir: dir.to_owned(),
            block_bytes,
            flush_interval: Duration::from_secs(60),
        };
        (Writer::new(config, Arc::clone(&stats)), stats)
    }

    fn line(ms: u64, text: &str) -> Record {
        Record {
            ms,
            text: text.to_owned(),
        }
    }

    /// Strips the `YYYY-MM-DD HH:MM:SS.mmm ` prefix of a writer notice.
    fn after_time(line: &str) -> &str {
        &line[24..]
    }

    #[test]
    fn dropped_lines_are_reported_in_the_next_block() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, stats) = writer(dir.path(), 1 << 20);
        let today = clock::now_ms();
        w.push(line(today, "first"));
        stats.dropped.store(3, Ordering::Relaxed);
        w.write_block();
        w.push(line(today, "second"));
        w.write_block();
        stats.dropped.store(5, Ordering::Relaxed);
        w.write_block(); // a block holding only the notice
        let path = dir
            .path()
            .join(file_name(Date::from_days(clock::day_of_ms(today))));
        let report = decode_file(&path).unwrap();
        assert_eq!(report.lines.len(), 4);
        assert_eq!(report.lines[0], "first");
        assert_eq!(
            after_time(&report.lines[1]),
            "WARN chime_xlog: 3 log lines dropped (writer queue full)"
        );
        assert_eq!(report.lines[2], "second");
        assert_eq!(
            after_time(&report.lines[3]),
            "WARN chime_xlog: 2 log lines dropped (writer queue full)"
        );
        assert_eq!(report.blocks, 3);
        assert_eq!(stats.blocks.load(Ordering::Relaxed), 3);
        assert_eq!(stats.lines_written.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn lines_go_to_the_file_of_their_utc_day_and_blocks_split_at_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, stats) = writer(dir.path(), 10);
        let day = 20_000i64; // 2024-10-04
        let ms = u64::try_from(day).unwrap() * 86_400_000;
        w.push(line(ms + 86_399_999, "late on day one"));
        w.push(line(ms + 86_400_000, "early on day two"));
        w.push(line(ms + 86_400_001, "x"));
        w.push(line(ms + 86_400_002, "y"));
        w.write_block();
        let one = decode_file(dir.path().join("chime_20241004.xlog")).unwrap();
        let two = decode_file(dir.path().join("chime_20241005.xlog")).unwrap();
        assert_eq!(one.lines, vec!["late on day one"]);
        assert_eq!(two.lines, vec!["early on day two", "x", "y"]);
        // "early on day two\n" fills a 10-byte block by itself; "x\ny\n" is the next one.
        assert_eq!((one.blocks, two.blocks), (1, 2));
        assert_eq!(stats.blocks.load(Ordering::Relaxed), 3);
    }
}
