//! A small HTML-to-text reducer for `web_fetch`: drops scripts, styles and
//! other invisible elements, comments and tags, turns block elements into
//! line breaks, decodes common entities and collapses whitespace. It is not
//! a parser; it aims at readable text for a model, not at fidelity.

/// Elements whose content is never shown.
const HIDDEN: [&str; 7] = [
    "script", "style", "noscript", "template", "svg", "title", "iframe",
];

/// Elements that start a new line.
const BLOCKS: [&str; 30] = [
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tr",
    "ul",
];

/// The readable text of an HTML document; the `<title>` comes first.
pub fn to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    if let Some(title) = title(html) {
        out.push_str(&title);
        out.push_str("\n\n");
    }
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        push_text(&mut out, &rest[..open]);
        rest = skip_markup(&rest[open..], &mut out);
    }
    push_text(&mut out, rest);
    collapse_whitespace(&out)
}

/// Source line breaks are spaces in HTML; only elements break lines.
fn push_text(out: &mut String, text: &str) {
    let decoded = decode_entities(text);
    out.extend(
        decoded
            .chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c }),
    );
}

/// Starts a new line unless one was just started.
fn new_line(out: &mut String) {
    let kept = out.trim_end_matches([' ', '\t']).len();
    out.truncate(kept);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Consumes the markup at the start of `rest` (which begins with `<`),
/// writing a line break for block elements, and returns what follows.
fn skip_markup<'a>(rest: &'a str, out: &mut String) -> &'a str {
    if let Some(comment) = rest.strip_prefix("<!--") {
        return comment.find("-->").map_or("", |end| &comment[end + 3..]);
    }
    let Some(end) = rest.find('>') else {
        return "";
    };
    let tag = &rest[1..end];
    let after = &rest[end + 1..];
    let closing = tag.starts_with('/');
    let name = tag_name(tag);
    if !closing && HIDDEN.contains(&name.as_str()) && !tag.ends_with('/') {
        return skip_element(after, &name);
    }
    if BLOCKS.contains(&name.as_str()) || name == "li" {
        new_line(out);
        if name == "li" && !closing {
            out.push_str("- ");
        }
    } else if matches!(name.as_str(), "td" | "th") {
        out.push(' ');
    }
    after
}

/// The lower-cased element name of a tag's inside (`/div class=x` → `div`).
fn tag_name(tag: &str) -> String {
    tag.trim_start_matches('/')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// What follows the closing tag of `name` in `rest` (all of it missing when
/// the element is never closed).
fn skip_element<'a>(rest: &'a str, name: &str) -> &'a str {
    let closing = format!("</{name}");
    let lower = rest.to_ascii_lowercase();
    match lower.find(&closing) {
        Some(at) => {
            let tail = &rest[at..];
            tail.find('>').map_or("", |end| &tail[end + 1..])
        }
        None => "",
    }
}

fn title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    let text = collapse_whitespace(&decode_entities(&html[start..end]));
    (!text.is_empty()).then_some(text)
}

/// Decodes the named entities that matter for reading, and numeric ones.
fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest
            .find(';')
            .filter(|&semi| semi <= 10)
            .and_then(|semi| entity(&rest[1..semi]).map(|c| (c, semi)));
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    let named = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "mdash" => '—',
        "ndash" => '–',
        "hellip" => '…',
        "copy" => '©',
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            return char::from_u32(code);
        }
    };
    Some(named)
}

/// Runs of spaces become one space, lines are trimmed, and at most one
/// empty line separates paragraphs.
fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_lines = 0;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            blank_lines += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_lines > 0 { "\n\n" } else { "\n" });
        }
        blank_lines = 0;
        out.push_str(&words.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_styles_comments_and_tags_are_dropped() {
        let html = r#"<!DOCTYPE html><html><head><title>The  Title</title>
            <style>body { color: red }</style><script>var x = "<p>";</script></head>
            <body><!-- hidden --><h1>Hello</h1><p>Some <b>bold</b>   text
            &amp; more&nbsp;here.</p><SCRIPT type="x">alert(1)</SCRIPT>
            <ul><li>one</li><li>two</li></ul><p>a&lt;b &#65;&#x42; &bogus; R&D</p></body></html>"#;
        assert_eq!(
            to_text(html),
            "The Title\n\nHello\nSome bold text & more here.\n- one\n- two\na<b AB &bogus; R&D"
        );
    }

    #[test]
    fn unterminated_markup_does_not_loop_or_leak() {
        assert_eq!(to_text("before<script>never closed"), "before");
        assert_eq!(to_text("a <!-- open"), "a");
        assert_eq!(to_text("x < y"), "x");
        assert_eq!(to_text("plain text"), "plain text");
    }

    #[test]
    fn multibyte_text_survives() {
        assert_eq!(to_text("<p>héllo — 日本</p><br/>ünï"), "héllo — 日本\nünï");
    }
}
