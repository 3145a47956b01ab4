//! The backend's reads and edits of a group's profile: `get_group_info`,
//! `modify_group_base_info`, `change_group_owner`, `forbid_send_msg`. Each edit is the client
//! path's write ([`GroupOp`]) done by the administrator, so members get the same tips and events
//! (`on_group_info_changed`, `on_all_group_members_muted`, `on_member_info_changed`) as when the
//! owner does it.

use std::collections::BTreeMap;

use chime_proto::pb::{self, response::Kind as RespKind};
use chime_proto::{codes, ids};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::group::{add_opt, apply_join_option};
use super::{Ctx, RestResult, parse};
use crate::commit::Op;
use crate::error::ApiError;
use crate::group_admin::GroupOp;

/// Most groups one `get_group_info` names (Tencent's 50).
pub const MAX_INFO_GROUPS: usize = 50;
/// Most members one `forbid_send_msg` names (Tencent's 500).
pub const MAX_MUTE_MEMBERS: usize = 500;

fn invalid(desc: impl Into<String>) -> ApiError {
    ApiError::new(codes::ERR_SVR_GROUP_INVALID_PARAMS, desc)
}

#[derive(Deserialize)]
struct InfoReq {
    #[serde(rename = "GroupIdList")]
    group_ids: Vec<String>,
}

/// `AppDefinedData` entries of custom fields, in key order.
fn app_defined(custom: &BTreeMap<String, Vec<u8>>) -> Value {
    Value::Array(
        custom
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": String::from_utf8_lossy(v)}))
            .collect(),
    )
}

/// One `GroupInfo` entry of `get_group_info`: the group's profile, or its error.
fn info_entry(g: &pb::GroupInfo, code: i32) -> Value {
    if code != 0 {
        return json!({"GroupId": g.group_id, "ErrorCode": code,
                      "ErrorInfo": if code == codes::ERR_SVR_GROUP_NOT_FOUND { "no such group" } else { "invalid group id" }});
    }
    json!({
        "GroupId": g.group_id,
        "ErrorCode": 0,
        "ErrorInfo": "",
        "Type": g.group_type,
        "Name": g.name,
        "Introduction": g.introduction,
        "Notification": g.notification,
        "FaceUrl": g.face_url,
        "Owner_Account": g.owner,
        "CreateTime": g.create_time_ms.div_euclid(1000),
        "MemberNum": g.member_count,
        "MaxMemberNum": g.max_member_count,
        "ApplyJoinOption": apply_join_option(&g.add_opt),
        "ShutUpAllMember": if g.is_all_muted { "On" } else { "Off" },
        "NextMsgSeq": g.max_seq + 1,
        "AppDefinedData": app_defined(&g.custom_info),
    })
}

/// `group_open_http_svc/get_group_info {GroupIdList (1..=50)}` → `GroupInfo: [...]` in the
/// request's order, each with its own `ErrorCode` (10010 no such group).
pub(super) async fn info(ctx: &Ctx, body: Value) -> RestResult {
    let req: InfoReq = parse(body)?;
    if req.group_ids.is_empty() || req.group_ids.len() > MAX_INFO_GROUPS {
        return Err(invalid(format!(
            "GroupIdList must list 1..={MAX_INFO_GROUPS} groups"
        )));
    }
    let admin = ctx.admin.clone();
    let resp = ctx
        .read(move |store, app| {
            let q = pb::GetGroupsInfoReq {
                group_ids: req.group_ids,
            };
            crate::queries::groups_info(store, app, &admin, &q)
        })
        .await?;
    let RespKind::GetGroupsInfo(r) = resp else {
        return Err(ApiError::new(codes::ERR_SVR_INTERNAL, "unexpected answer"));
    };
    let list: Vec<Value> = r
        .groups
        .iter()
        .zip(r.result_codes.iter())
        .map(|(g, code)| info_entry(g, *code))
        .collect();
    let mut out = Map::new();
    out.insert("GroupInfo".into(), Value::Array(list));
    Ok(out)
}

#[derive(Deserialize)]
struct KeyValue {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Value")]
    value: String,
}

#[derive(Deserialize)]
struct ModifyReq {
    #[serde(rename = "GroupId")]
    group_id: String,
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Introduction")]
    introduction: Option<String>,
    #[serde(rename = "Notification")]
    notification: Option<String>,
    #[serde(rename = "FaceUrl")]
    face_url: Option<String>,
    #[serde(rename = "ApplyJoinOption")]
    apply_join_option: Option<String>,
    /// "On" / "Off".
    #[serde(rename = "MuteAllMember")]
    mute_all: Option<String>,
    #[serde(rename = "AppDefinedData", default)]
    app_defined: Vec<KeyValue>,
    /// Refused: the server's `group_member_limits` decide.
    #[serde(rename = "MaxMemberNum")]
    max_member_num: Option<u32>,
}

/// The client-path request of a `modify_group_base_info` body (pure).
fn set_info_req(req: ModifyReq) -> Result<pb::SetGroupInfoReq, ApiError> {
    if req.max_member_num.is_some() {
        return Err(invalid(
            "MaxMemberNum cannot be changed: the server's group_member_limits apply",
        ));
    }
    let is_all_muted = match req.mute_all.as_deref() {
        None => None,
        Some("On") => Some(true),
        Some("Off") => Some(false),
        Some(other) => return Err(invalid(format!("MuteAllMember {other:?}: expected On|Off"))),
    };
    let add = match req.apply_join_option.as_deref() {
        None => None,
        Some(o) => Some(add_opt(o)?.to_owned()),
    };
    Ok(pb::SetGroupInfoReq {
        group_id: req.group_id,
        name: req.name,
        introduction: req.introduction,
        notification: req.notification,
        face_url: req.face_url,
        add_opt: add,
        approve_opt: None,
        is_all_muted,
        custom_info: req
            .app_defined
            .into_iter()
            .map(|kv| (kv.key, kv.value.into_bytes()))
            .collect(),
    })
}

/// `group_open_http_svc/modify_group_base_info {GroupId, Name?, Introduction?, Notification?,
/// FaceUrl?, ApplyJoinOption?, MuteAllMember? (On|Off), AppDefinedData?: [{Key, Value}]}`.
pub(super) async fn modify(ctx: &Ctx, body: Value) -> RestResult {
    let req = set_info_req(parse(body)?)?;
    let op = Op::Group(Box::new(GroupOp::SetInfo(req)));
    ctx.commit(&ctx.admin, op).await?;
    Ok(Map::new())
}

#[derive(Deserialize)]
struct OwnerReq {
    #[serde(rename = "GroupId")]
    group_id: String,
    #[serde(rename = "NewOwner_Account")]
    new_owner: String,
}

/// `group_open_http_svc/change_group_owner {GroupId, NewOwner_Account}` (a member).
pub(super) async fn change_owner(ctx: &Ctx, body: Value) -> RestResult {
    let req: OwnerReq = parse(body)?;
    ctx.require_account(&req.new_owner).await?;
    let op = Op::Group(Box::new(GroupOp::Transfer(pb::TransferGroupOwnerReq {
        group_id: req.group_id,
        user_id: req.new_owner,
    })));
    ctx.commit(&ctx.admin, op).await?;
    Ok(Map::new())
}

#[derive(Deserialize)]
struct MuteReq {
    #[serde(rename = "GroupId")]
    group_id: String,
    #[serde(rename = "Members_Account")]
    members: Vec<String>,
    /// Seconds; 0 = unmute.
    #[serde(rename = "MuteTime")]
    seconds: u32,
}

/// `group_open_http_svc/forbid_send_msg {GroupId, Members_Account (1..=500), MuteTime (s, 0 =
/// unmute)}`: each member muted (or unmuted) in turn; the first failure answers.
pub(super) async fn forbid_send(ctx: &Ctx, body: Value) -> RestResult {
    let req: MuteReq = parse(body)?;
    if req.members.is_empty() || req.members.len() > MAX_MUTE_MEMBERS {
        return Err(invalid(format!(
            "Members_Account must list 1..={MAX_MUTE_MEMBERS} members"
        )));
    }
    if let Some(bad) = req.members.iter().find(|u| !ids::is_valid_user_id(u)) {
        return Err(invalid(format!("Members_Account: invalid UserID {bad:?}")));
    }
    for user in req.members {
        let op = Op::Group(Box::new(GroupOp::Mute(pb::MuteGroupMemberReq {
            group_id: req.group_id.clone(),
            user_id: user,
            seconds: req.seconds,
        })));
        ctx.commit(&ctx.admin, op).await?;
    }
    Ok(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modify_req(v: Value) -> Result<pb::SetGroupInfoReq, ApiError> {
        set_info_req(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn modify_bodies_map_to_the_client_request() {
        let r = modify_req(json!({"GroupId": "g", "Name": "n", "MuteAllMember": "On",
            "ApplyJoinOption": "NeedPermission", "AppDefinedData": [{"Key": "k", "Value": "v"}]}))
        .unwrap();
        assert_eq!(r.group_id, "g");
        assert_eq!(r.name.as_deref(), Some("n"));
        assert_eq!(r.introduction, None);
        assert_eq!(r.is_all_muted, Some(true));
        assert_eq!(r.add_opt.as_deref(), Some("auth"));
        assert_eq!(r.custom_info.get("k").map(Vec::as_slice), Some(&b"v"[..]));
        let off = modify_req(json!({"GroupId": "g", "MuteAllMember": "Off"})).unwrap();
        assert_eq!(off.is_all_muted, Some(false));
        let bad = modify_req(json!({"GroupId": "g", "MuteAllMember": "Yes"}));
        assert_eq!(bad.err().map(|e| e.code), Some(10004));
        let bad = modify_req(json!({"GroupId": "g", "ApplyJoinOption": "Whatever"}));
        assert_eq!(bad.err().map(|e| e.code), Some(10004));
        let bad = modify_req(json!({"GroupId": "g", "MaxMemberNum": 10}));
        assert_eq!(bad.err().map(|e| e.code), Some(10004));
    }

    #[test]
    fn info_entries_carry_the_profile_or_the_error() {
        let mut g = pb::GroupInfo {
            group_id: "g".into(),
            group_type: "Public".into(),
            owner: "o".into(),
            create_time_ms: 5_999,
            member_count: 2,
            add_opt: "forbid".into(),
            is_all_muted: true,
            max_seq: 7,
            ..Default::default()
        };
        g.custom_info.insert("b".into(), b"2".to_vec());
        g.custom_info.insert("a".into(), b"1".to_vec());
        let e = info_entry(&g, 0);
        assert_eq!(e["CreateTime"], 5);
        assert_eq!(e["ApplyJoinOption"], "DisableApply");
        assert_eq!(e["ShutUpAllMember"], "On");
        assert_eq!(e["NextMsgSeq"], 8);
        assert_eq!(
            e["AppDefinedData"],
            json!([{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
        );
        assert_eq!(
            info_entry(&g, 10010),
            json!({"GroupId": "g", "ErrorCode": 10010, "ErrorInfo": "no such group"})
        );
    }
}
