//! The `[push]` table of the config file: the queue, the retry policy, and one
//! `[[push.provider]]` per business id (the `business_id` a device registers with
//! `set_offline_push_config`), each naming its kind (`webhook`, `apns`, `fcm`) and settings.
//!
//! ```toml
//! [push]
//! max_attempts = 5
//! retry_base_ms = 500
//!
//! [[push.provider]]
//! business_id = 1
//! kind = "webhook"
//! url = "https://push-gateway.example.com/chime"
//!
//! [[push.provider]]
//! business_id = 2
//! kind = "apns"
//! team_id = "TEAMID1234"
//! key_id = "KEYID12345"
//! topic = "com.example.app"
//! private_key_path = "/etc/chime/AuthKey_KEYID12345.p8"
//!
//! [[push.provider]]
//! business_id = 3
//! kind = "fcm"
//! service_account_path = "/etc/chime/firebase-service-account.json"
//! ```

use serde::Deserialize;

use crate::error::ServerError;

/// The `[push]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// Messages waiting to be planned into pushes; past it new ones are dropped with a warning
    /// (default 10,000).
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Pushes being delivered at once (default 16).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Tries per push before it goes to the dead letters (default 5).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one (default 500 ms).
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// Longest delay between tries (default 60,000 ms).
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Time limit of one provider request (default 10,000 ms).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The providers, by business id.
    #[serde(default, rename = "provider")]
    pub providers: Vec<ProviderConfig>,
}

fn default_queue() -> usize {
    10_000
}
fn default_concurrency() -> usize {
    16
}
fn default_attempts() -> u32 {
    5
}
fn default_retry_base_ms() -> u64 {
    500
}
fn default_retry_max_ms() -> u64 {
    60_000
}
fn default_timeout_ms() -> u64 {
    10_000
}

/// One `[[push.provider]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProviderConfig {
    /// The business id devices register with.
    pub business_id: u32,
    /// Kind and settings.
    #[serde(flatten)]
    pub kind: ProviderKind,
}

/// The provider kinds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderKind {
    /// POST a JSON body to the app's own push gateway, signed with the app key like the
    /// webhooks.
    Webhook {
        /// The gateway's URL.
        url: String,
    },
    /// Apple Push Notification service over HTTP/2 with token (JWT ES256) authentication.
    Apns {
        /// Base URL (default `https://api.push.apple.com`; `https://api.sandbox.push.apple.com`
        /// for development builds).
        #[serde(default = "apns_default_url")]
        base_url: String,
        /// The Apple developer team id (`iss` of the token).
        team_id: String,
        /// The id of the signing key (`kid` of the token).
        key_id: String,
        /// The app's bundle id (`apns-topic`).
        topic: String,
        /// The `.p8` key (PKCS#8 PEM) inline ...
        #[serde(default)]
        private_key: String,
        /// ... or in a file.
        #[serde(default)]
        private_key_path: String,
    },
    /// Firebase Cloud Messaging HTTP v1 with a service account (OAuth2 JWT RS256 exchange).
    Fcm {
        /// Base URL of the FCM API (default `https://fcm.googleapis.com`).
        #[serde(default = "fcm_default_url")]
        base_url: String,
        /// The service account JSON inline (`project_id`, `client_email`, `private_key`,
        /// `token_uri`) ...
        #[serde(default)]
        service_account: String,
        /// ... or in a file.
        #[serde(default)]
        service_account_path: String,
    },
}

fn apns_default_url() -> String {
    "https://api.push.apple.com".into()
}

fn fcm_default_url() -> String {
    "https://fcm.googleapis.com".into()
}

/// Reads `inline`, else the file at `path`, naming `what` in errors.
pub(crate) fn inline_or_file(inline: &str, path: &str, what: &str) -> Result<String, ServerError> {
    if !inline.is_empty() {
        return Ok(inline.to_owned());
    }
    if path.is_empty() {
        return Err(ServerError::Config(format!("push: {what} is required")));
    }
    std::fs::read_to_string(path)
        .map_err(|e| ServerError::Config(format!("push: {what} {path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_parse_by_kind() {
        let t = crate::config::Tunables::from_toml(
            "[push]\nmax_attempts = 2\n\
             [[push.provider]]\nbusiness_id = 1\nkind = \"webhook\"\nurl = \"http://x/p\"\n\
             [[push.provider]]\nbusiness_id = 2\nkind = \"apns\"\nteam_id = \"T\"\n\
             key_id = \"K\"\ntopic = \"com.x\"\nprivate_key = \"pem\"\n",
        )
        .unwrap();
        let p = t.push.unwrap();
        assert_eq!(p.max_attempts, 2);
        assert_eq!(p.retry_base_ms, 500);
        assert_eq!(
            p.providers[0].kind,
            ProviderKind::Webhook {
                url: "http://x/p".into()
            }
        );
        match &p.providers[1].kind {
            ProviderKind::Apns {
                base_url, topic, ..
            } => {
                assert_eq!(base_url, "https://api.push.apple.com");
                assert_eq!(topic, "com.x");
            }
            other => panic!("not apns: {other:?}"),
        }
    }
}
