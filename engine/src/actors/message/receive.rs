//! The receive pipeline: ingest pushed and pulled messages (dedupe by the unique
//! `(conversation, msg_id)` index, synced ranges, push gap fill) and announce new ones once.

use std::collections::{HashMap, HashSet};

use actix::prelude::*;
use chime_proto::pb::{self, request, response};
use serde_json::{Value, json};

use super::sync::Pulled;
use super::{MessageActor, conv_ref};
use crate::Result;
use crate::actors::connection::Rpc;
use crate::actors::conversation::MessagesAdded;
use crate::actors::db_err;
use crate::actors::relationship::SeenProfiles;
use crate::codec;
use crate::model::{StoredMessage, SyncedRanges, elem_kind};
use crate::store::{WriteBatch, keys};

/// Online-only message ids remembered for dedupe.
pub(crate) const SEEN_ONLINE_ONLY: usize = 4096;

impl MessageActor {
    /// Takes received messages into the store. `live`: from a push or a catch-up pull (new
    /// inserts are announced); otherwise from history (never announced). `covered`: a seq range
    /// the caller knows is now complete.
    pub(crate) fn ingest(
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
                    crate::search_index::stage_add(&mut batch, &key, &m);
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

    pub(crate) fn remember_online_only(&mut self, id: &str) -> bool {
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

    pub(crate) fn announce(&self, m: &StoredMessage, me: &str) {
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
        // Received text goes through the content filters first (`crate::filter`); the actor
        // waits for them so that messages are still taken in in the order they came.
        if let Some(screening) = crate::filter::screen_incoming(self, std::slice::from_ref(&w)) {
            ctx.wait(screening.into_actor(self).map(|mut screened, act, ctx| {
                if let Some(w) = screened.pop() {
                    act.take_pushed(w, ctx);
                }
            }));
            return;
        }
        self.take_pushed(w, ctx);
    }
}

impl MessageActor {
    /// Takes in a pushed message (after the content filters), pulling the gap before it.
    fn take_pushed(&mut self, w: pb::Message, ctx: &mut Context<Self>) {
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
