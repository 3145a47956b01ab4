//! The daemon's engines and clients: several named engines (one per account) shared by every
//! connected client, and the fan-out of their events.
//!
//! An engine is created by `init_sdk` addressed to a new name (or from the config file at
//! start-up) and removed by `un_init_sdk`; any other method addressed to a name without an engine
//! answers 6013, as a call before `init_sdk` does. Every event goes to every client as a
//! notification carrying the engine's name; answers go only to the client that asked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chime_engine::{ApiError, Event, Sdk};
use chime_proto::codes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::rpc;

/// Where a client's output lines go.
pub type ClientTx = mpsc::UnboundedSender<String>;

/// The engines and the clients of one daemon.
#[derive(Default)]
pub struct Hub {
    engines: Mutex<HashMap<String, Arc<Sdk>>>,
    clients: Arc<Mutex<HashMap<u64, ClientTx>>>,
    next_client: AtomicU64,
}

/// A registered client; unregistered on drop.
pub struct Client {
    id: u64,
    clients: Arc<Mutex<HashMap<u64, ClientTx>>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Ok(mut c) = self.clients.lock() {
            c.remove(&self.id);
        }
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// Registers a client: it gets every event from now on, until the returned guard drops.
    pub fn register(&self, tx: ClientTx) -> Client {
        let id = self.next_client.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut c) = self.clients.lock() {
            c.insert(id, tx);
        }
        Client {
            id,
            clients: self.clients.clone(),
        }
    }

    fn engine(&self, name: &str) -> Option<Arc<Sdk>> {
        self.engines.lock().ok()?.get(name).cloned()
    }

    /// The names of the engines, sorted.
    pub fn engine_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .engines
            .lock()
            .map(|e| e.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Runs one method on the engine named `engine`.
    pub async fn call(&self, engine: &str, method: &str, params: Value) -> Result<Value, ApiError> {
        match method {
            // Daemon-level (api.md §3 extension): the names of the hosted engines.
            "get_engine_list" => Ok(json!({ "engine_list": self.engine_names() })),
            "init_sdk" => self.init(engine, params).await,
            "un_init_sdk" => {
                let sdk = self.engines.lock().ok().and_then(|mut e| e.remove(engine));
                match sdk {
                    Some(sdk) => sdk.call("un_init_sdk", json!({})).await,
                    None => Ok(json!({})),
                }
            }
            _ => match self.engine(engine) {
                Some(sdk) => sdk.call(method, params).await,
                None => Err(ApiError::new(
                    codes::ERR_SDK_NOT_INITIALIZED,
                    format!("not initialized: no engine named {engine}"),
                )),
            },
        }
    }

    async fn init(&self, name: &str, params: Value) -> Result<Value, ApiError> {
        // The daemon delivers events itself, as they come; nobody would poll a pump queue.
        if params.get("callback_mode").and_then(Value::as_str) == Some("pump") {
            return Err(ApiError::invalid_param(
                "callback_mode: the daemon delivers events as notifications; use \"thread\"",
            ));
        }
        let (sdk, fresh) = {
            let mut engines = self
                .engines
                .lock()
                .map_err(|_| ApiError::new(codes::ERR_SDK_INTERNAL, "engine table poisoned"))?;
            match engines.get(name) {
                Some(sdk) => (sdk.clone(), false),
                None => {
                    let sdk = Arc::new(Sdk::new());
                    engines.insert(name.to_owned(), sdk.clone());
                    (sdk, true)
                }
            }
        };
        if fresh {
            let clients = self.clients.clone();
            let engine = name.to_owned();
            sdk.set_event_handler(Some(Arc::new(move |event: Event| {
                let line = rpc::event_line(&engine, &event.name, &event.data);
                if let Ok(clients) = clients.lock() {
                    for tx in clients.values() {
                        let _ = tx.send(line.clone());
                    }
                }
            })));
        }
        let result = sdk.call("init_sdk", params).await;
        if result.is_err() && fresh {
            // A failed first init leaves no engine behind under that name.
            if let Ok(mut engines) = self.engines.lock()
                && engines.get(name).is_some_and(|e| Arc::ptr_eq(e, &sdk))
            {
                engines.remove(name);
            }
        }
        result
    }

    /// Un-initialises every engine (logout, actors stopped, stores closed; the outbox stays on
    /// disk for the next start).
    pub async fn shutdown(&self) {
        let all: Vec<(String, Arc<Sdk>)> = self
            .engines
            .lock()
            .map(|mut e| e.drain().collect())
            .unwrap_or_default();
        for (name, sdk) in all {
            tracing::info!(engine = %name, "un-initialising");
            let _ = sdk.call("un_init_sdk", json!({})).await;
            sdk.set_event_handler(None);
        }
    }
}
