//! Message reactions and extensions: small records kept per stored message, written by the commit
//! task and read on demand. Every change is recorded in the message change log of each user who
//! sees the message (`MESSAGE_CHANGE_ANNOTATED` carrying an `AnnotationPush`), which pushes it live
//! to their sessions and keeps it for the devices that were offline (they catch up with
//! `PullMessageChanges` at reconnect, like revokes). The answer carries the requester's entry's
//! version, so that the requesting device leaves its own change out when it pulls the log.
//! The conversations are not touched: a reaction moves neither the last message nor unread.
//!
//! Keys: `E app conv seq` → encoded `pb::MessageReactions` (every reaction with all its users, in
//! user id order); `T app conv seq` → encoded `pb::GetExtensionsResp` (every key, value, version).
//! One record per message keeps each write a read-modify-write of one key in the commit task.
//!
//! Extensions are compare-and-set per key: a write that names the version it expects
//! (`check_version`) fails for that key with 23001 when the stored version differs; other keys of
//! the same request still apply.

use chime_proto::pb::{self, response::Kind as RespKind};
use chime_proto::{codes, ids};
use prost::Message as _;

use crate::commit::{Core, Effect, now_ms};
use crate::error::{ApiError, ApiResult, StoreError};
use crate::keys::{self, Key, tag};
use crate::store::Store;
use crate::txn::Txn;

/// Longest reaction id and extension key (bytes).
pub const MAX_ID_BYTES: usize = 100;
/// Longest extension value (bytes).
pub const MAX_VALUE_BYTES: usize = 1024;
/// Most extension keys per message.
pub const MAX_EXTENSIONS: usize = 300;
/// Most keys set or deleted per request.
pub const MAX_KEYS_PER_CALL: usize = 20;
/// Most distinct reactions per message.
pub const MAX_REACTIONS: usize = 100;
/// Users listed with each reaction in a push.
pub const PUSH_USERS: usize = 10;
/// Extension write conflict (the seed's code).
pub const ERR_EXTENSION_CONFLICT: i32 = 23001;
/// Extension to delete does not exist (the seed's code).
pub const ERR_EXTENSION_NOT_EXIST: i32 = 23004;

/// An annotation write, staged by the commit task.
#[derive(Debug)]
pub enum AnnotationOp {
    /// Add or remove the acting user's reaction.
    Reaction(pb::ReactionReq),
    /// Set / delete extensions.
    Extensions(pb::ExtensionsReq),
}

/// Reads one key (the store, or the commit task's transaction).
type Getter<'a> = dyn Fn(&[u8]) -> Result<Option<Vec<u8>>, StoreError> + 'a;

/// The conversation key and the message at `seq`, checked for the user: a C2C party, or a
/// member of the group who may see the message.
fn locate(
    store_get: &Getter<'_>,
    app: u64,
    user: &str,
    conv: Option<&pb::ConvRef>,
    seq: u64,
    msg_id: &str,
) -> ApiResult<(Vec<u8>, pb::Message)> {
    let c = conv.ok_or_else(|| ApiError::new(codes::ERR_SVR_INVALID_PARAMS, "conv is required"))?;
    let conv = match c.conv_type() {
        pb::ConvType::C2c => {
            if !ids::is_valid_user_id(&c.target) {
                return Err(ApiError::new(codes::ERR_INVALID_USER_ID, "invalid user id"));
            }
            keys::c2c_conv(user, &c.target)
        }
        pb::ConvType::Group => {
            if !ids::is_valid_group_id(&c.target) {
                return Err(ApiError::new(
                    codes::ERR_INVALID_GROUP_ID,
                    "invalid group id",
                ));
            }
            // A topic's messages: its community's members.
            let governing = crate::community::membership_group(store_get, app, &c.target)?;
            let member = Key::new(tag::MEMBER, app)
                .s(governing.as_bytes())
                .s(user.as_bytes())
                .done();
            if store_get(&member)?.is_none() {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                    "not a member of the group",
                ));
            }
            keys::group_conv(&c.target)
        }
        pb::ConvType::Unspecified => {
            return Err(ApiError::new(
                codes::ERR_SVR_INVALID_PARAMS,
                "conv_type is required",
            ));
        }
    };
    let not_found = || ApiError::new(crate::lifecycle::ERR_MSG_NOT_FOUND, "no such message");
    let raw = store_get(&Key::new(tag::MSG, app).s(&conv).n(seq).done())?.ok_or_else(not_found)?;
    let m = pb::Message::decode(&raw[..]).map_err(StoreError::from)?;
    let visible = m.target_user_list.is_empty()
        || m.sender == user
        || m.target_user_list.iter().any(|u| u == user);
    if (!msg_id.is_empty() && m.msg_id != msg_id) || !visible {
        return Err(not_found());
    }
    Ok((conv, m))
}

fn reaction_key(app: u64, conv: &[u8], seq: u64) -> Vec<u8> {
    Key::new(tag::REACTION, app).s(conv).n(seq).done()
}

fn extension_key(app: u64, conv: &[u8], seq: u64) -> Vec<u8> {
    Key::new(tag::EXTENSION, app).s(conv).n(seq).done()
}

fn load_reactions(raw: Option<Vec<u8>>) -> ApiResult<pb::MessageReactions> {
    Ok(match raw {
        Some(v) => pb::MessageReactions::decode(&v[..]).map_err(StoreError::from)?,
        None => pb::MessageReactions::default(),
    })
}

fn load_extensions(raw: Option<Vec<u8>>) -> ApiResult<Vec<pb::MessageExtension>> {
    Ok(match raw {
        Some(v) => {
            pb::GetExtensionsResp::decode(&v[..])
                .map_err(StoreError::from)?
                .extensions
        }
        None => Vec::new(),
    })
}

/// The users who see `m` in `conv` (C2C: both parties; group: its members who may see it).
fn audience(
    core: &mut Core,
    txn: &Txn<'_>,
    app: u64,
    conv: &[u8],
    m: &pb::Message,
) -> ApiResult<Vec<String>> {
    let mut out = match keys::parse_conv(conv) {
        Some(keys::Conv::C2c(a, b)) => vec![a, b],
        Some(keys::Conv::Group(g)) => {
            match core.group(txn, app, &crate::community::membership_group(txn, app, &g)?)? {
                Some(state) => state
                    .members
                    .keys()
                    .filter(|u| {
                        m.target_user_list.is_empty()
                            || m.sender == **u
                            || m.target_user_list.contains(u)
                    })
                    .cloned()
                    .collect(),
                None => Vec::new(),
            }
        }
        None => Vec::new(),
    };
    out.sort();
    out.dedup();
    Ok(out)
}

/// Records the change `push` describes in the message change log of every user in `users`
/// (`MESSAGE_CHANGE_ANNOTATED`), which pushes it live to their sessions but `skip` and keeps it
/// for the devices that were offline. Answers the version of `requester`'s entry (0 = none).
#[allow(clippy::too_many_arguments)]
fn record_for(
    txn: &mut Txn<'_>,
    fx: &mut Vec<Effect>,
    app: u64,
    users: &[String],
    conv: &[u8],
    push: pb::AnnotationPush,
    requester: &str,
    skip: u64,
) -> ApiResult<u64> {
    let mut own = 0;
    for u in users {
        let mut annotation = push.clone();
        annotation.conv = keys::conv_ref_for(conv, u);
        let change = pb::MessageChange {
            kind: pb::MessageChangeKind::MessageChangeAnnotated as i32,
            op_user: push.op_user.clone(),
            time_ms: now_ms(),
            annotation: Some(annotation),
            ..Default::default()
        };
        let version = crate::lifecycle::append_change(txn, app, u, conv, change, skip, fx)?;
        if u == requester {
            own = version;
        }
    }
    Ok(own)
}

/// Stages one annotation write.
pub(crate) fn stage(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    op: AnnotationOp,
    skip: u64,
    fx: &mut Vec<Effect>,
) -> ApiResult<RespKind> {
    match op {
        AnnotationOp::Reaction(req) => reaction(core, txn, app, user, req, skip, fx),
        AnnotationOp::Extensions(req) => extensions(core, txn, app, user, req, skip, fx),
    }
}

fn check_id(what: &str, id: &str) -> ApiResult<()> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            format!("{what} must be 1..={MAX_ID_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn reaction(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    req: pb::ReactionReq,
    skip: u64,
    fx: &mut Vec<Effect>,
) -> ApiResult<RespKind> {
    check_id("reaction_id", &req.reaction_id)?;
    let get = |k: &[u8]| txn.get(k);
    let (conv, m) = locate(&get, app, user, req.conv.as_ref(), req.seq, &req.msg_id)?;
    let key = reaction_key(app, &conv, m.seq);
    let mut all = load_reactions(txn.get(&key)?)?;
    let pos = all
        .reactions
        .iter()
        .position(|r| r.reaction_id == req.reaction_id);
    let has = pos.is_some_and(|i| all.reactions[i].partial_user_list.iter().any(|u| u == user));
    if has == req.add {
        return Ok(RespKind::Reaction(pb::ReactionResp::default()));
    }
    let i = match pos {
        Some(i) => i,
        None => {
            if all.reactions.len() >= MAX_REACTIONS {
                return Err(ApiError::new(
                    codes::ERR_SVR_INVALID_PARAMS,
                    format!("at most {MAX_REACTIONS} different reactions per message"),
                ));
            }
            all.reactions.push(pb::MessageReaction {
                reaction_id: req.reaction_id.clone(),
                ..Default::default()
            });
            all.reactions.len() - 1
        }
    };
    let users = &mut all.reactions[i].partial_user_list;
    if req.add {
        let at = users.partition_point(|u| u.as_str() < user);
        users.insert(at, user.to_owned());
    } else {
        users.retain(|u| u != user);
    }
    let changed = pb::MessageReaction {
        reaction_id: req.reaction_id,
        total_user_count: users.len() as u32,
        partial_user_list: users.iter().take(PUSH_USERS).cloned().collect(),
        reacted_by_myself: false,
    };
    all.reactions.retain(|r| !r.partial_user_list.is_empty());
    for r in &mut all.reactions {
        r.total_user_count = r.partial_user_list.len() as u32;
    }
    if all.reactions.is_empty() {
        txn.del(key);
    } else {
        all.msg_id = m.msg_id.clone();
        all.seq = m.seq;
        txn.put(key, all.encode_to_vec());
    }
    let push = pb::AnnotationPush {
        msg_id: m.msg_id.clone(),
        seq: m.seq,
        op_user: user.to_owned(),
        reactions: vec![changed],
        ..Default::default()
    };
    let to = audience(core, txn, app, &conv, &m)?;
    let change_version = record_for(txn, fx, app, &to, &conv, push, user, skip)?;
    Ok(RespKind::Reaction(pb::ReactionResp { change_version }))
}

fn extensions(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    req: pb::ExtensionsReq,
    skip: u64,
    fx: &mut Vec<Effect>,
) -> ApiResult<RespKind> {
    let get = |k: &[u8]| txn.get(k);
    let (conv, m) = locate(&get, app, user, req.conv.as_ref(), req.seq, &req.msg_id)?;
    let key = extension_key(app, &conv, m.seq);
    let mut all = load_extensions(txn.get(&key)?)?;
    let delete_keys: Vec<String> = if req.delete_all {
        all.iter().map(|e| e.key.clone()).collect()
    } else {
        req.delete_keys
    };
    if !req.delete_all && req.set.len() + delete_keys.len() > MAX_KEYS_PER_CALL {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            format!("at most {MAX_KEYS_PER_CALL} keys per call"),
        ));
    }
    if req.set.is_empty() && delete_keys.is_empty() && !req.delete_all {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            "no extension to set or delete",
        ));
    }
    for e in &req.set {
        check_id("extension key", &e.key)?;
        if e.value.len() > MAX_VALUE_BYTES {
            return Err(ApiError::new(
                codes::ERR_SVR_INVALID_PARAMS,
                format!("extension values are at most {MAX_VALUE_BYTES} bytes"),
            ));
        }
    }
    let mut change_version = 0;
    let mut results = Vec::new();
    let mut changed = Vec::new();
    let mut deleted = Vec::new();
    for e in req.set {
        let pos = all.iter().position(|x| x.key == e.key);
        let version = pos.map_or(0, |i| all[i].version);
        if e.check_version && e.version != version {
            results.push(pb::ExtensionResult {
                key: e.key,
                code: ERR_EXTENSION_CONFLICT,
                extension: pos.map(|i| all[i].clone()),
            });
            continue;
        }
        if pos.is_none() && all.len() >= MAX_EXTENSIONS {
            return Err(ApiError::new(
                codes::ERR_SVR_INVALID_PARAMS,
                format!("at most {MAX_EXTENSIONS} extensions per message"),
            ));
        }
        let stored = pb::MessageExtension {
            key: e.key.clone(),
            value: e.value,
            version: version + 1,
            check_version: false,
        };
        match pos {
            Some(i) => all[i] = stored.clone(),
            None => all.push(stored.clone()),
        }
        changed.push(stored.clone());
        results.push(pb::ExtensionResult {
            key: e.key,
            code: 0,
            extension: Some(stored),
        });
    }
    for k in delete_keys {
        let Some(i) = all.iter().position(|x| x.key == k) else {
            results.push(pb::ExtensionResult {
                key: k,
                code: ERR_EXTENSION_NOT_EXIST,
                extension: None,
            });
            continue;
        };
        all.remove(i);
        deleted.push(k.clone());
        results.push(pb::ExtensionResult {
            key: k,
            code: 0,
            extension: None,
        });
    }
    if !changed.is_empty() || !deleted.is_empty() {
        if all.is_empty() {
            txn.del(key);
        } else {
            all.sort_by(|a, b| a.key.cmp(&b.key));
            txn.put(
                key,
                pb::GetExtensionsResp {
                    extensions: all.clone(),
                }
                .encode_to_vec(),
            );
        }
        let push = pb::AnnotationPush {
            msg_id: m.msg_id.clone(),
            seq: m.seq,
            op_user: user.to_owned(),
            extensions_changed: changed,
            extensions_deleted: deleted,
            ..Default::default()
        };
        let to = audience(core, txn, app, &conv, &m)?;
        change_version = record_for(txn, fx, app, &to, &conv, push, user, skip)?;
    }
    Ok(RespKind::Extensions(pb::ExtensionsResp {
        results,
        change_version,
    }))
}

/// `GetReactions`: the reactions of each message, with up to `max_user_count` users each.
pub fn get_reactions(
    store: &dyn Store,
    app: u64,
    user: &str,
    req: &pb::GetReactionsReq,
) -> ApiResult<RespKind> {
    let get = |k: &[u8]| store.get(k);
    let mut results = Vec::new();
    for &seq in &req.seqs {
        let (conv, m) = locate(&get, app, user, req.conv.as_ref(), seq, "")?;
        let mut r = load_reactions(store.get(&reaction_key(app, &conv, seq))?)?;
        for x in &mut r.reactions {
            x.reacted_by_myself = x.partial_user_list.iter().any(|u| u == user);
            x.partial_user_list.truncate(req.max_user_count as usize);
        }
        r.msg_id = m.msg_id;
        r.seq = seq;
        results.push(r);
    }
    Ok(RespKind::GetReactions(pb::GetReactionsResp { results }))
}

/// `GetReactionUsers`: one page of the users of one reaction, by user id.
pub fn get_reaction_users(
    store: &dyn Store,
    app: u64,
    user: &str,
    req: &pb::GetReactionUsersReq,
) -> ApiResult<RespKind> {
    let get = |k: &[u8]| store.get(k);
    let (conv, m) = locate(&get, app, user, req.conv.as_ref(), req.seq, &req.msg_id)?;
    let all = load_reactions(store.get(&reaction_key(app, &conv, m.seq))?)?;
    let users = all
        .reactions
        .into_iter()
        .find(|r| r.reaction_id == req.reaction_id)
        .map(|r| r.partial_user_list)
        .unwrap_or_default();
    let count = if req.count == 0 {
        100
    } else {
        req.count.min(100)
    } as usize;
    let offset = usize::try_from(req.next_seq).unwrap_or(usize::MAX);
    let user_ids: Vec<String> = users.iter().skip(offset).take(count).cloned().collect();
    let next = offset.saturating_add(user_ids.len());
    Ok(RespKind::GetReactionUsers(pb::GetReactionUsersResp {
        is_finished: next >= users.len(),
        next_seq: next as u64,
        user_ids,
    }))
}

/// `GetExtensions`: every extension of a message.
pub fn get_extensions(
    store: &dyn Store,
    app: u64,
    user: &str,
    req: &pb::GetExtensionsReq,
) -> ApiResult<RespKind> {
    let get = |k: &[u8]| store.get(k);
    let (conv, m) = locate(&get, app, user, req.conv.as_ref(), req.seq, &req.msg_id)?;
    let extensions = load_extensions(store.get(&extension_key(app, &conv, m.seq))?)?;
    Ok(RespKind::GetExtensions(pb::GetExtensionsResp {
        extensions,
    }))
}
