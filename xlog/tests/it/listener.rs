//! The log listener receives every line that passes the level, and never blocks logging.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chime_xlog::{Level, Logger};

use crate::helpers::{config, lines, started, untimed, wait_until, with_logger};

type Seen = Arc<Mutex<Vec<(Level, String)>>>;

#[test]
fn the_listener_gets_each_line_with_its_level() {
    let dir = tempfile::tempdir().unwrap();
    let seen: Seen = Arc::default();
    let mut c = config(dir.path(), Level::Info);
    let sink = Arc::clone(&seen);
    c.listener = Some(Arc::new(move |level, line: &str| {
        sink.lock().unwrap().push((level, untimed(line)));
    }));
    let logger = Logger::start(c).unwrap();
    with_logger(&logger, || {
        tracing::debug!(target: "t", "filtered");
        tracing::info!(target: "t", id = 1, "connected");
        tracing::warn!(target: "t", "slow ack");
        tracing::error!(target: "t", "kicked");
    });
    assert!(wait_until(Duration::from_secs(30), || seen
        .lock()
        .unwrap()
        .len()
        == 3));
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (Level::Info, "INFO t: connected id=1".to_owned()),
            (Level::Warn, "WARN t: slow ack".to_owned()),
            (Level::Error, "ERROR t: kicked".to_owned()),
        ]
    );
    // The file holds the same lines (plus the logger's own start notice).
    assert_eq!(
        lines(&logger),
        [
            started(Level::Info, 7, 0).as_str(),
            "INFO t: connected id=1",
            "WARN t: slow ack",
            "ERROR t: kicked"
        ]
    );
    assert_eq!(logger.listener_dropped(), 0);
}

#[test]
fn a_stuck_listener_never_blocks_logging_and_its_drops_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let delivered = Arc::new(Mutex::new(0u64));
    let mut c = config(dir.path(), Level::Debug);
    c.listener_queue_lines = 4;
    let count = Arc::clone(&delivered);
    c.listener = Some(Arc::new(move |_, _: &str| {
        // Stuck until the test releases it (bounded, so a failing test cannot hang).
        let _ = release_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10));
        *count.lock().unwrap() += 1;
    }));
    let logger = Logger::start(c).unwrap();
    let begun = Instant::now();
    with_logger(&logger, || {
        for i in 0..100 {
            tracing::debug!(target: "t", "line {i}");
        }
    });
    // Logging returned while the listener is stuck in its first call.
    assert!(begun.elapsed() < Duration::from_secs(10));
    let dropped = logger.listener_dropped();
    assert!(
        dropped >= 95,
        "at most 4 queued + 1 in the callback, dropped {dropped}"
    );
    for _ in 0..100 {
        let _ = release_tx.send(());
    }
    assert!(wait_until(Duration::from_secs(30), || *delivered
        .lock()
        .unwrap()
        + dropped
        == 100));
    assert_eq!(*delivered.lock().unwrap(), 100 - dropped);
    // Every line still reached the file.
    assert_eq!(lines(&logger).len(), 101);
    assert_eq!(logger.dropped_lines(), 0);
}

#[test]
fn a_panicking_listener_keeps_receiving() {
    let dir = tempfile::tempdir().unwrap();
    let seen: Seen = Arc::default();
    let mut c = config(dir.path(), Level::Debug);
    let sink = Arc::clone(&seen);
    c.listener = Some(Arc::new(move |level, line: &str| {
        if line.ends_with("boom") {
            panic!("host bug");
        }
        sink.lock().unwrap().push((level, untimed(line)));
    }));
    let logger = Logger::start(c).unwrap();
    with_logger(&logger, || {
        tracing::info!(target: "t", "boom");
        tracing::info!(target: "t", "after");
    });
    assert!(wait_until(Duration::from_secs(30), || !seen
        .lock()
        .unwrap()
        .is_empty()));
    assert_eq!(
        *seen.lock().unwrap(),
        [(Level::Info, "INFO t: after".to_owned())]
    );
}

#[test]
fn the_listener_can_be_switched_off_and_on_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let seen: Seen = Arc::default();
    let mut c = config(dir.path(), Level::Debug);
    c.listener_enabled = false;
    let sink = Arc::clone(&seen);
    c.listener = Some(Arc::new(move |level, line: &str| {
        sink.lock().unwrap().push((level, untimed(line)));
    }));
    let logger = Logger::start(c).unwrap();
    assert!(!logger.listener_enabled());
    with_logger(&logger, || tracing::info!(target: "t", "before"));
    logger.set_listener_enabled(true);
    assert!(logger.listener_enabled());
    with_logger(&logger, || tracing::info!(target: "t", "during"));
    logger.set_listener_enabled(false);
    with_logger(&logger, || tracing::info!(target: "t", "after"));
    // Every line is in the file; only the one logged while enabled reached the listener.
    assert_eq!(
        lines(&logger),
        [
            started(Level::Debug, 7, 0).as_str(),
            "INFO t: before",
            "INFO t: during",
            "INFO t: after"
        ]
    );
    assert!(wait_until(Duration::from_secs(30), || !seen
        .lock()
        .unwrap()
        .is_empty()));
    // Lines are offered to the listener when logged, so "before" and "after" never were.
    assert_eq!(
        *seen.lock().unwrap(),
        [(Level::Info, "INFO t: during".to_owned())]
    );
}
