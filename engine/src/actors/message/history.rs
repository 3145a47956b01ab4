//! History pages (local and cloud, both directions, time and type filters, gap fill through
//! synced ranges) and `find_messages`.

use actix::prelude::*;
use chime_proto::pb::{self, request, response};
use serde_json::{Value, json};

use super::{MessageActor, mailbox};
use crate::actors::connection::Rpc;
use crate::actors::{db_err, decode};
use crate::codec;
use crate::model::StoredMessage;
use crate::store::keys;
use crate::{ApiError, Result};

impl MessageActor {
    pub(crate) fn scan_filtered(
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

    pub(crate) fn local_page(
        &self,
        q: &HistoryQuery,
        anchor: Anchor,
    ) -> Result<Vec<StoredMessage>> {
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

    pub(crate) fn anchor(&self, q: &HistoryQuery) -> Result<Anchor> {
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

    pub(crate) fn history_json(&self, list: Vec<StoredMessage>) -> Value {
        let me = self.me();
        let mut out: Vec<Value> = list.iter().map(|m| codec::to_json(m, me)).collect();
        if let Some(a) = &self.acct {
            crate::actors::conversation::set_read_flags(a.store.as_ref(), me, &list, &mut out);
        }
        json!({ "message_list": out })
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Anchor {
    None,
    Seq(u64),
    Pending(u64),
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
        Box::pin(fut.into_actor(self).then(move |res, act, _| {
            let pulled = match res.map_err(mailbox).and_then(|r| r) {
                Ok(resp) => match resp.kind {
                    Some(response::Kind::PullMessages(p)) => Some(p),
                    _ => None,
                },
                Err(e) => return futures_util::future::Either::Left(fut::ready(Err(e))),
            };
            // Received text goes through the content filters first (`crate::filter`).
            let screening = pulled
                .as_ref()
                .and_then(|p| crate::filter::screen_incoming(act, &p.messages));
            let screened = async move {
                match (pulled, screening) {
                    (Some(mut p), Some(screening)) => {
                        p.messages = screening.await;
                        Some(p)
                    }
                    (pulled, _) => pulled,
                }
            };
            futures_util::future::Either::Right(screened.into_actor(act).map(
                move |pulled, act, _| {
                    if let Some(p) = pulled {
                        let covered =
                            Some((q.conversation_id.clone(), p.covered_from, p.covered_to));
                        act.ingest(&p.messages, false, covered)?;
                    }
                    act.local_page(&q, anchor).map(|l| act.history_json(l))
                },
            ))
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
