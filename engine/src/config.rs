//! The engine configuration: the `config_json` of `chime_create` / the params of `init_sdk`
//! (api.md §2).

use std::path::PathBuf;

use serde::Deserialize;

/// Log level (the seed's `V2TIMLogLevel`: `none debug info warn error`, default `debug`). The
/// same type as the logger's, so the config and `set_log_level` speak one set of names.
pub use chime_xlog::Level as LogLevel;

/// Where callbacks and events run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CallbackMode {
    /// Called on an engine thread.
    #[default]
    Thread,
    /// Queued until the host polls (`chime_poll`).
    Pump,
}

/// A plugin to load at init.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PluginConfig {
    /// Path of the plugin's shared library.
    pub path: PathBuf,
    /// The plugin's own configuration.
    #[serde(default)]
    pub config: serde_json::Value,
}

/// Engine configuration (api.md §2). Unknown fields are refused (6017) so typos surface.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// The app's SDKAppID.
    pub sdk_app_id: u64,
    /// Server endpoint, e.g. `ws://127.0.0.1:7700/ws`.
    pub server_url: String,
    /// Root of the local stores: `<data_dir>/<sdk_app_id>/<user_id>/`.
    pub data_dir: PathBuf,
    /// Directory for log files (default: `<data_dir>/logs`).
    #[serde(default)]
    pub log_dir: Option<PathBuf>,
    /// Log level.
    #[serde(default)]
    pub log_level: LogLevel,
    /// The seed's `logListener`: when true, every log line that passes the level is also
    /// delivered as an `on_log {level, content}` event (switchable later with
    /// `add_log_listener` / `remove_log_listener`).
    #[serde(default)]
    pub log_listener: bool,
    /// Day files in `log_dir` this many days old or older are removed at init (the seed keeps 7
    /// days); 0 keeps everything.
    #[serde(default = "default_log_retention_days")]
    pub log_retention_days: u32,
    /// Callback delivery mode.
    #[serde(default)]
    pub callback_mode: CallbackMode,
    /// Pump mode: how many events may wait for `chime_poll` before new ones are dropped (and one
    /// `on_events_dropped {count}` marks the gap). Call completions never count and never drop.
    #[serde(default = "default_pump_queue_capacity")]
    pub pump_queue_capacity: usize,
    /// Plugins to load.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// How long one plugin call may take before it counts as a failure (ms).
    #[serde(default = "default_plugin_call_timeout_ms")]
    pub plugin_call_timeout_ms: u64,
    /// `websocket` (default) or the name of a transport plugin.
    #[serde(default)]
    pub transport: Option<String>,
    /// Where the transport plugin connects, e.g. `quic://chat.example.com:7443` (required when
    /// `transport` names a plugin; `server_url` stays the WebSocket endpoint).
    #[serde(default)]
    pub transport_url: Option<String>,
    /// When the transport plugin cannot connect (or is not loaded), connect over WebSocket to
    /// `server_url` for the rest of the login session and emit `on_transport_fallback`
    /// (default true).
    #[serde(default = "default_transport_fallback")]
    pub transport_fallback: bool,
    /// `windows mac linux android ios web unity unreal` (default: from the OS).
    #[serde(default)]
    pub platform: Option<String>,
    /// How long one request waits for the server's answer before failing with 6012 (ms).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// How long `send_message` waits for the ack across disconnects before answering 9520 (ms).
    /// The message stays in the outbox and still goes out.
    #[serde(default = "default_send_timeout_ms")]
    pub send_timeout_ms: u64,
    /// First reconnect delay (ms); doubles per failed attempt (with jitter).
    #[serde(default = "default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    /// Largest reconnect delay (ms).
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// Connection establishment timeout (ms).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_pump_queue_capacity() -> usize {
    100_000
}

fn default_log_retention_days() -> u32 {
    7
}

fn default_plugin_call_timeout_ms() -> u64 {
    5_000
}

fn default_transport_fallback() -> bool {
    true
}

fn default_request_timeout_ms() -> u64 {
    15_000
}

fn default_send_timeout_ms() -> u64 {
    60_000
}

fn default_reconnect_min_ms() -> u64 {
    100
}

fn default_reconnect_max_ms() -> u64 {
    3_000
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}
