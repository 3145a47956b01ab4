//! Group management methods (api.md §4.4): profile, members, roles, mutes, invitations, kicks,
//! applications, attributes and counters, local search. Each method checks its params here (the
//! seed's 8502–8510 codes for the SDK-side checks), sends one request through the GroupActor
//! ([`GroupCall`]) and maps the answer to the api.md result object. The group listener events
//! come from the server's tips and pushes (see `actors::group_events`), not from here.

use std::collections::BTreeMap;

use chime_proto::pb::{self, request::Kind as Req, response::Kind as Resp};
use chime_proto::{codes, ids};
use serde_json::{Map, Value, json};

use super::super::params::*;
use crate::actors::Peers;
use crate::actors::group::{GroupCall, JoinedList, member_json};
use crate::actors::group_events::application_json;
use crate::{ApiError, Result, codec};

/// Invalid group name (over 30 bytes).
pub const ERR_GROUP_INVALID_NAME: i32 = 8502;
/// Invalid introduction (over 240 bytes).
pub const ERR_GROUP_INVALID_INTRODUCTION: i32 = 8503;
/// Invalid notification (over 300 bytes).
pub const ERR_GROUP_INVALID_NOTIFICATION: i32 = 8504;
/// Invalid face URL (over 100 bytes).
pub const ERR_GROUP_INVALID_FACE_URL: i32 = 8505;
/// Invalid name card (over 50 bytes).
pub const ERR_GROUP_INVALID_NAME_CARD: i32 = 8506;
/// An invitation naming nobody.
pub const ERR_GROUP_INVITE_NO_MEMBER: i32 = 8510;

fn unexpected(what: &str) -> ApiError {
    ApiError::new(codes::ERR_PARSE_RESPONSE, format!("{what} answer"))
}

/// Checks the profile text fields (the SDK's 8502–8505).
pub(crate) fn check_profile(p: &Value) -> Result<()> {
    for (field, max, code) in [
        ("group_name", 30, ERR_GROUP_INVALID_NAME),
        ("introduction", 240, ERR_GROUP_INVALID_INTRODUCTION),
        ("notification", 300, ERR_GROUP_INVALID_NOTIFICATION),
        ("face_url", 100, ERR_GROUP_INVALID_FACE_URL),
    ] {
        if opt_str(p, field)?.is_some_and(|v| v.len() > max) {
            return Err(ApiError::new(
                code,
                format!("{field} longer than {max} bytes"),
            ));
        }
    }
    Ok(())
}

/// A `{key: string}` object as custom-field bytes (absent = empty).
pub(crate) fn custom_map(p: &Value, field: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    match p.get(field) {
        None | Some(Value::Null) => {}
        Some(Value::Object(obj)) => {
            for (k, v) in obj {
                let s = v.as_str().ok_or_else(|| {
                    ApiError::invalid_param(format!("{field} values must be strings"))
                })?;
                out.insert(k.clone(), s.as_bytes().to_vec());
            }
        }
        Some(_) => {
            return Err(ApiError::invalid_param(format!(
                "{field} must be an object"
            )));
        }
    }
    Ok(out)
}

fn string_map(p: &Value, field: &str) -> Result<BTreeMap<String, String>> {
    Ok(custom_map(p, field)?
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect())
}

fn user_list(p: &Value, field: &str) -> Result<Vec<String>> {
    let list = codec::string_list(p, field)?;
    if let Some(bad) = list.iter().find(|u| !ids::is_valid_user_id(u)) {
        return Err(ApiError::new(
            codes::ERR_INVALID_USER_ID,
            format!("invalid user id {bad:?} in {field}"),
        ));
    }
    Ok(list)
}

fn results_json(results: &[pb::MemberResult]) -> Value {
    Value::Array(
        results
            .iter()
            .map(|r| json!({ "user_id": r.user_id, "result": r.result }))
            .collect(),
    )
}

fn counter_value(p: &Value) -> Result<i64> {
    p.get("value")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::invalid_param("value (integer) is required"))
}

async fn call(peers: &Peers, kind: Req) -> Result<Resp> {
    peers.group.send(GroupCall(kind)).await.map_err(mailbox)?
}

/// Calls one method of this module.
pub(crate) async fn dispatch(peers: &Peers, method: &str, p: Value) -> Result<Value> {
    let now = crate::actors::now_ms();
    match method {
        "set_group_info" => {
            let group_id = group_id(&p, "group_id")?;
            check_profile(&p)?;
            let is_all_muted = match p.get("is_all_muted") {
                None | Some(Value::Null) => None,
                Some(_) => Some(opt_bool(&p, "is_all_muted")?),
            };
            let req = pb::SetGroupInfoReq {
                group_id,
                name: opt_str(&p, "group_name")?,
                introduction: opt_str(&p, "introduction")?,
                notification: opt_str(&p, "notification")?,
                face_url: opt_str(&p, "face_url")?,
                add_opt: opt_str(&p, "add_opt")?,
                approve_opt: opt_str(&p, "approve_opt")?,
                is_all_muted,
                custom_info: custom_map(&p, "custom_info")?,
            };
            call(peers, Req::SetGroupInfo(req)).await?;
            Ok(json!({}))
        }
        "transfer_group_owner" => {
            let req = pb::TransferGroupOwnerReq {
                group_id: group_id(&p, "group_id")?,
                user_id: user_id(&p, "user_id")?,
            };
            call(peers, Req::TransferGroupOwner(req)).await?;
            Ok(json!({}))
        }
        "get_group_member_list" => {
            let filter = opt_str(&p, "filter")?.unwrap_or_else(|| "all".into());
            if !matches!(filter.as_str(), "all" | "owner" | "admin" | "common") {
                return Err(ApiError::invalid_param(
                    "filter must be all|owner|admin|common",
                ));
            }
            let req = pb::GetGroupMembersReq {
                group_id: group_id(&p, "group_id")?,
                filter,
                next_seq: opt_u64(&p, "next_seq")?,
                count: u32::try_from(opt_u64(&p, "count")?).unwrap_or(u32::MAX),
                mark_type: u32::try_from(opt_u64(&p, "mark_type")?)
                    .map_err(|_| ApiError::invalid_param("mark_type too large"))?,
            };
            let Resp::GetGroupMembers(r) = call(peers, Req::GetGroupMembers(req)).await? else {
                return Err(unexpected("member list"));
            };
            let list: Vec<Value> = r.members.iter().map(|m| member_json(m, now)).collect();
            Ok(json!({ "member_info_list": list, "next_seq": r.next_seq,
                       "is_finished": r.is_finished }))
        }
        "get_group_members_info" => {
            let req = pb::GetGroupMembersInfoReq {
                group_id: group_id(&p, "group_id")?,
                user_ids: user_list(&p, "member_list")?,
            };
            let Resp::GetGroupMembersInfo(r) = call(peers, Req::GetGroupMembersInfo(req)).await?
            else {
                return Err(unexpected("members info"));
            };
            let list: Vec<Value> = r.members.iter().map(|m| member_json(m, now)).collect();
            Ok(json!({ "member_info_list": list }))
        }
        "set_group_member_info" => {
            let name_card = opt_str(&p, "name_card")?;
            if name_card.as_ref().is_some_and(|c| c.len() > 50) {
                return Err(ApiError::new(
                    ERR_GROUP_INVALID_NAME_CARD,
                    "name_card longer than 50 bytes",
                ));
            }
            let user = match opt_str(&p, "user_id")? {
                Some(_) => user_id(&p, "user_id")?,
                None => String::new(),
            };
            let req = pb::SetGroupMemberInfoReq {
                group_id: group_id(&p, "group_id")?,
                user_id: user,
                name_card,
                custom_info: custom_map(&p, "custom_info")?,
            };
            call(peers, Req::SetGroupMemberInfo(req)).await?;
            Ok(json!({}))
        }
        "mute_group_member" => {
            let req = pb::MuteGroupMemberReq {
                group_id: group_id(&p, "group_id")?,
                user_id: user_id(&p, "user_id")?,
                seconds: u32::try_from(opt_u64(&p, "seconds")?)
                    .map_err(|_| ApiError::invalid_param("seconds too large"))?,
            };
            call(peers, Req::MuteGroupMember(req)).await?;
            Ok(json!({}))
        }
        "set_group_member_role" => {
            let role = req_str(&p, "role")?;
            if role != "admin" && role != "member" {
                return Err(ApiError::invalid_param("role must be admin|member"));
            }
            let req = pb::SetGroupMemberRoleReq {
                group_id: group_id(&p, "group_id")?,
                user_id: user_id(&p, "user_id")?,
                role,
            };
            call(peers, Req::SetGroupMemberRole(req)).await?;
            Ok(json!({}))
        }
        "invite_user_to_group" => {
            let users = user_list(&p, "user_list")?;
            if users.is_empty() {
                return Err(ApiError::new(
                    ERR_GROUP_INVITE_NO_MEMBER,
                    "user_list is empty",
                ));
            }
            let req = pb::InviteToGroupReq {
                group_id: group_id(&p, "group_id")?,
                user_list: users,
            };
            let Resp::InviteToGroup(r) = call(peers, Req::InviteToGroup(req)).await? else {
                return Err(unexpected("invite"));
            };
            Ok(json!({ "result_list": results_json(&r.results) }))
        }
        "kick_group_member" => {
            let members = user_list(&p, "member_list")?;
            if members.is_empty() {
                return Err(ApiError::invalid_param("member_list is empty"));
            }
            let req = pb::KickGroupMembersReq {
                group_id: group_id(&p, "group_id")?,
                member_list: members,
                reason: opt_str(&p, "reason")?.unwrap_or_default(),
                duration: u32::try_from(opt_u64(&p, "duration")?)
                    .map_err(|_| ApiError::invalid_param("duration too large"))?,
            };
            let Resp::KickGroupMembers(r) = call(peers, Req::KickGroupMembers(req)).await? else {
                return Err(unexpected("kick"));
            };
            Ok(json!({ "result_list": results_json(&r.results) }))
        }
        "mark_group_member_list" => {
            let mark_type = p
                .get("mark_type")
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| ApiError::invalid_param("mark_type must be an integer >= 1000"))?;
            let Some(enable_mark) = p.get("enable_mark").and_then(Value::as_bool) else {
                return Err(ApiError::invalid_param("enable_mark must be a boolean"));
            };
            let req = pb::MarkGroupMemberListReq {
                group_id: group_id(&p, "group_id")?,
                member_list: user_list(&p, "member_list")?,
                mark_type,
                enable_mark,
            };
            call(peers, Req::MarkGroupMemberList(req)).await?;
            Ok(json!({}))
        }
        "get_group_application_list" => {
            let kind = Req::GetGroupApplications(pb::GetGroupApplicationsReq {});
            let Resp::GetGroupApplications(r) = call(peers, kind).await? else {
                return Err(unexpected("applications"));
            };
            // The server counts the unread ones (its one rule, docs/groups.md).
            let list: Vec<Value> = r.applications.iter().map(application_json).collect();
            Ok(json!({ "application_list": list, "unread_count": r.unread_count }))
        }
        "set_group_application_read" => {
            let kind = Req::SetGroupApplicationRead(pb::SetGroupApplicationReadReq {});
            call(peers, kind).await?;
            Ok(json!({}))
        }
        "accept_group_application" | "refuse_group_application" => {
            // Either the application object of the list, or its two ids.
            let src = p.get("application").filter(|a| a.is_object()).unwrap_or(&p);
            let req = pb::HandleGroupApplicationReq {
                group_id: group_id(src, "group_id")?,
                from_user: user_id(src, "from_user")?,
                accept: method == "accept_group_application",
                reason: opt_str(&p, "reason")?.unwrap_or_default(),
            };
            call(peers, Req::HandleGroupApplication(req)).await?;
            Ok(json!({}))
        }
        "init_group_attributes" | "set_group_attributes" | "delete_group_attributes" => {
            let op = match method {
                "init_group_attributes" => pb::GroupAttrOp::Init,
                "set_group_attributes" => pb::GroupAttrOp::Set,
                _ => pb::GroupAttrOp::Delete,
            };
            let attributes = if op == pb::GroupAttrOp::Delete {
                BTreeMap::new()
            } else {
                string_map(&p, "attributes")?
            };
            let req = pb::GroupAttributesReq {
                group_id: group_id(&p, "group_id")?,
                op: op as i32,
                attributes,
                keys: codec::string_list(&p, "keys")?,
            };
            let Resp::GroupAttributes(r) = call(peers, Req::GroupAttributes(req)).await? else {
                return Err(unexpected("attributes"));
            };
            Ok(json!({ "group_attribute_map": r.attributes }))
        }
        "get_group_attributes" => {
            let req = pb::GetGroupAttributesReq {
                group_id: group_id(&p, "group_id")?,
                keys: codec::string_list(&p, "keys")?,
            };
            let Resp::GetGroupAttributes(r) = call(peers, Req::GetGroupAttributes(req)).await?
            else {
                return Err(unexpected("attributes"));
            };
            Ok(json!({ "group_attribute_map": r.attributes }))
        }
        "set_group_counters" | "increase_group_counter" | "decrease_group_counter" => {
            let (op, counters) = match method {
                "set_group_counters" => {
                    let mut m = BTreeMap::new();
                    match p.get("counters") {
                        Some(Value::Object(o)) => {
                            for (k, v) in o {
                                let v = v.as_i64().ok_or_else(|| {
                                    ApiError::invalid_param("counters values must be integers")
                                })?;
                                m.insert(k.clone(), v);
                            }
                        }
                        _ => return Err(ApiError::invalid_param("counters (object) is required")),
                    }
                    (pb::GroupCounterOp::Set, m)
                }
                _ => {
                    let op = if method == "increase_group_counter" {
                        pb::GroupCounterOp::Increase
                    } else {
                        pb::GroupCounterOp::Decrease
                    };
                    let key = req_str(&p, "key")?;
                    (op, [(key, counter_value(&p)?)].into_iter().collect())
                }
            };
            let req = pb::GroupCountersReq {
                group_id: group_id(&p, "group_id")?,
                op: op as i32,
                counters,
            };
            let Resp::GroupCounters(r) = call(peers, Req::GroupCounters(req)).await? else {
                return Err(unexpected("counters"));
            };
            Ok(json!({ "counters": r.counters }))
        }
        "get_group_counters" => {
            let req = pb::GetGroupCountersReq {
                group_id: group_id(&p, "group_id")?,
                keys: codec::string_list(&p, "keys")?,
            };
            let Resp::GetGroupCounters(r) = call(peers, Req::GetGroupCounters(req)).await? else {
                return Err(unexpected("counters"));
            };
            Ok(json!({ "counters": r.counters }))
        }
        "search_groups" => {
            let words = keywords(&p)?;
            let by_id = p
                .get("is_search_group_id")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let by_name = p
                .get("is_search_group_name")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let joined = peers.group.send(JoinedList).await.map_err(mailbox)??;
            let list: Vec<Value> = joined["group_list"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|g| {
                    let id = g["group_id"].as_str().unwrap_or_default();
                    let name = g["group_name"].as_str().unwrap_or_default();
                    words
                        .iter()
                        .any(|w| (by_id && contains(id, w)) || (by_name && contains(name, w)))
                })
                .collect();
            Ok(json!({ "group_list": list }))
        }
        "search_group_members" => search_members(peers, &p, now).await,
        "get_group_online_member_count" => {
            let req = pb::GetGroupOnlineCountReq {
                group_id: group_id(&p, "group_id")?,
            };
            let Resp::GetGroupOnlineCount(r) = call(peers, Req::GetGroupOnlineCount(req)).await?
            else {
                return Err(unexpected("online member count"));
            };
            Ok(json!({ "member_count": r.count }))
        }
        "get_joined_community_list" => {
            let joined = peers.group.send(JoinedList).await.map_err(mailbox)??;
            let list: Vec<Value> = joined["group_list"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|g| g["group_type"] == "Community")
                .collect();
            Ok(json!({ "group_list": list }))
        }
        _ => Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    }
}

fn keywords(p: &Value) -> Result<Vec<String>> {
    let words = codec::string_list(p, "keyword_list")?;
    if words.is_empty() || words.iter().any(String::is_empty) {
        return Err(ApiError::invalid_param(
            "keyword_list must hold non-empty words",
        ));
    }
    Ok(words)
}

fn contains(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

/// `search_group_members {keyword_list, group_id_list?, is_search_member_user_id?,
/// is_search_member_name_card?}` → `{group_member_search_result_list: [{group_id,
/// member_info_list}]}` over the joined groups (or the listed ones), by user id and name card.
async fn search_members(peers: &Peers, p: &Value, now: i64) -> Result<Value> {
    /// Pages read per group before giving up (200 members a page).
    const MAX_PAGES: usize = 500;
    let words = keywords(p)?;
    let by_id = p
        .get("is_search_member_user_id")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let by_card = p
        .get("is_search_member_name_card")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut groups = codec::string_list(p, "group_id_list")?;
    if groups.is_empty() {
        let joined = peers.group.send(JoinedList).await.map_err(mailbox)??;
        groups = joined["group_list"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|g| g["group_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
    }
    let mut out = Vec::new();
    for gid in groups {
        if !ids::is_valid_group_id(&gid) {
            return Err(ApiError::new(
                codes::ERR_INVALID_GROUP_ID,
                format!("invalid group id {gid:?}"),
            ));
        }
        let mut found = Vec::new();
        let mut next_seq = 0;
        for _ in 0..MAX_PAGES {
            let req = pb::GetGroupMembersReq {
                group_id: gid.clone(),
                filter: "all".into(),
                next_seq,
                count: 0,
                mark_type: 0,
            };
            let Resp::GetGroupMembers(r) = call(peers, Req::GetGroupMembers(req)).await? else {
                return Err(unexpected("member list"));
            };
            for m in &r.members {
                let hit = words.iter().any(|w| {
                    (by_id && contains(&m.user_id, w)) || (by_card && contains(&m.name_card, w))
                });
                if hit {
                    found.push(member_json(m, now));
                }
            }
            if r.is_finished || r.members.is_empty() {
                break;
            }
            next_seq = r.next_seq;
        }
        if !found.is_empty() {
            let mut o = Map::new();
            o.insert("group_id".into(), json!(gid));
            o.insert("member_info_list".into(), Value::Array(found));
            out.push(Value::Object(o));
        }
    }
    Ok(json!({ "group_member_search_result_list": out }))
}
