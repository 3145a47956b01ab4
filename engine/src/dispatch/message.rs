//! Message methods: create, send, resend, history and find (api.md §4.2).

use serde_json::{Value, json};

use super::params::*;
use crate::actors::Peers;
use crate::actors::message::{Create, CreateKind, Find, HistoryQuery, Resend, Send, SendParams};
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
        _ => Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    }
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
