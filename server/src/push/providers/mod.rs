//! Push providers: what hands a built notification to the outside world. One trait, three
//! implementations (the app's own push gateway over an HTTP webhook, APNs, FCM), chosen per
//! `business_id` by the `[[push.provider]]` table. A provider only sends; retries, backoff and
//! dead letters are the queue's ([`super::queue`]), told by [`SendError`] whether a failure is
//! worth retrying.

pub mod apns;
pub mod fcm;
pub mod webhook;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::builder::Notification;
use super::config::{ProviderKind, PushConfig};
use super::devices::Device;
use crate::error::ServerError;

/// One push to one device.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The app.
    pub app: u64,
    /// The app's key (signs webhook calls).
    pub app_key: String,
    /// The receiver.
    pub user: String,
    /// The receiver's device.
    pub device: Device,
    /// What to show.
    pub notification: Notification,
}

/// How a send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth another try later (network, timeouts, 429, 5xx).
    Retry(String),
    /// Will fail again the same way (a bad request).
    Permanent(String),
    /// The provider says the token is dead: the device is forgotten.
    Unregistered(String),
}

impl SendError {
    /// The description.
    pub fn desc(&self) -> &str {
        match self {
            Self::Retry(d) | Self::Permanent(d) | Self::Unregistered(d) => d,
        }
    }

    /// The usual mapping of an HTTP failure status.
    pub fn from_status(status: u16, body: &str) -> Self {
        let desc = format!(
            "HTTP {status}: {}",
            body.chars().take(300).collect::<String>()
        );
        match status {
            408 | 429 | 500..=599 => Self::Retry(desc),
            410 => Self::Unregistered(desc),
            _ => Self::Permanent(desc),
        }
    }
}

/// The future of one send.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// A push provider.
pub trait Provider: Send + Sync {
    /// The provider's kind, for logs.
    fn kind(&self) -> &'static str;
    /// Sends one push.
    fn send<'a>(&'a self, delivery: &'a Delivery) -> SendFuture<'a>;
}

/// The providers of a server, by business id.
pub type Providers = HashMap<u32, Arc<dyn Provider>>;

/// Builds every configured provider; a bad key or a duplicate business id is a config error.
pub fn build(config: &PushConfig) -> Result<Providers, ServerError> {
    let timeout = Duration::from_millis(config.timeout_ms.max(1));
    let mut out: Providers = HashMap::new();
    for p in &config.providers {
        let provider: Arc<dyn Provider> = match &p.kind {
            ProviderKind::Webhook { url } => Arc::new(webhook::WebhookProvider::new(url, timeout)?),
            ProviderKind::Apns {
                base_url,
                team_id,
                key_id,
                topic,
                private_key,
                private_key_path,
            } => {
                let pem = super::config::inline_or_file(
                    private_key,
                    private_key_path,
                    "apns private_key",
                )?;
                Arc::new(apns::ApnsProvider::new(
                    apns::ApnsSettings {
                        base_url: base_url.clone(),
                        team_id: team_id.clone(),
                        key_id: key_id.clone(),
                        topic: topic.clone(),
                    },
                    &pem,
                    timeout,
                )?)
            }
            ProviderKind::Fcm {
                base_url,
                service_account,
                service_account_path,
            } => {
                let json = super::config::inline_or_file(
                    service_account,
                    service_account_path,
                    "fcm service_account",
                )?;
                Arc::new(fcm::FcmProvider::new(base_url, &json, timeout)?)
            }
        };
        if out.insert(p.business_id, provider).is_some() {
            return Err(ServerError::Config(format!(
                "push: business_id {} is configured twice",
                p.business_id
            )));
        }
    }
    Ok(out)
}

/// Reads a response's status and body; a transport error is worth a retry.
pub(crate) async fn answer(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<(u16, String), SendError> {
    let resp = sent.map_err(|e| SendError::Retry(format!("request failed: {e}")))?;
    let status = resp.status().as_u16();
    let body = resp
        .text()
        .await
        .map_err(|e| SendError::Retry(format!("reading the answer failed: {e}")))?;
    Ok((status, body))
}
