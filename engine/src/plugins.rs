//! The engine's plugins (issue 5, ARCHITECTURE.md §4): the configured `plugins: [{path, config}]`
//! are loaded at `init_sdk` by a [`PluginHost`] of this engine, and reached from here by the parts
//! that use them (the content filter before the outbox, the transport, the uploader, the
//! translator and speech-to-text behind `translate_text` / `convert_voice_to_text`) and by
//! `get_loaded_plugins`.
//!
//! A plugin that cannot load (missing file, not a plugin, wrong ABI, its own init failing) does
//! not fail `init_sdk`: the engine goes on without it, logs an error naming it, and lists it with
//! its error code and description in `get_loaded_plugins`' `failed_plugin_list`. Plugin calls run
//! on the host's call threads with a timeout (`plugin_call_timeout_ms`); a plugin that keeps
//! failing is disabled by the host, which degrades only its capability.
//!
//! Libraries are shared: two engines in one process loading the same path use one loaded library
//! (the host's process-wide registry), each with its own instance; none is ever unloaded.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chime_plugin_api::host::{
    ContentFilterPlugin, HostConfig, PluginError, PluginHost, PluginInfo, SpeechToTextPlugin,
    TranslatorPlugin, TransportPlugin, UploaderPlugin,
};
use chime_proto::codes;
use serde_json::{Value, json};

use crate::{ApiError, EngineConfig, PluginConfig};

/// A configured plugin that did not load.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadFailure {
    /// The configured path.
    pub path: PathBuf,
    /// The error (its description names the plugin).
    pub error: ApiError,
}

/// One engine's loaded plugins and the ones that failed to load.
#[derive(Debug)]
pub struct Plugins {
    /// `None` once closed (`un_init_sdk`): this engine's instances are gone.
    host: Mutex<Option<PluginHost>>,
    failures: Vec<LoadFailure>,
}

/// The API error of a plugin that failed to load: 7004 when the file is missing, 6017 (the
/// `plugins` entry is not usable) otherwise. The description is the host's, naming the plugin.
pub fn load_error(error: &PluginError) -> ApiError {
    let code = match error {
        PluginError::NotFound { .. } => codes::ERR_FILE_NOT_FOUND,
        _ => codes::ERR_INVALID_PARAMETERS,
    };
    ApiError::new(code, error.to_string())
}

/// The text a plugin receives as its config: the JSON of `config`, `{}` when absent.
fn config_text(plugin: &PluginConfig) -> String {
    match &plugin.config {
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}

impl Plugins {
    /// Loads every configured plugin in order (blocking: each plugin's `create` runs on a call
    /// thread, bounded by the call timeout). Failures are kept and logged, never fatal.
    pub fn load(config: &EngineConfig) -> Plugins {
        let host = PluginHost::new(HostConfig {
            call_timeout: Duration::from_millis(config.plugin_call_timeout_ms.max(1)),
            ..HostConfig::default()
        });
        let mut failures = Vec::new();
        for plugin in &config.plugins {
            match host.load(&plugin.path, &config_text(plugin)) {
                Ok(loaded) => {
                    let info = loaded.info();
                    tracing::info!(
                        name = %info.name,
                        kind = %info.kind,
                        version = %info.version,
                        path = %info.path.display(),
                        "plugin loaded"
                    );
                }
                Err(error) => {
                    tracing::error!(path = %plugin.path.display(), "plugin not loaded: {error}");
                    failures.push(LoadFailure {
                        path: plugin.path.clone(),
                        error: load_error(&error),
                    });
                }
            }
        }
        Plugins {
            host: Mutex::new(Some(host)),
            failures,
        }
    }

    fn host(&self) -> MutexGuard<'_, Option<PluginHost>> {
        match self.host.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// `un_init_sdk`: drops this engine's plugin instances (each is destroyed once the calls
    /// still running on it return; the libraries stay loaded for the process). Idempotent.
    pub fn close(&self) {
        let host = self.host().take();
        drop(host);
    }

    /// The plugins that loaded, in load order (none once closed).
    pub fn loaded(&self) -> Vec<PluginInfo> {
        self.host()
            .as_ref()
            .map(PluginHost::loaded_plugins)
            .unwrap_or_default()
    }

    /// The content filters, in load order.
    pub fn content_filters(&self) -> Vec<ContentFilterPlugin> {
        self.host()
            .as_ref()
            .map(PluginHost::content_filters)
            .unwrap_or_default()
    }

    /// The transport plugin named `name` (the config's `transport`), for the transport selection.
    #[allow(
        dead_code,
        reason = "for the transport selection (QUIC plugin), wired separately"
    )]
    pub fn transport(&self, name: &str) -> Option<TransportPlugin> {
        self.host().as_ref().and_then(|host| host.transport(name))
    }

    /// The uploader plugin, if one loaded (for rich media).
    #[allow(dead_code, reason = "for the media uploader, wired separately")]
    pub fn uploader(&self) -> Option<UploaderPlugin> {
        self.host().as_ref().and_then(PluginHost::uploader)
    }

    /// The translator plugin, if one loaded (`translate_text`).
    pub fn translator(&self) -> Option<TranslatorPlugin> {
        self.host().as_ref().and_then(PluginHost::translator)
    }

    /// The speech-to-text plugin, if one loaded (`convert_voice_to_text`).
    pub fn speech_to_text(&self) -> Option<SpeechToTextPlugin> {
        self.host().as_ref().and_then(PluginHost::speech_to_text)
    }

    /// `get_loaded_plugins`: `{plugin_list: [{name, kind, version, path, is_disabled,
    /// failure_count, last_error}], failed_plugin_list: [{path, code, desc}]}`.
    pub fn to_json(&self) -> Value {
        let loaded: Vec<Value> = self.loaded().iter().map(info_json).collect();
        let failed: Vec<Value> = self
            .failures
            .iter()
            .map(|f| {
                json!({
                    "path": f.path.display().to_string(),
                    "code": f.error.code,
                    "desc": f.error.desc,
                })
            })
            .collect();
        json!({ "plugin_list": loaded, "failed_plugin_list": failed })
    }
}

/// One loaded plugin as `get_loaded_plugins` lists it.
fn info_json(info: &PluginInfo) -> Value {
    json!({
        "name": info.name,
        "kind": info.kind.as_str(),
        "version": info.version,
        "path": info.path.display().to_string(),
        "is_disabled": info.status.disabled,
        "failure_count": info.status.total_failures,
        "last_error": info.status.last_error.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(plugins: Value) -> EngineConfig {
        serde_json::from_value(json!({
            "sdk_app_id": 1_400_000_000u64,
            "server_url": "ws://127.0.0.1:1/ws",
            "data_dir": "/nonexistent",
            "plugins": plugins,
        }))
        .unwrap()
    }

    #[test]
    fn a_missing_plugin_is_listed_with_7004_and_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("libnope.so");
        let not_a_library = dir.path().join("words.txt");
        std::fs::write(&not_a_library, "not a library").unwrap();
        let plugins = Plugins::load(&config(json!([
            {"path": missing, "config": {"x": 1}},
            {"path": not_a_library},
        ])));
        assert!(plugins.loaded().is_empty());
        let listed = plugins.to_json();
        assert_eq!(listed["plugin_list"], json!([]));
        let failed = listed["failed_plugin_list"].as_array().unwrap();
        assert_eq!(failed.len(), 2);
        assert_eq!(failed[0]["path"], missing.display().to_string());
        assert_eq!(failed[0]["code"], codes::ERR_FILE_NOT_FOUND);
        assert_eq!(
            failed[0]["desc"],
            format!("plugin {}: file not found", missing.display())
        );
        assert_eq!(failed[1]["code"], codes::ERR_INVALID_PARAMETERS);
        let desc = failed[1]["desc"].as_str().unwrap();
        assert!(
            desc.starts_with(&format!(
                "plugin {}: cannot load library",
                not_a_library.display()
            )),
            "{desc}"
        );
    }

    #[test]
    fn a_plugin_gets_its_config_as_json_text() {
        let with = PluginConfig {
            path: "p".into(),
            config: json!({"action": "block"}),
        };
        let without = PluginConfig {
            path: "p".into(),
            config: Value::Null,
        };
        assert_eq!(config_text(&with), r#"{"action":"block"}"#);
        assert_eq!(config_text(&without), "{}");
    }
}
