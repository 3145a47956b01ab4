//! The seed's checks of a local media file before anything is created or uploaded: 7004 when it
//! is missing (or not a regular file), 7006 when empty, 7005 over the size limit of its kind
//! (image and sound 28 MB, video and file 100 MB), and the MIME type the file store is told.

use std::path::Path;

use chime_proto::codes;

use crate::ApiError;

/// One megabyte as the seed counts file limits.
const MB: u64 = 1024 * 1024;

/// What a file is for; decides its size limit and MIME type family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// An image (origin) or a video snapshot.
    Image,
    /// A sound.
    Sound,
    /// A video.
    Video,
    /// Any file.
    File,
}

impl FileKind {
    /// The size limit in bytes.
    pub fn limit(self) -> u64 {
        match self {
            FileKind::Image | FileKind::Sound => 28 * MB,
            FileKind::Video | FileKind::File => 100 * MB,
        }
    }

    /// The limit as the error text says it.
    fn limit_text(self) -> &'static str {
        match self {
            FileKind::Image | FileKind::Sound => "28 MB",
            FileKind::Video | FileKind::File => "100 MB",
        }
    }
}

/// Checks a file given under parameter `field` and answers its size.
pub fn check(field: &str, path: &str, kind: FileKind) -> Result<u64, ApiError> {
    let size = checked_size(field, path)?;
    if size > kind.limit() {
        return Err(ApiError::new(
            codes::ERR_FILE_TOO_LARGE,
            format!(
                "{field} {path}: {size} bytes is over the limit of {}",
                kind.limit_text()
            ),
        ));
    }
    Ok(size)
}

/// The size of a regular, non-empty file (7004 / 7006 otherwise).
pub fn checked_size(field: &str, path: &str) -> Result<u64, ApiError> {
    if path.is_empty() {
        return Err(ApiError::invalid_param(format!("{field} is empty")));
    }
    let meta = std::fs::metadata(Path::new(path)).map_err(|e| {
        ApiError::new(
            codes::ERR_FILE_NOT_FOUND,
            format!("{field} {path}: file not found ({e})"),
        )
    })?;
    if !meta.is_file() {
        return Err(ApiError::new(
            codes::ERR_FILE_NOT_FOUND,
            format!("{field} {path}: not a regular file"),
        ));
    }
    if meta.len() == 0 {
        return Err(ApiError::new(
            codes::ERR_EMPTY_FILE,
            format!("{field} {path}: the file is empty"),
        ));
    }
    Ok(meta.len())
}

/// The lower-case extension of a path ("" when none).
pub fn extension(path: &str) -> String {
    Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default()
}

/// The MIME type of a sound file, from its extension.
pub fn sound_type(path: &str) -> String {
    let sub = match extension(path).as_str() {
        "mp3" => "mpeg",
        "m4a" | "mp4" => "mp4",
        "wav" => "wav",
        "ogg" | "opus" => "ogg",
        "aac" => "aac",
        "amr" => "amr",
        "silk" => "silk",
        _ => "octet-stream",
    };
    format!("audio/{sub}")
}

/// The MIME type of a video given its `video_type` ("mp4", "mov", ...).
pub fn video_type(video_type: &str) -> String {
    let sub = match video_type.to_ascii_lowercase().as_str() {
        "mov" => "quicktime".to_owned(),
        "" => "octet-stream".to_owned(),
        other if other.chars().all(|c| c.is_ascii_alphanumeric()) => other.to_owned(),
        _ => "octet-stream".to_owned(),
    };
    format!("video/{sub}")
}

/// The MIME type of an arbitrary file.
pub const FILE_TYPE: &str = "application/octet-stream";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_empty_and_oversize_files_get_the_seed_codes() {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name).display().to_string();
        let e = check("image_path", &p("nope.png"), FileKind::Image).unwrap_err();
        assert_eq!(e.code, 7004);
        assert!(e.desc.starts_with("image_path "), "{}", e.desc);
        std::fs::write(p("empty"), b"").unwrap();
        assert_eq!(
            check("f", &p("empty"), FileKind::File).unwrap_err().code,
            7006
        );
        assert_eq!(
            check("f", dir.path().to_str().unwrap(), FileKind::File)
                .unwrap_err()
                .code,
            7004
        );
        let big = std::fs::File::create(p("big")).unwrap();
        big.set_len(28 * MB + 1).unwrap();
        let e = check("sound_path", &p("big"), FileKind::Sound).unwrap_err();
        assert_eq!(e.code, 7005);
        assert!(e.desc.ends_with("over the limit of 28 MB"), "{}", e.desc);
        assert_eq!(
            check("video_file_path", &p("big"), FileKind::Video).unwrap(),
            28 * MB + 1
        );
        big.set_len(28 * MB).unwrap();
        assert_eq!(
            check("sound_path", &p("big"), FileKind::Sound).unwrap(),
            28 * MB
        );
        assert_eq!(check("f", "", FileKind::File).unwrap_err().code, 6017);
    }

    #[test]
    fn mime_types_stay_in_their_family() {
        assert_eq!(sound_type("/a/b.M4A"), "audio/mp4");
        assert_eq!(sound_type("/a/b"), "audio/octet-stream");
        assert_eq!(video_type("mp4"), "video/mp4");
        assert_eq!(video_type("MOV"), "video/quicktime");
        assert_eq!(video_type("x/../y"), "video/octet-stream");
    }
}
