//! Who is online: the live sessions per (app, user), their outbound queues, and the multi-device
//! policy applied at login. Pushes go through [`Registry::push`], which never blocks: a session
//! whose bounded queue is full is closed (a slow client must not stall anyone else).
//!
//! Group fan-out ([`Registry::push_members`]) takes the lock once for the whole group and walks
//! the smaller of the member set and the app's online users, so a message to a 5,000-member group
//! with 20 members online costs 20 lookups, not 5,000; [`Registry::count_online`] answers the
//! online member count the same way.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use chime_proto::pb::{self, Platform};

use crate::config::MultiDevicePolicy;

pub use crate::outbound::Outbound;
use crate::outbound::{self, PushError};

/// The sending side of one connection.
#[derive(Debug, Clone)]
pub struct ConnTx {
    /// Unique per connection.
    pub conn_id: u64,
    tx: outbound::Sender,
}

impl ConnTx {
    /// A connection `conn_id` with an outbound queue of at most `capacity` frames; the
    /// transport's writer drains the returned receiver.
    pub fn new(conn_id: u64, capacity: usize) -> (Self, outbound::Receiver) {
        let (tx, rx) = outbound::queue(capacity);
        (Self { conn_id, tx }, rx)
    }

    /// Queues `frame`; when the queue is full the connection is killed. Returns false if the
    /// frame was not queued.
    pub fn send(&self, frame: Bytes) -> bool {
        match self.tx.push(Outbound::Frame(frame)) {
            Ok(()) => true,
            Err(PushError::Full) => {
                tracing::warn!(conn = self.conn_id, "outbound queue full, closing");
                false
            }
            Err(PushError::Closed) => false,
        }
    }

    /// Queues a close after what is queued (kills at once if the queue is full).
    pub fn close(&self) {
        if self.tx.push(Outbound::Close).is_err() {
            self.tx.kill();
        }
    }

    /// Completes when the connection must stop at once (its queue overflowed).
    pub async fn killed(&self) {
        self.tx.killed().await;
    }
}

/// One logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The connection.
    pub conn: ConnTx,
    /// The client's stable device id.
    pub device_id: String,
    /// The client's platform.
    pub platform: Platform,
}

/// The online sessions of one app's users (keyed by user id, so that a lookup by `&str`
/// allocates nothing).
type AppSessions = HashMap<String, Vec<Session>>;

/// The online sessions of every user.
#[derive(Default)]
pub struct Registry {
    apps: Mutex<HashMap<u64, AppSessions>>,
    next_conn: AtomicU64,
}

fn is_web(p: Platform) -> bool {
    p == Platform::Web
}

fn conflicts(policy: MultiDevicePolicy, a: Platform, b: Platform) -> bool {
    match policy {
        MultiDevicePolicy::PlatformClass => is_web(a) == is_web(b),
        MultiDevicePolicy::AllPlatforms => a == b,
        MultiDevicePolicy::Single => true,
        MultiDevicePolicy::Unlimited => false,
    }
}

/// A session that must go because of a new login.
#[derive(Debug)]
pub struct Displaced {
    /// The old session.
    pub session: Session,
    /// True when it is another device (kick with a push); false for a reconnect of the same
    /// device (closed silently).
    pub kicked: bool,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, AppSessions>> {
        // Every critical section leaves the map consistent, so a poisoned lock is usable.
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers `session` for `(app, user)` under `policy`; returns the sessions it displaces
    /// (already removed).
    pub fn login(
        &self,
        app: u64,
        user: &str,
        session: Session,
        policy: MultiDevicePolicy,
    ) -> Vec<Displaced> {
        let mut apps = self.lock();
        let list = apps
            .entry(app)
            .or_default()
            .entry(user.to_owned())
            .or_default();
        let mut displaced = Vec::new();
        let mut kept = Vec::with_capacity(list.len() + 1);
        for old in list.drain(..) {
            if !session.device_id.is_empty() && old.device_id == session.device_id {
                displaced.push(Displaced {
                    session: old,
                    kicked: false,
                });
            } else if conflicts(policy, old.platform, session.platform) {
                displaced.push(Displaced {
                    session: old,
                    kicked: true,
                });
            } else {
                kept.push(old);
            }
        }
        kept.push(session);
        *list = kept;
        displaced
    }

    /// Removes the session of connection `conn_id` (no-op if it was already displaced).
    /// Answers whether `user` has no session left.
    pub fn logout(&self, app: u64, user: &str, conn_id: u64) -> bool {
        let mut apps = self.lock();
        let Some(users) = apps.get_mut(&app) else {
            return true;
        };
        let Some(list) = users.get_mut(user) else {
            return true;
        };
        list.retain(|s| s.conn.conn_id != conn_id);
        if !list.is_empty() {
            return false;
        }
        users.remove(user);
        if users.is_empty() {
            apps.remove(&app);
        }
        true
    }

    /// Whether connection `conn_id` is still a registered session.
    pub fn is_current(&self, app: u64, user: &str, conn_id: u64) -> bool {
        self.lock()
            .get(&app)
            .and_then(|users| users.get(user))
            .is_some_and(|l| l.iter().any(|s| s.conn.conn_id == conn_id))
    }

    /// Queues `frame` on every session of `(app, user)` except connection `skip`.
    pub fn push(&self, app: u64, user: &str, frame: &Bytes, skip: u64) {
        let apps = self.lock();
        if let Some(list) = apps.get(&app).and_then(|users| users.get(user)) {
            send_all(list, frame, skip);
        }
    }

    /// Queues `frame` on every session of the users of `app` that are keys of `members` and not
    /// in `except`, skipping connection `skip`, under one lock: walks the app's online users when
    /// they are fewer than the members, else the members. Answers the number of sessions queued.
    pub fn push_members<V, S: BuildHasher, T: BuildHasher>(
        &self,
        app: u64,
        members: &HashMap<String, V, S>,
        except: &HashSet<String, T>,
        frame: &Bytes,
        skip: u64,
    ) -> usize {
        let apps = self.lock();
        let Some(users) = apps.get(&app) else {
            return 0;
        };
        let mut queued = 0;
        let mut deliver = |user: &str, list: &[Session]| {
            if !except.contains(user) {
                queued += send_all(list, frame, skip);
            }
        };
        if users.len() < members.len() {
            for (user, list) in users.iter().filter(|(u, _)| members.contains_key(*u)) {
                deliver(user, list);
            }
        } else {
            for user in members.keys() {
                if let Some(list) = users.get(user) {
                    deliver(user, list);
                }
            }
        }
        queued
    }

    /// How many keys of `members` have at least one session in `app` (walking the smaller set).
    pub fn count_online<V, S: BuildHasher>(
        &self,
        app: u64,
        members: &HashMap<String, V, S>,
    ) -> usize {
        let apps = self.lock();
        let Some(users) = apps.get(&app) else {
            return 0;
        };
        if users.len() < members.len() {
            users.keys().filter(|u| members.contains_key(*u)).count()
        } else {
            members.keys().filter(|u| users.contains_key(*u)).count()
        }
    }

    /// The keys of `members` with at least one session in `app`, in no particular order.
    pub fn online_members<V, S: BuildHasher>(
        &self,
        app: u64,
        members: &HashMap<String, V, S>,
    ) -> Vec<String> {
        let apps = self.lock();
        let Some(users) = apps.get(&app) else {
            return Vec::new();
        };
        if users.len() < members.len() {
            users
                .keys()
                .filter(|u| members.contains_key(*u))
                .cloned()
                .collect()
        } else {
            members
                .keys()
                .filter(|u| users.contains_key(*u))
                .cloned()
                .collect()
        }
    }

    /// Whether `(app, user)` has at least one session.
    pub fn is_online(&self, app: u64, user: &str) -> bool {
        self.lock()
            .get(&app)
            .is_some_and(|users| users.contains_key(user))
    }

    /// How many sessions `(app, user)` has online.
    pub fn session_count(&self, app: u64, user: &str) -> usize {
        self.lock()
            .get(&app)
            .and_then(|users| users.get(user))
            .map_or(0, Vec::len)
    }

    /// The platforms of `(app, user)`'s online sessions (empty = offline).
    pub fn platforms(&self, app: u64, user: &str) -> Vec<Platform> {
        self.lock()
            .get(&app)
            .and_then(|users| users.get(user))
            .map(|l| l.iter().map(|s| s.platform).collect())
            .unwrap_or_default()
    }

    /// Removes and returns every session of `(app, user)` (the REST API's kick).
    pub fn kick_all(&self, app: u64, user: &str) -> Vec<Session> {
        let mut apps = self.lock();
        let Some(users) = apps.get_mut(&app) else {
            return Vec::new();
        };
        let sessions = users.remove(user).unwrap_or_default();
        if users.is_empty() {
            apps.remove(&app);
        }
        sessions
    }

    /// The users of `app` with at least one session now.
    pub fn online_user_ids(&self, app: u64) -> Vec<String> {
        self.lock()
            .get(&app)
            .map(|users| users.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of users online in every app (for logs and tests).
    pub fn online_users(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }
}

/// Queues `frame` on every session of `list` but connection `skip`; answers how many.
fn send_all(list: &[Session], frame: &Bytes, skip: u64) -> usize {
    let mut n = 0;
    for s in list.iter().filter(|s| s.conn.conn_id != skip) {
        if s.conn.send(frame.clone()) {
            n += 1;
        }
    }
    n
}

/// Encodes a push frame (id 0).
pub fn push_frame(kind: pb::push::Kind) -> Bytes {
    use prost::Message as _;
    let frame = pb::Frame {
        id: 0,
        body: Some(pb::frame::Body::Push(pb::Push { kind: Some(kind) })),
    };
    Bytes::from(frame.encode_to_vec())
}

/// Encodes the frame of a `MessagePush` from an already-encoded `pb::Message`, so that a message
/// is encoded once for the store and every push. Byte-identical to encoding the prost structs.
pub fn message_push_frame(encoded_msg: &[u8], conv_type: pb::ConvType, target: &str) -> Bytes {
    versioned_message_push_frame(encoded_msg, conv_type, target, 0)
}

/// [`message_push_frame`] carrying the receiving user's `change_version` (0 = none, not encoded).
pub fn versioned_message_push_frame(
    encoded_msg: &[u8],
    conv_type: pb::ConvType,
    target: &str,
    change_version: u64,
) -> Bytes {
    use prost::Message as _;
    use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
    let conv = pb::ConvRef {
        conv_type: conv_type as i32,
        target: target.to_owned(),
    };
    let conv_len = conv.encoded_len();
    let field = |n: usize| 1 + encoded_len_varint(n as u64) + n;
    let version_len = if change_version == 0 {
        0
    } else {
        1 + encoded_len_varint(change_version)
    };
    let push_body = field(encoded_msg.len()) + field(conv_len) + version_len; // MessagePush
    let push = field(push_body); // Push { message = 1 }
    let mut out = Vec::with_capacity(field(push));
    encode_key(4, WireType::LengthDelimited, &mut out); // Frame.push
    encode_varint(push as u64, &mut out);
    encode_key(1, WireType::LengthDelimited, &mut out); // Push.message
    encode_varint(push_body as u64, &mut out);
    encode_key(1, WireType::LengthDelimited, &mut out); // MessagePush.message
    encode_varint(encoded_msg.len() as u64, &mut out);
    out.extend_from_slice(encoded_msg);
    encode_key(2, WireType::LengthDelimited, &mut out); // MessagePush.conv
    encode_varint(conv_len as u64, &mut out);
    conv.encode_raw(&mut out);
    if change_version != 0 {
        encode_key(3, WireType::Varint, &mut out); // MessagePush.change_version
        encode_varint(change_version, &mut out);
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(reg: &Registry, device: &str, platform: Platform) -> Session {
        let (conn, _rx) = ConnTx::new(reg.next_conn_id(), 4);
        Session {
            conn,
            device_id: device.into(),
            platform,
        }
    }

    #[test]
    fn platform_class_policy_kicks_same_class_only() {
        let reg = Registry::default();
        let p = MultiDevicePolicy::PlatformClass;
        assert!(
            reg.login(1, "u", session(&reg, "d1", Platform::Windows), p)
                .is_empty()
        );
        assert!(
            reg.login(1, "u", session(&reg, "d2", Platform::Web), p)
                .is_empty()
        );
        let out = reg.login(1, "u", session(&reg, "d3", Platform::Android), p);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].session.device_id, "d1");
        assert!(out[0].kicked);
        // Same device again: a silent replacement.
        let out = reg.login(1, "u", session(&reg, "d3", Platform::Android), p);
        assert_eq!(out.len(), 1);
        assert!(!out[0].kicked);
        // Other app, same user id: independent.
        assert!(
            reg.login(2, "u", session(&reg, "d9", Platform::Android), p)
                .is_empty()
        );
    }

    #[test]
    fn hand_encoded_message_push_equals_prost() {
        use prost::Message as _;
        let msg = pb::Message {
            msg_id: "m".repeat(300),
            sender: "alice".into(),
            seq: 7,
            ..Default::default()
        };
        for version in [0, 1, 300, u64::MAX] {
            let fast = versioned_message_push_frame(
                &msg.encode_to_vec(),
                pb::ConvType::C2c,
                "bob",
                version,
            );
            let slow = push_frame(pb::push::Kind::Message(pb::MessagePush {
                message: Some(msg.clone()),
                conv: Some(pb::ConvRef {
                    conv_type: pb::ConvType::C2c as i32,
                    target: "bob".into(),
                }),
                change_version: version,
            }));
            assert_eq!(fast, slow, "version {version}");
        }
        assert_eq!(
            message_push_frame(&msg.encode_to_vec(), pb::ConvType::C2c, "bob"),
            versioned_message_push_frame(&msg.encode_to_vec(), pb::ConvType::C2c, "bob", 0)
        );
    }

    #[test]
    fn group_fan_out_reaches_online_members_once_whichever_side_is_smaller() {
        let reg = Registry::default();
        let u = MultiDevicePolicy::Unlimited;
        let mut queues = HashMap::new();
        for (user, device) in [
            ("a", "d1"),
            ("a", "d2"),
            ("b", "d1"),
            ("c", "d1"),
            ("x", "d1"),
        ] {
            let (conn, rx) = ConnTx::new(reg.next_conn_id(), 4);
            let id = conn.conn_id;
            let s = Session {
                conn,
                device_id: device.into(),
                platform: Platform::Windows,
            };
            reg.login(1, user, s, u);
            queues.insert((user, device), (id, rx));
        }
        // Another app's "a" must not get app 1's frames.
        let (conn, other_rx) = ConnTx::new(reg.next_conn_id(), 4);
        let other = Session {
            conn,
            device_id: "d1".into(),
            platform: Platform::Windows,
        };
        reg.login(2, "a", other, u);
        let frame = Bytes::from_static(b"f");
        let skip = queues[&("a", "d2")].0;
        // Few members (walks the members), then many (walks the online users).
        let few: HashMap<String, u64> = [("a", 1), ("b", 1), ("offline", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let mut many = few.clone();
        many.extend((0..100).map(|i| (format!("m{i}"), 0)));
        let except: HashSet<String> = ["b".to_owned()].into();
        for members in [&few, &many] {
            assert_eq!(reg.count_online(1, members), 2);
            let mut online = reg.online_members(1, members);
            online.sort();
            assert_eq!(online, ["a", "b"]);
            assert_eq!(reg.push_members(1, members, &except, &frame, skip), 1);
            assert_eq!(reg.push_members(1, members, &HashSet::new(), &frame, 0), 3);
        }
        let received = |user, device| queues.get(&(user, device)).map_or(0, |q| q.1.waiting());
        assert_eq!(received("a", "d1"), 4);
        assert_eq!(
            received("a", "d2"),
            2,
            "the skipped connection gets only the unskipped"
        );
        assert_eq!(
            received("b", "d1"),
            2,
            "excepted from the first push of each pair"
        );
        assert_eq!(received("c", "d1"), 0, "not a member");
        assert_eq!(received("x", "d1"), 0);
        assert_eq!(other_rx.waiting(), 0, "other app untouched");
        // Logout answers whether the user is gone.
        assert!(!reg.logout(1, "a", queues[&("a", "d1")].0));
        assert!(reg.logout(1, "a", queues[&("a", "d2")].0));
        assert!(!reg.is_online(1, "a"));
        assert!(reg.is_online(2, "a"));
        assert_eq!(reg.online_users(), 4);
    }

    #[test]
    fn other_policies() {
        let reg = Registry::default();
        let s = MultiDevicePolicy::Single;
        reg.login(1, "a", session(&reg, "d1", Platform::Windows), s);
        assert_eq!(
            reg.login(1, "a", session(&reg, "d2", Platform::Web), s)
                .len(),
            1
        );
        let ap = MultiDevicePolicy::AllPlatforms;
        reg.login(1, "b", session(&reg, "d1", Platform::Windows), ap);
        assert!(
            reg.login(1, "b", session(&reg, "d2", Platform::Mac), ap)
                .is_empty()
        );
        assert_eq!(
            reg.login(1, "b", session(&reg, "d3", Platform::Mac), ap)
                .len(),
            1
        );
        let u = MultiDevicePolicy::Unlimited;
        reg.login(1, "c", session(&reg, "d1", Platform::Windows), u);
        assert!(
            reg.login(1, "c", session(&reg, "d2", Platform::Windows), u)
                .is_empty()
        );
    }
}
