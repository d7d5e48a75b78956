//! The one rule for images entering a conversation, whichever door they
//! come through (a prompt over ACP or gRPC, `openheim run --image`, an
//! `@file` in the TUI, `read_file` on an image): the type is read from the
//! bytes, only the four formats every vision API takes are accepted, and an
//! image is at most [`MAX_IMAGE_BYTES`]. Documented in docs/configuration.md
//! ("Images").

use crate::common::v1::Image;

/// Largest image accepted, in bytes of the file (before base64): 5 MiB, the
/// smallest per-image limit of the providers (Anthropic).
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

/// Why bytes are not an image a model can be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error(
        "the image is {} ({size} bytes); the limit is 5 MB ({MAX_IMAGE_BYTES} bytes) per image: shrink or crop it first",
        human_size(*size)
    )]
    TooLarge { size: usize },
    #[error("not a PNG, JPEG, GIF or WebP image (the formats models accept)")]
    UnknownFormat,
}

/// The MIME type of `data` read from its first bytes, if it is one of the
/// accepted formats.
pub fn sniff_mime(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Checks `data` and wraps it as an [`Image`] with the type its bytes
/// show (a declared type that disagrees is ignored: providers check the
/// bytes and refuse a mismatch).
pub fn image_from_bytes(data: Vec<u8>) -> Result<Image, ImageError> {
    check_size(data.len())?;
    let mime = sniff_mime(&data).ok_or(ImageError::UnknownFormat)?;
    Ok(Image {
        mime_type: mime.to_owned(),
        data,
    })
}

/// Refuses a size over [`MAX_IMAGE_BYTES`] (callers that know the size
/// before reading check it first).
pub fn check_size(size: usize) -> Result<(), ImageError> {
    if size > MAX_IMAGE_BYTES {
        Err(ImageError::TooLarge { size })
    } else {
        Ok(())
    }
}

/// Whether `path` names a file with an image extension (for choosing how
/// to read it before reading it).
pub fn has_image_extension(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg", ".gif", ".webp"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

fn human_size(bytes: usize) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    // Precision does not matter for a message.
    #[allow(clippy::cast_precision_loss)]
    let mib = bytes as f64 / MIB;
    format!("{mib:.1} MB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_read_from_the_bytes() {
        assert_eq!(sniff_mime(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff_mime(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff_mime(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff_mime(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff_mime(b"RIFF\0\0\0\0WAVE"), None);
        assert_eq!(sniff_mime(b"<svg"), None);
        assert_eq!(sniff_mime(b""), None);
    }

    #[test]
    fn the_type_comes_from_the_bytes_and_the_size_is_capped() {
        let image = image_from_bytes(b"GIF87a-data".to_vec()).unwrap();
        assert_eq!(image.mime_type, "image/gif");
        assert_eq!(
            image_from_bytes(b"hello".to_vec()),
            Err(ImageError::UnknownFormat)
        );
        let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
        big.resize(MAX_IMAGE_BYTES + 1, 0);
        let err = image_from_bytes(big).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the image is 5.0 MB (5242881 bytes); the limit is 5 MB (5242880 bytes) per image: shrink or crop it first"
        );
        assert!(check_size(MAX_IMAGE_BYTES).is_ok());
        assert!(has_image_extension("shots/A.PNG") && !has_image_extension("a.png.txt"));
    }
}
