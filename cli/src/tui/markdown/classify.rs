//! What kind of line a line start is: heading, list item, quote, fence,
//! code, rule or paragraph.

use super::{CodeLine, Fence, Kind, columns};

/// Decides what the line starting with `s` is, or `None` while the next
/// characters could still change that. `eol`: the line ends after `s`.
pub(super) fn classify(s: &str, eol: bool) -> Option<Kind> {
    let rest = s.trim_start_matches([' ', '\t']);
    let ws = s.len() - rest.len();
    let indent = columns(&s[..ws]);
    let Some(first) = rest.chars().next() else {
        return eol.then_some(Kind::Blank);
    };
    match first {
        '#' => classify_heading(rest, ws, eol),
        '>' => {
            let body = rest.trim_start_matches(['>', ' ', '\t']);
            if body.is_empty() && !eol {
                return None;
            }
            let depth = rest[..rest.len() - body.len()].matches('>').count();
            Some(Kind::Quote {
                depth,
                content: s.len() - body.len(),
            })
        }
        '`' | '~' => {
            let run = rest.len() - rest.trim_start_matches(first).len();
            if run == rest.len() && !eol {
                return None;
            }
            if run < 3 {
                return Some(Kind::Paragraph);
            }
            let fence = Fence {
                marker: first,
                len: run,
                indent,
            };
            Some(Kind::Fence {
                fence,
                info: ws + run,
            })
        }
        '-' | '*' | '+' | '_' => classify_marker_line(rest, ws, indent, eol, first),
        '0'..='9' => classify_ordered(rest, ws, indent, eol),
        _ => Some(Kind::Paragraph),
    }
}

fn classify_heading(rest: &str, ws: usize, eol: bool) -> Option<Kind> {
    let hashes = rest.len() - rest.trim_start_matches('#').len();
    if hashes > 6 {
        return Some(Kind::Paragraph);
    }
    match rest[hashes..].chars().next() {
        None if eol => Some(Kind::Heading {
            content: ws + hashes,
        }),
        None => None,
        Some(' ' | '\t') => Some(Kind::Heading {
            content: ws + hashes + 1,
        }),
        Some(_) => Some(Kind::Paragraph),
    }
}

/// `- item`, `* item`, `+ item`, or a rule (`---`, `***`, `___`, `- - -`).
fn classify_marker_line(
    rest: &str,
    ws: usize,
    indent: usize,
    eol: bool,
    marker: char,
) -> Option<Kind> {
    let body = rest.trim_start_matches([marker, ' ', '\t']);
    let bullet = (marker != '_' && rest[1..].starts_with([' ', '\t'])).then_some(Kind::Bullet {
        indent,
        content: ws + 2,
    });
    if body.is_empty() {
        if !eol {
            return None;
        }
        if marker != '+' && rest.matches(marker).count() >= 3 {
            return Some(Kind::Rule);
        }
    }
    Some(bullet.unwrap_or(Kind::Paragraph))
}

/// `1. item` or `1) item`.
fn classify_ordered(rest: &str, ws: usize, indent: usize, eol: bool) -> Option<Kind> {
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 9 {
        return Some(Kind::Paragraph);
    }
    let mut after = rest[digits..].chars();
    match (after.next(), after.next()) {
        (None, _) | (Some('.' | ')'), None) if !eol => None,
        (Some('.' | ')'), Some(' ' | '\t')) => Some(Kind::Ordered {
            indent,
            number: ws..ws + digits + 1,
            content: ws + digits + 2,
        }),
        _ => Some(Kind::Paragraph),
    }
}

/// Decides whether a line inside a code block closes it, or `None` while
/// it could still be a closing fence.
pub(super) fn classify_code(s: &str, eol: bool, fence: Fence) -> Option<CodeLine> {
    let rest = s.trim_start_matches([' ', '\t']);
    let run = rest.len() - rest.trim_start_matches(fence.marker).len();
    if run == 0 {
        return (eol || !rest.is_empty()).then_some(CodeLine::Text);
    }
    if !rest[run..].trim_start_matches([' ', '\t']).is_empty() {
        return Some(CodeLine::Text);
    }
    if !eol {
        return None;
    }
    Some(if run >= fence.len {
        CodeLine::Close
    } else {
        CodeLine::Text
    })
}
