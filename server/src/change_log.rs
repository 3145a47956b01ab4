//! The per-user conversation change log and the change versions that travel with live answers
//! and pushes (ARCHITECTURE.md §3, "reconnect sync is proportional to what changed").
//!
//! Every change of one of a user's conversations (a C2C message sent or received, a read
//! position, a settings change, a deletion, a membership change…) is a [`Txn::touch`] while
//! staging. At the end of the batch, [`move_logs`] gives **each touch its own version**: a user's
//! touches of the batch take the next versions of the user's counter, consecutively, so a user's
//! versions are strictly increasing by one per change with no skip and no sharing. A conversation
//! keeps one log entry, at its newest version (the sync answers a conversation's whole state, so
//! older entries would restate the same thing).
//!
//! The versions are known only after staging, so an answer or push that carries a change is
//! staged with the change's [`Touch`] ticket ([`ChangeVersion::Touched`], [`ChangePush`]) and
//! stamped by [`stamp_response`] and [`stamp_effect`] before the batch leaves the staging thread.
//! A device advances its cursor over the unbroken run of versions it applied; a version that no
//! answer or push carries to a device (a change whose only carrier is shared, such as a group
//! tip) stays a gap there, and the device's next sync restates from it: never less than needed.

use bytes::Bytes;
use chime_proto::pb::{self, response::Kind as RespKind};

use crate::commit::Effect;
use crate::error::ApiResult;
use crate::keys::{Key, tag};
use crate::registry::{push_frame, versioned_message_push_frame};
use crate::txn::Txn;

/// One change staged in a batch: the `slot`-th touch of the batch's `index`-th touched
/// (app, user, conversation). Resolved to a change version by [`Versions::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    /// Position of the (app, user, conversation) among the batch's touched ones.
    pub index: u32,
    /// Which touch of it (0 = the first).
    pub slot: u32,
}

/// The change version an answer or push carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChangeVersion {
    /// None (the change travels with another push, or nothing moved).
    #[default]
    None,
    /// Staged: known once the batch's change logs moved.
    Touched(Touch),
    /// Stamped.
    Known(u64),
}

impl ChangeVersion {
    /// The version to put on the wire (0 = none).
    pub fn get(self) -> u64 {
        match self {
            ChangeVersion::Known(v) => v,
            _ => 0,
        }
    }

    fn stamp(&mut self, versions: &Versions) {
        if let ChangeVersion::Touched(t) = *self {
            *self = ChangeVersion::Known(versions.resolve(t));
        }
    }
}

/// A push that carries changes of its user's change log, encoded once their versions are known.
#[derive(Debug)]
pub enum ChangePush {
    /// A `MessagePush` of an already-encoded message.
    Message {
        /// The encoded `pb::Message`.
        encoded: Bytes,
        /// The conversation as the receiving user sees it.
        conv_type: pb::ConvType,
        /// Its target (the peer for C2C).
        target: String,
    },
    /// A `PeerReadPush`.
    PeerRead(pb::PeerReadPush),
    /// A `ConvSettingsPush`: the i-th touch is the i-th entry's.
    Settings(pb::ConvSettingsPush),
}

impl ChangePush {
    /// The push frame with the resolved versions (one per touch, in order).
    pub(crate) fn frame(self, versions: &[u64]) -> Bytes {
        let first = versions.first().copied().unwrap_or(0);
        match self {
            ChangePush::Message {
                encoded,
                conv_type,
                target,
            } => versioned_message_push_frame(&encoded, conv_type, &target, first),
            ChangePush::PeerRead(mut p) => {
                p.change_version = first;
                push_frame(pb::push::Kind::PeerRead(p))
            }
            ChangePush::Settings(mut p) => {
                for (e, v) in p.convs.iter_mut().zip(versions) {
                    e.change_version = *v;
                }
                push_frame(pb::push::Kind::ConvSettings(p))
            }
        }
    }
}

/// The first version given to each touched (app, user, conversation) of a batch.
#[derive(Debug, Default)]
pub struct Versions(Vec<u64>);

impl Versions {
    /// The version of one touch (0 for a ticket of another batch, which cannot happen).
    pub fn resolve(&self, t: Touch) -> u64 {
        self.0
            .get(t.index as usize)
            .map_or(0, |first| first + u64::from(t.slot))
    }
}

/// Moves the change logs of everything the batch touched: each touch takes the next version of
/// its user's counter; the conversation's log entry moves to its last one. Answers the versions.
pub fn move_logs(txn: &mut Txn<'_>) -> ApiResult<Versions> {
    let touched = txn.take_touched();
    let mut firsts = Vec::with_capacity(touched.len());
    for (app, user, conv, count) in touched {
        firsts.push(bump(txn, app, &user, &conv, count)?);
    }
    Ok(Versions(firsts))
}

/// Records `count` changes of `conv` for `user`: they take the next `count` versions; the
/// conversation's log entry (one per conversation) moves to the last. Answers the first.
pub fn bump(txn: &mut Txn<'_>, app: u64, user: &str, conv: &[u8], count: u32) -> ApiResult<u64> {
    let cursor_key = Key::new(tag::CURSOR, app).s(user.as_bytes()).done();
    let first = txn.get_u64(&cursor_key)? + 1;
    let last = first + u64::from(count.max(1)) - 1;
    let ver_key = Key::new(tag::VER, app).s(user.as_bytes()).s(conv).done();
    let old = txn.get_u64(&ver_key)?;
    if old != 0 {
        txn.del(Key::new(tag::LOG, app).s(user.as_bytes()).n(old).done());
    }
    txn.put(
        Key::new(tag::LOG, app).s(user.as_bytes()).n(last).done(),
        conv.to_vec(),
    );
    txn.put(ver_key, last.to_be_bytes().to_vec());
    txn.put(cursor_key, last.to_be_bytes().to_vec());
    Ok(first)
}

/// Stamps an answer with the versions of the changes it carries (`touches`, in the order of the
/// answer's changes).
pub fn stamp_response(kind: &mut RespKind, touches: &[Touch], versions: &Versions) {
    let Some(&first) = touches.first() else {
        return;
    };
    match kind {
        RespKind::SendMessage(r) => r.change_version = versions.resolve(first),
        RespKind::MarkRead(r) => r.change_version = versions.resolve(first),
        RespKind::UpdateConv(r) => {
            for (e, t) in r.convs.iter_mut().zip(touches) {
                e.change_version = versions.resolve(*t);
            }
        }
        _ => {}
    }
}

/// Stamps a staged effect with its changes' versions ([`Effect::Change`] becomes a plain push).
pub(crate) fn stamp_effect(mut effect: Effect, versions: &Versions) -> Effect {
    if let Effect::Read { change, .. } = &mut effect {
        change.stamp(versions);
        return effect;
    }
    match effect {
        Effect::Change {
            app,
            user,
            skip,
            touches,
            push,
        } => {
            let resolved: Vec<u64> = touches.iter().map(|t| versions.resolve(*t)).collect();
            Effect::Push {
                app,
                user,
                frame: push.frame(&resolved),
                skip,
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemStore, Store as _};

    fn cursor(txn: &Txn<'_>, user: &str) -> u64 {
        txn.get_u64(&Key::new(tag::CURSOR, 1).s(user.as_bytes()).done())
            .unwrap()
    }

    fn log(store: &MemStore, user: &str) -> Vec<(u64, Vec<u8>)> {
        let (lo, hi) = Key::new(tag::LOG, 1).s(user.as_bytes()).prefix_range();
        store
            .scan(&lo, &hi, usize::MAX, false)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (crate::keys::trailing_u64(&k).unwrap(), v))
            .collect()
    }

    /// Applies what `txn` staged to `store`.
    fn apply(store: &MemStore, txn: Txn<'_>) {
        let staged: Vec<(Vec<u8>, Option<Vec<u8>>)> = txn.into_staged().into_iter().collect();
        let ops: Vec<(&[u8], Option<&[u8]>)> = staged
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        store.apply(&ops).unwrap();
    }

    #[test]
    fn every_touch_takes_its_own_version_consecutively_per_user() {
        let store = MemStore::default();
        let mut txn = Txn::new(&store, &[]);
        let a1 = txn.touch(1, "u", b"a");
        let b1 = txn.touch(1, "u", b"b");
        let other = txn.touch(1, "v", b"a");
        let a2 = txn.touch(1, "u", b"a");
        let a3 = txn.touch(1, "u", b"a");
        let versions = move_logs(&mut txn).unwrap();
        // u: conversation a first (3 touches: 1, 2, 3), then b (4); v has its own counter.
        assert_eq!(versions.resolve(a1), 1);
        assert_eq!(versions.resolve(a2), 2);
        assert_eq!(versions.resolve(a3), 3);
        assert_eq!(versions.resolve(b1), 4);
        assert_eq!(versions.resolve(other), 1);
        assert_eq!(cursor(&txn, "u"), 4);
        assert_eq!(cursor(&txn, "v"), 1);
        apply(&store, txn);
        // One entry per conversation, at its newest version.
        assert_eq!(
            log(&store, "u"),
            vec![(3, b"a".to_vec()), (4, b"b".to_vec())]
        );

        // The next batch continues where the last ended and moves a's entry.
        let mut txn = Txn::new(&store, &[]);
        let a4 = txn.touch(1, "u", b"a");
        let versions = move_logs(&mut txn).unwrap();
        assert_eq!(versions.resolve(a4), 5);
        apply(&store, txn);
        assert_eq!(
            log(&store, "u"),
            vec![(4, b"b".to_vec()), (5, b"a".to_vec())]
        );
    }

    #[test]
    fn stamping_resolves_answers_and_pushes() {
        let store = MemStore::default();
        let mut txn = Txn::new(&store, &[]);
        let t1 = txn.touch(1, "u", b"a");
        let t2 = txn.touch(1, "u", b"b");
        let versions = move_logs(&mut txn).unwrap();
        let entry = |v| pb::ConvSettingsEntry {
            change_version: v,
            ..Default::default()
        };
        let mut resp = RespKind::UpdateConv(pb::UpdateConvResp {
            convs: vec![entry(0), entry(0)],
            user: None,
        });
        stamp_response(&mut resp, &[t1, t2], &versions);
        let RespKind::UpdateConv(r) = &resp else {
            panic!("kind")
        };
        assert_eq!(r.convs, vec![entry(1), entry(2)]);

        let fx = Effect::Change {
            app: 1,
            user: "u".into(),
            skip: 0,
            touches: vec![t2],
            push: ChangePush::PeerRead(pb::PeerReadPush::default()),
        };
        let Effect::Push { frame, .. } = stamp_effect(fx, &versions) else {
            panic!("not stamped")
        };
        let expected = push_frame(pb::push::Kind::PeerRead(pb::PeerReadPush {
            change_version: 2,
            ..Default::default()
        }));
        assert_eq!(frame, expected);
    }
}
