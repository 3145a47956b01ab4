//! The message lifecycle on the server: revoke, modify, delete for me, clear history, and the
//! per-user message change log that carries those changes to every device.
//!
//! A stored message changes in place (`revoked`, `revoker`, `revoke_reason`, new elems or cloud
//! custom data) and its `version` goes up by one with every change, so that a device applying a
//! change twice (live push, then the catch-up pull) or out of order keeps the newest.
//!
//! **Reaching every device.** Each change is appended to the change log of every user who should
//! see it (both parties of a C2C conversation; the members of a group who may see the message;
//! only the acting user for a delete or a clear), pushed live to their sessions, and pulled by
//! [`pull_changes`] from the client's change cursor after a reconnect. The conversation is also
//! touched in each user's conversation change log, so the next sync answers its state again
//! (last message and unread count follow the change: revoked messages do not count as unread).
//!
//! **Delete for me / clear.** Deleted seqs are kept per user ([`tag::HIDDEN`]) and a clear moves
//! the user's floor of the conversation ([`tag::CLEARED`]); [`Hidden`] answers both for pulls and
//! conversation states, so a deleted message never comes back from the server for that user.

use chime_proto::pb::{self, response::Kind as RespKind};
use chime_proto::{codes, ids, limits};
use prost::Message as _;

use crate::commit::{Core, Effect, now_ms};
use crate::error::{ApiError, ApiResult, StoreError};
use crate::keys::{self, Key, tag};
use crate::registry::push_frame;
use crate::store::Store;
use crate::txn::Txn;

/// Revoking someone else's message, or modifying it (the seed has no dedicated code for C2C).
pub const ERR_NOT_ALLOWED: i32 = codes::ERR_INVALID_OPERATION;
/// The message to revoke or modify does not exist (the seed's group code, used for both kinds).
pub const ERR_MSG_NOT_FOUND: i32 = 10030;
/// Most seqs in one delete request.
pub const MAX_DELETE: usize = 100;
/// Default and largest change page.
pub const CHANGE_PAGE: u32 = 100;

/// A lifecycle write, staged by the commit task.
#[derive(Debug)]
pub enum LifecycleOp {
    /// `revoke_message`.
    Revoke(pb::RevokeMessageReq),
    /// `modify_message`.
    Modify(Box<pb::ModifyMessageReq>),
    /// `delete_messages` (for the acting user, on all their devices).
    Delete(pb::DeleteMessagesReq),
    /// `clear_*_history_message` (for the acting user).
    Clear(pb::ClearHistoryReq),
}

/// The conversation a request names, resolved for the acting user.
struct Target {
    conv: Vec<u8>,
    /// Group: (group id, owner, members).
    group: Option<GroupView>,
    /// C2C: the other party.
    peer: String,
}

/// What the lifecycle needs of a group.
struct GroupView {
    group_id: String,
    owner: String,
    members: Vec<String>,
}

fn resolve(
    core: &mut Core,
    txn: &Txn<'_>,
    app: u64,
    user: &str,
    conv: Option<&pb::ConvRef>,
) -> ApiResult<Target> {
    let c = conv.ok_or_else(|| ApiError::new(codes::ERR_SVR_INVALID_PARAMS, "conv is required"))?;
    match c.conv_type() {
        pb::ConvType::C2c => {
            if !ids::is_valid_user_id(&c.target) {
                return Err(ApiError::new(codes::ERR_INVALID_USER_ID, "invalid user id"));
            }
            Ok(Target {
                conv: keys::c2c_conv(user, &c.target),
                group: None,
                peer: c.target.clone(),
            })
        }
        pb::ConvType::Group => {
            if !ids::is_valid_group_id(&c.target) {
                return Err(ApiError::new(
                    codes::ERR_INVALID_GROUP_ID,
                    "invalid group id",
                ));
            }
            // A community topic: its community's members (`community`).
            let members_of = crate::community::membership_group(txn, app, &c.target)?;
            let Some(g) = core.group(txn, app, &members_of)? else {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_NOT_FOUND,
                    "no such group",
                ));
            };
            if !g.members.contains_key(user) && user != core.tunables.admin_identifier {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                    "not a member of the group",
                ));
            }
            Ok(Target {
                conv: keys::group_conv(&c.target),
                group: Some(GroupView {
                    group_id: g.info.group_id.clone(),
                    owner: g.info.owner.clone(),
                    members: g.members.keys().cloned().collect(),
                }),
                peer: String::new(),
            })
        }
        pb::ConvType::Unspecified => Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            "conv_type is required",
        )),
    }
}

fn msg_key(app: u64, conv: &[u8], seq: u64) -> Vec<u8> {
    Key::new(tag::MSG, app).s(conv).n(seq).done()
}

/// The stored message at `seq`, checked against `msg_id` (when given).
fn load(txn: &Txn<'_>, app: u64, conv: &[u8], seq: u64, msg_id: &str) -> ApiResult<pb::Message> {
    let raw = txn.get(&msg_key(app, conv, seq))?;
    let m = match raw {
        Some(v) => pb::Message::decode(&v[..]).map_err(StoreError::from)?,
        None => return Err(ApiError::new(ERR_MSG_NOT_FOUND, "no such message")),
    };
    if !msg_id.is_empty() && m.msg_id != msg_id {
        return Err(ApiError::new(ERR_MSG_NOT_FOUND, "no such message"));
    }
    Ok(m)
}

/// Whether `user` may see `m` (targeted group messages: only their receivers and the sender).
fn visible(m: &pb::Message, user: &str) -> bool {
    m.target_user_list.is_empty()
        || m.sender == user
        || m.target_user_list.iter().any(|u| u == user)
}

/// Who sees changes of `m` in `t`.
fn audience(t: &Target, m: &pb::Message, me: &str) -> Vec<String> {
    let mut out: Vec<String> = match &t.group {
        None => vec![me.to_owned(), t.peer.clone()],
        Some(g) => g
            .members
            .iter()
            .filter(|u| visible(m, u))
            .cloned()
            .collect(),
    };
    out.push(m.sender.clone());
    out.sort();
    out.dedup();
    out
}

/// Whether `user` may revoke others' messages in group conversation `conv` by the community
/// permissions (a topic's or a community's bit).
fn community_revoker(
    core: &mut Core,
    txn: &Txn<'_>,
    app: u64,
    conv: &[u8],
    user: &str,
) -> ApiResult<bool> {
    match keys::parse_conv(conv) {
        Some(keys::Conv::Group(id)) => {
            crate::community::may_revoke_others(core, txn, app, &id, user)
        }
        _ => Ok(false),
    }
}

/// Whether `user` manages group `group_id` (owned by `owner`): the owner, an admin, or the app
/// administrator.
pub(crate) fn is_group_manager(
    core: &Core,
    txn: &Txn<'_>,
    app: u64,
    group_id: &str,
    owner: &str,
    user: &str,
) -> ApiResult<bool> {
    if owner == user || user == core.tunables.admin_identifier {
        return Ok(true);
    }
    let key = Key::new(tag::MEMBER, app)
        .s(group_id.as_bytes())
        .s(user.as_bytes())
        .done();
    let Some(v) = txn.get(&key)? else {
        return Ok(false);
    };
    let member =
        pb::GroupMember::decode(v.get(8..).unwrap_or_default()).map_err(StoreError::from)?;
    Ok(member.role == "admin" || member.role == "owner")
}

/// Appends `change` to `user`'s change log (stamping its version), touches the conversation in
/// the user's conversation change log (its last message or unread may follow) and queues the
/// change's push.
fn record(
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    conv: &[u8],
    change: pb::MessageChange,
    skip: u64,
    fx: &mut Vec<Effect>,
) -> ApiResult<()> {
    txn.touch(app, user, conv);
    append_change(txn, app, user, conv, change, skip, fx).map(|_| ())
}

/// Appends `change` to `user`'s change log (stamping its version) and queues its push to the
/// user's sessions but `skip`; answers the version. The conversation itself is not touched (a
/// change that moves neither its last message nor its unread count, such as a reaction).
pub(crate) fn append_change(
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    conv: &[u8],
    mut change: pb::MessageChange,
    skip: u64,
    fx: &mut Vec<Effect>,
) -> ApiResult<u64> {
    let head_key = Key::new(tag::MSG_CHANGE_HEAD, app)
        .s(user.as_bytes())
        .done();
    let version = txn.get_u64(&head_key)? + 1;
    txn.put(head_key, version.to_be_bytes().to_vec());
    change.version = version;
    change.conv = keys::conv_ref_for(conv, user);
    txn.put(
        Key::new(tag::MSG_CHANGE, app)
            .s(user.as_bytes())
            .n(version)
            .done(),
        change.encode_to_vec(),
    );
    fx.push(Effect::Push {
        app,
        user: user.to_owned(),
        frame: push_frame(pb::push::Kind::MessageChange(pb::MessageChangePush {
            change: Some(change),
        })),
        skip,
    });
    Ok(version)
}

/// Stages one lifecycle write.
pub(crate) fn stage(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    op: LifecycleOp,
    skip: u64,
    fx: &mut Vec<Effect>,
) -> ApiResult<RespKind> {
    match op {
        LifecycleOp::Revoke(req) => revoke(core, txn, app, user, req, skip, fx),
        LifecycleOp::Modify(req) => modify(core, txn, app, user, *req, skip, fx),
        LifecycleOp::Delete(req) => delete(core, txn, app, user, req, skip, fx),
        LifecycleOp::Clear(req) => clear(core, txn, app, user, req, skip, fx),
    }
}

fn revoke(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    req: pb::RevokeMessageReq,
    skip: u64,
    fx: &mut Vec<Effect>,
) -> ApiResult<RespKind> {
    let t = resolve(core, txn, app, user, req.conv.as_ref())?;
    let mut m = load(txn, app, &t.conv, req.seq, &req.msg_id)?;
    if !visible(&m, user) {
        return Err(ApiError::new(ERR_MSG_NOT_FOUND, "no such message"));
    }
    if m.revoked {
        return Ok(RespKind::RevokeMessage(pb::RevokeMessageResp {
            message: Some(m),
        }));
    }
    if m.sender == user {
        let window_ms = i64::try_from(core.tunables.revoke_window_secs)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000);
        if now_ms().saturating_sub(m.server_time_ms) > window_ms {
            return Err(ApiError::new(
                codes::ERR_SVR_REVOKE_TIME_LIMIT,
                format!(
                    "the revoke window ({} s) has passed",
                    core.tunables.revoke_window_secs
                ),
            ));
        }
    } else {
        match &t.group {
            Some(g) if is_group_manager(core, txn, app, &g.group_id, &g.owner, user)? => {}
            // A community member whose permissions allow revoking others (`community`).
            Some(_) if community_revoker(core, txn, app, &t.conv, user)? => {}
            Some(_) => {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                    "only the group owner and admins may revoke others' messages",
                ));
            }
            None => {
                return Err(ApiError::new(
                    ERR_NOT_ALLOWED,
                    "only the sender may revoke a C2C message",
                ));
            }
        }
    }
    m.revoked = true;
    m.revoker = user.to_owned();
    m.revoke_reason = req.reason;
    m.version += 1;
    txn.put(msg_key(app, &t.conv, m.seq), m.encode_to_vec());
    let change = pb::MessageChange {
        kind: pb::MessageChangeKind::MessageChangeRevoked as i32,
        message: Some(m.clone()),
        op_user: user.to_owned(),
        time_ms: now_ms(),
        ..Default::default()
    };
    for u in audience(&t, &m, user) {
        record(txn, app, &u, &t.conv, change.clone(), skip, fx)?;
    }
    Ok(RespKind::RevokeMessage(pb::RevokeMessageResp {
        message: Some(m),
    }))
}

fn modify(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    req: pb::ModifyMessageReq,
    skip: u64,
    fx: &mut Vec<Effect>,
) -> ApiResult<RespKind> {
    let t = resolve(core, txn, app, user, req.conv.as_ref())?;
    let new = req
        .message
        .ok_or_else(|| ApiError::new(codes::ERR_SVR_INVALID_PARAMS, "message is required"))?;
    let mut m = load(txn, app, &t.conv, new.seq, &new.msg_id)?;
    if m.sender != user {
        return Err(ApiError::new(
            ERR_NOT_ALLOWED,
            "only the sender may modify a message",
        ));
    }
    if m.revoked {
        return Err(ApiError::new(
            ERR_NOT_ALLOWED,
            "a revoked message cannot be modified",
        ));
    }
    if m.version != new.version {
        return Ok(RespKind::ModifyMessage(pb::ModifyMessageResp {
            message: Some(m),
            conflict: true,
        }));
    }
    if new.elems.is_empty() {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            "a message needs at least one elem",
        ));
    }
    m.elems = new.elems;
    m.cloud_custom_data = new.cloud_custom_data;
    if limits::message_body_bytes(&m) > limits::MAX_MESSAGE_BODY_BYTES {
        return Err(ApiError::new(
            codes::ERR_SVR_MSG_TOO_LARGE,
            "message body over 12 KB",
        ));
    }
    m.version += 1;
    crate::search_index::stage_changed(txn, app, &t.conv, m.seq);
    txn.put(msg_key(app, &t.conv, m.seq), m.encode_to_vec());
    let change = pb::MessageChange {
        kind: pb::MessageChangeKind::MessageChangeModified as i32,
        message: Some(m.clone()),
        op_user: user.to_owned(),
        time_ms: now_ms(),
        ..Default::default()
    };
    for u in audience(&t, &m, user) {
        record(txn, app, &u, &t.conv, change.clone(), skip, fx)?;
    }
    Ok(RespKind::ModifyMessage(pb::ModifyMessageResp {
        message: Some(m),
        conflict: false,
    }))
}

fn hidden_key(app: u64, user: &str, conv: &[u8], seq: u64) -> Vec<u8> {
    Key::new(tag::HIDDEN, app)
        .s(user.as_bytes())
        .s(conv)
        .n(seq)
        .done()
}

fn cleared_key(app: u64, user: &str, conv: &[u8]) -> Vec<u8> {
    Key::new(tag::CLEARED, app)
        .s(user.as_bytes())
        .s(conv)
        .done()
}

fn delete(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    req: pb::DeleteMessagesReq,
    skip: u64,
    fx: &mut Vec<Effect>,
) -> ApiResult<RespKind> {
    if req.seqs.is_empty() || req.seqs.len() > MAX_DELETE {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            format!("1..={MAX_DELETE} seqs per delete"),
        ));
    }
    let t = resolve(core, txn, app, user, req.conv.as_ref())?;
    let mut seqs = Vec::new();
    let mut msg_ids = Vec::new();
    for &seq in &req.seqs {
        let m = load(txn, app, &t.conv, seq, "")?;
        if !visible(&m, user) {
            return Err(ApiError::new(ERR_MSG_NOT_FOUND, "no such message"));
        }
        txn.put(hidden_key(app, user, &t.conv, seq), Vec::new());
        seqs.push(seq);
        msg_ids.push(m.msg_id);
    }
    let change = pb::MessageChange {
        kind: pb::MessageChangeKind::MessageChangeDeleted as i32,
        seqs,
        msg_ids,
        op_user: user.to_owned(),
        time_ms: now_ms(),
        ..Default::default()
    };
    record(txn, app, user, &t.conv, change, skip, fx)?;
    Ok(RespKind::DeleteMessages(pb::DeleteMessagesResp {}))
}

fn clear(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    req: pb::ClearHistoryReq,
    skip: u64,
    fx: &mut Vec<Effect>,
) -> ApiResult<RespKind> {
    let t = resolve(core, txn, app, user, req.conv.as_ref())?;
    let head = txn.get_u64(&Key::new(tag::HEAD, app).s(&t.conv).done())?;
    let key = cleared_key(app, user, &t.conv);
    if head > txn.get_u64(&key)? {
        txn.put(key, head.to_be_bytes().to_vec());
        let change = pb::MessageChange {
            kind: pb::MessageChangeKind::MessageChangeCleared as i32,
            cleared_seq: head,
            op_user: user.to_owned(),
            time_ms: now_ms(),
            ..Default::default()
        };
        record(txn, app, user, &t.conv, change, skip, fx)?;
    }
    Ok(RespKind::ClearHistory(pb::ClearHistoryResp {
        cleared_seq: head,
    }))
}

/// The seed's rules for a targeted group message (one with `target_user_list`): no @ list, and
/// not in AVChatRoom or Community groups. Called by the send path before the message is stored.
pub fn check_targeted(m: &pb::Message, group_type: &str) -> ApiResult<()> {
    if m.target_user_list.is_empty() {
        return Ok(());
    }
    if !m.group_at_user_list.is_empty() {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_INVALID_PARAMS,
            "a targeted group message cannot @ members",
        ));
    }
    if matches!(group_type, "AVChatRoom" | "Community") {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_INVALID_PARAMS,
            "targeted group messages are not supported in AVChatRoom and Community groups",
        ));
    }
    Ok(())
}

/// What one user deleted or cleared in one conversation, for filtering reads.
pub struct Hidden<'a> {
    store: &'a dyn Store,
    app: u64,
    user: String,
    conv: Vec<u8>,
    /// Every seq at or below this is cleared for the user.
    pub cleared_seq: u64,
}

impl<'a> Hidden<'a> {
    /// Loads the user's clear floor of `conv`.
    pub fn load(
        store: &'a dyn Store,
        app: u64,
        user: &str,
        conv: &[u8],
    ) -> Result<Self, StoreError> {
        let cleared_seq = store
            .get(&cleared_key(app, user, conv))?
            .and_then(|v| keys::be_u64(&v, 0))
            .unwrap_or(0);
        Ok(Self {
            store,
            app,
            user: user.to_owned(),
            conv: conv.to_vec(),
            cleared_seq,
        })
    }

    /// Whether the message at `seq` is deleted or cleared for the user.
    pub fn hides(&self, seq: u64) -> Result<bool, StoreError> {
        if seq <= self.cleared_seq {
            return Ok(true);
        }
        Ok(self
            .store
            .get(&hidden_key(self.app, &self.user, &self.conv, seq))?
            .is_some())
    }
}

/// `PullMessageChanges`: the user's message changes after `cursor`, oldest first.
pub fn pull_changes(
    store: &dyn Store,
    app: u64,
    user: &str,
    req: &pb::PullMessageChangesReq,
) -> ApiResult<RespKind> {
    let limit = if req.limit == 0 {
        CHANGE_PAGE
    } else {
        req.limit.min(CHANGE_PAGE)
    } as usize;
    let start = Key::new(tag::MSG_CHANGE, app)
        .s(user.as_bytes())
        .n(req.cursor.saturating_add(1))
        .done();
    let end = Key::new(tag::MSG_CHANGE, app)
        .s(user.as_bytes())
        .prefix_range()
        .1;
    let entries = store.scan(&start, &end, limit + 1, false)?;
    let has_more = entries.len() > limit;
    let mut cursor = req.cursor;
    let mut changes = Vec::with_capacity(entries.len().min(limit));
    for (k, v) in entries.into_iter().take(limit) {
        cursor = keys::trailing_u64(&k).unwrap_or(cursor);
        changes.push(pb::MessageChange::decode(&v[..]).map_err(StoreError::from)?);
    }
    Ok(RespKind::PullMessageChanges(pb::PullMessageChangesResp {
        changes,
        cursor,
        has_more,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    fn put(store: &MemStore, k: &[u8], v: &[u8]) {
        store.apply(&[(k, Some(v))]).unwrap();
    }

    #[test]
    fn targeted_messages_refuse_at_lists_and_large_group_types() {
        let mut m = pb::Message {
            target_user_list: vec!["bob".into()],
            ..Default::default()
        };
        assert!(check_targeted(&m, "Work").is_ok());
        assert_eq!(
            check_targeted(&m, "Community").unwrap_err().code,
            codes::ERR_SVR_GROUP_INVALID_PARAMS
        );
        m.group_at_user_list = vec!["bob".into()];
        assert!(check_targeted(&m, "Work").is_err());
        m.target_user_list.clear();
        assert!(check_targeted(&m, "AVChatRoom").is_ok());
    }

    #[test]
    fn hidden_answers_deleted_seqs_and_the_clear_floor() {
        let store = MemStore::default();
        let conv = keys::c2c_conv("alice", "bob");
        put(&store, &hidden_key(1, "alice", &conv, 7), b"");
        put(&store, &cleared_key(1, "alice", &conv), &3u64.to_be_bytes());
        let h = Hidden::load(&store, 1, "alice", &conv).unwrap();
        assert_eq!(h.cleared_seq, 3);
        let hidden: Vec<u64> = (1..=8).filter(|&s| h.hides(s).unwrap()).collect();
        assert_eq!(hidden, [1, 2, 3, 7]);
        // Only for that user.
        let b = Hidden::load(&store, 1, "bob", &conv).unwrap();
        assert!((1..=8).all(|s| !b.hides(s).unwrap()));
    }

    #[test]
    fn the_change_log_pages_from_the_cursor() {
        let store = MemStore::default();
        for v in 1..=5u64 {
            let c = pb::MessageChange {
                version: v,
                kind: pb::MessageChangeKind::MessageChangeDeleted as i32,
                seqs: vec![v],
                ..Default::default()
            };
            let k = Key::new(tag::MSG_CHANGE, 1).s(b"alice").n(v).done();
            put(&store, &k, &c.encode_to_vec());
        }
        let page = |cursor, limit| {
            let req = pb::PullMessageChangesReq { cursor, limit };
            match pull_changes(&store, 1, "alice", &req).unwrap() {
                RespKind::PullMessageChanges(p) => p,
                other => panic!("unexpected {other:?}"),
            }
        };
        let p = page(0, 2);
        assert_eq!(
            p.changes.iter().map(|c| c.version).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!((p.cursor, p.has_more), (2, true));
        let p = page(2, 10);
        assert_eq!(
            p.changes.iter().map(|c| c.version).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert_eq!((p.cursor, p.has_more), (5, false));
        let p = page(5, 10);
        assert!(p.changes.is_empty());
        assert_eq!((p.cursor, p.has_more), (5, false));
        // Another user's log is separate.
        let req = pb::PullMessageChangesReq {
            cursor: 0,
            limit: 10,
        };
        match pull_changes(&store, 1, "bob", &req).unwrap() {
            RespKind::PullMessageChanges(p) => assert!(p.changes.is_empty()),
            other => panic!("unexpected {other:?}"),
        }
    }
}
