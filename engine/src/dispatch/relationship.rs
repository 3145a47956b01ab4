//! User and relationship methods (api.md §4.5): parameter checks with the seed's client codes
//! (9001–9006), then a write through the RelationshipActor, a read of its local state, or a read
//! from the server (profiles, status, friend checks, follow lists).

use std::collections::BTreeMap;

use chime_proto::pb::{self, relation_req::Op, request, response};
use serde_json::{Value, json};

use super::params::*;
use crate::actors::Peers;
use crate::actors::connection::Rpc;
use crate::actors::relationship::json::{
    ALLOW_TYPES, GENDERS, application_json, black_json, follow_type_name, friend_json, group_json,
    relation_name, result_json, status_json, user_json, value_of,
};
use crate::actors::relationship::state::{RelState, search_rank};
use crate::actors::relationship::{LocalProfiles, Query, Write};
use crate::events::EventBus;
use crate::{ApiError, Result, codec};

/// Invalid custom profile key (letters only, at most 8 bytes).
pub const ERR_INVALID_PROFILE_KEY: i32 = 9001;
/// Friend remark over 96 bytes.
pub const ERR_INVALID_ADD_REMARK: i32 = 9002;
/// Add-friend wording over 120 bytes.
pub const ERR_INVALID_ADD_WORDING: i32 = 9003;
/// Add source not of the form `AddSource_Type_<keyword>`.
pub const ERR_INVALID_ADD_SOURCE: i32 = 9004;
/// Friend group name empty or over 30 bytes.
pub const ERR_FRIEND_GROUP_NAME: i32 = 9005;
/// Too many items in one call.
pub const ERR_EXCEED_THE_LIMIT: i32 = 9006;

/// Most users in one call.
const MAX_USERS: usize = 1_000;
/// Most users in one status subscription call (the seed's).
const MAX_STATUS_SUBSCRIBE: usize = 100;

/// The methods this area answers.
pub(super) const METHODS: &[&str] = &[
    "get_users_info",
    "set_self_info",
    "subscribe_user_info",
    "unsubscribe_user_info",
    "get_user_status",
    "set_self_status",
    "subscribe_user_status",
    "unsubscribe_user_status",
    "get_friend_list",
    "get_friends_info",
    "set_friend_info",
    "add_friend",
    "delete_from_friend_list",
    "check_friend",
    "get_friend_application_list",
    "accept_friend_application",
    "refuse_friend_application",
    "delete_friend_application",
    "set_friend_application_read",
    "add_to_black_list",
    "delete_from_black_list",
    "get_black_list",
    "create_friend_group",
    "get_friend_groups",
    "delete_friend_group",
    "rename_friend_group",
    "add_friends_to_friend_group",
    "delete_friends_from_friend_group",
    "search_friends",
    "follow_user",
    "unfollow_user",
    "get_my_following_list",
    "get_my_followers_list",
    "get_mutual_followers_list",
    "get_user_follow_info",
    "check_follow_type",
];

/// The methods of this area that work before login.
pub(super) const PRE_LOGIN: &[&str] = &[];

fn err(code: i32, desc: impl Into<String>) -> ApiError {
    ApiError::new(code, desc)
}

/// A non-empty list of valid user ids, at most `max`.
fn user_ids(p: &Value, field: &str, max: usize) -> Result<Vec<String>> {
    let ids = codec::string_list(p, field)?;
    if ids.is_empty() {
        return Err(ApiError::invalid_param(format!(
            "{field} must not be empty"
        )));
    }
    if ids.len() > max {
        return Err(err(
            ERR_EXCEED_THE_LIMIT,
            format!("{field} holds more than {max} ids"),
        ));
    }
    for u in &ids {
        if !chime_proto::ids::is_valid_user_id(u) {
            return Err(err(
                chime_proto::codes::ERR_INVALID_USER_ID,
                format!("invalid user id {u:?} in {field}"),
            ));
        }
    }
    Ok(ids)
}

fn group_name(p: &Value, field: &str) -> Result<String> {
    let n = req_str(p, field)?;
    check_group_name(&n)?;
    Ok(n)
}

fn check_group_name(n: &str) -> Result<()> {
    if n.is_empty() || n.len() > 30 {
        return Err(err(
            ERR_FRIEND_GROUP_NAME,
            "a friend group name is 1..=30 bytes",
        ));
    }
    Ok(())
}

fn remark(p: &Value, field: &str) -> Result<Option<String>> {
    let r = opt_str(p, field)?;
    if r.as_ref().is_some_and(|r| r.len() > 96) {
        return Err(err(
            ERR_INVALID_ADD_REMARK,
            format!("{field} is over 96 bytes"),
        ));
    }
    Ok(r)
}

/// Custom fields `{key: string}`: keys are 1..=8 letters (9001).
fn custom(p: &Value, field: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    match p.get(field) {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => {
            for (k, v) in o {
                let key = k.strip_prefix("Tag_Profile_Custom_").unwrap_or(k);
                let key = key.strip_prefix("Tag_SNS_Custom_").unwrap_or(key);
                if key.is_empty() || key.len() > 8 || !key.bytes().all(|b| b.is_ascii_alphabetic())
                {
                    return Err(err(
                        ERR_INVALID_PROFILE_KEY,
                        format!("custom key {k:?} must be 1..=8 letters"),
                    ));
                }
                let Some(s) = v.as_str() else {
                    return Err(ApiError::invalid_param(format!(
                        "{field}.{k} must be a string"
                    )));
                };
                out.insert(key.to_owned(), s.as_bytes().to_vec());
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

fn opt_u32(p: &Value, f: &str) -> Result<Option<u32>> {
    match p.get(f) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid_param(format!("{f} must be a 32-bit unsigned integer"))
            }),
    }
}

fn opt_enum(p: &Value, f: &str, names: &[&str]) -> Result<Option<i32>> {
    match opt_str(p, f)? {
        None => Ok(None),
        Some(s) => value_of(names, &s)
            .map(Some)
            .ok_or_else(|| ApiError::invalid_param(format!("{f} must be one of {names:?}"))),
    }
}

fn both(p: &Value, f: &str) -> Result<bool> {
    match opt_str(p, f)?.as_deref() {
        None | Some("both") => Ok(true),
        Some("single") => Ok(false),
        Some(_) => Err(ApiError::invalid_param(format!("{f} must be single|both"))),
    }
}

async fn write(peers: &Peers, op: Op) -> Result<pb::RelationResp> {
    peers.rel.send(Write(op)).await.map_err(mailbox)?
}

async fn query(
    peers: &Peers,
    f: impl FnOnce(&RelState) -> Result<Value> + Send + 'static,
) -> Result<Value> {
    peers.rel.send(Query(Box::new(f))).await.map_err(mailbox)?
}

async fn remote(peers: &Peers, kind: request::Kind) -> Result<response::Kind> {
    let resp = peers.conn.send(Rpc(kind)).await.map_err(mailbox)??;
    resp.kind.ok_or_else(|| {
        err(
            chime_proto::codes::ERR_PARSE_RESPONSE,
            "empty answer from the server",
        )
    })
}

fn unexpected() -> ApiError {
    err(chime_proto::codes::ERR_PARSE_RESPONSE, "unexpected answer")
}

fn results(r: &pb::RelationResp) -> Value {
    json!({"result_list": r.results.iter().map(result_json).collect::<Vec<_>>()})
}

/// The users of an unsubscribe call: none (or an empty list) = everyone subscribed to.
fn unsubscribe_op(p: &Value) -> Result<pb::UsersOp> {
    if codec::string_list(p, "user_ids")?.is_empty() {
        return Ok(pb::UsersOp::default());
    }
    users_op(p, MAX_USERS)
}

fn users_op(p: &Value, max: usize) -> Result<pb::UsersOp> {
    Ok(pb::UsersOp {
        user_ids: user_ids(p, "user_ids", max)?,
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
        // ---- profiles and status ----
        "get_users_info" => {
            let ids = user_ids(&p, "user_ids", MAX_USERS)?;
            let req = request::Kind::GetProfiles(pb::GetProfilesReq {
                user_ids: ids.clone(),
            });
            let profiles = match remote(peers, req).await {
                Ok(response::Kind::GetProfiles(r)) => r.profiles,
                Ok(_) => return Err(unexpected()),
                // Offline: what this device knows.
                Err(e) if e.code == chime_proto::codes::ERR_NET_DISCONNECT => peers
                    .rel
                    .send(LocalProfiles(ids))
                    .await
                    .map_err(mailbox)??,
                Err(e) => return Err(e),
            };
            let list: Vec<Value> = profiles.iter().map(user_json).collect();
            Ok(json!({"user_info_list": list}))
        }
        "set_self_info" => {
            for s in ["nick_name", "face_url", "self_signature"] {
                if opt_str(&p, s)?.is_some_and(|v| v.len() > 500) {
                    return Err(ApiError::invalid_param(format!("{s} is over 500 bytes")));
                }
            }
            let req = pb::SetProfileReq {
                nick_name: opt_str(&p, "nick_name")?,
                face_url: opt_str(&p, "face_url")?,
                self_signature: opt_str(&p, "self_signature")?,
                gender: opt_enum(&p, "gender", &GENDERS)?,
                birthday: opt_u32(&p, "birthday")?,
                level: opt_u32(&p, "level")?,
                role: opt_u32(&p, "role")?,
                allow_type: opt_enum(&p, "allow_type", &ALLOW_TYPES)?,
                custom_info: custom(&p, "custom_info")?,
            };
            write(peers, Op::SetProfile(req)).await?;
            Ok(json!({}))
        }
        "subscribe_user_info" => {
            write(peers, Op::SubscribeUserInfo(users_op(&p, MAX_USERS)?)).await?;
            Ok(json!({}))
        }
        "unsubscribe_user_info" => {
            write(peers, Op::UnsubscribeUserInfo(unsubscribe_op(&p)?)).await?;
            Ok(json!({}))
        }
        "get_user_status" => {
            let ids = user_ids(&p, "user_ids", MAX_USERS)?;
            match remote(
                peers,
                request::Kind::GetUserStatus(pb::GetUserStatusReq { user_ids: ids }),
            )
            .await?
            {
                response::Kind::GetUserStatus(r) => {
                    let list: Vec<Value> = r.statuses.iter().map(status_json).collect();
                    Ok(json!({"user_status_list": list}))
                }
                _ => Err(unexpected()),
            }
        }
        "set_self_status" => {
            let s = opt_str(&p, "custom_status")?.unwrap_or_default();
            if s.len() > 100 {
                return Err(ApiError::invalid_param("custom_status is over 100 bytes"));
            }
            let op = Op::SetCustomStatus(pb::SetCustomStatusOp { custom_status: s });
            write(peers, op).await?;
            Ok(json!({}))
        }
        "subscribe_user_status" => {
            let op = users_op(&p, MAX_STATUS_SUBSCRIBE)?;
            write(peers, Op::SubscribeUserStatus(op)).await?;
            Ok(json!({}))
        }
        "unsubscribe_user_status" => {
            write(peers, Op::UnsubscribeUserStatus(unsubscribe_op(&p)?)).await?;
            Ok(json!({}))
        }
        // ---- friends ----
        "get_friend_list" => {
            query(peers, |s| {
                let list: Vec<Value> = s.friends().map(friend_json).collect();
                Ok(json!({"friend_info_list": list}))
            })
            .await
        }
        "get_friends_info" => {
            let ids = user_ids(&p, "user_ids", MAX_USERS)?;
            let req = pb::CheckFriendReq {
                user_ids: ids.clone(),
                both: true,
            };
            let relations = match remote(peers, request::Kind::CheckFriend(req)).await? {
                response::Kind::CheckFriend(r) => r.results,
                _ => return Err(unexpected()),
            };
            query(peers, move |s| {
                let list: Vec<Value> = ids
                    .iter()
                    .map(|u| {
                        let rel = relations
                            .iter()
                            .find(|r| r.user_id == *u)
                            .map_or(0, |r| r.relation);
                        let info = s
                            .friend(u)
                            .map_or_else(|| json!({"user_id": u}), friend_json);
                        json!({
                            "user_id": u,
                            "result_code": 0,
                            "result_info": "",
                            "relation": relation_name(rel),
                            "friend_info": info,
                        })
                    })
                    .collect();
                Ok(json!({"friend_info_result_list": list}))
            })
            .await
        }
        "set_friend_info" => {
            let op = pb::SetFriendInfoOp {
                user_id: user_id(&p, "user_id")?,
                remark: remark(&p, "friend_remark")?,
                custom_info: custom(&p, "friend_custom_info")?,
            };
            write(peers, Op::SetFriendInfo(op)).await?;
            Ok(json!({}))
        }
        "add_friend" => {
            let wording = opt_str(&p, "add_wording")?.unwrap_or_default();
            if wording.len() > 120 {
                return Err(err(
                    ERR_INVALID_ADD_WORDING,
                    "add_wording is over 120 bytes",
                ));
            }
            let source = opt_str(&p, "add_source")?.unwrap_or_default();
            if !source.is_empty() {
                let kw = source.strip_prefix("AddSource_Type_").unwrap_or("");
                if kw.is_empty() || kw.len() > 8 {
                    return Err(err(
                        ERR_INVALID_ADD_SOURCE,
                        "add_source must be AddSource_Type_<keyword of at most 8 bytes>",
                    ));
                }
            }
            let group = opt_str(&p, "friend_group")?.unwrap_or_default();
            if !group.is_empty() {
                check_group_name(&group)?;
            }
            let op = pb::AddFriendOp {
                user_id: user_id(&p, "user_id")?,
                remark: remark(&p, "remark")?.unwrap_or_default(),
                friend_group: group,
                add_wording: wording,
                add_source: source,
                both: both(&p, "add_type")?,
            };
            let r = write(peers, Op::AddFriend(op)).await?;
            let first = r.results.first().ok_or_else(unexpected)?;
            Ok(result_json(first))
        }
        "delete_from_friend_list" => {
            let op = pb::DeleteFriendsOp {
                user_ids: user_ids(&p, "user_ids", MAX_USERS)?,
                both: both(&p, "delete_type")?,
            };
            Ok(results(&write(peers, Op::DeleteFriends(op)).await?))
        }
        "check_friend" => {
            let req = pb::CheckFriendReq {
                user_ids: user_ids(&p, "user_ids", MAX_USERS)?,
                both: both(&p, "check_type")?,
            };
            match remote(peers, request::Kind::CheckFriend(req)).await? {
                response::Kind::CheckFriend(r) => {
                    let list: Vec<Value> = r
                        .results
                        .iter()
                        .map(|c| {
                            json!({
                                "user_id": c.user_id,
                                "result_code": 0,
                                "result_info": "",
                                "result_type": relation_name(c.relation),
                            })
                        })
                        .collect();
                    Ok(json!({"check_result_list": list}))
                }
                _ => Err(unexpected()),
            }
        }
        // ---- applications ----
        "get_friend_application_list" => {
            query(peers, |s| {
                let list: Vec<Value> = s.applications().into_iter().map(application_json).collect();
                Ok(json!({"unread_count": s.unread_applications(), "application_list": list}))
            })
            .await
        }
        "accept_friend_application" => {
            let action = match opt_str(&p, "response_type")?.as_deref() {
                None | Some("agree") => 1,
                Some("agree_and_add") => 2,
                Some(_) => {
                    return Err(ApiError::invalid_param(
                        "response_type must be agree|agree_and_add",
                    ));
                }
            };
            let op = pb::HandleApplicationOp {
                user_id: user_id(&p, "user_id")?,
                action,
                remark: remark(&p, "remark")?.unwrap_or_default(),
            };
            let r = write(peers, Op::HandleApplication(op)).await?;
            Ok(result_json(r.results.first().ok_or_else(unexpected)?))
        }
        "refuse_friend_application" => {
            let op = pb::HandleApplicationOp {
                user_id: user_id(&p, "user_id")?,
                action: 0,
                remark: String::new(),
            };
            let r = write(peers, Op::HandleApplication(op)).await?;
            Ok(result_json(r.results.first().ok_or_else(unexpected)?))
        }
        "delete_friend_application" => {
            let ty = match opt_str(&p, "type")?.as_deref() {
                None | Some("come_in") => pb::ApplicationType::ComeIn,
                Some("send_out") => pb::ApplicationType::SendOut,
                Some(_) => return Err(ApiError::invalid_param("type must be come_in|send_out")),
            };
            let op = pb::DeleteApplicationOp {
                user_id: user_id(&p, "user_id")?,
                r#type: ty as i32,
            };
            let r = write(peers, Op::DeleteApplication(op)).await?;
            let first = r.results.first().ok_or_else(unexpected)?;
            if first.code != 0 {
                return Err(err(first.code, first.desc.clone()));
            }
            Ok(json!({}))
        }
        "set_friend_application_read" => {
            write(peers, Op::SetApplicationRead(pb::SetApplicationReadOp {})).await?;
            Ok(json!({}))
        }
        // ---- blacklist ----
        "add_to_black_list" => {
            let op = users_op(&p, MAX_USERS)?;
            Ok(results(&write(peers, Op::AddToBlackList(op)).await?))
        }
        "delete_from_black_list" => {
            let op = users_op(&p, MAX_USERS)?;
            Ok(results(&write(peers, Op::DeleteFromBlackList(op)).await?))
        }
        "get_black_list" => {
            query(peers, |s| {
                let list: Vec<Value> = s.black_list().map(black_json).collect();
                Ok(json!({"friend_info_list": list}))
            })
            .await
        }
        // ---- friend groups ----
        "create_friend_group" => {
            let ids = codec::string_list(&p, "user_ids")?;
            let ids = if ids.is_empty() {
                ids
            } else {
                user_ids(&p, "user_ids", MAX_USERS)?
            };
            let op = pb::FriendGroupOp {
                name: group_name(&p, "group_name")?,
                user_ids: ids,
            };
            Ok(results(&write(peers, Op::CreateFriendGroup(op)).await?))
        }
        "get_friend_groups" => {
            let names = codec::string_list(&p, "group_names")?;
            query(peers, move |s| {
                let list: Vec<Value> = s
                    .friend_groups()
                    .filter(|g| names.is_empty() || names.contains(&g.name))
                    .map(group_json)
                    .collect();
                Ok(json!({"friend_group_list": list}))
            })
            .await
        }
        "delete_friend_group" => {
            let names = codec::string_list(&p, "group_names")?;
            if names.is_empty() {
                return Err(ApiError::invalid_param("group_names must not be empty"));
            }
            for n in &names {
                check_group_name(n)?;
            }
            let r = write(peers, Op::DeleteFriendGroups(pb::NamesOp { names })).await?;
            if let Some(bad) = r.results.iter().find(|r| r.code != 0) {
                return Err(err(bad.code, format!("{}: {}", bad.user_id, bad.desc)));
            }
            Ok(json!({}))
        }
        "rename_friend_group" => {
            let op = pb::RenameFriendGroupOp {
                old_name: group_name(&p, "old_name")?,
                new_name: group_name(&p, "new_name")?,
            };
            write(peers, Op::RenameFriendGroup(op)).await?;
            Ok(json!({}))
        }
        "add_friends_to_friend_group" | "delete_friends_from_friend_group" => {
            let op = pb::FriendGroupOp {
                name: group_name(&p, "group_name")?,
                user_ids: user_ids(&p, "user_ids", MAX_USERS)?,
            };
            let op = if method == "add_friends_to_friend_group" {
                Op::AddToFriendGroup(op)
            } else {
                Op::DeleteFromFriendGroup(op)
            };
            Ok(results(&write(peers, op).await?))
        }
        "search_friends" => search_friends(peers, &p).await,
        // ---- follow ----
        "follow_user" => Ok(results(&write(peers, Op::Follow(users_op(&p, 20)?)).await?)),
        "unfollow_user" => Ok(results(
            &write(peers, Op::Unfollow(users_op(&p, 20)?)).await?,
        )),
        "get_my_following_list" | "get_my_followers_list" | "get_mutual_followers_list" => {
            let list = match method {
                "get_my_following_list" => pb::FollowList::Following,
                "get_my_followers_list" => pb::FollowList::Followers,
                _ => pb::FollowList::Mutual,
            };
            let req = pb::GetFollowListReq {
                list: list as i32,
                cursor: opt_str(&p, "next_cursor")?.unwrap_or_default(),
                count: opt_u32(&p, "count")?.unwrap_or(0),
            };
            match remote(peers, request::Kind::GetFollowList(req)).await? {
                response::Kind::GetFollowList(r) => {
                    let users: Vec<Value> = r.users.iter().map(user_json).collect();
                    Ok(json!({"user_info_list": users, "next_cursor": r.next_cursor}))
                }
                _ => Err(unexpected()),
            }
        }
        "get_user_follow_info" | "check_follow_type" => {
            let ids = user_ids(&p, "user_ids", 100)?;
            let req = request::Kind::GetFollowInfo(pb::GetFollowInfoReq { user_ids: ids });
            let infos = match remote(peers, req).await? {
                response::Kind::GetFollowInfo(r) => r.infos,
                _ => return Err(unexpected()),
            };
            if method == "check_follow_type" {
                let list: Vec<Value> = infos
                    .iter()
                    .map(|i| {
                        json!({
                            "user_id": i.user_id,
                            "follow_type": follow_type_name(i.follow_type),
                            "result_code": 0,
                            "result_info": "",
                        })
                    })
                    .collect();
                Ok(json!({"follow_type_check_result_list": list}))
            } else {
                let list: Vec<Value> = infos
                    .iter()
                    .map(|i| {
                        json!({
                            "user_id": i.user_id,
                            "followers_count": i.followers_count,
                            "following_count": i.following_count,
                            "mutual_followers_count": i.mutual_count,
                            "result_code": 0,
                            "result_info": "",
                        })
                    })
                    .collect();
                Ok(json!({"follow_info_list": list}))
            }
        }
        _ => Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    }
}

/// `search_friends {keyword_list, search_field_list?, next_seq?, count?}` over the local friend
/// list: best rank first, then user id; paged like every list of api.md.
async fn search_friends(peers: &Peers, p: &Value) -> Result<Value> {
    let keywords = codec::string_list(p, "keyword_list")?;
    if keywords.is_empty() || keywords.iter().any(String::is_empty) {
        return Err(ApiError::invalid_param(
            "keyword_list must hold non-empty keywords",
        ));
    }
    if keywords.len() > 5 {
        return Err(err(ERR_EXCEED_THE_LIMIT, "at most 5 keywords"));
    }
    let mut fields = codec::string_list(p, "search_field_list")?;
    if fields.is_empty() {
        fields = vec!["user_id".into(), "nick_name".into(), "remark".into()];
    }
    for f in &fields {
        if !["user_id", "nick_name", "remark"].contains(&f.as_str()) {
            return Err(ApiError::invalid_param(
                "search_field_list entries are user_id|nick_name|remark",
            ));
        }
    }
    let start = opt_u64(p, "next_seq")? as usize;
    let count = match opt_u64(p, "count")? {
        0 => 100,
        n => n.min(1_000) as usize,
    };
    query(peers, move |s| {
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        let mut hits: Vec<(u32, &pb::Friend)> = s
            .friends()
            .filter_map(|f| search_rank(f, &keywords, &fields).map(|r| (r, f)))
            .collect();
        hits.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.user_id.cmp(&b.1.user_id)));
        let total = hits.len();
        let page: Vec<Value> = hits
            .into_iter()
            .skip(start)
            .take(count)
            .map(|(_, f)| friend_json(f))
            .collect();
        let next = (start + page.len()).min(total);
        Ok(json!({
            "friend_info_list": page,
            "total_count": total,
            "next_seq": next,
            "is_finished": next >= total,
        }))
    })
    .await
}
