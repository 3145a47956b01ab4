//! Message methods (api.md §4.2): create, send, resend, history and find, and the lifecycle
//! (revoke, modify, delete, clear, insert, local custom data, forward, merge, search).

use serde_json::{Value, json};

use super::params::*;
use crate::actors::Peers;
use crate::actors::message::search::Criteria;
use crate::actors::message::{
    Annotate, AnnotationCall, CancelSend, ClearHistory, Create, CreateForward, CreateKind,
    CreateMerger, DeleteLocal, DeleteMessages, DownloadMerger, ExtensionWrite, Find, GetPinned,
    HistoryQuery, InsertLocal, Modify, PinGroupMessage, Resend, Revoke, SearchLocal, Send,
    SendParams, SetLocalCustom,
};
use crate::codec;
use crate::events::EventBus;
use crate::{ApiError, Result};
use chime_proto::codes;
use chime_proto::ids;

/// The methods this area answers.
pub(super) const METHODS: &[&str] = &[
    "create_text_message",
    "create_text_at_message",
    "create_custom_message",
    "send_message",
    "send_c2c_text_message",
    "send_c2c_custom_message",
    "send_group_text_message",
    "send_group_custom_message",
    "resend_message",
    "get_history_message_list",
    "get_c2c_history_message_list",
    "get_group_history_message_list",
    "find_messages",
    "revoke_message",
    "modify_message",
    "delete_messages",
    "delete_message_from_local_storage",
    "clear_c2c_history_message",
    "clear_group_history_message",
    "insert_c2c_message_to_local_storage",
    "insert_group_message_to_local_storage",
    "set_local_custom_data",
    "set_local_custom_int",
    "search_local_messages",
    "search_cloud_messages",
    "create_forward_message",
    "create_merger_message",
    "download_merger_message",
    "add_message_reaction",
    "remove_message_reaction",
    "get_message_reactions",
    "get_all_user_list_of_message_reaction",
    "set_message_extensions",
    "get_message_extensions",
    "delete_message_extensions",
    "pin_group_message",
    "get_pinned_group_messages",
    "cancel_send_message",
];

/// The methods of this area that work before login.
pub(super) const PRE_LOGIN: &[&str] = &[
    "create_text_message",
    "create_text_at_message",
    "create_custom_message",
];

/// Calls one method of this area.
pub(super) async fn call(
    peers: &Peers,
    _events: &EventBus,
    method: &str,
    p: Value,
) -> Result<Value> {
    match method {
        "create_text_message" => {
            let text = req_str(&p, "text")?;
            peers
                .msg
                .send(Create(CreateKind::Text(text)))
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
            peers
                .msg
                .send(Create(CreateKind::TextAt(text, at)))
                .await
                .map_err(mailbox)
        }
        "create_custom_message" => {
            let kind = CreateKind::Custom {
                data: custom_data(&p)?,
                description: opt_str(&p, "description")?.unwrap_or_default(),
                extension: opt_str(&p, "extension")?.unwrap_or_default(),
            };
            peers.msg.send(Create(kind)).await.map_err(mailbox)
        }
        "send_message" => peers
            .msg
            .send(Send(send_params(&p)?))
            .await
            .map_err(mailbox)?,
        "send_c2c_text_message" => {
            let elem = json!({"elem_type": "text", "text": req_str(&p, "text")?});
            let sp = simple_send(elem, Some(user_id(&p, "user_id")?), None, None);
            peers.msg.send(Send(sp)).await.map_err(mailbox)?
        }
        "send_c2c_custom_message" => {
            let data = custom_data(&p)?;
            let elem = custom_elem_json(&data);
            let sp = simple_send(elem, Some(user_id(&p, "user_id")?), None, None);
            peers.msg.send(Send(sp)).await.map_err(mailbox)?
        }
        "send_group_text_message" => {
            let elem = json!({"elem_type": "text", "text": req_str(&p, "text")?});
            let sp = simple_send(elem, None, Some(group_id(&p, "group_id")?), priority(&p)?);
            peers.msg.send(Send(sp)).await.map_err(mailbox)?
        }
        "send_group_custom_message" => {
            let data = custom_data(&p)?;
            let elem = custom_elem_json(&data);
            let sp = simple_send(elem, None, Some(group_id(&p, "group_id")?), priority(&p)?);
            peers.msg.send(Send(sp)).await.map_err(mailbox)?
        }
        "resend_message" => {
            let id = req_str(&p, "msg_id")?;
            peers.msg.send(Resend(id)).await.map_err(mailbox)?
        }
        "get_history_message_list" => {
            let t = req_str(&p, "get_type")?;
            peers
                .msg
                .send(history_query(&p, &t)?)
                .await
                .map_err(mailbox)?
        }
        "get_c2c_history_message_list" => {
            user_id(&p, "user_id")?;
            let mut q = p.clone();
            q.as_object_mut().map(|o| o.remove("group_id"));
            peers
                .msg
                .send(history_query(&q, "cloud_older")?)
                .await
                .map_err(mailbox)?
        }
        "get_group_history_message_list" => {
            group_id(&p, "group_id")?;
            let mut q = p.clone();
            q.as_object_mut().map(|o| o.remove("user_id"));
            peers
                .msg
                .send(history_query(&q, "cloud_older")?)
                .await
                .map_err(mailbox)?
        }
        "find_messages" => {
            let ids = codec::string_list(&p, "msg_ids")?;
            peers.msg.send(Find(ids)).await.map_err(mailbox)?
        }
        _ => lifecycle(peers, method, p).await,
    }
}

/// The lifecycle methods.
async fn lifecycle(peers: &Peers, method: &str, p: Value) -> Result<Value> {
    let msg = &peers.msg;
    match method {
        "revoke_message" => {
            let r = Revoke {
                msg_id: req_str(&p, "msg_id")?,
                reason: opt_str(&p, "reason")?.unwrap_or_default(),
            };
            msg.send(r).await.map_err(mailbox)?
        }
        "modify_message" => {
            // Content-filter plugins judge the edit before it leaves (`crate::filter`).
            let edit = crate::filter::screen_message_json(&peers.plugins, message_obj(&p)?).await?;
            msg.send(Modify(edit)).await.map_err(mailbox)?
        }
        "delete_messages" => {
            let ids = codec::string_list(&p, "msg_ids")?;
            msg.send(DeleteMessages(ids)).await.map_err(mailbox)?
        }
        "delete_message_from_local_storage" => {
            let id = req_str(&p, "msg_id")?;
            msg.send(DeleteLocal(id)).await.map_err(mailbox)?
        }
        "clear_c2c_history_message" => {
            let conv = c2c(user_id(&p, "user_id")?);
            msg.send(ClearHistory(conv)).await.map_err(mailbox)?
        }
        "clear_group_history_message" => {
            let conv = group(group_id(&p, "group_id")?);
            msg.send(ClearHistory(conv)).await.map_err(mailbox)?
        }
        "insert_c2c_message_to_local_storage" | "insert_group_message_to_local_storage" => {
            let conv = if method.starts_with("insert_c2c") {
                c2c(user_id(&p, "user_id")?)
            } else {
                group(group_id(&p, "group_id")?)
            };
            let sender = user_id(&p, "sender")?;
            let r = InsertLocal {
                message: message_obj(&p)?,
                conv,
                sender,
            };
            msg.send(r).await.map_err(mailbox)?
        }
        "set_local_custom_data" => {
            let r = SetLocalCustom {
                msg_id: req_str(&p, "msg_id")?,
                data: Some(codec::get_bytes(&p, "local_custom_data")?.unwrap_or_default()),
                int: None,
            };
            msg.send(r).await.map_err(mailbox)?
        }
        "set_local_custom_int" => {
            let v = p
                .get("local_custom_int")
                .and_then(Value::as_i64)
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| ApiError::invalid_param("local_custom_int (int32) is required"))?;
            let r = SetLocalCustom {
                msg_id: req_str(&p, "msg_id")?,
                data: None,
                int: Some(v),
            };
            msg.send(r).await.map_err(mailbox)?
        }
        "search_local_messages" => msg.send(search_params(&p)?).await.map_err(mailbox)?,
        "search_cloud_messages" => search_cloud(peers, search_params(&p)?).await,
        "create_forward_message" => {
            let id = req_str(&p, "msg_id")?;
            msg.send(CreateForward(id)).await.map_err(mailbox)?
        }
        "create_merger_message" => {
            let r = CreateMerger {
                msg_ids: codec::string_list(&p, "message_list")?,
                title: opt_str(&p, "title")?.unwrap_or_default(),
                abstract_list: codec::string_list(&p, "abstract_list")?,
                compatible_text: opt_str(&p, "compatible_text")?.unwrap_or_default(),
            };
            msg.send(r).await.map_err(mailbox)?
        }
        "add_message_reaction" | "remove_message_reaction" => {
            let reaction_id = req_str(&p, "reaction_id")?;
            if reaction_id.is_empty() {
                return Err(ApiError::invalid_param("reaction_id is empty"));
            }
            let call = AnnotationCall::Reaction {
                msg_id: req_str(&p, "msg_id")?,
                reaction_id,
                add: method == "add_message_reaction",
            };
            msg.send(Annotate(call)).await.map_err(mailbox)?
        }
        "get_message_reactions" => {
            let msg_ids = codec::string_list(&p, "msg_ids")?;
            if msg_ids.is_empty() || msg_ids.len() > 20 {
                return Err(ApiError::invalid_param("msg_ids holds 1..=20 msg_ids"));
            }
            let max = opt_u64(&p, "max_user_count_per_reaction")?.min(10);
            let call = AnnotationCall::GetReactions {
                msg_ids,
                max_users: u32::try_from(max).unwrap_or(10),
            };
            msg.send(Annotate(call)).await.map_err(mailbox)?
        }
        "get_all_user_list_of_message_reaction" => {
            let call = AnnotationCall::ReactionUsers {
                msg_id: req_str(&p, "msg_id")?,
                reaction_id: req_str(&p, "reaction_id")?,
                next_seq: opt_u64(&p, "next_seq")?,
                count: u32::try_from(opt_u64(&p, "count")?.min(100)).unwrap_or(100),
            };
            msg.send(Annotate(call)).await.map_err(mailbox)?
        }
        "set_message_extensions" => {
            let list = p
                .get("extensions")
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty())
                .ok_or_else(|| {
                    ApiError::invalid_param("extensions (a non-empty list) is required")
                })?;
            let mut extensions = Vec::with_capacity(list.len());
            for e in list {
                let expect_version = match e.get("version") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_u64().ok_or_else(|| {
                        ApiError::invalid_param(
                            "extensions[].version must be a non-negative integer",
                        )
                    })?),
                };
                extensions.push(ExtensionWrite {
                    key: req_str(e, "key")?,
                    value: opt_str(e, "value")?.unwrap_or_default(),
                    expect_version,
                });
            }
            let call = AnnotationCall::SetExtensions {
                msg_id: req_str(&p, "msg_id")?,
                extensions,
            };
            msg.send(Annotate(call)).await.map_err(mailbox)?
        }
        "get_message_extensions" => {
            let call = AnnotationCall::GetExtensions {
                msg_id: req_str(&p, "msg_id")?,
            };
            msg.send(Annotate(call)).await.map_err(mailbox)?
        }
        "delete_message_extensions" => {
            let call = AnnotationCall::DeleteExtensions {
                msg_id: req_str(&p, "msg_id")?,
                keys: codec::string_list(&p, "keys")?,
            };
            msg.send(Annotate(call)).await.map_err(mailbox)?
        }
        "pin_group_message" => {
            let r = PinGroupMessage {
                group_id: group_id(&p, "group_id")?,
                msg_id: req_str(&p, "msg_id")?,
                pin: p
                    .get("is_pinned")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| ApiError::invalid_param("is_pinned (bool) is required"))?,
            };
            msg.send(r).await.map_err(mailbox)?
        }
        "get_pinned_group_messages" => {
            let g = group_id(&p, "group_id")?;
            msg.send(GetPinned(g)).await.map_err(mailbox)?
        }
        "cancel_send_message" => {
            let id = req_str(&p, "msg_id")?;
            msg.send(CancelSend(id)).await.map_err(mailbox)?
        }
        "download_merger_message" => {
            let id = req_str(&p, "msg_id")?;
            msg.send(DownloadMerger(id)).await.map_err(mailbox)?
        }
        _ => Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    }
}

fn message_obj(p: &Value) -> Result<Value> {
    p.get("message")
        .filter(|m| m.is_object())
        .cloned()
        .ok_or_else(|| ApiError::invalid_param("message (object) is required"))
}

/// `search_local_messages` parameters.
fn search_params(p: &Value) -> Result<SearchLocal> {
    let keywords: Vec<String> = codec::string_list(p, "keyword_list")?
        .into_iter()
        .map(|k| k.to_lowercase())
        .filter(|k| !k.is_empty())
        .collect();
    if keywords.len() > 5 {
        return Err(ApiError::invalid_param(
            "keyword_list holds at most 5 keywords",
        ));
    }
    let match_all = match opt_str(p, "keyword_list_match_type")?.as_deref() {
        None | Some("or") => false,
        Some("and") => true,
        Some(_) => {
            return Err(ApiError::invalid_param(
                "keyword_list_match_type must be \"or\" or \"and\"",
            ));
        }
    };
    let from_s = opt_u64(p, "search_time_position")?;
    let period_s = opt_u64(p, "search_time_period")?;
    let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
    let (from_ms, to_ms) = match (from_s, period_s) {
        (0, 0) => (0, 0),
        (0, d) => (crate::actors::now_ms().saturating_sub(ms(d)), 0),
        (f, 0) => (ms(f), 0),
        (f, d) => (ms(f), ms(f.saturating_add(d))),
    };
    let conversation_id = opt_str(p, "conversation_id")?.filter(|c| !c.is_empty());
    if let Some(c) = &conversation_id {
        let ok = c
            .strip_prefix("c2c_")
            .map(ids::is_valid_user_id)
            .or_else(|| c.strip_prefix("group_").map(ids::is_valid_group_id))
            .unwrap_or(false);
        if !ok {
            return Err(ApiError::new(
                codes::ERR_INVALID_CONVERSATION,
                "conversation_id must be c2c_<user> or group_<group>",
            ));
        }
    }
    let offset = match p.get("cursor") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) if s.is_empty() => 0,
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| ApiError::invalid_param("cursor is not one this engine returned"))?,
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| ApiError::invalid_param("cursor"))?,
    };
    let count = match opt_u64(p, "count")? {
        0 => 10,
        n => usize::try_from(n.min(1000)).unwrap_or(1000),
    };
    Ok(SearchLocal {
        criteria: Criteria {
            keywords,
            match_all,
            senders: codec::string_list(p, "sender_user_id_list")?,
            types: codec::string_list(p, "message_type_list")?,
            from_ms,
            to_ms,
        },
        conversation_id,
        offset,
        count,
    })
}

/// `search_cloud_messages`: the parameters and answer of `search_local_messages`, answered by
/// the server over the messages the user can see there (`server/src/search.rs`). Times are the
/// server's; the cursor is the server's offset into the result.
async fn search_cloud(peers: &Peers, q: SearchLocal) -> Result<Value> {
    use crate::actors::connection::{GetStatus, Rpc};
    use chime_proto::pb;
    if q.criteria.keywords.is_empty()
        && q.criteria.senders.is_empty()
        && q.criteria.types.is_empty()
    {
        return Err(ApiError::invalid_param(
            "keyword_list, sender_user_id_list or message_type_list is required",
        ));
    }
    let conv = q
        .conversation_id
        .as_deref()
        .map(crate::actors::conversation::parse_conv_id)
        .transpose()?;
    let req = pb::SearchCloudMessagesReq {
        keywords: q.criteria.keywords,
        match_all: q.criteria.match_all,
        senders: q.criteria.senders,
        elem_types: q.criteria.types,
        conv,
        from_time_ms: q.criteria.from_ms,
        to_time_ms: q.criteria.to_ms,
        offset: q.offset as u64,
        count: u32::try_from(q.count).unwrap_or(u32::MAX),
    };
    let (_, me) = peers.conn.send(GetStatus).await.map_err(mailbox)?;
    let resp = peers
        .conn
        .send(Rpc(pb::request::Kind::SearchCloudMessages(req)))
        .await
        .map_err(mailbox)??;
    let Some(pb::response::Kind::SearchCloudMessages(r)) = resp.kind else {
        return Err(ApiError::new(
            codes::ERR_PARSE_RESPONSE,
            "unexpected search answer",
        ));
    };
    let items: Vec<Value> = r
        .items
        .iter()
        .map(|item| {
            let list: Vec<Value> = item
                .messages
                .iter()
                .map(|w| codec::to_json(&codec::from_wire(w, &me), &me))
                .collect();
            json!({
                "conversation_id": item.conv.as_ref().map(ids::conversation_id).unwrap_or_default(),
                "message_count": item.message_count,
                "message_list": list,
            })
        })
        .collect();
    let cursor = if r.next_offset == 0 {
        String::new()
    } else {
        r.next_offset.to_string()
    };
    Ok(json!({
        "total_count": r.total_count,
        "message_search_result_items": items,
        "cursor": cursor,
    }))
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
