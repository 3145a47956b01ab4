//! The message lifecycle in the engine: revoke, modify, delete (cloud and local), clear history,
//! insert local messages, local custom data, and the message change log that brings the changes
//! made elsewhere (another user, another device of this user) to this device.
//!
//! Every change is applied by one function, [`MessageActor::apply_change`], whether it came from
//! the answer to this device's own request, from a live `MessageChangePush`, or from the catch-up
//! pull of the change log after a reconnect ([`MessageActor::start_change_pull`]). A revoke or a
//! modification carries the message's server `version`, and only a newer version is applied, so a
//! change that arrives twice (push, then pull) is applied and announced once. Changes made by this
//! device are not announced to it (the call's answer says it); other devices get
//! `on_recv_message_revoked` / `on_recv_message_modified`. After a change the conversation states
//! are synced again, so the last message and the unread count follow the server's.

use actix::prelude::*;
use chime_proto::pb::{self, request, response};
use chime_proto::{codes, ids};
use serde_json::{Value, json};

use super::{MessageActor, conv_ref, mailbox, new_msg_id};
use crate::actors::connection::Rpc;
use crate::actors::conversation::MessagesAdded;
use crate::actors::{db_err, now_ms};
use crate::codec;
use crate::model::{Status, StoredMessage};
use crate::store::{WriteBatch, keys};
use crate::{ApiError, Result};

/// Meta key of the message change cursor.
const META_CHANGE_CURSOR: &str = "msg_change_cursor";
/// Change log page size.
const CHANGE_PAGE: u32 = 100;
/// Most change pages pulled in one catch-up (the rest follows on the next reconnect).
const MAX_CHANGE_PAGES: usize = 1000;
/// Most seqs per delete request (the server's limit).
const DELETE_CHUNK: usize = 100;

fn not_found(id: &str) -> ApiError {
    ApiError::invalid_param(format!("msg_id {id} not found"))
}

impl MessageActor {
    /// Applies one change; `announce`: emit the events of api.md §5 for it.
    pub(crate) fn apply_change(&mut self, c: &pb::MessageChange, announce: bool) -> Result<()> {
        let me = self.acct()?.user.clone();
        match c.kind() {
            pb::MessageChangeKind::MessageChangeRevoked
            | pb::MessageChangeKind::MessageChangeModified => {
                let Some(w) = &c.message else { return Ok(()) };
                let Some((loc, mut m)) = self.find(&w.msg_id)? else {
                    return Ok(());
                };
                if w.version <= m.version {
                    return Ok(());
                }
                let mut b = WriteBatch::new();
                crate::search_index::stage_del(&mut b, &loc, &m);
                let fresh = codec::from_wire(w, &me);
                m.elems = fresh.elems;
                m.cloud_custom_data = fresh.cloud_custom_data;
                m.revoked = w.revoked;
                m.revoker = w.revoker.clone();
                m.revoke_reason = w.revoke_reason.clone();
                m.version = w.version;
                if m.revoked {
                    m.status = Status::LocalRevoked as i32;
                }
                self.search_queue.stage_add(&mut b, &loc, &m);
                b.put(loc, prost::Message::encode_to_vec(&m));
                self.acct()?.store.apply(b).map_err(db_err)?;
                if let Some(p) = &self.peers {
                    p.conv.do_send(MessagesAdded {
                        msgs: vec![m.clone()],
                        live: false,
                    });
                }
                if announce {
                    let ev = &self.shared.events;
                    if m.revoked {
                        ev.emit(
                            "on_recv_message_revoked",
                            json!({
                                "msg_id": m.msg_id,
                                "operate_user": m.revoker,
                                "reason": m.revoke_reason,
                            }),
                        );
                    } else {
                        ev.emit(
                            "on_recv_message_modified",
                            json!({ "message": codec::to_json(&m, &me) }),
                        );
                    }
                }
            }
            pb::MessageChangeKind::MessageChangeDeleted => {
                let mut b = WriteBatch::new();
                for id in &c.msg_ids {
                    if let Some((loc, m)) = self.find(id)? {
                        Self::stage_remove(&mut b, loc, &m);
                    }
                }
                self.acct()?.store.apply(b).map_err(db_err)?;
            }
            pb::MessageChangeKind::MessageChangeCleared => {
                let Some(cr) = &c.conv else { return Ok(()) };
                self.clear_local(&ids::conversation_id(cr), c.cleared_seq)?;
            }
            pb::MessageChangeKind::MessageChangeAnnotated => {
                // Announced once per device: not again when the pull of the log brings what a
                // live push (or this device's own request) already told.
                if self.known_annotations.1.insert(c.version)
                    && announce
                    && let Some(a) = &c.annotation
                {
                    self.announce_annotation(a);
                }
            }
            pb::MessageChangeKind::MessageChangeUnspecified => {}
        }
        Ok(())
    }

    /// Stages the removal of a stored message and its indexes.
    fn stage_remove(b: &mut WriteBatch, loc: Vec<u8>, m: &StoredMessage) {
        crate::media::discard_generated(m);
        let conv = m.conversation_id();
        crate::search_index::stage_del(b, &loc, m);
        b.delete(keys::msg_id(&m.msg_id));
        // Stores written before the single msg_id index have this one too.
        b.delete(keys::conv_msg_id(&conv, &m.msg_id));
        if loc.first() == Some(&keys::table::PENDING) {
            b.delete(keys::outbox(m.local_order));
        }
        b.delete(loc);
    }

    /// Removes every message of `conv` with seq <= `up_to`, and the messages imported into it.
    fn clear_local(&mut self, conv: &str, up_to: u64) -> Result<()> {
        let store = self.acct()?.store.clone();
        let (lo, _) = keys::conv_bounds(keys::table::MESSAGE, conv);
        let hi = keys::message(conv, up_to.saturating_add(1));
        let mut b = WriteBatch::new();
        for (k, v) in store.scan(&lo, &hi, false, usize::MAX).map_err(db_err)? {
            let m: StoredMessage = crate::actors::decode(&k, &v).map_err(db_err)?;
            Self::stage_remove(&mut b, k, &m);
        }
        let (plo, phi) = keys::conv_bounds(keys::table::PENDING, conv);
        for (k, v) in store.scan(&plo, &phi, false, usize::MAX).map_err(db_err)? {
            let m: StoredMessage = crate::actors::decode(&k, &v).map_err(db_err)?;
            if m.status == Status::LocalImported as i32 {
                Self::stage_remove(&mut b, k, &m);
            }
        }
        store.apply(b).map_err(db_err)
    }

    /// Pulls the message change log from the stored cursor, page by page, applying each change.
    pub(crate) fn start_change_pull(&mut self, ctx: &mut Context<Self>) {
        let Some(peers) = self.peers.clone() else {
            return;
        };
        let me = ctx.address();
        actix::spawn(async move {
            for _ in 0..MAX_CHANGE_PAGES {
                let Ok(Ok(cursor)) = me.send(ChangeCursor).await else {
                    return;
                };
                let r = peers
                    .conn
                    .send(Rpc(request::Kind::PullMessageChanges(
                        pb::PullMessageChangesReq {
                            cursor,
                            limit: CHANGE_PAGE,
                        },
                    )))
                    .await;
                let Ok(Ok(resp)) = r else { return };
                let Some(response::Kind::PullMessageChanges(page)) = resp.kind else {
                    return;
                };
                let more = page.has_more;
                match me.send(ChangesPulled(page)).await {
                    Ok(Ok(())) if more => {}
                    _ => return,
                }
            }
        });
    }

    /// The stored message `msg_id`, which must have been sent (has a seq).
    fn sent(&self, msg_id: &str) -> Result<StoredMessage> {
        let (_, m) = self.find(msg_id)?.ok_or_else(|| not_found(msg_id))?;
        if m.seq == 0 {
            return Err(ApiError::new(
                codes::ERR_INVALID_OPERATION,
                "the message was never sent (not stored on the server)",
            ));
        }
        Ok(m)
    }

    fn rpc(
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
        Ok(async move { peers.conn.send(Rpc(req)).await.map_err(mailbox)? })
    }

    /// Applies the answer to this device's own change and refreshes the conversation states.
    fn apply_own(&mut self, c: pb::MessageChange, ctx: &mut Context<Self>) -> Result<()> {
        self.apply_change(&c, false)?;
        self.start_sync(ctx);
        Ok(())
    }
}

type Reply<T> = ResponseActFuture<MessageActor, Result<T>>;

fn ready<T: 'static>(r: Result<T>) -> Reply<T> {
    Box::pin(actix::fut::ready(r))
}

/// `revoke_message {msg_id, reason?}`.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct Revoke {
    /// The message.
    pub msg_id: String,
    /// Reason shown to the others.
    pub reason: String,
}

impl Handler<Revoke> for MessageActor {
    type Result = Reply<Value>;
    fn handle(&mut self, msg: Revoke, _: &mut Context<Self>) -> Self::Result {
        let m = match self.sent(&msg.msg_id) {
            Ok(m) => m,
            Err(e) => return ready(Err(e)),
        };
        let req = request::Kind::RevokeMessage(pb::RevokeMessageReq {
            conv: Some(conv_ref(&m)),
            seq: m.seq,
            msg_id: m.msg_id.clone(),
            reason: msg.reason,
        });
        let fut = match self.rpc(req) {
            Ok(f) => f,
            Err(e) => return ready(Err(e)),
        };
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            let resp = res?;
            let Some(response::Kind::RevokeMessage(r)) = resp.kind else {
                return Err(ApiError::new(codes::ERR_PARSE_RESPONSE, "revoke answer"));
            };
            let me = act.me().to_owned();
            act.apply_own(
                pb::MessageChange {
                    kind: pb::MessageChangeKind::MessageChangeRevoked as i32,
                    message: r.message,
                    op_user: me,
                    ..Default::default()
                },
                ctx,
            )?;
            Ok(json!({}))
        }))
    }
}

/// `modify_message {message}`: the message object with its new elems / cloud custom data.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct Modify(pub Value);

impl Handler<Modify> for MessageActor {
    type Result = Reply<Value>;
    fn handle(&mut self, msg: Modify, _: &mut Context<Self>) -> Self::Result {
        let r = (|| {
            let edited = codec::message_from_json(&msg.0)?;
            if edited.msg_id.is_empty() {
                return Err(ApiError::invalid_param("message.msg_id is required"));
            }
            let m = self.sent(&edited.msg_id)?;
            if m.sender != self.me() {
                return Err(ApiError::new(
                    codes::ERR_INVALID_OPERATION,
                    "only the sender may modify a message",
                ));
            }
            // The version the edit is based on: the message object's (the app may hold a stale
            // one), else the stored one.
            let base = match msg.0.get("version") {
                None | Some(Value::Null) => m.version,
                Some(v) => v
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| ApiError::invalid_param("message.version"))?,
            };
            let mut w = codec::to_wire(&m);
            w.version = base;
            w.elems = codec::to_wire(&edited).elems;
            w.cloud_custom_data = edited.cloud_custom_data;
            self.rpc(request::Kind::ModifyMessage(pb::ModifyMessageReq {
                conv: Some(conv_ref(&m)),
                message: Some(w),
            }))
        })();
        let fut = match r {
            Ok(f) => f,
            Err(e) => return ready(Err(e)),
        };
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            let resp = res?;
            let Some(response::Kind::ModifyMessage(r)) = resp.kind else {
                return Err(ApiError::new(codes::ERR_PARSE_RESPONSE, "modify answer"));
            };
            let me = act.me().to_owned();
            let current = r.message.clone();
            act.apply_own(
                pb::MessageChange {
                    kind: pb::MessageChangeKind::MessageChangeModified as i32,
                    message: r.message,
                    op_user: me.clone(),
                    ..Default::default()
                },
                ctx,
            )?;
            if r.conflict {
                return Err(ApiError::new(
                    codes::ERR_MODIFY_CONFLICT,
                    format!(
                        "modify conflict: the message is at version {} (find_messages has it)",
                        current.map_or(0, |m| m.version)
                    ),
                ));
            }
            let id = current.map(|m| m.msg_id).unwrap_or_default();
            let (_, m) = act.find(&id)?.ok_or_else(|| not_found(&id))?;
            Ok(codec::to_json(&m, &me))
        }))
    }
}

/// `delete_messages {msg_ids}`: for me, locally and on the server (so on all my devices).
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct DeleteMessages(pub Vec<String>);

impl Handler<DeleteMessages> for MessageActor {
    type Result = Reply<Value>;
    fn handle(&mut self, msg: DeleteMessages, _: &mut Context<Self>) -> Self::Result {
        let r = (|| {
            if msg.0.is_empty() {
                return Err(ApiError::invalid_param("msg_ids is empty"));
            }
            let mut by_conv: std::collections::BTreeMap<String, (pb::ConvRef, Vec<u64>)> =
                Default::default();
            for id in &msg.0 {
                let (_, m) = self.find(id)?.ok_or_else(|| not_found(id))?;
                // Never sent (failed, imported): this device only.
                if m.seq > 0 {
                    by_conv
                        .entry(m.conversation_id())
                        .or_insert_with(|| (conv_ref(&m), Vec::new()))
                        .1
                        .push(m.seq);
                }
            }
            let mut reqs = Vec::new();
            for (_, (conv, seqs)) in by_conv {
                for chunk in seqs.chunks(DELETE_CHUNK) {
                    reqs.push(
                        self.rpc(request::Kind::DeleteMessages(pb::DeleteMessagesReq {
                            conv: Some(conv.clone()),
                            seqs: chunk.to_vec(),
                        }))?,
                    );
                }
            }
            Ok(reqs)
        })();
        let reqs = match r {
            Ok(x) => x,
            Err(e) => return ready(Err(e)),
        };
        let ids = msg.0;
        let fut = async move {
            for f in reqs {
                f.await?;
            }
            Ok::<(), ApiError>(())
        };
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            res?;
            act.apply_own(
                pb::MessageChange {
                    kind: pb::MessageChangeKind::MessageChangeDeleted as i32,
                    msg_ids: ids,
                    ..Default::default()
                },
                ctx,
            )?;
            Ok(json!({}))
        }))
    }
}

/// `delete_message_from_local_storage {msg_id}`: this device only.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct DeleteLocal(pub String);

impl Handler<DeleteLocal> for MessageActor {
    type Result = Result<Value>;
    fn handle(&mut self, msg: DeleteLocal, _: &mut Context<Self>) -> Self::Result {
        let (loc, m) = self.find(&msg.0)?.ok_or_else(|| not_found(&msg.0))?;
        let mut b = WriteBatch::new();
        Self::stage_remove(&mut b, loc, &m);
        self.acct()?.store.apply(b).map_err(db_err)?;
        Ok(json!({}))
    }
}

/// `clear_c2c_history_message` / `clear_group_history_message`: for me, on all my devices; the
/// conversation stays.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct ClearHistory(pub pb::ConvRef);

impl Handler<ClearHistory> for MessageActor {
    type Result = Reply<Value>;
    fn handle(&mut self, msg: ClearHistory, _: &mut Context<Self>) -> Self::Result {
        let conv = msg.0;
        let fut = match self.rpc(request::Kind::ClearHistory(pb::ClearHistoryReq {
            conv: Some(conv.clone()),
        })) {
            Ok(f) => f,
            Err(e) => return ready(Err(e)),
        };
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            let resp = res?;
            let Some(response::Kind::ClearHistory(r)) = resp.kind else {
                return Err(ApiError::new(codes::ERR_PARSE_RESPONSE, "clear answer"));
            };
            act.apply_own(
                pb::MessageChange {
                    kind: pb::MessageChangeKind::MessageChangeCleared as i32,
                    conv: Some(conv),
                    cleared_seq: r.cleared_seq,
                    ..Default::default()
                },
                ctx,
            )?;
            Ok(json!({}))
        }))
    }
}

/// `insert_c2c_message_to_local_storage` / `insert_group_message_to_local_storage`.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct InsertLocal {
    /// The message object (created or built from its elem list).
    pub message: Value,
    /// The conversation.
    pub conv: pb::ConvRef,
    /// The sender it shows.
    pub sender: String,
}

impl Handler<InsertLocal> for MessageActor {
    type Result = Result<Value>;
    fn handle(&mut self, msg: InsertLocal, _: &mut Context<Self>) -> Self::Result {
        let me = self.acct()?.user.clone();
        let given = msg.message.get("msg_id").and_then(Value::as_str);
        let mut m = match given.and_then(|id| self.created.remove(id)) {
            Some(m) => m,
            None => codec::message_from_json(&msg.message)?,
        };
        if m.msg_id.is_empty() || self.find(&m.msg_id)?.is_some() {
            m.msg_id = new_msg_id();
        }
        m.sender = msg.sender;
        if msg.conv.conv_type() == pb::ConvType::Group {
            m.is_group = true;
            m.group_id = msg.conv.target;
            m.peer.clear();
            m.receiver.clear();
        } else {
            m.is_group = false;
            m.peer = msg.conv.target.clone();
            m.receiver = if m.sender == me {
                msg.conv.target
            } else {
                me.clone()
            };
            m.group_id.clear();
        }
        m.status = Status::LocalImported as i32;
        m.seq = 0;
        m.time_ms = now_ms();
        m.client_time_ms = m.time_ms;
        if m.random == 0 {
            m.random = rand::random();
        }
        m.local_order = self.next_order;
        self.next_order += 1;
        let conv = m.conversation_id();
        let key = keys::pending(&conv, m.local_order);
        let mut b = WriteBatch::new();
        self.search_queue.stage_add(&mut b, &key, &m);
        b.put(key.clone(), prost::Message::encode_to_vec(&m));
        b.put(keys::msg_id(&m.msg_id), key);
        self.acct()?.store.apply(b).map_err(db_err)?;
        if let Some(p) = &self.peers {
            p.conv.do_send(MessagesAdded {
                msgs: vec![m.clone()],
                live: false,
            });
        }
        Ok(codec::to_json(&m, &me))
    }
}

/// `cancel_send_message {msg_id}`: takes a message that is waiting in the outbox (not on the
/// wire: e.g. while offline) out of it and out of the store, or one still being judged by the
/// content filters (`crate::filter`); its `send_message` call answers 8021.
/// A message already transmitted, sent or failed cannot be cancelled (8020).
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct CancelSend(pub String);

impl Handler<CancelSend> for MessageActor {
    type Result = Result<Value>;
    fn handle(&mut self, msg: CancelSend, _: &mut Context<Self>) -> Self::Result {
        let id = msg.0;
        if crate::filter::cancel_screening(self, &id) {
            return Ok(json!({}));
        }
        let (loc, m) = self.find(&id)?.ok_or_else(|| not_found(&id))?;
        let waiting = loc.first() == Some(&keys::table::PENDING)
            && m.status == Status::Sending as i32
            && !self.in_flight.contains(&id);
        if !waiting {
            return Err(ApiError::new(
                codes::ERR_INVALID_CANCEL_MESSAGE,
                "only a message still waiting in the outbox can be cancelled",
            ));
        }
        let mut b = WriteBatch::new();
        Self::stage_remove(&mut b, loc, &m);
        self.acct()?.store.apply(b).map_err(db_err)?;
        crate::media::upload::cancel(self, &id);
        self.answer(&id, Err(crate::filter::cancelled()));
        Ok(json!({}))
    }
}

/// `set_local_custom_data` / `set_local_custom_int`.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct SetLocalCustom {
    /// The message.
    pub msg_id: String,
    /// New local custom data.
    pub data: Option<Vec<u8>>,
    /// New local custom int.
    pub int: Option<i32>,
}

impl Handler<SetLocalCustom> for MessageActor {
    type Result = Result<Value>;
    fn handle(&mut self, msg: SetLocalCustom, _: &mut Context<Self>) -> Self::Result {
        let (loc, mut m) = self
            .find(&msg.msg_id)?
            .ok_or_else(|| not_found(&msg.msg_id))?;
        if let Some(d) = msg.data {
            m.local_custom_data = d;
        }
        if let Some(i) = msg.int {
            m.local_custom_int = i;
        }
        let mut b = WriteBatch::new();
        b.put(loc, prost::Message::encode_to_vec(&m));
        self.acct()?.store.apply(b).map_err(db_err)?;
        Ok(json!({}))
    }
}

/// A `MessageChangePush` from the server.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChangePushed(pub pb::MessageChangePush);

impl Handler<ChangePushed> for MessageActor {
    type Result = ();
    fn handle(&mut self, msg: ChangePushed, ctx: &mut Context<Self>) {
        let Some(c) = msg.0.change else { return };
        if self.acct.is_none() {
            return;
        }
        if let Err(e) = self.apply_change(&c, true) {
            tracing::warn!("applying a message change: {e}");
        }
        // A reaction or extension moves neither a last message nor an unread count.
        if c.kind() != pb::MessageChangeKind::MessageChangeAnnotated {
            self.start_sync(ctx);
        }
    }
}

/// The stored change cursor.
#[derive(Message)]
#[rtype(result = "Result<u64>")]
struct ChangeCursor;

impl Handler<ChangeCursor> for MessageActor {
    type Result = Result<u64>;
    fn handle(&mut self, _: ChangeCursor, _: &mut Context<Self>) -> Self::Result {
        Ok(self
            .acct()?
            .store
            .get(&keys::meta(META_CHANGE_CURSOR))
            .map_err(db_err)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes))
    }
}

/// One page of the change log: applied, then the cursor moves past it.
#[derive(Message)]
#[rtype(result = "Result<()>")]
struct ChangesPulled(pb::PullMessageChangesResp);

impl Handler<ChangesPulled> for MessageActor {
    type Result = Result<()>;
    fn handle(&mut self, msg: ChangesPulled, _: &mut Context<Self>) -> Self::Result {
        for c in &msg.0.changes {
            self.apply_change(c, true)?;
        }
        let mut b = WriteBatch::new();
        b.put(
            keys::meta(META_CHANGE_CURSOR),
            msg.0.cursor.to_be_bytes().to_vec(),
        );
        // What the cursor passed is never pulled again.
        self.known_annotations.1 = self
            .known_annotations
            .1
            .split_off(&msg.0.cursor.saturating_add(1));
        self.acct()?.store.apply(b).map_err(db_err)
    }
}
