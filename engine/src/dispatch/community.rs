//! Community methods (api.md §4.4): topics (`create_topic_in_community`,
//! `delete_topic_from_community`, `set_topic_info`, `get_topic_info_list`) and permission
//! groups (`create_permission_group_in_community` ... `get_topic_permission_in_permission_group`),
//! plus two documented extensions for the community's permission options
//! (`set_community_permission_options`, `get_community_permission_options`).
//!
//! The server owns communities and enforces their permissions (docs/groups.md, "Communities"),
//! so each write is one `CommunityReq` and each read one `GetCommunityReq`. A topic's per-user
//! fields (unread count, last message, draft, receive option, @-info) are those of its
//! conversation `group_<topic id>`, read from the conversation actor; its draft is set there too.
//! The events are mapped in `actors::community`.

use std::collections::BTreeMap;

use chime_proto::pb::{
    self, community_req::Op, get_community_req::Query as Q, request::Kind as ReqKind,
    response::Kind as RespKind,
};
use chime_proto::{codes, ids};
use serde_json::{Map, Value, json};

use super::params::*;
use crate::actors::Peers;
use crate::actors::community::{permission_group_json, permission_map_json, topic_json};
use crate::actors::connection::Rpc;
use crate::actors::conversation::{Query as ConvQuery, SetDraft};
use crate::actors::group::member_json;
use crate::events::EventBus;
use crate::{ApiError, Result, codec};

/// The methods this area answers.
pub(super) const METHODS: &[&str] = &[
    "create_topic_in_community",
    "delete_topic_from_community",
    "set_topic_info",
    "get_topic_info_list",
    "create_permission_group_in_community",
    "delete_permission_group_from_community",
    "modify_permission_group_info_in_community",
    "get_joined_permission_group_list_in_community",
    "get_permission_group_list_in_community",
    "add_community_members_to_permission_group",
    "remove_community_members_from_permission_group",
    "get_community_member_list_in_permission_group",
    "add_topic_permission_to_permission_group",
    "delete_topic_permission_from_permission_group",
    "modify_topic_permission_in_permission_group",
    "get_topic_permission_in_permission_group",
    // Extensions (docs/groups.md).
    "set_community_permission_options",
    "get_community_permission_options",
];

/// The methods of this area that work before login.
pub(super) const PRE_LOGIN: &[&str] = &[];

/// The seed's topic modify flags (`set_topic_info`).
mod topic_flag {
    pub const NAME: u32 = 0x1;
    pub const NOTIFICATION: u32 = 0x2;
    pub const INTRODUCTION: u32 = 0x4;
    pub const FACE_URL: u32 = 0x8;
    pub const MUTE_ALL: u32 = 0x100;
    pub const CUSTOM_STRING: u32 = 0x800;
    pub const DEFAULT_PERMISSIONS: u32 = 0x8000;
}

/// The seed's permission-group modify flags.
mod group_flag {
    pub const NAME: u32 = 0x1;
    pub const GROUP_PERMISSION: u32 = 0x2;
    pub const CUSTOM_DATA: u32 = 0x4;
}

/// What separates the community id from the suffix in a topic id.
const TOPIC_MARK: &str = "@TOPIC#_";

/// The object `field` of `p` when present, else `p` itself (the seed nests `topic_info` and
/// `permission_group_info`; flat params are accepted too).
fn nested<'a>(p: &'a Value, field: &str) -> Result<&'a Value> {
    match p.get(field) {
        None | Some(Value::Null) => Ok(p),
        Some(v @ Value::Object(_)) => Ok(v),
        Some(_) => Err(ApiError::invalid_param(format!(
            "{field} must be an object"
        ))),
    }
}

fn opt_u64_of(p: &Value, f: &str) -> Result<Option<u64>> {
    match p.get(f) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => opt_u64(p, f).map(Some),
    }
}

fn opt_bool_of(p: &Value, f: &str) -> Result<Option<bool>> {
    match p.get(f) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => opt_bool(p, f).map(Some),
    }
}

fn nonempty_id(p: &Value, f: &str) -> Result<String> {
    let id = req_str(p, f)?;
    if id.is_empty() || !ids::is_valid_group_id(&id) {
        return Err(ApiError::new(
            codes::ERR_INVALID_GROUP_ID,
            format!("invalid {f}"),
        ));
    }
    Ok(id)
}

/// The community of a topic id (8501 when it is not one).
fn community_of_topic(topic_id: &str) -> Result<String> {
    match topic_id.split_once(TOPIC_MARK) {
        Some((c, s)) if !c.is_empty() && !s.is_empty() && ids::is_valid_group_id(topic_id) => {
            Ok(c.to_owned())
        }
        _ => Err(ApiError::new(
            codes::ERR_INVALID_GROUP_ID,
            "invalid topic_id: <group_id>@TOPIC#_<suffix>, at most 48 bytes",
        )),
    }
}

fn topic_permission_map(p: &Value) -> Result<BTreeMap<String, u64>> {
    let Some(Value::Object(m)) = p.get("topic_permission_map") else {
        return Err(ApiError::invalid_param(
            "topic_permission_map (object of topic id → permission bits) is required",
        ));
    };
    m.iter()
        .map(|(k, v)| {
            v.as_u64().map(|b| (k.clone(), b)).ok_or_else(|| {
                ApiError::invalid_param("topic_permission_map values must be integers")
            })
        })
        .collect()
}

async fn write(peers: &Peers, group_id: String, op: Op) -> Result<pb::CommunityResp> {
    let kind = ReqKind::Community(pb::CommunityReq {
        group_id,
        op: Some(op),
    });
    match peers.conn.send(Rpc(kind)).await.map_err(mailbox)??.kind {
        Some(RespKind::Community(r)) => Ok(r),
        _ => Err(ApiError::new(
            codes::ERR_PARSE_RESPONSE,
            "unexpected community answer",
        )),
    }
}

async fn read(peers: &Peers, group_id: String, query: Q) -> Result<pb::GetCommunityResp> {
    let kind = ReqKind::GetCommunity(pb::GetCommunityReq {
        group_id,
        query: Some(query),
    });
    match peers.conn.send(Rpc(kind)).await.map_err(mailbox)??.kind {
        Some(RespKind::GetCommunity(r)) => Ok(r),
        _ => Err(ApiError::new(
            codes::ERR_PARSE_RESPONSE,
            "unexpected community answer",
        )),
    }
}

fn results_json(results: &[pb::CommunityResult], id_field: &str) -> Vec<Value> {
    results
        .iter()
        .map(|r| json!({ id_field: r.id, "code": r.code, "desc": r.desc }))
        .collect()
}

fn ids_of(p: &Value, f: &str) -> Result<pb::CommunityIdList> {
    Ok(pb::CommunityIdList {
        ids: codec::string_list(p, f)?,
    })
}

/// Calls one method of this area.
pub(super) async fn call(
    peers: &Peers,
    _events: &EventBus,
    method: &str,
    p: Value,
) -> Result<Value> {
    match method {
        "create_topic_in_community" => {
            let g = nonempty_id(&p, "group_id")?;
            let t = nested(&p, "topic_info")?;
            let topic_id = opt_str(t, "topic_id")?.unwrap_or_default();
            if !topic_id.is_empty() {
                community_of_topic(&topic_id)?;
            }
            let info = pb::TopicInfo {
                topic_id,
                topic_name: opt_str(t, "topic_name")?.unwrap_or_default(),
                introduction: opt_str(t, "introduction")?.unwrap_or_default(),
                notification: opt_str(t, "notification")?.unwrap_or_default(),
                face_url: opt_str(t, "face_url")?.unwrap_or_default(),
                custom_string: opt_str(t, "custom_string")?.unwrap_or_default(),
                is_all_muted: opt_bool(t, "is_all_muted")?,
                default_permissions: opt_u64(t, "default_permissions")?,
                ..Default::default()
            };
            let r = write(peers, g, Op::CreateTopic(info)).await?;
            Ok(json!({ "topic_id": r.id }))
        }
        "delete_topic_from_community" => {
            let g = nonempty_id(&p, "group_id")?;
            let r = write(peers, g, Op::DeleteTopics(ids_of(&p, "topic_id_list")?)).await?;
            Ok(json!({ "topic_operation_result_list": results_json(&r.results, "topic_id") }))
        }
        "set_topic_info" => set_topic_info(peers, nested(&p, "topic_info")?).await,
        "get_topic_info_list" => get_topic_info_list(peers, &p).await,
        "create_permission_group_in_community" => {
            let i = nested(&p, "permission_group_info")?;
            let g = nonempty_id(i, "group_id").or_else(|_| nonempty_id(&p, "group_id"))?;
            let info = pb::PermissionGroupInfo {
                permission_group_id: opt_str(i, "permission_group_id")?.unwrap_or_default(),
                permission_group_name: opt_str(i, "permission_group_name")?.unwrap_or_default(),
                custom_data: opt_str(i, "custom_data")?.unwrap_or_default(),
                group_permission: opt_u64(i, "group_permission")?,
                ..Default::default()
            };
            let r = write(peers, g, Op::CreatePermissionGroup(info)).await?;
            Ok(json!({ "permission_group_id": r.id }))
        }
        "delete_permission_group_from_community" => {
            let g = nonempty_id(&p, "group_id")?;
            let l = ids_of(&p, "permission_group_id_list")?;
            if l.ids.is_empty() {
                return Err(ApiError::invalid_param("permission_group_id_list is empty"));
            }
            let r = write(peers, g, Op::DeletePermissionGroups(l)).await?;
            Ok(json!({
                "permission_group_operation_result_list":
                    results_json(&r.results, "permission_group_id"),
            }))
        }
        "modify_permission_group_info_in_community" => {
            let i = nested(&p, "permission_group_info")?;
            let g = nonempty_id(i, "group_id").or_else(|_| nonempty_id(&p, "group_id"))?;
            let mut flag = 0;
            let mut info = pb::PermissionGroupInfo {
                permission_group_id: nonempty_id(i, "permission_group_id")?,
                ..Default::default()
            };
            if let Some(n) = opt_str(i, "permission_group_name")? {
                info.permission_group_name = n;
                flag |= group_flag::NAME;
            }
            if let Some(b) = opt_u64_of(i, "group_permission")? {
                info.group_permission = b;
                flag |= group_flag::GROUP_PERMISSION;
            }
            if let Some(c) = opt_str(i, "custom_data")? {
                info.custom_data = c;
                flag |= group_flag::CUSTOM_DATA;
            }
            if flag == 0 {
                return Err(ApiError::invalid_param(
                    "nothing to modify: permission_group_name, group_permission or custom_data",
                ));
            }
            let u = pb::PermissionGroupUpdate {
                info: Some(info),
                modify_flag: flag,
            };
            write(peers, g, Op::ModifyPermissionGroup(u)).await?;
            Ok(json!({}))
        }
        "get_joined_permission_group_list_in_community" => {
            let g = nonempty_id(&p, "group_id")?;
            let r = read(peers, g, Q::JoinedPermissionGroups(Default::default())).await?;
            Ok(permission_group_results(&r))
        }
        "get_permission_group_list_in_community" => {
            let g = nonempty_id(&p, "group_id")?;
            let q = Q::PermissionGroups(ids_of(&p, "permission_group_id_list")?);
            Ok(permission_group_results(&read(peers, g, q).await?))
        }
        "add_community_members_to_permission_group"
        | "remove_community_members_from_permission_group" => {
            let g = nonempty_id(&p, "group_id")?;
            let member_ids = codec::string_list(&p, "member_list")?;
            if member_ids.is_empty() {
                return Err(ApiError::invalid_param("member_list is empty"));
            }
            if let Some(bad) = member_ids.iter().find(|u| !ids::is_valid_user_id(u)) {
                return Err(ApiError::new(
                    codes::ERR_INVALID_USER_ID,
                    format!("invalid user id in member_list: {bad:?}"),
                ));
            }
            let m = pb::PermissionGroupMembers {
                permission_group_id: nonempty_id(&p, "permission_group_id")?,
                member_ids,
            };
            let op = if method.starts_with("add") {
                Op::AddMembers(m)
            } else {
                Op::RemoveMembers(m)
            };
            let r = write(peers, g, op).await?;
            Ok(json!({ "member_operation_result_list": results_json(&r.results, "user_id") }))
        }
        "get_community_member_list_in_permission_group" => {
            let g = nonempty_id(&p, "group_id")?;
            let page = pb::PermissionGroupMemberPage {
                permission_group_id: nonempty_id(&p, "permission_group_id")?,
                cursor: opt_str(&p, "next_cursor")?.unwrap_or_default(),
                count: u32::try_from(opt_u64(&p, "count")?)
                    .map_err(|_| ApiError::invalid_param("count is too large"))?,
            };
            let r = read(peers, g, Q::Members(page)).await?;
            let now = crate::actors::now_ms();
            Ok(json!({
                "member_info_list": r.members.iter().map(|m| member_json(m, now)).collect::<Vec<_>>(),
                "next_cursor": r.next_cursor,
                "is_finished": r.next_cursor.is_empty(),
            }))
        }
        "add_topic_permission_to_permission_group"
        | "modify_topic_permission_in_permission_group" => {
            let g = nonempty_id(&p, "group_id")?;
            let t = pb::TopicPermissions {
                permission_group_id: nonempty_id(&p, "permission_group_id")?,
                topic_permissions: topic_permission_map(&p)?,
            };
            let op = if method.starts_with("add") {
                Op::AddTopicPermissions(t)
            } else {
                Op::ModifyTopicPermissions(t)
            };
            let r = write(peers, g, op).await?;
            Ok(json!({ "topic_operation_result_list": results_json(&r.results, "topic_id") }))
        }
        "delete_topic_permission_from_permission_group" => {
            let g = nonempty_id(&p, "group_id")?;
            let t = pb::PermissionGroupTopics {
                permission_group_id: nonempty_id(&p, "permission_group_id")?,
                topic_ids: codec::string_list(&p, "topic_id_list")?,
            };
            let r = write(peers, g, Op::DeleteTopicPermissions(t)).await?;
            Ok(json!({ "topic_operation_result_list": results_json(&r.results, "topic_id") }))
        }
        "get_topic_permission_in_permission_group" => {
            let g = nonempty_id(&p, "group_id")?;
            let q = Q::TopicPermissions(pb::PermissionGroupTopics {
                permission_group_id: nonempty_id(&p, "permission_group_id")?,
                topic_ids: codec::string_list(&p, "topic_id_list")?,
            });
            let r = read(peers, g, q).await?;
            let mut list: Vec<Value> = r
                .topic_permissions
                .iter()
                .map(|(t, b)| json!({"topic_id": t, "code": 0, "desc": "", "topic_permission": b}))
                .collect();
            list.extend(
                r.results
                    .iter()
                    .map(|e| json!({"topic_id": e.id, "code": e.code, "desc": e.desc, "topic_permission": 0})),
            );
            Ok(json!({
                "topic_permission_result_list": list,
                "topic_permission_map": permission_map_json(&r.topic_permissions),
            }))
        }
        "set_community_permission_options" => {
            let g = nonempty_id(&p, "group_id")?;
            let o = pb::CommunityOptions {
                enable_permission_group: opt_bool_of(&p, "enable_permission_group")?,
                default_permissions: opt_u64_of(&p, "default_permissions")?,
            };
            if o.enable_permission_group.is_none() && o.default_permissions.is_none() {
                return Err(ApiError::invalid_param(
                    "nothing to set: enable_permission_group or default_permissions",
                ));
            }
            write(peers, g, Op::SetOptions(o)).await?;
            Ok(json!({}))
        }
        "get_community_permission_options" => {
            let g = nonempty_id(&p, "group_id")?;
            let r = read(peers, g, Q::Options(Default::default())).await?;
            let o = r.options.unwrap_or_default();
            Ok(json!({
                "enable_permission_group": o.enable_permission_group.unwrap_or(false),
                "default_permissions": o.default_permissions.unwrap_or(0),
            }))
        }
        _ => Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    }
}

fn permission_group_results(r: &pb::GetCommunityResp) -> Value {
    let mut list: Vec<Value> = r
        .permission_groups
        .iter()
        .map(|g| json!({"code": 0, "desc": "", "permission_group_info": permission_group_json(g)}))
        .collect();
    list.extend(r.results.iter().map(|e| {
        json!({
            "code": e.code,
            "desc": e.desc,
            "permission_group_info": {"permission_group_id": e.id},
        })
    }));
    json!({ "permission_group_info_result_list": list })
}

/// `set_topic_info {topic_info: {topic_id, ...fields}}`: the fields present are changed (the
/// server's part by modify flags; `draft_text` on the topic's conversation).
async fn set_topic_info(peers: &Peers, t: &Value) -> Result<Value> {
    let topic_id = req_str(t, "topic_id")?;
    let community = community_of_topic(&topic_id)?;
    let mut flag = 0;
    let mut info = pb::TopicInfo {
        topic_id: topic_id.clone(),
        ..Default::default()
    };
    let strings: [(&str, u32, &mut String); 5] = [
        ("topic_name", topic_flag::NAME, &mut info.topic_name),
        (
            "notification",
            topic_flag::NOTIFICATION,
            &mut info.notification,
        ),
        (
            "introduction",
            topic_flag::INTRODUCTION,
            &mut info.introduction,
        ),
        ("face_url", topic_flag::FACE_URL, &mut info.face_url),
        (
            "custom_string",
            topic_flag::CUSTOM_STRING,
            &mut info.custom_string,
        ),
    ];
    for (field, bit, slot) in strings {
        if let Some(v) = opt_str(t, field)? {
            *slot = v;
            flag |= bit;
        }
    }
    if let Some(m) = opt_bool_of(t, "is_all_muted")? {
        info.is_all_muted = m;
        flag |= topic_flag::MUTE_ALL;
    }
    if let Some(d) = opt_u64_of(t, "default_permissions")? {
        info.default_permissions = d;
        flag |= topic_flag::DEFAULT_PERMISSIONS;
    }
    let draft = opt_str(t, "draft_text")?;
    if flag == 0 && draft.is_none() {
        return Err(ApiError::invalid_param("topic_info names no field to set"));
    }
    if flag != 0 {
        let u = pb::TopicUpdate {
            topic: Some(info),
            modify_flag: flag,
        };
        write(peers, community, Op::SetTopic(u)).await?;
    }
    if let Some(text) = draft {
        let id = format!("group_{topic_id}");
        peers
            .conv
            .send(SetDraft { id, text })
            .await
            .map_err(mailbox)??;
    }
    Ok(json!({}))
}

/// `get_topic_info_list {group_id, topic_id_list?}`: each topic's shared fields with its
/// conversation's per-user fields.
async fn get_topic_info_list(peers: &Peers, p: &Value) -> Result<Value> {
    let g = nonempty_id(p, "group_id")?;
    let r = read(peers, g, Q::Topics(ids_of(p, "topic_id_list")?)).await?;
    let conv_ids: Vec<String> = r
        .topics
        .iter()
        .map(|t| format!("group_{}", t.topic_id))
        .collect();
    let convs = peers
        .conv
        .send(ConvQuery::ByIds(conv_ids))
        .await
        .map_err(mailbox)??;
    let by_id: Map<String, Value> = convs
        .get("conversation_list")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c.get("conversation_id")?.as_str()?.to_owned(), c.clone())))
        .collect();
    let mut list = Vec::new();
    for t in &r.topics {
        let mut j = topic_json(t);
        let conv = by_id.get(&format!("group_{}", t.topic_id));
        let field =
            |f: &str, default: Value| conv.and_then(|c| c.get(f)).cloned().unwrap_or(default);
        if let Value::Object(o) = &mut j {
            o.insert("unread_count".into(), field("unread_count", json!(0)));
            o.insert("last_message".into(), field("last_message", Value::Null));
            o.insert("draft_text".into(), field("draft_text", json!("")));
            o.insert("recv_opt".into(), field("recv_opt", json!("receive")));
            o.insert(
                "group_at_info_list".into(),
                field("group_at_info_list", json!([])),
            );
            o.insert("read_seq".into(), field("read_seq", json!(0)));
        }
        list.push(json!({"code": 0, "desc": "", "topic_info": j}));
    }
    list.extend(
        r.results
            .iter()
            .map(|e| json!({"code": e.code, "desc": e.desc, "topic_info": {"topic_id": e.id}})),
    );
    Ok(json!({ "topic_info_result_list": list }))
}
