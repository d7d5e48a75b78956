//! Images the user attaches from a file (`openheim run --image PATH`, an
//! `@path` in the TUI): checked by the shared image rules
//! (`openheim_proto::image`) before anything is sent, so a file that is too
//! large or not an image fails with a message naming it.

use std::path::{Path, PathBuf};

use openheim_proto::common::v1::{ContentBlock, Image, content_block::Block};
use openheim_proto::image::{self, ImageError};

/// Why a file could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("cannot attach {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot attach {}: {source}", path.display())]
    Image { path: PathBuf, source: ImageError },
}

/// Reads the image at `path` (size checked before reading).
pub fn read_image(path: &Path) -> Result<Image, AttachError> {
    let read_error = |source| AttachError::Read {
        path: path.to_path_buf(),
        source,
    };
    let image_error = |source| AttachError::Image {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    image::check_size(usize::try_from(size).unwrap_or(usize::MAX)).map_err(image_error)?;
    let data = std::fs::read(path).map_err(read_error)?;
    image::image_from_bytes(data).map_err(image_error)
}

/// The prompt blocks of `text` followed by `images`.
pub fn prompt_blocks(text: String, images: Vec<Image>) -> Vec<ContentBlock> {
    std::iter::once(Block::Text(text))
        .chain(images.into_iter().map(Block::Image))
        .map(|block| ContentBlock { block: Some(block) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_checked_before_they_are_sent() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("a.png");
        std::fs::write(&png, b"\x89PNG\r\n\x1a\n....").unwrap();
        assert_eq!(read_image(&png).unwrap().mime_type, "image/png");
        let text = dir.path().join("notes.png");
        std::fs::write(&text, "hello").unwrap();
        let err = read_image(&text).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "notes.png: not a PNG, JPEG, GIF or WebP image (the formats models accept)"
            ),
            "{err}"
        );
        let err = read_image(&dir.path().join("gone.png"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot attach "), "{err}");
    }
}
