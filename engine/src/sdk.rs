//! [`Sdk`]: the `init_sdk` / `un_init_sdk` lifecycle around an [`Engine`], as the front ends (C
//! ABI, daemon) see it: every call before `init_sdk` answers 6013.

use std::sync::Mutex;

use chime_proto::codes;
use serde_json::{Value, json};

use crate::{ApiError, Engine, EngineConfig, EventHandler, Result};

/// One SDK instance slot: empty until `init_sdk`, holding an [`Engine`] after.
#[derive(Default)]
pub struct Sdk {
    engine: Mutex<Option<Engine>>,
    handler: Mutex<Option<EventHandler>>,
}

impl Sdk {
    /// An uninitialised SDK.
    pub fn new() -> Self {
        Self::default()
    }

    /// The running engine, if initialised.
    pub fn engine(&self) -> Option<Engine> {
        self.engine.lock().map(|e| e.clone()).unwrap_or(None)
    }

    /// Sets the event handler, now and for engines initialised later.
    pub fn set_event_handler(&self, handler: Option<EventHandler>) {
        if let Ok(mut h) = self.handler.lock() {
            h.clone_from(&handler);
        }
        if let Some(engine) = self.engine() {
            engine.set_event_handler(handler);
        }
    }

    /// Calls a method with params given as JSON text; malformed JSON answers 6027.
    pub async fn call_json(&self, method: &str, params_json: &str) -> Result<Value> {
        let params = if params_json.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(params_json).map_err(|e| {
                ApiError::new(codes::ERR_INVALID_JSON, format!("malformed JSON: {e}"))
            })?
        };
        self.call(method, params).await
    }

    /// Calls a method: `init_sdk` and `un_init_sdk` here, everything else on the engine (6013
    /// before `init_sdk`).
    pub async fn call(&self, method: &str, params: Value) -> Result<Value> {
        match method {
            "init_sdk" => self.init(params).map(|()| json!({})),
            "un_init_sdk" => {
                let engine = self.engine.lock().ok().and_then(|mut e| e.take());
                if let Some(engine) = engine {
                    engine.shutdown().await;
                }
                Ok(json!({}))
            }
            _ => match self.engine() {
                Some(engine) => engine.call(method, params).await,
                None => Err(ApiError::new(
                    codes::ERR_SDK_NOT_INITIALIZED,
                    "not initialized",
                )),
            },
        }
    }

    fn init(&self, params: Value) -> Result<()> {
        let config: EngineConfig = serde_json::from_value(params)
            .map_err(|e| ApiError::invalid_param(format!("init_sdk config: {e}")))?;
        let mut slot = self
            .engine
            .lock()
            .map_err(|_| ApiError::new(codes::ERR_SDK_INTERNAL, "sdk lock poisoned"))?;
        if slot.is_some() {
            // The seed: a second init of an initialised SDK succeeds and changes nothing.
            return Ok(());
        }
        let engine = Engine::init(config)?;
        if let Ok(h) = self.handler.lock()
            && h.is_some()
        {
            engine.set_event_handler(h.clone());
        }
        *slot = Some(engine);
        Ok(())
    }
}
