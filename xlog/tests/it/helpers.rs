//! Shared helpers: start a logger in a temp dir, log through it, read its file back.

use std::path::Path;
use std::time::{Duration, Instant};

use chime_xlog::{Level, LogConfig, Logger, decode_file};

/// A config for `dir` at `level` with the defaults otherwise.
pub fn config(dir: &Path, level: Level) -> LogConfig {
    let mut c = LogConfig::new(dir);
    c.level = level;
    c
}

/// Starts a logger for `dir` at `level`.
pub fn start(dir: &Path, level: Level) -> Logger {
    Logger::start(config(dir, level)).expect("logger starts")
}

/// Runs `f` with the logger's dispatch as this thread's default.
pub fn with_logger<R>(logger: &Logger, f: impl FnOnce() -> R) -> R {
    tracing::dispatcher::with_default(&logger.dispatch(), f)
}

/// Removes the `YYYY-MM-DD HH:MM:SS.mmm ` prefix every line starts with, checking its shape.
pub fn untimed(line: &str) -> String {
    let (time, rest) = line.split_at(24);
    let b = time.as_bytes();
    assert!(
        b[4] == b'-' && b[7] == b'-' && b[10] == b' ' && b[13] == b':' && b[19] == b'.',
        "line does not start with a timestamp: {line:?}"
    );
    rest.to_owned()
}

/// Flushes and returns today's lines without their timestamps.
pub fn lines(logger: &Logger) -> Vec<String> {
    logger.flush().expect("flush");
    let report = decode_file(logger.today_file()).expect("decode");
    assert!(
        report.is_intact(),
        "damage in a fresh file: {:?}",
        report.damaged_blocks
    );
    report.lines.iter().map(|l| untimed(l)).collect()
}

/// The notice a logger writes first.
pub fn started(level: Level, retention_days: u32, removed: usize) -> String {
    format!(
        "INFO chime_xlog: logging started level={level} retention_days={retention_days} \
         removed_files={removed}"
    )
}

/// Polls `cond` every 5 ms for at most `limit`; returns whether it became true.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
