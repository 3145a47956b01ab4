//! A block of search postings: the one encoding both keyword indexes write (the server's cloud
//! index per conversation, the engine's local index per account), so that a flush of many
//! messages is one stored value instead of one per gram.
//!
//! A block maps each gram of the messages it indexes to their ids (`u64`: a seq on the server,
//! an ordinal into the block's own table of locations on the engine). Its value: the number of
//! messages indexed into it (varint), then each gram in ascending byte order, length-prefixed,
//! with its ids (ascending, distinct, as delta varints), length-prefixed. Grams in order let a
//! lookup stop at the first wanted gram the block lacks.
//!
//! Postings are built in memory keyed by the gram packed into a `u128` ([`pack`]), hashed by a
//! seeded mix ([`GramHash`]): no string per gram, a fraction of SipHash's cost on a short key.
//! Everything here is I/O-free; the indexes own their keys and their crash models.

use std::collections::{BTreeSet, HashMap};

/// A malformed block or id list (a corrupt stored value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// A varint longer than ten bytes or cut short.
    #[error("search index: bad varint")]
    BadVarint,
    /// A length-prefixed field longer than what remains.
    #[error("search index: truncated value")]
    Truncated,
    /// A gram longer than [`MAX_PACKED`] bytes (no gram of `gram_slices` is).
    #[error("search block: gram too long")]
    GramTooLong,
}

/// A gram packed into a `u128`: its bytes from the most significant end, zero-padded, and its
/// length in the lowest byte. Distinct grams pack distinctly and packed order is the grams'
/// byte order (a gram is at most 12 bytes: three chars of up to 4).
pub type Packed = u128;

/// The longest gram [`pack`] takes.
pub const MAX_PACKED: usize = 15;

/// `gram` packed, or `None` when it is longer than [`MAX_PACKED`] bytes.
pub fn pack(gram: &[u8]) -> Option<Packed> {
    if gram.len() > MAX_PACKED {
        return None;
    }
    let mut b = [0u8; 16];
    b[..gram.len()].copy_from_slice(gram);
    b[MAX_PACKED] = gram.len() as u8;
    Some(u128::from_be_bytes(b))
}

/// The bytes of a packed gram: a buffer and how many of its bytes are the gram.
pub fn unpack(p: Packed) -> ([u8; 16], usize) {
    let b = p.to_be_bytes();
    let n = usize::from(b[MAX_PACKED]).min(MAX_PACKED);
    (b, n)
}

/// Postings being built: packed gram → ids (any order, repeats allowed; sorted when encoded).
pub type Postings = HashMap<Packed, Vec<u64>, GramHash>;

/// Adds `id` to the postings of `gram`, once per message when a message's grams are added
/// together (consecutive repeats of an id are dropped; [`encode_block`] drops any other).
pub fn push_gram(postings: &mut Postings, gram: &str, id: u64) {
    let Some(packed) = pack(gram.as_bytes()) else {
        return; // not a gram of `gram_slices`
    };
    let ids = postings.entry(packed).or_default();
    if ids.last() != Some(&id) {
        ids.push(id);
    }
}

/// Hashes [`Packed`] grams: a seeded mix of the two halves. The seed is random per process, so
/// that texts cannot be made to collide.
#[derive(Debug, Clone, Copy)]
pub struct GramHash {
    seed: u64,
}

impl Default for GramHash {
    fn default() -> Self {
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let seed = *SEED.get_or_init(|| {
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0)
        });
        Self { seed }
    }
}

impl std::hash::BuildHasher for GramHash {
    type Hasher = GramHasher;
    fn build_hasher(&self) -> GramHasher {
        GramHasher(self.seed)
    }
}

/// The hasher of [`GramHash`].
#[derive(Debug)]
pub struct GramHasher(u64);

/// A 64-bit finalizer (every input bit reaches every output bit).
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl std::hash::Hasher for GramHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = mix(self.0 ^ v);
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = mix(mix(self.0 ^ v as u64) ^ (v >> 64) as u64);
    }
}

/// Appends `v` to `out` as a varint (7 bits a byte, low first).
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends `bytes` to `out`, prefixed by their length as a varint.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends `ids` (ascending, distinct) to `out` as delta varints.
pub fn append_ids(out: &mut Vec<u8>, ids: impl IntoIterator<Item = u64>) {
    let mut prev = 0;
    for id in ids {
        put_varint(out, id - prev);
        prev = id;
    }
}

/// `ids` (ascending) as delta varints: a chunk's value, a block's postings of one gram.
pub fn encode_ids(ids: &BTreeSet<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(ids.len() * 2);
    append_ids(&mut out, ids.iter().copied());
    out
}

/// Reads a value made of varints and length-prefixed byte strings.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    /// What is not read yet.
    pub rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `value` from its start.
    pub fn new(value: &'a [u8]) -> Self {
        Self { rest: value }
    }

    /// The next varint.
    pub fn varint(&mut self) -> Result<u64, BlockError> {
        let mut v = 0u64;
        for (i, &byte) in self.rest.iter().enumerate() {
            if i > 9 {
                break;
            }
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok(v);
            }
        }
        Err(BlockError::BadVarint)
    }

    /// The next length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8], BlockError> {
        let n = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
        if n > self.rest.len() {
            return Err(BlockError::Truncated);
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }
}

/// Calls `f` with each id of an id list (delta varints), in order.
pub fn for_each_id(value: &[u8], mut f: impl FnMut(u64)) -> Result<(), BlockError> {
    let mut r = Reader::new(value);
    let mut prev = 0u64;
    while !r.rest.is_empty() {
        prev = prev.saturating_add(r.varint()?);
        f(prev);
    }
    Ok(())
}

/// A block's value (module doc) of `messages` messages and their `postings`.
pub fn encode_block(messages: u64, postings: Postings) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + postings.len() * 8);
    append_block(&mut out, messages, postings);
    out
}

/// Appends a block's value (module doc) to `out`.
pub fn append_block(out: &mut Vec<u8>, messages: u64, postings: Postings) {
    let mut entries: Vec<(Packed, Vec<u64>)> = postings.into_iter().collect();
    entries.sort_unstable_by_key(|e| e.0);
    put_varint(out, messages);
    let mut id_bytes = Vec::new();
    for (gram, mut ids) in entries {
        ids.sort_unstable();
        ids.dedup();
        id_bytes.clear();
        append_ids(&mut id_bytes, ids);
        let (bytes, n) = unpack(gram);
        put_bytes(out, &bytes[..n]);
        put_bytes(out, &id_bytes);
    }
}

/// Calls `f` with each (gram, id list bytes) of a block value, in order, after its message
/// count; stops when `f` answers false. Answers the message count.
pub fn for_each_entry<'a, E: From<BlockError>>(
    value: &'a [u8],
    mut f: impl FnMut(&'a [u8], &'a [u8]) -> Result<bool, E>,
) -> Result<u64, E> {
    let mut r = Reader::new(value);
    let messages = r.varint()?;
    while !r.rest.is_empty() {
        let gram = r.bytes()?;
        let ids = r.bytes()?;
        if !f(gram, ids)? {
            break;
        }
    }
    Ok(messages)
}

/// Adds a block's postings to `into`, each id through `id` (a merge renumbering them); answers
/// its number of messages.
pub fn decode_block(
    value: &[u8],
    into: &mut Postings,
    mut id: impl FnMut(u64) -> u64,
) -> Result<u64, BlockError> {
    for_each_entry(value, |gram, ids| {
        let gram = pack(gram).ok_or(BlockError::GramTooLong)?;
        let list = into.entry(gram).or_default();
        for_each_id(ids, |i| list.push(id(i)))?;
        Ok::<_, BlockError>(true)
    })
}

/// Adds to `out` the ids of a block holding every gram of `wanted` (distinct grams, in order).
pub fn block_lookup(
    value: &[u8],
    wanted: &BTreeSet<String>,
    out: &mut BTreeSet<u64>,
) -> Result<(), BlockError> {
    let mut next = wanted.iter().peekable();
    let mut acc: Option<BTreeSet<u64>> = None;
    let mut missing = false;
    for_each_entry(value, |gram, ids| {
        let Some(w) = next.peek() else {
            return Ok(false);
        };
        match w.as_bytes().cmp(gram) {
            // Entries are in order: `w` is not in the block.
            std::cmp::Ordering::Less => {
                missing = true;
                Ok(false)
            }
            std::cmp::Ordering::Equal => {
                next.next();
                let mut set = BTreeSet::new();
                for_each_id(ids, |id| {
                    if acc.as_ref().is_none_or(|a| a.contains(&id)) {
                        set.insert(id);
                    }
                })?;
                let empty = set.is_empty();
                acc = Some(set);
                Ok::<_, BlockError>(!empty)
            }
            std::cmp::Ordering::Greater => Ok(true),
        }
    })?;
    if !missing && next.peek().is_none() {
        out.extend(acc.unwrap_or_default());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{gram_slices, grams};
    use super::*;

    #[test]
    fn ids_round_trip_as_delta_varints() {
        let ids: BTreeSet<u64> = [1, 2, 130, 20_000, u64::MAX / 2].into();
        let bytes = encode_ids(&ids);
        assert_eq!(&bytes[..3], &[1, 1, 128]);
        let mut back = BTreeSet::new();
        for_each_id(&bytes, |i| {
            back.insert(i);
        })
        .unwrap();
        assert_eq!(back, ids);
        assert_eq!(for_each_id(&[0x80], |_| {}), Err(BlockError::BadVarint));
        assert_eq!(for_each_id(&[0xff; 11], |_| {}), Err(BlockError::BadVarint));
        let mut r = Reader::new(&[5, 1, 2]);
        assert_eq!(r.bytes(), Err(BlockError::Truncated));
    }

    #[test]
    fn a_block_answers_the_ids_holding_every_gram() {
        let mut g = Postings::default();
        for (id, text) in [
            (3, "hello world"),
            (5, "yellow"),
            (9, "world peace"),
            (4, "abc"),
        ] {
            for gram in gram_slices(text) {
                push_gram(&mut g, gram, id);
            }
        }
        let block = encode_block(4, g.clone());
        let mut back = Postings::default();
        assert_eq!(decode_block(&block, &mut back, |i| i).unwrap(), 4);
        // Decoded in order, without the repeats of "hello world"'s "l" grams.
        for ids in g.values_mut() {
            ids.sort_unstable();
        }
        assert_eq!(back, g);
        let find = |keyword: &str| {
            let mut out = BTreeSet::new();
            block_lookup(&block, &grams(keyword), &mut out).unwrap();
            out.into_iter().collect::<Vec<_>>()
        };
        assert_eq!(find("world"), [3, 9]);
        assert_eq!(find("ello"), [3, 5]);
        assert_eq!(find("o wor"), [3]);
        assert_eq!(find("abc"), [4]);
        // A gram the block lacks: before, between and after its grams.
        assert_eq!(find("aaa"), Vec::<u64>::new());
        assert_eq!(find("worldz"), Vec::<u64>::new());
        assert_eq!(find("zzz"), Vec::<u64>::new());
        // Grams all present, never in one message.
        assert_eq!(find("abcworld"), Vec::<u64>::new());
        assert_eq!(
            decode_block(&block[..block.len() - 1], &mut back, |i| i),
            Err(BlockError::Truncated)
        );
        // Renumbered while decoded (a merge).
        let mut shifted = Postings::default();
        decode_block(&block, &mut shifted, |i| i + 100).unwrap();
        assert_eq!(shifted[&pack(b"abc").unwrap()], [104]);
    }

    #[test]
    fn a_blocks_bytes_are_the_documented_layout() {
        let mut g = Postings::default();
        push_gram(&mut g, "bcd", 7);
        push_gram(&mut g, "abc", 7);
        push_gram(&mut g, "abc", 2);
        push_gram(&mut g, "abc", 7);
        assert_eq!(
            encode_block(2, g),
            [2, 3, b'a', b'b', b'c', 2, 2, 5, 3, b'b', b'c', b'd', 1, 7]
        );
    }

    #[test]
    fn packed_grams_are_distinct_and_in_byte_order() {
        let grams = ["", "a", "a\0", "ab", "abc", "abd", "b", "你好吗", "😀😀😀"];
        let packed: Vec<Packed> = grams.iter().map(|g| pack(g.as_bytes()).unwrap()).collect();
        let mut sorted = packed.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, packed, "distinct, in the order of the grams' bytes");
        for (g, p) in grams.iter().zip(&packed) {
            let (bytes, n) = unpack(*p);
            assert_eq!(&bytes[..n], g.as_bytes());
        }
        assert_eq!(pack(&[b'x'; 16]), None);
        assert!(pack(&[b'x'; 15]).is_some());
    }
}
