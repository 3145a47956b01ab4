//! Reading day files back: the library side of `chime-xlog decode`.
//!
//! The decoder walks the blocks of a file. An intact block (valid header CRC, complete body with
//! the right CRC, inflating to the announced number of lines) contributes its lines. Anything
//! else is damage: the decoder records where it starts and why, then resynchronises by scanning
//! forward for the next position that holds a valid header (magic plus matching header CRC) and
//! carries on from there. A file cut short (a crash during a write) therefore yields every block
//! before the cut, and a few flipped bytes cost only the block they hit.

use std::path::Path;

use crate::block::{self, BlockHeader, HEADER_LEN, HeaderError, MAGIC};
use crate::error::XlogError;

/// Why a region of a file was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    /// The file ends inside this block (or inside a header).
    Truncated,
    /// Bytes that do not start with a valid block header.
    BadHeader,
    /// A valid header whose body fails its CRC.
    BadBodyCrc,
    /// A body that does not inflate, or inflates to a different number of lines than announced.
    BadBody,
}

/// One damaged region of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    /// Byte offset where the region starts.
    pub offset: u64,
    /// Length of the region in bytes (up to the next intact block or the end of the file).
    pub len: u64,
    /// What was wrong at `offset`.
    pub kind: DamageKind,
    /// The sequence number of the block, when its header was readable.
    pub seq: Option<u32>,
}

/// What a decode found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeReport {
    /// Every line of every intact block, in file order, without the trailing newline.
    pub lines: Vec<String>,
    /// Number of intact blocks.
    pub blocks: u32,
    /// Total bytes skipped as damage.
    pub skipped_bytes: u64,
    /// The damaged regions, in file order.
    pub damaged_blocks: Vec<Damage>,
}

impl DecodeReport {
    /// Whether the whole input decoded without damage.
    pub fn is_intact(&self) -> bool {
        self.damaged_blocks.is_empty()
    }

    /// The lines as plain text, each followed by `\n` (what `chime-xlog decode` prints).
    pub fn text(&self) -> String {
        let mut out = String::with_capacity(self.lines.iter().map(|l| l.len() + 1).sum());
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// Decodes a day file.
pub fn decode_file(path: impl AsRef<Path>) -> Result<DecodeReport, XlogError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| XlogError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(decode_bytes(&bytes))
}

/// Decodes the bytes of a day file (or any concatenation of blocks).
pub fn decode_bytes(bytes: &[u8]) -> DecodeReport {
    let mut report = DecodeReport::default();
    let mut pos = 0usize;
    while pos < bytes.len() {
        match read_block(&bytes[pos..]) {
            Ok((len, lines)) => {
                report.blocks += 1;
                report.lines.extend(lines);
                pos += len;
            }
            Err((kind, seq)) => {
                let next = if kind == DamageKind::Truncated {
                    bytes.len()
                } else {
                    next_header(bytes, pos + 1)
                };
                let len = (next - pos) as u64;
                report.skipped_bytes += len;
                report.damaged_blocks.push(Damage {
                    offset: pos as u64,
                    len,
                    kind,
                    seq,
                });
                pos = next;
            }
        }
    }
    report
}

/// Reads the block at the start of `b`: its total length and lines, or what is wrong with it.
fn read_block(b: &[u8]) -> Result<(usize, Vec<String>), (DamageKind, Option<u32>)> {
    let header = match BlockHeader::decode(b) {
        Ok(h) => h,
        Err(HeaderError::Short)
            if b.len() < HEADER_LEN && MAGIC.starts_with(&b[..b.len().min(4)]) =>
        {
            return Err((DamageKind::Truncated, None));
        }
        Err(_) => return Err((DamageKind::BadHeader, None)),
    };
    let seq = Some(header.seq);
    let end = HEADER_LEN + header.body_len as usize;
    if b.len() < end {
        return Err((DamageKind::Truncated, seq));
    }
    let body = &b[HEADER_LEN..end];
    if crc32fast::hash(body) != header.body_crc {
        return Err((DamageKind::BadBodyCrc, seq));
    }
    let text = block::inflate_body(body).map_err(|_| (DamageKind::BadBody, seq))?;
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.len() != header.lines as usize {
        return Err((DamageKind::BadBody, seq));
    }
    Ok((end, lines))
}

/// The offset of the first valid header at or after `from`, or the end of `bytes`.
fn next_header(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while at + MAGIC.len() <= bytes.len() {
        match bytes[at..].windows(MAGIC.len()).position(|w| w == MAGIC) {
            None => break,
            Some(off) => {
                let cand = at + off;
                let rest = &bytes[cand..];
                // A valid header, or a magic in the last bytes (a truncated header), ends the skip.
                if BlockHeader::decode(rest).is_ok() || rest.len() < HEADER_LEN {
                    return cand;
                }
                at = cand + 1;
            }
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::encode_block;

    fn block(seq: u32, lines: &[&str]) -> Vec<u8> {
        let mut text = String::new();
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        encode_block(seq, 1, 2, lines.len() as u32, text.as_bytes()).unwrap()
    }

    #[test]
    fn garbage_between_blocks_is_skipped_and_measured() {
        let mut bytes = block(0, &["a", "b"]);
        let first = bytes.len();
        bytes.extend_from_slice(b"xxxxCXLGyyyy");
        bytes.extend(block(1, &["c"]));
        let report = decode_bytes(&bytes);
        assert_eq!(report.lines, vec!["a", "b", "c"]);
        assert_eq!(report.blocks, 2);
        assert_eq!(report.skipped_bytes, 12);
        assert_eq!(
            report.damaged_blocks,
            vec![Damage {
                offset: first as u64,
                len: 12,
                kind: DamageKind::BadHeader,
                seq: None
            }]
        );
    }

    #[test]
    fn a_lying_line_count_is_damage() {
        let bytes = encode_block(4, 1, 2, 3, b"only\none\n").unwrap();
        let report = decode_bytes(&bytes);
        assert!(report.lines.is_empty());
        assert_eq!(report.damaged_blocks[0].kind, DamageKind::BadBody);
        assert_eq!(report.damaged_blocks[0].seq, Some(4));
        assert_eq!(report.skipped_bytes, bytes.len() as u64);
    }

    #[test]
    fn a_short_tail_is_truncation() {
        let mut bytes = block(0, &["a"]);
        let n = bytes.len();
        bytes.extend_from_slice(b"CXL");
        let report = decode_bytes(&bytes);
        assert_eq!(report.lines, vec!["a"]);
        assert_eq!(
            report.damaged_blocks,
            vec![Damage {
                offset: n as u64,
                len: 3,
                kind: DamageKind::Truncated,
                seq: None
            }]
        );
    }
}
