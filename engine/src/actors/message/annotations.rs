//! Message reactions and extensions in the engine: calls that name a stored message by `msg_id`
//! and go to the server (which keeps both per message), and the `AnnotationPush` that tells the
//! other devices (`on_recv_message_reaction_changed`, `on_recv_message_extensions_changed`,
//! `on_recv_message_extensions_deleted`). Nothing is cached locally: a device reads the current
//! state with `get_message_reactions` / `get_message_extensions`.

use std::collections::BTreeMap;

use actix::prelude::*;
use chime_proto::codes;
use chime_proto::pb::{self, request, response};
use serde_json::{Value, json};

use super::{MessageActor, conv_ref};
use crate::actors::connection::Rpc;
use crate::{ApiError, Result};

/// One extension to set: key, value, and the version the write expects (compare-and-set).
#[derive(Debug, Clone)]
pub struct ExtensionWrite {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
    /// Expected current version (0 = the key must not exist); `None` = unconditional.
    pub expect_version: Option<u64>,
}

/// What an annotation call does.
#[derive(Debug, Clone)]
pub enum AnnotationCall {
    /// `add_message_reaction` / `remove_message_reaction`.
    Reaction {
        /// The message.
        msg_id: String,
        /// The reaction.
        reaction_id: String,
        /// Add (else remove).
        add: bool,
    },
    /// `get_message_reactions`.
    GetReactions {
        /// The messages.
        msg_ids: Vec<String>,
        /// Users listed per reaction.
        max_users: u32,
    },
    /// `get_all_user_list_of_message_reaction`.
    ReactionUsers {
        /// The message.
        msg_id: String,
        /// The reaction.
        reaction_id: String,
        /// Offset.
        next_seq: u64,
        /// Page size.
        count: u32,
    },
    /// `set_message_extensions`.
    SetExtensions {
        /// The message.
        msg_id: String,
        /// The writes.
        extensions: Vec<ExtensionWrite>,
    },
    /// `get_message_extensions`.
    GetExtensions {
        /// The message.
        msg_id: String,
    },
    /// `delete_message_extensions` (no keys = all).
    DeleteExtensions {
        /// The message.
        msg_id: String,
        /// Keys.
        keys: Vec<String>,
    },
}

/// A reactions / extensions call.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct Annotate(pub AnnotationCall);

fn reaction_json(r: &pb::MessageReaction, with_self: bool) -> Value {
    let users: Vec<Value> = r
        .partial_user_list
        .iter()
        .map(|u| json!({ "user_id": u }))
        .collect();
    let mut v = json!({
        "reaction_id": r.reaction_id,
        "total_user_count": r.total_user_count,
        "partial_user_list": users,
    });
    if with_self {
        v["reacted_by_myself"] = json!(r.reacted_by_myself);
    }
    v
}

fn extension_json(e: &pb::MessageExtension) -> Value {
    json!({ "key": e.key, "value": e.value, "version": e.version })
}

impl MessageActor {
    /// The conversation and seq of a sent message.
    fn locate_sent(&self, msg_id: &str) -> Result<(pb::ConvRef, u64)> {
        let (_, m) = self
            .find(msg_id)?
            .ok_or_else(|| ApiError::invalid_param(format!("msg_id {msg_id} not found")))?;
        if m.seq == 0 {
            return Err(ApiError::new(
                codes::ERR_INVALID_OPERATION,
                "the message was never sent (not stored on the server)",
            ));
        }
        Ok((conv_ref(&m), m.seq))
    }

    /// The requests a call makes, in order.
    fn annotation_requests(&self, call: &AnnotationCall) -> Result<Vec<request::Kind>> {
        Ok(match call {
            AnnotationCall::Reaction {
                msg_id,
                reaction_id,
                add,
            } => {
                let (conv, seq) = self.locate_sent(msg_id)?;
                vec![request::Kind::Reaction(pb::ReactionReq {
                    conv: Some(conv),
                    seq,
                    msg_id: msg_id.clone(),
                    reaction_id: reaction_id.clone(),
                    add: *add,
                })]
            }
            AnnotationCall::GetReactions { msg_ids, max_users } => {
                let mut by_conv: BTreeMap<String, (pb::ConvRef, Vec<u64>)> = BTreeMap::new();
                for id in msg_ids {
                    let (conv, seq) = self.locate_sent(id)?;
                    by_conv
                        .entry(chime_proto::ids::conversation_id(&conv))
                        .or_insert_with(|| (conv, Vec::new()))
                        .1
                        .push(seq);
                }
                by_conv
                    .into_values()
                    .map(|(conv, seqs)| {
                        request::Kind::GetReactions(pb::GetReactionsReq {
                            conv: Some(conv),
                            seqs,
                            max_user_count: *max_users,
                        })
                    })
                    .collect()
            }
            AnnotationCall::ReactionUsers {
                msg_id,
                reaction_id,
                next_seq,
                count,
            } => {
                let (conv, seq) = self.locate_sent(msg_id)?;
                vec![request::Kind::GetReactionUsers(pb::GetReactionUsersReq {
                    conv: Some(conv),
                    seq,
                    msg_id: msg_id.clone(),
                    reaction_id: reaction_id.clone(),
                    next_seq: *next_seq,
                    count: *count,
                })]
            }
            AnnotationCall::SetExtensions { msg_id, extensions } => {
                let (conv, seq) = self.locate_sent(msg_id)?;
                vec![request::Kind::Extensions(pb::ExtensionsReq {
                    conv: Some(conv),
                    seq,
                    msg_id: msg_id.clone(),
                    set: extensions
                        .iter()
                        .map(|e| pb::MessageExtension {
                            key: e.key.clone(),
                            value: e.value.clone(),
                            version: e.expect_version.unwrap_or(0),
                            check_version: e.expect_version.is_some(),
                        })
                        .collect(),
                    ..Default::default()
                })]
            }
            AnnotationCall::GetExtensions { msg_id } => {
                let (conv, seq) = self.locate_sent(msg_id)?;
                vec![request::Kind::GetExtensions(pb::GetExtensionsReq {
                    conv: Some(conv),
                    seq,
                    msg_id: msg_id.clone(),
                })]
            }
            AnnotationCall::DeleteExtensions { msg_id, keys } => {
                let (conv, seq) = self.locate_sent(msg_id)?;
                vec![request::Kind::Extensions(pb::ExtensionsReq {
                    conv: Some(conv),
                    seq,
                    msg_id: msg_id.clone(),
                    delete_all: keys.is_empty(),
                    delete_keys: keys.clone(),
                    ..Default::default()
                })]
            }
        })
    }
}

/// The JSON answer of a call from its responses.
fn answer(call: &AnnotationCall, resps: Vec<pb::Response>) -> Result<Value> {
    let bad = || ApiError::new(codes::ERR_PARSE_RESPONSE, "annotation answer");
    match call {
        AnnotationCall::Reaction { .. } => Ok(json!({})),
        AnnotationCall::GetReactions { msg_ids, .. } => {
            let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
            for r in resps {
                let Some(response::Kind::GetReactions(g)) = r.kind else {
                    return Err(bad());
                };
                for m in g.results {
                    let list: Vec<Value> =
                        m.reactions.iter().map(|x| reaction_json(x, true)).collect();
                    by_id.insert(
                        m.msg_id.clone(),
                        json!({ "msg_id": m.msg_id, "reaction_list": list }),
                    );
                }
            }
            let list: Vec<Value> = msg_ids
                .iter()
                .filter_map(|id| by_id.get(id).cloned())
                .collect();
            Ok(json!({ "result_list": list }))
        }
        AnnotationCall::ReactionUsers { .. } => {
            let Some(response::Kind::GetReactionUsers(g)) =
                resps.into_iter().next().and_then(|r| r.kind)
            else {
                return Err(bad());
            };
            let users: Vec<Value> = g.user_ids.iter().map(|u| json!({ "user_id": u })).collect();
            Ok(json!({
                "user_info_list": users,
                "next_seq": g.next_seq,
                "is_finished": g.is_finished,
            }))
        }
        AnnotationCall::SetExtensions { .. } | AnnotationCall::DeleteExtensions { .. } => {
            let Some(response::Kind::Extensions(x)) = resps.into_iter().next().and_then(|r| r.kind)
            else {
                return Err(bad());
            };
            let list: Vec<Value> = x
                .results
                .iter()
                .map(|r| {
                    let mut v = json!({ "key": r.key, "result_code": r.code });
                    if let Some(e) = &r.extension {
                        v["value"] = json!(e.value);
                        v["version"] = json!(e.version);
                    }
                    v
                })
                .collect();
            Ok(json!({ "result_list": list }))
        }
        AnnotationCall::GetExtensions { .. } => {
            let Some(response::Kind::GetExtensions(x)) =
                resps.into_iter().next().and_then(|r| r.kind)
            else {
                return Err(bad());
            };
            let list: Vec<Value> = x.extensions.iter().map(extension_json).collect();
            Ok(json!({ "extension_list": list }))
        }
    }
}

impl Handler<Annotate> for MessageActor {
    type Result = ResponseFuture<Result<Value>>;
    fn handle(&mut self, msg: Annotate, _: &mut Context<Self>) -> Self::Result {
        let call = msg.0;
        let prepared = self.acct().and_then(|_| {
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
            Ok((peers, self.annotation_requests(&call)?))
        });
        Box::pin(async move {
            let (peers, reqs) = prepared?;
            let mut resps = Vec::with_capacity(reqs.len());
            for r in reqs {
                resps.push(peers.conn.send(Rpc(r)).await.map_err(super::mailbox)??);
            }
            // This device's own change: its answer says it, the change log must not again.
            let own = resps.iter().find_map(|r| match &r.kind {
                Some(response::Kind::Reaction(x)) => Some(x.change_version),
                Some(response::Kind::Extensions(x)) => Some(x.change_version),
                _ => None,
            });
            if let Some(version) = own.filter(|&v| v > 0) {
                peers.msg.do_send(OwnAnnotation(version));
            }
            answer(&call, resps)
        })
    }
}

/// An `AnnotationPush` from the server: the events for this device.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AnnotationPushed(pub pb::AnnotationPush);

impl Handler<AnnotationPushed> for MessageActor {
    type Result = ();
    fn handle(&mut self, msg: AnnotationPushed, _: &mut Context<Self>) {
        if self.acct.is_none() {
            return;
        }
        self.announce_annotation(&msg.0);
    }
}

impl MessageActor {
    /// Emits the events of a reaction / extension change (live or from the change log).
    pub(crate) fn announce_annotation(&self, p: &pb::AnnotationPush) {
        let ev = &self.shared.events;
        if !p.reactions.is_empty() {
            let list: Vec<Value> = p
                .reactions
                .iter()
                .map(|r| reaction_json(r, false))
                .collect();
            ev.emit(
                "on_recv_message_reaction_changed",
                json!({ "change_info_list": [{ "msg_id": p.msg_id, "reaction_list": list }] }),
            );
        }
        if !p.extensions_changed.is_empty() {
            let list: Vec<Value> = p.extensions_changed.iter().map(extension_json).collect();
            ev.emit(
                "on_recv_message_extensions_changed",
                json!({ "msg_id": p.msg_id, "extensions": list }),
            );
        }
        if !p.extensions_deleted.is_empty() {
            ev.emit(
                "on_recv_message_extensions_deleted",
                json!({ "msg_id": p.msg_id, "keys": p.extensions_deleted }),
            );
        }
    }
}

/// This device changed a reaction or extension: the version of the change in the user's change
/// log, which the catch-up pull must not announce to this device.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct OwnAnnotation(pub(crate) u64);

impl Handler<OwnAnnotation> for MessageActor {
    type Result = ();
    fn handle(&mut self, msg: OwnAnnotation, _: &mut Context<Self>) {
        self.known_annotations.1.insert(msg.0);
    }
}
