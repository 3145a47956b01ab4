//! The FCM provider: Firebase Cloud Messaging's HTTP v1 API with a service account.
//!
//! Authorization is Google's OAuth2 service-account flow: a JWT (RS256, header `{alg, typ, kid}`,
//! claims `{iss: client_email, scope: firebase.messaging, aud: token_uri, iat, exp}`) is POSTed
//! to the account's `token_uri` as `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&
//! assertion=<JWT>`; the answer's `access_token` is reused until a minute before `expires_in`.
//! Each push is `POST <base>/v1/projects/<project_id>/messages:send` with `Authorization: Bearer
//! <access token>` and `{"message": {"token", "notification": {"title", "body"}, "data",
//! "android": {"notification": {...}}, "apns": {"payload": {"aps": {...}}}}}`. 200 is success;
//! 404 / `UNREGISTERED` means the token is dead; 401 renews the access token and retries; 429
//! and 5xx are retried.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Delivery, Provider, SendError, SendFuture, answer};
use crate::error::ServerError;
use crate::push::jwt::SigningKey;

/// The OAuth2 scope of FCM.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The grant type of the JWT bearer flow.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime asked for the assertion.
const ASSERTION_SECS: i64 = 3600;

/// The fields of a service account JSON this provider uses.
#[derive(Debug, Clone, Deserialize)]
struct ServiceAccount {
    project_id: String,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: String,
    #[serde(default = "default_token_uri")]
    token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

/// Sends to FCM.
#[derive(Debug)]
pub struct FcmProvider {
    base_url: String,
    account: ServiceAccount,
    key: SigningKey,
    client: reqwest::Client,
    access: Mutex<Option<(String, Instant)>>,
}

impl FcmProvider {
    /// A provider for the service account `json`, sending to `base_url`.
    pub fn new(base_url: &str, json: &str, timeout: Duration) -> Result<Self, ServerError> {
        let account: ServiceAccount = serde_json::from_str(json)
            .map_err(|e| ServerError::Config(format!("push fcm service account: {e}")))?;
        let key = SigningKey::rs256_from_pem(&account.private_key)
            .map_err(|e| ServerError::Config(format!("push fcm key: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ServerError::Config(format!("push fcm client: {e}")))?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            account,
            key,
            client,
            access: Mutex::new(None),
        })
    }

    fn cached(&self) -> Option<String> {
        let slot = self.access.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref()
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    fn forget(&self) {
        *self.access.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The signed assertion of the token exchange.
    fn assertion(&self) -> Result<String, SendError> {
        let now = crate::usersig::now_secs();
        let mut header = json!({"typ": "JWT"});
        if !self.account.private_key_id.is_empty() {
            header["kid"] = json!(self.account.private_key_id);
        }
        self.key
            .sign(
                header,
                &json!({
                    "iss": self.account.client_email,
                    "scope": SCOPE,
                    "aud": self.account.token_uri,
                    "iat": now,
                    "exp": now + ASSERTION_SECS,
                }),
            )
            .map_err(|e| SendError::Permanent(e.to_string()))
    }

    /// An access token: the cached one, or a new one from the token endpoint.
    async fn access_token(&self) -> Result<String, SendError> {
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        // The JWT is base64url and dots: nothing in it needs form escaping.
        let body = format!(
            "grant_type={}&assertion={}",
            GRANT_TYPE.replace(':', "%3A"),
            self.assertion()?
        );
        let sent = self
            .client
            .post(&self.account.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        let (status, text) = answer(sent).await?;
        if status != 200 {
            return Err(match SendError::from_status(status, &text) {
                // A refused assertion may be a clock skew or a revoked key: retry, then give up.
                SendError::Permanent(d) | SendError::Unregistered(d) => {
                    SendError::Retry(format!("token exchange: {d}"))
                }
                retry => retry,
            });
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| SendError::Retry(format!("token exchange answer: {e}")))?;
        let token = v["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| SendError::Retry("token exchange answer has no access_token".into()))?
            .to_owned();
        let secs = v["expires_in"].as_u64().unwrap_or(3600).saturating_sub(60);
        *self.access.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((token.clone(), Instant::now() + Duration::from_secs(secs)));
        Ok(token)
    }
}

/// The JSON body of one push.
pub fn payload(d: &Delivery) -> Value {
    let n = &d.notification;
    let mut android = json!({});
    if !n.android.fcm_channel_id.is_empty() {
        android["channel_id"] = json!(n.android.fcm_channel_id);
    }
    if !n.android_sound.is_empty() {
        android["sound"] = json!(n.android_sound);
    }
    if let Some(b) = n.badge {
        android["notification_count"] = json!(b);
    }
    let mut aps = json!({
        "sound": if n.ios_sound.is_empty() { "default" } else { n.ios_sound.as_str() },
    });
    if let Some(b) = n.badge {
        aps["badge"] = json!(b);
    }
    json!({
        "message": {
            "token": d.device.token,
            "notification": {"title": n.title, "body": n.desc},
            "data": {
                "ext": n.ext,
                "conversation_id": n.conversation_id,
                "msg_id": n.msg_id,
                "sender": n.sender,
                "seq": n.seq.to_string(),
            },
            "android": {"notification": android},
            "apns": {"payload": {"aps": aps}},
        }
    })
}

/// FCM's error status of a failure body (`UNREGISTERED`, `INVALID_ARGUMENT`, ...).
fn error_status(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["status"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Provider for FcmProvider {
    fn kind(&self) -> &'static str {
        "fcm"
    }

    fn send<'a>(&'a self, d: &'a Delivery) -> SendFuture<'a> {
        Box::pin(async move {
            let token = self.access_token().await?;
            let url = format!(
                "{}/v1/projects/{}/messages:send",
                self.base_url, self.account.project_id
            );
            let sent = self
                .client
                .post(url)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(payload(d).to_string())
                .send()
                .await;
            let (status, body) = answer(sent).await?;
            match (status, error_status(&body).as_str()) {
                (200, _) => Ok(()),
                (404, _) | (_, "UNREGISTERED") => {
                    Err(SendError::Unregistered(format!("HTTP {status}: {body}")))
                }
                (401, _) => {
                    self.forget();
                    Err(SendError::Retry(format!("HTTP {status}: {body}")))
                }
                _ => Err(SendError::from_status(status, &body)),
            }
        })
    }
}
