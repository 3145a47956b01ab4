//! Content sniffing: the file store does not take a declared `image/*`, `audio/*` or `video/*`
//! type on trust. The first bytes of the upload must carry the magic of a format of that kind
//! (a table of signatures: JPEG, PNG, GIF, WebP, BMP, TIFF, ICO, HEIC/AVIF; MP3, AAC, FLAC, WAV,
//! Ogg, AMR, SILK, M4A; MP4, QuickTime, 3GP, Matroska/WebM, AVI, FLV, MPEG), and an image must be
//! the very format declared (the engine declares what it decoded). Containers that hold either
//! sound or video (MP4, Ogg, Matroska) pass for both kinds. Other kinds (`text/*`,
//! `application/*`) are not checked: a file message may be anything.
//!
//! Pure functions: the HTTP layer calls [`check`] on the first [`SNIFF_BYTES`] of an upload.

/// How many leading bytes [`check`] needs (fewer only when the whole file is shorter).
pub const SNIFF_BYTES: usize = 32;

/// What the leading bytes say a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    /// The format's MIME type.
    pub mime: &'static str,
    /// The declared top-level types it satisfies (`image`, `audio`, `video`).
    pub kinds: &'static [&'static str],
}

const IMAGE: &[&str] = &["image"];
const AUDIO: &[&str] = &["audio"];
const VIDEO: &[&str] = &["video"];
const AV: &[&str] = &["video", "audio"];

fn sniffed(mime: &'static str, kinds: &'static [&'static str]) -> Option<Sniffed> {
    Some(Sniffed { mime, kinds })
}

/// The format of a file starting with `head`, if its signature is known.
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if at(0, b"\xFF\xD8\xFF") {
        return sniffed("image/jpeg", IMAGE);
    }
    if at(0, b"\x89PNG\r\n\x1A\n") {
        return sniffed("image/png", IMAGE);
    }
    if at(0, b"GIF87a") || at(0, b"GIF89a") {
        return sniffed("image/gif", IMAGE);
    }
    if at(0, b"RIFF") {
        return match head.get(8..12) {
            Some(b"WEBP") => sniffed("image/webp", IMAGE),
            Some(b"WAVE") => sniffed("audio/wav", AUDIO),
            Some(b"AVI ") => sniffed("video/x-msvideo", VIDEO),
            _ => None,
        };
    }
    if at(0, b"BM") && head.len() >= 14 {
        return sniffed("image/bmp", IMAGE);
    }
    if at(0, b"II*\0") || at(0, b"MM\0*") {
        return sniffed("image/tiff", IMAGE);
    }
    if at(0, b"\0\0\x01\0") {
        return sniffed("image/x-icon", IMAGE);
    }
    if at(4, b"ftyp") {
        return match head.get(8..12) {
            Some(b"heic" | b"heix" | b"mif1" | b"msf1" | b"hevc") => sniffed("image/heic", IMAGE),
            Some(b"avif" | b"avis") => sniffed("image/avif", IMAGE),
            Some(b"M4A " | b"M4B ") => sniffed("audio/mp4", AV),
            Some(b"qt  ") => sniffed("video/quicktime", AV),
            Some(b"3gp4" | b"3gp5" | b"3gp6" | b"3g2a") => sniffed("video/3gpp", AV),
            Some(_) => sniffed("video/mp4", AV),
            None => None,
        };
    }
    // QuickTime files without `ftyp` start with another atom.
    if at(4, b"moov") || at(4, b"mdat") || at(4, b"wide") || at(4, b"free") {
        return sniffed("video/quicktime", AV);
    }
    if at(0, b"\x1A\x45\xDF\xA3") {
        return sniffed("video/webm", AV);
    }
    if at(0, b"OggS") {
        return sniffed("audio/ogg", AV);
    }
    if at(0, b"FLV\x01") {
        return sniffed("video/x-flv", VIDEO);
    }
    if at(0, b"\0\0\x01\xBA") || at(0, b"\0\0\x01\xB3") {
        return sniffed("video/mpeg", VIDEO);
    }
    if at(0, b"fLaC") {
        return sniffed("audio/flac", AUDIO);
    }
    if at(0, b"#!AMR") {
        return sniffed("audio/amr", AUDIO);
    }
    if at(0, b"#!SILK") || at(1, b"#!SILK") {
        return sniffed("audio/silk", AUDIO);
    }
    if at(0, b"ID3") {
        return sniffed("audio/mpeg", AUDIO);
    }
    // An MPEG audio frame (MP3) or an ADTS frame (AAC): 11 / 12 sync bits.
    if let [0xFF, second, ..] = head {
        if second & 0xF6 == 0xF0 {
            return sniffed("audio/aac", AUDIO);
        }
        if second & 0xE0 == 0xE0 {
            return sniffed("audio/mpeg", AUDIO);
        }
    }
    None
}

/// The same image format under another name (`jpg`, `x-ms-bmp`, ...).
fn image_alias(sub: &str) -> &str {
    match sub {
        "jpg" | "pjpeg" => "jpeg",
        "x-ms-bmp" | "x-bmp" => "bmp",
        "vnd.microsoft.icon" | "ico" => "x-icon",
        "heif" => "heic",
        other => other,
    }
}

/// Checks that `head` (the first [`SNIFF_BYTES`] of the file, or all of it) fits the
/// `declared` content type; answers why not.
pub fn check(declared: &str, head: &[u8]) -> Result<(), String> {
    let essence = declared
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let (kind, sub) = essence.split_once('/').unwrap_or((essence.as_str(), ""));
    if !matches!(kind, "image" | "audio" | "video") {
        return Ok(());
    }
    let Some(found) = sniff(head) else {
        return Err(format!(
            "the content is not a known {kind} format (declared {declared})"
        ));
    };
    if !found.kinds.contains(&kind) {
        return Err(format!(
            "the content is {}, not the declared {declared}",
            found.mime
        ));
    }
    if kind == "image" {
        let found_sub = found.mime.split_once('/').map_or("", |(_, s)| s);
        if image_alias(sub) != image_alias(found_sub) {
            return Err(format!(
                "the content is {}, not the declared {declared}",
                found.mime
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn padded(magic: &[u8]) -> Vec<u8> {
        let mut v = magic.to_vec();
        v.resize(SNIFF_BYTES, 0x55);
        v
    }

    #[test]
    fn signatures_are_recognised() {
        let cases: &[(&[u8], &str)] = &[
            (b"\xFF\xD8\xFF\xE0", "image/jpeg"),
            (b"\x89PNG\r\n\x1A\n", "image/png"),
            (b"GIF89a", "image/gif"),
            (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp"),
            (b"BM", "image/bmp"),
            (b"\0\0\0\x18ftypmp42", "video/mp4"),
            (b"\0\0\0\x18ftypisom", "video/mp4"),
            (b"\0\0\0\x14ftypqt  ", "video/quicktime"),
            (b"\0\0\0\x20ftypM4A ", "audio/mp4"),
            (b"\0\0\0\x18ftypheic", "image/heic"),
            (b"ID3\x04", "audio/mpeg"),
            (b"\xFF\xFB\x90", "audio/mpeg"),
            (b"\xFF\xF1\x50", "audio/aac"),
            (b"RIFF\0\0\0\0WAVEfmt ", "audio/wav"),
            (b"OggS\0", "audio/ogg"),
            (b"#!AMR\n", "audio/amr"),
            (b"\x02#!SILK_V3", "audio/silk"),
            (b"fLaC", "audio/flac"),
            (b"\x1A\x45\xDF\xA3", "video/webm"),
            (b"RIFF\0\0\0\0AVI LIST", "video/x-msvideo"),
        ];
        for (magic, mime) in cases {
            assert_eq!(sniff(&padded(magic)).map(|s| s.mime), Some(*mime), "{mime}");
        }
        assert_eq!(sniff(b"hello world, just text"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn declared_kinds_must_match_the_content() {
        let png = padded(b"\x89PNG\r\n\x1A\n");
        let jpeg = padded(b"\xFF\xD8\xFF\xE0");
        let mp4 = padded(b"\0\0\0\x18ftypisom");
        let mp3 = padded(b"ID3\x04");
        let text = padded(b"<html><script>");
        assert_eq!(check("image/png", &png), Ok(()));
        assert_eq!(check("image/jpeg", &jpeg), Ok(()));
        assert_eq!(check("image/jpg", &jpeg), Ok(()));
        assert_eq!(check("IMAGE/PNG; q=1", &png), Ok(()));
        assert!(check("image/png", &jpeg).is_err());
        assert!(
            check("image/png", &text)
                .unwrap_err()
                .contains("not a known image")
        );
        assert_eq!(check("video/mp4", &mp4), Ok(()));
        assert_eq!(check("audio/mp4", &mp4), Ok(()));
        assert_eq!(check("audio/mpeg", &mp3), Ok(()));
        assert_eq!(
            check("video/mp4", &mp3).unwrap_err(),
            "the content is audio/mpeg, not the declared video/mp4"
        );
        assert!(check("audio/mpeg", &png).is_err());
        // Files of other kinds may be anything.
        assert_eq!(check("application/octet-stream", &text), Ok(()));
        assert_eq!(check("text/plain", &png), Ok(()));
    }
}
