//! Pinned group messages in the engine: `pin_group_message`, `get_pinned_group_messages` (both
//! answered by the server, which keeps the list) and the `GroupPinPush` that raises
//! `on_group_message_pinned {group_id, message, is_pinned, op_user}` on the members' devices.

use actix::prelude::*;
use chime_proto::codes;
use chime_proto::pb::{self, request, response};
use serde_json::{Value, json};

use super::MessageActor;
use crate::actors::connection::Rpc;
use crate::codec;
use crate::{ApiError, Result};

/// `pin_group_message {group_id, msg_id, is_pinned}`.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct PinGroupMessage {
    /// The group.
    pub group_id: String,
    /// The message (a stored message of that group).
    pub msg_id: String,
    /// Pin (else unpin).
    pub pin: bool,
}

/// `get_pinned_group_messages {group_id}` → `{message_list}` (newest pin first; each message
/// with `pinner` and `pin_time`).
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct GetPinned(pub String);

fn pinned_json(p: &pb::PinnedMessage, me: &str) -> Value {
    let mut j = p.message.as_ref().map_or(Value::Null, |m| {
        codec::to_json(&codec::from_wire(m, me), me)
    });
    if let Some(o) = j.as_object_mut() {
        o.insert("pinner".into(), json!(p.pinner));
        o.insert("pin_time".into(), json!(p.pin_time_ms.div_euclid(1000)));
    }
    j
}

impl MessageActor {
    fn server_call(
        &self,
        req: request::Kind,
    ) -> Result<impl std::future::Future<Output = Result<pb::Response>> + 'static> {
        let peers = self
            .peers
            .clone()
            .ok_or_else(|| ApiError::new(codes::ERR_SDK_INTERNAL, "not wired"))?;
        if self.online.is_none() {
            return Err(ApiError::new(
                codes::ERR_NET_DISCONNECT,
                "not connected to the server",
            ));
        }
        Ok(async move { peers.conn.send(Rpc(req)).await.map_err(super::mailbox)? })
    }
}

impl Handler<PinGroupMessage> for MessageActor {
    type Result = ResponseFuture<Result<Value>>;
    fn handle(&mut self, msg: PinGroupMessage, _: &mut Context<Self>) -> Self::Result {
        let prepared = (|| {
            let (_, m) = self.find(&msg.msg_id)?.ok_or_else(|| {
                ApiError::invalid_param(format!("msg_id {} not found", msg.msg_id))
            })?;
            if !m.is_group || m.group_id != msg.group_id || m.seq == 0 {
                return Err(ApiError::invalid_param(
                    "msg_id is not a stored message of that group",
                ));
            }
            self.server_call(request::Kind::PinGroupMessage(pb::PinGroupMessageReq {
                group_id: msg.group_id,
                seq: m.seq,
                msg_id: m.msg_id,
                pin: msg.pin,
            }))
        })();
        Box::pin(async move {
            prepared?.await?;
            Ok(json!({}))
        })
    }
}

impl Handler<GetPinned> for MessageActor {
    type Result = ResponseFuture<Result<Value>>;
    fn handle(&mut self, msg: GetPinned, _: &mut Context<Self>) -> Self::Result {
        let me = self.me().to_owned();
        let prepared = self.acct().and_then(|_| {
            self.server_call(request::Kind::GetPinnedGroupMessages(
                pb::GetPinnedGroupMessagesReq { group_id: msg.0 },
            ))
        });
        Box::pin(async move {
            let resp = prepared?.await?;
            let Some(response::Kind::GetPinnedGroupMessages(r)) = resp.kind else {
                return Err(ApiError::new(codes::ERR_PARSE_RESPONSE, "pinned answer"));
            };
            let list: Vec<Value> = r.pinned.iter().map(|p| pinned_json(p, &me)).collect();
            Ok(json!({ "message_list": list }))
        })
    }
}

/// A `GroupPinPush` from the server.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PinPushed(pub pb::GroupPinPush);

impl Handler<PinPushed> for MessageActor {
    type Result = ();
    fn handle(&mut self, msg: PinPushed, _: &mut Context<Self>) {
        if self.acct.is_none() {
            return;
        }
        let p = msg.0;
        let me = self.me().to_owned();
        let message = p
            .pinned
            .as_ref()
            .map_or(Value::Null, |x| pinned_json(x, &me));
        self.shared.events.emit(
            "on_group_message_pinned",
            json!({
                "group_id": p.group_id,
                "message": message,
                "is_pinned": p.is_pinned,
                "op_user": p.op_user,
            }),
        );
    }
}
