//! The keyword-search gram rule shared by the engine's local index (`search_local_messages`) and
//! the server's cloud index (`search_cloud_messages`), so that both index and query text the
//! same way.
//!
//! Searchable text is built from a message's pieces (text, custom description / extension /
//! data) joined by `\n` and lowercased; an index keeps, per message, the distinct [`grams`] of
//! that text. A keyword's grams must all be in a message's set for it to be a candidate (every
//! candidate is then checked against the keyword itself, so the index may over-answer but never
//! miss).
//!
//! Both indexes write their postings in [`block`]s, merged by one [`tiers`] policy.

use std::collections::BTreeSet;

pub mod block;
pub mod tiers;

/// Characters per gram.
pub const GRAM: usize = 3;

/// The separator between the pieces of a message's searchable text; no gram spans it.
pub const PIECE_SEPARATOR: char = '\n';

/// One searchable piece of a message's elem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A text elem's text.
    Text(&'a str),
    /// A custom elem: description, extension and data (searched when UTF-8).
    Custom {
        /// The description.
        description: &'a str,
        /// The extension.
        extension: &'a str,
        /// The data.
        data: &'a [u8],
    },
    /// Any other elem (nothing searchable).
    Other,
}

/// The searchable text of a message from its elems' pieces, lowercased: the pieces joined by
/// [`PIECE_SEPARATOR`] (one after each elem), so that no gram spans two of them.
pub fn searchable_text<'a>(pieces: impl IntoIterator<Item = Piece<'a>>) -> String {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => s.push_str(t),
            Piece::Custom {
                description,
                extension,
                data,
            } => {
                s.push_str(description);
                s.push(PIECE_SEPARATOR);
                s.push_str(extension);
                s.push(PIECE_SEPARATOR);
                if let Ok(d) = std::str::from_utf8(data) {
                    s.push_str(d);
                }
            }
            Piece::Other => {}
        }
        s.push(PIECE_SEPARATOR);
    }
    s.to_lowercase()
}

/// The distinct `GRAM`-character grams of `text` (expected lowercased), none spanning
/// [`PIECE_SEPARATOR`]; none when `text` is shorter than `GRAM` characters.
pub fn grams(text: &str) -> BTreeSet<String> {
    gram_slices(text).map(str::to_owned).collect()
}

/// Every `GRAM`-character gram of `text` as a slice of it, in order, repeats included, none
/// spanning [`PIECE_SEPARATOR`] (the gram rule of [`grams`], without allocating).
pub fn gram_slices(text: &str) -> impl Iterator<Item = &str> {
    let mut starts = text.char_indices().map(|(i, _)| i).chain([text.len()]);
    // A window of GRAM + 1 char boundaries: the gram is text[first..last].
    let mut window: [usize; GRAM + 1] = [0; GRAM + 1];
    let mut filled = 0;
    std::iter::from_fn(move || {
        loop {
            let next = starts.next()?;
            if filled <= GRAM {
                window[filled] = next;
                filled += 1;
            } else {
                window.rotate_left(1);
                window[GRAM] = next;
            }
            if filled == GRAM + 1 {
                let g = &text[window[0]..window[GRAM]];
                if !g.contains(PIECE_SEPARATOR) {
                    return Some(g);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grams_are_distinct_characters_not_bytes_and_never_span_pieces() {
        assert!(grams("ab").is_empty());
        assert_eq!(grams("你好吗").len(), 1);
        assert_eq!(
            grams("abcab").into_iter().collect::<Vec<_>>(),
            ["abc", "bca", "cab"]
        );
        assert_eq!(
            grams("ab\ncd").into_iter().collect::<Vec<_>>(),
            Vec::<String>::new()
        );
        assert_eq!(
            gram_slices("aé你b\ncdef").collect::<Vec<_>>(),
            ["aé你", "é你b", "cde", "def"]
        );
        assert_eq!(gram_slices("abab").collect::<Vec<_>>(), ["aba", "bab"]);
        assert_eq!(gram_slices("ab").count(), 0);
    }

    #[test]
    fn searchable_text_joins_pieces_lowercased() {
        let text = searchable_text([
            Piece::Text("Hi"),
            Piece::Other,
            Piece::Custom {
                description: "D",
                extension: "E",
                data: b"Zz",
            },
            Piece::Custom {
                description: "",
                extension: "",
                data: &[0xff],
            },
        ]);
        assert_eq!(text, "hi\n\nd\ne\nzz\n\n\n\n");
    }
}
