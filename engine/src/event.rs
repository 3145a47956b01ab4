//! Events: the seed's listener callbacks as `(name, data)` pairs, delivered in order.

use std::sync::Arc;

use serde_json::Value;

/// One event of api.md §5, e.g. `on_recv_new_message` with `{message}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The callback name in snake_case (`on_recv_new_message`, `on_kicked_offline`, ...).
    pub name: String,
    /// The event's data object.
    pub data: Value,
}

/// Receives the engine's events, one at a time and in order, on an engine thread.
pub type EventHandler = Arc<dyn Fn(Event) + Send + Sync>;
