//! The on-disk block format: what one flush of the background writer appends to a day file.
//!
//! A file is nothing but blocks back to back. Each block is self-delimiting (a fixed 44-byte
//! header that carries the body length) and self-checking (a CRC32 of the header and one of the
//! body), so a reader can tell an intact block from a damaged one and, after damage, find the
//! next block again by scanning for the magic. `docs/logging.md` gives the layout byte by byte;
//! this module is its single implementation on both sides (writer and decoder).
//!
//! All integers are little-endian.
//!
//! | offset | size | field                                                   |
//! |-------:|-----:|---------------------------------------------------------|
//! |      0 |    4 | magic `CXLG` (`43 58 4C 47`)                            |
//! |      4 |    1 | format version, `1`                                     |
//! |      5 |    1 | compression, `1` = raw deflate (RFC 1951)               |
//! |      6 |    2 | reserved, `0`                                           |
//! |      8 |    4 | sequence number of the block                            |
//! |     12 |    8 | first line's time, ms since the Unix epoch (UTC)        |
//! |     20 |    8 | last line's time, ms since the Unix epoch (UTC)         |
//! |     28 |    4 | number of lines in the body                             |
//! |     32 |    4 | body length in bytes (compressed)                       |
//! |     36 |    4 | CRC32 (IEEE) of the body bytes                          |
//! |     40 |    4 | CRC32 (IEEE) of header bytes 0..40                      |
//! |     44 |    n | body: deflate of the lines, each ending with `\n`       |

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;

/// The four bytes every block starts with.
pub const MAGIC: [u8; 4] = *b"CXLG";
/// The format version written and understood.
pub const VERSION: u8 = 1;
/// The compression code for raw deflate.
pub const COMPRESSION_DEFLATE: u8 = 1;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 44;
/// The largest body a reader accepts (a sanity bound against a damaged length field).
pub const MAX_BODY_LEN: u32 = 16 * 1024 * 1024;
/// The largest inflated body a reader accepts (a bound against decompression bombs).
pub const MAX_TEXT_LEN: u64 = 64 * 1024 * 1024;

/// The fields of a block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Sequence number (counts up from 0 each time a logger starts).
    pub seq: u32,
    /// Time of the first line, ms since the Unix epoch.
    pub first_ms: u64,
    /// Time of the last line, ms since the Unix epoch.
    pub last_ms: u64,
    /// Number of lines in the body.
    pub lines: u32,
    /// Length of the compressed body.
    pub body_len: u32,
    /// CRC32 of the compressed body.
    pub body_crc: u32,
}

/// Why a header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes.
    Short,
    /// The first four bytes are not [`MAGIC`].
    BadMagic,
    /// The header's own CRC does not match.
    BadHeaderCrc,
    /// A version or compression this reader does not know, or a body length over the bound.
    Unsupported,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl BlockHeader {
    /// The header's 44 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4] = VERSION;
        h[5] = COMPRESSION_DEFLATE;
        h[8..12].copy_from_slice(&self.seq.to_le_bytes());
        h[12..20].copy_from_slice(&self.first_ms.to_le_bytes());
        h[20..28].copy_from_slice(&self.last_ms.to_le_bytes());
        h[28..32].copy_from_slice(&self.lines.to_le_bytes());
        h[32..36].copy_from_slice(&self.body_len.to_le_bytes());
        h[36..40].copy_from_slice(&self.body_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[0..40]);
        h[40..44].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Reads a header from the start of `b`.
    pub fn decode(b: &[u8]) -> Result<BlockHeader, HeaderError> {
        if b.len() < HEADER_LEN {
            return Err(HeaderError::Short);
        }
        if b[0..4] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        if crc32fast::hash(&b[0..40]) != u32_at(b, 40) {
            return Err(HeaderError::BadHeaderCrc);
        }
        let header = BlockHeader {
            seq: u32_at(b, 8),
            first_ms: u64_at(b, 12),
            last_ms: u64_at(b, 20),
            lines: u32_at(b, 28),
            body_len: u32_at(b, 32),
            body_crc: u32_at(b, 36),
        };
        if b[4] != VERSION || b[5] != COMPRESSION_DEFLATE || header.body_len > MAX_BODY_LEN {
            return Err(HeaderError::Unsupported);
        }
        Ok(header)
    }
}

/// Builds one block (header + compressed body) from the text of its lines.
///
/// `text` is the lines, each terminated by `\n`; `lines` is their count.
pub fn encode_block(
    seq: u32,
    first_ms: u64,
    last_ms: u64,
    lines: u32,
    text: &[u8],
) -> std::io::Result<Vec<u8>> {
    let mut enc = DeflateEncoder::new(Vec::with_capacity(text.len() / 4 + 64), Compression::fast());
    enc.write_all(text)?;
    let body = enc.finish()?;
    let body_len = u32::try_from(body.len())
        .ok()
        .filter(|len| *len <= MAX_BODY_LEN)
        .ok_or_else(|| std::io::Error::other("block body over the size bound"))?;
    let header = BlockHeader {
        seq,
        first_ms,
        last_ms,
        lines,
        body_len,
        body_crc: crc32fast::hash(&body),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Inflates a block body, refusing more than [`MAX_TEXT_LEN`] bytes of text.
pub fn inflate_body(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::with_capacity(body.len() * 4);
    DeflateDecoder::new(body)
        .take(MAX_TEXT_LEN + 1)
        .read_to_end(&mut text)?;
    if text.len() as u64 > MAX_TEXT_LEN {
        return Err(std::io::Error::other("block text over the size bound"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_detects_damage() {
        let h = BlockHeader {
            seq: 7,
            first_ms: 1_000,
            last_ms: 2_000,
            lines: 3,
            body_len: 10,
            body_crc: 0xdead_beef,
        };
        let bytes = h.encode();
        assert_eq!(&bytes[0..4], b"CXLG");
        assert_eq!(BlockHeader::decode(&bytes), Ok(h));
        let mut bad = bytes;
        bad[9] ^= 1;
        assert_eq!(BlockHeader::decode(&bad), Err(HeaderError::BadHeaderCrc));
        assert_eq!(BlockHeader::decode(&bytes[..43]), Err(HeaderError::Short));
        bad = bytes;
        bad[0] = b'X';
        assert_eq!(BlockHeader::decode(&bad), Err(HeaderError::BadMagic));
    }

    #[test]
    fn block_body_inflates_to_the_text() -> std::io::Result<()> {
        let text = b"one\ntwo\n";
        let block = encode_block(0, 5, 6, 2, text)?;
        let header =
            BlockHeader::decode(&block).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        assert_eq!(header.lines, 2);
        assert_eq!(header.body_len as usize, block.len() - HEADER_LEN);
        assert_eq!(header.body_crc, crc32fast::hash(&block[HEADER_LEN..]));
        assert_eq!(inflate_body(&block[HEADER_LEN..])?, text.to_vec());
        Ok(())
    }
}
