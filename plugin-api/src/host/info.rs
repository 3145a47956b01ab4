//! What the host reports about its plugins: kind, name, version, path and health.

use std::path::PathBuf;

use crate::abi::{
    CHIME_PLUGIN_KIND_CONTENT_FILTER, CHIME_PLUGIN_KIND_SPEECH_TO_TEXT,
    CHIME_PLUGIN_KIND_TRANSLATOR, CHIME_PLUGIN_KIND_TRANSPORT, CHIME_PLUGIN_KIND_UPLOADER,
};

/// The kinds this host can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginKind {
    /// `CHIME_PLUGIN_KIND_TRANSPORT`.
    Transport,
    /// `CHIME_PLUGIN_KIND_UPLOADER`.
    Uploader,
    /// `CHIME_PLUGIN_KIND_CONTENT_FILTER`.
    ContentFilter,
    /// `CHIME_PLUGIN_KIND_TRANSLATOR` (ABI 1.1).
    Translator,
    /// `CHIME_PLUGIN_KIND_SPEECH_TO_TEXT` (ABI 1.1).
    SpeechToText,
}

impl PluginKind {
    /// The name used in the JSON API (`get_loaded_plugins`): `transport`, `uploader`,
    /// `content_filter`, `translator`, `speech_to_text`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transport => "transport",
            Self::Uploader => "uploader",
            Self::ContentFilter => "content_filter",
            Self::Translator => "translator",
            Self::SpeechToText => "speech_to_text",
        }
    }

    /// The ABI constant.
    pub fn abi_value(self) -> u32 {
        match self {
            Self::Transport => CHIME_PLUGIN_KIND_TRANSPORT,
            Self::Uploader => CHIME_PLUGIN_KIND_UPLOADER,
            Self::ContentFilter => CHIME_PLUGIN_KIND_CONTENT_FILTER,
            Self::Translator => CHIME_PLUGIN_KIND_TRANSLATOR,
            Self::SpeechToText => CHIME_PLUGIN_KIND_SPEECH_TO_TEXT,
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plugin's health.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PluginStatus {
    /// Switched off after too many consecutive failures.
    pub disabled: bool,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Failures since load.
    pub total_failures: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// One loaded plugin, as `get_loaded_plugins` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// The declared name.
    pub name: String,
    /// The kind.
    pub kind: PluginKind,
    /// The declared version.
    pub version: String,
    /// The canonical path of the library.
    pub path: PathBuf,
    /// Health.
    pub status: PluginStatus,
}
