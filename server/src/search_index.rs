//! The cloud search index (`search_cloud_messages`, [`crate::search`]): per conversation, the
//! character trigrams of each stored message's searchable text, so that a keyword search reads
//! postings instead of every message.
//!
//! **Off the commit path.** One posting key per (trigram, message) written with each message
//! made the index most of the server's writes per message (about ten keys for a short text). So
//! storing a message only marks its conversation as having something to index
//! ([`stage_new`]: `i app conv → empty`, one key per conversation and batch, however many
//! messages the batch holds), and a changed message is queued by seq ([`stage_changed`]:
//! `i app conv seq → empty`). Every [`FLUSH_EVERY`] [`spawn_flusher`] has the commit task run
//! [`flush`]: it indexes each marked conversation's messages above its watermark
//! (`n app conv → the last seq indexed`) and the queued seqs, writes the postings **merged into
//! chunks** — `n app conv trigram first-seq → the seqs, ascending, delta-varint` (at most
//! [`CHUNK_SEQS`] per chunk; a flush rewrites a trigram's last chunk with the new seqs added) —
//! moves the watermark and removes the marks, in one transaction. The marks and the watermark are
//! stored with the messages, so a crash loses nothing: the next flush indexes what was left.
//!
//! **No lag visible.** [`pending`] answers the seqs of a conversation not indexed yet (above
//! the watermark, and the queued ones); a search adds them to its candidates, so a message is
//! found from the moment its send is acked. A search reads the pending seqs *before* the
//! postings, so a flush landing between the two reads cannot hide a message from both.
//!
//! **Never unindexed.** Postings stay when a message is revoked, modified, deleted or pruned:
//! every candidate is checked against the search's full criteria (a revoked message never
//! matches, a modified one is checked by its new text), so the index only narrows and never
//! decides. A modified message is queued again so that its new text is found.
//!
//! Flushes run one at a time: [`spawn_flusher`] sends the next only once the previous one is
//! applied, so a flush reads the last chunks of the store itself (no chunk is in flight).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chime_proto::pb;
use chime_proto::search::grams;
use prost::Message as _;

use crate::Shared;
use crate::commit::{Command, Msg, Op, Reply};
use crate::error::StoreError;
use crate::keys::{self, Key, tag};
use crate::store::Store;
use crate::txn::Txn;

/// How often the commit task indexes what was stored since the last flush. A search reads the
/// messages not indexed yet directly, so this bounds that extra reading, not freshness.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Most messages indexed by one flush (one commit batch); a longer backlog takes several flushes
/// in a row.
pub const FLUSH_BATCH: usize = 4096;
/// Seqs in a chunk before a flush starts the trigram's next chunk.
pub const CHUNK_SEQS: usize = 1024;
/// Most flushes in a row (a backlog of this many batches) before waiting [`FLUSH_EVERY`] again.
const MAX_ROUNDS: usize = 64;

/// `i app conv`: the conversation has messages above its watermark.
fn mark_key(app: u64, conv: &[u8]) -> Key {
    Key::new(tag::SEARCH_QUEUE, app).s(conv)
}

/// `n app conv`: the last seq of the conversation indexed.
fn watermark_key(app: u64, conv: &[u8]) -> Vec<u8> {
    Key::new(tag::SEARCH, app).s(conv).done()
}

/// `n app conv gram`: the prefix of every chunk of `gram` in the conversation.
fn gram_prefix(app: u64, conv: &[u8], gram: &str) -> Key {
    Key::new(tag::SEARCH, app).s(conv).s(gram.as_bytes())
}

fn message_key(app: u64, conv: &[u8], seq: u64) -> Vec<u8> {
    Key::new(tag::MSG, app).s(conv).n(seq).done()
}

fn head_key(app: u64, conv: &[u8]) -> Vec<u8> {
    Key::new(tag::HEAD, app).s(conv).done()
}

/// Stages "`conv` has a new message to index" (commit task, with the message).
pub(crate) fn stage_new(txn: &mut Txn<'_>, app: u64, conv: &[u8]) {
    txn.put(mark_key(app, conv).done(), Vec::new());
}

/// Stages "the message at `seq` of `conv` changed": the next flush indexes its text again.
pub(crate) fn stage_changed(txn: &mut Txn<'_>, app: u64, conv: &[u8], seq: u64) {
    txn.put(mark_key(app, conv).n(seq).done(), Vec::new());
}

/// `seqs` (ascending) as delta varints: a chunk's value.
pub fn encode_seqs(seqs: &BTreeSet<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(seqs.len() * 2);
    let mut prev = 0u64;
    for &seq in seqs {
        let mut d = seq - prev;
        prev = seq;
        loop {
            let byte = (d & 0x7f) as u8;
            d >>= 7;
            if d == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

/// Adds the seqs of the chunk `key → value` to `out`. An empty value is a posting of the
/// format before chunks (`n app conv gram seq → empty`): the key's seq.
pub fn decode_seqs(key: &[u8], value: &[u8], out: &mut BTreeSet<u64>) -> Result<(), StoreError> {
    if value.is_empty() {
        out.extend(keys::trailing_u64(key));
        return Ok(());
    }
    let mut prev = 0u64;
    let mut d = 0u64;
    let mut shift = 0u32;
    for &byte in value {
        if shift > 63 {
            return Err(StoreError::Corrupt("search chunk: varint too long".into()));
        }
        d |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            prev = prev.saturating_add(d);
            out.insert(prev);
            d = 0;
            shift = 0;
        } else {
            shift += 7;
        }
    }
    if shift != 0 {
        return Err(StoreError::Corrupt("search chunk: truncated varint".into()));
    }
    Ok(())
}

/// What one [`flush`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Messages read and indexed (revoked and missing ones included).
    pub messages: usize,
    /// Something is left for the next flush (the batch was full).
    pub more: bool,
}

/// New postings of one flush: (app, conv) → gram → seqs.
type Postings = BTreeMap<(u64, Vec<u8>), BTreeMap<String, BTreeSet<u64>>>;

/// Reads the message at `seq` of `conv` (as the transaction sees it) and adds its grams.
fn index_one(
    txn: &Txn<'_>,
    app: u64,
    conv: &[u8],
    seq: u64,
    postings: &mut Postings,
) -> Result<(), StoreError> {
    let Some(raw) = txn.get(&message_key(app, conv, seq))? else {
        return Ok(()); // pruned, or a seq that never held a message
    };
    let m = pb::Message::decode(raw.as_slice())?;
    if m.revoked {
        return Ok(());
    }
    let gs = grams(&crate::search::searchable_text(&m));
    if gs.is_empty() {
        return Ok(());
    }
    let per_gram = postings.entry((app, conv.to_vec())).or_default();
    for g in gs {
        per_gram.entry(g).or_default().insert(seq);
    }
    Ok(())
}

/// `i app conv [seq]` → (app, conv, seq).
fn parse_mark(key: &[u8]) -> Option<(u64, Vec<u8>, Option<u64>)> {
    let app = keys::be_u64(key, 1)?;
    let n = usize::from(*key.get(9)?);
    let conv = key.get(10..10 + n)?.to_vec();
    match key.len() - (10 + n) {
        0 => Some((app, conv, None)),
        8 => Some((app, conv, keys::trailing_u64(key))),
        _ => None,
    }
}

/// Indexes up to [`FLUSH_BATCH`] messages waiting in the marks (commit task): their postings
/// merged into the chunks, the watermarks moved, the marks removed — staged in `txn`.
pub(crate) fn flush(store: &dyn Store, txn: &mut Txn<'_>) -> Result<Flushed, StoreError> {
    let marks = store.scan(
        &[tag::SEARCH_QUEUE],
        &[tag::SEARCH_QUEUE + 1],
        FLUSH_BATCH,
        false,
    )?;
    let mut done = Flushed {
        messages: 0,
        more: marks.len() == FLUSH_BATCH,
    };
    let mut postings = Postings::new();
    for (key, _) in marks {
        if done.messages >= FLUSH_BATCH {
            done.more = true;
            break;
        }
        let Some((app, conv, seq)) = parse_mark(&key) else {
            tracing::warn!("search index: dropping a malformed mark");
            txn.del(key);
            continue;
        };
        match seq {
            Some(seq) => {
                index_one(txn, app, &conv, seq, &mut postings)?;
                done.messages += 1;
                txn.del(key);
            }
            None => {
                let wm_key = watermark_key(app, &conv);
                let from = txn.get_u64(&wm_key)? + 1;
                let head = txn.get_u64(&head_key(app, &conv))?;
                let budget = (FLUSH_BATCH - done.messages) as u64;
                let to = head.min(from.saturating_add(budget) - 1);
                for seq in from..=to {
                    index_one(txn, app, &conv, seq, &mut postings)?;
                }
                done.messages += to.saturating_sub(from - 1) as usize;
                if to >= from {
                    txn.put(wm_key, to.to_be_bytes().to_vec());
                }
                if to >= head {
                    txn.del(key);
                } else {
                    done.more = true;
                }
            }
        }
    }
    for ((app, conv), per_gram) in postings {
        for (gram, seqs) in per_gram {
            merge_chunk(store, txn, app, &conv, &gram, seqs)?;
        }
    }
    Ok(done)
}

/// Adds `seqs` to the last chunk of `gram` in `conv`, or starts its next chunk when that one is
/// full.
fn merge_chunk(
    store: &dyn Store,
    txn: &mut Txn<'_>,
    app: u64,
    conv: &[u8],
    gram: &str,
    mut seqs: BTreeSet<u64>,
) -> Result<(), StoreError> {
    let prefix = gram_prefix(app, conv, gram);
    let (start, end) = prefix.clone().prefix_range();
    let last = store.scan(&start, &end, 1, true)?.pop();
    let first = seqs.first().copied().unwrap_or(0);
    let key = match last {
        Some((key, value)) => {
            let mut held = BTreeSet::new();
            decode_seqs(&key, &value, &mut held)?;
            if held.len() < CHUNK_SEQS {
                seqs.extend(held);
                key
            } else {
                let after = keys::trailing_u64(&key).map_or(0, |k| k + 1);
                prefix.n(first.max(after)).done()
            }
        }
        None => prefix.n(first).done(),
    };
    txn.put(key, encode_seqs(&seqs));
    Ok(())
}

/// The seqs of `conv` not indexed yet: above its watermark (up to its head), and those queued
/// again after a change. A search reads these before the postings (module doc).
pub fn pending(store: &dyn Store, app: u64, conv: &[u8]) -> Result<BTreeSet<u64>, StoreError> {
    let (start, end) = mark_key(app, conv).prefix_range();
    let marks = store.scan(&start, &end, usize::MAX, false)?;
    let mut out = BTreeSet::new();
    for (key, _) in &marks {
        if let Some((_, _, Some(seq))) = parse_mark(key) {
            out.insert(seq);
        }
    }
    let watermark = get_u64(store, &watermark_key(app, conv))?;
    let head = get_u64(store, &head_key(app, conv))?;
    out.extend(watermark + 1..=head);
    Ok(out)
}

fn get_u64(store: &dyn Store, key: &[u8]) -> Result<u64, StoreError> {
    Ok(store
        .get(key)?
        .and_then(|v| keys::be_u64(&v, 0))
        .unwrap_or(0))
}

/// The indexed seqs of `conv` whose postings hold every gram of `keyword` (lowercased), or
/// `None` when the keyword is too short for the index. Add [`pending`] (read first) for the
/// messages not indexed yet.
pub fn indexed(
    store: &dyn Store,
    app: u64,
    conv: &[u8],
    keyword: &str,
) -> Result<Option<BTreeSet<u64>>, StoreError> {
    let gs = grams(keyword);
    if gs.is_empty() {
        return Ok(None);
    }
    let mut acc: Option<BTreeSet<u64>> = None;
    for g in gs {
        let (start, end) = gram_prefix(app, conv, &g).prefix_range();
        let mut seqs = BTreeSet::new();
        for (k, v) in store.scan(&start, &end, usize::MAX, false)? {
            decode_seqs(&k, &v, &mut seqs)?;
        }
        let narrowed = match acc {
            None => seqs,
            Some(a) => a.intersection(&seqs).copied().collect(),
        };
        let empty = narrowed.is_empty();
        acc = Some(narrowed);
        if empty {
            break;
        }
    }
    Ok(acc)
}

/// Has the commit task flush the index every [`FLUSH_EVERY`] (several times in a row while a
/// backlog lasts), until the server stops.
pub fn spawn_flusher(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stopping = shared.stopping.clone();
        loop {
            tokio::select! {
                _ = stopping.wait_for(|s| *s) => break,
                _ = tokio::time::sleep(FLUSH_EVERY) => {}
            }
            for _ in 0..MAX_ROUNDS {
                let (more_tx, more_rx) = tokio::sync::oneshot::channel();
                let (tx, rx) = tokio::sync::oneshot::channel();
                let cmd = Command {
                    app: 0,
                    user: String::new(),
                    op: Op::SearchFlush(more_tx),
                    reply: Reply::Once(tx),
                };
                if shared.commit.send(Msg::Cmd(cmd)).await.is_err() {
                    return;
                }
                // Answered once the flush is applied: the next one reads its chunks.
                match rx.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!("search index flush failed: {}", e.desc);
                        break;
                    }
                    Err(_) => return,
                }
                if !more_rx.await.unwrap_or(false) {
                    break;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use crate::txn::Staged;

    fn text(seq: u64, t: &str) -> pb::Message {
        pb::Message {
            seq,
            elems: vec![pb::Elem {
                content: Some(pb::elem::Content::Text(pb::TextElem { text: t.into() })),
            }],
            ..Default::default()
        }
    }

    fn apply(store: &MemStore, staged: Staged) {
        let ops: Vec<(&[u8], Option<&[u8]>)> = staged
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        store.apply(&ops).unwrap();
    }

    /// Stores `m` at the next seq of `conv` with its mark, as `Core::append` does.
    fn store_message(store: &MemStore, conv: &[u8], t: &str) -> u64 {
        let mut txn = Txn::new(store, &[]);
        let seq = txn.get_u64(&head_key(1, conv)).unwrap() + 1;
        txn.put(head_key(1, conv), seq.to_be_bytes().to_vec());
        txn.put(message_key(1, conv, seq), text(seq, t).encode_to_vec());
        stage_new(&mut txn, 1, conv);
        apply(store, txn.into_staged());
        seq
    }

    fn run_flush(store: &MemStore) -> Flushed {
        let mut txn = Txn::new(store, &[]);
        let done = flush(store, &mut txn).unwrap();
        apply(store, txn.into_staged());
        done
    }

    fn found(store: &MemStore, conv: &[u8], keyword: &str) -> Vec<u64> {
        let mut all = pending(store, 1, conv).unwrap();
        all.extend(
            indexed(store, 1, conv, keyword)
                .unwrap()
                .unwrap_or_default(),
        );
        all.into_iter().collect()
    }

    #[test]
    fn seqs_round_trip_as_delta_varints_and_legacy_postings_decode() {
        let seqs: BTreeSet<u64> = [1, 2, 130, 20_000, u64::MAX / 2].into();
        let bytes = encode_seqs(&seqs);
        assert_eq!(&bytes[..3], &[1, 1, 128]);
        let mut back = BTreeSet::new();
        decode_seqs(b"k", &bytes, &mut back).unwrap();
        assert_eq!(back, seqs);
        let legacy = Key::new(tag::SEARCH, 1).s(b"c").s(b"abc").n(77).done();
        let mut one = BTreeSet::new();
        decode_seqs(&legacy, &[], &mut one).unwrap();
        assert_eq!(one, [77].into());
        assert!(decode_seqs(b"k", &[0x80], &mut one).is_err());
    }

    #[test]
    fn stored_messages_are_pending_until_flushed_into_chunks() {
        let store = MemStore::default();
        let conv = keys::c2c_conv("alice", "bob");
        let other = keys::group_conv("club");
        assert_eq!(store_message(&store, &conv, "Hello world"), 1);
        store_message(&store, &conv, "yellow");
        store_message(&store, &other, "world cup");
        // Not indexed yet: every stored message is a candidate, none of the postings exist.
        assert_eq!(pending(&store, 1, &conv).unwrap(), [1, 2].into());
        assert_eq!(indexed(&store, 1, &conv, "world").unwrap(), Some([].into()));
        assert_eq!(indexed(&store, 1, &conv, "wo").unwrap(), None);
        assert_eq!(
            run_flush(&store),
            Flushed {
                messages: 3,
                more: false
            }
        );
        assert_eq!(pending(&store, 1, &conv).unwrap(), BTreeSet::new());
        assert_eq!(found(&store, &conv, "world"), [1]);
        assert_eq!(found(&store, &conv, "ello"), [1, 2]);
        assert_eq!(found(&store, &conv, "zzz"), Vec::<u64>::new());
        assert_eq!(found(&store, &other, "world"), [1]);
        // A second flush merges into the same chunk: one key per (conv, gram).
        store_message(&store, &conv, "mellow world");
        assert_eq!(found(&store, &conv, "zzz"), [3], "pending until flushed");
        assert_eq!(run_flush(&store).messages, 1);
        assert_eq!(found(&store, &conv, "world"), [1, 3]);
        let (start, end) = gram_prefix(1, &conv, "wor").prefix_range();
        let chunks = store.scan(&start, &end, 10, false).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].1, encode_seqs(&[1, 3].into()));
        assert_eq!(
            run_flush(&store),
            Flushed {
                messages: 0,
                more: false
            }
        );
    }

    #[test]
    fn a_full_chunk_starts_the_next_one() {
        let store = MemStore::default();
        let conv = keys::group_conv("big");
        for _ in 0..CHUNK_SEQS {
            store_message(&store, &conv, "abc");
        }
        assert_eq!(run_flush(&store).messages, CHUNK_SEQS);
        store_message(&store, &conv, "abc");
        run_flush(&store);
        let (start, end) = gram_prefix(1, &conv, "abc").prefix_range();
        let chunks = store.scan(&start, &end, 10, false).unwrap();
        let firsts: Vec<u64> = chunks
            .iter()
            .filter_map(|(k, _)| keys::trailing_u64(k))
            .collect();
        assert_eq!(firsts, [1, CHUNK_SEQS as u64 + 1]);
        let all = indexed(&store, 1, &conv, "abc")
            .unwrap()
            .unwrap_or_default();
        assert_eq!(all.len(), CHUNK_SEQS + 1);
    }

    #[test]
    fn a_backlog_takes_several_flushes_and_stays_pending_meanwhile() {
        let store = MemStore::default();
        let conv = keys::group_conv("busy");
        let n = FLUSH_BATCH + 10;
        // One transaction: the head moves by n, the mark is written once.
        let mut txn = Txn::new(&store, &[]);
        for seq in 1..=n as u64 {
            txn.put(
                message_key(1, &conv, seq),
                text(seq, "tide").encode_to_vec(),
            );
            stage_new(&mut txn, 1, &conv);
        }
        txn.put(head_key(1, &conv), (n as u64).to_be_bytes().to_vec());
        apply(&store, txn.into_staged());
        assert_eq!(
            run_flush(&store),
            Flushed {
                messages: FLUSH_BATCH,
                more: true
            }
        );
        assert_eq!(pending(&store, 1, &conv).unwrap().len(), 10);
        assert_eq!(found(&store, &conv, "tide").len(), n);
        assert_eq!(
            run_flush(&store),
            Flushed {
                messages: 10,
                more: false
            }
        );
        assert_eq!(pending(&store, 1, &conv).unwrap().len(), 0);
        assert_eq!(found(&store, &conv, "tide").len(), n);
    }

    #[test]
    fn changed_and_revoked_messages() {
        let store = MemStore::default();
        let conv = keys::c2c_conv("alice", "bob");
        store_message(&store, &conv, "hello world");
        store_message(&store, &conv, "yellow");
        run_flush(&store);
        // Modified: queued by seq, pending until the next flush, then found by its new text.
        let mut txn = Txn::new(&store, &[]);
        txn.put(message_key(1, &conv, 1), text(1, "goodbye").encode_to_vec());
        stage_changed(&mut txn, 1, &conv, 1);
        apply(&store, txn.into_staged());
        assert_eq!(pending(&store, 1, &conv).unwrap(), [1].into());
        assert_eq!(found(&store, &conv, "goodbye"), [1]);
        assert_eq!(run_flush(&store).messages, 1);
        assert_eq!(found(&store, &conv, "goodbye"), [1]);
        // The old postings stay (the search's check rejects them).
        assert_eq!(found(&store, &conv, "world"), [1]);
        // Revoked before its flush: never indexed.
        let seq = store_message(&store, &conv, "zebra");
        let mut revoked = text(seq, "zebra");
        revoked.revoked = true;
        let mut txn = Txn::new(&store, &[]);
        txn.put(message_key(1, &conv, seq), revoked.encode_to_vec());
        apply(&store, txn.into_staged());
        run_flush(&store);
        assert_eq!(found(&store, &conv, "zebra"), Vec::<u64>::new());
    }

    #[test]
    fn legacy_postings_merge_into_chunks() {
        let store = MemStore::default();
        let conv = keys::c2c_conv("alice", "bob");
        let legacy = gram_prefix(1, &conv, "abc").n(1).done();
        store.apply(&[(legacy.as_slice(), Some(&[][..]))]).unwrap();
        // The store predates the watermark: message 1 is pending again, and indexed again.
        store_message(&store, &conv, "abc");
        store_message(&store, &conv, "abcd");
        assert_eq!(found(&store, &conv, "abc"), [1, 2]);
        run_flush(&store);
        let (start, end) = gram_prefix(1, &conv, "abc").prefix_range();
        let chunks = store.scan(&start, &end, 10, false).unwrap();
        assert_eq!(chunks, vec![(legacy, encode_seqs(&[1, 2].into()))]);
    }
}
