//! Length-prefixed byte fields: the one encoding of "several byte strings in one value", used by
//! the redo journal (a batch under one key) and the search index (many locations under one
//! posting chunk).

/// Appends `b` to `out` as a 4-byte little-endian length and the bytes.
pub fn put(out: &mut Vec<u8>, b: &[u8]) {
    // Keys and values are far below 4 GiB (frames are limited to 4 MiB).
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// The encoded size of a field of `len` bytes.
pub const fn size(len: usize) -> usize {
    4 + len
}

/// Takes the first `n` bytes off `bytes`, or `None` when fewer remain.
pub fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Some(head)
}

/// Takes one field written by [`put`] off `bytes`, or `None` when it is truncated.
pub fn next<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_le_bytes(take(bytes, 4)?.try_into().ok()?) as usize;
    take(bytes, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_truncation_is_seen() {
        let mut out = Vec::new();
        put(&mut out, b"ab");
        put(&mut out, b"");
        assert_eq!(out.len(), size(2) + size(0));
        let mut r = out.as_slice();
        assert_eq!(next(&mut r), Some(&b"ab"[..]));
        assert_eq!(next(&mut r), Some(&b""[..]));
        assert_eq!(next(&mut r), None);
        let mut cut = &out[..5];
        assert_eq!(next(&mut cut), None);
    }
}
