//! Message read receipts (api.md §4.2: `send_message_read_receipts`,
//! `get_message_read_receipts`, `get_group_message_read_member_list`) for messages sent with
//! `need_read_receipt`. The messages are looked up in the local store (their conversation and
//! seq name them to the server); the server keeps the readers and tells the sender
//! (`on_recv_message_read_receipts`, emitted by the conversation actor).

use chime_proto::pb::{self, request, response};
use serde_json::{Value, json};

use super::super::params::*;
use crate::actors::Peers;
use crate::actors::connection::Rpc;
use crate::actors::conversation::{parse_conv_id, receipt_json};
use crate::actors::message::Find;
use crate::{ApiError, Result, codec};

/// The methods of this part of the area.
pub(super) const METHODS: &[&str] = &[
    "send_message_read_receipts",
    "get_message_read_receipts",
    "get_group_message_read_member_list",
];

/// Most messages per receipt call.
const MAX_MSGS: usize = 100;

/// A stored message named by id: its server reference and what the checks need.
struct Target {
    msg_ref: pb::MsgRef,
    is_self: bool,
    need_read_receipt: bool,
    is_group: bool,
}

async fn targets(peers: &Peers, ids: Vec<String>) -> Result<Vec<Target>> {
    if ids.is_empty() || ids.len() > MAX_MSGS {
        return Err(ApiError::invalid_param("msg_ids must hold 1..=100 ids"));
    }
    let found = peers.msg.send(Find(ids.clone())).await.map_err(mailbox)??;
    let list = found["message_list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::with_capacity(ids.len());
    for id in &ids {
        let m = list
            .iter()
            .find(|m| m["msg_id"] == id.as_str())
            .ok_or_else(|| ApiError::invalid_param(format!("unknown msg_id: {id}")))?;
        let seq = m["seq"].as_u64().unwrap_or(0);
        if seq == 0 {
            return Err(ApiError::invalid_param(format!(
                "{id} has no seq (not sent)"
            )));
        }
        let conv = parse_conv_id(m["conversation_id"].as_str().unwrap_or_default())?;
        out.push(Target {
            is_group: conv.conv_type() == pb::ConvType::Group,
            msg_ref: pb::MsgRef {
                conv: Some(conv),
                seq,
            },
            is_self: m["is_self"] == true,
            need_read_receipt: m["need_read_receipt"] == true,
        });
    }
    Ok(out)
}

async fn rpc(peers: &Peers, kind: request::Kind) -> Result<Option<response::Kind>> {
    let resp = peers.conn.send(Rpc(kind)).await.map_err(mailbox)??;
    Ok(resp.kind)
}

fn unexpected() -> ApiError {
    ApiError::new(
        chime_proto::codes::ERR_PARSE_RESPONSE,
        "unexpected answer to a receipt request",
    )
}

/// Calls one receipt method.
pub(super) async fn call(peers: &Peers, method: &str, p: Value) -> Result<Value> {
    match method {
        "send_message_read_receipts" => {
            let targets = targets(peers, codec::string_list(&p, "msg_ids")?).await?;
            for t in &targets {
                if t.is_self || !t.need_read_receipt {
                    return Err(ApiError::invalid_param(
                        "receipts are sent for others' messages sent with need_read_receipt",
                    ));
                }
            }
            let msgs = targets.into_iter().map(|t| t.msg_ref).collect();
            rpc(
                peers,
                request::Kind::SendReceipts(pb::SendReceiptsReq { msgs }),
            )
            .await?;
            Ok(json!({}))
        }
        "get_message_read_receipts" => {
            let targets = targets(peers, codec::string_list(&p, "msg_ids")?).await?;
            let msgs = targets.into_iter().map(|t| t.msg_ref).collect();
            match rpc(
                peers,
                request::Kind::GetReceipts(pb::GetReceiptsReq { msgs }),
            )
            .await?
            {
                Some(response::Kind::GetReceipts(r)) => Ok(json!({
                    "receipt_list": r.receipts.iter().map(receipt_json).collect::<Vec<_>>()
                })),
                _ => Err(unexpected()),
            }
        }
        "get_group_message_read_member_list" => {
            let read = match req_str(&p, "filter")?.as_str() {
                "read" => true,
                "unread" => false,
                _ => return Err(ApiError::invalid_param("filter must be read|unread")),
            };
            let mut t = targets(peers, vec![req_str(&p, "msg_id")?]).await?;
            let Some(t) = t.pop().filter(|t| t.is_group) else {
                return Err(ApiError::invalid_param("msg_id must name a group message"));
            };
            let req = pb::GetReadMembersReq {
                msg: Some(t.msg_ref),
                read,
                next_seq: opt_u64(&p, "next_seq")?,
                count: u32::try_from(opt_u64(&p, "count")?).unwrap_or(u32::MAX),
            };
            match rpc(peers, request::Kind::GetReadMembers(req)).await? {
                Some(response::Kind::GetReadMembers(r)) => Ok(json!({
                    "member_list": r.user_ids.iter().map(|u| json!({ "user_id": u }))
                        .collect::<Vec<_>>(),
                    "next_seq": r.next_seq,
                    "is_finished": r.is_finished,
                })),
                _ => Err(unexpected()),
            }
        }
        _ => Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    }
}
