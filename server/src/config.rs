//! Server configuration: what the command line gives (listen address, data dir, apps) plus the
//! tunables of the TOML `--config` file, with the defaults of the seed. One struct so that the
//! binary and an embedding test/example configure the server the same way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::ServerError;

/// How many sessions one user may hold at once (the seed's multi-device login policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MultiDevicePolicy {
    /// One session per platform class: native (Windows, Mac, Linux, Android, iOS, Unity, Unreal)
    /// and web. A new login kicks the older session of the same class.
    #[default]
    PlatformClass,
    /// One session per platform.
    AllPlatforms,
    /// One session in all.
    Single,
    /// No limit.
    Unlimited,
}

/// The format of the server's log on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event (default).
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`, `span`, `spans`), for
    /// log collectors.
    Json,
}

/// Tunables from the TOML `--config` file. Every key is optional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tunables {
    /// Multi-device policy (`platform_class`, `all_platforms`, `single`, `unlimited`).
    pub multi_device_policy: MultiDevicePolicy,
    /// Heartbeat interval the client is told to use, in milliseconds (default 15,000).
    pub heartbeat_interval_ms: u64,
    /// A connection silent for this long is closed (default 3 heartbeat intervals).
    pub idle_timeout_ms: Option<u64>,
    /// Messages older than this many days are not served and may be pruned (default 7).
    pub history_retention_days: u64,
    /// Revoke window in seconds (default 120; used by a later issue).
    pub revoke_window_secs: u64,
    /// Group messages per second per group before dropping by priority (default 40).
    pub group_message_rate: u32,
    /// Largest frame in bytes, both directions (default 4 MiB).
    pub max_frame_bytes: usize,
    /// The administrator identifier (default "administrator").
    pub admin_identifier: String,
    /// Member limits per group type (defaults: Work 200, Public 2,000, Meeting 6,000,
    /// Community 100,000, AVChatRoom unlimited = 0).
    pub group_member_limits: HashMap<String, u32>,
    /// Most groups one user may join (default 1,000).
    pub max_joined_groups: u32,
    /// Seconds a user may stay offline (no session left) before leaving the AVChatRooms they
    /// joined (default 30: a reconnect within it keeps the membership).
    pub live_room_offline_grace_secs: u64,
    /// Outbound frames queued per connection before it is considered too slow and closed.
    pub outbound_queue: usize,
    /// sled page cache in bytes (default 64 MiB).
    pub store_cache_bytes: u64,
    /// Log format on stderr (`text` or `json`; `--log-format` wins).
    pub log_format: LogFormat,
    /// Log filter on stderr: a level (`error warn info debug trace`) or `tracing` directives
    /// (`info,chime_server::gateway=debug`). `--log-level` and then `RUST_LOG` win; default
    /// `info`.
    pub log_level: Option<String>,
    /// The app backend's callbacks (`[webhook]`: url, timeout_ms, before_send, after_send,
    /// block_on_failure); none by default.
    pub webhook: Option<crate::webhooks::WebhookConfig>,
    /// Offline push (`[push]`: queue, retries, `[[push.provider]]` per business id; docs/push.md);
    /// none by default.
    pub push: Option<crate::push::PushConfig>,
    /// The URL clients reach the HTTP endpoint at (the file store's base URL in upload tickets
    /// and download URLs), e.g. behind a proxy; default `http://<--http-listen address>`.
    pub http_public_url: Option<String>,
    /// The file store (`[files]`: store_dir, retention_days, size limits, content types, token
    /// and URL validity; docs/files.md).
    pub files: crate::files::FilesConfig,
    /// Most topics in one community (default 1,000).
    pub community_max_topics: u32,
    /// Most permission groups in one community (default 20).
    pub community_max_permission_groups: u32,
    /// Groups inactive (no stored message or change) for this many seconds are recycled by the
    /// system (`crate::groups::recycle`); 0 = never (default).
    pub group_recycle_idle_secs: u64,
    /// How often the server looks for groups to recycle, in seconds (default 3,600).
    pub group_recycle_scan_secs: u64,
}

impl Default for Tunables {
    fn default() -> Self {
        Self {
            multi_device_policy: MultiDevicePolicy::default(),
            heartbeat_interval_ms: 15_000,
            idle_timeout_ms: None,
            history_retention_days: 7,
            revoke_window_secs: 120,
            group_message_rate: chime_proto::limits::GROUP_MESSAGES_PER_SECOND,
            max_frame_bytes: chime_proto::frame::DEFAULT_MAX_FRAME_BYTES,
            admin_identifier: "administrator".into(),
            group_member_limits: HashMap::new(),
            max_joined_groups: 1000,
            live_room_offline_grace_secs: 30,
            outbound_queue: 8192,
            store_cache_bytes: 64 * 1024 * 1024,
            log_format: LogFormat::Text,
            log_level: None,
            webhook: None,
            push: None,
            http_public_url: None,
            files: crate::files::FilesConfig::default(),
            community_max_topics: 1000,
            community_max_permission_groups: 20,
            group_recycle_idle_secs: 0,
            group_recycle_scan_secs: 3600,
        }
    }
}

impl Tunables {
    /// Parses a TOML document.
    pub fn from_toml(text: &str) -> Result<Self, ServerError> {
        toml::from_str(text).map_err(|e| ServerError::Config(e.to_string()))
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))?;
        Self::from_toml(&text)
    }

    /// The idle timeout in force.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(
            self.idle_timeout_ms
                .unwrap_or(self.heartbeat_interval_ms.saturating_mul(3)),
        )
    }

    /// The member limit of a group type (0 = unlimited).
    pub fn member_limit(&self, group_type: &str) -> u32 {
        if let Some(n) = self.group_member_limits.get(group_type) {
            return *n;
        }
        match group_type {
            "Work" => 200,
            "Public" => 2000,
            "Meeting" => 6000,
            "Community" => 100_000,
            _ => 0,
        }
    }

    /// The retention as milliseconds.
    pub fn retention_ms(&self) -> i64 {
        i64::try_from(self.history_retention_days.saturating_mul(86_400_000)).unwrap_or(i64::MAX)
    }
}

/// Everything needed to start a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address of the WebSocket endpoint (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Directory of the sled store.
    pub data_dir: PathBuf,
    /// SDKAppID → secret key.
    pub apps: HashMap<u64, String>,
    /// The tunables.
    pub tunables: Tunables,
    /// The QUIC endpoint (`--quic-listen`); `None` = WebSocket only.
    pub quic: Option<crate::quic::QuicSettings>,
    /// Address of the HTTP endpoint (REST admin API; `--http-listen`); `None` = none.
    pub http_listen: Option<SocketAddr>,
}

impl ServerConfig {
    /// A config on `listen` with `data_dir`, no apps and default tunables.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            data_dir: data_dir.into(),
            apps: HashMap::new(),
            tunables: Tunables::default(),
            quic: None,
            http_listen: None,
        }
    }

    /// Adds an app.
    pub fn with_app(mut self, sdk_app_id: u64, key: impl Into<String>) -> Self {
        self.apps.insert(sdk_app_id, key.into());
        self
    }
}

/// Parses `ID:KEY` (the `--app` flag).
pub fn parse_app(s: &str) -> Result<(u64, String), ServerError> {
    let (id, key) = s
        .split_once(':')
        .ok_or_else(|| ServerError::Config(format!("--app {s:?}: expected ID:KEY")))?;
    let id = id
        .parse::<u64>()
        .map_err(|e| ServerError::Config(format!("--app {s:?}: bad SDKAppID: {e}")))?;
    if key.is_empty() {
        return Err(ServerError::Config(format!("--app {s:?}: empty key")));
    }
    Ok((id, key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_keys_and_defaults() {
        let t = Tunables::from_toml(
            "multi_device_policy = \"single\"\nheartbeat_interval_ms = 1000\n\
             [group_member_limits]\nWork = 3\n",
        )
        .unwrap();
        assert_eq!(t.multi_device_policy, MultiDevicePolicy::Single);
        assert_eq!(t.idle_timeout(), Duration::from_millis(3000));
        assert_eq!(t.member_limit("Work"), 3);
        assert_eq!(t.member_limit("Public"), 2000);
        assert_eq!(t.group_message_rate, 40);
        assert_eq!(t.history_retention_days, 7);
        assert!(Tunables::from_toml("bogus = 1").is_err());
        assert_eq!(
            parse_app("1400000000:k:ey").unwrap(),
            (1_400_000_000, "k:ey".to_owned())
        );
        assert!(parse_app("x:k").is_err());
    }
}
