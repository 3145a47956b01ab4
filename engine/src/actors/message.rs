//! MessageActor: the send pipeline with its durable outbox, the receive pipeline (dedupe, order,
//! gap fill), the post-login sync driver, history and find.
//!
//! **Outbox.** `send_message` writes the message (status `sending`) under its pending key plus an
//! outbox entry in one batch before anything leaves. Whenever the connection comes (back) up,
//! every outbox entry is sent again with the same msg_id; the server is idempotent on
//! `(sender, msg_id)`. An ack moves the message to its `(conversation, seq)` key and drops the
//! outbox entry; a server error marks it `send_fail`; a disconnect or a restart changes nothing.
//!
//! **Exactly once.** A message reaches the listeners only when it is newly inserted into the
//! store (the unique `(conversation, msg_id)` index decides) and came from a live push or from
//! the catch-up pulls of a sync or of a push gap — never from history calls. Messages this
//! device sent are found in the index (pending or acked) and never announced.

use std::collections::{HashMap, HashSet, VecDeque};

use actix::prelude::*;
use chime_proto::pb::{self, request, response};
use chime_proto::{codes, ids, limits};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::connection::{ConnectionActor, Rpc};
use super::conversation::{ApplyStates, MessagesAdded};
use super::group::SetJoined;
use super::relationship::SeenProfiles;
use super::{
    Account, CloseAccount, Offline, Online, OpenAccount, Peers, Shared, db_err, decode, now_ms,
};
use crate::codec;
use crate::model::{Status, StoredMessage, StoredPushInfo, SyncedRanges, elem_kind};
use crate::outbox::{self, InFlight, SendOutcome};
use crate::store::{WriteBatch, keys};
use crate::sync_plan::{self, Pull};
use crate::{ApiError, Result};

/// Conversations per sync page.
const SYNC_PAGE: u32 = 100;
/// Online-only message ids remembered for dedupe.
const SEEN_ONLINE_ONLY: usize = 4096;

/// A `send_message` call waiting for its ack, until a deadline.
type Waiter = (std::time::Instant, oneshot::Sender<Result<Value>>);

/// How often waiting calls are checked against their deadline.
const WAITER_SWEEP: std::time::Duration = std::time::Duration::from_millis(250);

/// Owns messages.
pub struct MessageActor {
    shared: Shared,
    peers: Option<Peers>,
    acct: Option<Account>,
    online: Option<u64>,
    created: HashMap<String, StoredMessage>,
    waiters: HashMap<String, Vec<Waiter>>,
    in_flight: InFlight,
    transient: HashMap<String, StoredMessage>,
    next_order: u64,
    syncing: bool,
    sync_again: bool,
    seen_online_only: (HashSet<String>, VecDeque<String>),
    /// Synced ranges changed since the last flush. Ranges only ever under-report if a crash
    /// loses them (the messages were written first), which costs a re-pull, never a loss: so
    /// they are written once per [`RANGES_FLUSH`] instead of with every message.
    ranges_cache: HashMap<String, SyncedRanges>,
    ranges_dirty: HashSet<String>,
}

/// How often changed synced ranges are written.
const RANGES_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

fn new_msg_id() -> String {
    format!("{:x}-{:016x}", now_ms(), rand::random::<u64>())
}

fn conv_ref(m: &StoredMessage) -> pb::ConvRef {
    if m.is_group {
        pb::ConvRef {
            conv_type: pb::ConvType::Group as i32,
            target: m.group_id.clone(),
        }
    } else {
        pb::ConvRef {
            conv_type: pb::ConvType::C2c as i32,
            target: m.peer.clone(),
        }
    }
}

fn mailbox(e: MailboxError) -> ApiError {
    ApiError::new(codes::ERR_SDK_INTERNAL, format!("engine actor: {e}"))
}

impl MessageActor {
    /// An actor with no account.
    pub fn new(shared: Shared) -> Self {
        Self {
            shared,
            peers: None,
            acct: None,
            online: None,
            created: HashMap::new(),
            waiters: HashMap::new(),
            in_flight: InFlight::default(),
            transient: HashMap::new(),
            next_order: 1,
            syncing: false,
            sync_again: false,
            seen_online_only: (HashSet::new(), VecDeque::new()),
            ranges_cache: HashMap::new(),
            ranges_dirty: HashSet::new(),
        }
    }

    fn acct(&self) -> Result<&Account> {
        self.acct
            .as_ref()
            .ok_or_else(|| ApiError::new(codes::ERR_SDK_NOT_LOGGED_IN, "not logged in"))
    }

    fn me(&self) -> &str {
        self.acct.as_ref().map_or("", |a| a.user.as_str())
    }

    fn load_at(&self, loc: &[u8]) -> Result<Option<StoredMessage>> {
        let store = &self.acct()?.store;
        match store.get(loc).map_err(db_err)? {
            Some(v) => Ok(Some(decode(loc, &v).map_err(db_err)?)),
            None => Ok(None),
        }
    }

    /// The location key of a message by id.
    fn locate(&self, msg_id: &str) -> Result<Option<Vec<u8>>> {
        self.acct()?
            .store
            .get(&keys::msg_id(msg_id))
            .map_err(db_err)
    }

    fn find(&self, msg_id: &str) -> Result<Option<(Vec<u8>, StoredMessage)>> {
        let Some(loc) = self.locate(msg_id)? else {
            return Ok(None);
        };
        Ok(self.load_at(&loc)?.map(|m| (loc, m)))
    }

    fn ranges(&self, conv: &str) -> Result<SyncedRanges> {
        if let Some(r) = self.ranges_cache.get(conv) {
            return Ok(r.clone());
        }
        let k = keys::ranges(conv);
        match self.acct()?.store.get(&k).map_err(db_err)? {
            Some(v) => decode(&k, &v).map_err(db_err),
            None => Ok(SyncedRanges::default()),
        }
    }

    fn answer(&mut self, msg_id: &str, r: Result<Value>) {
        for (_, tx) in self.waiters.remove(msg_id).unwrap_or_default() {
            let _ = tx.send(r.clone());
        }
    }

    fn add_waiter(&mut self, msg_id: &str) -> oneshot::Receiver<Result<Value>> {
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
    fn sweep_waiters(&mut self) {
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

    fn transmit(&mut self, m: &StoredMessage, ctx: &mut Context<Self>) {
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

    fn on_send_result(
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
            } => {
                if let Err(e) = self.finish_ack(&id, seq, server_time_ms) {
                    self.answer(&id, Err(e));
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

    fn finish_ack(&mut self, id: &str, seq: u64, time_ms: i64) -> Result<()> {
        if let Some(mut m) = self.transient.remove(id) {
            m.status = Status::SendSucc as i32;
            m.time_ms = time_ms;
            let j = codec::to_json(&m, self.me());
            self.answer(id, Ok(j));
            return Ok(());
        }
        let Some(loc) = self.locate(id)? else {
            return Ok(());
        };
        let m = if loc.first() == Some(&keys::table::PENDING) {
            let mut batch = WriteBatch::new();
            let mut ranges = HashMap::new();
            let m = self.promote(&loc, seq, time_ms, &mut batch, &mut ranges)?;
            self.acct()?.store.apply(batch).map_err(db_err)?;
            self.stage_ranges(ranges);
            if let Some(p) = &self.peers {
                p.conv.do_send(MessagesAdded {
                    msgs: vec![m.clone()],
                    live: true,
                });
            }
            m
        } else {
            match self.load_at(&loc)? {
                Some(m) => m,
                None => return Ok(()),
            }
        };
        let j = codec::to_json(&m, self.me());
        self.answer(id, Ok(j));
        Ok(())
    }

    /// Moves a pending message to its `(conversation, seq)` key (or drops it from the store when
    /// the server did not store it: seq 0).
    fn promote(
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
        m.seq = seq;
        m.time_ms = time_ms;
        m.status = Status::SendSucc as i32;
        batch.delete(loc.to_vec());
        batch.delete(keys::outbox(m.local_order));
        if seq == 0 {
            batch.delete(keys::msg_id(&m.msg_id));
            batch.delete(keys::conv_msg_id(&conv, &m.msg_id));
            return Ok(m);
        }
        let key = keys::message(&conv, seq);
        batch.put(key.clone(), prost::Message::encode_to_vec(&m));
        batch.put(keys::msg_id(&m.msg_id), key.clone());
        batch.put(keys::conv_msg_id(&conv, &m.msg_id), key);
        self.range_entry(ranges, &conv)?.insert(seq, seq);
        Ok(m)
    }

    fn range_entry<'a>(
        &self,
        ranges: &'a mut HashMap<String, SyncedRanges>,
        conv: &str,
    ) -> Result<&'a mut SyncedRanges> {
        if !ranges.contains_key(conv) {
            let r = self.ranges(conv)?;
            ranges.insert(conv.to_owned(), r);
        }
        ranges
            .get_mut(conv)
            .ok_or_else(|| ApiError::new(codes::ERR_SDK_INTERNAL, "ranges cache"))
    }

    /// Records ranges that the store now backs (call after the messages' batch is applied).
    fn stage_ranges(&mut self, ranges: HashMap<String, SyncedRanges>) {
        for (conv, r) in ranges {
            self.ranges_dirty.insert(conv.clone());
            self.ranges_cache.insert(conv, r);
        }
    }

    /// Writes the changed ranges.
    fn flush_ranges(&mut self) {
        if self.ranges_dirty.is_empty() {
            return;
        }
        let Some(acct) = &self.acct else {
            self.ranges_dirty.clear();
            return;
        };
        let mut b = WriteBatch::new();
        for conv in self.ranges_dirty.drain() {
            if let Some(r) = self.ranges_cache.get(&conv) {
                b.put(keys::ranges(&conv), prost::Message::encode_to_vec(r));
            }
        }
        if let Err(e) = acct.store.apply(b) {
            tracing::warn!("writing synced ranges: {e}");
        }
        if self.ranges_cache.len() > 4096 {
            self.ranges_cache.clear();
        }
    }

    fn fail(&mut self, id: &str, _e: &ApiError) -> Result<()> {
        if self.transient.remove(id).is_some() {
            return Ok(());
        }
        if let Some((loc, mut m)) = self.find(id)?
            && loc.first() == Some(&keys::table::PENDING)
        {
            m.status = Status::SendFail as i32;
            let mut b = WriteBatch::new();
            b.put(loc, prost::Message::encode_to_vec(&m));
            b.delete(keys::outbox(m.local_order));
            self.acct()?.store.apply(b).map_err(db_err)?;
        }
        Ok(())
    }

    /// Takes received messages into the store. `live`: from a push or a catch-up pull (new
    /// inserts are announced); otherwise from history (never announced). `covered`: a seq range
    /// the caller knows is now complete.
    fn ingest(
        &mut self,
        msgs: &[pb::Message],
        live: bool,
        covered: Option<(String, u64, u64)>,
    ) -> Result<Vec<StoredMessage>> {
        let me = self.acct()?.user.clone();
        let mut batch = WriteBatch::new();
        let mut ranges: HashMap<String, SyncedRanges> = HashMap::new();
        let mut fresh = Vec::new();
        let mut changed = Vec::new();
        let mut acked = Vec::new();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        for w in msgs {
            if w.online_user_only || w.seq == 0 {
                if live && w.sender != me && self.remember_online_only(&w.msg_id) {
                    fresh.push(codec::from_wire(w, &me));
                }
                continue;
            }
            let m = codec::from_wire(w, &me);
            let conv = m.conversation_id();
            if !seen.insert((conv.clone(), m.msg_id.clone())) {
                continue;
            }
            let idx = keys::conv_msg_id(&conv, &m.msg_id);
            match self.acct()?.store.get(&idx).map_err(db_err)? {
                Some(loc) if loc.first() == Some(&keys::table::PENDING) => {
                    // Our own outbox message, stored by the server before we saw its ack.
                    let p = self.promote(&loc, m.seq, m.time_ms, &mut batch, &mut ranges)?;
                    acked.push(p.clone());
                    changed.push(p);
                }
                Some(_) => {}
                None => {
                    let key = keys::message(&conv, m.seq);
                    batch.put(key.clone(), prost::Message::encode_to_vec(&m));
                    batch.put(idx, key.clone());
                    batch.put(keys::msg_id(&m.msg_id), key);
                    self.range_entry(&mut ranges, &conv)?.insert(m.seq, m.seq);
                    changed.push(m.clone());
                    if live {
                        fresh.push(m);
                    }
                }
            }
        }
        if let Some((conv, from, to)) = covered
            && from > 0
            && to >= from
        {
            self.range_entry(&mut ranges, &conv)?.insert(from, to);
        }
        if !batch.is_empty() {
            self.acct()?.store.apply(batch).map_err(db_err)?;
        }
        self.stage_ranges(ranges);
        for m in &acked {
            let j = codec::to_json(m, &me);
            self.answer(&m.msg_id, Ok(j));
        }
        if let Some(p) = &self.peers {
            if !changed.is_empty() {
                p.conv.do_send(MessagesAdded {
                    msgs: changed.clone(),
                    live,
                });
            }
            let profiles: Vec<(String, String, String)> = changed
                .iter()
                .filter(|m| m.sender != me && !m.sender.is_empty())
                .map(|m| (m.sender.clone(), m.nick_name.clone(), m.face_url.clone()))
                .collect();
            if !profiles.is_empty() {
                p.rel.do_send(SeenProfiles(profiles));
            }
        }
        for m in &fresh {
            self.announce(m, &me);
        }
        Ok(fresh)
    }

    fn remember_online_only(&mut self, id: &str) -> bool {
        let (set, order) = &mut self.seen_online_only;
        if !set.insert(id.to_owned()) {
            return false;
        }
        order.push_back(id.to_owned());
        if order.len() > SEEN_ONLINE_ONLY
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        true
    }

    fn announce(&self, m: &StoredMessage, me: &str) {
        let ev = &self.shared.events;
        if ev.advanced() {
            ev.emit(
                "on_recv_new_message",
                json!({ "message": codec::to_json(m, me) }),
            );
        }
        if ev.simple() && m.elems.len() == 1 && m.sender != me {
            let e = &m.elems[0];
            let mut data = serde_json::Map::new();
            data.insert("msg_id".into(), json!(m.msg_id));
            data.insert("sender".into(), json!(m.sender));
            if m.is_group {
                data.insert("group_id".into(), json!(m.group_id));
            }
            let name = match (e.kind, m.is_group) {
                (elem_kind::TEXT, false) => "on_recv_c2c_text_message",
                (elem_kind::TEXT, true) => "on_recv_group_text_message",
                (elem_kind::CUSTOM, false) => "on_recv_c2c_custom_message",
                (elem_kind::CUSTOM, true) => "on_recv_group_custom_message",
                _ => return,
            };
            if e.kind == elem_kind::TEXT {
                data.insert("text".into(), json!(e.text));
            } else {
                match std::str::from_utf8(&e.data) {
                    Ok(s) => data.insert("data".into(), json!(s)),
                    Err(_) => {
                        use base64::Engine as _;
                        data.insert(
                            "data_base64".into(),
                            json!(base64::engine::general_purpose::STANDARD.encode(&e.data)),
                        )
                    }
                };
            }
            ev.emit(name, Value::Object(data));
        }
    }

    fn start_sync(&mut self, ctx: &mut Context<Self>) {
        if self.syncing {
            self.sync_again = true;
            return;
        }
        let Some(peers) = self.peers.clone() else {
            return;
        };
        self.syncing = true;
        self.sync_again = false;
        self.shared.events.emit("on_sync_server_start", json!({}));
        let me = ctx.address();
        actix::spawn(async move {
            let r = run_sync(me.clone(), peers.conn, peers.conv).await;
            me.do_send(SyncDone(r));
        });
    }

    fn flush_outbox(&mut self, ctx: &mut Context<Self>) -> Result<()> {
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

    fn persist_new(&mut self, m: &StoredMessage) -> Result<()> {
        let conv = m.conversation_id();
        let key = keys::pending(&conv, m.local_order);
        let mut b = WriteBatch::new();
        b.put(key.clone(), prost::Message::encode_to_vec(m));
        b.put(keys::msg_id(&m.msg_id), key.clone());
        b.put(keys::conv_msg_id(&conv, &m.msg_id), key.clone());
        b.put(keys::outbox(m.local_order), key);
        self.acct()?.store.apply(b).map_err(db_err)
    }

    fn scan_filtered(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        reverse: bool,
        count: usize,
        keep: &dyn Fn(&StoredMessage) -> bool,
        out: &mut Vec<StoredMessage>,
    ) -> Result<()> {
        let store = &self.acct()?.store;
        let (mut lo, mut hi) = (start, end);
        while out.len() < count {
            let chunk = store
                .scan(&lo, &hi, reverse, (count - out.len()).max(16))
                .map_err(db_err)?;
            let Some((last_key, _)) = chunk.last() else {
                break;
            };
            let last_key = last_key.clone();
            let n = chunk.len();
            for (k, v) in chunk {
                let m: StoredMessage = decode(&k, &v).map_err(db_err)?;
                if keep(&m) && out.len() < count {
                    out.push(m);
                }
            }
            if n < 16 {
                break;
            }
            if reverse {
                hi = last_key;
            } else {
                lo = last_key;
                lo.push(0);
            }
        }
        Ok(())
    }

    fn local_page(&self, q: &HistoryQuery, anchor: Anchor) -> Result<Vec<StoredMessage>> {
        let conv = &q.conversation_id;
        let types = q.message_types.clone();
        let (t0, t1) = (q.time_begin_ms, q.time_end_ms);
        let keep = move |m: &StoredMessage| {
            codec::matches_types(m, &types)
                && (t0 == 0 || m.time_ms >= t0)
                && (t1 == 0 || m.time_ms <= t1)
        };
        let (mlo, mhi) = keys::conv_bounds(keys::table::MESSAGE, conv);
        let (plo, phi) = keys::conv_bounds(keys::table::PENDING, conv);
        let mut out = Vec::new();
        if q.older {
            match anchor {
                Anchor::Seq(s) => {
                    self.scan_filtered(mlo, keys::message(conv, s), true, q.count, &keep, &mut out)?
                }
                Anchor::Pending(o) => {
                    self.scan_filtered(
                        plo,
                        keys::pending(conv, o),
                        true,
                        q.count,
                        &keep,
                        &mut out,
                    )?;
                    self.scan_filtered(mlo, mhi, true, q.count, &keep, &mut out)?;
                }
                Anchor::None => {
                    self.scan_filtered(plo, phi, true, q.count, &keep, &mut out)?;
                    self.scan_filtered(mlo, mhi, true, q.count, &keep, &mut out)?;
                }
            }
        } else {
            match anchor {
                Anchor::Seq(s) => {
                    self.scan_filtered(
                        keys::message(conv, s.saturating_add(1)),
                        mhi,
                        false,
                        q.count,
                        &keep,
                        &mut out,
                    )?;
                    self.scan_filtered(plo, phi, false, q.count, &keep, &mut out)?;
                }
                Anchor::Pending(o) => self.scan_filtered(
                    keys::pending(conv, o.saturating_add(1)),
                    phi,
                    false,
                    q.count,
                    &keep,
                    &mut out,
                )?,
                Anchor::None => {
                    self.scan_filtered(mlo, mhi, false, q.count, &keep, &mut out)?;
                    self.scan_filtered(plo, phi, false, q.count, &keep, &mut out)?;
                }
            }
        }
        Ok(out)
    }

    fn anchor(&self, q: &HistoryQuery) -> Result<Anchor> {
        if q.last_msg_seq > 0 {
            return Ok(Anchor::Seq(q.last_msg_seq));
        }
        let Some(id) = &q.last_msg_id else {
            return Ok(Anchor::None);
        };
        match self.find(id)? {
            Some((loc, m)) if loc.first() == Some(&keys::table::PENDING) => {
                Ok(Anchor::Pending(m.local_order))
            }
            Some((_, m)) => Ok(Anchor::Seq(m.seq)),
            None => Err(ApiError::invalid_param(format!(
                "last_msg_id {id} not found"
            ))),
        }
    }

    fn history_json(&self, list: Vec<StoredMessage>) -> Value {
        let me = self.me();
        json!({"message_list": list.iter().map(|m| codec::to_json(m, me)).collect::<Vec<_>>()})
    }
}

#[derive(Debug, Clone, Copy)]
enum Anchor {
    None,
    Seq(u64),
    Pending(u64),
}

async fn run_sync(
    me: Addr<MessageActor>,
    conn: Addr<ConnectionActor>,
    conversations: Addr<super::conversation::ConversationActor>,
) -> Result<()> {
    loop {
        let (cursor, known_groups) = me.send(SyncBegin).await.map_err(mailbox)??;
        let resp = conn
            .send(Rpc(request::Kind::Sync(pb::SyncReq {
                cursor,
                limit: SYNC_PAGE,
                known_groups,
            })))
            .await
            .map_err(mailbox)??;
        let Some(response::Kind::Sync(page)) = resp.kind else {
            return Err(ApiError::new(
                codes::ERR_PARSE_RESPONSE,
                "sync answer without SyncResp",
            ));
        };
        let (next, has_more) = (page.cursor, page.has_more);
        let pulls = me.send(SyncPage(page)).await.map_err(mailbox)??;
        for (conv, pull) in pulls {
            let resp = conn
                .send(Rpc(request::Kind::PullMessages(pb::PullMessagesReq {
                    conv: Some(conv.clone()),
                    from_seq: pull.from,
                    to_seq: pull.to,
                    limit: u32::try_from(pull.limit).unwrap_or(u32::MAX),
                    newest_first: true,
                    from_time_ms: 0,
                    to_time_ms: 0,
                })))
                .await
                .map_err(mailbox)??;
            let Some(response::Kind::PullMessages(p)) = resp.kind else {
                return Err(ApiError::new(codes::ERR_PARSE_RESPONSE, "pull answer"));
            };
            me.send(Pulled {
                conv,
                resp: p,
                live: true,
            })
            .await
            .map_err(mailbox)??;
        }
        // The page's conversation states and messages are written before the cursor moves past
        // them (the conversation actor has them queued before this barrier).
        conversations
            .send(super::conversation::Flush)
            .await
            .map_err(mailbox)?;
        me.send(SyncCommit(next)).await.map_err(mailbox)??;
        if !has_more {
            return Ok(());
        }
    }
}

impl Actor for MessageActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(WAITER_SWEEP, |act, _| act.sweep_waiters());
        ctx.run_interval(RANGES_FLUSH, |act, _| act.flush_ranges());
    }
}

/// Tells the actor its peers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPeers(pub Peers);

impl Handler<SetPeers> for MessageActor {
    type Result = ();
    fn handle(&mut self, msg: SetPeers, _: &mut Context<Self>) {
        self.peers = Some(msg.0);
    }
}

impl Handler<OpenAccount> for MessageActor {
    type Result = ();
    fn handle(&mut self, msg: OpenAccount, _: &mut Context<Self>) {
        self.flush_ranges();
        self.ranges_cache.clear();
        let order = msg
            .0
            .store
            .get(&keys::meta(keys::META_LOCAL_ORDER))
            .ok()
            .flatten()
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        // The counter is persisted at close only; after a crash, the clock (µs) keeps new orders
        // above every order handed out before (one per send, far below a million per second).
        let clock_us = u64::try_from(now_ms()).unwrap_or(0).saturating_mul(1000);
        self.next_order = (order + 1).max(clock_us);
        self.acct = Some(msg.0);
        self.online = None;
        self.in_flight.reset();
        self.syncing = false;
        self.sync_again = false;
    }
}

impl Handler<CloseAccount> for MessageActor {
    type Result = ();
    fn handle(&mut self, _: CloseAccount, _: &mut Context<Self>) {
        for (id, list) in self.waiters.drain() {
            for (_, tx) in list {
                let _ = tx.send(Err(ApiError::new(
                    codes::ERR_INTERRUPTED,
                    format!("logged out before {id} was acked; it stays in the outbox"),
                )));
            }
        }
        self.flush_ranges();
        self.ranges_cache.clear();
        if let Some(a) = &self.acct {
            let mut b = WriteBatch::new();
            b.put(
                keys::meta(keys::META_LOCAL_ORDER),
                self.next_order.to_be_bytes().to_vec(),
            );
            if let Err(e) = a.store.apply(b) {
                tracing::warn!("writing the local order: {e}");
            }
        }
        if let Some(a) = self.acct.take()
            && let Err(e) = a.store.flush()
        {
            tracing::warn!("store flush at close: {e}");
        }
        self.online = None;
        self.in_flight.reset();
        self.transient.clear();
        self.created.clear();
    }
}

impl Handler<Online> for MessageActor {
    type Result = ();
    fn handle(&mut self, msg: Online, ctx: &mut Context<Self>) {
        if self.acct.is_none() {
            return;
        }
        self.online = Some(msg.0);
        self.in_flight.reset();
        if let Err(e) = self.flush_outbox(ctx) {
            tracing::warn!("outbox flush: {e}");
        }
        self.start_sync(ctx);
    }
}

impl Handler<Offline> for MessageActor {
    type Result = ();
    fn handle(&mut self, _: Offline, _: &mut Context<Self>) {
        self.online = None;
        self.in_flight.reset();
    }
}

/// A message push from the server.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Pushed(pub pb::MessagePush);

impl Handler<Pushed> for MessageActor {
    type Result = ();
    fn handle(&mut self, msg: Pushed, ctx: &mut Context<Self>) {
        let Some(w) = msg.0.message else {
            return;
        };
        if self.acct.is_none() {
            return;
        }
        let me = self.me().to_owned();
        let m = codec::from_wire(&w, &me);
        let conv = m.conversation_id();
        // A seq beyond local max + 1 leaves a gap: pull it (announced like the push).
        let prev_max = self.ranges(&conv).map(|r| r.max()).unwrap_or(0);
        if let Err(e) = self.ingest(std::slice::from_ref(&w), true, None) {
            tracing::warn!("ingest push: {e}");
            return;
        }
        if !w.online_user_only && w.seq > 0 && prev_max > 0 && w.seq > prev_max + 1 {
            let Some(peers) = self.peers.clone() else {
                return;
            };
            let conv_ref = conv_ref(&m);
            let me_addr = ctx.address();
            let (from, to) = (prev_max + 1, w.seq - 1);
            actix::spawn(async move {
                let mut hi = to;
                // Bounded: at most a few pages eagerly; history fills the rest on demand.
                for _ in 0..5 {
                    if hi < from {
                        break;
                    }
                    let r = peers
                        .conn
                        .send(Rpc(request::Kind::PullMessages(pb::PullMessagesReq {
                            conv: Some(conv_ref.clone()),
                            from_seq: from,
                            to_seq: hi,
                            limit: 100,
                            newest_first: true,
                            from_time_ms: 0,
                            to_time_ms: 0,
                        })))
                        .await;
                    let Ok(Ok(resp)) = r else { break };
                    let Some(response::Kind::PullMessages(p)) = resp.kind else {
                        break;
                    };
                    let next = p.covered_from;
                    let _ = me_addr
                        .send(Pulled {
                            conv: conv_ref.clone(),
                            resp: p,
                            live: true,
                        })
                        .await;
                    if next <= from {
                        break;
                    }
                    hi = next - 1;
                }
            });
        }
    }
}

/// Start of one sync page: answers `(cursor, known_groups)`.
#[derive(Message)]
#[rtype(result = "Result<(u64, Vec<pb::ConvSeq>)>")]
struct SyncBegin;

impl Handler<SyncBegin> for MessageActor {
    type Result = Result<(u64, Vec<pb::ConvSeq>)>;
    fn handle(&mut self, _: SyncBegin, _: &mut Context<Self>) -> Self::Result {
        let store = self.acct()?.store.clone();
        let cursor = store
            .get(&keys::meta(keys::META_SYNC_CURSOR))
            .map_err(db_err)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        let (lo, hi) = keys::table_bounds(keys::table::GROUP);
        let mut known = Vec::new();
        for (k, _) in store.scan(&lo, &hi, false, usize::MAX).map_err(db_err)? {
            let gid = String::from_utf8_lossy(&k[1..]).into_owned();
            let max_seq = self.ranges(&format!("group_{gid}"))?.max();
            known.push(pb::ConvSeq {
                conv: Some(pb::ConvRef {
                    conv_type: pb::ConvType::Group as i32,
                    target: gid,
                }),
                max_seq,
            });
        }
        Ok((cursor, known))
    }
}

/// One sync page: applied to conversations; answers the pulls to make.
#[derive(Message)]
#[rtype(result = "Result<Vec<(pb::ConvRef, Pull)>>")]
struct SyncPage(pb::SyncResp);

impl Handler<SyncPage> for MessageActor {
    type Result = Result<Vec<(pb::ConvRef, Pull)>>;
    fn handle(&mut self, msg: SyncPage, _: &mut Context<Self>) -> Self::Result {
        let page = msg.0;
        let mut pulls = Vec::new();
        for s in &page.conversations {
            let Some(c) = &s.conv else { continue };
            let ranges = self.ranges(&ids::conversation_id(c))?;
            for p in sync_plan::plan_catch_up(
                &ranges,
                s.min_seq,
                s.max_seq,
                sync_plan::EAGER_PULL_PER_CONVERSATION,
            ) {
                pulls.push((c.clone(), p));
            }
        }
        if let Some(p) = &self.peers {
            if !page.joined_groups.is_empty() || page.cursor > 0 {
                p.group.do_send(SetJoined(page.joined_groups.clone()));
            }
            p.conv.do_send(ApplyStates(page.conversations));
        }
        Ok(pulls)
    }
}

/// Messages pulled from the server.
#[derive(Message)]
#[rtype(result = "Result<usize>")]
struct Pulled {
    conv: pb::ConvRef,
    resp: pb::PullMessagesResp,
    live: bool,
}

impl Handler<Pulled> for MessageActor {
    type Result = Result<usize>;
    fn handle(&mut self, msg: Pulled, _: &mut Context<Self>) -> Self::Result {
        let conv = ids::conversation_id(&msg.conv);
        let covered = Some((conv, msg.resp.covered_from, msg.resp.covered_to));
        self.ingest(&msg.resp.messages, msg.live, covered)
            .map(|v| v.len())
    }
}

/// The page is applied: persist the cursor.
#[derive(Message)]
#[rtype(result = "Result<()>")]
struct SyncCommit(u64);

impl Handler<SyncCommit> for MessageActor {
    type Result = Result<()>;
    fn handle(&mut self, msg: SyncCommit, _: &mut Context<Self>) -> Self::Result {
        let mut b = WriteBatch::new();
        b.put(
            keys::meta(keys::META_SYNC_CURSOR),
            msg.0.to_be_bytes().to_vec(),
        );
        self.acct()?.store.apply(b).map_err(db_err)
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct SyncDone(Result<()>);

impl Handler<SyncDone> for MessageActor {
    type Result = ();
    fn handle(&mut self, msg: SyncDone, ctx: &mut Context<Self>) {
        self.syncing = false;
        match msg.0 {
            Ok(()) => self.shared.events.emit("on_sync_server_finish", json!({})),
            Err(e) => {
                tracing::info!("sync failed: {e}");
                self.shared.events.emit("on_sync_server_failed", json!({}));
            }
        }
        if self.sync_again && self.online.is_some() {
            self.start_sync(ctx);
        }
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
    type Result = ResponseFuture<Result<Value>>;
    fn handle(&mut self, msg: Send, ctx: &mut Context<Self>) -> Self::Result {
        match self.prepare_send(msg.0, ctx) {
            Ok(rx) => Box::pin(async move {
                rx.await
                    .unwrap_or_else(|_| Err(ApiError::new(codes::ERR_INTERRUPTED, "interrupted")))
            }),
            Err(e) => Box::pin(async move { Err(e) }),
        }
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
        if m.msg_id.is_empty() {
            m.msg_id = new_msg_id();
        }
        if let Some((_, existing)) = self.find(&m.msg_id)? {
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
            if m.status == Status::SendFail as i32 {
                m.status = Status::Sending as i32;
                let mut b = WriteBatch::new();
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

/// `get_history_message_list`.
#[derive(Message, Clone)]
#[rtype(result = "Result<Value>")]
pub struct HistoryQuery {
    /// Ask the server for what the store lacks.
    pub cloud: bool,
    /// Older (newest first) or newer (oldest first).
    pub older: bool,
    /// The conversation.
    pub conv: pb::ConvRef,
    /// Its id.
    pub conversation_id: String,
    /// Page size.
    pub count: usize,
    /// Anchor message.
    pub last_msg_id: Option<String>,
    /// Anchor seq (wins over `last_msg_id`).
    pub last_msg_seq: u64,
    /// Time window start (ms, 0 = unbounded).
    pub time_begin_ms: i64,
    /// Time window end (ms, 0 = unbounded).
    pub time_end_ms: i64,
    /// Elem type filter.
    pub message_types: Vec<String>,
}

impl Handler<HistoryQuery> for MessageActor {
    type Result = ResponseActFuture<Self, Result<Value>>;
    fn handle(&mut self, q: HistoryQuery, _: &mut Context<Self>) -> Self::Result {
        let ready = |r: Result<Value>| -> Self::Result { Box::pin(actix::fut::ready(r)) };
        if let Err(e) = self.acct() {
            return ready(Err(e));
        }
        let anchor = match self.anchor(&q) {
            Ok(a) => a,
            Err(e) => return ready(Err(e)),
        };
        let filtered = !q.message_types.is_empty() || q.time_begin_ms > 0 || q.time_end_ms > 0;
        let need_cloud = q.cloud
            && match (q.older, anchor) {
                (true, Anchor::Seq(s)) => {
                    s > 1
                        && (filtered
                            || !self.ranges(&q.conversation_id).is_ok_and(|r| {
                                r.covers(s.saturating_sub(q.count as u64).max(1), s - 1)
                            }))
                }
                _ => true,
            };
        let Some(peers) = self
            .peers
            .clone()
            .filter(|_| need_cloud && self.online.is_some())
        else {
            let r = self.local_page(&q, anchor).map(|l| self.history_json(l));
            return ready(r);
        };
        let (from_seq, to_seq, newest_first) = match (q.older, anchor) {
            (true, Anchor::Seq(s)) => (1, s - 1, true),
            (true, _) => (1, 0, true),
            (false, Anchor::Seq(s)) => (s + 1, 0, false),
            (false, _) => (1, 0, false),
        };
        let req = Rpc(request::Kind::PullMessages(pb::PullMessagesReq {
            conv: Some(q.conv.clone()),
            from_seq,
            to_seq,
            limit: u32::try_from(q.count).unwrap_or(u32::MAX),
            newest_first,
            from_time_ms: q.time_begin_ms,
            to_time_ms: q.time_end_ms,
        }));
        let fut = peers.conn.send(req);
        Box::pin(fut.into_actor(self).map(move |res, act, _| {
            let resp = res.map_err(mailbox).and_then(|r| r)?;
            if let Some(response::Kind::PullMessages(p)) = resp.kind {
                let covered = Some((q.conversation_id.clone(), p.covered_from, p.covered_to));
                act.ingest(&p.messages, false, covered)?;
            }
            act.local_page(&q, anchor).map(|l| act.history_json(l))
        }))
    }
}

/// `find_messages`.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct Find(pub Vec<String>);

impl Handler<Find> for MessageActor {
    type Result = Result<Value>;
    fn handle(&mut self, msg: Find, _: &mut Context<Self>) -> Self::Result {
        let me = self.acct()?.user.clone();
        let mut list = Vec::new();
        for id in &msg.0 {
            if let Some((_, m)) = self.find(id)? {
                list.push(codec::to_json(&m, &me));
            } else if let Some(m) = self.created.get(id).or_else(|| self.transient.get(id)) {
                list.push(codec::to_json(m, &me));
            }
        }
        Ok(json!({ "message_list": list }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::events::EventBus;
    use crate::store::MemoryStore;
    use crate::{EngineConfig, Event};

    fn wire(seq: u64) -> pb::Message {
        pb::Message {
            msg_id: format!("m{seq}"),
            sender: "alice".into(),
            conv_type: pb::ConvType::C2c as i32,
            receiver: "bob".into(),
            seq,
            server_time_ms: 1_700_000_000_000 + seq as i64,
            elems: vec![pb::Elem {
                content: Some(pb::elem::Content::Text(pb::TextElem {
                    text: format!("t{seq}"),
                })),
            }],
            ..Default::default()
        }
    }

    fn pulled(seqs: &[u64], live: bool) -> Pulled {
        Pulled {
            conv: pb::ConvRef {
                conv_type: pb::ConvType::C2c as i32,
                target: "alice".into(),
            },
            resp: pb::PullMessagesResp {
                messages: seqs.iter().map(|&s| wire(s)).collect(),
                covered_from: seqs[0],
                covered_to: seqs[seqs.len() - 1],
                ..Default::default()
            },
            live,
        }
    }

    /// The receive pipeline on an in-memory store: every message is announced once, whatever
    /// mix of catch-up pulls, pushes and history pulls brings it; history is silent.
    #[test]
    fn receive_pipeline_announces_each_message_exactly_once() {
        let sys = actix::System::new();
        let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
        let (list, seqs) = sys.block_on({
            let seen = seen.clone();
            async move {
                let events = EventBus::start().unwrap();
                events.set_handler(Some(Arc::new(move |e: Event| {
                    seen.lock().unwrap().push(e);
                })));
                let config: EngineConfig = serde_json::from_value(json!({
                    "sdk_app_id": 1, "server_url": "ws://127.0.0.1:1/ws", "data_dir": "/nonexistent"
                }))
                .unwrap();
                let shared = Shared {
                    config: Arc::new(config),
                    events,
                };
                let addr = MessageActor::new(shared).start();
                let account = Account {
                    user: "bob".into(),
                    store: Arc::new(MemoryStore::new()),
                };
                addr.send(OpenAccount(account)).await.unwrap();
                assert_eq!(
                    addr.send(pulled(&[1, 2, 3], true)).await.unwrap().unwrap(),
                    3
                );
                addr.send(Pushed(pb::MessagePush {
                    message: Some(wire(3)),
                    conv: None,
                }))
                .await
                .unwrap();
                assert_eq!(
                    addr.send(pulled(&[2, 3, 4], false)).await.unwrap().unwrap(),
                    0
                );
                assert_eq!(addr.send(pulled(&[1, 2], true)).await.unwrap().unwrap(), 0);
                addr.send(Pushed(pb::MessagePush {
                    message: Some(wire(5)),
                    conv: None,
                }))
                .await
                .unwrap();
                let q = HistoryQuery {
                    cloud: false,
                    older: true,
                    conv: pb::ConvRef {
                        conv_type: pb::ConvType::C2c as i32,
                        target: "alice".into(),
                    },
                    conversation_id: "c2c_alice".into(),
                    count: 10,
                    last_msg_id: None,
                    last_msg_seq: 0,
                    time_begin_ms: 0,
                    time_end_ms: 0,
                    message_types: Vec::new(),
                };
                let h = addr.send(q).await.unwrap().unwrap();
                let ranges = addr.send(SyncBegin).await.unwrap().unwrap();
                (h, ranges)
            }
        });
        let seqs_in_history: Vec<u64> = list["message_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs_in_history, [5, 4, 3, 2, 1]);
        assert_eq!(seqs, (0, Vec::new()));
        // Events are delivered on the event thread: wait (bounded) for the last one.
        for _ in 0..100 {
            if seen.lock().unwrap().len() >= 4 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(50));
        let announced: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.name == "on_recv_new_message")
            .map(|e| e.data["message"]["msg_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(announced, ["m1", "m2", "m3", "m5"]);
    }
}
