//! The receive pipeline: ingest pushed and pulled messages (dedupe by the unique
//! `(conversation, msg_id)` index, synced ranges, push gap fill) and announce new ones once.

use std::collections::{HashMap, HashSet};

use actix::prelude::*;
use chime_proto::ids;
use chime_proto::pb::{self, request, response};
use serde_json::{Value, json};

use super::MessageActor;
use super::sync::Pulled;
use crate::Result;
use crate::actors::connection::Rpc;
use crate::actors::conversation::{ChangesApplied, MessagesAdded};
use crate::actors::db_err;
use crate::actors::relationship::SeenProfiles;
use crate::codec;
use crate::model::{StoredMessage, SyncedRanges, elem_kind};
use crate::store::{WriteBatch, keys};

/// Online-only message ids remembered for dedupe.
pub(crate) const SEEN_ONLINE_ONLY: usize = 4096;

impl MessageActor {
    /// Takes received messages into the store. `live`: from a push or a catch-up pull (new
    /// inserts are announced, and new group tips handed to the GroupActor for their listener
    /// events); otherwise from history (never announced). `covered`: a seq range the caller
    /// knows is now complete.
    pub(crate) fn ingest(
        &mut self,
        msgs: &[pb::Message],
        live: bool,
        covered: Option<(String, u64, u64)>,
    ) -> Result<Vec<StoredMessage>> {
        self.ingest_with(msgs, live, covered, true)
    }

    /// [`Self::ingest`]; `hand_tips`: whether new live group tips go to the GroupActor here
    /// (pushed ones the connection has handed over already; the GroupActor would drop a second
    /// hand-over of a msg_id anyway).
    fn ingest_with(
        &mut self,
        msgs: &[pb::Message],
        live: bool,
        covered: Option<(String, u64, u64)>,
        hand_tips: bool,
    ) -> Result<Vec<StoredMessage>> {
        let me = self.acct()?.user.clone();
        let mut batch = WriteBatch::new();
        let mut ranges: HashMap<String, SyncedRanges> = HashMap::new();
        let mut fresh = Vec::new();
        let mut changed = Vec::new();
        let mut acked = Vec::new();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut tips = Vec::new();
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
            // msg_ids are unique (the server is idempotent on (sender, msg_id) and ids carry 64
            // random bits), so the one `msg_id → location` index is the dedupe key.
            let idx = keys::msg_id(&m.msg_id);
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
                    self.search_queue.stage_add(&mut batch, &key, &m);
                    batch.put(key.clone(), prost::Message::encode_to_vec(&m));
                    batch.put(idx, key);
                    self.range_entry(&mut ranges, &conv)?.insert(m.seq, m.seq);
                    changed.push(m.clone());
                    if live {
                        if hand_tips
                            && w.elems
                                .iter()
                                .any(|e| matches!(e.content, Some(pb::elem::Content::GroupTips(_))))
                        {
                            tips.push(w.clone());
                        }
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
            // Each sender's latest profile of the burst (the actor keeps the last one seen).
            let mut senders: HashSet<&str> = HashSet::new();
            let profiles: Vec<(String, String, String)> = changed
                .iter()
                .rev()
                .filter(|m| m.sender != me && !m.sender.is_empty() && senders.insert(&m.sender))
                .map(|m| (m.sender.clone(), m.nick_name.clone(), m.face_url.clone()))
                .collect();
            if !changed.is_empty() {
                p.conv.do_send(MessagesAdded {
                    msgs: changed,
                    live,
                });
            }
            if !profiles.is_empty() {
                p.rel.do_send(SeenProfiles(profiles));
            }
            // Their listener events (`on_topic_created`, `on_member_enter`, ...): once per
            // msg_id, however the tips arrived.
            for w in tips {
                p.group.do_send(crate::actors::group::GroupTips(w));
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
                crate::events::object("message", codec::to_json(m, me)),
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

/// Most message pushes the connection hands over as one [`PushedBurst`].
pub const PUSH_BURST: usize = 256;

/// Message pushes from the server that reached the connection together, in order: stored in one batch (the
/// connection hands over a burst before any other push or answer that came after it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PushedBurst(pub Vec<pb::MessagePush>);

impl Handler<PushedBurst> for MessageActor {
    type Result = ();
    fn handle(&mut self, msg: PushedBurst, ctx: &mut Context<Self>) {
        let versions: Vec<u64> = msg
            .0
            .iter()
            .map(|p| p.change_version)
            .filter(|v| *v > 0)
            .collect();
        let ws = msg.0.into_iter().filter_map(|p| p.message).collect();
        self.take_pushes(ws, versions, ctx);
    }
}

/// The conversation of a wire message as the local user `me` sees it.
fn wire_conv(w: &pb::Message, me: &str) -> pb::ConvRef {
    let target = if w.conv_type() == pb::ConvType::Group {
        &w.group_id
    } else if w.sender == me {
        &w.receiver
    } else {
        &w.sender
    };
    ids::conv_ref(w.conv_type() == pb::ConvType::Group, target.clone())
}

/// The seq ranges a burst of pushes leaves missing before its messages: per conversation, a
/// message whose seq is beyond the highest known (`known_max`, then the burst's earlier
/// messages) + 1. Nothing is missing in a conversation with nothing known yet.
fn push_gaps(
    ws: &[pb::Message],
    me: &str,
    mut known_max: impl FnMut(&str) -> u64,
) -> Vec<(pb::ConvRef, u64, u64)> {
    let mut maxes: HashMap<String, u64> = HashMap::new();
    let mut gaps = Vec::new();
    for w in ws.iter().filter(|w| !w.online_user_only && w.seq > 0) {
        let conv_ref = wire_conv(w, me);
        let conv = ids::conversation_id(&conv_ref);
        let prev = match maxes.get(&conv) {
            Some(&p) => p,
            None => known_max(&conv),
        };
        if prev > 0 && w.seq > prev + 1 {
            gaps.push((conv_ref, prev + 1, w.seq - 1));
        }
        maxes.insert(conv, prev.max(w.seq));
    }
    gaps
}

impl MessageActor {
    /// Takes in pushed messages. Received text goes through the content filters first
    /// (`crate::filter`); the actor waits for them so that messages are still taken in in the
    /// order they came.
    /// `versions`: the user's change versions the pushes carry ([`ChangesApplied`] once the
    /// messages are stored).
    fn take_pushes(&mut self, ws: Vec<pb::Message>, versions: Vec<u64>, ctx: &mut Context<Self>) {
        if ws.is_empty() || self.acct.is_none() {
            return;
        }
        if let Some(screening) = crate::filter::screen_incoming(self, &ws) {
            ctx.wait(screening.into_actor(self).map(|screened, act, ctx| {
                act.take_pushed(screened, versions, ctx);
            }));
            return;
        }
        self.take_pushed(ws, versions, ctx);
    }

    /// Takes in pushed messages (after the content filters) in one batch, pulling the gaps
    /// before them.
    fn take_pushed(&mut self, ws: Vec<pb::Message>, versions: Vec<u64>, ctx: &mut Context<Self>) {
        if ws.is_empty() || self.acct.is_none() {
            return;
        }
        let me = self.me().to_owned();
        // A seq beyond local max + 1 leaves a gap: pull it (announced like the push).
        let gaps = push_gaps(&ws, &me, |conv| {
            self.ranges(conv).map(|r| r.max()).unwrap_or(0)
        });
        // Pushed group tips: the connection hands them to the GroupActor itself.
        if let Err(e) = self.ingest_with(&ws, true, None, false) {
            tracing::warn!("ingest push: {e}");
            return;
        }
        // Stored (or already here): their changes are applied on this device. Sent after the
        // messages' `MessagesAdded`, so the conversation records go in the same write.
        if !versions.is_empty()
            && let Some(p) = &self.peers
        {
            p.conv.do_send(ChangesApplied(versions));
        }
        for (conv_ref, from, to) in gaps {
            self.pull_gap(conv_ref, from, to, ctx);
        }
    }

    /// Pulls the messages `from..=to` of a conversation, newest first, a few pages at most
    /// (history fills the rest on demand); they are announced like pushes.
    fn pull_gap(&mut self, conv_ref: pb::ConvRef, from: u64, to: u64, ctx: &mut Context<Self>) {
        let Some(peers) = self.peers.clone() else {
            return;
        };
        let me_addr = ctx.address();
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

#[cfg(test)]
mod burst_tests {
    use super::*;

    fn w(sender: &str, receiver: &str, group: &str, seq: u64) -> pb::Message {
        pb::Message {
            msg_id: format!("{sender}-{seq}"),
            sender: sender.into(),
            receiver: receiver.into(),
            group_id: group.into(),
            conv_type: if group.is_empty() {
                pb::ConvType::C2c as i32
            } else {
                pb::ConvType::Group as i32
            },
            seq,
            ..Default::default()
        }
    }

    #[test]
    fn gaps_of_a_burst_are_found_per_conversation_in_order() {
        let burst = [
            w("alice", "me", "", 5), // known max 3: 4 is missing
            w("alice", "me", "", 6), // follows 5
            w("me", "alice", "", 9), // own message from another device, same conversation: 7-8
            w("bob", "", "g1", 2),   // nothing known of g1: no gap
            w("bob", "", "g1", 4),   // 3 missing after the burst's own 2
            w("carol", "me", "", 0), // not stored (no seq): ignored
        ];
        let gaps = push_gaps(&burst, "me", |conv| if conv == "c2c_alice" { 3 } else { 0 });
        let got: Vec<(String, u64, u64)> = gaps
            .into_iter()
            .map(|(c, a, b)| (ids::conversation_id(&c), a, b))
            .collect();
        assert_eq!(
            got,
            [
                ("c2c_alice".to_owned(), 4, 4),
                ("c2c_alice".to_owned(), 7, 8),
                ("group_g1".to_owned(), 3, 3),
            ]
        );
    }
}
