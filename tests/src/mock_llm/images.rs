//! Checks images the way the providers do: base64 that decodes, a declared
//! type among the four they take (PNG, JPEG, GIF, WebP), bytes that are
//! what the type says, and at most 5 MB decoded (the strictest provider
//! limit). A malformed image is a request the real API would refuse.

use base64::Engine as _;

/// Largest decoded image accepted.
const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

const ACCEPTED: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Checks base64 `data` declared as `media_type`.
pub(crate) fn check_base64(at: &str, media_type: &str, data: &str, problems: &mut Vec<String>) {
    if !ACCEPTED.contains(&media_type) {
        problems.push(format!(
            "{at}: image media type {media_type:?} is not one of {ACCEPTED:?}"
        ));
        return;
    }
    let bytes = match base64::engine::general_purpose::STANDARD.decode(data) {
        Ok(bytes) => bytes,
        Err(e) => {
            problems.push(format!("{at}: image data is not valid base64: {e}"));
            return;
        }
    };
    if bytes.len() > MAX_IMAGE_BYTES {
        problems.push(format!(
            "{at}: image is {} bytes, over the 5 MB limit",
            bytes.len()
        ));
    }
    let actual = sniff(&bytes);
    if actual != Some(media_type) {
        problems.push(format!(
            "{at}: image declared as {media_type} but its bytes are {}",
            actual.unwrap_or("no accepted image format")
        ));
    }
}

/// Checks a `data:<type>;base64,<data>` URL (OpenAI's formats).
pub(crate) fn check_data_url(at: &str, url: &str, problems: &mut Vec<String>) {
    let parsed = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"));
    match parsed {
        Some((media_type, data)) => check_base64(at, media_type, data, problems),
        None => problems.push(format!(
            "{at}: image URL must be a data:<type>;base64,<data> URL (the mock has no network), got {:?}",
            &url[..url.len().min(40)]
        )),
    }
}

fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(f: impl FnOnce(&mut Vec<String>)) -> Vec<String> {
        let mut problems = Vec::new();
        f(&mut problems);
        problems
    }

    #[test]
    fn well_formed_images_pass_and_malformed_ones_are_named() {
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nxx");
        assert!(problems(|p| check_base64("a", "image/png", &png, p)).is_empty());
        assert!(
            problems(|p| check_data_url("a", &format!("data:image/png;base64,{png}"), p))
                .is_empty()
        );
        let wrong = problems(|p| check_base64("a", "image/jpeg", &png, p));
        assert!(wrong[0].contains("declared as image/jpeg but its bytes are image/png"));
        assert!(!problems(|p| check_base64("a", "image/png", "%%", p)).is_empty());
        assert!(!problems(|p| check_base64("a", "image/svg+xml", &png, p)).is_empty());
        assert!(!problems(|p| check_data_url("a", "https://x/y.png", p)).is_empty());
    }
}
