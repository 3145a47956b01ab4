//! `chime-engine`: the Chime client engine (the seed's "no-UI SDK").
//!
//! The engine is a set of actix actors, each owning one slice of state over a sled store
//! (ARCHITECTURE.md §2), behind a cheap cloneable [`Engine`] handle. Every public operation has one
//! JSON form — a method name and a params object answering a result object or `{code, desc}` —
//! served by one dispatch table ([`Engine::call`]); the C ABI, the daemon and the tests all go
//! through it. [`Sdk`] adds the `init_sdk` / `un_init_sdk` lifecycle around it (6013 before init).

mod config;
mod error;
mod event;
mod handle;
mod sdk;

pub use config::{CallbackMode, EngineConfig, LogLevel, PluginConfig};
pub use error::{ApiError, Result};
pub use event::{Event, EventHandler};
pub use handle::Engine;
pub use sdk::Sdk;

/// The engine's version string (`get_version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
