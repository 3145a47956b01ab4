//! The public [`Engine`] handle. SKELETON: the engine helper replaces the bodies; the signatures
//! are the contract the daemon, the C ABI and the tests code against.

use std::sync::Arc;

use chime_proto::codes;
use serde_json::Value;

use crate::{ApiError, EngineConfig, EventHandler, Result};

/// A cheap, cloneable, `Send + Sync` handle to one running engine (one SDK instance). Its actors
/// run on the engine's own thread; the async methods work from any executor.
#[derive(Clone)]
pub struct Engine {
    #[allow(dead_code)]
    inner: Arc<()>,
}

impl Engine {
    /// Starts an engine (`init_sdk`): validates the config, starts the actor system on its own
    /// thread. Several engines may live in one process.
    pub fn init(_config: EngineConfig) -> Result<Engine> {
        Err(ApiError::new(codes::ERR_NOT_AVAILABLE, "engine not built yet"))
    }

    /// Calls one API method by name with a JSON params object (the one dispatch table).
    pub async fn call(&self, method: &str, _params: Value) -> Result<Value> {
        Err(ApiError::new(
            codes::ERR_INVALID_PARAMETERS,
            format!("unknown method: {method}"),
        ))
    }

    /// [`Engine::call`] for hosts without an executor: blocks the calling thread until the answer.
    /// Must not be called from an engine thread (e.g. inside an event handler).
    pub fn call_blocking(&self, method: &str, params: Value) -> Result<Value> {
        let _ = (method, params);
        Err(ApiError::new(codes::ERR_NOT_AVAILABLE, "engine not built yet"))
    }

    /// Sets (or clears) the handler receiving every event in order on an engine thread.
    pub fn set_event_handler(&self, _handler: Option<EventHandler>) {}

    /// `un_init_sdk`: logs out if logged in, stops the actors, flushes and closes the store, joins
    /// the engine thread. Later calls on any clone answer 6013.
    pub async fn shutdown(&self) {}
}
