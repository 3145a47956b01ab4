//! System methods: the log level and listener (issue 9) and the plugins (issue 5). They act on
//! the engine's own services rather than on an actor, and all work before login.
//!
//! api.md extensions (documented in `docs/logging.md` and `docs/plugins.md`):
//! - `set_log_level {log_level}` → `{}` (the seed's `setLogLevel`; `none debug info warn error`);
//! - `add_log_listener` / `remove_log_listener` → `{}` (the seed's `setLogListener`: `on_log`
//!   events on or off; the config's `log_listener` sets the initial state);
//! - `get_loaded_plugins` → `{plugin_list: [{name, kind, version, path, is_disabled,
//!   failure_count, last_error}], failed_plugin_list: [{path, code, desc}]}`.

use serde_json::{Value, json};

use super::params::*;
use crate::actors::Peers;
use crate::events::EventBus;
use crate::{ApiError, LogLevel, Result};

/// The methods this area answers.
pub(super) const METHODS: &[&str] = &[
    "set_log_level",
    "add_log_listener",
    "remove_log_listener",
    "get_loaded_plugins",
];

/// The methods of this area that work before login (all of them).
pub(super) const PRE_LOGIN: &[&str] = METHODS;

/// Calls one method of this area.
pub(super) async fn call(
    peers: &Peers,
    _events: &EventBus,
    method: &str,
    p: Value,
) -> Result<Value> {
    match method {
        "set_log_level" => {
            let text = req_str(&p, "log_level")?;
            let level: LogLevel = text.parse().map_err(|_| {
                ApiError::invalid_param(format!(
                    "log_level {text:?} is not one of none, debug, info, warn, error"
                ))
            })?;
            peers.log.set_level(level);
            tracing::info!(log_level = %level, "set_log_level");
            Ok(json!({}))
        }
        "add_log_listener" | "remove_log_listener" => {
            peers.log.set_listener(method.starts_with("add"));
            Ok(json!({}))
        }
        "get_loaded_plugins" => Ok(peers.plugins.to_json()),
        _ => Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    }
}
