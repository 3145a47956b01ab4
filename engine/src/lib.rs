//! `chime-engine`: the Chime client engine (the seed's "no-UI SDK").
//!
//! The engine is a set of actix actors, each owning one slice of state over a sled store
//! (ARCHITECTURE.md §2), behind a cheap cloneable [`Engine`] handle. Every public operation has one
//! JSON form — a method name and a params object answering a result object or `{code, desc}` —
//! served by one dispatch table ([`Engine::call`]); the C ABI, the daemon and the tests all go
//! through it. [`Sdk`] adds the `init_sdk` / `un_init_sdk` lifecycle around it (6013 before init).
//!
//! Listeners: the advanced message listener (`on_recv_new_message`) is on from `init_sdk`; the
//! simple one (`on_recv_c2c_text_message`, ...) is off until `add_simple_msg_listener`. Both can
//! be switched with `add_/remove_{simple,advanced}_msg_listener`.
//!
//! Layers: [`store`] (trait + sled and in-memory backends), the I/O-free cores (`session`,
//! `sync_plan`), the message mapping (`codec`), the actors, the transport pump and the dispatch
//! table.

mod actors;
mod codec;
mod config;
mod dispatch;
mod error;
mod event;
mod events;
mod filter;
mod handle;
mod logging;
mod media;
mod model;
mod outbox;
mod plugins;
mod sdk;
mod search_index;
mod session;
pub mod store;
mod sync_plan;
mod transport;

pub use config::{CallbackMode, EngineConfig, LogLevel, PluginConfig};
pub use dispatch::method_names;
pub use error::{ApiError, Result};
pub use event::{Event, EventHandler};
pub use handle::Engine;
pub use sdk::Sdk;

/// The engine's version string (`get_version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
