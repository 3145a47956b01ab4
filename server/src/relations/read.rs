//! The relationship reads, answered from the store on the blocking pool: profiles, the
//! relationship sync, friend checks, user status (with the registry's online sessions), follow
//! lists and counts.

use chime_proto::pb::{self, request::Kind as ReqKind, response::Kind as RespKind};
use chime_proto::{codes, ids};

use super::code;
use super::keys;
use crate::error::{ApiError, ApiResult, StoreError};
use crate::keys::{Key, tag};
use crate::registry::Registry;
use crate::store::Store;

/// Default and largest relationship sync page.
pub const SYNC_PAGE: u32 = 500;
/// Default and largest follow list page.
pub const FOLLOW_PAGE: u32 = 500;
/// Most users one profile / status / check request names.
pub const MAX_USERS: usize = 1_000;

/// Answers one relationship read of `me`.
pub fn read(
    store: &dyn Store,
    registry: &Registry,
    app: u64,
    me: &str,
    kind: ReqKind,
) -> ApiResult<RespKind> {
    match kind {
        ReqKind::GetProfiles(req) => {
            let mut profiles = Vec::new();
            for u in users(&req.user_ids)? {
                if let Some(p) = profile(store, app, &u)? {
                    profiles.push(p);
                }
            }
            Ok(RespKind::GetProfiles(pb::GetProfilesResp { profiles }))
        }
        ReqKind::RelationSync(req) => sync(store, app, me, &req).map(RespKind::RelationSync),
        ReqKind::CheckFriend(req) => {
            let mut results = Vec::new();
            for u in users(&req.user_ids)? {
                let mine = store.get(&keys::friend(app, me, &u))?.is_some();
                let theirs = req.both && store.get(&keys::friend(app, &u, me))?.is_some();
                results.push(pb::CheckFriendResult {
                    user_id: u,
                    relation: i32::from(mine) | (i32::from(theirs) << 1),
                });
            }
            Ok(RespKind::CheckFriend(pb::CheckFriendResp { results }))
        }
        ReqKind::GetUserStatus(req) => {
            let mut statuses = Vec::new();
            for u in users(&req.user_ids)? {
                statuses.push(status(store, registry, app, &u)?);
            }
            Ok(RespKind::GetUserStatus(pb::GetUserStatusResp { statuses }))
        }
        ReqKind::GetFollowList(req) => follow_list(store, app, me, &req),
        ReqKind::GetFollowInfo(req) => {
            let mut infos = Vec::new();
            for u in users(&req.user_ids)? {
                let following = ids_of(store, app, &u, b"o", "", usize::MAX)?;
                let followers = ids_of(store, app, &u, b"w", "", usize::MAX)?;
                let mutual = following.iter().filter(|x| followers.contains(x)).count();
                let a = store.get(&keys::following(app, me, &u))?.is_some();
                let b = store.get(&keys::following(app, &u, me))?.is_some();
                infos.push(pb::FollowInfo {
                    user_id: u,
                    followers_count: followers.len() as u64,
                    following_count: following.len() as u64,
                    mutual_count: mutual as u64,
                    follow_type: i32::from(a) | (i32::from(b) << 1),
                });
            }
            Ok(RespKind::GetFollowInfo(pb::GetFollowInfoResp { infos }))
        }
        _ => Err(ApiError::new(
            codes::ERR_SVR_MALFORMED,
            "unsupported request",
        )),
    }
}

fn users(list: &[String]) -> ApiResult<Vec<String>> {
    if list.is_empty() || list.len() > MAX_USERS {
        return Err(ApiError::new(
            code::INVALID_PARAMETERS,
            format!("user_ids must hold 1..={MAX_USERS} ids"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for u in list {
        if !ids::is_valid_user_id(u) {
            return Err(ApiError::new(
                codes::ERR_INVALID_USER_ID,
                format!("invalid user id {u:?}"),
            ));
        }
        if !out.contains(u) {
            out.push(u.clone());
        }
    }
    Ok(out)
}

fn decode<T: prost::Message + Default>(v: &[u8]) -> Result<T, StoreError> {
    Ok(T::decode(v)?)
}

fn registered(store: &dyn Store, app: u64, user: &str) -> Result<bool, StoreError> {
    Ok(store
        .get(&Key::new(tag::USER, app).s(user.as_bytes()).done())?
        .is_some())
}

/// The profile of a registered user (a default one until they set it); `None` when the account
/// does not exist.
pub fn profile(
    store: &dyn Store,
    app: u64,
    user: &str,
) -> Result<Option<pb::UserProfile>, StoreError> {
    if let Some(v) = store.get(&keys::profile(app, user))? {
        return decode(&v).map(Some);
    }
    if !registered(store, app, user)? {
        return Ok(None);
    }
    Ok(Some(pb::UserProfile {
        user_id: user.to_owned(),
        ..Default::default()
    }))
}

fn profile_or_id(store: &dyn Store, app: u64, user: &str) -> Result<pb::UserProfile, StoreError> {
    Ok(
        profile(store, app, user)?.unwrap_or_else(|| pb::UserProfile {
            user_id: user.to_owned(),
            ..Default::default()
        }),
    )
}

/// `user`'s status: online with the platforms of their sessions, offline, or never logged in.
pub fn status(
    store: &dyn Store,
    registry: &Registry,
    app: u64,
    user: &str,
) -> ApiResult<pb::UserStatus> {
    let devices = registry.platforms(app, user);
    let status_type = if !devices.is_empty() {
        1
    } else if registered(store, app, user)? {
        2
    } else {
        3
    };
    let custom_status = store
        .get(&keys::custom_status(app, user))?
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default();
    Ok(pb::UserStatus {
        user_id: user.to_owned(),
        status_type,
        custom_status,
        online_devices: devices.into_iter().map(|p| p as i32).collect(),
    })
}

/// The current value of one item of `me`'s relationship state.
fn item(store: &dyn Store, app: u64, me: &str, key: &str) -> Result<pb::RelationItem, StoreError> {
    let mut it = pb::RelationItem {
        key: key.to_owned(),
        ..Default::default()
    };
    let value = |k: Vec<u8>| store.get(&k);
    let found = match key.split_once('/') {
        None if key == keys::item::SELF_PROFILE => {
            it.profile = Some(profile_or_id(store, app, me)?);
            true
        }
        None if key == keys::item::APPLICATIONS_READ => {
            match value(keys::applications_read(app, me))? {
                Some(v) => {
                    it.read_time_ms = crate::keys::be_u64(&v, 0).unwrap_or(0) as i64;
                    true
                }
                None => false,
            }
        }
        Some(("f", u)) => match value(keys::friend(app, me, u))? {
            Some(v) => {
                let mut f: pb::Friend = decode(&v)?;
                f.profile = Some(profile_or_id(store, app, u)?);
                it.friend = Some(f);
                true
            }
            None => false,
        },
        Some(("a", rest)) => {
            let (incoming, u) = match rest.split_once('/') {
                Some(("i", u)) => (true, u),
                Some((_, u)) => (false, u),
                None => (false, rest),
            };
            match value(keys::application(app, me, incoming, u))? {
                Some(v) => {
                    let mut a: pb::FriendApplication = decode(&v)?;
                    a.profile = Some(profile_or_id(store, app, u)?);
                    it.application = Some(a);
                    true
                }
                None => false,
            }
        }
        Some(("b", u)) => match value(keys::black(app, me, u))? {
            Some(v) => {
                let mut b: pb::BlackEntry = decode(&v)?;
                b.profile = Some(profile_or_id(store, app, u)?);
                it.black = Some(b);
                true
            }
            None => false,
        },
        Some(("g", name)) => match value(keys::friend_group(app, me, name))? {
            Some(v) => {
                it.friend_group = Some(decode(&v)?);
                true
            }
            None => false,
        },
        _ => false,
    };
    it.removed = !found;
    Ok(it)
}

/// The items of `me` changed since `req.version`, oldest change first, paged.
pub fn sync(
    store: &dyn Store,
    app: u64,
    me: &str,
    req: &pb::RelationSyncReq,
) -> ApiResult<pb::RelationSyncResp> {
    let limit = if req.limit == 0 {
        SYNC_PAGE
    } else {
        req.limit.min(SYNC_PAGE)
    } as usize;
    let start = keys::log(app, me, req.version.saturating_add(1));
    let (_, end) = keys::base(app, me, b"L").prefix_range();
    let entries = store.scan(&start, &end, limit + 1, false)?;
    let has_more = entries.len() > limit;
    let mut version = req.version;
    let mut items = Vec::with_capacity(entries.len().min(limit));
    for (k, v) in entries.into_iter().take(limit) {
        version = crate::keys::trailing_u64(&k).unwrap_or(version);
        let key = String::from_utf8_lossy(&v).into_owned();
        let it = item(store, app, me, &key)?;
        // A device starting from nothing needs no removals.
        if it.removed && req.version == 0 {
            continue;
        }
        items.push(it);
    }
    if !has_more {
        let current =
            crate::keys::be_u64(&store.get(&keys::version(app, me))?.unwrap_or_default(), 0)
                .unwrap_or(0);
        version = version.max(current);
    }
    Ok(pb::RelationSyncResp {
        items,
        version,
        has_more,
    })
}

/// Up to `max` ids under `F app user table`, after `after` ("" = from the start).
fn ids_of(
    store: &dyn Store,
    app: u64,
    user: &str,
    table: &[u8],
    after: &str,
    max: usize,
) -> Result<Vec<String>, StoreError> {
    let base = keys::base(app, user, table);
    let (lo, hi) = base.clone().prefix_range();
    let start = if after.is_empty() {
        lo
    } else {
        let mut s = base.s(after.as_bytes()).done();
        s.push(0);
        s
    };
    let plen = keys::prefix_len(user, table);
    Ok(store
        .scan(&start, &hi, max, false)?
        .into_iter()
        .filter_map(|(k, _)| crate::keys::trailing_str(&k, plen))
        .collect())
}

fn follow_list(
    store: &dyn Store,
    app: u64,
    me: &str,
    req: &pb::GetFollowListReq,
) -> ApiResult<RespKind> {
    let count = if req.count == 0 {
        FOLLOW_PAGE
    } else {
        req.count.min(FOLLOW_PAGE)
    } as usize;
    let (table, mutual): (&[u8], bool) = match req.list() {
        pb::FollowList::Following => (b"o", false),
        pb::FollowList::Followers => (b"w", false),
        pb::FollowList::Mutual => (b"o", true),
        pb::FollowList::Unspecified => {
            return Err(ApiError::new(code::INVALID_PARAMETERS, "list is required"));
        }
    };
    let mut users = Vec::new();
    let mut cursor = req.cursor.clone();
    let mut finished = false;
    while users.len() < count {
        let page = ids_of(store, app, me, table, &cursor, count + 1)?;
        let more = page.len() > count;
        for u in page.into_iter().take(count) {
            cursor.clone_from(&u);
            if mutual && store.get(&keys::following(app, &u, me))?.is_none() {
                continue;
            }
            users.push(profile_or_id(store, app, &u)?);
            if users.len() == count {
                break;
            }
        }
        if !more {
            finished = ids_of(store, app, me, table, &cursor, 1)?.is_empty();
            break;
        }
    }
    Ok(RespKind::GetFollowList(pb::GetFollowListResp {
        users,
        next_cursor: if finished { String::new() } else { cursor },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use prost::Message as _;

    #[test]
    fn sync_pages_in_log_order_and_skips_removals_from_nothing() {
        let store = MemStore::default();
        let f = pb::Friend {
            user_id: "bob".into(),
            remark: "B".into(),
            ..Default::default()
        };
        let fe = f.encode_to_vec();
        let ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
            (keys::friend(1, "al", "bob"), Some(fe)),
            (keys::log(1, "al", 3), Some(b"f/bob".to_vec())),
            (keys::log(1, "al", 4), Some(b"f/carol".to_vec())),
            (keys::version(1, "al"), Some(4u64.to_be_bytes().to_vec())),
        ];
        let refs: Vec<_> = ops
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        store.apply(&refs).unwrap();
        let full = sync(
            &store,
            1,
            "al",
            &pb::RelationSyncReq {
                version: 0,
                limit: 0,
            },
        )
        .unwrap();
        assert_eq!(full.version, 4);
        assert!(!full.has_more);
        assert_eq!(full.items.len(), 1);
        assert_eq!(full.items[0].key, "f/bob");
        assert_eq!(full.items[0].friend.as_ref().unwrap().remark, "B");
        let delta = sync(
            &store,
            1,
            "al",
            &pb::RelationSyncReq {
                version: 3,
                limit: 0,
            },
        )
        .unwrap();
        assert_eq!(delta.items.len(), 1);
        assert_eq!(delta.items[0].key, "f/carol");
        assert!(delta.items[0].removed);
        let paged = sync(
            &store,
            1,
            "al",
            &pb::RelationSyncReq {
                version: 0,
                limit: 1,
            },
        )
        .unwrap();
        assert!(paged.has_more);
        assert_eq!(paged.version, 3);
    }
}
