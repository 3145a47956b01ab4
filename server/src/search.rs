//! Cloud message search (issue 4, `search_cloud_messages`): the messages a user can see on the
//! server — their C2C conversations and the groups they are a member of, within the roaming
//! window, without what they deleted or cleared — matched by keywords (any / all,
//! case-insensitive substrings), senders, elem types, conversation and time, newest first, in
//! pages. The result has the shape of `search_local_messages` (docs/messages.md).
//!
//! **Index.** So that a keyword search does not read every message, the character trigrams of
//! each stored message's searchable text are kept as postings per conversation, in blocks
//! ([`crate::search_index`]: written in batches off the commit path, with the messages not
//! indexed yet answered as candidates too, so nothing stored is missed). A keyword of three
//! characters or more reads, per conversation, its blocks (the seqs holding all its trigrams)
//! and the pending messages; the candidates are then checked against every criterion and
//! against what the user may see (each through `conversations::pull`, the one place that rule
//! lives), so stale postings (revoked, modified, pruned messages) never decide. Searches by
//! sender or type alone, or with a shorter keyword in an "or", read the conversations' messages
//! through the same pull, page by page.
//!
//! The matching rule ([`Criteria::matches`]) and the result assembly ([`assemble`]) are pure
//! and unit-tested; the end-to-end test compares with a brute-force scan.

use std::collections::{BTreeSet, HashMap};

use chime_proto::pb::{self, response::Kind as RespKind};
use chime_proto::search::Piece;
use chime_proto::{codes, ids};

use crate::config::Tunables;
use crate::error::{ApiError, ApiResult, StoreError};
use crate::keys::{self, Key, tag};
use crate::store::Store;

/// Most keywords per search.
pub const MAX_KEYWORDS: usize = 5;
/// Default and largest page.
pub const MAX_PAGE: u32 = 100;
/// Default page.
pub const DEFAULT_PAGE: u32 = 10;
/// Most pull pages read per conversation when the index cannot narrow a search.
const MAX_SCAN_PAGES: usize = 10_000;

/// The searchable text of a message, lowercased: text elems, and custom elems' description,
/// extension and UTF-8 data (the rule `search_local_messages` shares: `chime_proto::search`).
pub fn searchable_text(m: &pb::Message) -> String {
    chime_proto::search::searchable_text(m.elems.iter().map(|e| match &e.content {
        Some(pb::elem::Content::Text(t)) => Piece::Text(&t.text),
        Some(pb::elem::Content::Custom(c)) => Piece::Custom {
            description: &c.description,
            extension: &c.extension,
            data: &c.data,
        },
        _ => Piece::Other,
    }))
}

/// The elem type name (the JSON API's `elem_type`) of an elem.
fn type_name(e: &pb::Elem) -> &'static str {
    match &e.content {
        Some(pb::elem::Content::Text(_)) => "text",
        Some(pb::elem::Content::Custom(_)) => "custom",
        Some(pb::elem::Content::Image(_)) => "image",
        Some(pb::elem::Content::Sound(_)) => "sound",
        Some(pb::elem::Content::Video(_)) => "video",
        Some(pb::elem::Content::File(_)) => "file",
        Some(pb::elem::Content::Location(_)) => "location",
        Some(pb::elem::Content::Face(_)) => "face",
        Some(pb::elem::Content::GroupTips(_)) => "group_tips",
        Some(pb::elem::Content::Merger(_)) => "merger",
        None => "unknown",
    }
}

/// What a search looks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Criteria {
    /// Keywords, lowercased; empty = any text.
    pub keywords: Vec<String>,
    /// All keywords must match (else any).
    pub match_all: bool,
    /// Senders; empty = anyone.
    pub senders: Vec<String>,
    /// Elem type names; empty = any.
    pub types: Vec<String>,
    /// Server time window in ms, inclusive; 0 = unbounded.
    pub from_ms: i64,
    /// End of the window; 0 = unbounded.
    pub to_ms: i64,
}

impl Criteria {
    /// The criteria of a request, validated (90002 for a bad one).
    pub fn of(req: &pb::SearchCloudMessagesReq) -> ApiResult<Criteria> {
        let keywords: Vec<String> = req
            .keywords
            .iter()
            .map(|k| k.to_lowercase())
            .filter(|k| !k.is_empty())
            .collect();
        if keywords.len() > MAX_KEYWORDS {
            return Err(invalid(format!(
                "at most {MAX_KEYWORDS} keywords per search"
            )));
        }
        if keywords.is_empty() && req.senders.is_empty() && req.elem_types.is_empty() {
            return Err(invalid("keywords, senders or elem types are required"));
        }
        if req.to_time_ms > 0 && req.from_time_ms > req.to_time_ms {
            return Err(invalid("the time window ends before it starts"));
        }
        Ok(Criteria {
            keywords,
            match_all: req.match_all,
            senders: req.senders.clone(),
            types: req.elem_types.clone(),
            from_ms: req.from_time_ms,
            to_ms: req.to_time_ms,
        })
    }

    /// Whether `m` matches (a revoked message never does).
    pub fn matches(&self, m: &pb::Message) -> bool {
        if m.revoked
            || (self.from_ms > 0 && m.server_time_ms < self.from_ms)
            || (self.to_ms > 0 && m.server_time_ms > self.to_ms)
            || (!self.senders.is_empty() && !self.senders.contains(&m.sender))
        {
            return false;
        }
        if !self.types.is_empty()
            && !m
                .elems
                .iter()
                .any(|e| self.types.iter().any(|t| t == type_name(e)))
        {
            return false;
        }
        if self.keywords.is_empty() {
            return true;
        }
        let text = searchable_text(m);
        if self.match_all {
            self.keywords.iter().all(|k| text.contains(k.as_str()))
        } else {
            self.keywords.iter().any(|k| text.contains(k.as_str()))
        }
    }
}

fn invalid(desc: impl Into<String>) -> ApiError {
    ApiError::new(codes::ERR_SVR_INVALID_PARAMS, desc)
}

/// The seqs of `conv` the keywords narrow the search to, or `None` when they cannot (no
/// keyword, or an "or" with a keyword too short for the index).
fn candidates(
    store: &dyn Store,
    app: u64,
    conv: &[u8],
    c: &Criteria,
) -> Result<Option<BTreeSet<u64>>, StoreError> {
    // The messages not indexed yet, read before the postings (`search_index`).
    let pending = crate::search_index::pending(store, app, conv)?;
    let mut acc: Option<BTreeSet<u64>> = None;
    for k in &c.keywords {
        let Some(set) = crate::search_index::indexed(store, app, conv, k)? else {
            if c.match_all {
                continue;
            }
            return Ok(None);
        };
        acc = Some(match acc {
            None => set,
            Some(a) if c.match_all => a.intersection(&set).copied().collect(),
            Some(mut a) => {
                a.extend(set);
                a
            }
        });
    }
    Ok(acc.map(|mut a| {
        a.extend(pending);
        a
    }))
}

/// The conversations `user` may search: the one asked for, or every conversation in the user's
/// conversation log and every group they are in.
fn conversations(store: &dyn Store, app: u64, user: &str) -> Result<Vec<pb::ConvRef>, StoreError> {
    let mut out: BTreeSet<(i32, String)> = BTreeSet::new();
    let (start, end) = Key::new(tag::VER, app).s(user.as_bytes()).prefix_range();
    let prefix = Key::new(tag::VER, app).s(user.as_bytes()).done().len();
    for (k, _) in store.scan(&start, &end, usize::MAX, false)? {
        // The key ends in the length-prefixed conversation key.
        let conv = k.get(prefix + 1..).unwrap_or_default();
        if let Some(r) = keys::conv_ref_for(conv, user) {
            out.insert((r.conv_type, r.target));
        }
    }
    let (start, end) = Key::new(tag::JOINED, app).s(user.as_bytes()).prefix_range();
    for (k, _) in store.scan(&start, &end, usize::MAX, false)? {
        if let Some(g) = keys::trailing_str(&k, prefix) {
            out.insert((pb::ConvType::Group as i32, g));
        }
    }
    Ok(out
        .into_iter()
        .map(|(conv_type, target)| pb::ConvRef { conv_type, target })
        .collect())
}

/// One pull of `conv` for `user` (everything the user may see: membership, join point,
/// roaming window, deleted and cleared messages, targeted messages), newest first.
fn pull(
    store: &dyn Store,
    tunables: &Tunables,
    app: u64,
    user: &str,
    conv: &pb::ConvRef,
    (from_seq, to_seq): (u64, u64),
    c: &Criteria,
) -> ApiResult<pb::PullMessagesResp> {
    let req = pb::PullMessagesReq {
        conv: Some(conv.clone()),
        from_seq,
        to_seq,
        limit: crate::queries::PULL_PAGE,
        newest_first: true,
        from_time_ms: c.from_ms,
        to_time_ms: c.to_ms,
    };
    match crate::conversations::pull(store, tunables, app, user, &req)? {
        RespKind::PullMessages(p) => Ok(p),
        _ => Err(ApiError::new(
            codes::ERR_SVR_INTERNAL,
            "pull answered no messages",
        )),
    }
}

/// The matches of one conversation, in any order.
fn search_conversation(
    store: &dyn Store,
    tunables: &Tunables,
    app: u64,
    user: &str,
    conv: &pb::ConvRef,
    c: &Criteria,
) -> ApiResult<Vec<pb::Message>> {
    let key = match conv.conv_type() {
        pb::ConvType::C2c => keys::c2c_conv(user, &conv.target),
        _ => keys::group_conv(&conv.target),
    };
    let mut out = Vec::new();
    match candidates(store, app, &key, c)? {
        Some(seqs) => {
            for seq in seqs.into_iter().rev() {
                let p = pull(store, tunables, app, user, conv, (seq, seq), c)?;
                out.extend(
                    p.messages
                        .into_iter()
                        .filter(|m| m.seq == seq && c.matches(m)),
                );
            }
        }
        None => {
            let mut hi = 0; // 0 = up to the newest
            for _ in 0..MAX_SCAN_PAGES {
                let p = pull(store, tunables, app, user, conv, (1, hi), c)?;
                out.extend(p.messages.into_iter().filter(|m| c.matches(m)));
                if p.covered_from <= p.min_seq.max(1) {
                    break;
                }
                hi = p.covered_from - 1;
            }
        }
    }
    Ok(out)
}

/// Groups `found` (newest first) into the answer: with a conversation, one item with the page
/// of matches (`total_count` = matches); without, one item per conversation in order of its
/// newest match, holding its count and — when it has exactly one match — that message
/// (`total_count` = conversations).
pub fn assemble(
    mut found: Vec<(pb::ConvRef, pb::Message)>,
    one_conv: Option<&pb::ConvRef>,
    offset: u64,
    count: u32,
) -> pb::SearchCloudMessagesResp {
    found.sort_by(|(_, a), (_, b)| {
        (b.server_time_ms, b.seq, &b.msg_id).cmp(&(a.server_time_ms, a.seq, &a.msg_id))
    });
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let count = count as usize;
    let next = |taken: usize, total: usize| {
        if offset.saturating_add(taken) >= total {
            0
        } else {
            (offset + taken) as u64
        }
    };
    if let Some(conv) = one_conv {
        let total = found.len();
        let page: Vec<pb::Message> = found
            .into_iter()
            .skip(offset)
            .take(count)
            .map(|(_, m)| m)
            .collect();
        let next_offset = next(page.len(), total);
        let items = if total == 0 {
            Vec::new()
        } else {
            vec![pb::SearchCloudMessagesItem {
                conv: Some(conv.clone()),
                message_count: total as u32,
                messages: page,
            }]
        };
        return pb::SearchCloudMessagesResp {
            total_count: total as u32,
            items,
            next_offset,
        };
    }
    let mut order: Vec<(i32, String)> = Vec::new();
    let mut groups: HashMap<(i32, String), Vec<pb::Message>> = HashMap::new();
    for (conv, m) in found {
        let id = (conv.conv_type, conv.target);
        let g = groups.entry(id.clone()).or_default();
        if g.is_empty() {
            order.push(id);
        }
        g.push(m);
    }
    let total = order.len();
    let items: Vec<pb::SearchCloudMessagesItem> = order
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|id| {
            let mut msgs = groups.remove(&id).unwrap_or_default();
            let message_count = msgs.len() as u32;
            if msgs.len() != 1 {
                msgs.clear();
            }
            pb::SearchCloudMessagesItem {
                conv: Some(pb::ConvRef {
                    conv_type: id.0,
                    target: id.1,
                }),
                message_count,
                messages: msgs,
            }
        })
        .collect();
    let next_offset = next(items.len(), total);
    pb::SearchCloudMessagesResp {
        total_count: total as u32,
        items,
        next_offset,
    }
}

/// `SearchCloudMessages`.
pub fn search(
    store: &dyn Store,
    tunables: &Tunables,
    app: u64,
    user: &str,
    req: &pb::SearchCloudMessagesReq,
) -> ApiResult<RespKind> {
    let c = Criteria::of(req)?;
    let count = match req.count {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    };
    if let Some(conv) = &req.conv {
        let valid = match conv.conv_type() {
            pb::ConvType::C2c => ids::is_valid_user_id(&conv.target),
            pb::ConvType::Group => ids::is_valid_group_id(&conv.target),
            pb::ConvType::Unspecified => false,
        };
        if !valid {
            return Err(invalid("conv must name a user or a group"));
        }
    }
    let convs = match &req.conv {
        Some(conv) => vec![conv.clone()],
        None => conversations(store, app, user)?,
    };
    let mut found = Vec::new();
    for conv in &convs {
        match search_conversation(store, tunables, app, user, conv, &c) {
            Ok(msgs) => found.extend(msgs.into_iter().map(|m| (conv.clone(), m))),
            // A group the user left (or that is gone) has nothing to search, unless asked for.
            Err(e) if req.conv.is_none() => {
                tracing::debug!("search skips {}: {e}", conv.target);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(RespKind::SearchCloudMessages(assemble(
        found,
        req.conv.as_ref(),
        req.offset,
        count,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::Txn;
    use chime_proto::search::grams;

    fn text(seq: u64, time: i64, sender: &str, t: &str) -> pb::Message {
        pb::Message {
            seq,
            server_time_ms: time,
            sender: sender.into(),
            msg_id: format!("m{seq}"),
            elems: vec![pb::Elem {
                content: Some(pb::elem::Content::Text(pb::TextElem { text: t.into() })),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn grams_stay_within_one_piece() {
        let g = grams(&searchable_text(&text(1, 1, "a", "Hello")));
        assert_eq!(g.into_iter().collect::<Vec<_>>(), ["ell", "hel", "llo"]);
        assert!(grams("ab").is_empty());
        assert!(grams("ab\ncd").is_empty());
    }

    #[test]
    fn criteria_match_keywords_senders_types_time_and_never_revoked() {
        let m = text(1, 1_000, "bob", "Meet at the Harbour");
        let c = |keywords: &[&str], match_all: bool| Criteria {
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            match_all,
            ..Default::default()
        };
        assert!(c(&["harbour", "nope"], false).matches(&m));
        assert!(!c(&["harbour", "nope"], true).matches(&m));
        assert!(c(&["meet", "harb"], true).matches(&m));
        let by = |senders: &[&str], types: &[&str]| Criteria {
            senders: senders.iter().map(|s| s.to_string()).collect(),
            types: types.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert!(by(&["bob"], &["text"]).matches(&m));
        assert!(!by(&["carol"], &[]).matches(&m));
        assert!(!by(&[], &["custom"]).matches(&m));
        let window = Criteria {
            from_ms: 1_000,
            to_ms: 1_000,
            ..c(&["meet"], false)
        };
        assert!(window.matches(&m));
        assert!(
            !Criteria {
                from_ms: 1_001,
                ..window.clone()
            }
            .matches(&m)
        );
        let mut revoked = m.clone();
        revoked.revoked = true;
        assert!(!window.matches(&revoked));
    }

    #[test]
    fn requests_are_validated() {
        let ok = pb::SearchCloudMessagesReq {
            keywords: vec!["Hi".into()],
            ..Default::default()
        };
        assert_eq!(Criteria::of(&ok).map(|c| c.keywords), Ok(vec!["hi".into()]));
        let none = pb::SearchCloudMessagesReq::default();
        assert_eq!(
            Criteria::of(&none).map_err(|e| e.code),
            Err(codes::ERR_SVR_INVALID_PARAMS)
        );
        let six = pb::SearchCloudMessagesReq {
            keywords: (0..6).map(|i| format!("k{i}")).collect(),
            ..Default::default()
        };
        assert_eq!(
            Criteria::of(&six).map_err(|e| e.code),
            Err(codes::ERR_SVR_INVALID_PARAMS)
        );
    }

    #[test]
    fn results_group_by_conversation_or_page_one() {
        let c2c = |u: &str| pb::ConvRef {
            conv_type: pb::ConvType::C2c as i32,
            target: u.into(),
        };
        let found = vec![
            (c2c("bob"), text(1, 10, "bob", "a")),
            (c2c("carol"), text(1, 30, "carol", "b")),
            (c2c("bob"), text(2, 20, "bob", "c")),
        ];
        let all = assemble(found.clone(), None, 0, 1);
        assert_eq!(all.total_count, 2);
        assert_eq!(all.next_offset, 1);
        assert_eq!(all.items.len(), 1);
        assert_eq!(all.items[0].conv, Some(c2c("carol")));
        assert_eq!(all.items[0].message_count, 1);
        assert_eq!(all.items[0].messages.len(), 1);
        let rest = assemble(found.clone(), None, 1, 5);
        assert_eq!(rest.next_offset, 0);
        assert_eq!(rest.items[0].conv, Some(c2c("bob")));
        assert_eq!(rest.items[0].message_count, 2);
        assert!(rest.items[0].messages.is_empty());

        let bobs: Vec<_> = found
            .into_iter()
            .filter(|(c, _)| c.target == "bob")
            .collect();
        let page = assemble(bobs, Some(&c2c("bob")), 0, 1);
        assert_eq!(page.total_count, 2);
        assert_eq!(page.next_offset, 1);
        assert_eq!(page.items[0].messages[0].seq, 2);
    }

    /// Figures for docs/messages.md: `cargo test --release -p chime-server search::tests::bench
    /// -- --ignored --nocapture`. 100,000 messages in 100 C2C conversations of one user on sled,
    /// indexed as the commit task and its flushes index them; a rare keyword, a common one, and a sender-only
    /// search (no index), over every conversation and over one.
    #[test]
    #[ignore]
    fn bench_cloud_search_over_100k_messages() {
        use crate::store::SledStore;
        use std::time::Instant;
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 64 << 20).unwrap();
        let app = 1;
        let words = [
            "apple", "banana", "cherry", "delta", "echo", "foxtrot", "golf",
        ];
        let now = crate::commit::now_ms();
        let t0 = Instant::now();
        for c in 0..100u64 {
            let peer = format!("peer{c}");
            let conv = keys::c2c_conv("alice", &peer);
            let mut txn = Txn::new(&store, &[]);
            for seq in 1..=1000u64 {
                let n = (c * 1000 + seq) as usize;
                let mut t = format!("{} {}", words[n % 7], words[(n / 7) % 7]);
                if n.is_multiple_of(100) {
                    t.push_str(" zebra");
                }
                let sender = if seq.is_multiple_of(2) {
                    "alice"
                } else {
                    peer.as_str()
                };
                let mut m = text(seq, now - 1_000_000 + n as i64, sender, &t);
                m.conv_type = pb::ConvType::C2c as i32;
                m.receiver = if sender == "alice" {
                    peer.clone()
                } else {
                    "alice".into()
                };
                crate::search_index::stage_new(&mut txn, app, &conv, &m);
                txn.put(
                    Key::new(tag::MSG, app).s(&conv).n(seq).done(),
                    prost::Message::encode_to_vec(&m),
                );
            }
            txn.put(
                Key::new(tag::HEAD, app).s(&conv).done(),
                1000u64.to_be_bytes().to_vec(),
            );
            txn.put(
                Key::new(tag::VER, app).s(b"alice").s(&conv).done(),
                1u64.to_be_bytes().to_vec(),
            );
            let staged = txn.into_staged();
            let ops: Vec<(&[u8], Option<&[u8]>)> = staged
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_deref()))
                .collect();
            store.apply(&ops).unwrap();
        }
        let mut memory = crate::search_index::Memory::default();
        loop {
            let mut txn = Txn::new(&store, &[]);
            let done = crate::search_index::flush(&store, &mut txn, &mut memory).unwrap();
            let staged = txn.into_staged();
            let ops: Vec<(&[u8], Option<&[u8]>)> = staged
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_deref()))
                .collect();
            store.apply(&ops).unwrap();
            if !done.more {
                break;
            }
        }
        println!("stored and indexed 100,000 messages in {:?}", t0.elapsed());
        let tunables = Tunables::default();
        let run = |label: &str, req: pb::SearchCloudMessagesReq| {
            let mut best = std::time::Duration::MAX;
            let mut total = 0;
            for _ in 0..5 {
                let t = Instant::now();
                let r = search(&store, &tunables, app, "alice", &req).unwrap();
                best = best.min(t.elapsed());
                if let RespKind::SearchCloudMessages(r) = r {
                    total = r.total_count;
                }
            }
            println!("{label}: {best:?} (total_count {total})");
        };
        let one = pb::ConvRef {
            conv_type: pb::ConvType::C2c as i32,
            target: "peer7".into(),
        };
        run(
            "rare keyword (1%), every conversation",
            pb::SearchCloudMessagesReq {
                keywords: vec!["zebra".into()],
                ..Default::default()
            },
        );
        run(
            "rare keyword, one conversation, page of 20",
            pb::SearchCloudMessagesReq {
                keywords: vec!["zebra".into()],
                conv: Some(one.clone()),
                count: 20,
                ..Default::default()
            },
        );
        run(
            "common keyword (1 in 7), one conversation",
            pb::SearchCloudMessagesReq {
                keywords: vec!["apple".into()],
                conv: Some(one.clone()),
                count: 20,
                ..Default::default()
            },
        );
        run(
            "sender only (no index), one conversation",
            pb::SearchCloudMessagesReq {
                senders: vec!["peer7".into()],
                conv: Some(one),
                count: 20,
                ..Default::default()
            },
        );
    }
}
