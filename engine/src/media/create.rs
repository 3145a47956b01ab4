//! The elems of `create_image/sound/video/file/location/face_message`: the files are checked
//! ([`super::files`]) and, for images, the large and thumb sizes generated ([`super::images`])
//! before the message exists, so every check answers at creation, before any upload. Blocking
//! (file I/O, image decoding): the dispatch layer runs these on a blocking thread.

use std::path::Path;

use chime_proto::codes;
use chime_proto::pb::{self, elem::Content};

use super::files::{self, FileKind};
use super::images;
use super::{LocalFile, elem, image_type};
use crate::ApiError;
use crate::model::StoredElem;

/// The absolute form of a checked path (so that a resumed upload finds it from any directory).
fn absolute(path: &str) -> Result<String, ApiError> {
    std::fs::canonicalize(path)
        .map(|p| p.display().to_string())
        .map_err(|e| ApiError::new(codes::ERR_FILE_NOT_FOUND, format!("{path}: {e}")))
}

fn local(variants: &[&str], path: String, content_type: String, size: u64) -> LocalFile {
    LocalFile {
        variants: variants.iter().map(|v| (*v).to_owned()).collect(),
        path,
        content_type,
        size,
        file_name: String::new(),
    }
}

fn image_mime(format: &str) -> String {
    match format {
        "jpg" => "image/jpeg".to_owned(),
        other => format!("image/{other}"),
    }
}

/// An image elem for the file at `path`; its generated sizes are written into `dir`.
pub fn image(path: &str, dir: &Path) -> Result<StoredElem, ApiError> {
    let size = files::check("image_path", path, FileKind::Image)?;
    let path = absolute(path)?;
    let set = images::generate("image_path", &path, dir)?;
    let info = |t, size, w, h| pb::ImageInfo {
        image_type: t,
        uuid: String::new(),
        size,
        width: w,
        height: h,
        url: String::new(),
    };
    let mut local_files = vec![local(&["origin"], path, image_mime(&set.format), size)];
    let large_size = match &set.large.file {
        Some((p, s)) => {
            local_files.push(local(
                &["large"],
                p.display().to_string(),
                set.generated.mime().into(),
                *s,
            ));
            *s
        }
        None => {
            local_files[0].variants.push("large".into());
            size
        }
    };
    let thumb_size = match &set.thumb.file {
        Some((p, s)) => {
            local_files.push(local(
                &["thumb"],
                p.display().to_string(),
                set.generated.mime().into(),
                *s,
            ));
            *s
        }
        None => {
            if let Some(last) = local_files.last_mut() {
                last.variants.push("thumb".into());
            }
            large_size
        }
    };
    let content = Content::Image(pb::ImageElem {
        images: vec![
            info(image_type::ORIGIN, size, set.width, set.height),
            info(
                image_type::LARGE,
                large_size,
                set.large.width,
                set.large.height,
            ),
            info(
                image_type::THUMB,
                thumb_size,
                set.thumb.width,
                set.thumb.height,
            ),
        ],
        format: set.format,
    });
    Ok(elem(content, local_files))
}

/// A sound elem (`duration` in seconds).
pub fn sound(path: &str, duration: u32) -> Result<StoredElem, ApiError> {
    let size = files::check("sound_path", path, FileKind::Sound)?;
    let path = absolute(path)?;
    let mime = files::sound_type(&path);
    let content = Content::Sound(pb::SoundElem {
        uuid: String::new(),
        url: String::new(),
        data_size: size,
        duration,
    });
    Ok(elem(content, vec![local(&["sound"], path, mime, size)]))
}

/// A video elem with its snapshot image.
pub fn video(
    path: &str,
    video_type: &str,
    duration: u32,
    snapshot_path: &str,
) -> Result<StoredElem, ApiError> {
    let size = files::check("video_file_path", path, FileKind::Video)?;
    let snap_size = files::check("snapshot_path", snapshot_path, FileKind::Image)?;
    let path = absolute(path)?;
    let snapshot = absolute(snapshot_path)?;
    let (w, h, format) = images::dimensions("snapshot_path", &snapshot)?;
    let video_type = if video_type.is_empty() {
        files::extension(&path)
    } else {
        video_type.to_owned()
    };
    let content = Content::Video(pb::VideoElem {
        video_size: size,
        video_type: video_type.clone(),
        duration,
        snapshot_size: snap_size,
        snapshot_width: w,
        snapshot_height: h,
        ..Default::default()
    });
    Ok(elem(
        content,
        vec![
            local(&["video"], path, files::video_type(&video_type), size),
            local(&["snapshot"], snapshot, image_mime(&format), snap_size),
        ],
    ))
}

/// A file elem; `file_name` defaults to the file's own name.
pub fn file(path: &str, file_name: &str) -> Result<StoredElem, ApiError> {
    let size = files::check("file_path", path, FileKind::File)?;
    let path = absolute(path)?;
    let name = if file_name.is_empty() {
        Path::new(&path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        file_name.to_owned()
    };
    let content = Content::File(pb::FileElem {
        uuid: String::new(),
        url: String::new(),
        file_name: name.clone(),
        file_size: size,
    });
    let mut f = local(&["file"], path, files::FILE_TYPE.into(), size);
    f.file_name = name;
    Ok(elem(content, vec![f]))
}

/// A location elem. Longitude in [-180, 180], latitude in [-90, 90] (6017 otherwise).
pub fn location(desc: String, longitude: f64, latitude: f64) -> Result<StoredElem, ApiError> {
    if !(-180.0..=180.0).contains(&longitude) {
        return Err(ApiError::invalid_param(
            "longitude must be within -180..=180",
        ));
    }
    if !(-90.0..=90.0).contains(&latitude) {
        return Err(ApiError::invalid_param("latitude must be within -90..=90"));
    }
    Ok(elem(
        Content::Location(pb::LocationElem {
            desc,
            longitude,
            latitude,
        }),
        Vec::new(),
    ))
}

/// A face (sticker) elem.
pub fn face(index: i32, data: Vec<u8>) -> StoredElem {
    elem(Content::Face(pb::FaceElem { index, data }), Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::elem_kind;

    #[test]
    fn a_small_image_is_its_own_large_and_thumb() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        image::RgbImage::from_pixel(120, 90, image::Rgb([1, 2, 3]))
            .save(&p)
            .unwrap();
        let e = image(p.to_str().unwrap(), &dir.path().join("gen")).unwrap();
        assert_eq!(e.kind, elem_kind::IMAGE);
        let rec = e.media.unwrap();
        assert_eq!(rec.files.len(), 1);
        assert_eq!(rec.files[0].variants, ["origin", "large", "thumb"]);
        assert_eq!(rec.files[0].content_type, "image/png");
        let Some(Content::Image(img)) = rec.elem.unwrap().content else {
            panic!("not an image")
        };
        let size = std::fs::metadata(&p).unwrap().len();
        for (i, t) in [image_type::ORIGIN, image_type::LARGE, image_type::THUMB]
            .into_iter()
            .enumerate()
        {
            assert_eq!(
                (
                    img.images[i].image_type,
                    img.images[i].size,
                    img.images[i].width
                ),
                (t, size, 120)
            );
        }
    }

    #[test]
    fn a_video_needs_an_image_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("v.mp4");
        std::fs::write(&v, b"not really a video but bytes").unwrap();
        let e = video(v.to_str().unwrap(), "", 3, v.to_str().unwrap()).unwrap_err();
        assert_eq!(e.code, 6031);
        let s = dir.path().join("s.png");
        image::RgbImage::from_pixel(64, 48, image::Rgb([0, 0, 0]))
            .save(&s)
            .unwrap();
        let e = video(v.to_str().unwrap(), "", 3, s.to_str().unwrap()).unwrap();
        let Some(Content::Video(vid)) = super::super::content(&e).cloned() else {
            panic!("not a video")
        };
        assert_eq!(vid.video_type, "mp4");
        assert_eq!((vid.snapshot_width, vid.snapshot_height), (64, 48));
        assert_eq!(e.media.unwrap().files[0].content_type, "video/mp4");
    }

    #[test]
    fn locations_are_checked_and_file_names_default() {
        assert_eq!(location(String::new(), 181.0, 0.0).unwrap_err().code, 6017);
        assert_eq!(location(String::new(), 0.0, -90.5).unwrap_err().code, 6017);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("report.pdf");
        std::fs::write(&p, b"%PDF").unwrap();
        let e = file(p.to_str().unwrap(), "").unwrap();
        assert_eq!(e.media.unwrap().files[0].file_name, "report.pdf");
    }
}
