//! The cloud search index (`search_cloud_messages`, [`crate::search`]): per conversation, the
//! character trigrams of each stored message's searchable text, so that a keyword search reads
//! postings instead of every message.
//!
//! **Off the commit path.** Storing a message only marks its conversation as having something
//! to index ([`stage_new`]: `i app conv → empty`, written once between two flushes, however many
//! messages and batches it covers), and a changed message is queued by seq ([`stage_changed`]:
//! `i app conv seq → empty`). The commit task also keeps the trigrams of what it stored since
//! the last flush in memory ([`Memory`], fed by [`Txn::index`] as each message is appended, so
//! nothing is read back or decoded). Every [`FLUSH_EVERY`] [`spawn_flusher`] has the commit task
//! run [`flush`], which indexes them in one transaction: moves each conversation's watermark
//! (the last seq indexed), removes the marks, and writes the postings.
//!
//! **One block per conversation per flush.** The postings of one flush of one conversation are
//! written as **one key**, a block (`n app conv "" block → messages, then each gram in order
//! with its seqs as delta varints`), not one key per (conversation, trigram): a busy
//! conversation's flush touches hundreds of trigrams, and each would have been a store write
//! (~1.4 writes per message at a 1 s flush, 0.6 at 5 s). A block of [`SEAL_MESSAGES`] or more
//! is final; smaller ones (quiet conversations) are merged as they accumulate, [`FANOUT`] blocks
//! of one level into one block of the next level (a tiered merge: a message is rewritten at most
//! [`MAX_LEVEL`] times, and a conversation keeps at most `FANOUT - 1` open blocks per level). The
//! conversation's state (`n app conv → watermark, next block number, open blocks`) says which
//! blocks are open, so a flush reads only the blocks it merges. A search reads every block of
//! the conversation and, per block, the seqs holding all of the keyword's trigrams.
//!
//! The marks and the state are stored with the messages, so a crash loses nothing: after a
//! restart (memory empty) the flush reads the messages above the watermark back from the store.
//! Chunks of the layout before blocks (`n app conv trigram chunk → seqs`) stay readable.
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
//! applied, so a flush reads the state and open blocks of the store itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chime_proto::pb;
use chime_proto::search::block::{
    self, BlockError, Postings as Grams, block_lookup, decode_block, encode_block, push_gram,
};
use chime_proto::search::tiers::{self, OpenBlock};
pub use chime_proto::search::tiers::{FANOUT, MAX_LEVEL, SEAL_MESSAGES};
use chime_proto::search::{gram_slices, grams};
use prost::Message as _;

use crate::Shared;
use crate::commit::{Command, Msg, Op, Reply};
use crate::error::StoreError;
use crate::keys::{self, Key, tag};
use crate::store::Store;
use crate::txn::Txn;

/// How often the commit task indexes what was stored since the last flush. A search reads the
/// messages not indexed yet directly, so this bounds that extra reading, not freshness.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// Most messages indexed by one flush (one commit batch); a longer backlog takes several flushes
/// in a row.
pub const FLUSH_BATCH: usize = 4096;
/// Most flushes in a row (a backlog of this many batches) before waiting [`FLUSH_EVERY`] again.
const MAX_ROUNDS: usize = 64;

/// `i app conv`: the conversation has messages above its watermark.
fn mark_key(app: u64, conv: &[u8]) -> Key {
    Key::new(tag::SEARCH_QUEUE, app).s(conv)
}

/// `n app conv`: the conversation's index state ([`ConvState`]; its first 8 bytes are the
/// watermark, as in the layout before blocks).
fn state_key(app: u64, conv: &[u8]) -> Vec<u8> {
    Key::new(tag::SEARCH, app).s(conv).done()
}

/// `n app conv ""`: the prefix of the conversation's blocks (an empty component: no trigram
/// chunk's, whose trigram is never empty).
fn blocks_prefix(app: u64, conv: &[u8]) -> Key {
    Key::new(tag::SEARCH, app).s(conv).s(b"")
}

fn block_key(app: u64, conv: &[u8], block: u64) -> Vec<u8> {
    blocks_prefix(app, conv).n(block).done()
}

/// `n app conv gram`: the prefix of every chunk of `gram` in the conversation (the layout before
/// blocks, read only).
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

/// A malformed stored value of the index, as the store's error.
fn corrupt(e: BlockError) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// `seqs` (ascending) as delta varints: a chunk's value (the layout before blocks).
pub fn encode_seqs(seqs: &BTreeSet<u64>) -> Vec<u8> {
    block::encode_ids(seqs)
}

/// Adds the seqs of the chunk `key → value` to `out`. An empty value is a posting of the
/// format before chunks (`n app conv gram seq → empty`): the key's seq.
pub fn decode_seqs(key: &[u8], value: &[u8], out: &mut BTreeSet<u64>) -> Result<(), StoreError> {
    if value.is_empty() {
        out.extend(keys::trailing_u64(key));
        return Ok(());
    }
    block::for_each_id(value, |seq| {
        out.insert(seq);
    })
    .map_err(corrupt)
}

/// A conversation's index state (`n app conv`): the last seq indexed, the next block number,
/// and the open blocks, oldest first ([`tiers::encode_open`]). The value of the layout before
/// blocks is the watermark alone.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct ConvState {
    watermark: u64,
    next_block: u64,
    open: Vec<OpenBlock>,
}

impl ConvState {
    fn decode(value: Option<&[u8]>) -> Result<Self, StoreError> {
        let Some(v) = value else {
            return Ok(Self::default());
        };
        let bad = || StoreError::Corrupt("search index: bad conversation state".into());
        let watermark = keys::be_u64(v, 0).ok_or_else(bad)?;
        if v.len() == 8 {
            return Ok(Self {
                watermark,
                ..Self::default()
            });
        }
        let next_block = keys::be_u64(v, 8).ok_or_else(bad)?;
        let open = tiers::decode_open(v.get(16..).ok_or_else(bad)?).ok_or_else(bad)?;
        Ok(Self {
            watermark,
            next_block,
            open,
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.open.len() * tiers::OPEN_BYTES);
        out.extend_from_slice(&self.watermark.to_be_bytes());
        out.extend_from_slice(&self.next_block.to_be_bytes());
        tiers::encode_open(&self.open, &mut out);
        out
    }
}

/// What one [`flush`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Messages read and indexed (revoked and missing ones included).
    pub messages: usize,
    /// Something is left for the next flush (the batch was full).
    pub more: bool,
}

/// What one flush indexes in one conversation.
#[derive(Debug, Default)]
struct Indexed {
    /// The conversation's state as the flush changes it.
    state: ConvState,
    /// The state changed.
    dirty: bool,
    /// Messages with postings.
    messages: u64,
    grams: Grams,
}

/// One flush's work: (app, conv) → what it indexes there.
type Flush = BTreeMap<(u64, Vec<u8>), Indexed>;

/// The entry of `conv` in `work`, its state read on first use.
fn conv_work<'w>(
    work: &'w mut Flush,
    txn: &Txn<'_>,
    app: u64,
    conv: &[u8],
) -> Result<&'w mut Indexed, StoreError> {
    let k = (app, conv.to_vec());
    if !work.contains_key(&k) {
        let state = ConvState::decode(txn.get(&state_key(app, conv))?.as_deref())?;
        work.insert(
            k.clone(),
            Indexed {
                state,
                ..Indexed::default()
            },
        );
    }
    work.get_mut(&k)
        .ok_or_else(|| StoreError::Corrupt("search index: lost a conversation".into()))
}

/// Reads the message at `seq` of `conv` (as the transaction sees it) and adds its grams.
fn index_one(txn: &Txn<'_>, conv: &mut Indexed, key: Vec<u8>, seq: u64) -> Result<(), StoreError> {
    let Some(raw) = txn.get(&key)? else {
        return Ok(()); // pruned, or a seq that never held a message
    };
    let m = pb::Message::decode(raw.as_slice())?;
    if m.revoked {
        return Ok(());
    }
    let text = crate::search::searchable_text(&m);
    let mut any = false;
    for g in gram_slices(&text) {
        any = true;
        push_gram(&mut conv.grams, g, seq);
    }
    conv.messages += u64::from(any);
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
    /// Messages with postings.
    messages: u64,
    grams: Grams,
}

impl Memory {
    /// Takes what `txn` indexed (in append order).
    pub(crate) fn absorb(&mut self, txn: &mut Txn<'_>) {
        for (app, conv, seq, text) in txn.take_indexed() {
            let held = self.convs.entry((app, conv)).or_insert_with(|| Held {
                from: seq,
                to: seq,
                ..Held::default()
            });
            held.to = held.to.max(seq);
            held.from = held.from.min(seq);
            let mut any = false;
            for g in gram_slices(&text) {
                any = true;
                push_gram(&mut held.grams, g, seq);
            }
            held.messages += u64::from(any);
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
/// and changed ones) — one block of postings per conversation, the open blocks merged as they
/// gather, the watermarks moved, the marks removed — staged in `txn`.
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
    let mut work = Flush::new();
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
        let first_held = memory.first_held(app, &conv);
        let w = conv_work(&mut work, txn, app, &conv)?;
        match seq {
            Some(seq) => {
                index_one(txn, w, message_key(app, &conv, seq), seq)?;
                done.messages += 1;
                txn.del(key);
            }
            None => {
                let from = w.state.watermark + 1;
                let head = txn.get_u64(&head_key(app, &conv))?;
                // Memory holds the rest from its first seq on.
                let stop = first_held.map_or(head, |f| f - 1);
                let budget = (FLUSH_BATCH - done.messages) as u64;
                let to = stop.min(from.saturating_add(budget) - 1);
                for seq in from..=to {
                    index_one(txn, w, message_key(app, &conv, seq), seq)?;
                }
                done.messages += to.saturating_sub(from - 1) as usize;
                if to >= from {
                    w.state.watermark = to;
                    w.dirty = true;
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
        let w = conv_work(&mut work, txn, app, &conv)?;
        if held.from > w.state.watermark + 1 {
            // The store's backlog before it is not read yet: a later flush.
            done.more = true;
            memory.convs.insert((app, conv), held);
            continue;
        }
        done.messages += (held.to + 1).saturating_sub(held.from) as usize;
        w.messages += held.messages;
        if w.grams.is_empty() {
            w.grams = held.grams;
        } else {
            for (gram, seqs) in held.grams {
                w.grams.entry(gram).or_default().extend(seqs);
            }
        }
        if held.to > w.state.watermark {
            w.state.watermark = held.to;
            w.dirty = true;
        }
        if held.to >= txn.get_u64(&head_key(app, &conv))? {
            txn.del(mark_key(app, &conv).done());
        }
    }
    for ((app, conv), mut w) in work {
        if w.messages > 0 {
            write_block(txn, app, &conv, &mut w.state, w.messages, w.grams)?;
            w.dirty = true;
        }
        if w.dirty {
            txn.put(state_key(app, &conv), w.state.encode());
        }
    }
    Ok(done)
}

/// Writes the postings of `messages` messages of `conv` as its next block, then runs the
/// merges of the tiered policy ([`tiers::add_block`]; a merged block takes the number of the
/// first it replaces, so blocks stay in order).
fn write_block(
    txn: &mut Txn<'_>,
    app: u64,
    conv: &[u8],
    state: &mut ConvState,
    messages: u64,
    grams: Grams,
) -> Result<(), StoreError> {
    let block = state.next_block;
    state.next_block += 1;
    txn.put(block_key(app, conv, block), encode_block(messages, grams));
    for merge in tiers::add_block(&mut state.open, block, messages, |s| s[0].block) {
        let mut grams = Grams::default();
        let mut messages = 0;
        for b in &merge.sources {
            let key = block_key(app, conv, b.block);
            match txn.get(&key)? {
                Some(v) => messages += decode_block(&v, &mut grams, |seq| seq).map_err(corrupt)?,
                None => tracing::warn!("search index: an open block is missing"),
            }
            txn.del(key);
        }
        txn.put(
            block_key(app, conv, merge.into.block),
            encode_block(messages, grams),
        );
    }
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
    let watermark = get_u64(store, &state_key(app, conv))?;
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
/// `None` when the keyword is too short for the index: from every block (per block, the seqs
/// holding all the grams), and from the chunks of the layout before blocks. Add [`pending`]
/// (read first) for the messages not indexed yet.
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
    let mut out = BTreeSet::new();
    let (start, end) = blocks_prefix(app, conv).prefix_range();
    for (_, v) in store.scan(&start, &end, usize::MAX, false)? {
        block_lookup(&v, &gs, &mut out).map_err(corrupt)?;
    }
    let mut acc: Option<BTreeSet<u64>> = None;
    for g in &gs {
        let (start, end) = gram_prefix(app, conv, g).prefix_range();
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
    out.extend(acc.unwrap_or_default());
    Ok(Some(out))
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

        /// The conversation's blocks: (number, messages).
        fn blocks(&self, conv: &[u8]) -> Vec<(u64, u64)> {
            let (start, end) = blocks_prefix(1, conv).prefix_range();
            self.store
                .scan(&start, &end, usize::MAX, false)
                .unwrap()
                .into_iter()
                .map(|(k, v)| {
                    let n = keys::trailing_u64(&k).unwrap();
                    (
                        n,
                        block::for_each_entry(&v, |_, _| Ok::<_, BlockError>(true)).unwrap(),
                    )
                })
                .collect()
        }

        fn state(&self, conv: &[u8]) -> ConvState {
            ConvState::decode(self.store.get(&state_key(1, conv)).unwrap().as_deref()).unwrap()
        }

        /// Stores `n` messages of `conv` and flushes each (a quiet conversation).
        fn trickle(&mut self, conv: &[u8], n: usize, t: &str) {
            for _ in 0..n {
                self.send(conv, t);
                assert_eq!(self.flush(), flushed(1, false));
            }
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
        let too_long = [0xff; 11];
        assert!(decode_seqs(b"k", &too_long, &mut one).is_err());
    }

    #[test]
    fn the_conversation_state_round_trips_and_reads_the_watermark_alone() {
        let s = ConvState {
            watermark: 70_000,
            next_block: 9,
            open: vec![
                OpenBlock {
                    block: 0,
                    level: 1,
                    messages: 300,
                },
                OpenBlock {
                    block: 8,
                    level: 0,
                    messages: 2,
                },
            ],
        };
        assert_eq!(ConvState::decode(Some(&s.encode())).unwrap(), s);
        // The value of the layout before blocks: the watermark alone.
        let old = 42u64.to_be_bytes();
        assert_eq!(
            ConvState::decode(Some(&old)).unwrap(),
            ConvState {
                watermark: 42,
                ..ConvState::default()
            }
        );
        assert_eq!(ConvState::decode(None).unwrap(), ConvState::default());
        assert!(ConvState::decode(Some(&s.encode()[..20])).is_err());
    }

    #[test]
    fn stored_messages_are_pending_until_flushed_into_one_block_per_conversation() {
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
        // One flush writes one block and the state per conversation, and removes the marks.
        let mut txn = Txn::new(&f.store, &[]);
        assert_eq!(
            flush(&f.store, &mut txn, &mut f.memory).unwrap(),
            flushed(3, false)
        );
        let staged = txn.into_staged();
        let mut wrote: Vec<&Vec<u8>> = staged.keys().collect();
        wrote.sort();
        let mut expected = [
            block_key(1, &conv, 0),
            block_key(1, &other, 0),
            state_key(1, &conv),
            state_key(1, &other),
            mark_key(1, &conv).done(),
            mark_key(1, &other).done(),
        ];
        expected.sort();
        assert_eq!(wrote, expected.iter().collect::<Vec<_>>());
        apply(&f.store, staged);
        assert_eq!(pending(&f.store, 1, &conv).unwrap(), BTreeSet::new());
        assert_eq!(f.found(&conv, "world"), [1]);
        assert_eq!(f.found(&conv, "ello"), [1, 2]);
        assert_eq!(f.found(&conv, "zzz"), Vec::<u64>::new());
        assert_eq!(f.found(&other, "world"), [1]);
        // The next flush writes the next block; a search reads both.
        f.send(&conv, "mellow world");
        assert_eq!(f.found(&conv, "zzz"), [3], "pending until flushed");
        assert_eq!(f.flush(), flushed(1, false));
        assert_eq!(f.found(&conv, "world"), [1, 3]);
        assert_eq!(f.found(&conv, "llow"), [2, 3]);
        assert_eq!(f.blocks(&conv), [(0, 2), (1, 1)]);
        let state = f.state(&conv);
        assert_eq!((state.watermark, state.next_block), (3, 2));
        assert_eq!(f.flush(), flushed(0, false));
        let (lo, hi) = ([tag::SEARCH_QUEUE], [tag::SEARCH_QUEUE + 1]);
        assert_eq!(f.store.scan(&lo, &hi, 10, false).unwrap(), vec![]);
    }

    #[test]
    fn a_busy_flush_writes_a_final_block() {
        let mut f = Fixture::default();
        let conv = keys::group_conv("big");
        let n = SEAL_MESSAGES as usize + 5;
        for i in 0..n {
            f.send(&conv, &format!("msg {i} abc"));
        }
        assert_eq!(f.flush(), flushed(n, false));
        assert_eq!(f.blocks(&conv), [(0, n as u64)]);
        assert_eq!(f.state(&conv).open, []);
        assert_eq!(f.found(&conv, "abc").len(), n);
        assert_eq!(f.found(&conv, "msg 1027 "), [1028]);
    }

    #[test]
    fn a_quiet_conversations_blocks_merge_level_by_level() {
        let mut f = Fixture::default();
        let conv = keys::c2c_conv("alice", "bob");
        f.trickle(&conv, FANOUT - 1, "abc");
        assert_eq!(f.blocks(&conv).len(), FANOUT - 1);
        // The FANOUT-th block of level 0: the eight merge into one of level 1 (number 0).
        f.trickle(&conv, 1, "abcd");
        assert_eq!(f.blocks(&conv), [(0, FANOUT as u64)]);
        let level1 = OpenBlock {
            block: 0,
            level: 1,
            messages: FANOUT as u64,
        };
        assert_eq!(f.state(&conv).open, [level1]);
        assert_eq!(f.found(&conv, "abc"), (1..=8).collect::<Vec<u64>>());
        assert_eq!(f.found(&conv, "bcd"), [8]);
        // Six more level-1 blocks and seven level-0 ones, then one more message cascades them
        // into one level-2 block.
        f.trickle(&conv, FANOUT * (FANOUT - 2) + FANOUT - 1, "abc");
        assert_eq!(f.state(&conv).open.len(), 2 * (FANOUT - 1));
        f.trickle(&conv, 1, "xyz");
        assert_eq!(f.blocks(&conv), [(0, (FANOUT * FANOUT) as u64)]);
        assert_eq!(f.state(&conv).open[0].level, 2);
        let all = (FANOUT * FANOUT) as u64;
        assert_eq!(f.found(&conv, "abc"), (1..all).collect::<Vec<u64>>());
        assert_eq!(f.found(&conv, "xyz"), [all]);
        // Level MAX_LEVEL is final: 8 level-2 blocks merge into one that is never merged again.
        let n = FANOUT.pow(u32::from(MAX_LEVEL)) - FANOUT * FANOUT;
        f.trickle(&conv, n, "abc");
        assert_eq!(f.blocks(&conv), [(0, (n + FANOUT * FANOUT) as u64)]);
        assert_eq!(f.state(&conv).open, []);
        assert_eq!(f.found(&conv, "xyz"), [all]);
        assert_eq!(f.found(&conv, "abc").len(), n + FANOUT * FANOUT - 1);
        // The next block starts anew.
        f.trickle(&conv, 1, "abc");
        assert_eq!(f.blocks(&conv).len(), 2);
    }

    #[test]
    fn a_search_reads_blocks_pending_messages_and_memory_across_a_restart() {
        let mut f = Fixture::default();
        let conv = keys::group_conv("club");
        f.trickle(&conv, 3, "blue whale");
        f.send(&conv, "grey whale");
        f.flush();
        // Stored but not flushed, then the process restarts: memory is lost, the marks stay.
        f.send(&conv, "white whale");
        f.send(&conv, "orca");
        f.memory = Memory::default();
        assert_eq!(pending(&f.store, 1, &conv).unwrap(), [5, 6].into());
        // After the restart: held in memory again.
        f.send(&conv, "whale song");
        assert_eq!(f.found(&conv, "whale"), [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(f.found(&conv, "orca"), [5, 6, 7], "pending: candidates");
        // The flush reads 5 and 6 back, takes 7 from memory: one more block.
        assert_eq!(f.flush(), flushed(3, false));
        assert_eq!(pending(&f.store, 1, &conv).unwrap(), BTreeSet::new());
        assert_eq!(f.found(&conv, "whale"), [1, 2, 3, 4, 5, 7]);
        assert_eq!(f.found(&conv, "orca"), [6]);
        assert_eq!(f.found(&conv, "grey whale"), [4]);
        assert_eq!(f.found(&conv, "le so"), [7]);
        assert_eq!(
            f.blocks(&conv),
            [(0, 1), (1, 1), (2, 1), (3, 1), (4, 3)],
            "three single flushes, one of 4, one of 5–7"
        );
    }

    #[test]
    fn chunks_of_the_layout_before_blocks_stay_readable() {
        let mut f = Fixture::default();
        let conv = keys::c2c_conv("alice", "bob");
        // Before blocks: a posting key per (gram, message), then chunks, and the watermark.
        let legacy = gram_prefix(1, &conv, "abc").n(1).done();
        let chunk = gram_prefix(1, &conv, "abc").n(u64::MAX).done();
        let wm = 2u64.to_be_bytes();
        f.store
            .apply(&[
                (legacy.as_slice(), Some(&[][..])),
                (chunk.as_slice(), Some(&encode_seqs(&[2].into())[..])),
                (state_key(1, &conv).as_slice(), Some(&wm[..])),
                (head_key(1, &conv).as_slice(), Some(&wm[..])),
            ])
            .unwrap();
        assert_eq!(f.send(&conv, "abcd"), 3);
        assert_eq!(f.found(&conv, "abc"), [1, 2, 3]);
        assert_eq!(f.flush(), flushed(1, false));
        assert_eq!(f.found(&conv, "abc"), [1, 2, 3]);
        assert_eq!(f.found(&conv, "bcd"), [3]);
        assert_eq!(f.blocks(&conv), [(0, 1)]);
        assert_eq!(f.state(&conv).watermark, 3);
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
}
