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

/// A match, in original character indices, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First original character.
    pub first: usize,
    /// Last original character.
    pub last: usize,
}

/// Scratch buffers reused across calls of one thread.
#[derive(Debug, Default)]
pub struct Scratch {
    chars: Vec<char>,
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

    /// The number of distinct normalised terms.
    pub fn term_count(&self) -> usize {
        self.edges.len()
    }

    /// Finds the non-overlapping matches in `text`, leftmost-longest, in original character
    /// indices. `scratch` holds the original characters afterwards (see [`Scratch::chars`]).
    pub fn find(&self, text: &str, scratch: &mut Scratch) -> Vec<Span> {
        normalize_into(text, &mut scratch.chars, &mut scratch.normalized);
        let chars = &scratch.chars;
        let origin = &scratch.normalized.origin;
        scratch.candidates.clear();
        for found in self
            .automaton
            .find_overlapping_iter(scratch.normalized.text.as_str())
        {
            let edges = self.edges[found.pattern().as_usize()];
            let first = origin[found.start()] as usize;
            let last = origin[found.end() - 1] as usize;
            if edges.start && first > 0 && is_word_char(chars[first - 1]) {
                continue;
            }
            if edges.end && chars.get(last + 1).is_some_and(|&c| is_word_char(c)) {
                continue;
            }
            scratch.candidates.push(Span { first, last });
        }
        scratch
            .candidates
            .sort_unstable_by(|a, b| a.first.cmp(&b.first).then(b.last.cmp(&a.last)));
        let mut taken: Vec<Span> = Vec::new();
        for span in &scratch.candidates {
            if taken
                .last()
                .is_none_or(|previous| span.first > previous.last)
            {
                taken.push(*span);
            }
        }
        taken
    }
}

impl Scratch {
    /// The original characters of the last searched text.
    pub fn chars(&self) -> &[char] {
        &self.chars
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
            .map(|span| (span.first, span.last))
            .collect()
    }

    #[test]
    fn latin_terms_need_word_boundaries() {
        let matcher = Matcher::new(["ass", "shit"]).unwrap();
        assert_eq!(spans(&matcher, "class pass"), vec![]);
        assert_eq!(spans(&matcher, "an ass!"), vec![(3, 5)]);
        assert_eq!(spans(&matcher, "this hit"), vec![]);
        assert_eq!(spans(&matcher, "s.h.i.t happens"), vec![(0, 6)]);
    }

    #[test]
    fn chinese_terms_match_anywhere() {
        let matcher = Matcher::new(["笨蛋"]).unwrap();
        assert_eq!(spans(&matcher, "你是笨蛋吗"), vec![(2, 3)]);
    }

    #[test]
    fn overlapping_candidates_take_the_longest_valid_one() {
        let matcher = Matcher::new(["ass", "asshole"]).unwrap();
        assert_eq!(spans(&matcher, "you asshole"), vec![(4, 10)]);
        assert_eq!(spans(&matcher, "ass hole"), vec![(0, 7)]);
    }
}
