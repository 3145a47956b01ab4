//! Rich media messages (issue 6): image, sound, video, file, location and face elems, the upload
//! stage that runs before a media message is sent, and downloads.
//!
//! **The record.** A media elem is stored as a [`MediaRecord`]: the elem exactly as it goes on
//! the wire (`pb::Elem`: uuids, sizes, dimensions, durations) plus, on the sending device, the
//! local files it is made of ([`LocalFile`]: the original image and its generated large and
//! thumb sizes, the sound, the video and its snapshot, the file). A file whose uuid is still empty
//! in the wire elem is not uploaded yet.
//!
//! **Pipeline.** `create_*_message` checks the files ([`files`]: 7004 / 7006 / 7005, 6031 for a
//! non-image) and builds the record ([`create`]; images are decoded and scaled by [`images`]) on
//! a blocking thread. `send_message` stores the message in the outbox as any other; when the
//! MessageActor is about to transmit it, the upload stage ([`upload`]) takes it first while any
//! of its files lacks a uuid, uploads them one by one through the uploader plugin (resumable:
//! the server keys an upload by `<msg_id>/<elem_index>/<variant>`), records each uuid in the
//! stored message, and hands it back to the normal send path when none is missing. Downloads
//! ([`download`]) fetch a signed URL from the server and let the plugin write the file, cached by
//! uuid.

pub mod append;
pub mod create;
pub mod download;
pub mod files;
pub mod images;
pub mod upload;

use chime_proto::pb::{self, elem::Content};

use crate::model::{StoredElem, StoredMessage, elem_kind};

/// File upload failed (the seed's `ERR_FILE_TRANS_UPLOAD_FAILED`).
pub const ERR_UPLOAD_FAILED: i32 = 6008;
/// File download failed (the seed's `ERR_FILE_TRANS_DOWNLOAD_FAILED`).
pub const ERR_DOWNLOAD_FAILED: i32 = 6009;

/// A media elem as stored: the wire elem plus the local files still to upload (sender only).
#[derive(Clone, PartialEq, prost::Message)]
pub struct MediaRecord {
    /// The elem as sent and received (urls left empty: they are asked for when needed).
    #[prost(message, optional, tag = "1")]
    pub elem: Option<pb::Elem>,
    /// The local files of the elem, on the device that created it.
    #[prost(message, repeated, tag = "2")]
    pub files: Vec<LocalFile>,
}

/// One local file of a media elem.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LocalFile {
    /// The variants this file is (`origin`, `large`, `thumb`, `sound`, `video`, `snapshot`,
    /// `file`); an image too small to scale is its own large and thumb. The first one names the
    /// upload (`resume_key`).
    #[prost(string, repeated, tag = "1")]
    pub variants: Vec<String>,
    /// Absolute path.
    #[prost(string, tag = "2")]
    pub path: String,
    /// MIME type sent to the file store.
    #[prost(string, tag = "3")]
    pub content_type: String,
    /// Size when created, in bytes (checked again before the upload).
    #[prost(uint64, tag = "4")]
    pub size: u64,
    /// File name shown to the receiver (file elems).
    #[prost(string, tag = "5")]
    pub file_name: String,
}

/// Image type of [`pb::ImageInfo::image_type`] (the proto's numbering).
pub mod image_type {
    /// The original.
    pub const ORIGIN: i32 = 1;
    /// The large size (shorter side 720).
    pub const LARGE: i32 = 2;
    /// The thumbnail (shorter side 198).
    pub const THUMB: i32 = 4;

    /// The api.md name of a type value.
    pub fn name(t: i32) -> &'static str {
        match t {
            LARGE => "large",
            THUMB => "thumb",
            _ => "origin",
        }
    }

    /// The type value of an api.md name.
    pub fn from_name(name: &str) -> Option<i32> {
        match name {
            "origin" => Some(ORIGIN),
            "large" => Some(LARGE),
            "thumb" => Some(THUMB),
            _ => None,
        }
    }
}

/// A remote file of an elem: its uuid and recorded size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// The file store's uuid ("" while not uploaded).
    pub uuid: String,
    /// Size in bytes.
    pub size: u64,
}

/// The stored elem kind of a wire content (media kinds only).
pub fn kind_of(content: &Content) -> Option<i32> {
    Some(match content {
        Content::Image(_) => elem_kind::IMAGE,
        Content::Sound(_) => elem_kind::SOUND,
        Content::Video(_) => elem_kind::VIDEO,
        Content::File(_) => elem_kind::FILE,
        Content::Location(_) => elem_kind::LOCATION,
        Content::Face(_) => elem_kind::FACE,
        _ => return None,
    })
}

/// A stored media elem holding `content` (and the local `files` of the sender).
pub fn elem(content: Content, files: Vec<LocalFile>) -> StoredElem {
    StoredElem {
        kind: kind_of(&content).unwrap_or_default(),
        media: Some(MediaRecord {
            elem: Some(pb::Elem {
                content: Some(content),
            }),
            files,
        }),
        ..Default::default()
    }
}

/// The wire content of a stored media elem.
pub fn content(e: &StoredElem) -> Option<&Content> {
    e.media.as_ref()?.elem.as_ref()?.content.as_ref()
}

/// The remote file of `variant` in a wire content (`None` when the content has no such file).
pub fn remote(content: &Content, variant: &str) -> Option<RemoteFile> {
    let file = |uuid: &str, size: u64| {
        Some(RemoteFile {
            uuid: uuid.to_owned(),
            size,
        })
    };
    match (content, variant) {
        (Content::Image(i), v) => {
            let t = image_type::from_name(v)?;
            let info = i.images.iter().find(|x| x.image_type == t)?;
            file(&info.uuid, info.size)
        }
        (Content::Sound(s), "sound") => file(&s.uuid, s.data_size),
        (Content::Video(v), "video") => file(&v.video_uuid, v.video_size),
        (Content::Video(v), "snapshot") => file(&v.snapshot_uuid, v.snapshot_size),
        (Content::File(f), "file") => file(&f.uuid, f.file_size),
        _ => None,
    }
}

/// Records the uploaded `uuid` of `variant` in a wire content.
pub fn set_uuid(content: &mut Content, variant: &str, uuid: &str) {
    match (content, variant) {
        (Content::Image(i), v) => {
            if let Some(t) = image_type::from_name(v) {
                for info in i.images.iter_mut().filter(|x| x.image_type == t) {
                    uuid.clone_into(&mut info.uuid);
                }
            }
        }
        (Content::Sound(s), "sound") => uuid.clone_into(&mut s.uuid),
        (Content::Video(v), "video") => uuid.clone_into(&mut v.video_uuid),
        (Content::Video(v), "snapshot") => uuid.clone_into(&mut v.snapshot_uuid),
        (Content::File(f), "file") => uuid.clone_into(&mut f.uuid),
        _ => {}
    }
}

/// Whether `file` of an elem still has to be uploaded (its first variant has no uuid).
pub fn is_pending(content: &Content, file: &LocalFile) -> bool {
    file.variants
        .first()
        .and_then(|v| remote(content, v))
        .is_some_and(|r| r.uuid.is_empty())
}

/// The next file of `m` to upload: `(elem_index, file)`.
pub fn next_upload(m: &StoredMessage) -> Option<(usize, &LocalFile)> {
    m.elems.iter().enumerate().find_map(|(i, e)| {
        let c = content(e)?;
        let files = &e.media.as_ref()?.files;
        files.iter().find(|f| is_pending(c, f)).map(|f| (i, f))
    })
}

/// Bytes of `m`'s local files already uploaded and in total (for `on_message_upload_progress`).
pub fn upload_bytes(m: &StoredMessage) -> (u64, u64) {
    let mut done = 0;
    let mut total = 0;
    for e in &m.elems {
        let (Some(c), Some(rec)) = (content(e), e.media.as_ref()) else {
            continue;
        };
        for f in &rec.files {
            total += f.size;
            if !is_pending(c, f) {
                done += f.size;
            }
        }
    }
    (done, total)
}

/// Whether `file` is one the engine generated (an image's large or thumb size under
/// `<data_dir>/media/outgoing/`), not the user's own: its first variant is `large` or `thumb`
/// (a size that is the original's file has `origin` first).
pub fn is_generated(file: &LocalFile) -> bool {
    matches!(
        file.variants.first().map(String::as_str),
        Some("large" | "thumb")
    )
}

/// Deletes a generated file (and its directory once empty): it is uploaded, or its message is
/// gone. The user's own files are never touched.
pub fn remove_generated(file: &LocalFile) {
    if !is_generated(file) || file.path.is_empty() {
        return;
    }
    let path = std::path::Path::new(&file.path);
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("removing {}: {e}", path.display()),
    }
    // Fails while the other size is still there: the last one removes the directory.
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Deletes the generated files of a message that is removed before it was sent (cancelled,
/// deleted, cleared).
pub fn discard_generated(m: &StoredMessage) {
    for e in &m.elems {
        for f in e.media.iter().flat_map(|r| &r.files) {
            remove_generated(f);
        }
    }
}

/// Whether `m` has a media file that still needs the uploader.
pub fn needs_upload(m: &StoredMessage) -> bool {
    next_upload(m).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_msg() -> StoredMessage {
        let info = |t, size| pb::ImageInfo {
            image_type: t,
            size,
            ..Default::default()
        };
        let content = Content::Image(pb::ImageElem {
            images: vec![
                info(image_type::ORIGIN, 100),
                info(image_type::LARGE, 100),
                info(image_type::THUMB, 10),
            ],
            format: "png".into(),
        });
        let file = |variants: &[&str], size| LocalFile {
            variants: variants.iter().map(|v| (*v).to_owned()).collect(),
            size,
            ..Default::default()
        };
        StoredMessage {
            elems: vec![
                crate::codec::text_elem("hi"),
                elem(
                    content,
                    vec![file(&["origin", "large"], 100), file(&["thumb"], 10)],
                ),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn uploads_go_file_by_file_and_fill_every_variant_of_a_shared_file() {
        let mut m = image_msg();
        assert_eq!(upload_bytes(&m), (0, 110));
        let (i, f) = next_upload(&m).unwrap();
        assert_eq!(
            (i, f.variants.clone()),
            (1, vec!["origin".into(), "large".into()])
        );
        let files = f.clone();
        let rec = m.elems[1].media.as_mut().unwrap();
        let c = rec.elem.as_mut().unwrap().content.as_mut().unwrap();
        for v in &files.variants {
            set_uuid(c, v, "u-origin");
        }
        assert_eq!(remote(c, "large").unwrap().uuid, "u-origin");
        assert_eq!(remote(c, "thumb").unwrap().uuid, "");
        assert_eq!(upload_bytes(&m), (100, 110));
        assert_eq!(next_upload(&m).unwrap().1.variants, ["thumb"]);
        let rec = m.elems[1].media.as_mut().unwrap();
        set_uuid(
            rec.elem.as_mut().unwrap().content.as_mut().unwrap(),
            "thumb",
            "u-t",
        );
        assert!(!needs_upload(&m));
        assert_eq!(upload_bytes(&m), (110, 110));
    }

    #[test]
    fn variants_that_an_elem_does_not_have_are_none() {
        let m = image_msg();
        let c = content(&m.elems[1]).unwrap();
        assert_eq!(remote(c, "snapshot"), None);
        assert_eq!(remote(c, "sound"), None);
        assert_eq!(content(&m.elems[0]), None);
        assert_eq!(image_type::name(image_type::THUMB), "thumb");
        assert_eq!(image_type::from_name("huge"), None);
    }
}
