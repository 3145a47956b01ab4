//! ConversationActor: the conversation list, unread counts by the one rule
//! (`chime_proto::unread`), read marks, total unread, and the conversation events.
//!
//! Counts come from two sources that must agree: the server's `ConvState` at sync (absolute:
//! `unread_count`, `read_seq`, `max_seq`) and live messages after it. A live message changes the
//! count only when its seq is above the conversation's known `max_seq` (otherwise the server's
//! state already counted it), so a push and a sync page covering the same message never count it
//! twice.

use std::collections::HashMap;

use actix::prelude::*;
use chime_proto::pb::{self, request, response};
use chime_proto::{codes, ids, unread};
use serde_json::{Value, json};

use super::connection::Rpc;
use super::{Account, CloseAccount, OpenAccount, Peers, Shared, decode};
use crate::codec;
use crate::model::{StoredConversation, StoredGroup, StoredMessage};
use crate::store::{WriteBatch, keys};
use crate::{ApiError, Result};

/// Owns conversations.
pub struct ConversationActor {
    shared: Shared,
    peers: Option<Peers>,
    acct: Option<Account>,
    convs: HashMap<String, StoredConversation>,
    total: u64,
    /// Conversations changed by live messages, persisted and announced together at the end of the
    /// current burst of mailbox messages (one event per burst instead of one per message).
    dirty: Vec<String>,
    dirty_created: Vec<String>,
    flush_scheduled: bool,
}

impl ConversationActor {
    /// An actor with no account.
    pub fn new(shared: Shared) -> Self {
        Self {
            shared,
            peers: None,
            acct: None,
            convs: HashMap::new(),
            total: 0,
            dirty: Vec::new(),
            dirty_created: Vec::new(),
            flush_scheduled: false,
        }
    }

    fn me(&self) -> &str {
        self.acct.as_ref().map_or("", |a| a.user.as_str())
    }

    fn acct(&self) -> Result<&Account> {
        self.acct
            .as_ref()
            .ok_or_else(|| ApiError::new(codes::ERR_SDK_NOT_LOGGED_IN, "not logged in"))
    }

    fn group_info(&self, group_id: &str) -> Option<StoredGroup> {
        let k = keys::group(group_id);
        let v = self.acct.as_ref()?.store.get(&k).ok()??;
        decode(&k, &v).ok()
    }

    fn entry(
        &mut self,
        conv_id: &str,
        created: &mut Vec<String>,
    ) -> Option<&mut StoredConversation> {
        if !self.convs.contains_key(conv_id) {
            let c = ids::parse_conversation_id(conv_id)?;
            let is_group = c.conv_type() == pb::ConvType::Group;
            let mut sc = StoredConversation {
                conversation_id: conv_id.to_owned(),
                is_group,
                target: c.target.clone(),
                show_name: c.target.clone(),
                ..Default::default()
            };
            if is_group && let Some(g) = self.group_info(&c.target) {
                sc.group_type = g.group_type;
                if !g.name.is_empty() {
                    sc.show_name = g.name;
                }
                sc.face_url = g.face_url;
            }
            self.convs.insert(conv_id.to_owned(), sc);
            created.push(conv_id.to_owned());
        }
        self.convs.get_mut(conv_id)
    }

    fn to_json(&self, c: &StoredConversation) -> Value {
        let me = self.me();
        json!({
            "conversation_id": c.conversation_id,
            "type": if c.is_group { "group" } else { "c2c" },
            "user_id": if c.is_group { "" } else { c.target.as_str() },
            "group_id": if c.is_group { c.target.as_str() } else { "" },
            "group_type": c.group_type,
            "show_name": c.show_name,
            "face_url": c.face_url,
            "recv_opt": "receive",
            "last_message": c.last_message.as_ref().map_or(Value::Null, |m| codec::to_json(m, me)),
            "unread_count": c.unread_count,
            "is_pinned": c.is_pinned,
            "orderkey": c.orderkey,
            "draft_text": "",
            "draft_timestamp": 0,
            "group_at_info_list": [],
            "mark_list": [],
            "custom_data": "",
            "conversation_group_list": [],
        })
    }

    /// Persists the touched conversations and emits new/changed/total events.
    fn commit(&mut self, mut touched: Vec<String>, mut created: Vec<String>) {
        // Deferred changes go first, in order.
        touched.splice(0..0, std::mem::take(&mut self.dirty));
        created.extend(std::mem::take(&mut self.dirty_created));
        if touched.is_empty() {
            return;
        }
        let mut b = WriteBatch::new();
        let mut new_list = Vec::new();
        let mut changed_list = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for id in touched {
            if !seen.insert(id.clone()) {
                continue;
            }
            let Some(c) = self.convs.get(&id) else {
                continue;
            };
            b.put(keys::conversation(&id), prost::Message::encode_to_vec(c));
            if created.contains(&id) {
                new_list.push(self.to_json(c));
            } else {
                changed_list.push(self.to_json(c));
            }
        }
        if let Some(a) = &self.acct
            && let Err(e) = a.store.apply(b)
        {
            tracing::warn!("conversation write: {e}");
        }
        let ev = &self.shared.events;
        if !new_list.is_empty() {
            ev.emit(
                "on_new_conversation",
                json!({ "conversation_list": new_list }),
            );
        }
        if !changed_list.is_empty() {
            ev.emit(
                "on_conversation_changed",
                json!({ "conversation_list": changed_list }),
            );
        }
        let total = self.total_unread();
        if total != self.total {
            self.total = total;
            ev.emit(
                "on_total_unread_message_count_changed",
                json!({ "total_unread_count": total }),
            );
        }
    }

    /// Like [`Self::commit`], deferred to the end of the current burst.
    fn commit_later(
        &mut self,
        touched: Vec<String>,
        created: Vec<String>,
        ctx: &mut Context<Self>,
    ) {
        self.dirty.extend(touched);
        self.dirty_created.extend(created);
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.run_later(std::time::Duration::ZERO, |act, _| act.flush_dirty());
        }
    }

    fn flush_dirty(&mut self) {
        self.flush_scheduled = false;
        self.commit(Vec::new(), Vec::new());
    }

    fn total_unread(&self) -> u64 {
        self.convs.values().map(|c| u64::from(c.unread_count)).sum()
    }

    fn set_last(c: &mut StoredConversation, m: &StoredMessage) {
        if m.exclude_from_last_message {
            return;
        }
        let newer = c
            .last_message
            .as_ref()
            .is_none_or(|l| m.seq >= l.seq || (m.seq > 0 && l.seq == 0));
        if newer {
            c.orderkey = c.orderkey.max(u64::try_from(m.time_ms).unwrap_or(0));
            c.last_message = Some(m.clone());
        }
    }
}

impl Actor for ConversationActor {
    type Context = Context<Self>;
}

/// Tells the actor its peers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPeers(pub Peers);

impl Handler<SetPeers> for ConversationActor {
    type Result = ();
    fn handle(&mut self, msg: SetPeers, _: &mut Context<Self>) {
        self.peers = Some(msg.0);
    }
}

impl Handler<OpenAccount> for ConversationActor {
    type Result = ();
    fn handle(&mut self, msg: OpenAccount, _: &mut Context<Self>) {
        self.convs.clear();
        let (lo, hi) = keys::table_bounds(keys::table::CONVERSATION);
        match msg.0.store.scan(&lo, &hi, false, usize::MAX) {
            Ok(entries) => {
                for (k, v) in entries {
                    match decode::<StoredConversation>(&k, &v) {
                        Ok(c) => {
                            self.convs.insert(c.conversation_id.clone(), c);
                        }
                        Err(e) => tracing::warn!("{e}"),
                    }
                }
            }
            Err(e) => tracing::warn!("loading conversations: {e}"),
        }
        self.acct = Some(msg.0);
        self.total = self.total_unread();
    }
}

impl Handler<CloseAccount> for ConversationActor {
    type Result = ();
    fn handle(&mut self, _: CloseAccount, _: &mut Context<Self>) {
        self.flush_dirty();
        self.acct = None;
        self.convs.clear();
        self.total = 0;
    }
}

/// Conversation states from a sync page.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ApplyStates(pub Vec<pb::ConvState>);

impl Handler<ApplyStates> for ConversationActor {
    type Result = ();
    fn handle(&mut self, msg: ApplyStates, _: &mut Context<Self>) {
        if self.acct.is_none() {
            return;
        }
        let me = self.me().to_owned();
        let mut created = Vec::new();
        let mut touched = Vec::new();
        for s in msg.0 {
            let Some(cref) = &s.conv else { continue };
            let id = ids::conversation_id(cref);
            let last = s.last_message.as_ref().map(|m| codec::from_wire(m, &me));
            let Some(c) = self.entry(&id, &mut created) else {
                continue;
            };
            c.max_seq = c.max_seq.max(s.max_seq);
            c.read_seq = s.read_seq;
            c.unread_count = s.unread_count;
            c.min_seq = s.min_seq;
            if let Some(m) = last {
                Self::set_last(c, &m);
            }
            touched.push(id);
        }
        self.commit(touched, created);
    }
}

/// Messages newly in the store (`live`: from a push or a catch-up pull).
#[derive(Message)]
#[rtype(result = "()")]
pub struct MessagesAdded {
    /// The messages.
    pub msgs: Vec<StoredMessage>,
    /// Live (may count as unread) or history.
    pub live: bool,
}

impl Handler<MessagesAdded> for ConversationActor {
    type Result = ();
    fn handle(&mut self, msg: MessagesAdded, ctx: &mut Context<Self>) {
        if self.acct.is_none() {
            return;
        }
        let me = self.me().to_owned();
        let mut created = Vec::new();
        let mut touched = Vec::new();
        for m in msg.msgs {
            let id = m.conversation_id();
            let Some(c) = self.entry(&id, &mut created) else {
                continue;
            };
            if m.seq > c.max_seq {
                c.max_seq = m.seq;
                if msg.live && unread::counts_as_unread(&codec::to_wire(&m), &me, c.read_seq) {
                    c.unread_count += 1;
                }
            }
            Self::set_last(c, &m);
            touched.push(id);
        }
        self.commit_later(touched, created, ctx);
    }
}

/// The read position moved (another device, or the server's answer).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReadPushed(pub pb::ReadPush);

impl Handler<ReadPushed> for ConversationActor {
    type Result = ();
    fn handle(&mut self, msg: ReadPushed, _: &mut Context<Self>) {
        let Some(cref) = &msg.0.conv else { return };
        let id = ids::conversation_id(cref);
        let mut created = Vec::new();
        if let Some(c) = self.entry(&id, &mut created) {
            c.read_seq = c.read_seq.max(msg.0.read_seq);
            c.unread_count = msg.0.unread_count;
            self.commit(vec![id], created);
        }
    }
}

/// `mark_c2c_message_as_read` / `mark_group_message_as_read`.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct MarkRead(pub pb::ConvRef);

impl Handler<MarkRead> for ConversationActor {
    type Result = ResponseActFuture<Self, Result<Value>>;
    fn handle(&mut self, msg: MarkRead, _: &mut Context<Self>) -> Self::Result {
        let ready = |r: Result<Value>| -> Self::Result { Box::pin(actix::fut::ready(r)) };
        if let Err(e) = self.acct() {
            return ready(Err(e));
        }
        let Some(peers) = self.peers.clone() else {
            return ready(Err(ApiError::new(codes::ERR_SDK_INTERNAL, "not wired")));
        };
        let cref = msg.0;
        let fut = peers
            .conn
            .send(Rpc(request::Kind::MarkRead(pb::MarkReadReq {
                conv: Some(cref.clone()),
                read_seq: 0,
            })));
        Box::pin(fut.into_actor(self).map(move |res, act, _| {
            let resp = res
                .map_err(|e| ApiError::new(codes::ERR_SDK_INTERNAL, e.to_string()))
                .and_then(|r| r)?;
            let read_seq = match resp.kind {
                Some(response::Kind::MarkRead(r)) => r.read_seq,
                _ => 0,
            };
            let id = ids::conversation_id(&cref);
            let mut created = Vec::new();
            if let Some(c) = act.entry(&id, &mut created) {
                c.read_seq = c.read_seq.max(read_seq);
                if c.read_seq >= c.max_seq {
                    c.unread_count = 0;
                }
                act.commit(vec![id], created);
            }
            Ok(json!({}))
        }))
    }
}

/// `get_conversation_list {next_seq, count}`.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct List {
    /// Offset cursor.
    pub next_seq: u64,
    /// Page size.
    pub count: usize,
}

impl Handler<List> for ConversationActor {
    type Result = Result<Value>;
    fn handle(&mut self, msg: List, _: &mut Context<Self>) -> Self::Result {
        self.acct()?;
        let mut all: Vec<&StoredConversation> = self.convs.values().collect();
        all.sort_by(|a, b| {
            b.is_pinned
                .cmp(&a.is_pinned)
                .then(b.orderkey.cmp(&a.orderkey))
                .then(a.conversation_id.cmp(&b.conversation_id))
        });
        let start = usize::try_from(msg.next_seq)
            .unwrap_or(usize::MAX)
            .min(all.len());
        let end = start.saturating_add(msg.count).min(all.len());
        let list: Vec<Value> = all[start..end].iter().map(|c| self.to_json(c)).collect();
        Ok(json!({
            "conversation_list": list,
            "next_seq": end as u64,
            "is_finished": end >= all.len(),
        }))
    }
}

/// `get_conversation {conversation_id}`.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct Get(pub String);

impl Handler<Get> for ConversationActor {
    type Result = Result<Value>;
    fn handle(&mut self, msg: Get, _: &mut Context<Self>) -> Self::Result {
        self.acct()?;
        let Some(cref) = ids::parse_conversation_id(&msg.0) else {
            return Err(ApiError::new(
                codes::ERR_INVALID_CONVERSATION,
                "invalid conversation_id",
            ));
        };
        match self.convs.get(&msg.0) {
            Some(c) => Ok(self.to_json(c)),
            None => {
                let is_group = cref.conv_type() == pb::ConvType::Group;
                let c = StoredConversation {
                    conversation_id: msg.0.clone(),
                    is_group,
                    show_name: cref.target.clone(),
                    target: cref.target,
                    ..Default::default()
                };
                Ok(self.to_json(&c))
            }
        }
    }
}

/// `get_total_unread_message_count`.
#[derive(Message)]
#[rtype(result = "Result<u64>")]
pub struct TotalUnread;

impl Handler<TotalUnread> for ConversationActor {
    type Result = Result<u64>;
    fn handle(&mut self, _: TotalUnread, _: &mut Context<Self>) -> Self::Result {
        self.acct()?;
        Ok(self.total_unread())
    }
}

/// Writes and announces every deferred change now (a barrier for the sync cursor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

impl Handler<Flush> for ConversationActor {
    type Result = ();
    fn handle(&mut self, _: Flush, _: &mut Context<Self>) {
        self.flush_dirty();
    }
}
