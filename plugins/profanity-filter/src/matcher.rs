//! The matcher: every term in one Aho-Corasick automaton, searched once over the normalised text.
//!
//! Terms of spaced scripts (Latin, Cyrillic, ...) only match as whole words: the original
//! character before the match and the one after it must not be letters or digits, so `ass` does not
//! star `class` or `pass`. Terms of unspaced scripts (Chinese, Japanese, Korean) match anywhere. The
//! search reports overlapping matches (still one pass), so a candidate rejected at a word boundary
//! cannot hide a valid one that overlaps it; the valid ones are then taken leftmost-longest.

use aho_corasick::{AhoCorasick, MatchKind};

use crate::normalize::{Normalized, is_word_char, normalize_into, normalize_term};

/// Boundary needs of one pattern.
#[derive(Debug, Clone, Copy)]
struct Edges {
    start: bool,
    end: bool,
}

/// A compiled term list.
#[derive(Debug)]
pub struct Matcher {
    automaton: AhoCorasick,
    edges: Vec<Edges>,
}

/// A match, as a byte range of the original text (separators inside the match included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Byte offset of the first original character.
    pub start: usize,
    /// Byte offset just past the last original character.
    pub end: usize,
}

/// Scratch buffers reused across calls of one thread.
#[derive(Debug, Default)]
pub struct Scratch {
    normalized: Normalized,
    candidates: Vec<Span>,
}

impl Matcher {
    /// Compiles `terms` (normalised here; empty and duplicate terms dropped).
    pub fn new<I, S>(terms: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns: Vec<String> = terms
            .into_iter()
            .map(|term| normalize_term(term.as_ref()))
            .filter(|term| !term.is_empty())
            .collect();
        patterns.sort_unstable();
        patterns.dedup();
        if patterns.is_empty() {
            return Err("no terms to filter: give word_lists or words".to_owned());
        }
        let edges = patterns
            .iter()
            .map(|pattern| Edges {
                start: pattern.chars().next().is_some_and(is_word_char),
                end: pattern.chars().next_back().is_some_and(is_word_char),
            })
            .collect();
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .map_err(|error| format!("cannot build the matcher: {error}"))?;
        Ok(Self { automaton, edges })
    }

    /// Heap bytes used by the automaton.
    pub fn memory_usage(&self) -> usize {
        self.automaton.memory_usage()
    }

    /// The number of distinct normalised terms.
    pub fn term_count(&self) -> usize {
        self.edges.len()
    }

    /// Finds the non-overlapping matches in `text`, leftmost-longest, as original byte ranges.
    pub fn find(&self, text: &str, scratch: &mut Scratch) -> Vec<Span> {
        normalize_into(text, &mut scratch.normalized);
        let origin = &scratch.normalized.origin;
        scratch.candidates.clear();
        for found in self
            .automaton
            .find_overlapping_iter(scratch.normalized.text.as_str())
        {
            let edges = self.edges[found.pattern().as_usize()];
            let start = origin[found.start()] as usize;
            let last = origin[found.end() - 1] as usize;
            let end = last + text[last..].chars().next().map_or(1, char::len_utf8);
            if edges.start && text[..start].chars().next_back().is_some_and(is_word_char) {
                continue;
            }
            if edges.end && text[end..].chars().next().is_some_and(is_word_char) {
                continue;
            }
            scratch.candidates.push(Span { start, end });
        }
        scratch
            .candidates
            .sort_unstable_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut taken: Vec<Span> = Vec::new();
        for span in &scratch.candidates {
            if taken
                .last()
                .is_none_or(|previous| span.start >= previous.end)
            {
                taken.push(*span);
            }
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(matcher: &Matcher, text: &str) -> Vec<(usize, usize)> {
        let mut scratch = Scratch::default();
        matcher
            .find(text, &mut scratch)
            .iter()
            .map(|span| (span.start, span.end))
            .collect()
    }

    #[test]
    fn latin_terms_need_word_boundaries() {
        let matcher = Matcher::new(["ass", "shit"]).unwrap();
        assert_eq!(spans(&matcher, "class pass"), vec![]);
        assert_eq!(spans(&matcher, "an ass!"), vec![(3, 6)]);
        assert_eq!(spans(&matcher, "this hit"), vec![]);
        assert_eq!(spans(&matcher, "s.h.i.t happens"), vec![(0, 7)]);
    }

    #[test]
    fn chinese_terms_match_anywhere() {
        let matcher = Matcher::new(["笨蛋"]).unwrap();
        assert_eq!(spans(&matcher, "你是笨蛋吗"), vec![(6, 12)]);
    }

    #[test]
    fn overlapping_candidates_take_the_longest_valid_one() {
        let matcher = Matcher::new(["ass", "asshole"]).unwrap();
        assert_eq!(spans(&matcher, "you asshole"), vec![(4, 11)]);
        assert_eq!(spans(&matcher, "ass hole"), vec![(0, 8)]);
    }
}
