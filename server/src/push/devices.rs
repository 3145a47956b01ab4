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
    /// The provider's kind (`webhook`, `apns`, `fcm`).
    #[serde(default)]
    pub provider: String,
    /// `pb::Platform` of the device.
    #[serde(default)]
    pub platform: i32,
    /// A TPNS token.
    #[serde(default)]
    pub is_tpns_token: bool,
}

impl DeadLetter {
    /// The device the push was for, as it was when the push failed.
    pub fn device(&self) -> Device {
        Device {
            device_id: self.device_id.clone(),
            business_id: self.business_id,
            token: self.token.clone(),
            is_tpns_token: self.is_tpns_token,
            platform: self.platform,
            background: true,
            unread_count: None,
            updated_ms: self.failed_ms,
        }
    }
}

/// The id of a dead letter: when it failed and a random tie-break, as 32 hex digits (the order
/// of its store key, so the newest letter has the greatest id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LetterId {
    /// When it was given up (ms).
    pub failed_ms: u64,
    /// The tie-break.
    pub nonce: u64,
}

impl LetterId {
    /// Parses the 32 hex digits of [`LetterId`]'s `Display`.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let failed_ms = u64::from_str_radix(s.get(..16)?, 16).ok()?;
        let nonce = u64::from_str_radix(s.get(16..)?, 16).ok()?;
        Some(Self { failed_ms, nonce })
    }

    fn key(&self, app: u64) -> Vec<u8> {
        Key::new(tag::PUSH_DEAD, app)
            .n(self.failed_ms)
            .n(self.nonce)
            .done()
    }

    fn of_key(key: &[u8]) -> Option<Self> {
        let at = key.len().checked_sub(16)?;
        Some(Self {
            failed_ms: crate::keys::be_u64(key, at)?,
            nonce: crate::keys::be_u64(key, at + 8)?,
        })
    }
}

impl std::fmt::Display for LetterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}{:016x}", self.failed_ms, self.nonce)
    }
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
    /// Drop dead letters (deleted or retried over the REST API; unknown ids are ignored).
    DropDeadLetters(Vec<LetterId>),
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
            let id = LetterId {
                failed_ms: letter.failed_ms.max(0) as u64,
                nonce: rand::random::<u64>(),
            };
            txn.put(id.key(app), encode(&*letter)?);
            Ok(RespKind::SetPushConfig(pb::SetPushConfigResp {}))
        }
        PushOp::DropDeadLetters(ids) => {
            for id in ids {
                txn.del(id.key(app));
            }
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

/// A page of the app's dead letters, newest first: at most `limit` (capped at
/// [`MAX_DEAD_LETTER_PAGE`]) older than `before` (all when `None`).
pub fn dead_letters(
    store: &dyn Store,
    app: u64,
    limit: usize,
    before: Option<LetterId>,
) -> Result<Vec<(LetterId, DeadLetter)>, StoreError> {
    let (start, end) = Key::new(tag::PUSH_DEAD, app).prefix_range();
    let end = before.map_or(end, |id| id.key(app));
    store
        .scan(&start, &end, limit.min(MAX_DEAD_LETTER_PAGE), true)?
        .into_iter()
        .map(|(k, v)| {
            let id = LetterId::of_key(&k)
                .ok_or_else(|| StoreError::Corrupt("push dead letter key".into()))?;
            Ok((id, serde_json::from_slice(&v).map_err(corrupt)?))
        })
        .collect()
}

/// One dead letter by id.
pub fn dead_letter(
    store: &dyn Store,
    app: u64,
    id: LetterId,
) -> Result<Option<DeadLetter>, StoreError> {
    store
        .get(&id.key(app))?
        .map(|v| serde_json::from_slice(&v).map_err(corrupt))
        .transpose()
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

    #[test]
    fn dead_letters_page_newest_first_and_drop() {
        let store = MemStore::default();
        for (ms, user) in [(5, "a"), (9, "b"), (7, "c")] {
            let letter = DeadLetter {
                user: user.into(),
                device_id: "d".into(),
                business_id: 1,
                token: "t".into(),
                notification: Default::default(),
                attempts: 3,
                error: "HTTP 503".into(),
                failed_ms: ms,
                provider: "webhook".into(),
                platform: 0,
                is_tpns_token: false,
            };
            run(&store, user, PushOp::DeadLetter(Box::new(letter)));
        }
        let users = |page: &[(LetterId, DeadLetter)]| -> Vec<String> {
            page.iter().map(|(_, l)| l.user.clone()).collect()
        };
        let all = dead_letters(&store, 1, 10, None).unwrap();
        assert_eq!(users(&all), vec!["b", "c", "a"]);
        let after = dead_letters(&store, 1, 10, Some(all[0].0)).unwrap();
        assert_eq!(users(&after), vec!["c", "a"]);
        let id = all[1].0;
        assert_eq!(LetterId::parse(&id.to_string()), Some(id));
        assert_eq!(LetterId::parse("zz"), None);
        assert_eq!(dead_letter(&store, 1, id).unwrap().unwrap().user, "c");
        run(&store, "admin", PushOp::DropDeadLetters(vec![id]));
        assert_eq!(
            users(&dead_letters(&store, 1, 10, None).unwrap()),
            vec!["b", "a"]
        );
        assert!(dead_letter(&store, 1, id).unwrap().is_none());
    }
}
