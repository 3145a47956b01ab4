//! The two generated sizes of an image message (the seed's large and thumb): the shorter side
//! scaled to 720 and 198 pixels, never upscaled, aspect ratio kept, with the EXIF orientation of
//! the original applied first, so the sizes (and the dimensions reported for the original) are as
//! the picture is shown. A variant the size of the next bigger one is that same file.
//!
//! The generated sizes are PNG when the original has transparency (a PNG, GIF, WebP or BMP whose
//! alpha channel is not all opaque: a JPEG would paint it black), JPEG otherwise. A WebP source
//! becomes PNG too (the `image` crate writes only lossless WebP, larger than PNG here).
//!
//! [`scaled`] is the arithmetic alone; [`generate`] decodes, scales and writes the files.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use chime_proto::codes;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use crate::ApiError;

/// Shorter side of the large size.
pub const LARGE_SHORTER_SIDE: u32 = 720;
/// Shorter side of the thumbnail.
pub const THUMB_SHORTER_SIDE: u32 = 198;
/// JPEG quality of the generated sizes.
const JPEG_QUALITY: u8 = 85;

/// `(width, height)` scaled so that the shorter side is `shorter`, or unchanged when it already
/// is no longer than that. The longer side is rounded to the nearest pixel (at least 1).
pub fn scaled(width: u32, height: u32, shorter: u32) -> (u32, u32) {
    let min = width.min(height);
    if min <= shorter || min == 0 {
        return (width, height);
    }
    let scale = |side: u32| -> u32 {
        let v = (u64::from(side) * u64::from(shorter) + u64::from(min) / 2) / u64::from(min);
        u32::try_from(v).unwrap_or(u32::MAX).max(1)
    };
    if width <= height {
        (shorter, scale(height))
    } else {
        (scale(width), shorter)
    }
}

/// One generated size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scaled {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The written file and its size; `None` when this size is the next bigger one's file.
    pub file: Option<(PathBuf, u64)>,
}

/// The file format of the generated sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generated {
    /// JPEG (quality 85): an opaque original.
    Jpeg,
    /// PNG with its alpha channel: an original with transparency.
    Png,
}

impl Generated {
    /// What an original decoded as `img` gets.
    pub fn for_image(img: &DynamicImage) -> Self {
        if has_transparency(img) {
            Self::Png
        } else {
            Self::Jpeg
        }
    }

    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
        }
    }
}

/// Whether some pixel of `img` is not fully opaque.
pub fn has_transparency(img: &DynamicImage) -> bool {
    if !img.color().has_alpha() {
        return false;
    }
    match img {
        DynamicImage::ImageRgba8(i) => i.pixels().any(|p| p.0[3] < u8::MAX),
        DynamicImage::ImageLumaA8(i) => i.pixels().any(|p| p.0[1] < u8::MAX),
        DynamicImage::ImageRgba16(i) => i.pixels().any(|p| p.0[3] < u16::MAX),
        DynamicImage::ImageLumaA16(i) => i.pixels().any(|p| p.0[1] < u16::MAX),
        other => other.to_rgba8().pixels().any(|p| p.0[3] < u8::MAX),
    }
}

/// An image and its generated sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// The original's format (`jpg`, `png`, `gif`, `webp`, `bmp`).
    pub format: String,
    /// The format of the generated sizes.
    pub generated: Generated,
    /// The original's displayed width (orientation applied).
    pub width: u32,
    /// The original's displayed height.
    pub height: u32,
    /// The large size.
    pub large: Scaled,
    /// The thumbnail.
    pub thumb: Scaled,
}

fn not_image(field: &str, path: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        codes::ERR_INVALID_IMAGE,
        format!("{field} {path} is not an image this engine can read: {why}"),
    )
}

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Jpeg => "jpg",
        ImageFormat::Png => "png",
        ImageFormat::Gif => "gif",
        ImageFormat::WebP => "webp",
        ImageFormat::Bmp => "bmp",
        _ => "unknown",
    }
}

/// Decodes an image (format from its content), orientation applied. 6031 when it is not one.
pub fn decode(field: &str, path: &str) -> Result<(DynamicImage, String), ApiError> {
    let reader = ImageReader::open(path)
        .map_err(|e| ApiError::new(codes::ERR_FILE_NOT_FOUND, format!("{field} {path}: {e}")))?
        .with_guessed_format()
        .map_err(|e| ApiError::new(codes::ERR_IO, format!("{field} {path}: {e}")))?;
    let format = reader
        .format()
        .ok_or_else(|| not_image(field, path, "unknown format"))?;
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| not_image(field, path, e))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| not_image(field, path, e))?;
    img.apply_orientation(orientation);
    Ok((img, format_name(format).to_owned()))
}

/// Writes `img` scaled to `(w, h)` at `path` as `format`; answers its size.
fn write_scaled(
    img: &DynamicImage,
    (w, h): (u32, u32),
    format: Generated,
    path: &Path,
) -> Result<u64, ApiError> {
    let io = |e: &dyn std::fmt::Display| {
        ApiError::new(codes::ERR_IO, format!("writing {}: {e}", path.display()))
    };
    let small = img.resize_exact(w, h, FilterType::Triangle);
    let file = std::fs::File::create(path).map_err(|e| io(&e))?;
    let mut out = BufWriter::new(file);
    match format {
        Generated::Jpeg => JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
            .encode_image(&small.into_rgb8())
            .map_err(|e| io(&e))?,
        Generated::Png => small
            .into_rgba8()
            .write_with_encoder(PngEncoder::new(&mut out))
            .map_err(|e| io(&e))?,
    }
    let file = out.into_inner().map_err(|e| io(&e.error()))?;
    file.sync_all().map_err(|e| io(&e))?;
    Ok(file.metadata().map_err(|e| io(&e))?.len())
}

/// Decodes the image at `path` and writes its large and thumb sizes into `dir` (created).
pub fn generate(field: &str, path: &str, dir: &Path) -> Result<ImageSet, ApiError> {
    let (img, format) = decode(field, path)?;
    let (width, height) = (img.width(), img.height());
    if width == 0 || height == 0 {
        return Err(not_image(field, path, "no pixels"));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| ApiError::new(codes::ERR_IO, format!("{}: {e}", dir.display())))?;
    let generated = Generated::for_image(&img);
    let name = |size: &str| dir.join(format!("{size}.{}", generated.extension()));
    let large_dims = scaled(width, height, LARGE_SHORTER_SIDE);
    let large = Scaled {
        width: large_dims.0,
        height: large_dims.1,
        file: if large_dims == (width, height) {
            None
        } else {
            let p = name("large");
            let size = write_scaled(&img, large_dims, generated, &p)?;
            Some((p, size))
        },
    };
    let thumb_dims = scaled(width, height, THUMB_SHORTER_SIDE);
    let thumb = Scaled {
        width: thumb_dims.0,
        height: thumb_dims.1,
        file: if thumb_dims == large_dims {
            None
        } else {
            let p = name("thumb");
            let size = write_scaled(&img, thumb_dims, generated, &p)?;
            Some((p, size))
        },
    };
    Ok(ImageSet {
        format,
        generated,
        width,
        height,
        large,
        thumb,
    })
}

/// The displayed dimensions of an image (a video snapshot): decoded, orientation applied.
pub fn dimensions(field: &str, path: &str) -> Result<(u32, u32, String), ApiError> {
    let (img, format) = decode(field, path)?;
    Ok((img.width(), img.height(), format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shorter_side_is_scaled_never_up_and_the_aspect_kept() {
        assert_eq!(scaled(1000, 600, 720), (1000, 600));
        assert_eq!(scaled(1000, 600, 198), (330, 198));
        assert_eq!(scaled(600, 1000, 198), (198, 330));
        assert_eq!(scaled(4000, 3000, 720), (960, 720));
        assert_eq!(scaled(3000, 4000, 720), (720, 960));
        assert_eq!(scaled(720, 720, 720), (720, 720));
        assert_eq!(scaled(100, 50, 198), (100, 50));
        assert_eq!(scaled(100_000, 199, 198), (99_497, 198));
        assert_eq!(scaled(0, 10, 5), (0, 10));
    }

    fn png(dir: &Path, w: u32, h: u32) -> String {
        let p = dir.join(format!("{w}x{h}.png"));
        image::RgbImage::from_pixel(w, h, image::Rgb([10, 200, 30]))
            .save(&p)
            .unwrap();
        p.display().to_string()
    }

    #[test]
    fn sizes_are_written_only_when_smaller() {
        let dir = tempfile::tempdir().unwrap();
        let big = png(dir.path(), 1600, 800);
        let set = generate("image_path", &big, &dir.path().join("v1")).unwrap();
        assert_eq!(
            (set.format.as_str(), set.width, set.height),
            ("png", 1600, 800)
        );
        assert_eq!((set.large.width, set.large.height), (1440, 720));
        assert_eq!((set.thumb.width, set.thumb.height), (396, 198));
        let (lp, lsize) = set.large.file.clone().unwrap();
        assert_eq!(std::fs::metadata(&lp).unwrap().len(), lsize);
        assert_eq!(image::image_dimensions(&lp).unwrap(), (1440, 720));
        let (tp, _) = set.thumb.file.clone().unwrap();
        assert_eq!(image::image_dimensions(&tp).unwrap(), (396, 198));

        let small = png(dir.path(), 300, 150);
        let set = generate("image_path", &small, &dir.path().join("v2")).unwrap();
        assert_eq!(set.large.file, None);
        assert_eq!((set.large.width, set.large.height), (300, 150));
        assert_eq!(set.thumb.file, None);

        let tiny = png(dir.path(), 50, 40);
        let set = generate("image_path", &tiny, &dir.path().join("v3")).unwrap();
        assert_eq!(
            (set.thumb.width, set.thumb.height, set.thumb.file),
            (50, 40, None)
        );
    }

    #[test]
    fn a_file_that_is_not_an_image_is_6031() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notes.png");
        std::fs::write(&p, b"just some text, not pixels").unwrap();
        let e = generate("image_path", p.to_str().unwrap(), dir.path()).unwrap_err();
        assert_eq!(e.code, 6031);
    }

    #[test]
    fn transparent_originals_get_png_sizes_and_opaque_ones_jpeg() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alpha.png");
        image::RgbaImage::from_fn(800, 400, |x, _| {
            image::Rgba([200, 10, 10, if x < 400 { 0 } else { 255 }])
        })
        .save(&p)
        .unwrap();
        let set = generate("image_path", p.to_str().unwrap(), &dir.path().join("a")).unwrap();
        assert_eq!(set.generated, Generated::Png);
        let (tp, _) = set.thumb.file.clone().unwrap();
        assert!(tp.ends_with("thumb.png"));
        let thumb = image::open(&tp).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (396, 198));
        assert!(has_transparency(&thumb));
        assert_eq!(thumb.to_rgba8().get_pixel(10, 100).0[3], 0);
        assert_eq!(thumb.to_rgba8().get_pixel(390, 100).0[3], 255);

        // An alpha channel that is opaque everywhere: JPEG.
        let q = dir.path().join("opaque.png");
        image::RgbaImage::from_pixel(800, 400, image::Rgba([1, 2, 3, 255]))
            .save(&q)
            .unwrap();
        let set = generate("image_path", q.to_str().unwrap(), &dir.path().join("b")).unwrap();
        assert_eq!(set.generated, Generated::Jpeg);
        let (tp, _) = set.thumb.file.unwrap();
        assert!(tp.ends_with("thumb.jpg"));
        assert_eq!(
            image::ImageReader::open(&tp)
                .unwrap()
                .with_guessed_format()
                .unwrap()
                .format(),
            Some(ImageFormat::Jpeg)
        );
    }
}
