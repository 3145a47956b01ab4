//! The device registry: which devices of a user take offline pushes (business id, token,
//! platform, background flag), persisted so that a device that went away still gets pushes, and
//! the dead letters of pushes that could not be delivered.
//!
//! Writes are [`PushOp`]s on the commit pipeline like every other write; reads run on the
//! blocking pool. A device is keyed by the login's device id (the engine's stable id), so a new
//! token of the same device replaces the old one, and logout removes exactly this device.
//! Values are JSON: they never travel on the wire.

use chime_proto::pb::{self, response::Kind as RespKind};
use serde::{Deserialize, Serialize};

use crate::error::{ApiResult, StoreError};
use crate::keys::{Key, tag};
use crate::store::Store;
use crate::txn::Txn;

/// Most dead letters one listing answers.
pub const MAX_DEAD_LETTER_PAGE: usize = 1000;

/// One registered device of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// The login's device id (the token itself when the client sent none).
    pub device_id: String,
    /// Selects the provider (`[[push.provider]]`).
    pub business_id: u32,
    /// The vendor's device token.
    pub token: String,
    /// A TPNS token.
    #[serde(default)]
    pub is_tpns_token: bool,
    /// `pb::Platform` of the login that registered it.
    pub platform: i32,
    /// The app said it is in the background (`do_background`).
    #[serde(default)]
    pub background: bool,
    /// The app's own unread count at `do_background`, if it gave one.
    #[serde(default)]
    pub unread_count: Option<u32>,
    /// When it was registered or last changed (ms).
    pub updated_ms: i64,
}

/// A push that failed every try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The receiver.
    pub user: String,
    /// The device.
    pub device_id: String,
    /// The provider's business id.
    pub business_id: u32,
    /// The device token.
    pub token: String,
    /// The notification.
    pub notification: super::builder::Notification,
    /// Tries made.
    pub attempts: u32,
    /// The last failure.
    pub error: String,
    /// When it was given up (ms).
    pub failed_ms: i64,
}

/// A write of the push area, applied by the commit task.
#[derive(Debug)]
pub enum PushOp {
    /// Register (or replace) a device of the acting user.
    Register(Device),
    /// The foreground / background state of a device of the acting user (no-op for an
    /// unregistered device).
    State {
        /// The device.
        device_id: String,
        /// In the background.
        background: bool,
        /// The app's unread count.
        unread_count: Option<u32>,
    },
    /// Forget a device of the acting user (logout); with `token`, only while it still has that
    /// token (the provider said the token is dead).
    Forget {
        /// The device.
        device_id: String,
        /// Only if it still has this token.
        token: Option<String>,
    },
    /// Keep a push that failed every try.
    DeadLetter(Box<DeadLetter>),
}

fn device_key(app: u64, user: &str, device_id: &str) -> Vec<u8> {
    Key::new(tag::PUSH_DEVICE, app)
        .s(user.as_bytes())
        .s(device_id.as_bytes())
        .done()
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("push record: {e}"))
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(corrupt)
}

/// Stages `op` for `user` (run by the commit task).
pub(crate) fn stage(txn: &mut Txn<'_>, app: u64, user: &str, op: PushOp) -> ApiResult<RespKind> {
    match op {
        PushOp::Register(device) => {
            let key = device_key(app, user, &device.device_id);
            txn.put(key, encode(&device)?);
            Ok(RespKind::SetPushConfig(pb::SetPushConfigResp {}))
        }
        PushOp::State {
            device_id,
            background,
            unread_count,
        } => {
            let key = device_key(app, user, &device_id);
            if let Some(raw) = txn.get(&key)? {
                let mut d: Device = serde_json::from_slice(&raw).map_err(corrupt)?;
                d.background = background;
                d.unread_count = unread_count;
                d.updated_ms = crate::commit::now_ms();
                txn.put(key, encode(&d)?);
            }
            Ok(RespKind::SetAppState(pb::SetAppStateResp {}))
        }
        PushOp::Forget { device_id, token } => {
            let key = device_key(app, user, &device_id);
            let matches = match (&token, txn.get(&key)?) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(t), Some(raw)) => {
                    let d: Device = serde_json::from_slice(&raw).map_err(corrupt)?;
                    d.token == *t
                }
            };
            if matches {
                txn.del(key);
            }
            Ok(RespKind::SetPushConfig(pb::SetPushConfigResp {}))
        }
        PushOp::DeadLetter(letter) => {
            let key = Key::new(tag::PUSH_DEAD, app)
                .n(letter.failed_ms.max(0) as u64)
                .n(rand::random::<u64>())
                .done();
            txn.put(key, encode(&*letter)?);
            Ok(RespKind::SetPushConfig(pb::SetPushConfigResp {}))
        }
    }
}

/// The registered devices of `user`.
pub fn devices_of(store: &dyn Store, app: u64, user: &str) -> Result<Vec<Device>, StoreError> {
    let (start, end) = Key::new(tag::PUSH_DEVICE, app)
        .s(user.as_bytes())
        .prefix_range();
    store
        .scan(&start, &end, usize::MAX, false)?
        .into_iter()
        .map(|(_, v)| serde_json::from_slice(&v).map_err(corrupt))
        .collect()
}

/// The app's dead letters, oldest first, at most `limit` (capped at
/// [`MAX_DEAD_LETTER_PAGE`]).
pub fn dead_letters(
    store: &dyn Store,
    app: u64,
    limit: usize,
) -> Result<Vec<DeadLetter>, StoreError> {
    let (start, end) = Key::new(tag::PUSH_DEAD, app).prefix_range();
    store
        .scan(&start, &end, limit.min(MAX_DEAD_LETTER_PAGE), false)?
        .into_iter()
        .map(|(_, v)| serde_json::from_slice(&v).map_err(corrupt))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::MemStore;
    use crate::txn::Staged;

    fn device(id: &str, token: &str) -> Device {
        Device {
            device_id: id.into(),
            business_id: 1,
            token: token.into(),
            is_tpns_token: false,
            platform: pb::Platform::Ios as i32,
            background: false,
            unread_count: None,
            updated_ms: 1,
        }
    }

    fn run(store: &MemStore, user: &str, op: PushOp) {
        let layers: Vec<Arc<Staged>> = Vec::new();
        let mut txn = Txn::new(store, &layers);
        stage(&mut txn, 1, user, op).unwrap();
        let staged = txn.into_staged();
        let ops: Vec<_> = staged
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        store.apply(&ops).unwrap();
    }

    #[test]
    fn register_state_forget() {
        let store = MemStore::default();
        run(&store, "u", PushOp::Register(device("d1", "t1")));
        run(&store, "u", PushOp::Register(device("d2", "t2")));
        run(&store, "u", PushOp::Register(device("d1", "t1b")));
        let all = devices_of(&store, 1, "u").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].token, "t1b");
        run(
            &store,
            "u",
            PushOp::State {
                device_id: "d2".into(),
                background: true,
                unread_count: Some(3),
            },
        );
        let d2 = &devices_of(&store, 1, "u").unwrap()[1];
        assert!(d2.background);
        assert_eq!(d2.unread_count, Some(3));
        // A stale token does not remove the device's new one.
        run(
            &store,
            "u",
            PushOp::Forget {
                device_id: "d1".into(),
                token: Some("t1".into()),
            },
        );
        assert_eq!(devices_of(&store, 1, "u").unwrap().len(), 2);
        run(
            &store,
            "u",
            PushOp::Forget {
                device_id: "d1".into(),
                token: None,
            },
        );
        let left = devices_of(&store, 1, "u").unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].device_id, "d2");
        assert!(devices_of(&store, 2, "u").unwrap().is_empty());
    }
}
