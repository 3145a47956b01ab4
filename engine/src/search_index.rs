//! The local search index: character trigrams of each stored message's searchable text, so that
//! `search_local_messages` reads the postings of a keyword instead of every message.
//!
//! Keywords match as case-insensitive substrings (the seed's rule, which also serves languages
//! written without spaces), so the index holds every trigram of the lowercased text, one key per
//! (trigram, message location): `w trigram \0 location` → empty. A keyword of three characters or
//! more selects the messages holding all of its trigrams; each candidate is then checked against
//! the full criteria, so the index only narrows and never decides. Keywords shorter than three
//! characters (and searches by sender or type alone) scan the messages instead.
//!
//! The index is maintained by the MessageActor in the same write batch as the message itself
//! ([`stage_add`] when a message is written at a location, [`stage_del`] when it leaves one), so
//! it is never behind the store. Revoked messages are not indexed.

use std::collections::BTreeSet;

use crate::model::{StoredMessage, elem_kind};
use crate::store::{Store, StoreError, WriteBatch, keys};

/// Characters per gram.
const GRAM: usize = 3;
/// Candidate count below which the remaining grams are not scanned (the candidates are checked
/// against the keyword itself anyway).
const NARROW_ENOUGH: usize = 256;

/// The searchable text of a message, lowercased: text elems, custom elems' description,
/// extension and UTF-8 data.
pub fn searchable_text(m: &StoredMessage) -> String {
    let mut s = String::new();
    for e in &m.elems {
        match e.kind {
            elem_kind::TEXT => s.push_str(&e.text),
            elem_kind::CUSTOM => {
                s.push_str(&e.description);
                s.push('\n');
                s.push_str(&e.extension);
                s.push('\n');
                if let Ok(d) = std::str::from_utf8(&e.data) {
                    s.push_str(d);
                }
            }
            _ => {}
        }
        s.push('\n');
    }
    s.to_lowercase()
}

/// The distinct trigrams of `text` (already lowercased); none when shorter than three characters.
pub fn grams(text: &str) -> BTreeSet<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .windows(GRAM)
        .filter(|w| !w.contains(&'\0'))
        .map(|w| w.iter().collect())
        .collect()
}

fn posting_prefix(gram: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + gram.len());
    k.push(keys::table::SEARCH);
    k.extend_from_slice(gram.as_bytes());
    k.push(0);
    k
}

fn posting(gram: &str, loc: &[u8]) -> Vec<u8> {
    let mut k = posting_prefix(gram);
    k.extend_from_slice(loc);
    k
}

fn indexed(m: &StoredMessage) -> Option<BTreeSet<String>> {
    (!m.revoked).then(|| grams(&searchable_text(m)))
}

/// Indexes `m`, stored at `loc`.
pub fn stage_add(b: &mut WriteBatch, loc: &[u8], m: &StoredMessage) {
    for g in indexed(m).unwrap_or_default() {
        b.put(posting(&g, loc), Vec::new());
    }
}

/// Removes the postings of `m`, stored at `loc` until now.
pub fn stage_del(b: &mut WriteBatch, loc: &[u8], m: &StoredMessage) {
    for g in indexed(m).unwrap_or_default() {
        b.delete(posting(&g, loc));
    }
}

/// The locations of the messages that may contain `keyword` (lowercased) — a superset of those
/// that do — or `None` when the keyword is too short for the index.
pub fn candidates(
    store: &dyn Store,
    keyword: &str,
) -> Result<Option<BTreeSet<Vec<u8>>>, StoreError> {
    let gs = grams(keyword);
    if gs.is_empty() {
        return Ok(None);
    }
    let mut acc: Option<BTreeSet<Vec<u8>>> = None;
    for g in gs {
        let lo = posting_prefix(&g);
        // The prefix ends in `\0`: every posting of the gram sorts below the same prefix ending
        // in `\x01`.
        let mut hi = lo.clone();
        if let Some(last) = hi.last_mut() {
            *last = 1;
        }
        let locs: BTreeSet<Vec<u8>> = store
            .scan(&lo, &hi, false, usize::MAX)?
            .into_iter()
            .map(|(k, _)| k[lo.len()..].to_vec())
            .filter(|l| acc.as_ref().is_none_or(|a| a.contains(l)))
            .collect();
        let small = locs.len() <= NARROW_ENOUGH;
        acc = Some(locs);
        // Few enough candidates: reading and checking them costs less than scanning the
        // postings of the remaining grams (which may be common ones).
        if small {
            break;
        }
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::text_elem;
    use crate::store::MemoryStore;

    fn msg(text: &str) -> StoredMessage {
        StoredMessage {
            elems: vec![text_elem(text)],
            ..Default::default()
        }
    }

    #[test]
    fn grams_are_lowercase_character_trigrams() {
        assert_eq!(
            grams(&searchable_text(&msg("AbCd"))),
            ["abc", "bcd", "cd\n"]
                .into_iter()
                .map(String::from)
                .collect()
        );
        assert!(grams("ab").is_empty());
        assert_eq!(grams("你好吗").len(), 1);
    }

    #[test]
    fn candidates_follow_adds_and_deletes() {
        let store = MemoryStore::new();
        let mut b = WriteBatch::new();
        stage_add(&mut b, b"m-1", &msg("hello world"));
        stage_add(&mut b, b"m-2", &msg("yellow"));
        store.apply(b).unwrap();
        let c = |k: &str| candidates(&store, k).unwrap();
        assert_eq!(c("ello"), Some([b"m-1".to_vec(), b"m-2".to_vec()].into()));
        assert_eq!(c("world"), Some([b"m-1".to_vec()].into()));
        assert_eq!(c("zzz"), Some(BTreeSet::new()));
        assert_eq!(c("he"), None);
        let mut b = WriteBatch::new();
        stage_del(&mut b, b"m-1", &msg("hello world"));
        store.apply(b).unwrap();
        assert_eq!(c("ello"), Some([b"m-2".to_vec()].into()));
        let mut revoked = msg("yellow");
        revoked.revoked = true;
        let mut b = WriteBatch::new();
        stage_add(&mut b, b"m-3", &revoked);
        store.apply(b).unwrap();
        assert_eq!(c("yellow"), Some([b"m-2".to_vec()].into()));
    }
}
