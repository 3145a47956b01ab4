//! Read-only group requests of the management features (member profiles by id; join
//! applications are listed by [`crate::group_apply`], attributes and counters by
//! [`crate::group_kv`]), answered straight from the store on the blocking pool like every read
//! (see [`crate::queries`]).

use chime_proto::pb::{self, response::Kind as RespKind};
use chime_proto::{codes, ids};

use crate::error::{ApiError, ApiResult};
use crate::queries::{group_info, member};
use crate::store::Store;

/// Most members one `GetGroupMembersInfo` names.
pub const MAX_MEMBERS_PER_INFO: usize = 100;

/// The group's info when `user` is a member: 8501 bad id, 10010 no group, 10007 not a member.
pub fn require_member(
    store: &dyn Store,
    app: u64,
    group_id: &str,
    user: &str,
) -> ApiResult<pb::GroupInfo> {
    if !ids::is_valid_group_id(group_id) {
        return Err(ApiError::new(
            codes::ERR_INVALID_GROUP_ID,
            "invalid group id",
        ));
    }
    let Some(info) = group_info(store, app, group_id)? else {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_NOT_FOUND,
            "no such group",
        ));
    };
    if member(store, app, group_id, user)?.is_none() {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_PERMISSION_DENIED,
            "not a member of the group",
        ));
    }
    Ok(info)
}

/// `GetGroupMembersInfo`: the named members (non-members are left out), in request order.
pub fn members_info(
    store: &dyn Store,
    app: u64,
    user: &str,
    req: &pb::GetGroupMembersInfoReq,
) -> ApiResult<RespKind> {
    require_member(store, app, &req.group_id, user)?;
    if req.user_ids.is_empty() || req.user_ids.len() > MAX_MEMBERS_PER_INFO {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_INVALID_PARAMS,
            "user_ids must name 1..=100 users",
        ));
    }
    let mut members = Vec::new();
    for u in &req.user_ids {
        if let Some((_, m)) = member(store, app, &req.group_id, u)? {
            members.push(m);
        }
    }
    Ok(RespKind::GetGroupMembersInfo(pb::GetGroupMembersInfoResp {
        members,
    }))
}
