//! The public [`Engine`] handle: a cheap clone over `Arc<Inner>`. `init` starts the actix
//! System on the engine's own thread with the five actors; every call goes through the one
//! dispatch table ([`crate::dispatch`]) by sending to actor addresses, which works from any
//! executor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use actix::prelude::*;
use chime_proto::codes;
use serde_json::Value;

use crate::actors::connection::{self, ConnectionActor, Logout};
use crate::actors::conversation::{self, ConversationActor};
use crate::actors::group::{self, GroupActor};
use crate::actors::message::{self, MessageActor};
use crate::actors::relationship::RelationshipActor;
use crate::actors::{Peers, Shared};
use crate::events::EventBus;
use crate::logging::EngineLog;
use crate::plugins::Plugins;
use crate::{ApiError, CallbackMode, EngineConfig, EventHandler, Result};

struct Inner {
    peers: Peers,
    events: EventBus,
    system: actix::System,
    arbiter: actix::ArbiterHandle,
    thread: Mutex<Option<JoinHandle<()>>>,
    shut: AtomicBool,
}

impl Drop for Inner {
    /// The last handle is gone without `shutdown`: stop the actors (which drops and so closes
    /// the store) and the event thread rather than leak them.
    fn drop(&mut self) {
        if !self.shut.swap(true, Ordering::SeqCst) {
            self.system.stop();
            self.events.stop();
        }
    }
}

/// A cheap, cloneable, `Send + Sync` handle to one running engine (one SDK instance). Its actors
/// run on the engine's own thread; the async methods work from any executor.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

fn start_actors(shared: Shared, log: Arc<EngineLog>, plugins: Arc<Plugins>) -> Peers {
    let conn_ctx = Context::<ConnectionActor>::new();
    let msg_ctx = Context::<MessageActor>::new();
    let conv_ctx = Context::<ConversationActor>::new();
    let group_ctx = Context::<GroupActor>::new();
    let status = connection::StatusCell::default();
    let peers = Peers {
        conn: conn_ctx.address(),
        msg: msg_ctx.address(),
        conv: conv_ctx.address(),
        group: group_ctx.address(),
        rel: RelationshipActor::new(shared.clone()).start(),
        status: status.clone(),
        log,
        plugins,
    };
    conn_ctx.run(ConnectionActor::new(shared.clone(), status));
    msg_ctx.run(MessageActor::new(shared.clone()));
    conv_ctx.run(ConversationActor::new(shared.clone()));
    group_ctx.run(GroupActor::new(shared));
    peers.conn.do_send(connection::SetPeers(peers.clone()));
    peers.msg.do_send(message::SetPeers(peers.clone()));
    peers.conv.do_send(conversation::SetPeers(peers.clone()));
    peers.group.do_send(group::SetPeers(peers.clone()));
    peers
        .rel
        .do_send(crate::actors::relationship::SetPeers(peers.clone()));
    peers
}

/// The pending completion of [`Engine::call_with`]: answers 6013 if dropped unanswered (the
/// engine stopped with the call in flight), so the host's callback runs exactly once.
struct Completer {
    events: EventBus,
    done: Option<Box<dyn FnOnce(Result<Value>) + Send>>,
}

impl Completer {
    fn finish(&mut self, outcome: Result<Value>) {
        if let Some(done) = self.done.take() {
            self.events.complete(Box::new(move || done(outcome)));
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        self.finish(Err(ApiError::new(
            codes::ERR_SDK_NOT_INITIALIZED,
            "engine shut down before the call finished",
        )));
    }
}

impl Engine {
    /// Starts an engine (`init_sdk`): validates the config, starts the actor system on its own
    /// thread. Several engines may live in one process.
    pub fn init(config: EngineConfig) -> Result<Engine> {
        if config.sdk_app_id == 0 {
            return Err(ApiError::invalid_param("sdk_app_id is required"));
        }
        if !config.server_url.starts_with("ws://") && !config.server_url.starts_with("wss://") {
            return Err(ApiError::invalid_param(
                "server_url must be a ws:// or wss:// URL",
            ));
        }
        // A transport plugin needs its URL; whether it loaded is decided at connect time (with
        // the fallback to WebSocket when allowed).
        crate::transport::select(&config, false)?;
        if let Some(p) = config.platform.as_deref()
            && !matches!(
                p,
                "windows" | "mac" | "linux" | "android" | "ios" | "web" | "unity" | "unreal"
            )
        {
            return Err(ApiError::invalid_param(format!(
                "platform {p} is not known"
            )));
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            ApiError::new(
                codes::ERR_IO,
                format!("data_dir {}: {e}", config.data_dir.display()),
            )
        })?;
        let events = EventBus::start_with(config.callback_mode, config.pump_queue_capacity)
            .map_err(|e| ApiError::new(codes::ERR_SDK_INTERNAL, format!("event thread: {e}")))?;
        // Logging first (retention runs here), so that everything after is in the log.
        let log = match EngineLog::start(&config, &events) {
            Ok(log) => Arc::new(log),
            Err(e) => {
                events.stop();
                return Err(e);
            }
        };
        // Plugins that fail to load are logged and listed, never fatal (see `plugins`).
        let plugins = Arc::new(log.in_scope(|| Plugins::load(&config)));
        let (dispatch, span) = (log.dispatch(), log.span());
        let shared = Shared {
            config: Arc::new(config),
            events: events.clone(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("chime-engine".into())
            .spawn(move || {
                // This thread runs every actor: it logs to this engine's files, for its life.
                chime_xlog::set_thread_default(&dispatch);
                let _span = span.entered();
                let sys = actix::System::new();
                let peers = sys.block_on(async move { start_actors(shared, log, plugins) });
                let _ = tx.send((peers, actix::System::current(), actix::Arbiter::current()));
                if let Err(e) = sys.run() {
                    tracing::error!("engine system: {e}");
                }
            })
            .map_err(|e| ApiError::new(codes::ERR_SDK_INTERNAL, format!("engine thread: {e}")))?;
        let (peers, system, arbiter) = rx
            .recv()
            .map_err(|_| ApiError::new(codes::ERR_SDK_INTERNAL, "engine thread died at start"))?;
        Ok(Engine {
            inner: Arc::new(Inner {
                peers,
                events,
                system,
                arbiter,
                thread: Mutex::new(Some(thread)),
                shut: AtomicBool::new(false),
            }),
        })
    }

    /// Calls one API method by name with a JSON params object (the one dispatch table).
    pub async fn call(&self, method: &str, params: Value) -> Result<Value> {
        if self.inner.shut.load(Ordering::SeqCst) {
            return Err(ApiError::new(
                codes::ERR_SDK_NOT_INITIALIZED,
                "engine shut down",
            ));
        }
        let peers = &self.inner.peers;
        let call = async {
            tracing::debug!(method, "call");
            let result = crate::dispatch::dispatch(peers, &self.inner.events, method, params).await;
            if let Err(e) = &result {
                tracing::debug!(method, code = e.code, "call failed: {}", e.desc);
            }
            result
        };
        peers.log.scope_future(call).await
    }

    /// [`Engine::call`] for hosts without an executor: blocks the calling thread until the answer.
    /// Must not be called from an engine thread (e.g. inside an event handler).
    pub fn call_blocking(&self, method: &str, params: Value) -> Result<Value> {
        let (tx, rx) = std::sync::mpsc::channel();
        let engine = self.clone();
        let method = method.to_owned();
        let accepted = self.inner.arbiter.spawn(async move {
            let _ = tx.send(engine.call(&method, params).await);
        });
        if !accepted {
            return Err(ApiError::new(
                codes::ERR_SDK_NOT_INITIALIZED,
                "engine shut down",
            ));
        }
        rx.recv().unwrap_or_else(|_| {
            Err(ApiError::new(
                codes::ERR_SDK_NOT_INITIALIZED,
                "engine shut down",
            ))
        })
    }

    /// Sets (or clears) the handler receiving every event in order: on the engine's event thread
    /// (`callback_mode: "thread"`) or inside [`Engine::poll`] (`"pump"`).
    pub fn set_event_handler(&self, handler: Option<EventHandler>) {
        self.inner.events.set_handler(handler);
    }

    /// The engine's callback mode.
    pub fn callback_mode(&self) -> CallbackMode {
        self.inner.events.mode()
    }

    /// Calls a method and hands the outcome to `done`, delivered like an event: in order with
    /// the events, on the event thread (thread mode) or inside [`Engine::poll`] (pump mode).
    /// `done` runs exactly once: with the answer, or with 6013 if the engine shuts down first.
    /// Fails (without calling `done`) only if the engine is already shut down.
    pub fn call_with<F>(&self, method: &str, params: Value, done: F) -> Result<()>
    where
        F: FnOnce(Result<Value>) + Send + 'static,
    {
        let shut = || ApiError::new(codes::ERR_SDK_NOT_INITIALIZED, "engine shut down");
        if self.inner.shut.load(Ordering::SeqCst) {
            return Err(shut());
        }
        let guard = Completer {
            events: self.inner.events.clone(),
            done: Some(Box::new(done)),
        };
        let engine = self.clone();
        let method = method.to_owned();
        let accepted = self.inner.arbiter.spawn(async move {
            let mut guard = guard;
            let outcome = engine.call(&method, params).await;
            guard.finish(outcome);
        });
        // A refused spawn dropped the guard, which answered 6013 through the queue.
        let _ = accepted;
        Ok(())
    }

    /// Pump mode: runs up to `max` queued events and call completions on the calling thread, in
    /// order; returns how many ran (thread mode: 0).
    pub fn poll(&self, max: usize) -> usize {
        self.inner.events.poll(max)
    }

    /// Pump mode: how many events and completions wait for [`Engine::poll`].
    pub fn pending(&self) -> usize {
        self.inner.events.pending()
    }

    /// `un_init_sdk`: logs out if logged in, stops the actors, flushes and closes the store, joins
    /// the engine thread, writes and closes the log. Later calls on any clone answer 6013.
    pub async fn shutdown(&self) {
        if self.inner.shut.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self.inner.peers.conn.send(Logout).await;
        self.inner.system.stop();
        let thread = self.inner.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
        // This engine's plugin instances go; the last log lines reach the file (and the
        // listener) before the event queue stops.
        self.inner.peers.plugins.close();
        self.inner.peers.log.close();
        self.inner.events.stop();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(dir: &std::path::Path) -> EngineConfig {
        serde_json::from_value(json!({
            "sdk_app_id": 1_400_000_000u64,
            "server_url": "ws://127.0.0.1:1/ws",
            "data_dir": dir,
        }))
        .unwrap()
    }

    /// Two engines in one process, driven without an executor; after shutdown every clone
    /// answers 6013.
    #[test]
    fn several_engines_blocking_calls_and_shutdown() {
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let a = Engine::init(config(d1.path())).unwrap();
        let b = Engine::init(config(d2.path())).unwrap();
        assert_eq!(
            a.call_blocking("get_version", json!({})).unwrap(),
            json!({"version": crate::VERSION})
        );
        assert_eq!(
            b.call_blocking("get_login_status", json!({})).unwrap(),
            json!({"status": "logout"})
        );
        assert_eq!(
            a.call_blocking(
                "send_c2c_text_message",
                json!({"text": "x", "user_id": "bob"})
            )
            .unwrap_err()
            .code,
            codes::ERR_SDK_NOT_LOGGED_IN
        );
        let created = b
            .call_blocking("create_text_message", json!({"text": "hi"}))
            .unwrap();
        assert_eq!(created["status"], "sending");
        assert_eq!(created["elem_list"][0]["text"], "hi");
        assert_eq!(
            a.call_blocking("no_such_method", json!({})).unwrap_err(),
            ApiError::new(
                codes::ERR_INVALID_PARAMETERS,
                "unknown method: no_such_method"
            )
        );
        // A failed connection answers the login with a network code and leaves us logged out.
        let err = a
            .call_blocking("login", json!({"user_id": "alice", "user_sig": "sig"}))
            .unwrap_err();
        assert_eq!(err.code, codes::ERR_NET_CONNECT_FAILED);
        assert_eq!(
            a.call_blocking("get_login_status", json!({})).unwrap(),
            json!({"status": "logout"})
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(a.shutdown());
        let clone = a.clone();
        assert_eq!(
            clone
                .call_blocking("get_version", json!({}))
                .unwrap_err()
                .code,
            codes::ERR_SDK_NOT_INITIALIZED
        );
        assert_eq!(
            b.call_blocking("get_version", json!({})).unwrap(),
            json!({"version": crate::VERSION})
        );
        rt.block_on(b.shutdown());
    }
}
