//! `search_local_messages`: keyword (and/or, case-insensitive), sender, elem type, conversation
//! and time filters over the messages in the local store, newest first, with cursor paging.
//!
//! The result follows the seed's `V2TIMMessageSearchResult`: with a `conversation_id`, one item
//! holding a page of that conversation's matches and `total_count` = matching messages; without,
//! one item per conversation (newest match first) holding its `message_count` and — when it has
//! exactly one match — that message, and `total_count` = matching conversations.
//!
//! The matching rule ([`Criteria::matches`]) is pure and unit-tested. Keywords of three
//! characters or more are looked up in the trigram index ([`crate::search_index`]) and only its
//! candidates are read and checked; other searches read the conversation's messages (or all).

use std::collections::HashMap;

use actix::prelude::*;
use serde_json::{Value, json};

use super::MessageActor;
use crate::actors::{db_err, decode};
use crate::codec;
use crate::model::StoredMessage;
use crate::search_index;
use crate::store::keys;
use crate::{ApiError, Result};

/// What a search looks for.
#[derive(Debug, Clone, Default)]
pub struct Criteria {
    /// Keywords (lowercased); empty = any text.
    pub keywords: Vec<String>,
    /// All keywords must match (else any).
    pub match_all: bool,
    /// Senders; empty = anyone.
    pub senders: Vec<String>,
    /// Elem type names (api.md spelling); empty = any.
    pub types: Vec<String>,
    /// Time window in ms, inclusive; 0 = unbounded.
    pub from_ms: i64,
    /// End of the window in ms; 0 = unbounded.
    pub to_ms: i64,
}

impl Criteria {
    /// Whether `m` matches.
    pub fn matches(&self, m: &StoredMessage) -> bool {
        if m.revoked {
            return false;
        }
        if self.from_ms > 0 && m.time_ms < self.from_ms {
            return false;
        }
        if self.to_ms > 0 && m.time_ms > self.to_ms {
            return false;
        }
        if !self.senders.is_empty() && !self.senders.contains(&m.sender) {
            return false;
        }
        if !codec::matches_types(m, &self.types) {
            return false;
        }
        if self.keywords.is_empty() {
            return true;
        }
        let text = search_index::searchable_text(m);
        if self.match_all {
            self.keywords.iter().all(|k| text.contains(k.as_str()))
        } else {
            self.keywords.iter().any(|k| text.contains(k.as_str()))
        }
    }
}

/// `search_local_messages`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Value>")]
pub struct SearchLocal {
    /// Filters.
    pub criteria: Criteria,
    /// One conversation (`c2c_x` / `group_x`), or all.
    pub conversation_id: Option<String>,
    /// Offset into the result (the previous answer's cursor).
    pub offset: usize,
    /// Page size.
    pub count: usize,
}

impl MessageActor {
    /// The periodic tick: flushes the queued messages into the search postings when
    /// [`search_index::Memory::flush_due`] says so.
    pub(crate) fn flush_search_index(&mut self, ctx: &mut Context<Self>) {
        if self.search_queue.flush_due(std::time::Instant::now()) {
            self.flush_search_rest(ctx);
        }
    }

    /// Writes one batch of queued messages into the search postings; while more remain, the
    /// next batch runs after the mailbox has had its turn (so a large catch-up never holds the
    /// actor for more than one batch at a time).
    fn flush_search_rest(&mut self, ctx: &mut Context<Self>) {
        if self.flush_search_batch() {
            ctx.run_later(std::time::Duration::ZERO, |act, ctx| {
                act.flush_search_rest(ctx)
            });
        }
    }

    /// Writes every queued message into the search postings (at logout).
    pub(crate) fn flush_search_index_all(&mut self) {
        while self.flush_search_batch() {}
        self.search_queue.session_ended();
    }

    /// One [`search_index::flush`]; answers whether more may be queued.
    fn flush_search_batch(&mut self) -> bool {
        let Some(acct) = &self.acct else { return false };
        match search_index::flush(acct.store.as_ref(), &self.search_queue) {
            Ok(n) => n >= search_index::FLUSH_BATCH,
            Err(e) => {
                tracing::warn!("search index flush: {e}");
                false
            }
        }
    }

    /// Every stored message of `conv` (or of all conversations) matching `c`, newest first.
    fn search_scan(&self, c: &Criteria, conv: Option<&str>) -> Result<Vec<StoredMessage>> {
        let store = &self.acct()?.store;
        let mut out = Vec::new();
        let tables = [keys::table::MESSAGE, keys::table::PENDING];
        match Self::index_candidates(store.as_ref(), c)? {
            Some(locs) => {
                let bounds: Vec<(Vec<u8>, Vec<u8>)> = match conv {
                    Some(cv) => tables.iter().map(|&t| keys::conv_bounds(t, cv)).collect(),
                    None => tables.iter().map(|&t| keys::table_bounds(t)).collect(),
                };
                for loc in locs {
                    if !bounds.iter().any(|(lo, hi)| *lo <= loc && loc < *hi) {
                        continue;
                    }
                    if let Some(v) = store.get(&loc).map_err(db_err)? {
                        let m: StoredMessage = decode(&loc, &v).map_err(db_err)?;
                        if c.matches(&m) {
                            out.push(m);
                        }
                    }
                }
            }
            None => {
                for t in tables {
                    let (lo, hi) = match conv {
                        Some(cv) => keys::conv_bounds(t, cv),
                        None => keys::table_bounds(t),
                    };
                    for (k, v) in store.scan(&lo, &hi, false, usize::MAX).map_err(db_err)? {
                        let m: StoredMessage = decode(&k, &v).map_err(db_err)?;
                        if c.matches(&m) {
                            out.push(m);
                        }
                    }
                }
            }
        }
        out.sort_by(|a, b| {
            (b.time_ms, b.seq, b.local_order).cmp(&(a.time_ms, a.seq, a.local_order))
        });
        Ok(out)
    }

    /// The locations the keywords narrow the search to, or `None` when they cannot (no keyword,
    /// or an "or" with a keyword too short for the index): then every message is read.
    fn index_candidates(
        store: &dyn crate::store::Store,
        c: &Criteria,
    ) -> Result<Option<std::collections::BTreeSet<Vec<u8>>>> {
        // An "or" with a keyword too short for the index reads every message anyway.
        if !c.match_all
            && c.keywords
                .iter()
                .any(|k| chime_proto::search::grams(k).is_empty())
        {
            return Ok(None);
        }
        let mut acc: Option<std::collections::BTreeSet<Vec<u8>>> = None;
        let keywords: Vec<&str> = c.keywords.iter().map(String::as_str).collect();
        let sets = search_index::candidates_of(store, &keywords).map_err(db_err)?;
        for set in sets {
            let Some(set) = set else {
                if c.match_all {
                    continue;
                }
                return Ok(None);
            };
            acc = Some(match acc {
                None => set,
                Some(a) if c.match_all => a.intersection(&set).cloned().collect(),
                Some(mut a) => {
                    a.extend(set);
                    a
                }
            });
        }
        Ok(acc)
    }
}

fn cursor_after(offset: usize, taken: usize, total: usize) -> String {
    if offset + taken >= total {
        String::new()
    } else {
        (offset + taken).to_string()
    }
}

impl Handler<SearchLocal> for MessageActor {
    type Result = Result<Value>;
    fn handle(&mut self, q: SearchLocal, _: &mut Context<Self>) -> Self::Result {
        if q.criteria.keywords.is_empty()
            && q.criteria.senders.is_empty()
            && q.criteria.types.is_empty()
        {
            return Err(ApiError::invalid_param(
                "keyword_list, sender_user_id_list or message_type_list is required",
            ));
        }
        let me = self.acct()?.user.clone();
        let found = self.search_scan(&q.criteria, q.conversation_id.as_deref())?;
        if let Some(conv) = &q.conversation_id {
            let total = found.len();
            let page: Vec<Value> = found
                .iter()
                .skip(q.offset)
                .take(q.count)
                .map(|m| codec::to_json(m, &me))
                .collect();
            let cursor = cursor_after(q.offset, page.len(), total);
            let items = if total == 0 {
                Vec::new()
            } else {
                vec![json!({
                    "conversation_id": conv,
                    "message_count": total,
                    "message_list": page,
                })]
            };
            return Ok(json!({
                "total_count": total,
                "message_search_result_items": items,
                "cursor": cursor,
            }));
        }
        // Group by conversation, in order of each conversation's newest match.
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Vec<&StoredMessage>> = HashMap::new();
        for m in &found {
            let id = m.conversation_id();
            let g = groups.entry(id.clone()).or_default();
            if g.is_empty() {
                order.push(id);
            }
            g.push(m);
        }
        let total = order.len();
        let items: Vec<Value> = order
            .iter()
            .skip(q.offset)
            .take(q.count)
            .map(|id| {
                let msgs = &groups[id];
                let list: Vec<Value> = if msgs.len() == 1 {
                    vec![codec::to_json(msgs[0], &me)]
                } else {
                    Vec::new()
                };
                json!({
                    "conversation_id": id,
                    "message_count": msgs.len(),
                    "message_list": list,
                })
            })
            .collect();
        let cursor = cursor_after(q.offset, items.len(), total);
        Ok(json!({
            "total_count": total,
            "message_search_result_items": items,
            "cursor": cursor,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{custom_elem, text_elem};

    fn msg(sender: &str, text: &str, time_ms: i64) -> StoredMessage {
        StoredMessage {
            sender: sender.into(),
            time_ms,
            elems: vec![text_elem(text)],
            ..Default::default()
        }
    }

    #[test]
    fn keywords_match_any_or_all_case_insensitively() {
        let m = msg("bob", "Hello World of Chime", 10);
        let or = Criteria {
            keywords: vec!["world".into(), "absent".into()],
            ..Default::default()
        };
        assert!(or.matches(&m));
        let and = Criteria {
            match_all: true,
            ..or.clone()
        };
        assert!(!and.matches(&m));
        let and2 = Criteria {
            keywords: vec!["hello".into(), "chime".into()],
            match_all: true,
            ..Default::default()
        };
        assert!(and2.matches(&m));
    }

    #[test]
    fn senders_types_and_time_window_filter() {
        let m = msg("bob", "x", 1_000);
        let c = Criteria {
            senders: vec!["alice".into()],
            ..Default::default()
        };
        assert!(!c.matches(&m));
        let c = Criteria {
            senders: vec!["bob".into()],
            types: vec!["custom".into()],
            ..Default::default()
        };
        assert!(!c.matches(&m));
        let c = Criteria {
            from_ms: 1_001,
            ..Default::default()
        };
        assert!(!c.matches(&m));
        let c = Criteria {
            from_ms: 1_000,
            to_ms: 1_000,
            types: vec!["text".into()],
            ..Default::default()
        };
        assert!(c.matches(&m));
    }

    #[test]
    fn custom_elems_are_searched_by_description_extension_and_utf8_data() {
        let mut m = msg("bob", "", 1);
        m.elems = vec![custom_elem(
            b"payload".to_vec(),
            "Desc".into(),
            "ext".into(),
        )];
        for k in ["payload", "desc", "ext"] {
            let c = Criteria {
                keywords: vec![k.into()],
                ..Default::default()
            };
            assert!(c.matches(&m), "{k}");
        }
    }
}
