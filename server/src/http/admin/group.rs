//! Groups: create (with an owner and members), add and delete members. Each is the client
//! path's group write ([`Op::CreateGroup`], [`Op::Group`]), acting as the owner or the
//! administrator (who may manage every group).

use chime_proto::codes;
use chime_proto::pb::{self, response::Kind as RespKind};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Ctx, RestResult, parse};
use crate::commit::Op;
use crate::error::ApiError;
use crate::group_admin::GroupOp;

#[derive(Deserialize)]
struct MemberItem {
    #[serde(rename = "Member_Account")]
    account: String,
    /// "Admin" or "Member" (create only).
    #[serde(rename = "Role", default)]
    role: String,
}

#[derive(Deserialize)]
struct CreateReq {
    #[serde(rename = "Owner_Account")]
    owner: Option<String>,
    #[serde(rename = "Type")]
    group_type: String,
    #[serde(rename = "GroupId", default)]
    group_id: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Introduction", default)]
    introduction: String,
    #[serde(rename = "Notification", default)]
    notification: String,
    #[serde(rename = "FaceUrl", default)]
    face_url: String,
    #[serde(rename = "ApplyJoinOption", default)]
    apply_join_option: String,
    #[serde(rename = "MemberList", default)]
    members: Vec<MemberItem>,
}

/// The wire's add option as the seed's `ApplyJoinOption` (the inverse of [`add_opt`]).
pub(super) fn apply_join_option(add_opt: &str) -> &'static str {
    match add_opt {
        "any" => "FreeAccess",
        "forbid" => "DisableApply",
        _ => "NeedPermission",
    }
}

/// The seed's `ApplyJoinOption` as the wire's add option.
pub(super) fn add_opt(option: &str) -> Result<&'static str, ApiError> {
    Ok(match option {
        "" => "",
        "FreeAccess" => "any",
        "NeedPermission" => "auth",
        "DisableApply" => "forbid",
        other => {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_INVALID_PARAMS,
                format!(
                    "ApplyJoinOption {other:?}: expected FreeAccess|NeedPermission|DisableApply"
                ),
            ));
        }
    })
}

/// `group_open_http_svc/create_group` → `GroupId`. Without `Owner_Account` the administrator
/// owns the group.
pub(super) async fn create(ctx: &Ctx, body: Value) -> RestResult {
    let req: CreateReq = parse(body)?;
    let owner = req.owner.unwrap_or_else(|| ctx.admin.clone());
    ctx.require_account(&owner).await?;
    for m in &req.members {
        ctx.require_account(&m.account).await?;
    }
    let member_list = req
        .members
        .into_iter()
        .map(|m| pb::GroupMember {
            user_id: m.account,
            role: if m.role == "Admin" {
                crate::groups::role::ADMIN.into()
            } else {
                String::new()
            },
            ..Default::default()
        })
        .collect();
    let create = pb::CreateGroupReq {
        group_type: req.group_type,
        group_id: req.group_id,
        name: req.name,
        introduction: req.introduction,
        notification: req.notification,
        face_url: req.face_url,
        add_opt: add_opt(&req.apply_join_option)?.into(),
        member_list,
        ..Default::default()
    };
    match ctx
        .commit(&owner, Op::CreateGroup(Box::new(create)))
        .await?
    {
        RespKind::CreateGroup(r) => {
            let mut out = Map::new();
            out.insert("GroupId".into(), json!(r.group_id));
            Ok(out)
        }
        _ => Err(ApiError::new(codes::ERR_SVR_INTERNAL, "unexpected answer")),
    }
}

#[derive(Deserialize)]
struct AddReq {
    #[serde(rename = "GroupId")]
    group_id: String,
    #[serde(rename = "MemberList")]
    members: Vec<MemberItem>,
}

/// `group_open_http_svc/add_group_member` → `MemberList: [{Member_Account, Result}]` with the
/// seed's results: 0 failed, 1 added, 2 already a member.
pub(super) async fn add_members(ctx: &Ctx, body: Value) -> RestResult {
    let req: AddReq = parse(body)?;
    if req.members.is_empty() || req.members.len() > 300 {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_INVALID_PARAMS,
            "MemberList must list 1..=300 members",
        ));
    }
    for m in &req.members {
        ctx.require_account(&m.account).await?;
    }
    let invite = pb::InviteToGroupReq {
        group_id: req.group_id,
        user_list: req.members.into_iter().map(|m| m.account).collect(),
    };
    let op = Op::Group(Box::new(GroupOp::Invite(invite)));
    let RespKind::InviteToGroup(resp) = ctx.commit(&ctx.admin, op).await? else {
        return Err(ApiError::new(codes::ERR_SVR_INTERNAL, "unexpected answer"));
    };
    let list: Vec<Value> = resp
        .results
        .into_iter()
        .map(|r| {
            let result = match r.result {
                0 => 1,
                codes::ERR_SVR_GROUP_ALREADY_MEMBER => 2,
                _ => 0,
            };
            json!({"Member_Account": r.user_id, "Result": result})
        })
        .collect();
    let mut out = Map::new();
    out.insert("MemberList".into(), json!(list));
    Ok(out)
}

#[derive(Deserialize)]
struct DeleteReq {
    #[serde(rename = "GroupId")]
    group_id: String,
    #[serde(rename = "MemberToDel_Account")]
    members: Vec<String>,
    #[serde(rename = "Reason", default)]
    reason: String,
}

/// `group_open_http_svc/delete_group_member {GroupId, MemberToDel_Account, Reason?}`.
pub(super) async fn delete_members(ctx: &Ctx, body: Value) -> RestResult {
    let req: DeleteReq = parse(body)?;
    if req.members.is_empty() || req.members.len() > 100 {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_INVALID_PARAMS,
            "MemberToDel_Account must list 1..=100 members",
        ));
    }
    let kick = pb::KickGroupMembersReq {
        group_id: req.group_id,
        member_list: req.members,
        reason: req.reason,
        duration: 0,
    };
    let op = Op::Group(Box::new(GroupOp::Kick(kick)));
    ctx.commit(&ctx.admin, op).await?;
    Ok(Map::new())
}
