//! The APNs provider: Apple's documented provider API over HTTP/2 with token-based
//! authentication.
//!
//! `POST <base>/3/device/<device token>` with `authorization: bearer <JWT>` (ES256, header
//! `{alg, kid}`, claims `{iss: team id, iat}`, reused for 50 minutes: Apple refuses tokens older
//! than an hour and refreshes more often than every 20 minutes), `apns-topic` (the bundle id;
//! `.voip` appended for VoIP pushes), `apns-push-type` (`alert` or `voip`), `apns-priority: 10`
//! and a JSON body `{"aps": {"alert": {"title", "body"}, "badge"?, "sound"}, "ext",
//! "conversation_id", "msg_id", "sender"}`. 200 is success; 410 and 400 `BadDeviceToken` /
//! `Unregistered` mean the token is dead; 403 `ExpiredProviderToken` renews the JWT and retries;
//! 429 and 5xx are retried.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Delivery, Provider, SendError, SendFuture, answer};
use crate::error::ServerError;
use crate::push::jwt::SigningKey;

/// How long one provider token is used.
const TOKEN_LIFETIME: Duration = Duration::from_secs(50 * 60);

/// What identifies the app to APNs.
#[derive(Debug, Clone)]
pub struct ApnsSettings {
    /// Base URL (`https://api.push.apple.com`).
    pub base_url: String,
    /// Team id (`iss`).
    pub team_id: String,
    /// Key id (`kid`).
    pub key_id: String,
    /// Bundle id (`apns-topic`).
    pub topic: String,
}

/// Sends to APNs.
#[derive(Debug)]
pub struct ApnsProvider {
    settings: ApnsSettings,
    key: SigningKey,
    client: reqwest::Client,
    token: Mutex<Option<(String, Instant)>>,
}

impl ApnsProvider {
    /// A provider for `settings`, signing with the `.p8` key `pem`.
    pub fn new(settings: ApnsSettings, pem: &str, timeout: Duration) -> Result<Self, ServerError> {
        let key = SigningKey::es256_from_pem(pem)
            .map_err(|e| ServerError::Config(format!("push apns key: {e}")))?;
        // APNs speaks HTTP/2 only.
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .timeout(timeout)
            .build()
            .map_err(|e| ServerError::Config(format!("push apns client: {e}")))?;
        Ok(Self {
            settings,
            key,
            client,
            token: Mutex::new(None),
        })
    }

    /// The current provider token, signing a new one when it is missing or old.
    fn token(&self) -> Result<String, SendError> {
        let mut slot = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((t, at)) = slot.as_ref()
            && at.elapsed() < TOKEN_LIFETIME
        {
            return Ok(t.clone());
        }
        let t = self
            .key
            .sign(
                json!({"kid": self.settings.key_id}),
                &json!({"iss": self.settings.team_id, "iat": crate::usersig::now_secs()}),
            )
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        *slot = Some((t.clone(), Instant::now()));
        Ok(t)
    }

    fn forget_token(&self) {
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The JSON body of one push.
pub fn payload(d: &Delivery) -> Value {
    let n = &d.notification;
    let mut aps = json!({
        "alert": {"title": n.title, "body": n.desc},
        "sound": if n.ios_sound.is_empty() { "default" } else { n.ios_sound.as_str() },
    });
    if let Some(b) = n.badge {
        aps["badge"] = json!(b);
    }
    json!({
        "aps": aps,
        "ext": n.ext,
        "conversation_id": n.conversation_id,
        "msg_id": n.msg_id,
        "sender": n.sender,
    })
}

/// Whether `d` is a VoIP push.
fn is_voip(d: &Delivery) -> bool {
    d.notification.ios_push_type.eq_ignore_ascii_case("voip")
}

/// APNs' `reason` of a failure body.
fn reason(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Provider for ApnsProvider {
    fn kind(&self) -> &'static str {
        "apns"
    }

    fn send<'a>(&'a self, d: &'a Delivery) -> SendFuture<'a> {
        Box::pin(async move {
            let token = self.token()?;
            let (push_type, topic) = if is_voip(d) {
                ("voip", format!("{}.voip", self.settings.topic))
            } else {
                ("alert", self.settings.topic.clone())
            };
            let url = format!(
                "{}/3/device/{}",
                self.settings.base_url.trim_end_matches('/'),
                d.device.token
            );
            let sent = self
                .client
                .post(url)
                .header("authorization", format!("bearer {token}"))
                .header("apns-topic", topic)
                .header("apns-push-type", push_type)
                .header("apns-priority", "10")
                .header("content-type", "application/json")
                .body(payload(d).to_string())
                .send()
                .await;
            let (status, body) = answer(sent).await?;
            match (status, reason(&body).as_str()) {
                (200, _) => Ok(()),
                (400, "BadDeviceToken" | "DeviceTokenNotForTopic") | (410, _) => {
                    Err(SendError::Unregistered(format!("HTTP {status}: {body}")))
                }
                (403, "ExpiredProviderToken" | "InvalidProviderToken") => {
                    self.forget_token();
                    Err(SendError::Retry(format!("HTTP {status}: {body}")))
                }
                _ => Err(SendError::from_status(status, &body)),
            }
        })
    }
}
