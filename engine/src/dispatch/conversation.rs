//! Conversation methods: list, get, unread counts and read marks (api.md §4.3).

use serde_json::{Value, json};

use super::params::*;
use crate::actors::Peers;
use crate::actors::conversation::{Get, List, MarkRead, TotalUnread};
use crate::events::EventBus;
use crate::{ApiError, Result};

/// The methods this area answers.
pub(super) const METHODS: &[&str] = &[
    "get_conversation_list",
    "get_conversation",
    "get_total_unread_message_count",
    "mark_c2c_message_as_read",
    "mark_group_message_as_read",
];

/// The methods of this area that work before login.
pub(super) const PRE_LOGIN: &[&str] = &[];

/// Calls one method of this area.
pub(super) async fn call(
    peers: &Peers,
    _events: &EventBus,
    method: &str,
    p: Value,
) -> Result<Value> {
    match method {
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
        _ => Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    }
}
