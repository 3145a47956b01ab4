//! Read-only requests (sync, pull, group lookups), answered straight from the store by the
//! connection's tasks, concurrently with the commit task (sled reads are lock-free).
//!
//! Visibility rules live here: a targeted group message is visible to its targets and its sender
//! only; a group member sees a Work/Public/Community group's history from the seq after their
//! join, a Meeting's from seq 1; nobody is served messages older than the retention.

use chime_proto::pb::{self, response::Kind as RespKind};
use chime_proto::{codes, ids, unread};
use prost::Message as _;

use crate::commit::now_ms;
use crate::config::Tunables;
use crate::error::{ApiError, ApiResult, StoreError};
use crate::groups::{info_for, role};
use crate::keys::{self, Conv, Key, tag};
use crate::store::Store;

/// Most messages scanned to compute one unread count (older unread are not counted; the count
/// saturates at this many).
pub const UNREAD_SCAN_CAP: u64 = 10_000;
/// Most messages scanned backwards to find a conversation's last message.
pub const LAST_MESSAGE_SCAN_CAP: usize = 200;
/// Default and largest sync page.
pub const SYNC_PAGE: u32 = 100;
/// Default and largest pull page.
pub const PULL_PAGE: u32 = 100;
/// Default and largest member page.
pub const MEMBER_PAGE: u32 = 100;

fn get_u64(store: &dyn Store, key: &[u8]) -> Result<u64, StoreError> {
    Ok(store
        .get(key)?
        .and_then(|v| keys::be_u64(&v, 0))
        .unwrap_or(0))
}

/// The members of a group: (join seq, member), in user id order.
pub fn load_members(
    store: &dyn Store,
    app: u64,
    group_id: &str,
) -> Result<Vec<(u64, pb::GroupMember)>, StoreError> {
    let (start, end) = Key::new(tag::MEMBER, app)
        .s(group_id.as_bytes())
        .prefix_range();
    let mut out = Vec::new();
    for (_, v) in store.scan(&start, &end, usize::MAX, false)? {
        let join_seq = keys::be_u64(&v, 0).ok_or_else(|| StoreError::Corrupt("member".into()))?;
        out.push((join_seq, pb::GroupMember::decode(&v[8..])?));
    }
    Ok(out)
}

pub(crate) fn member(
    store: &dyn Store,
    app: u64,
    group_id: &str,
    user: &str,
) -> Result<Option<(u64, pb::GroupMember)>, StoreError> {
    let key = Key::new(tag::MEMBER, app)
        .s(group_id.as_bytes())
        .s(user.as_bytes())
        .done();
    match store.get(&key)? {
        None => Ok(None),
        Some(v) => {
            let join_seq =
                keys::be_u64(&v, 0).ok_or_else(|| StoreError::Corrupt("member".into()))?;
            Ok(Some((join_seq, pb::GroupMember::decode(&v[8..])?)))
        }
    }
}

pub(crate) fn group_info(
    store: &dyn Store,
    app: u64,
    group_id: &str,
) -> Result<Option<pb::GroupInfo>, StoreError> {
    match store.get(&Key::new(tag::GROUP, app).s(group_id.as_bytes()).done())? {
        None => Ok(None),
        Some(v) => Ok(Some(pb::GroupInfo::decode(&v[..])?)),
    }
}

fn head(store: &dyn Store, app: u64, conv: &[u8]) -> Result<u64, StoreError> {
    get_u64(store, &Key::new(tag::HEAD, app).s(conv).done())
}

fn visible(msg: &pb::Message, user: &str) -> bool {
    msg.target_user_list.is_empty()
        || msg.sender == user
        || msg.target_user_list.iter().any(|u| u == user)
}

/// What `user` may read of a conversation.
struct Access {
    conv: Vec<u8>,
    conv_ref: pb::ConvRef,
    /// Lowest seq visible (join point); 1 for C2C.
    floor: u64,
    /// Member of the group (always true for C2C).
    member: bool,
}

fn access(store: &dyn Store, app: u64, user: &str, conv_ref: &pb::ConvRef) -> ApiResult<Access> {
    match conv_ref.conv_type() {
        pb::ConvType::C2c => {
            if !ids::is_valid_user_id(&conv_ref.target) {
                return Err(ApiError::new(codes::ERR_INVALID_USER_ID, "invalid user id"));
            }
            Ok(Access {
                conv: keys::c2c_conv(user, &conv_ref.target),
                conv_ref: conv_ref.clone(),
                floor: 1,
                member: true,
            })
        }
        pb::ConvType::Group => {
            let g = &conv_ref.target;
            if !ids::is_valid_group_id(g) {
                return Err(ApiError::new(
                    codes::ERR_INVALID_GROUP_ID,
                    "invalid group id",
                ));
            }
            // A community topic: its community's members read it, from its first message.
            let owner = crate::community::membership_group(store, app, g)?;
            let info = group_info(store, app, &owner)?;
            let m = member(store, app, &owner, user)?;
            let floor = match (&info, &m) {
                _ if owner != *g => 1,
                (Some(i), Some((join_seq, _))) if i.group_type != "Meeting" => join_seq + 1,
                _ => 1,
            };
            Ok(Access {
                conv: keys::group_conv(g),
                conv_ref: conv_ref.clone(),
                floor,
                member: info.is_some() && m.is_some(),
            })
        }
        pb::ConvType::Unspecified => Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            "conv_type is required",
        )),
    }
}

/// The lowest seq a user may fetch: the join floor, the oldest stored message.
fn min_seq(store: &dyn Store, app: u64, a: &Access, max_seq: u64) -> Result<u64, StoreError> {
    if max_seq == 0 {
        return Ok(a.floor.max(1));
    }
    let (start, end) = Key::new(tag::MSG, app).s(&a.conv).prefix_range();
    let oldest = store
        .scan(&start, &end, 1, false)?
        .first()
        .and_then(|(k, _)| keys::trailing_u64(k))
        .unwrap_or(max_seq + 1);
    Ok(oldest.max(a.floor))
}

fn scan_msgs(
    store: &dyn Store,
    app: u64,
    conv: &[u8],
    from: u64,
    to: u64,
    limit: usize,
    reverse: bool,
) -> Result<Vec<pb::Message>, StoreError> {
    if from > to {
        return Ok(Vec::new());
    }
    let start = Key::new(tag::MSG, app).s(conv).n(from).done();
    let end = match to.checked_add(1) {
        Some(t) => Key::new(tag::MSG, app).s(conv).n(t).done(),
        None => Key::new(tag::MSG, app).s(conv).prefix_range().1,
    };
    store
        .scan(&start, &end, limit, reverse)?
        .into_iter()
        .map(|(_, v)| pb::Message::decode(&v[..]).map_err(StoreError::from))
        .collect()
}

/// Unread count of `user` in `conv` for `read_seq` (scans at most [`UNREAD_SCAN_CAP`]).
pub fn unread_count(
    store: &dyn Store,
    app: u64,
    user: &str,
    conv: &[u8],
    read_seq: u64,
) -> Result<u32, StoreError> {
    unread_at(store, app, user, conv, read_seq).map(|(n, _)| n)
}

/// [`unread_count`] with the conversation's max seq it was counted at.
pub fn unread_at(
    store: &dyn Store,
    app: u64,
    user: &str,
    conv: &[u8],
    read_seq: u64,
) -> Result<(u32, u64), StoreError> {
    let max_seq = head(store, app, conv)?;
    let from = (read_seq + 1).max(max_seq.saturating_sub(UNREAD_SCAN_CAP - 1));
    let msgs = scan_msgs(store, app, conv, from, max_seq, usize::MAX, false)?;
    let n = msgs
        .iter()
        .filter(|m| visible(m, user) && unread::counts_as_unread(m, user, read_seq))
        .count() as u32;
    Ok((n, max_seq))
}

fn conv_state(
    store: &dyn Store,
    app: u64,
    user: &str,
    a: &Access,
    retention_ms: i64,
) -> Result<pb::ConvState, StoreError> {
    let max_seq = head(store, app, &a.conv)?;
    let read_seq = get_u64(
        store,
        &Key::new(tag::READ, app)
            .s(user.as_bytes())
            .s(&a.conv)
            .done(),
    )?;
    let version = get_u64(
        store,
        &Key::new(tag::VER, app).s(user.as_bytes()).s(&a.conv).done(),
    )?;
    let mut state = pb::ConvState {
        conv: Some(a.conv_ref.clone()),
        max_seq,
        read_seq,
        version,
        ..Default::default()
    };
    if !a.member {
        // Nothing is fetchable for a user who left or was removed: no pull.
        state.min_seq = max_seq + 1;
        return Ok(state);
    }
    let min = min_seq(store, app, a, max_seq)?;
    state.min_seq = min;
    let cutoff = now_ms().saturating_sub(retention_ms);
    let recent = scan_msgs(
        store,
        app,
        &a.conv,
        min,
        max_seq,
        LAST_MESSAGE_SCAN_CAP,
        true,
    )?;
    let hidden = crate::lifecycle::Hidden::load(store, app, user, &a.conv)?;
    state.last_message = recent.into_iter().find(|m| {
        visible(m, user)
            && !m.exclude_from_last_message
            && m.server_time_ms >= cutoff
            && !hidden.hides(m.seq).unwrap_or(false)
    });
    let from = (read_seq + 1)
        .max(min)
        .max(max_seq.saturating_sub(UNREAD_SCAN_CAP - 1));
    state.unread_count = scan_msgs(store, app, &a.conv, from, max_seq, usize::MAX, false)?
        .iter()
        .filter(|m| {
            visible(m, user)
                && m.server_time_ms >= cutoff
                && unread::counts_as_unread(m, user, read_seq)
                && !hidden.hides(m.seq).unwrap_or(false)
        })
        .count() as u32;
    Ok(state)
}

fn conv_ref_of(conv: &[u8], user: &str) -> Option<pb::ConvRef> {
    match keys::parse_conv(conv)? {
        Conv::C2c(a, b) => Some(pb::ConvRef {
            conv_type: pb::ConvType::C2c as i32,
            target: if a == user { b } else { a },
        }),
        Conv::Group(g) => Some(pb::ConvRef {
            conv_type: pb::ConvType::Group as i32,
            target: g,
        }),
    }
}

/// Groups `user` belongs to, with their info as the user sees it.
pub fn joined_groups(store: &dyn Store, app: u64, user: &str) -> ApiResult<Vec<pb::GroupInfo>> {
    let (start, end) = Key::new(tag::JOINED, app).s(user.as_bytes()).prefix_range();
    let prefix_len = start.len();
    let mut out = Vec::new();
    for (k, _) in store.scan(&start, &end, usize::MAX, false)? {
        let Some(g) = keys::trailing_str(&k, prefix_len) else {
            continue;
        };
        if let (Some(info), Some((_, m))) =
            (group_info(store, app, &g)?, member(store, app, &g, user)?)
        {
            let max_seq = head(store, app, &keys::group_conv(&g))?;
            out.push(info_for(&info, &m.role, m.join_time_ms, max_seq));
        }
    }
    Ok(out)
}

/// `Sync`: the conversations that changed since the cursor, then (on the last page) the joined
/// groups whose newest seq is beyond what the client holds.
pub fn sync(
    store: &dyn Store,
    tunables: &Tunables,
    app: u64,
    user: &str,
    req: &pb::SyncReq,
) -> ApiResult<RespKind> {
    let limit = if req.limit == 0 {
        SYNC_PAGE
    } else {
        req.limit.min(SYNC_PAGE)
    } as usize;
    let start = Key::new(tag::LOG, app)
        .s(user.as_bytes())
        .n(req.cursor.saturating_add(1))
        .done();
    let end = Key::new(tag::LOG, app).s(user.as_bytes()).prefix_range().1;
    let entries = store.scan(&start, &end, limit + 1, false)?;
    let has_more = entries.len() > limit;
    let retention = tunables.retention_ms();
    let mut cursor = req.cursor;
    let mut conversations = Vec::new();
    let mut seen_groups = std::collections::HashSet::new();
    for (k, conv) in entries.into_iter().take(limit) {
        cursor = keys::trailing_u64(&k).unwrap_or(cursor);
        let Some(conv_ref) = conv_ref_of(&conv, user) else {
            continue;
        };
        if conv_ref.conv_type() == pb::ConvType::Group {
            seen_groups.insert(conv_ref.target.clone());
        }
        let a = access(store, app, user, &conv_ref)?;
        conversations.push(conv_state(store, app, user, &a, retention)?);
    }
    let joined = joined_groups(store, app, user)?;
    if !has_more {
        // The joined groups, and the topics of the joined communities (`community`).
        let mut heads: Vec<(String, u64)> = joined
            .iter()
            .map(|g| (g.group_id.clone(), g.max_seq))
            .collect();
        heads.extend(crate::community::joined_topics(store, app, &joined)?);
        for (group_id, max_seq) in heads {
            if seen_groups.contains(&group_id) {
                continue;
            }
            let known = req
                .known_groups
                .iter()
                .find(|k| k.conv.as_ref().is_some_and(|c| c.target == group_id))
                .map(|k| k.max_seq);
            if known.is_some_and(|k| k >= max_seq) {
                continue;
            }
            let conv_ref = pb::ConvRef {
                conv_type: pb::ConvType::Group as i32,
                target: group_id,
            };
            let a = access(store, app, user, &conv_ref)?;
            conversations.push(conv_state(store, app, user, &a, retention)?);
        }
    }
    Ok(RespKind::Sync(pb::SyncResp {
        conversations,
        cursor,
        has_more,
        joined_groups: joined,
        // Filled by `conversations::sync`.
        user_settings: None,
    }))
}

/// `PullMessages`: a seq range of one conversation, filtered to what the user may see.
pub fn pull(
    store: &dyn Store,
    tunables: &Tunables,
    app: u64,
    user: &str,
    req: &pb::PullMessagesReq,
) -> ApiResult<RespKind> {
    let conv_ref = req
        .conv
        .as_ref()
        .ok_or_else(|| ApiError::new(codes::ERR_SVR_INVALID_PARAMS, "conv is required"))?;
    let a = access(store, app, user, conv_ref)?;
    if conv_ref.conv_type() == pb::ConvType::Group {
        crate::community::check_history(store, app, user, &conv_ref.target)?;
    }
    if conv_ref.conv_type() == pb::ConvType::Group && !a.member {
        let exists = group_info(store, app, &conv_ref.target)?.is_some();
        return Err(if exists {
            ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "not a member of the group",
            )
        } else {
            ApiError::new(codes::ERR_SVR_GROUP_NOT_FOUND, "no such group")
        });
    }
    let max_seq = head(store, app, &a.conv)?;
    let min = min_seq(store, app, &a, max_seq)?;
    let limit = if req.limit == 0 {
        PULL_PAGE
    } else {
        req.limit.min(PULL_PAGE)
    } as usize;
    let from = req.from_seq.max(min);
    let to = if req.to_seq == 0 {
        max_seq
    } else {
        req.to_seq.min(max_seq)
    };
    let mut resp = pb::PullMessagesResp {
        max_seq,
        min_seq: min,
        ..Default::default()
    };
    if from > to {
        return Ok(RespKind::PullMessages(resp));
    }
    let cutoff = now_ms().saturating_sub(tunables.retention_ms());
    let (time_from, time_to) = (
        req.from_time_ms.max(cutoff),
        if req.to_time_ms == 0 {
            i64::MAX
        } else {
            req.to_time_ms
        },
    );
    // Scan the range in pages until `limit` visible messages are found or the range ends.
    let mut out = Vec::new();
    let (mut lo, mut hi) = (from, to);
    let (mut covered_from, mut covered_to) = (from, to);
    // Deleted / cleared for this user (message lifecycle): never served again.
    let hidden = crate::lifecycle::Hidden::load(store, app, user, &a.conv)?;
    lo = lo.max(hidden.cleared_seq.saturating_add(1));
    'scan: while lo <= hi {
        let page = scan_msgs(store, app, &a.conv, lo, hi, limit.max(16), req.newest_first)?;
        if page.is_empty() {
            break;
        }
        for m in page {
            if req.newest_first {
                hi = m.seq.saturating_sub(1);
            } else {
                lo = m.seq + 1;
            }
            if visible(&m, user)
                && (time_from..=time_to).contains(&m.server_time_ms)
                && !hidden.hides(m.seq)?
            {
                let seq = m.seq;
                out.push(m);
                if out.len() == limit {
                    if req.newest_first {
                        covered_from = seq;
                    } else {
                        covered_to = seq;
                    }
                    break 'scan;
                }
            }
        }
        if hi == 0 {
            break;
        }
    }
    out.sort_by_key(|m| m.seq);
    resp.messages = out;
    resp.covered_from = covered_from;
    resp.covered_to = covered_to;
    Ok(RespKind::PullMessages(resp))
}

/// `GetGroupsInfo`.
pub fn groups_info(
    store: &dyn Store,
    app: u64,
    user: &str,
    req: &pb::GetGroupsInfoReq,
) -> ApiResult<RespKind> {
    let mut groups = Vec::new();
    let mut result_codes = Vec::new();
    for g in &req.group_ids {
        if !ids::is_valid_group_id(g) {
            result_codes.push(codes::ERR_INVALID_GROUP_ID);
            groups.push(pb::GroupInfo {
                group_id: g.clone(),
                ..Default::default()
            });
            continue;
        }
        match group_info(store, app, g)? {
            None => {
                result_codes.push(codes::ERR_SVR_GROUP_NOT_FOUND);
                groups.push(pb::GroupInfo {
                    group_id: g.clone(),
                    ..Default::default()
                });
            }
            Some(info) => {
                let max_seq = head(store, app, &keys::group_conv(g))?;
                let (r, t) = match member(store, app, g, user)? {
                    Some((_, m)) => (m.role, m.join_time_ms),
                    None => (String::new(), 0),
                };
                result_codes.push(codes::OK);
                groups.push(info_for(&info, &r, t, max_seq));
            }
        }
    }
    Ok(RespKind::GetGroupsInfo(pb::GetGroupsInfoResp {
        groups,
        result_codes,
    }))
}

/// `GetGroupMembers`: paged by position (`next_seq` is the index of the next member).
pub fn group_members(
    store: &dyn Store,
    app: u64,
    user: &str,
    req: &pb::GetGroupMembersReq,
) -> ApiResult<RespKind> {
    if !ids::is_valid_group_id(&req.group_id) {
        return Err(ApiError::new(
            codes::ERR_INVALID_GROUP_ID,
            "invalid group id",
        ));
    }
    let Some(info) = group_info(store, app, &req.group_id)? else {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_NOT_FOUND,
            "no such group",
        ));
    };
    if info.group_type != "Public" && member(store, app, &req.group_id, user)?.is_none() {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_PERMISSION_DENIED,
            "not a member of the group",
        ));
    }
    let members = load_members(store, app, &req.group_id)?
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    Ok(page_members(members, req))
}

/// One page of `members` for `req`: filtered by role, owner first, then administrators, then
/// members, each by join time, then id; `next_seq` is the index of the next member.
pub(crate) fn page_members(
    members: Vec<pb::GroupMember>,
    req: &pb::GetGroupMembersReq,
) -> RespKind {
    let wanted = |m: &pb::GroupMember| match req.filter.as_str() {
        "owner" => m.role == role::OWNER,
        "admin" => m.role == role::ADMIN,
        "common" => m.role == role::MEMBER,
        _ => true,
    };
    let mut all: Vec<pb::GroupMember> = members.into_iter().filter(wanted).collect();
    // Owner first, then admins, then members; each by join time, then id.
    let rank = |m: &pb::GroupMember| match m.role.as_str() {
        role::OWNER => 0,
        role::ADMIN => 1,
        _ => 2,
    };
    all.sort_by(|a, b| {
        (rank(a), a.join_time_ms, &a.user_id).cmp(&(rank(b), b.join_time_ms, &b.user_id))
    });
    let count = if req.count == 0 {
        MEMBER_PAGE
    } else {
        req.count.min(MEMBER_PAGE)
    } as usize;
    let start = (req.next_seq as usize).min(all.len());
    let end = (start + count).min(all.len());
    RespKind::GetGroupMembers(pb::GetGroupMembersResp {
        members: all[start..end].to_vec(),
        next_seq: if end < all.len() { end as u64 } else { 0 },
        is_finished: end >= all.len(),
    })
}

/// Keys of messages older than the retention and of their idempotency records, at most about
/// `limit` (for pruning).
pub fn expired_message_keys(
    store: &dyn Store,
    retention_ms: i64,
    limit: usize,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let cutoff = now_ms().saturating_sub(retention_ms);
    let mut out = Vec::new();
    let start = vec![tag::MSG];
    let end = vec![tag::MSG + 1];
    let mut from = start;
    // Bounded walk over the message table, in pages.
    for _ in 0..1000 {
        let page = store.scan(&from, &end, 1024, false)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        from = last.clone();
        from.push(0);
        for (k, v) in page {
            if let Ok(m) = pb::Message::decode(&v[..])
                && m.server_time_ms < cutoff
            {
                // The idempotency record goes with the message.
                if let Some(app) = keys::be_u64(&k, 1) {
                    out.push(
                        Key::new(tag::IDEM, app)
                            .s(m.sender.as_bytes())
                            .s(m.msg_id.as_bytes())
                            .done(),
                    );
                }
                out.push(k);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    fn put_msg(store: &MemStore, conv: &[u8], seq: u64, time: i64, sender: &str) {
        let m = pb::Message {
            msg_id: format!("m{seq}"),
            sender: sender.into(),
            seq,
            server_time_ms: time,
            ..Default::default()
        };
        let (mk, mv) = (
            Key::new(tag::MSG, 1).s(conv).n(seq).done(),
            m.encode_to_vec(),
        );
        let (hk, hv) = (Key::new(tag::HEAD, 1).s(conv).done(), seq.to_be_bytes());
        store.apply(&[(&mk, Some(&mv)), (&hk, Some(&hv))]).unwrap();
    }

    #[test]
    fn expired_messages_are_found_for_pruning() {
        let store = MemStore::default();
        let conv = keys::c2c_conv("a", "b");
        let now = now_ms();
        put_msg(&store, &conv, 1, now - 10 * 86_400_000, "a");
        put_msg(&store, &conv, 2, now - 8 * 86_400_000, "a");
        put_msg(&store, &conv, 3, now, "b");
        let keys = expired_message_keys(&store, 7 * 86_400_000, 100).unwrap();
        let seqs: Vec<u64> = keys
            .iter()
            .filter(|k| k[0] == tag::MSG)
            .filter_map(|k| keys::trailing_u64(k))
            .collect();
        assert_eq!(seqs, vec![1, 2]);
        let idem = Key::new(tag::IDEM, 1).s(b"a").s(b"m1").done();
        assert!(keys.contains(&idem), "the idempotency record is pruned too");
        assert_eq!(keys.len(), 4);
        assert_eq!(
            expired_message_keys(&store, 7 * 86_400_000, 2)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn unread_counts_only_others_messages_after_the_read_position() {
        let store = MemStore::default();
        let conv = keys::c2c_conv("a", "b");
        let now = now_ms();
        for seq in 1..=5 {
            put_msg(
                &store,
                &conv,
                seq,
                now,
                if seq % 2 == 0 { "a" } else { "b" },
            );
        }
        // b sent 1, 3, 5.
        assert_eq!(unread_count(&store, 1, "a", &conv, 0).unwrap(), 3);
        assert_eq!(unread_count(&store, 1, "a", &conv, 3).unwrap(), 1);
        assert_eq!(unread_count(&store, 1, "b", &conv, 0).unwrap(), 2);
    }
}
