//! The daemon's config file (TOML, `--config FILE`): where to listen, the bearer token, and the
//! engines to start and log in at start-up.
//!
//! ```toml
//! listen = "127.0.0.1:7800"     # optional; --listen overrides
//! token = "a long random string" # required with --listen
//!
//! [[engine]]
//! name = "bot"                   # requests address it with "engine": "bot"
//! user_id = "bot"                # optional: log in at start-up
//! user_sig = "..."
//! [engine.config]                # the init_sdk config of api.md §2
//! sdk_app_id = 1400000000
//! server_url = "ws://127.0.0.1:7700/ws"
//! data_dir = "/var/lib/chimed/bot"
//! ```

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// Why the config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The TOML error.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// Two engines share a name, or a name is empty.
    #[error("engine names must be unique and 1 to 64 bytes: {0:?}")]
    EngineName(String),
}

/// The config file.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// `host:port` to serve WebSocket JSON-RPC on.
    #[serde(default)]
    pub listen: Option<String>,
    /// The bearer token WebSocket clients must send.
    #[serde(default)]
    pub token: Option<String>,
    /// Engines started at start-up.
    #[serde(default, rename = "engine")]
    pub engines: Vec<EngineEntry>,
}

/// One engine of the config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineEntry {
    /// The engine's name in requests and events.
    pub name: String,
    /// The `init_sdk` config (api.md §2), as a table.
    pub config: toml::Table,
    /// Log in as this user at start-up (with `user_sig`).
    #[serde(default)]
    pub user_id: Option<String>,
    /// The UserSig for `user_id`.
    #[serde(default)]
    pub user_sig: Option<String>,
}

impl EngineEntry {
    /// The `init_sdk` params as JSON.
    pub fn init_params(&self) -> Value {
        serde_json::to_value(&self.config).unwrap_or(Value::Null)
    }
}

impl DaemonConfig {
    /// Parses config text.
    pub fn parse(text: &str, path: &str) -> Result<DaemonConfig, ConfigError> {
        let config: DaemonConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(e),
        })?;
        let mut names = std::collections::HashSet::new();
        for e in &config.engines {
            if e.name.is_empty() || e.name.len() > 64 || !names.insert(e.name.as_str()) {
                return Err(ConfigError::EngineName(e.name.clone()));
            }
        }
        Ok(config)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<DaemonConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn engines_listen_and_token_parse_and_the_config_table_becomes_init_params() {
        let c = DaemonConfig::parse(
            r#"
            listen = "127.0.0.1:7800"
            token = "t"
            [[engine]]
            name = "bot"
            user_id = "bot"
            user_sig = "sig"
            [engine.config]
            sdk_app_id = 1400000000
            server_url = "ws://127.0.0.1:7700/ws"
            data_dir = "/tmp/bot"
            [[engine]]
            name = "other"
            config = { sdk_app_id = 1, server_url = "ws://x/ws", data_dir = "/tmp/o" }
            "#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.listen.as_deref(), Some("127.0.0.1:7800"));
        assert_eq!(c.token.as_deref(), Some("t"));
        assert_eq!(c.engines.len(), 2);
        assert_eq!(c.engines[0].user_id.as_deref(), Some("bot"));
        assert_eq!(
            c.engines[0].init_params(),
            json!({
                "sdk_app_id": 1_400_000_000u64,
                "server_url": "ws://127.0.0.1:7700/ws",
                "data_dir": "/tmp/bot",
            })
        );
        assert_eq!(c.engines[1].user_sig, None);
    }

    #[test]
    fn duplicate_names_and_unknown_keys_are_refused() {
        let dup = r#"
            [[engine]]
            name = "a"
            config = {}
            [[engine]]
            name = "a"
            config = {}
        "#;
        assert!(matches!(
            DaemonConfig::parse(dup, "x"),
            Err(ConfigError::EngineName(n)) if n == "a"
        ));
        assert!(matches!(
            DaemonConfig::parse("tokn = \"x\"", "x"),
            Err(ConfigError::Parse { .. })
        ));
    }
}
