//! The host's error type: every way loading or calling a plugin can fail, each naming the plugin.

use std::path::PathBuf;
use std::time::Duration;

/// A plugin failed to load or a call into it failed. Every variant names the plugin (by path when
/// its name is not known yet), so the engine can report it as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// No file at the configured path.
    #[error("plugin {path}: file not found")]
    NotFound {
        /// The configured path.
        path: PathBuf,
    },
    /// The dynamic loader refused the file (not a shared library, wrong architecture, missing
    /// dependency).
    #[error("plugin {path}: cannot load library: {reason}")]
    LoadFailed {
        /// The configured path.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// The library does not export `chime_plugin_entry`: it is not a Chime plugin.
    #[error(
        "plugin {path}: missing entry symbol `chime_plugin_entry` (not a Chime plugin): {reason}"
    )]
    MissingSymbol {
        /// The configured path.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// The declaration is malformed (null, too small, bad name, null vtable or function).
    #[error("plugin {path}: invalid declaration: {reason}")]
    InvalidDeclaration {
        /// The configured path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The plugin was built for an ABI this host does not speak.
    #[error(
        "plugin {name} ({path}): ABI {found_major}.{found_minor} is not compatible with the host's \
         ABI {host_major}.{host_minor} (same major and a minor no newer than the host's required)"
    )]
    AbiMismatch {
        /// The plugin's declared name.
        name: String,
        /// The configured path.
        path: PathBuf,
        /// The plugin's ABI major.
        found_major: u32,
        /// The plugin's ABI minor.
        found_minor: u32,
        /// The host's ABI major.
        host_major: u32,
        /// The host's ABI minor.
        host_minor: u32,
    },
    /// The plugin is of a kind this host cannot use (reserved or unknown).
    #[error("plugin {name} ({path}): kind {kind} is not supported by this host")]
    UnsupportedKind {
        /// The plugin's declared name.
        name: String,
        /// The configured path.
        path: PathBuf,
        /// The declared kind value.
        kind: u32,
    },
    /// The plugin's own `create` refused its config (or panicked, or timed out).
    #[error("plugin {name} ({path}): init failed: {message}")]
    InitFailed {
        /// The plugin's declared name.
        name: String,
        /// The configured path.
        path: PathBuf,
        /// The plugin's message.
        message: String,
    },
    /// A call returned an error status.
    #[error("plugin {name}: call failed (status {status}): {message}")]
    CallFailed {
        /// The plugin's name.
        name: String,
        /// The `CHIME_STATUS_*` code.
        status: i32,
        /// The plugin's message.
        message: String,
    },
    /// A call panicked inside the plugin (caught at the boundary).
    #[error("plugin {name}: panicked: {message}")]
    Panicked {
        /// The plugin's name.
        name: String,
        /// The panic message.
        message: String,
    },
    /// A call did not return in time; its thread is abandoned.
    #[error("plugin {name}: call timed out after {timeout:?}")]
    TimedOut {
        /// The plugin's name.
        name: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The plugin failed too many times in a row and its capability is switched off.
    #[error("plugin {name}: disabled after {failures} consecutive failures (last: {last_error})")]
    Disabled {
        /// The plugin's name.
        name: String,
        /// How many failures in a row.
        failures: u32,
        /// The last failure.
        last_error: String,
    },
    /// A transport plugin's connection failed on the network (reported by the engine: closed or
    /// timed out before the server answered the login). Counts towards disabling the plugin like
    /// a failed call.
    #[error("plugin {name}: network failure: {reason}")]
    Network {
        /// The plugin's name.
        name: String,
        /// What failed.
        reason: String,
    },
    /// The plugin answered something the ABI does not allow (unknown action, non-UTF-8 text).
    #[error("plugin {name}: invalid result: {reason}")]
    InvalidResult {
        /// The plugin's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The host could not start a thread to run the call.
    #[error("plugin {name}: cannot start a call thread: {reason}")]
    Thread {
        /// The plugin's name.
        name: String,
        /// The OS error.
        reason: String,
    },
}
