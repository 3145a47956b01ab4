//! The engine's logging (the seed's init chapter, issue 9): `tracing` events of the engine go to
//! compressed day files in `log_dir` through a [`chime_xlog::Logger`], at the level of the
//! config's `log_level`, changeable at run time (`set_log_level`); day files past
//! `log_retention_days` are removed at init; with a log listener the lines also become
//! `on_log {level, content}` events.
//!
//! **One engine, one log.** No global subscriber is installed: several engines may share a
//! process, each with its own `log_dir`. The engine makes its logger's dispatch the default on
//! the threads it owns (the actor thread, for its whole life) and around each API call it serves
//! on the host's thread ([`EngineLog::scope_future`]), inside one `engine{app=…}` span.
//!
//! **The listener never blocks the engine.** Lines reach the listener on the logger's own thread
//! behind a bounded queue (`chime_xlog`); that thread only queues the `on_log` event. In thread
//! mode at most [`ON_LOG_BACKLOG`] `on_log` events wait for a slow host at once (a completion
//! queued behind each event counts it out when it has been delivered); lines beyond that are not
//! delivered (they are in the file). Pump mode has its own bounded queue. The event thread (or
//! the host's `poll`) has no dispatch of ours, so a host that logs from its handler cannot feed
//! its own lines back into `on_log`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chime_proto::codes;
use chime_xlog::{LogConfig, Logger};
use serde_json::json;
use tracing::Instrument as _;
use tracing::instrument::WithSubscriber as _;

use crate::events::EventBus;
use crate::{ApiError, CallbackMode, EngineConfig, LogLevel, Result};

/// The name of the log-line event (api.md §5).
pub const ON_LOG: &str = "on_log";

/// Thread mode: the most `on_log` events waiting for the host's handler at once.
pub const ON_LOG_BACKLOG: usize = 4096;

/// The log listener of an engine: each line becomes an `on_log` event, except (thread mode) while
/// [`ON_LOG_BACKLOG`] of them are still waiting for the host.
fn on_log_listener(events: &EventBus) -> chime_xlog::LogListener {
    let events = events.clone();
    let bounded = events.mode() == CallbackMode::Thread;
    let backlog = Arc::new(AtomicUsize::new(0));
    Arc::new(move |level: LogLevel, line: &str| {
        if bounded && backlog.fetch_add(1, Ordering::AcqRel) >= ON_LOG_BACKLOG {
            backlog.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        events.emit(ON_LOG, json!({ "level": level.as_str(), "content": line }));
        if bounded {
            let delivered = Arc::clone(&backlog);
            events.complete(Box::new(move || {
                delivered.fetch_sub(1, Ordering::AcqRel);
            }));
        }
    })
}

/// One engine's logger, its dispatch and its root span.
pub struct EngineLog {
    /// `None` once closed (shutdown): later lines are not kept.
    logger: Mutex<Option<Logger>>,
    dispatch: tracing::Dispatch,
    span: tracing::Span,
    dir: PathBuf,
}

impl std::fmt::Debug for EngineLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineLog")
            .field("dir", &self.dir)
            .field("level", &self.level())
            .finish_non_exhaustive()
    }
}

/// The log directory of a config: `log_dir`, or `<data_dir>/logs`.
pub fn log_dir(config: &EngineConfig) -> PathBuf {
    config
        .log_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("logs"))
}

impl EngineLog {
    /// Starts the logger of an engine: creates the directory, applies retention, and (always)
    /// installs a listener that turns lines into `on_log` events while it is enabled (the
    /// config's `log_listener`, later `add_log_listener`). A directory that cannot be created
    /// fails `init_sdk` with 6022 naming it.
    pub fn start(config: &EngineConfig, events: &EventBus) -> Result<EngineLog> {
        let dir = log_dir(config);
        let mut log_config = LogConfig::new(&dir);
        log_config.level = config.log_level;
        log_config.retention_days = config.log_retention_days;
        log_config.listener_enabled = config.log_listener;
        log_config.listener = Some(on_log_listener(events));
        let logger = Logger::start(log_config)
            .map_err(|e| ApiError::new(codes::ERR_IO, format!("log_dir {}: {e}", dir.display())))?;
        let dispatch = logger.dispatch();
        let span = tracing::dispatcher::with_default(&dispatch, || {
            tracing::info_span!("engine", app = config.sdk_app_id)
        });
        let log = EngineLog {
            logger: Mutex::new(Some(logger)),
            dispatch,
            span,
            dir,
        };
        log.in_scope(|| {
            tracing::info!(
                version = crate::VERSION,
                data_dir = %config.data_dir.display(),
                log_level = %config.log_level,
                callback_mode = ?config.callback_mode,
                "init_sdk"
            );
        });
        Ok(log)
    }

    /// The dispatch to make the default on the engine's threads.
    pub fn dispatch(&self) -> tracing::Dispatch {
        self.dispatch.clone()
    }

    /// The engine's root span (`engine{app=…}`), to enter on the engine's threads.
    pub fn span(&self) -> tracing::Span {
        self.span.clone()
    }

    /// Runs `f` with this engine's dispatch and span (for code on a host thread).
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::dispatcher::with_default(&self.dispatch, || self.span.in_scope(f))
    }

    /// Wraps a future (an API call polled on the host's executor) so that what it logs goes to
    /// this engine's files, inside its span.
    pub fn scope_future<F: Future>(&self, future: F) -> impl Future<Output = F::Output> {
        future
            .instrument(self.span.clone())
            .with_subscriber(self.dispatch.clone())
    }

    /// The current level (`none` once closed).
    pub fn level(&self) -> LogLevel {
        self.with_logger(|l| l.level()).unwrap_or(LogLevel::None)
    }

    /// `set_log_level`: takes effect for the next line on every thread.
    pub fn set_level(&self, level: LogLevel) {
        self.with_logger(|l| l.set_level(level));
    }

    /// `add_log_listener` / `remove_log_listener`: whether lines become `on_log` events.
    pub fn set_listener(&self, on: bool) {
        self.with_logger(|l| l.set_listener_enabled(on));
    }

    /// Shutdown: writes what is pending, stops the writer and the listener. Idempotent.
    pub fn close(&self) {
        let logger = match self.logger.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(logger) = logger {
            tracing::dispatcher::with_default(&self.dispatch, || {
                self.span.in_scope(|| tracing::info!("un_init_sdk"));
            });
            drop(logger);
        }
    }

    fn with_logger<R>(&self, f: impl FnOnce(&Logger) -> R) -> Option<R> {
        let guard = match self.logger.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.as_ref().map(f)
    }
}

impl Drop for EngineLog {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(app: u64, dir: &std::path::Path, extra: serde_json::Value) -> EngineConfig {
        let mut c = json!({
            "sdk_app_id": app,
            "server_url": "ws://127.0.0.1:1/ws",
            "data_dir": dir.join("data"),
        });
        if let (Some(base), serde_json::Value::Object(extra)) = (c.as_object_mut(), extra) {
            base.extend(extra);
        }
        serde_json::from_value(c).unwrap()
    }

    fn lines(dir: &std::path::Path) -> Vec<String> {
        let name = chime_xlog::retention::file_name(chime_xlog::clock::Date::from_days(
            chime_xlog::clock::day_of_ms(chime_xlog::clock::now_ms()),
        ));
        let report = chime_xlog::decode_file(dir.join(name)).unwrap();
        assert!(report.is_intact());
        report.lines.iter().map(|l| l[24..].to_owned()).collect()
    }

    #[test]
    fn the_default_log_dir_is_under_the_data_dir() {
        let c = config(1, std::path::Path::new("/d"), json!({}));
        assert_eq!(log_dir(&c), PathBuf::from("/d/data/logs"));
        let c = config(1, std::path::Path::new("/d"), json!({"log_dir": "/l"}));
        assert_eq!(log_dir(&c), PathBuf::from("/l"));
    }

    /// Two engines' calls polled on one host thread each log to their own files, inside their
    /// own span; the level changes at run time; nothing is captured outside a call.
    #[test]
    fn calls_on_one_host_thread_log_to_their_own_engine() {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let events = crate::events::EventBus::start_with(CallbackMode::Thread, 16).unwrap();
        let a = EngineLog::start(&config(11, da.path(), json!({})), &events).unwrap();
        let b = EngineLog::start(
            &config(22, db.path(), json!({"log_level": "info"})),
            &events,
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            a.scope_future(async { tracing::debug!(n = 1, "from a") })
                .await;
            b.scope_future(async { tracing::debug!("debug from b") })
                .await;
            b.scope_future(async { tracing::info!("from b") }).await;
        });
        tracing::error!("from no engine");
        a.set_level(LogLevel::Warn);
        assert_eq!(a.level(), LogLevel::Warn);
        rt.block_on(a.scope_future(async { tracing::info!("filtered in a") }));
        a.close();
        b.close();
        assert_eq!(a.level(), LogLevel::None);
        let (la, lb) = (lines(&a.dir), lines(&b.dir));
        assert_eq!(
            la[1..],
            [
                "INFO chime_engine::logging: engine{app=11}: init_sdk version=0.1.0 data_dir="
                    .to_owned()
                    + &da.path().join("data").display().to_string()
                    + " log_level=debug callback_mode=Thread",
                "DEBUG chime_engine::logging::tests: engine{app=11}: from a n=1".to_owned(),
            ]
        );
        assert_eq!(
            lb[1..],
            [
                "INFO chime_engine::logging: engine{app=22}: init_sdk version=0.1.0 data_dir="
                    .to_owned()
                    + &db.path().join("data").display().to_string()
                    + " log_level=info callback_mode=Thread",
                "INFO chime_engine::logging::tests: engine{app=22}: from b".to_owned(),
                "INFO chime_engine::logging: engine{app=22}: un_init_sdk".to_owned(),
            ]
        );
        events.stop();
    }

    /// Polls `done` every 5 ms until it holds, for at most 60 s; says whether it held.
    fn await_state(mut done: impl FnMut() -> bool) -> bool {
        let start = std::time::Instant::now();
        while !done() {
            if start.elapsed() > std::time::Duration::from_secs(60) {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        true
    }

    /// A host stuck in its handler holds at most `ON_LOG_BACKLOG` `on_log` events; the rest of
    /// the lines are only in the file, and logging never waited.
    ///
    /// The engine's listener sits behind the logger's own bounded queue, drained by the logger's
    /// listener thread. The test counts the lines that thread has handed to the listener and
    /// logs in bursts smaller than that queue, awaiting each burst's hand-over: so no line is
    /// dropped by the logger's queue, and every line has been offered to the listener while the
    /// host is still stuck (no time bound on a loaded machine decides the count).
    #[test]
    fn a_stuck_host_holds_a_bounded_number_of_on_log_events() {
        let dir = tempfile::tempdir().unwrap();
        let events = crate::events::EventBus::start_with(CallbackMode::Thread, 16).unwrap();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let seen = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&seen);
        events.set_handler(Some(Arc::new(move |event: crate::Event| {
            let is_line = event.data["content"]
                .as_str()
                .is_some_and(|c| c.contains(" line i="));
            if is_line && counted.fetch_add(1, Ordering::SeqCst) == 0 {
                // The first event blocks until the test releases it.
                let _ = release_rx.lock().unwrap().recv();
            }
        })));
        let engine_listener = on_log_listener(&events);
        let offered = Arc::new(AtomicUsize::new(0));
        let handed = Arc::clone(&offered);
        let mut log_config = LogConfig::new(dir.path());
        log_config.listener = Some(Arc::new(move |level: LogLevel, line: &str| {
            engine_listener(level, line);
            handed.fetch_add(1, Ordering::SeqCst);
        }));
        let logger = Logger::start(log_config).unwrap();
        let burst = 512;
        assert!(burst < LogConfig::new(dir.path()).listener_queue_lines);
        let lines = 3 * ON_LOG_BACKLOG;
        let d = logger.dispatch();
        tracing::dispatcher::with_default(&d, || {
            for start in (0..lines).step_by(burst) {
                for i in start..start + burst {
                    tracing::debug!(i, "line");
                }
                let logged = start + burst;
                assert!(
                    await_state(|| offered.load(Ordering::SeqCst) == logged),
                    "the logger's listener thread took {} of {logged} lines",
                    offered.load(Ordering::SeqCst)
                );
            }
        });
        assert_eq!(logger.listener_dropped(), 0);
        release_tx.send(()).unwrap();
        // Every accepted event reaches the handler once the host is released.
        assert!(await_state(|| seen.load(Ordering::SeqCst) >= ON_LOG_BACKLOG));
        drop(logger);
        events.stop();
        // Exactly the backlog's worth was accepted while the host was stuck.
        assert_eq!(seen.load(Ordering::SeqCst), ON_LOG_BACKLOG);
    }
}
