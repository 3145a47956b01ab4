//! Normalisation: the text the matcher sees, with a map back to the original characters.
//!
//! People evade word filters by changing case (`FuCk`), using full-width forms (`ｆｕｃｋ`) or
//! inserting separators between letters (`f.u.c.k`, `f u c k`, `f\u{200B}uck`). Normalising both
//! the terms and the text the same way (case-fold, full-width → ASCII, drop separators) turns all
//! of these into the plain term, so one Aho-Corasick pass finds them. Every normalised byte
//! remembers which original character it came from, so a match can be mapped back and exactly the
//! original characters (separators inside the match included) can be starred.

/// Zero-width and invisible characters that render as nothing.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}')
}

/// Characters dropped from the normalised text: whitespace, punctuation and invisible characters.
pub fn is_separator(c: char) -> bool {
    is_invisible(c)
        || c.is_whitespace()
        || c.is_ascii_punctuation()
        || matches!(
            c,
            '\u{3001}' | '\u{3002}' | '\u{00B7}' | '\u{30FB}' | '\u{2026}' | '\u{2010}'..='\u{2015}'
                | '\u{2018}'..='\u{201F}' | '\u{300C}'..='\u{300F}' | '\u{FF61}'..='\u{FF65}'
        )
}

/// Folds full-width ASCII forms (U+FF01..U+FF5E) and the ideographic space to their ASCII forms.
pub fn fold_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// Scripts written without spaces between words: terms in them match anywhere.
pub fn is_unspaced_script(c: char) -> bool {
    matches!(
        c,
        '\u{3040}'..='\u{30FF}'   // Hiragana, Katakana
            | '\u{3400}'..='\u{4DBF}' // CJK extension A
            | '\u{4E00}'..='\u{9FFF}' // CJK unified ideographs
            | '\u{F900}'..='\u{FAFF}' // CJK compatibility ideographs
            | '\u{AC00}'..='\u{D7AF}' // Hangul syllables
            | '\u{20000}'..='\u{2FFFF}'
    )
}

/// A letter or digit of a spaced script: a term touching one needs a word boundary there.
pub fn is_word_char(c: char) -> bool {
    let c = fold_width(c);
    c.is_alphanumeric() && !is_unspaced_script(c)
}

/// A normalised text and the way back to the original.
#[derive(Debug, Default)]
pub struct Normalized {
    /// What the matcher searches.
    pub text: String,
    /// For every byte of `text`, the byte offset in the original text of the character it came
    /// from.
    pub origin: Vec<u32>,
}

/// ASCII bytes that are separators (whitespace and punctuation), as a lookup table.
const ASCII_SEPARATOR: [bool; 128] = {
    let mut table = [false; 128];
    let mut byte = 0;
    while byte < 128 {
        let c = byte as u8;
        table[byte] = c.is_ascii_whitespace() || c.is_ascii_punctuation() || c == 0x0B;
        byte += 1;
    }
    table
};

/// Normalises `input` (see the module doc) into `out`, reusing its buffers.
pub fn normalize_into(input: &str, out: &mut Normalized) {
    out.text.clear();
    out.origin.clear();
    out.text.reserve(input.len());
    out.origin.reserve(input.len());
    let bytes = input.as_bytes();
    let mut offset = 0;
    while offset < bytes.len() {
        let byte = bytes[offset];
        if byte < 0x80 {
            // The common case: one ASCII byte, no decoding.
            if !ASCII_SEPARATOR[byte as usize] {
                out.text.push(byte.to_ascii_lowercase() as char);
                out.origin.push(offset as u32);
            }
            offset += 1;
            continue;
        }
        let Some(original) = input[offset..].chars().next() else {
            break;
        };
        let origin = offset as u32;
        offset += original.len_utf8();
        if is_unspaced_script(original) {
            // No case, never a separator.
            out.text.push(original);
            out.origin
                .extend(std::iter::repeat_n(origin, original.len_utf8()));
            continue;
        }
        let c = fold_width(original);
        if is_separator(c) {
            continue;
        }
        if c.is_ascii() {
            out.text.push(c.to_ascii_lowercase());
            out.origin.push(origin);
        } else {
            for lower in c.to_lowercase() {
                out.text.push(lower);
                out.origin
                    .extend(std::iter::repeat_n(origin, lower.len_utf8()));
            }
        }
    }
}

/// Normalises one term of a word list (no map back needed).
pub fn normalize_term(term: &str) -> String {
    let mut out = Normalized::default();
    normalize_into(term, &mut out);
    out.text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evasions_normalise_to_the_plain_term() {
        for evasion in [
            "FuCk",
            "ｆｕｃｋ",
            "f.u.c.k",
            "f u c k",
            "f\u{200B}u\u{200B}c\u{200B}k",
            "F_U-C*K",
        ] {
            assert_eq!(normalize_term(evasion), "fuck", "{evasion:?}");
        }
        assert_eq!(normalize_term("笨 蛋"), "笨蛋");
    }

    #[test]
    fn origin_points_at_the_original_characters() {
        let mut out = Normalized::default();
        normalize_into("a.Ｂ笨", &mut out);
        assert_eq!(out.text, "ab笨");
        // 'a' at 0, '.' at 1 (dropped), 'Ｂ' (3 bytes) at 2, '笨' (3 bytes) at 5.
        assert_eq!(out.origin, vec![0, 2, 5, 5, 5]);
    }
}
