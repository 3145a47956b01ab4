//! Two loggers in one process, each the default on its own thread, write to their own files.

use std::sync::{Arc, Barrier};

use chime_xlog::Level;

use crate::helpers::{lines, start, started};

#[test]
fn two_loggers_on_two_threads_keep_separate_files() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(dir_a.path(), Level::Debug);
    let b = start(dir_b.path(), Level::Info);
    let barrier = Arc::new(Barrier::new(2));
    let spawn = |dispatch: tracing::Dispatch, name: &'static str| {
        let barrier = Arc::clone(&barrier);
        std::thread::spawn(move || {
            let _guard = tracing::dispatcher::set_default(&dispatch);
            barrier.wait(); // both threads log at the same time
            for i in 0..200 {
                tracing::debug!(target: "engine", "{name} debug {i}");
                tracing::info!(target: "engine", "{name} info {i}");
            }
        })
    };
    let ta = spawn(a.dispatch(), "a");
    let tb = spawn(b.dispatch(), "b");
    ta.join().unwrap();
    tb.join().unwrap();
    // Not installed globally: this thread's events go nowhere.
    tracing::error!(target: "engine", "main thread");

    let mut want_a = vec![started(Level::Debug, 7, 0)];
    for i in 0..200 {
        want_a.push(format!("DEBUG engine: a debug {i}"));
        want_a.push(format!("INFO engine: a info {i}"));
    }
    let mut want_b = vec![started(Level::Info, 7, 0)];
    want_b.extend((0..200).map(|i| format!("INFO engine: b info {i}")));
    assert_eq!(lines(&a), want_a);
    assert_eq!(lines(&b), want_b);
}

#[test]
fn set_thread_default_lasts_for_the_thread() {
    let dir = tempfile::tempdir().unwrap();
    let logger = start(dir.path(), Level::Debug);
    let dispatch = logger.dispatch();
    std::thread::spawn(move || {
        // As from a runtime's thread-start hook: nothing is kept by the caller.
        let hook = || chime_xlog::set_thread_default(&dispatch);
        hook();
        tracing::info!(target: "engine", "after the hook");
    })
    .join()
    .unwrap();
    assert_eq!(
        lines(&logger),
        [
            started(Level::Debug, 7, 0),
            "INFO engine: after the hook".to_owned()
        ]
    );
}
