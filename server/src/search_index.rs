//! The cloud search index (`search_cloud_messages`, [`crate::search`]): per conversation, the
//! character trigrams of each stored message's searchable text, so that a keyword search reads
//! postings instead of every message.
//!
//! **Off the commit path.** One posting key per (trigram, message) written with each message
//! made the index most of the server's writes per message (about ten keys for a short text). So
//! storing a message only marks its conversation as having something to index
//! ([`stage_new`]: `i app conv → empty`, written once between two flushes, however many
//! messages and batches it covers), and a changed message is queued by seq ([`stage_changed`]:
//! `i app conv seq → empty`). The commit task also keeps the trigrams of what it stored since
//! the last flush in memory ([`Memory`], fed by [`Txn::index`] as each message is appended, so
//! nothing is read back or decoded). Every [`FLUSH_EVERY`] [`spawn_flusher`] has the commit task
//! run [`flush`]: it writes the postings **merged into chunks** — `n app conv trigram chunk →
//! the seqs, ascending, delta-varint`; a trigram's open chunk is `chunk = u64::MAX`, and once it
//! holds [`CHUNK_SEQS`] it is moved to `chunk = its first seq` — moves each conversation's
//! watermark (`n app conv → the last seq indexed`) and removes the marks, in one transaction.
//! The marks and the watermark are stored with the messages, so a crash loses nothing: after a
//! restart (memory empty) the flush reads the messages above the watermark back from the store.
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
//! applied, so a flush reads the open chunks of the store itself (no chunk is in flight).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chime_proto::pb;
use chime_proto::search::{gram_slices, grams};
use prost::Message as _;

use crate::Shared;
use crate::commit::{Command, Msg, Op, Reply};
use crate::error::StoreError;
use crate::keys::{self, Key, tag};
use crate::store::Store;
use crate::txn::Txn;

/// How often the commit task indexes what was stored since the last flush. A search reads the
/// messages not indexed yet directly, so this bounds that extra reading, not freshness. Each
/// flush rewrites the open chunk of every (conversation, trigram) it touches, so a longer
/// period writes a busy conversation's common trigrams less often: 5 s instead of 1 s took the
/// server's CPU per w2-wire message from ~52 to ~46 µs (docs/performance.md, "Server CPU per
/// message (issue 2, session 5)").
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
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

/// Stages "`conv` has a new message to index" (commit task, with the message `m`, stored at
/// `m.seq`), and hands its text to the flush's [`Memory`].
///
/// The mark is written only when it is not there yet: a conversation busy between two flushes
/// is marked once (a point read — of the batch's own writes, the batches in flight or the store
/// — instead of a write per batch; a store write costs several reads). A failed read writes the
/// mark again, which is harmless.
pub(crate) fn stage_new(txn: &mut Txn<'_>, app: u64, conv: &[u8], m: &pb::Message) {
    let mark = mark_key(app, conv).done();
    if !matches!(txn.get(&mark), Ok(Some(_))) {
        txn.put(mark, Vec::new());
    }
    let text = if m.revoked {
        String::new()
    } else {
        crate::search::searchable_text(m)
    };
    txn.index(app, conv, m.seq, text);
}

/// Stages "the message at `seq` of `conv` changed": the next flush indexes its text again.
pub(crate) fn stage_changed(txn: &mut Txn<'_>, app: u64, conv: &[u8], seq: u64) {
    txn.put(mark_key(app, conv).n(seq).done(), Vec::new());
}

/// `seqs` (ascending) as delta varints: a chunk's value.
pub fn encode_seqs(seqs: &BTreeSet<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(seqs.len() * 2);
    append_seqs(&mut out, 0, seqs.iter().copied());
    out
}

/// Appends `seqs` (ascending, each above `prev`, the last seq already in `out`) to the chunk
/// value `out`.
fn append_seqs(out: &mut Vec<u8>, mut prev: u64, seqs: impl IntoIterator<Item = u64>) {
    for seq in seqs {
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
}

/// Calls `f` with each seq of a chunk value (delta varints), in order.
fn for_each_seq(value: &[u8], mut f: impl FnMut(u64)) -> Result<(), StoreError> {
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
            f(prev);
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

/// Adds the seqs of the chunk `key → value` to `out`. An empty value is a posting of the
/// format before chunks (`n app conv gram seq → empty`): the key's seq.
pub fn decode_seqs(key: &[u8], value: &[u8], out: &mut BTreeSet<u64>) -> Result<(), StoreError> {
    if value.is_empty() {
        out.extend(keys::trailing_u64(key));
        return Ok(());
    }
    for_each_seq(value, |seq| {
        out.insert(seq);
    })
}

/// A chunk value's first seq, last seq and number of seqs, read without collecting them.
fn chunk_summary(value: &[u8]) -> Result<(u64, u64, usize), StoreError> {
    let (mut first, mut last, mut count) = (None, 0, 0);
    for_each_seq(value, |seq| {
        first.get_or_insert(seq);
        last = seq;
        count += 1;
    })?;
    Ok((first.unwrap_or(0), last, count))
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

/// The trigrams of the messages the commit task stored since the last flush, per conversation
/// (the seqs of each conversation are contiguous: every append goes through [`Txn::index`]).
#[derive(Debug, Default)]
pub(crate) struct Memory {
    convs: HashMap<(u64, Vec<u8>), Held>,
}

/// One conversation's part of [`Memory`].
#[derive(Debug, Default)]
struct Held {
    /// The first and last seq held.
    from: u64,
    to: u64,
    grams: HashMap<String, Vec<u64>>,
}

impl Memory {
    /// Takes what `txn` indexed (in append order).
    pub(crate) fn absorb(&mut self, txn: &mut Txn<'_>) {
        for (app, conv, seq, text) in txn.take_indexed() {
            let held = self.convs.entry((app, conv)).or_insert_with(|| Held {
                from: seq,
                to: seq,
                grams: HashMap::new(),
            });
            held.to = held.to.max(seq);
            held.from = held.from.min(seq);
            for g in gram_slices(&text) {
                let seqs = match held.grams.get_mut(g) {
                    Some(seqs) => seqs,
                    None => held.grams.entry(g.to_owned()).or_default(),
                };
                // A gram repeated in one message is held once.
                if seqs.last() != Some(&seq) {
                    seqs.push(seq);
                }
            }
        }
    }

    /// Forgets everything (the batch that staged it was refused).
    pub(crate) fn clear(&mut self) {
        self.convs.clear();
    }

    fn first_held(&self, app: u64, conv: &[u8]) -> Option<u64> {
        self.convs.get(&(app, conv.to_vec())).map(|h| h.from)
    }
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

/// Indexes what was stored since the last flush (commit task): the trigrams held in `memory`,
/// and up to [`FLUSH_BATCH`] messages read back from the store (those stored before a restart,
/// and changed ones) — their postings merged into the chunks, the watermarks moved, the marks
/// removed — staged in `txn`.
pub(crate) fn flush(
    store: &dyn Store,
    txn: &mut Txn<'_>,
    memory: &mut Memory,
) -> Result<Flushed, StoreError> {
    memory.absorb(txn);
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
    // Read back from the store: what memory does not hold.
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
                // Memory holds the rest from its first seq on.
                let stop = memory.first_held(app, &conv).map_or(head, |f| f - 1);
                let budget = (FLUSH_BATCH - done.messages) as u64;
                let to = stop.min(from.saturating_add(budget) - 1);
                for seq in from..=to {
                    index_one(txn, app, &conv, seq, &mut postings)?;
                }
                done.messages += to.saturating_sub(from - 1) as usize;
                if to >= from {
                    txn.put(wm_key, to.to_be_bytes().to_vec());
                }
                if to >= head {
                    txn.del(key);
                } else if to < stop {
                    done.more = true;
                }
            }
        }
    }
    // From memory: each conversation whose held seqs follow its watermark.
    for ((app, conv), held) in std::mem::take(&mut memory.convs) {
        let wm_key = watermark_key(app, &conv);
        let watermark = txn.get_u64(&wm_key)?;
        if held.from > watermark + 1 {
            // The store's backlog before it is not read yet: a later flush.
            done.more = true;
            memory.convs.insert((app, conv), held);
            continue;
        }
        done.messages += (held.to + 1).saturating_sub(held.from) as usize;
        let per_gram = postings.entry((app, conv.clone())).or_default();
        for (gram, seqs) in held.grams {
            per_gram.entry(gram).or_default().extend(seqs);
        }
        if held.to > watermark {
            txn.put(wm_key, held.to.to_be_bytes().to_vec());
        }
        if held.to >= txn.get_u64(&head_key(app, &conv))? {
            txn.del(mark_key(app, &conv).done());
        }
    }
    for ((app, conv), per_gram) in postings {
        for (gram, seqs) in per_gram {
            merge_chunk(txn, app, &conv, &gram, seqs)?;
        }
    }
    Ok(done)
}

/// The key of the open chunk of a gram (the one flushes add to).
const OPEN_CHUNK: u64 = u64::MAX;

/// Adds `seqs` to the open chunk of `gram` in `conv`; a full open chunk is first moved to the
/// key of its first seq.
fn merge_chunk(
    txn: &mut Txn<'_>,
    app: u64,
    conv: &[u8],
    gram: &str,
    mut seqs: BTreeSet<u64>,
) -> Result<(), StoreError> {
    let prefix = gram_prefix(app, conv, gram);
    let open = prefix.clone().n(OPEN_CHUNK).done();
    if let Some(mut value) = txn.get(&open)? {
        let (first, last, count) = chunk_summary(&value)?;
        if count >= CHUNK_SEQS {
            txn.put(prefix.n(first).done(), value);
        } else if count > 0 && seqs.first().is_some_and(|&s| s > last) {
            // The usual case (new messages follow the indexed ones): append, no re-encoding.
            append_seqs(&mut value, last, seqs);
            txn.put(open, value);
            return Ok(());
        } else {
            // A message indexed again (changed) or read back after a restart: merge.
            decode_seqs(&open, &value, &mut seqs)?;
        }
    }
    txn.put(open, encode_seqs(&seqs));
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

    /// A store and the commit task's memory of what it stored since the last flush.
    #[derive(Default)]
    struct Fixture {
        store: MemStore,
        memory: Memory,
    }

    fn apply(store: &MemStore, staged: Staged) {
        let ops: Vec<(&[u8], Option<&[u8]>)> = staged
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        store.apply(&ops).unwrap();
    }

    impl Fixture {
        /// Stores a message at the next seq of `conv` as `Core::append` does.
        fn send(&mut self, conv: &[u8], t: &str) -> u64 {
            let mut txn = Txn::new(&self.store, &[]);
            let seq = txn.get_u64(&head_key(1, conv)).unwrap() + 1;
            txn.put(head_key(1, conv), seq.to_be_bytes().to_vec());
            let m = text(seq, t);
            txn.put(message_key(1, conv, seq), m.encode_to_vec());
            stage_new(&mut txn, 1, conv, &m);
            self.memory.absorb(&mut txn);
            apply(&self.store, txn.into_staged());
            seq
        }

        fn flush(&mut self) -> Flushed {
            let mut txn = Txn::new(&self.store, &[]);
            let done = flush(&self.store, &mut txn, &mut self.memory).unwrap();
            apply(&self.store, txn.into_staged());
            done
        }

        /// What a search checks for `keyword`: the pending seqs, then the postings.
        fn found(&self, conv: &[u8], keyword: &str) -> Vec<u64> {
            let mut all = pending(&self.store, 1, conv).unwrap();
            all.extend(
                indexed(&self.store, 1, conv, keyword)
                    .unwrap()
                    .unwrap_or_default(),
            );
            all.into_iter().collect()
        }

        fn chunks(&self, conv: &[u8], gram: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
            let (start, end) = gram_prefix(1, conv, gram).prefix_range();
            self.store.scan(&start, &end, 10, false).unwrap()
        }
    }

    fn flushed(messages: usize, more: bool) -> Flushed {
        Flushed { messages, more }
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
        assert_eq!(chunk_summary(&bytes).unwrap(), (1, u64::MAX / 2, 5));
        // Appending to a chunk is byte-identical to encoding the union.
        let more: BTreeSet<u64> = [u64::MAX / 2 + 1, u64::MAX - 3].into();
        let mut appended = bytes.clone();
        append_seqs(&mut appended, u64::MAX / 2, more.iter().copied());
        assert_eq!(appended, encode_seqs(&seqs.union(&more).copied().collect()));
    }

    #[test]
    fn stored_messages_are_pending_until_flushed_into_chunks() {
        let mut f = Fixture::default();
        let conv = keys::c2c_conv("alice", "bob");
        let other = keys::group_conv("club");
        assert_eq!(f.send(&conv, "Hello world"), 1);
        f.send(&conv, "yellow");
        f.send(&other, "world cup");
        // Not indexed yet: every stored message is a candidate, none of the postings exist.
        assert_eq!(pending(&f.store, 1, &conv).unwrap(), [1, 2].into());
        assert_eq!(
            indexed(&f.store, 1, &conv, "world").unwrap(),
            Some([].into())
        );
        assert_eq!(indexed(&f.store, 1, &conv, "wo").unwrap(), None);
        assert_eq!(f.flush(), flushed(3, false));
        assert_eq!(pending(&f.store, 1, &conv).unwrap(), BTreeSet::new());
        assert_eq!(f.found(&conv, "world"), [1]);
        assert_eq!(f.found(&conv, "ello"), [1, 2]);
        assert_eq!(f.found(&conv, "zzz"), Vec::<u64>::new());
        assert_eq!(f.found(&other, "world"), [1]);
        // A second flush merges into the same (open) chunk: one key per (conv, gram).
        f.send(&conv, "mellow world");
        assert_eq!(f.found(&conv, "zzz"), [3], "pending until flushed");
        assert_eq!(f.flush(), flushed(1, false));
        assert_eq!(f.found(&conv, "world"), [1, 3]);
        let open = gram_prefix(1, &conv, "wor").n(OPEN_CHUNK).done();
        assert_eq!(
            f.chunks(&conv, "wor"),
            vec![(open, encode_seqs(&[1, 3].into()))]
        );
        assert_eq!(f.flush(), flushed(0, false));
        let (lo, hi) = ([tag::SEARCH_QUEUE], [tag::SEARCH_QUEUE + 1]);
        assert_eq!(f.store.scan(&lo, &hi, 10, false).unwrap(), vec![]);
    }

    #[test]
    fn a_conversation_is_marked_once_between_flushes() {
        let mut f = Fixture::default();
        let conv = keys::c2c_conv("alice", "bob");
        let mark = mark_key(1, &conv).done();
        // Whether the transaction storing one more message of `conv` writes the mark.
        let marks = |f: &mut Fixture, layers: &[Arc<Staged>]| {
            let mut txn = Txn::new(&f.store, layers);
            let seq = txn.get_u64(&head_key(1, &conv)).unwrap() + 1;
            txn.put(head_key(1, &conv), seq.to_be_bytes().to_vec());
            let m = text(seq, "hello");
            txn.put(message_key(1, &conv, seq), m.encode_to_vec());
            stage_new(&mut txn, 1, &conv, &m);
            stage_new(&mut txn, 1, &conv, &m);
            f.memory.absorb(&mut txn);
            let staged = txn.into_staged();
            let wrote = staged.contains_key(&mark);
            (wrote, staged)
        };
        let (wrote, first) = marks(&mut f, &[]);
        assert!(wrote, "the first message marks the conversation");
        // A batch staged over the first one while it is still in flight: already marked.
        let in_flight = [Arc::new(first)];
        let (wrote, second) = marks(&mut f, &in_flight);
        assert!(!wrote, "marked by the batch in flight");
        let [first] = in_flight;
        apply(&f.store, Arc::into_inner(first).unwrap());
        apply(&f.store, second);
        let (wrote, third) = marks(&mut f, &[]);
        assert!(!wrote, "marked in the store");
        apply(&f.store, third);
        assert_eq!(f.flush(), flushed(3, false));
        assert_eq!(
            f.store.get(&mark).unwrap(),
            None,
            "the flush removes the mark"
        );
        let (wrote, fourth) = marks(&mut f, &[]);
        assert!(wrote, "marked again after the flush");
        apply(&f.store, fourth);
        assert_eq!(pending(&f.store, 1, &conv).unwrap(), [4].into());
        assert_eq!(f.flush(), flushed(1, false));
        assert_eq!(f.found(&conv, "hello"), [1, 2, 3, 4]);
    }

    #[test]
    fn a_full_chunk_moves_to_its_first_seq() {
        let mut f = Fixture::default();
        let conv = keys::group_conv("big");
        for _ in 0..CHUNK_SEQS {
            f.send(&conv, "abc");
        }
        assert_eq!(f.flush(), flushed(CHUNK_SEQS, false));
        f.send(&conv, "abc");
        f.flush();
        let firsts: Vec<u64> = f
            .chunks(&conv, "abc")
            .iter()
            .filter_map(|(k, _)| keys::trailing_u64(k))
            .collect();
        assert_eq!(firsts, [1, OPEN_CHUNK]);
        let all = indexed(&f.store, 1, &conv, "abc")
            .unwrap()
            .unwrap_or_default();
        assert_eq!(all.len(), CHUNK_SEQS + 1);
    }

    #[test]
    fn after_a_restart_the_backlog_is_read_back_in_several_flushes() {
        let mut f = Fixture::default();
        let conv = keys::group_conv("busy");
        let n = FLUSH_BATCH + 10;
        for _ in 0..n {
            f.send(&conv, "tide");
        }
        // The process restarts before any flush: memory is empty, the marks are stored.
        f.memory = Memory::default();
        let after = f.send(&conv, "tidal wave");
        assert_eq!(f.flush(), flushed(FLUSH_BATCH, true));
        assert_eq!(pending(&f.store, 1, &conv).unwrap().len(), 11);
        assert_eq!(f.found(&conv, "tide").len(), n + 1);
        // The rest of the backlog, then what memory held since the restart.
        assert_eq!(f.flush(), flushed(11, false));
        assert_eq!(pending(&f.store, 1, &conv).unwrap().len(), 0);
        assert_eq!(f.found(&conv, "tide").len(), n);
        assert_eq!(f.found(&conv, "wave"), [after]);
    }

    #[test]
    fn changed_and_revoked_messages() {
        let mut f = Fixture::default();
        let conv = keys::c2c_conv("alice", "bob");
        f.send(&conv, "hello world");
        f.send(&conv, "yellow");
        f.flush();
        // Modified: queued by seq, pending until the next flush, then found by its new text.
        let mut txn = Txn::new(&f.store, &[]);
        txn.put(message_key(1, &conv, 1), text(1, "goodbye").encode_to_vec());
        stage_changed(&mut txn, 1, &conv, 1);
        apply(&f.store, txn.into_staged());
        assert_eq!(pending(&f.store, 1, &conv).unwrap(), [1].into());
        assert_eq!(f.found(&conv, "goodbye"), [1]);
        assert_eq!(f.flush(), flushed(1, false));
        assert_eq!(f.found(&conv, "goodbye"), [1]);
        // The old postings stay (the search's check rejects them).
        assert_eq!(f.found(&conv, "world"), [1]);
        // Revoked before its flush and read back (after a restart): not indexed.
        let seq = f.send(&conv, "zebra");
        f.memory = Memory::default();
        let mut revoked = text(seq, "zebra");
        revoked.revoked = true;
        let mut txn = Txn::new(&f.store, &[]);
        txn.put(message_key(1, &conv, seq), revoked.encode_to_vec());
        apply(&f.store, txn.into_staged());
        assert_eq!(f.flush(), flushed(1, false));
        assert_eq!(f.found(&conv, "zebra"), Vec::<u64>::new());
    }

    #[test]
    fn legacy_postings_stay_readable() {
        let mut f = Fixture::default();
        let conv = keys::c2c_conv("alice", "bob");
        let legacy = gram_prefix(1, &conv, "abc").n(1).done();
        f.store
            .apply(&[(legacy.as_slice(), Some(&[][..]))])
            .unwrap();
        // A store from before the watermark: message 1 is read back and indexed again.
        f.send(&conv, "abc");
        f.memory = Memory::default();
        f.send(&conv, "abcd");
        assert_eq!(f.found(&conv, "abc"), [1, 2]);
        // Message 1 read back first, then message 2 from memory, in one flush.
        assert_eq!(f.flush(), flushed(2, false));
        assert_eq!(f.found(&conv, "abc"), [1, 2]);
        let open = gram_prefix(1, &conv, "abc").n(OPEN_CHUNK).done();
        assert_eq!(
            f.chunks(&conv, "abc"),
            vec![(legacy, Vec::new()), (open, encode_seqs(&[1, 2].into()))]
        );
    }
}
