//! The HTTP webhook provider: POSTs each push as JSON to the app's own push gateway, which
//! forwards it to the vendors it works with. Signed like the message webhooks
//! ([`crate::webhooks::sign`]): `X-Chime-Timestamp` and `X-Chime-Signature:
//! hex(HMAC-SHA256(app key, timestamp + "." + body))`. Any 2xx is success; 410 means the token is
//! dead; 408, 429 and 5xx are retried.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Delivery, Provider, SendError, SendFuture, answer};
use crate::error::ServerError;

/// The `CallbackCommand` of a push call.
pub const COMMAND: &str = "Push.OfflinePush";

/// Posts pushes to one URL.
#[derive(Debug)]
pub struct WebhookProvider {
    url: String,
    client: reqwest::Client,
}

impl WebhookProvider {
    /// A provider posting to `url`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, ServerError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ServerError::Config(format!("push webhook client: {e}")))?;
        Ok(Self {
            url: url.to_owned(),
            client,
        })
    }
}

/// The JSON body of one push.
pub fn payload(d: &Delivery) -> Value {
    let n = &d.notification;
    json!({
        "CallbackCommand": COMMAND,
        "SdkAppid": d.app,
        "To_Account": d.user,
        "DeviceId": d.device.device_id,
        "BusinessId": d.device.business_id,
        "Token": d.device.token,
        "IsTpnsToken": d.device.is_tpns_token,
        "Platform": d.device.platform,
        "Notification": n,
    })
}

impl Provider for WebhookProvider {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, d: &'a Delivery) -> SendFuture<'a> {
        Box::pin(async move {
            let body = payload(d).to_string();
            let ts = crate::usersig::now_secs();
            let sent = self
                .client
                .post(&self.url)
                .header("Content-Type", "application/json")
                .header("X-Chime-Timestamp", ts.to_string())
                .header(
                    "X-Chime-Signature",
                    crate::webhooks::sign(&d.app_key, ts, &body),
                )
                .body(body)
                .send()
                .await;
            let (status, text) = answer(sent).await?;
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(SendError::from_status(status, &text))
            }
        })
    }
}
