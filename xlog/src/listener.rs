//! The log listener (the seed's `V2TIMLogListener.onLog`): the host's callback gets every line
//! that passes the level, on a thread of its own.
//!
//! Lines reach that thread through a bounded queue the layer only `try_send`s into, so a host
//! that is slow (or stuck) inside its callback never blocks logging and never blocks the engine:
//! when the queue is full the line is dropped for the listener (it is still written to the file)
//! and counted. A panicking callback is contained; the next line is delivered as usual.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use crate::level::Level;

/// The host's callback: the level of the line and the line itself (as written to the file).
pub type LogListener = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// What the listener thread receives.
pub(crate) enum ListenerMsg {
    Line(Level, String),
    Stop,
}

/// The thread body: delivers lines until [`ListenerMsg::Stop`] or until every sender is gone.
pub(crate) fn run(listener: LogListener, rx: Receiver<ListenerMsg>) {
    while let Ok(ListenerMsg::Line(level, line)) = rx.recv() {
        // A panic in host code must not end delivery of the following lines.
        let _ = catch_unwind(AssertUnwindSafe(|| listener(level, &line)));
    }
}

/// Asks the listener thread to stop once it has delivered what is queued, waiting at most
/// `within` for room in the queue (the host's callback may be stuck; we never wait on it).
pub(crate) fn stop(tx: &SyncSender<ListenerMsg>, within: Duration) {
    let until = Instant::now() + within;
    let mut msg = ListenerMsg::Stop;
    loop {
        match tx.try_send(msg) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => return,
            Err(TrySendError::Full(back)) => {
                if Instant::now() >= until {
                    return;
                }
                msg = back;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
