//! The tiered merge of search blocks ([`super::block`]), shared by the server's cloud index and
//! the engine's local index: when to merge which blocks, so that a search reads a bounded
//! number of small blocks and a message's postings are rewritten a bounded number of times.
//!
//! A block of [`SEAL_MESSAGES`] or more is final (never merged). Smaller ones are *open*: each
//! has a level (0 for a flush's block), and once the last [`FANOUT`] open blocks share a level
//! they merge into one block of the next level; a merged block of [`MAX_LEVEL`] (or of
//! [`SEAL_MESSAGES`] or more) is final. So a message is rewritten at most [`MAX_LEVEL`] times
//! and an index keeps at most `FANOUT - 1` open blocks per level. The open blocks are listed
//! oldest first, and their levels never increase along the list.
//!
//! [`add_block`] only plans: the index reads, merges and writes the blocks, and stores the
//! open list ([`encode_open`]) in its own state.

/// Messages in a block from which it is final (never merged again).
pub const SEAL_MESSAGES: u64 = 1024;
/// Open blocks of one level merged into one block of the next level.
pub const FANOUT: usize = 8;
/// Merges a message's postings go through at most: a block merged into this level is final.
pub const MAX_LEVEL: u8 = 3;

/// One open block (not final: merged once [`FANOUT`] of its level gather).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenBlock {
    /// The block's number (the index's key for it).
    pub block: u64,
    /// Its level: 0 for a flush's block, one more per merge.
    pub level: u8,
    /// Messages indexed into it.
    pub messages: u64,
}

/// Bytes of an [`OpenBlock`] in [`encode_open`]'s value.
pub const OPEN_BYTES: usize = 17;

/// One merge [`add_block`] plans: `sources` (in order) become one block, `into`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    /// The blocks merged, oldest first (each read, then removed unless it is `into`'s number).
    pub sources: Vec<OpenBlock>,
    /// The merged block (its number as the caller chose it; its level; the sum of the sources'
    /// messages).
    pub into: OpenBlock,
}

/// Adds the new block `block` of `messages` messages to the open list `open` (nothing when it
/// is final) and answers the merges to run, in order (a merge's block may be a source of the
/// next one). `number` names each merged block from its sources (the server reuses the first
/// source's number, keeping blocks in key order; the engine takes a fresh one).
pub fn add_block(
    open: &mut Vec<OpenBlock>,
    block: u64,
    messages: u64,
    mut number: impl FnMut(&[OpenBlock]) -> u64,
) -> Vec<Merge> {
    let mut merges = Vec::new();
    if messages >= SEAL_MESSAGES {
        return merges;
    }
    open.push(OpenBlock {
        block,
        level: 0,
        messages,
    });
    while let Some(at) = open.len().checked_sub(FANOUT) {
        let level = open[at].level;
        if open[at..].iter().any(|b| b.level != level) {
            break;
        }
        let sources: Vec<OpenBlock> = open.drain(at..).collect();
        let into = OpenBlock {
            block: number(&sources),
            level: level + 1,
            messages: sources.iter().map(|b| b.messages).sum(),
        };
        if into.messages < SEAL_MESSAGES && into.level < MAX_LEVEL {
            open.push(into);
        }
        merges.push(Merge { sources, into });
    }
    merges
}

/// Whether a merged block is final (not in the open list after its merge).
pub fn is_final(b: &OpenBlock) -> bool {
    b.messages >= SEAL_MESSAGES || b.level >= MAX_LEVEL
}

/// Appends the open list to `out`: per block its number (u64 BE), level (one byte) and
/// messages (u64 BE).
pub fn encode_open(open: &[OpenBlock], out: &mut Vec<u8>) {
    out.reserve(open.len() * OPEN_BYTES);
    for b in open {
        out.extend_from_slice(&b.block.to_be_bytes());
        out.push(b.level);
        out.extend_from_slice(&b.messages.to_be_bytes());
    }
}

/// The open list [`encode_open`] wrote, or `None` when `bytes` is not a whole number of
/// blocks.
pub fn decode_open(bytes: &[u8]) -> Option<Vec<OpenBlock>> {
    if !bytes.len().is_multiple_of(OPEN_BYTES) {
        return None;
    }
    let be = |c: &[u8]| <[u8; 8]>::try_from(c).ok().map(u64::from_be_bytes);
    bytes
        .chunks_exact(OPEN_BYTES)
        .map(|c| {
            Some(OpenBlock {
                block: be(&c[..8])?,
                level: c[8],
                messages: be(&c[9..])?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(block: u64, level: u8, messages: u64) -> OpenBlock {
        OpenBlock {
            block,
            level,
            messages,
        }
    }

    /// Adds `n` one-message blocks numbered from `*next`, merged blocks taking the first
    /// source's number; answers every merge.
    fn trickle(list: &mut Vec<OpenBlock>, next: &mut u64, n: usize) -> Vec<Merge> {
        let mut all = Vec::new();
        for _ in 0..n {
            all.extend(add_block(list, *next, 1, |s| s[0].block));
            *next += 1;
        }
        all
    }

    #[test]
    fn small_blocks_merge_level_by_level_and_big_ones_are_final() {
        let mut list = Vec::new();
        let mut next = 0;
        assert_eq!(add_block(&mut list, 99, SEAL_MESSAGES, |_| 0), []);
        assert_eq!(list, [], "a sealed block is never open");
        assert_eq!(trickle(&mut list, &mut next, FANOUT - 1), []);
        assert_eq!(list.len(), FANOUT - 1);
        // The FANOUT-th block of level 0: one merge into level 1, named by the caller.
        let merges = add_block(&mut list, 7, 1, |s| {
            assert_eq!(s.len(), FANOUT);
            500
        });
        next += 1;
        assert_eq!(
            merges,
            [Merge {
                sources: (0..8).map(|b| open(b, 0, 1)).collect(),
                into: open(500, 1, 8),
            }]
        );
        assert_eq!(list, [open(500, 1, 8)]);
        // Six more level-1 blocks and seven level-0 ones; the next block cascades: level 0
        // into level 1, then the eight of level 1 into level 2.
        trickle(&mut list, &mut next, FANOUT * (FANOUT - 2) + FANOUT - 1);
        assert_eq!(list.len(), 2 * (FANOUT - 1));
        let merges = trickle(&mut list, &mut next, 1);
        assert_eq!(merges.len(), 2);
        assert_eq!(merges[0].into.level, 1);
        assert_eq!(merges[1].sources.last(), Some(&merges[0].into));
        assert_eq!(list, [open(500, 2, 64)]);
        // Level MAX_LEVEL is final.
        let n = FANOUT.pow(u32::from(MAX_LEVEL)) - FANOUT * FANOUT;
        let merges = trickle(&mut list, &mut next, n);
        let last = merges.last().unwrap();
        assert_eq!(last.into, open(500, MAX_LEVEL, 512));
        assert!(is_final(&last.into));
        assert_eq!(list, []);
    }

    #[test]
    fn a_merge_that_reaches_the_seal_is_final() {
        let mut list = Vec::new();
        for b in 0..FANOUT as u64 - 1 {
            add_block(&mut list, b, 200, |s| s[0].block);
        }
        let merges = add_block(&mut list, 7, 200, |s| s[0].block);
        assert_eq!(merges[0].into, open(0, 1, 1600));
        assert!(is_final(&merges[0].into));
        assert_eq!(list, []);
    }

    #[test]
    fn the_open_list_round_trips() {
        let list = vec![open(0, 1, 300), open(8, 0, 2)];
        let mut bytes = Vec::new();
        encode_open(&list, &mut bytes);
        assert_eq!(bytes.len(), 2 * OPEN_BYTES);
        assert_eq!(decode_open(&bytes), Some(list));
        assert_eq!(decode_open(&bytes[..20]), None);
        assert_eq!(decode_open(&[]), Some(vec![]));
    }
}
