//! The one JSON dispatch table: method name + params object → result object or `{code, desc}`.
//! The C ABI, the daemon and the tests all come through here; parameter validation and the
//! mapping to actor messages live in this one place.

use std::collections::BTreeMap;

use chime_proto::pb;
use chime_proto::{codes, ids};
use serde_json::{Value, json};

use crate::actors::Peers;
use crate::actors::connection::{GetStatus, Login, Logout, ServerTime};
use crate::actors::conversation::{Get, List, MarkRead, TotalUnread};
use crate::actors::group::{CreateGroup, GroupsInfo, JoinGroup, JoinedList, LeaveGroup};
use crate::actors::message::{Create, CreateKind, Find, HistoryQuery, Resend, Send, SendParams};
use crate::actors::relationship::UsersInfo;
use crate::codec;
use crate::events::EventBus;
use crate::session::LoginStatus;
use crate::{ApiError, Result};

fn mailbox(e: actix::MailboxError) -> ApiError {
    ApiError::new(codes::ERR_SDK_INTERNAL, format!("engine stopped: {e}"))
}

fn req_str(p: &Value, f: &str) -> Result<String> {
    p.get(f)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::invalid_param(format!("{f} (string) is required")))
}

fn opt_str(p: &Value, f: &str) -> Result<Option<String>> {
    match p.get(f) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid_param(format!("{f} must be a string"))),
    }
}

fn opt_bool(p: &Value, f: &str) -> Result<bool> {
    match p.get(f) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::invalid_param(format!("{f} must be a boolean"))),
    }
}

fn opt_u64(p: &Value, f: &str) -> Result<u64> {
    match p.get(f) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| ApiError::invalid_param(format!("{f} must be a non-negative integer"))),
    }
}

fn user_id(p: &Value, f: &str) -> Result<String> {
    let u = req_str(p, f)?;
    if !ids::is_valid_user_id(&u) {
        return Err(ApiError::new(
            codes::ERR_INVALID_USER_ID,
            format!("invalid {f}"),
        ));
    }
    Ok(u)
}

fn group_id(p: &Value, f: &str) -> Result<String> {
    let g = req_str(p, f)?;
    if !ids::is_valid_group_id(&g) {
        return Err(ApiError::new(
            codes::ERR_INVALID_GROUP_ID,
            format!("invalid {f}"),
        ));
    }
    Ok(g)
}

fn priority(p: &Value) -> Result<Option<i32>> {
    match opt_str(p, "priority")? {
        None => Ok(None),
        Some(s) => codec::priority_from_str(&s)
            .map(Some)
            .ok_or_else(|| ApiError::invalid_param("priority must be default|high|normal|low")),
    }
}

fn c2c(target: String) -> pb::ConvRef {
    pb::ConvRef {
        conv_type: pb::ConvType::C2c as i32,
        target,
    }
}

fn group(target: String) -> pb::ConvRef {
    pb::ConvRef {
        conv_type: pb::ConvType::Group as i32,
        target,
    }
}

/// Methods that answer 6014 before login.
fn needs_login(method: &str) -> bool {
    !matches!(
        method,
        "login"
            | "logout"
            | "get_login_user"
            | "get_login_status"
            | "get_server_time"
            | "get_version"
            | "create_text_message"
            | "create_text_at_message"
            | "create_custom_message"
            | "add_simple_msg_listener"
            | "remove_simple_msg_listener"
            | "add_advanced_msg_listener"
            | "remove_advanced_msg_listener"
    )
}

fn custom_data(p: &Value) -> Result<Vec<u8>> {
    codec::get_bytes(p, "data")?.ok_or_else(|| ApiError::invalid_param("data is required"))
}

fn send_params(p: &Value) -> Result<SendParams> {
    let message = p
        .get("message")
        .filter(|m| m.is_object())
        .cloned()
        .ok_or_else(|| ApiError::invalid_param("message (object) is required"))?;
    let receiver = match opt_str(p, "receiver")?.filter(|s| !s.is_empty()) {
        Some(r) if !ids::is_valid_user_id(&r) => {
            return Err(ApiError::new(
                codes::ERR_INVALID_USER_ID,
                "invalid receiver",
            ));
        }
        r => r,
    };
    let group_id = match opt_str(p, "group_id")?.filter(|s| !s.is_empty()) {
        Some(g) if !ids::is_valid_group_id(&g) => {
            return Err(ApiError::new(
                codes::ERR_INVALID_GROUP_ID,
                "invalid group_id",
            ));
        }
        g => g,
    };
    let offline_push_info = match p.get("offline_push_info") {
        None | Some(Value::Null) => None,
        Some(v) => Some(codec::push_info_from_json(v)?),
    };
    Ok(SendParams {
        message,
        receiver,
        group_id,
        priority: priority(p)?,
        online_user_only: opt_bool(p, "online_user_only")?,
        offline_push_info,
        need_read_receipt: opt_bool(p, "need_read_receipt")?,
        exclude_from_unread: opt_bool(p, "is_excluded_from_unread_count")?,
        exclude_from_last_message: opt_bool(p, "is_excluded_from_last_message")?,
        cloud_custom_data: codec::get_bytes(p, "cloud_custom_data")?,
    })
}

fn simple_send(
    elem: Value,
    receiver: Option<String>,
    group_id: Option<String>,
    pr: Option<i32>,
) -> SendParams {
    SendParams {
        message: json!({ "elem_list": [elem] }),
        receiver,
        group_id,
        priority: pr,
        ..Default::default()
    }
}

fn history_query(p: &Value, get_type: &str) -> Result<HistoryQuery> {
    let (cloud, older) = match get_type {
        "cloud_older" => (true, true),
        "cloud_newer" => (true, false),
        "local_older" => (false, true),
        "local_newer" => (false, false),
        _ => {
            return Err(ApiError::invalid_param(
                "get_type must be cloud_older|cloud_newer|local_older|local_newer",
            ));
        }
    };
    let conv = match (opt_str(p, "user_id")?, opt_str(p, "group_id")?) {
        (Some(u), None) if !u.is_empty() => {
            user_id(p, "user_id")?;
            c2c(u)
        }
        (None, Some(g)) if !g.is_empty() => {
            group_id(p, "group_id")?;
            group(g)
        }
        _ => {
            return Err(ApiError::invalid_param(
                "exactly one of user_id / group_id is required",
            ));
        }
    };
    let count = opt_u64(p, "count")?;
    if count == 0 {
        return Err(ApiError::invalid_param("count must be positive"));
    }
    let begin = i64::try_from(opt_u64(p, "get_time_begin")?).unwrap_or(i64::MAX / 1000) * 1000;
    let period = i64::try_from(opt_u64(p, "get_time_period")?).unwrap_or(0) * 1000;
    let types = codec::string_list(p, "message_type_list")?;
    Ok(HistoryQuery {
        cloud,
        older,
        conversation_id: ids::conversation_id(&conv),
        conv,
        count: usize::try_from(count.min(1000)).unwrap_or(1000),
        last_msg_id: opt_str(p, "last_msg_id")?.filter(|s| !s.is_empty()),
        last_msg_seq: opt_u64(p, "last_msg_seq")?,
        time_begin_ms: begin,
        time_end_ms: if period > 0 { begin + period } else { 0 },
        message_types: types,
    })
}

fn create_group_req(p: &Value) -> Result<pb::CreateGroupReq> {
    let group_type = req_str(p, "group_type")?;
    if !matches!(
        group_type.as_str(),
        "Work" | "Public" | "Meeting" | "AVChatRoom" | "Community"
    ) {
        return Err(ApiError::invalid_param(
            "group_type must be Work|Public|Meeting|AVChatRoom|Community",
        ));
    }
    let gid = opt_str(p, "group_id")?.unwrap_or_default();
    if !gid.is_empty() && !ids::is_valid_group_id(&gid) {
        return Err(ApiError::new(
            codes::ERR_INVALID_GROUP_ID,
            "invalid group_id",
        ));
    }
    let mut custom_info = BTreeMap::new();
    if let Some(obj) = p.get("custom_info").and_then(Value::as_object) {
        for (k, v) in obj {
            let bytes = v
                .as_str()
                .map(|s| s.as_bytes().to_vec())
                .ok_or_else(|| ApiError::invalid_param("custom_info values must be strings"))?;
            custom_info.insert(k.clone(), bytes);
        }
    }
    let mut member_list = Vec::new();
    if let Some(list) = p.get("member_list").and_then(Value::as_array) {
        for m in list {
            let (uid, role) = match m {
                Value::String(s) => (s.clone(), String::new()),
                Value::Object(_) => (
                    req_str(m, "user_id")?,
                    opt_str(m, "role")?.unwrap_or_default(),
                ),
                _ => return Err(ApiError::invalid_param("member_list entries")),
            };
            if !ids::is_valid_user_id(&uid) {
                return Err(ApiError::new(
                    codes::ERR_INVALID_USER_ID,
                    "invalid member user_id",
                ));
            }
            member_list.push(pb::GroupMember {
                user_id: uid,
                role,
                ..Default::default()
            });
        }
    }
    Ok(pb::CreateGroupReq {
        group_type,
        group_id: gid,
        name: opt_str(p, "group_name")?.unwrap_or_default(),
        introduction: opt_str(p, "introduction")?.unwrap_or_default(),
        notification: opt_str(p, "notification")?.unwrap_or_default(),
        face_url: opt_str(p, "face_url")?.unwrap_or_default(),
        add_opt: opt_str(p, "add_opt")?.unwrap_or_default(),
        approve_opt: opt_str(p, "approve_opt")?.unwrap_or_default(),
        is_support_topic: opt_bool(p, "is_support_topic")?,
        custom_info,
        member_list,
    })
}

/// Calls one method.
pub async fn dispatch(peers: &Peers, events: &EventBus, method: &str, p: Value) -> Result<Value> {
    let p = if p.is_null() { json!({}) } else { p };
    if !p.is_object() {
        return Err(ApiError::invalid_param("params must be an object"));
    }
    if needs_login(method) {
        let (status, _) = peers.conn.send(GetStatus).await.map_err(mailbox)?;
        if status == LoginStatus::Logout && is_known(method) {
            return Err(ApiError::new(codes::ERR_SDK_NOT_LOGGED_IN, "not logged in"));
        }
    }
    let conn = &peers.conn;
    let msg = &peers.msg;
    match method {
        "login" => {
            let user = user_id(&p, "user_id")?;
            let sig = req_str(&p, "user_sig")?;
            let (status, current) = conn.send(GetStatus).await.map_err(mailbox)?;
            if status == LoginStatus::Logined && current != user {
                conn.send(Logout).await.map_err(mailbox)??;
            }
            conn.send(Login { user, sig }).await.map_err(mailbox)??;
            Ok(json!({}))
        }
        "logout" => {
            conn.send(Logout).await.map_err(mailbox)??;
            Ok(json!({}))
        }
        "get_login_user" => {
            let (_, user) = conn.send(GetStatus).await.map_err(mailbox)?;
            Ok(json!({ "user_id": user }))
        }
        "get_login_status" => {
            let (status, _) = conn.send(GetStatus).await.map_err(mailbox)?;
            Ok(json!({ "status": status.as_str() }))
        }
        "get_server_time" => {
            let t = conn.send(ServerTime).await.map_err(mailbox)?;
            Ok(json!({ "server_time": t }))
        }
        "get_version" => Ok(json!({ "version": crate::VERSION })),
        "create_text_message" => {
            let text = req_str(&p, "text")?;
            msg.send(Create(CreateKind::Text(text)))
                .await
                .map_err(mailbox)
        }
        "create_text_at_message" => {
            let text = req_str(&p, "text")?;
            let mut at = codec::string_list(&p, "at_user_list")?;
            for a in &mut at {
                if a == "__kImSDK_MesssageAtALL__" {
                    *a = "__kImSDK_MessageAtALL__".into();
                }
            }
            msg.send(Create(CreateKind::TextAt(text, at)))
                .await
                .map_err(mailbox)
        }
        "create_custom_message" => {
            let kind = CreateKind::Custom {
                data: custom_data(&p)?,
                description: opt_str(&p, "description")?.unwrap_or_default(),
                extension: opt_str(&p, "extension")?.unwrap_or_default(),
            };
            msg.send(Create(kind)).await.map_err(mailbox)
        }
        "send_message" => msg.send(Send(send_params(&p)?)).await.map_err(mailbox)?,
        "send_c2c_text_message" => {
            let elem = json!({"elem_type": "text", "text": req_str(&p, "text")?});
            let sp = simple_send(elem, Some(user_id(&p, "user_id")?), None, None);
            msg.send(Send(sp)).await.map_err(mailbox)?
        }
        "send_c2c_custom_message" => {
            let data = custom_data(&p)?;
            let elem = custom_elem_json(&data);
            let sp = simple_send(elem, Some(user_id(&p, "user_id")?), None, None);
            msg.send(Send(sp)).await.map_err(mailbox)?
        }
        "send_group_text_message" => {
            let elem = json!({"elem_type": "text", "text": req_str(&p, "text")?});
            let sp = simple_send(elem, None, Some(group_id(&p, "group_id")?), priority(&p)?);
            msg.send(Send(sp)).await.map_err(mailbox)?
        }
        "send_group_custom_message" => {
            let data = custom_data(&p)?;
            let elem = custom_elem_json(&data);
            let sp = simple_send(elem, None, Some(group_id(&p, "group_id")?), priority(&p)?);
            msg.send(Send(sp)).await.map_err(mailbox)?
        }
        "resend_message" => {
            let id = req_str(&p, "msg_id")?;
            msg.send(Resend(id)).await.map_err(mailbox)?
        }
        "get_history_message_list" => {
            let t = req_str(&p, "get_type")?;
            msg.send(history_query(&p, &t)?).await.map_err(mailbox)?
        }
        "get_c2c_history_message_list" => {
            user_id(&p, "user_id")?;
            let mut q = p.clone();
            q.as_object_mut().map(|o| o.remove("group_id"));
            msg.send(history_query(&q, "cloud_older")?)
                .await
                .map_err(mailbox)?
        }
        "get_group_history_message_list" => {
            group_id(&p, "group_id")?;
            let mut q = p.clone();
            q.as_object_mut().map(|o| o.remove("user_id"));
            msg.send(history_query(&q, "cloud_older")?)
                .await
                .map_err(mailbox)?
        }
        "find_messages" => {
            let ids = codec::string_list(&p, "msg_ids")?;
            msg.send(Find(ids)).await.map_err(mailbox)?
        }
        "get_conversation_list" => {
            let count = match opt_u64(&p, "count")? {
                0 => 100,
                n => usize::try_from(n).unwrap_or(usize::MAX),
            };
            let next_seq = opt_u64(&p, "next_seq")?;
            peers
                .conv
                .send(List { next_seq, count })
                .await
                .map_err(mailbox)?
        }
        "get_conversation" => {
            let id = req_str(&p, "conversation_id")?;
            peers.conv.send(Get(id)).await.map_err(mailbox)?
        }
        "get_total_unread_message_count" => {
            let n = peers.conv.send(TotalUnread).await.map_err(mailbox)??;
            Ok(json!({ "total_unread_count": n }))
        }
        "mark_c2c_message_as_read" => {
            let c = c2c(user_id(&p, "user_id")?);
            peers.conv.send(MarkRead(c)).await.map_err(mailbox)?
        }
        "mark_group_message_as_read" => {
            let c = group(group_id(&p, "group_id")?);
            peers.conv.send(MarkRead(c)).await.map_err(mailbox)?
        }
        "create_group" => {
            let req = create_group_req(&p)?;
            peers.group.send(CreateGroup(req)).await.map_err(mailbox)?
        }
        "join_group" => {
            let g = group_id(&p, "group_id")?;
            let m = opt_str(&p, "message")?.unwrap_or_default();
            peers.group.send(JoinGroup(g, m)).await.map_err(mailbox)?
        }
        "quit_group" | "dismiss_group" => {
            let g = group_id(&p, "group_id")?;
            let leave = LeaveGroup {
                group_id: g,
                dismiss: method == "dismiss_group",
            };
            peers.group.send(leave).await.map_err(mailbox)?
        }
        "get_joined_group_list" => peers.group.send(JoinedList).await.map_err(mailbox)?,
        "get_groups_info" => {
            let ids = codec::string_list(&p, "group_ids")?;
            peers.group.send(GroupsInfo(ids)).await.map_err(mailbox)?
        }
        "get_users_info" => {
            let ids = codec::string_list(&p, "user_ids")?;
            peers.rel.send(UsersInfo(ids)).await.map_err(mailbox)?
        }
        "add_simple_msg_listener" | "remove_simple_msg_listener" => {
            events.set_simple(method.starts_with("add"));
            Ok(json!({}))
        }
        "add_advanced_msg_listener" | "remove_advanced_msg_listener" => {
            events.set_advanced(method.starts_with("add"));
            Ok(json!({}))
        }
        _ => Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    }
}

fn custom_elem_json(data: &[u8]) -> Value {
    match std::str::from_utf8(data) {
        Ok(s) => json!({"elem_type": "custom", "data": s}),
        Err(_) => {
            use base64::Engine as _;
            json!({"elem_type": "custom",
                "data_base64": base64::engine::general_purpose::STANDARD.encode(data)})
        }
    }
}

/// Methods of the table (an unknown one answers 6017 even before login).
fn is_known(method: &str) -> bool {
    matches!(
        method,
        "send_message"
            | "send_c2c_text_message"
            | "send_c2c_custom_message"
            | "send_group_text_message"
            | "send_group_custom_message"
            | "resend_message"
            | "get_history_message_list"
            | "get_c2c_history_message_list"
            | "get_group_history_message_list"
            | "find_messages"
            | "get_conversation_list"
            | "get_conversation"
            | "get_total_unread_message_count"
            | "mark_c2c_message_as_read"
            | "mark_group_message_as_read"
            | "create_group"
            | "join_group"
            | "quit_group"
            | "dismiss_group"
            | "get_joined_group_list"
            | "get_groups_info"
            | "get_users_info"
    )
}
