//! The send pipeline: `create_*_message`, `send_message`, `resend_message`, and the durable
//! outbox (persist before transmit, resend on every reconnect, promote on ack).

use std::collections::HashMap;

use actix::prelude::*;
use chime_proto::pb::{self, request};
use chime_proto::{codes, ids, limits};
use serde_json::Value;
use tokio::sync::oneshot;

use super::{MessageActor, mailbox, new_msg_id};
use crate::actors::connection::Rpc;
use crate::actors::conversation::{ChangesApplied, MessagesAdded};
use crate::actors::{db_err, now_ms};
use crate::codec;
use crate::model::{Status, StoredMessage, StoredPushInfo, SyncedRanges};
use crate::outbox::{self, SendOutcome};
use crate::store::{WriteBatch, keys};
use crate::{ApiError, Result};

/// A `send_message` call waiting for its ack, until a deadline.
pub(crate) type Waiter = (std::time::Instant, oneshot::Sender<Result<Value>>);

/// How often waiting calls are checked against their deadline.
pub(crate) const WAITER_SWEEP: std::time::Duration = std::time::Duration::from_millis(250);

impl MessageActor {
    pub(crate) fn answer(&mut self, msg_id: &str, r: Result<Value>) {
        for (_, tx) in self.waiters.remove(msg_id).unwrap_or_default() {
            let _ = tx.send(r.clone());
        }
    }

    pub(crate) fn add_waiter(&mut self, msg_id: &str) -> oneshot::Receiver<Result<Value>> {
        let (tx, rx) = oneshot::channel();
        let deadline = std::time::Instant::now()
            + std::time::Duration::from_millis(self.shared.config.send_timeout_ms);
        self.waiters
            .entry(msg_id.to_owned())
            .or_default()
            .push((deadline, tx));
        rx
    }

    /// Answers 9520 to the calls whose deadline passed; their messages stay in the outbox.
    pub(crate) fn sweep_waiters(&mut self) {
        let now = std::time::Instant::now();
        self.waiters.retain(|_, list| {
            let mut i = 0;
            while i < list.len() {
                if list[i].0 <= now {
                    let (_, tx) = list.swap_remove(i);
                    let _ = tx.send(Err(ApiError::new(
                        codes::ERR_NET_WAIT_ACK_TIMEOUT,
                        "no ack yet; the message stays in the outbox and will still be sent",
                    )));
                } else {
                    i += 1;
                }
            }
            !list.is_empty()
        });
    }

    pub(crate) fn transmit(&mut self, m: &StoredMessage, ctx: &mut Context<Self>) {
        // Media files are uploaded first (`crate::media::upload`), which transmits again after.
        if crate::media::upload::intercept(self, m, ctx) {
            return;
        }
        let (Some(epoch), Some(peers)) = (self.online, self.peers.as_ref()) else {
            return;
        };
        if !self.in_flight.begin(&m.msg_id) {
            return;
        }
        let req = Rpc(request::Kind::SendMessage(pb::SendMessageReq {
            message: Some(codec::to_wire(m)),
        }));
        let fut = peers.conn.send(req);
        let id = m.msg_id.clone();
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let res = res.map_err(mailbox).and_then(|r| r);
            act.on_send_result(id, epoch, res, ctx);
        }));
    }

    pub(crate) fn on_send_result(
        &mut self,
        id: String,
        epoch: u64,
        res: Result<pb::Response>,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight.end(&id);
        if self.acct.is_none() {
            return;
        }
        match outbox::classify(res, now_ms()) {
            SendOutcome::Acked {
                seq,
                server_time_ms,
                change_version,
            } => {
                // Acks come in bursts (a window of sends answered together): the ones that
                // arrive before the actor has nothing else to do are stored in one batch.
                self.acks.push((id, seq, server_time_ms, change_version));
                if self.acks.len() == 1 {
                    ctx.spawn(fut::ready(()).map(|_, act: &mut Self, _| act.finish_acks()));
                }
            }
            SendOutcome::Retry => {
                // Stays in the outbox. If we are still on the same connection, try again soon;
                // otherwise the next `Online` sends it.
                if self.online == Some(epoch) {
                    ctx.run_later(std::time::Duration::from_millis(500), move |act, ctx| {
                        if let Ok(Some((_, m))) = act.find(&id) {
                            if m.status == Status::Sending as i32 {
                                act.transmit(&m, ctx);
                            }
                        } else if let Some(m) = act.transient.get(&id).cloned() {
                            act.transmit(&m, ctx);
                        }
                    });
                }
            }
            SendOutcome::Failed(e) => {
                if let Err(e2) = self.fail(&id, &e) {
                    tracing::warn!("marking {id} failed: {e2}");
                }
                self.answer(&id, Err(e));
            }
        }
    }

    /// Finishes the acked sends gathered so far: moves each message to its seq key (one store
    /// batch for all of them), then answers their calls.
    pub(crate) fn finish_acks(&mut self) {
        let acks = std::mem::take(&mut self.acks);
        if acks.is_empty() || self.acct.is_none() {
            return;
        }
        let mut batch = WriteBatch::new();
        let mut ranges = HashMap::new();
        let mut promoted: Vec<StoredMessage> = Vec::new();
        let mut done: Vec<(String, Result<StoredMessage>)> = Vec::new();
        // The sends' change versions, applied once their messages are stored.
        let mut versions: Vec<(String, u64)> = Vec::new();
        for (id, seq, time_ms, version) in acks {
            if version > 0 {
                versions.push((id.clone(), version));
            }
            if let Some(mut m) = self.transient.remove(&id) {
                m.status = Status::SendSucc as i32;
                m.time_ms = time_ms;
                done.push((id, Ok(m)));
                continue;
            }
            let r = (|| -> Result<Option<StoredMessage>> {
                let Some(loc) = self.locate(&id)? else {
                    return Ok(None);
                };
                if loc.first() != Some(&keys::table::PENDING) {
                    return self.load_at(&loc);
                }
                // Acked twice in one burst (a resend's ack): the first promotion stands.
                if promoted.iter().any(|m| m.msg_id == id) {
                    return Ok(None);
                }
                let m = self.promote(&loc, seq, time_ms, &mut batch, &mut ranges)?;
                promoted.push(m.clone());
                Ok(Some(m))
            })();
            match r {
                Ok(Some(m)) => done.push((id, Ok(m))),
                Ok(None) => {}
                Err(e) => done.push((id, Err(e))),
            }
        }
        if !batch.is_empty()
            && let Err(e) = self
                .acct()
                .and_then(|a| a.store.apply(batch).map_err(db_err))
        {
            // Nothing of the batch is stored: those messages stay in the outbox.
            for (id, r) in &mut done {
                if promoted.iter().any(|m| m.msg_id == *id) {
                    *r = Err(e.clone());
                }
            }
            promoted.clear();
            ranges.clear();
        }
        self.stage_ranges(ranges);
        let stored: Vec<u64> = versions
            .into_iter()
            .filter(|(id, _)| done.iter().any(|(d, r)| d == id && r.is_ok()))
            .map(|(_, v)| v)
            .collect();
        if let Some(p) = &self.peers {
            if !promoted.is_empty() {
                p.conv.do_send(MessagesAdded {
                    msgs: promoted,
                    live: true,
                });
            }
            if !stored.is_empty() {
                p.conv.do_send(ChangesApplied(stored));
            }
        }
        let me = self.me().to_owned();
        for (id, r) in done {
            let r = r.map(|m| codec::to_json(&m, &me));
            self.answer(&id, r);
        }
    }

    /// Moves a pending message to its `(conversation, seq)` key (or drops it from the store when
    /// the server did not store it: seq 0).
    pub(crate) fn promote(
        &self,
        loc: &[u8],
        seq: u64,
        time_ms: i64,
        batch: &mut WriteBatch,
        ranges: &mut HashMap<String, SyncedRanges>,
    ) -> Result<StoredMessage> {
        let Some(mut m) = self.load_at(loc)? else {
            return Err(ApiError::new(
                codes::ERR_DATABASE,
                "pending message vanished",
            ));
        };
        let conv = m.conversation_id();
        // A message being sent is never queued for the search index (it is found through the
        // outbox); one that failed before may be.
        if m.status != Status::Sending as i32 {
            crate::search_index::stage_del(batch, loc, &m);
        }
        m.seq = seq;
        m.time_ms = time_ms;
        m.status = Status::SendSucc as i32;
        batch.delete(loc.to_vec());
        batch.delete(keys::outbox(m.local_order));
        if seq == 0 {
            batch.delete(keys::msg_id(&m.msg_id));
            return Ok(m);
        }
        let key = keys::message(&conv, seq);
        self.search_queue.stage_add(batch, &key, &m);
        batch.put(key.clone(), prost::Message::encode_to_vec(&m));
        batch.put(keys::msg_id(&m.msg_id), key);
        self.range_entry(ranges, &conv)?.insert(seq, seq);
        Ok(m)
    }

    pub(crate) fn fail(&mut self, id: &str, _e: &ApiError) -> Result<()> {
        if self.transient.remove(id).is_some() {
            return Ok(());
        }
        if let Some((loc, mut m)) = self.find(id)?
            && loc.first() == Some(&keys::table::PENDING)
        {
            m.status = Status::SendFail as i32;
            let mut b = WriteBatch::new();
            // Out of the outbox: searchable through the index from now on.
            self.search_queue.stage_add(&mut b, &loc, &m);
            b.put(loc, prost::Message::encode_to_vec(&m));
            b.delete(keys::outbox(m.local_order));
            self.acct()?.store.apply(b).map_err(db_err)?;
        }
        Ok(())
    }

    pub(crate) fn flush_outbox(&mut self, ctx: &mut Context<Self>) -> Result<()> {
        let (lo, hi) = keys::table_bounds(keys::table::OUTBOX);
        let entries = self
            .acct()?
            .store
            .scan(&lo, &hi, false, usize::MAX)
            .map_err(db_err)?;
        for (_, loc) in entries {
            if let Some(m) = self.load_at(&loc)?
                && m.status == Status::Sending as i32
            {
                self.transmit(&m, ctx);
            }
        }
        let pending: Vec<StoredMessage> = self.transient.values().cloned().collect();
        for m in pending {
            self.transmit(&m, ctx);
        }
        Ok(())
    }

    pub(crate) fn persist_new(&mut self, m: &StoredMessage) -> Result<()> {
        let conv = m.conversation_id();
        let key = keys::pending(&conv, m.local_order);
        let mut b = WriteBatch::new();
        // Not queued for the search index: a search finds it through its outbox entry
        // (`search_index::candidates`), and the ack moves it to its seq key, queued there.
        b.put(key.clone(), prost::Message::encode_to_vec(m));
        b.put(keys::msg_id(&m.msg_id), key.clone());
        b.put(keys::outbox(m.local_order), key);
        self.acct()?.store.apply(b).map_err(db_err)
    }
}

/// What a `create_*_message` call creates.
pub enum CreateKind {
    /// Text.
    Text(String),
    /// Text with @ list.
    TextAt(String, Vec<String>),
    /// Custom.
    Custom {
        /// Data.
        data: Vec<u8>,
        /// Description.
        description: String,
        /// Extension.
        extension: String,
    },
    /// One elem built elsewhere (a media elem of `crate::media::create`).
    Elem(Box<crate::model::StoredElem>),
}

/// `create_*_message`: a message object with a fresh msg_id, kept until sent.
#[derive(Message)]
#[rtype(result = "Value")]
pub struct Create(pub CreateKind);

impl Handler<Create> for MessageActor {
    type Result = MessageResult<Create>;
    fn handle(&mut self, msg: Create, _: &mut Context<Self>) -> Self::Result {
        let mut m = StoredMessage {
            msg_id: new_msg_id(),
            sender: self.me().to_owned(),
            time_ms: now_ms(),
            client_time_ms: now_ms(),
            random: rand::random(),
            status: Status::Sending as i32,
            ..Default::default()
        };
        match msg.0 {
            CreateKind::Text(t) => m.elems.push(codec::text_elem(&t)),
            CreateKind::TextAt(t, at) => {
                m.elems.push(codec::text_elem(&t));
                m.group_at_user_list = at;
            }
            CreateKind::Custom {
                data,
                description,
                extension,
            } => m
                .elems
                .push(codec::custom_elem(data, description, extension)),
            CreateKind::Elem(e) => m.elems.push(*e),
        }
        let j = codec::to_json(&m, self.me());
        // Bounded: a host that creates without sending does not grow this forever.
        if self.created.len() > 10_000 {
            self.created.clear();
        }
        self.created.insert(m.msg_id.clone(), m);
        MessageResult(j)
    }
}

/// `send_message` parameters.
#[derive(Default)]
pub struct SendParams {
    /// The message object.
    pub message: Value,
    /// C2C receiver (or the one receiver of a targeted group message).
    pub receiver: Option<String>,
    /// Group.
    pub group_id: Option<String>,
    /// Priority value.
    pub priority: Option<i32>,
    /// Online only.
    pub online_user_only: bool,
    /// Offline push info.
    pub offline_push_info: Option<StoredPushInfo>,
    /// Need read receipt.
    pub need_read_receipt: bool,
    /// Excluded from unread.
    pub exclude_from_unread: bool,
    /// Excluded from last message.
    pub exclude_from_last_message: bool,
    /// Cloud custom data.
    pub cloud_custom_data: Option<Vec<u8>>,
}

/// `send_message`: answers the sent message once acked.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct Send(pub SendParams);

impl Handler<Send> for MessageActor {
    type Result = ResponseActFuture<Self, Result<Value>>;
    fn handle(&mut self, msg: Send, ctx: &mut Context<Self>) -> Self::Result {
        // Content-filter plugins judge the text first, off the actor (`crate::filter`).
        crate::filter::screen_send(self, msg.0, ctx, Self::prepare_send)
    }
}

impl MessageActor {
    fn prepare_send(
        &mut self,
        p: SendParams,
        ctx: &mut Context<Self>,
    ) -> Result<oneshot::Receiver<Result<Value>>> {
        let me = self.acct()?.user.clone();
        let given_id = p
            .message
            .get("msg_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut m = match given_id.as_deref().and_then(|id| self.created.remove(id)) {
            Some(m) => m,
            None => codec::message_from_json(&p.message)?,
        };
        codec::apply_hook_flags(&mut m, &p.message)?;
        if m.msg_id.is_empty() {
            // A fresh id is in no store: nothing to look up.
            m.msg_id = new_msg_id();
        } else if let Some((_, existing)) = self.find(&m.msg_id)? {
            if existing.status == Status::Sending as i32 {
                return Ok(self.add_waiter(&m.msg_id));
            }
            return Err(ApiError::new(
                codes::ERR_INVALID_OPERATION,
                "message already sent (use resend_message for a failed one)",
            ));
        }
        match (&p.group_id, &p.receiver) {
            (Some(g), r) => {
                if !ids::is_valid_group_id(g) {
                    return Err(ApiError::new(
                        codes::ERR_INVALID_GROUP_ID,
                        "invalid group_id",
                    ));
                }
                m.is_group = true;
                m.group_id = g.clone();
                m.peer.clear();
                m.receiver.clear();
                if let Some(r) = r {
                    if !ids::is_valid_user_id(r) {
                        return Err(ApiError::new(
                            codes::ERR_INVALID_USER_ID,
                            "invalid receiver",
                        ));
                    }
                    m.target_user_list = vec![r.clone()];
                }
            }
            (None, Some(r)) => {
                if !ids::is_valid_user_id(r) {
                    return Err(ApiError::new(
                        codes::ERR_INVALID_USER_ID,
                        "invalid receiver",
                    ));
                }
                m.is_group = false;
                m.peer = r.clone();
                m.receiver = r.clone();
                m.group_id.clear();
            }
            (None, None) => {
                return Err(ApiError::invalid_param("receiver or group_id is required"));
            }
        }
        if let Some(pr) = p.priority {
            m.priority = pr;
        }
        m.online_user_only = p.online_user_only;
        if p.offline_push_info.is_some() {
            m.offline_push_info = p.offline_push_info;
        }
        m.need_read_receipt = p.need_read_receipt;
        m.exclude_from_unread = p.exclude_from_unread;
        m.exclude_from_last_message = p.exclude_from_last_message;
        if let Some(c) = p.cloud_custom_data {
            m.cloud_custom_data = c;
        }
        m.sender = me;
        let now = now_ms();
        m.time_ms = now;
        m.client_time_ms = now;
        if m.random == 0 {
            m.random = rand::random();
        }
        m.status = Status::Sending as i32;
        m.seq = 0;
        let size = limits::message_body_bytes(&codec::to_wire(&m));
        if size > limits::MAX_MESSAGE_BODY_BYTES {
            return Err(ApiError::new(
                codes::ERR_MSG_TOO_LARGE,
                format!("message body {size} bytes exceeds 12 KB"),
            ));
        }
        m.local_order = self.next_order;
        self.next_order += 1;
        if m.online_user_only {
            self.transient.insert(m.msg_id.clone(), m.clone());
        } else {
            self.persist_new(&m)?;
        }
        let rx = self.add_waiter(&m.msg_id);
        self.transmit(&m, ctx);
        Ok(rx)
    }
}

/// `resend_message`: a `send_fail` (or still `sending`) message again, same msg_id.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct Resend(pub String);

impl Handler<Resend> for MessageActor {
    type Result = ResponseFuture<Result<Value>>;
    fn handle(&mut self, msg: Resend, ctx: &mut Context<Self>) -> Self::Result {
        let r = (|| -> Result<oneshot::Receiver<Result<Value>>> {
            let Some((loc, mut m)) = self.find(&msg.0)? else {
                return Err(ApiError::invalid_param(format!(
                    "msg_id {} not found",
                    msg.0
                )));
            };
            if loc.first() != Some(&keys::table::PENDING) {
                return Err(ApiError::new(
                    codes::ERR_INVALID_OPERATION,
                    "only a failed or sending message can be resent",
                ));
            }
            if m.status != Status::SendFail as i32 && m.status != Status::Sending as i32 {
                return Err(ApiError::new(
                    codes::ERR_INVALID_OPERATION,
                    "this message cannot be resent (never sent: imported into local storage)",
                ));
            }
            if m.status == Status::SendFail as i32 {
                m.status = Status::Sending as i32;
                let mut b = WriteBatch::new();
                // Back in the outbox, which a search reads (see `persist_new`).
                crate::search_index::stage_del(&mut b, &loc, &m);
                b.put(loc.clone(), prost::Message::encode_to_vec(&m));
                b.put(keys::outbox(m.local_order), loc);
                self.acct()?.store.apply(b).map_err(db_err)?;
            }
            let rx = self.add_waiter(&m.msg_id);
            self.transmit(&m, ctx);
            Ok(rx)
        })();
        match r {
            Ok(rx) => Box::pin(async move {
                rx.await
                    .unwrap_or_else(|_| Err(ApiError::new(codes::ERR_INTERRUPTED, "interrupted")))
            }),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}
