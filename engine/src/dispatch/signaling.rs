//! Signaling methods (api.md §4.6): `invite`, `invite_in_group`, `cancel`, `accept`, `reject`,
//! `modify_invitation` as one `SignalingReq` each (the server owns the invitations and answers
//! 8010 / 8011), and `get_signaling_info` read from a stored invitation message. The events are
//! mapped in `actors::signaling`.

use chime_proto::codes;
use chime_proto::pb::{self, request::Kind as ReqKind, signaling_req::Op};
use serde_json::{Value, json};

use super::params::*;
use crate::actors::Peers;
use crate::actors::connection::Rpc;
use crate::actors::message::Find;
use crate::events::EventBus;
use crate::{ApiError, Result, codec};

/// The methods this area answers.
pub(super) const METHODS: &[&str] = &[
    "invite",
    "invite_in_group",
    "cancel",
    "accept",
    "reject",
    "modify_invitation",
    "get_signaling_info",
];

/// The methods of this area that work before login.
pub(super) const PRE_LOGIN: &[&str] = &[];

fn data(p: &Value) -> Result<String> {
    Ok(opt_str(p, "data")?.unwrap_or_default())
}

fn timeout(p: &Value) -> Result<u32> {
    u32::try_from(opt_u64(p, "timeout")?)
        .map_err(|_| ApiError::invalid_param("timeout is too large"))
}

fn push_info(p: &Value) -> Result<Option<pb::OfflinePushInfo>> {
    match p.get("offline_push_info") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(codec::push_to_wire(&codec::push_info_from_json(v)?))),
    }
}

fn action(p: &Value) -> Result<pb::SignalAction> {
    let invite_id = req_str(p, "invite_id")?;
    if invite_id.is_empty() {
        return Err(ApiError::new(
            codes::ERR_SIGNALING_INVALID_INVITE_ID,
            "invite_id is empty",
        ));
    }
    Ok(pb::SignalAction {
        invite_id,
        data: data(p)?,
    })
}

async fn rpc(peers: &Peers, op: Op) -> Result<String> {
    let kind = ReqKind::Signaling(pb::SignalingReq { op: Some(op) });
    let resp = peers.conn.send(Rpc(kind)).await.map_err(mailbox)??;
    match resp.kind {
        Some(pb::response::Kind::Signaling(r)) => Ok(r.invite_id),
        _ => Err(ApiError::new(
            codes::ERR_PARSE_RESPONSE,
            "unexpected signaling answer",
        )),
    }
}

/// Calls one method of this area.
pub(super) async fn call(
    peers: &Peers,
    _events: &EventBus,
    method: &str,
    p: Value,
) -> Result<Value> {
    match method {
        "invite" => {
            let invitee = user_id(&p, "invitee")?;
            let op = Op::Invite(pb::SignalInvite {
                invitees: vec![invitee],
                group_id: String::new(),
                data: data(&p)?,
                online_user_only: opt_bool(&p, "online_user_only")?,
                offline_push_info: push_info(&p)?,
                timeout_secs: timeout(&p)?,
            });
            Ok(json!({ "invite_id": rpc(peers, op).await? }))
        }
        "invite_in_group" => {
            let group = group_id(&p, "group_id")?;
            let invitees = codec::string_list(&p, "invitee_list")?;
            if invitees.is_empty() {
                return Err(ApiError::invalid_param("invitee_list is empty"));
            }
            let op = Op::Invite(pb::SignalInvite {
                invitees,
                group_id: group,
                data: data(&p)?,
                online_user_only: opt_bool(&p, "online_user_only")?,
                offline_push_info: push_info(&p)?,
                timeout_secs: timeout(&p)?,
            });
            Ok(json!({ "invite_id": rpc(peers, op).await? }))
        }
        "cancel" => Ok(json!({ "invite_id": rpc(peers, Op::Cancel(action(&p)?)).await? })),
        "accept" => Ok(json!({ "invite_id": rpc(peers, Op::Accept(action(&p)?)).await? })),
        "reject" => Ok(json!({ "invite_id": rpc(peers, Op::Reject(action(&p)?)).await? })),
        "modify_invitation" => {
            Ok(json!({ "invite_id": rpc(peers, Op::Modify(action(&p)?)).await? }))
        }
        "get_signaling_info" => {
            let msg_id = req_str(&p, "msg_id")?;
            let found = peers
                .msg
                .send(Find(vec![msg_id.clone()]))
                .await
                .map_err(mailbox)??;
            let data = found["message_list"][0]["elem_list"]
                .as_array()
                .and_then(|elems| {
                    elems
                        .iter()
                        .find(|e| e["elem_type"] == "custom")
                        .and_then(|e| e["data"].as_str().map(str::to_owned))
                })
                .ok_or_else(|| {
                    ApiError::new(
                        codes::ERR_SIGNALING_INVALID_INVITE_ID,
                        format!("message {msg_id:?} is not a signaling message"),
                    )
                })?;
            crate::actors::signaling::info_of_custom_data(&data).ok_or_else(|| {
                ApiError::new(
                    codes::ERR_SIGNALING_INVALID_INVITE_ID,
                    format!("message {msg_id:?} is not a signaling message"),
                )
            })
        }
        _ => Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    }
}
