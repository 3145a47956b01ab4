//! Community reads (`GetCommunityReq`), answered from the store on the read path: topics,
//! permission groups, the caller's permission groups, a permission group's members (paged by
//! user id), a permission group's topic permissions, and the community's options. Any member of
//! the community may read them.

use std::collections::BTreeMap;

use chime_proto::pb::{self, get_community_req::Query, response::Kind as RespKind};
use chime_proto::{codes, ids};

use super::perms::{self, Standing};
use super::{deny, invalid, records};
use crate::error::{ApiError, ApiResult, StoreError};
use crate::groups::role;
use crate::keys::{self, Key, tag};
use crate::queries;
use crate::store::Store;

/// Default and largest page of permission-group members.
pub const MEMBER_PAGE: u32 = 100;

/// Newest seq of conversation `group_<id>`.
pub(crate) fn head(store: &dyn Store, app: u64, id: &str) -> Result<u64, StoreError> {
    Ok(store
        .get(&Key::new(tag::HEAD, app).s(&keys::group_conv(id)).done())?
        .and_then(|v| keys::be_u64(&v, 0))
        .unwrap_or(0))
}

/// The standing of `user` in community `id` (10010 / 10004 / 8501 as for writes).
fn standing(store: &dyn Store, app: u64, user: &str, admin: &str, id: &str) -> ApiResult<Standing> {
    if !ids::is_valid_group_id(id) {
        return Err(ApiError::new(
            codes::ERR_INVALID_GROUP_ID,
            "invalid group id",
        ));
    }
    let Some(info) = queries::group_info(store, app, id)? else {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_NOT_FOUND,
            "no such group",
        ));
    };
    if info.group_type != "Community" {
        return Err(invalid(format!("{id} is not a Community")));
    }
    if user == admin {
        return Ok(Standing::Staff);
    }
    Ok(match queries::member(store, app, id, user)? {
        None => Standing::Outsider,
        Some((_, m)) if m.role == role::OWNER || m.role == role::ADMIN => Standing::Staff,
        Some(_) => Standing::Member,
    })
}

/// The topic bits of `user` in topic `topic` of `community` (0 for a non-member).
pub(crate) fn topic_bits_of(
    store: &dyn Store,
    app: u64,
    user: &str,
    community: &str,
    topic: &str,
) -> ApiResult<u64> {
    let standing = match queries::member(store, app, community, user)? {
        None => return Ok(0),
        Some((_, m)) if m.role == role::OWNER || m.role == role::ADMIN => Standing::Staff,
        Some(_) => Standing::Member,
    };
    let Some(t) = records::topic(store, app, community, topic)? else {
        return Ok(0);
    };
    let record = records::record(store, app, community)?;
    let mine = records::member_groups(store, app, community, user)?;
    let groups = perms::groups_of(&record, &mine);
    Ok(perms::topic_bits(standing, &record, &t, &groups))
}

fn not_found(id: &str, what: &str) -> pb::CommunityResult {
    pb::CommunityResult {
        id: id.to_owned(),
        code: codes::ERR_SVR_GROUP_NOT_FOUND,
        desc: format!("no such {what}"),
    }
}

/// `GetCommunity`.
pub fn get(
    store: &dyn Store,
    admin: &str,
    app: u64,
    user: &str,
    req: &pb::GetCommunityReq,
) -> ApiResult<RespKind> {
    let id = &req.group_id;
    if standing(store, app, user, admin, id)? == Standing::Outsider {
        return Err(deny("not a member of the community"));
    }
    let record = records::record(store, app, id)?;
    let mut resp = pb::GetCommunityResp::default();
    let query = req
        .query
        .as_ref()
        .ok_or_else(|| ApiError::new(codes::ERR_SVR_INVALID_PARAMS, "query is required"))?;
    let group = |pg: &str| {
        record
            .permission_groups
            .iter()
            .find(|g| g.permission_group_id == pg)
            .ok_or_else(|| {
                ApiError::new(
                    codes::ERR_SVR_GROUP_NOT_FOUND,
                    format!("no permission group {pg}"),
                )
            })
    };
    match query {
        Query::Topics(l) => {
            let wanted = if l.ids.is_empty() {
                &record.topic_ids
            } else {
                &l.ids
            };
            for t in wanted {
                match records::topic(store, app, id, t)? {
                    Some(mut info) => {
                        info.max_seq = head(store, app, t)?;
                        resp.topics.push(info);
                    }
                    None => resp.results.push(not_found(t, "topic")),
                }
            }
        }
        Query::PermissionGroups(l) => {
            if l.ids.is_empty() {
                resp.permission_groups = record.permission_groups.clone();
            } else {
                for pg in &l.ids {
                    match group(pg) {
                        Ok(g) => resp.permission_groups.push(g.clone()),
                        Err(_) => resp.results.push(not_found(pg, "permission group")),
                    }
                }
            }
        }
        Query::JoinedPermissionGroups(_) => {
            let mine = records::member_groups(store, app, id, user)?;
            resp.permission_groups = perms::groups_of(&record, &mine)
                .into_iter()
                .cloned()
                .collect();
        }
        Query::Members(page) => {
            group(&page.permission_group_id)?;
            let count = if page.count == 0 {
                MEMBER_PAGE
            } else {
                page.count.min(MEMBER_PAGE)
            } as usize;
            let prefix = records::group_members_prefix(app, id, &page.permission_group_id);
            let (lo, hi) = prefix.clone().prefix_range();
            let start = if page.cursor.is_empty() {
                lo.clone()
            } else {
                // Strictly after the cursor's user.
                let mut k = prefix.s(page.cursor.as_bytes()).done();
                k.push(0);
                k
            };
            let rows = store.scan(&start, &hi, count + 1, false)?;
            let more = rows.len() > count;
            for (k, _) in rows.into_iter().take(count) {
                let Some(u) = keys::trailing_str(&k, lo.len()) else {
                    continue;
                };
                if let Some((_, m)) = queries::member(store, app, id, &u)? {
                    resp.members.push(m);
                }
                if more {
                    resp.next_cursor = u;
                }
            }
        }
        Query::TopicPermissions(q) => {
            let g = group(&q.permission_group_id)?;
            let wanted: Vec<String> = if q.topic_ids.is_empty() {
                g.topic_permissions.keys().cloned().collect()
            } else {
                q.topic_ids.clone()
            };
            let mut map = BTreeMap::new();
            for t in wanted {
                match g.topic_permissions.get(&t) {
                    Some(bits) => {
                        map.insert(t, *bits);
                    }
                    None => resp.results.push(not_found(&t, "topic permission")),
                }
            }
            resp.topic_permissions = map;
        }
        Query::Options(_) => {
            resp.options = Some(pb::CommunityOptions {
                enable_permission_group: Some(record.enable_permission_group),
                default_permissions: Some(record.default_permissions),
            });
        }
    }
    Ok(RespKind::GetCommunity(resp))
}
