//! The logger handle: configuration, start-up (directory, retention, threads), the
//! `tracing::Dispatch` an engine installs on its own threads, the run-time level, flushing and
//! counters. Dropping the handle writes what is pending and stops the writer.
//!
//! No global subscriber is ever installed: several engines may share a process, each with its
//! own log directory, and each sets its logger's dispatch as the default on the threads it owns
//! (`tracing::dispatcher::set_default`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;

use crate::clock::{self, Date};
use crate::error::{Result, XlogError};
use crate::layer::XlogLayer;
use crate::level::{Level, SharedLevel};
use crate::listener::{self, ListenerMsg, LogListener};
use crate::retention;
use crate::writer::{Command, Record, Stats, Writer, WriterConfig};

/// How long [`Logger::flush`] waits for the writer.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// How a logger is set up.
#[derive(Clone)]
pub struct LogConfig {
    /// The directory of the day files (created if missing).
    pub dir: PathBuf,
    /// The initial level (changeable later with [`Logger::set_level`]).
    pub level: Level,
    /// Day files this many days old or older are removed at start; 0 keeps everything.
    pub retention_days: u32,
    /// The host's log listener, called for every line that passes the level.
    pub listener: Option<LogListener>,
    /// Whether the listener gets lines from the start (default `true`); switch it later with
    /// [`Logger::set_listener_enabled`]. While off, lines are not even queued for it.
    pub listener_enabled: bool,
    /// Capacity of the writer's queue, in lines.
    pub queue_lines: usize,
    /// Capacity of the listener's queue, in lines.
    pub listener_queue_lines: usize,
    /// A block is written once it holds this much text.
    pub block_bytes: usize,
    /// A block is written at the latest this long after its first line.
    pub flush_interval: Duration,
}

impl LogConfig {
    /// The seed's defaults for `dir`: debug level, 7 days of retention, no listener, a writer
    /// queue of 16384 lines (4096 for the listener), 16 KiB blocks written at least every
    /// second.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LogConfig {
            dir: dir.into(),
            level: Level::Debug,
            retention_days: 7,
            listener: None,
            listener_enabled: true,
            queue_lines: 16_384,
            listener_queue_lines: 4096,
            block_bytes: 16 * 1024,
            flush_interval: Duration::from_secs(1),
        }
    }
}

impl fmt::Debug for LogConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogConfig")
            .field("dir", &self.dir)
            .field("level", &self.level)
            .field("retention_days", &self.retention_days)
            .field("listener", &self.listener.is_some())
            .field("listener_enabled", &self.listener_enabled)
            .field("queue_lines", &self.queue_lines)
            .field("listener_queue_lines", &self.listener_queue_lines)
            .field("block_bytes", &self.block_bytes)
            .field("flush_interval", &self.flush_interval)
            .finish()
    }
}

/// Counters of a logger since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogStats {
    /// Lines written to files (including the logger's own notices).
    pub lines_written: u64,
    /// Uncompressed size of those lines, newlines included.
    pub text_bytes: u64,
    /// Bytes appended to files (headers and compressed bodies).
    pub file_bytes: u64,
    /// Blocks appended.
    pub blocks: u64,
    /// Lines dropped because the writer's queue was full.
    pub dropped_lines: u64,
    /// Lines not delivered to the listener because its queue was full.
    pub listener_dropped: u64,
    /// Blocks lost to write errors.
    pub write_errors: u64,
}

/// A running logger. See the crate documentation for how an engine uses it.
pub struct Logger {
    dir: PathBuf,
    level: SharedLevel,
    stats: Arc<Stats>,
    dispatch: tracing::Dispatch,
    writer_tx: SyncSender<Command>,
    writer: Option<JoinHandle<()>>,
    listener_tx: Option<SyncSender<ListenerMsg>>,
    listener_on: Arc<AtomicBool>,
    removed: Vec<PathBuf>,
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger")
            .field("dir", &self.dir)
            .field("level", &self.level.get())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Logger {
    /// Creates the directory, removes expired day files, starts the writer (and the listener's
    /// thread when there is a listener) and builds the dispatch.
    pub fn start(config: LogConfig) -> Result<Logger> {
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| XlogError::Io {
            path: dir.clone(),
            source,
        })?;
        let now = clock::now_ms();
        // Retention failing (an unreadable directory) must not stop logging; it is noted below.
        let (removed, retention_error) =
            match retention::remove_expired(&dir, config.retention_days, clock::day_of_ms(now)) {
                Ok(removed) => (removed, None),
                Err(e) => (Vec::new(), Some(e)),
            };

        let stats = Arc::new(Stats::default());
        let queue = config.queue_lines.max(1);
        let (writer_tx, writer_rx) = mpsc::sync_channel(queue);
        let writer = Writer::new(
            WriterConfig {
                dir: dir.clone(),
                block_bytes: config.block_bytes.max(1),
                flush_interval: config.flush_interval,
            },
            Arc::clone(&stats),
        );
        let writer = std::thread::Builder::new()
            .name("chime-xlog-writer".to_owned())
            .spawn(move || writer.run(writer_rx))
            .map_err(|source| XlogError::Spawn {
                what: "log writer",
                source,
            })?;

        let listener_tx = match config.listener {
            Some(callback) => {
                let (tx, rx) = mpsc::sync_channel(config.listener_queue_lines.max(1));
                std::thread::Builder::new()
                    .name("chime-xlog-listener".to_owned())
                    .spawn(move || listener::run(callback, rx))
                    .map_err(|source| XlogError::Spawn {
                        what: "log listener",
                        source,
                    })?;
                Some(tx)
            }
            None => None,
        };

        let level = SharedLevel::new(config.level);
        let listener_on = Arc::new(AtomicBool::new(config.listener_enabled));
        let layer = XlogLayer {
            level: level.clone(),
            writer: writer_tx.clone(),
            listener: listener_tx.clone(),
            listener_on: Arc::clone(&listener_on),
            stats: Arc::clone(&stats),
        };
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let logger = Logger {
            dir,
            level,
            stats,
            dispatch,
            writer_tx,
            writer: Some(writer),
            listener_tx,
            listener_on,
            removed,
        };
        if config.level != Level::None {
            logger.note(
                now,
                format!(
                    "INFO chime_xlog: logging started level={} retention_days={} removed_files={}",
                    config.level,
                    config.retention_days,
                    logger.removed.len()
                ),
            );
            if let Some(e) = retention_error {
                logger.note(now, format!("WARN chime_xlog: retention skipped: {e}"));
            }
        }
        Ok(logger)
    }

    /// Writes one of the logger's own lines (bypassing `tracing`, never blocking).
    fn note(&self, ms: u64, rest: String) {
        let mut text = String::with_capacity(rest.len() + 24);
        clock::format_timestamp(ms, &mut text);
        text.push(' ');
        text.push_str(&rest);
        if self
            .writer_tx
            .try_send(Command::Line(Record { ms, text }))
            .is_err()
        {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The dispatch to install on the engine's threads
    /// (`tracing::dispatcher::set_default(&logger.dispatch())`). Cheap to clone.
    pub fn dispatch(&self) -> tracing::Dispatch {
        self.dispatch.clone()
    }

    /// The current level.
    pub fn level(&self) -> Level {
        self.level.get()
    }

    /// Changes the level; takes effect for the next event on every thread.
    pub fn set_level(&self, level: Level) {
        self.level.set(level);
    }

    /// Switches delivery to the listener on or off (no effect without a listener); takes
    /// effect for the next event on every thread. The seed sets its log listener in the init
    /// config; this lets an engine honour a listener added or removed later.
    pub fn set_listener_enabled(&self, on: bool) {
        self.listener_on.store(on, Ordering::Relaxed);
    }

    /// Whether lines are handed to the listener (a listener is configured and enabled).
    pub fn listener_enabled(&self) -> bool {
        self.listener_tx.is_some() && self.listener_on.load(Ordering::Relaxed)
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the day file for the given UTC date.
    pub fn file_for(&self, date: Date) -> PathBuf {
        self.dir.join(retention::file_name(date))
    }

    /// The path of today's (UTC) day file.
    pub fn today_file(&self) -> PathBuf {
        self.file_for(Date::from_days(clock::day_of_ms(clock::now_ms())))
    }

    /// The files retention removed at start.
    pub fn removed_files(&self) -> &[PathBuf] {
        &self.removed
    }

    /// Writes every line queued so far to its file and syncs it. Reports the latest write
    /// error since the previous flush.
    pub fn flush(&self) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        self.writer_tx
            .send(Command::Flush(tx))
            .map_err(|_| XlogError::WriterStopped)?;
        match rx.recv_timeout(FLUSH_TIMEOUT) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(XlogError::Write(e)),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(XlogError::FlushTimeout(FLUSH_TIMEOUT)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(XlogError::WriterStopped),
        }
    }

    /// Lines dropped so far because the writer's queue was full.
    pub fn dropped_lines(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }

    /// Lines not delivered to the listener so far because its queue was full.
    pub fn listener_dropped(&self) -> u64 {
        self.stats.listener_dropped.load(Ordering::Relaxed)
    }

    /// All counters.
    pub fn stats(&self) -> LogStats {
        let s = &self.stats;
        LogStats {
            lines_written: s.lines_written.load(Ordering::Relaxed),
            text_bytes: s.text_bytes.load(Ordering::Relaxed),
            file_bytes: s.file_bytes.load(Ordering::Relaxed),
            blocks: s.blocks.load(Ordering::Relaxed),
            dropped_lines: s.dropped.load(Ordering::Relaxed),
            listener_dropped: s.listener_dropped.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        // The writer drains the queue before it sees Shutdown, so this send returns promptly.
        if self.writer_tx.send(Command::Shutdown).is_ok()
            && let Some(handle) = self.writer.take()
        {
            let _ = handle.join();
        }
        if let Some(tx) = &self.listener_tx {
            listener::stop(tx, Duration::from_secs(1));
        }
    }
}
