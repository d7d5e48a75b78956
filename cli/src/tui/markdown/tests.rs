//! Rendering checks, including that any split of an answer renders the same.

use super::*;
use crate::tui::theme::Theme;

const DOC: &str = "# Title 🚀\n\
    \n\
    Some **bold**, *italic*, `code` and [a link](https://x.io/a_(b)).\n\
    \n\
    - first\n\
    \x20 - nested _item_\n\
    * star 中文\n\
    \n\
    3. third\n\
    > quoted **bit**\n\
    \n\
    ```rust\n\
    let s = \"**not bold**\";\n\
    \x20   if a_b_c { x }\n\
    ```\n\
    ---\n\
    snake_case_words and 2 * 3 = 6 | table | cell |\n";

const DOC_PLAIN: &str = "Title 🚀\n\
    \n\
    Some bold, italic, code and a link (https://x.io/a_(b)).\n\
    \n\
    • first\n\
    \x20 • nested item\n\
    • star 中文\n\
    \n\
    3. third\n\
    │ quoted bit\n\
    \n\
    \x20 rust\n\
    \x20 let s = \"**not bold**\";\n\
    \x20     if a_b_c { x }\n\
    ────────────────────────────────────────\n\
    snake_case_words and 2 * 3 = 6 | table | cell |\n";

fn colored() -> Styler {
    Styler::new(Theme::Green, true)
}

fn render_deltas<'a>(styler: Styler, deltas: impl IntoIterator<Item = &'a str>) -> String {
    let mut md = MarkdownStream::new(styler);
    let mut out = String::new();
    for delta in deltas {
        md.push(delta, &mut out);
    }
    md.finish(&mut out);
    out
}

fn render(styler: Styler, text: &str) -> String {
    render_deltas(styler, [text])
}

fn plain(text: &str) -> String {
    render(Styler::plain(), text)
}

/// `text` cut on char boundaries into pieces of `sizes` bytes (at
/// least one char each), cycling through `sizes`.
fn split<'a>(text: &'a str, sizes: &[usize]) -> Vec<&'a str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for size in sizes.iter().cycle() {
        if start >= text.len() {
            break;
        }
        let mut end = (start + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        pieces.push(&text[start..end]);
        start = end;
    }
    pieces
}

fn chars(text: &str) -> Vec<&str> {
    split(text, &[1])
}

/// Every line that sets a style resets it before its newline.
fn assert_resets_before_newlines(out: &str) {
    for line in out.split('\n') {
        if let Some(last) = line.rfind("\x1b[") {
            assert!(
                line[last..].starts_with("\x1b[0m"),
                "style leaks past the end of {line:?} in {out:?}"
            );
        }
    }
}

#[test]
fn renders_a_document_in_plain_text() {
    assert_eq!(plain(DOC), DOC_PLAIN);
}

#[test]
fn any_split_renders_identically() {
    for styler in [Styler::plain(), colored()] {
        let whole = render(styler, DOC);
        assert_eq!(render_deltas(styler, chars(DOC)), whole);
        assert_eq!(render_deltas(styler, split(DOC, &[3, 7])), whole);
        assert_eq!(render_deltas(styler, split(DOC, &[2, 5, 11, 1])), whole);
        for size in 1..40 {
            assert_eq!(render_deltas(styler, split(DOC, &[size])), whole, "{size}");
        }
    }
}

#[test]
fn text_appears_as_it_arrives() {
    let mut md = MarkdownStream::new(Styler::plain());
    let mut out = String::new();
    md.push("Hello wor", &mut out);
    assert_eq!(out, "Hello wor");
    assert!(!md.at_line_start());
    md.push("ld\n", &mut out);
    assert_eq!(out, "Hello world\n");
    assert!(md.at_line_start());

    // A line start is held until its kind is known...
    md.push("-", &mut out);
    assert_eq!(out, "Hello world\n");
    assert!(md.at_line_start());
    md.push(" ", &mut out);
    assert_eq!(out, "Hello world\n");
    md.push("i", &mut out);
    assert_eq!(out, "Hello world\n• i");
    md.push("tem **", &mut out);
    // ...and a marker until the next character.
    assert_eq!(out, "Hello world\n• item ");
    md.push("b", &mut out);
    assert_eq!(out, "Hello world\n• item b");
    md.push("\n1", &mut out);
    assert_eq!(out, "Hello world\n• item b\n");
    md.push("0", &mut out);
    md.push("0 apples", &mut out);
    assert_eq!(out, "Hello world\n• item b\n100 apples");
    md.finish(&mut out);
    assert_eq!(out, "Hello world\n• item b\n100 apples\n");
    assert!(md.at_line_start());
}

#[test]
fn code_lines_stream_too() {
    let mut md = MarkdownStream::new(Styler::plain());
    let mut out = String::new();
    md.push("```\nfn mai", &mut out);
    assert_eq!(out, "  fn mai");
    md.push("n() {}\n``", &mut out);
    assert_eq!(out, "  fn main() {}\n");
    md.push("`\nafter\n", &mut out);
    assert_eq!(out, "  fn main() {}\nafter\n");
}

#[test]
fn headings_lists_and_quotes() {
    assert_eq!(plain("## Sub *it*\n###### six\n"), "Sub it\nsix\n");
    assert_eq!(
        plain("####### seven\n#hashtag\n"),
        "####### seven\n#hashtag\n"
    );
    assert_eq!(
        plain("-  spaced\n+ plus\n-x\n--\n"),
        "• spaced\n• plus\n-x\n--\n"
    );
    assert_eq!(plain("    - deep\n\t- tab\n"), "    • deep\n    • tab\n");
    assert_eq!(
        plain("1) one\n12. twelve\n1.5 kg\n2024 was\n1.\n"),
        "1) one\n12. twelve\n1.5 kg\n2024 was\n1.\n"
    );
    assert_eq!(plain("> a\n>> b\n> > c\n>\n"), "│ a\n│ │ b\n│ │ c\n│ \n");
    assert_eq!(plain("- [ ] task\n"), "• [ ] task\n");
}

#[test]
fn rules_and_emphasis_lines_are_told_apart() {
    let rule = "─".repeat(RULE_WIDTH);
    assert_eq!(
        plain("---\n***\n___\n- - -\n"),
        format!("{rule}\n{rule}\n{rule}\n{rule}\n")
    );
    assert_eq!(plain("***both***\n**b** x\n* * x\n"), "both\nb x\n• * x\n");
    assert_eq!(plain("+++\n"), "+++\n");
    assert_eq!(plain("--"), "--\n");
}

#[test]
fn emphasis_needs_sensible_markers() {
    assert_eq!(
        plain("snake_case_word and __init__.py\n"),
        "snake_case_word and init.py\n"
    );
    assert_eq!(plain("2 * 3 * 4 and 2*3*4\n"), "2 * 3 * 4 and 2*3*4\n");
    assert_eq!(plain("a * b*\n"), "a * b*\n");
    assert_eq!(
        plain("**Note:** x\n_it_ and *it*.\n"),
        "Note: x\nit and it.\n"
    );
    assert_eq!(plain(r"\*not\* \_it\_ \\ \q"), "*not* _it_ \\ \\q\n");
    assert_eq!(plain("**** and *****\n"), "**** and *****\n");
    assert_eq!(plain("trailing *\n"), "trailing *\n");
    assert_eq!(plain("back\\"), "back\\\n");
}

#[test]
fn inline_code_is_verbatim() {
    assert_eq!(
        plain("`a*b*_c_ [x](y)` and ``a ` b``\n"),
        "a*b*_c_ [x](y) and a ` b\n"
    );
    assert_eq!(plain("end `\n"), "end `\n");
    let out = render(colored(), "x `co*de` y\n");
    assert_eq!(out, "x \x1b[0;33mco*de\x1b[0m y\n");
}

#[test]
fn code_blocks_skip_inline_markdown_and_strip_fence_indent() {
    assert_eq!(plain("~~~\n**x** `y`\n```\n~~~\n"), "  **x** `y`\n  ```\n");
    assert_eq!(
        plain("- item\n  ```sh\n  ls -l\n    cd\n  ```\ndone\n"),
        "• item\n  sh\n  ls -l\n    cd\ndone\n"
    );
    // Longer closing fences close, shorter ones and fences with text do not.
    assert_eq!(
        plain("````\n```\n``` x\n`````\nout\n"),
        "  ```\n  ``` x\nout\n"
    );
    // An unclosed block ends with the message.
    assert_eq!(plain("```python\nprint(1)"), "  python\n  print(1)\n");
    // Blank code lines carry no indentation.
    assert_eq!(plain("```\na\n\nb\n```\n"), "  a\n\n  b\n");
}

#[test]
fn links_show_their_url_once_closed() {
    assert_eq!(
        plain("see [docs](https://d.rs) now\n"),
        "see docs (https://d.rs) now\n"
    );
    assert_eq!(plain("[https://a.b](https://a.b)\n"), "https://a.b\n");
    assert_eq!(plain("[**b** `c`](u)\n"), "b c (u)\n");
    assert_eq!(plain("[text]() [](u)\n"), "text (u)\n");
    // Not links: written as typed.
    assert_eq!(plain("[a] b [c]d [e [f](g)\n"), "[a] b [c]d [e f (g)\n");
    assert_eq!(plain("[a](b\nc\n"), "[a](b\nc\n");
    assert_eq!(plain("[*a*](b c"), "[a](b c\n");
    let out = render(colored(), "[t](u)\n");
    assert_eq!(out, "\x1b[0;4mt\x1b[0;2m (u)\x1b[0m\n");
}

#[test]
fn link_hold_back_is_bounded() {
    let long = "x".repeat(LINK_HOLD_CAP * 2);
    let mut md = MarkdownStream::new(Styler::plain());
    let mut out = String::new();
    md.push("[", &mut out);
    md.push(&long, &mut out);
    assert!(
        out.len() >= LINK_HOLD_CAP,
        "held {} bytes",
        long.len() + 1 - out.len()
    );
    assert!(md.link_buf.len() <= LINK_HOLD_CAP);
    md.push("](u)", &mut out);
    md.finish(&mut out);
    assert_eq!(out, format!("[{long}](u)\n"));
}

#[test]
fn coloured_output_styles_and_resets() {
    let out = render(colored(), DOC);
    assert_resets_before_newlines(&out);
    assert!(out.starts_with("\x1b[0;1;92mTitle 🚀\x1b[0m\n"), "{out:?}");
    assert!(out.contains("Some \x1b[0;1mbold\x1b[0m, \x1b[0;3mitalic\x1b[0m, \x1b[0;33mcode\x1b[0m and \x1b[0;4ma link\x1b[0;2m (https://x.io/a_(b))\x1b[0m.\n"), "{out:?}");
    assert!(out.contains("\x1b[0;92m•\x1b[0m first\n"), "{out:?}");
    assert!(out.contains("\x1b[0;92m3.\x1b[0m third\n"), "{out:?}");
    assert!(
        out.contains("\x1b[0;2m│ quoted \x1b[0;2;1mbit\x1b[0m\n"),
        "{out:?}"
    );
    assert!(
        out.contains("  \x1b[0;2mrust\x1b[0m\n  \x1b[0;33mlet s = \"**not bold**\";\x1b[0m\n"),
        "{out:?}"
    );
    assert!(
        out.contains(&format!("\x1b[0;2m{}\x1b[0m\n", "─".repeat(RULE_WIDTH))),
        "{out:?}"
    );
}

#[test]
fn unclosed_styles_close_at_end_of_line() {
    let out = render(colored(), "**bold _both\nnext `code\n# *head\nlast **");
    assert_resets_before_newlines(&out);
    assert_eq!(
        out,
        "\x1b[0;1mbold \x1b[0;1;3mboth\x1b[0m\n\
         next \x1b[0;33mcode\x1b[0m\n\
         \x1b[0;1;92;3mhead\x1b[0m\n\
         last **\n"
    );
    assert_eq!(plain("**bold _both\nnext"), "bold both\nnext\n");
}

#[test]
fn finish_writes_held_text_and_one_final_newline() {
    assert_eq!(plain(""), "");
    assert_eq!(plain("done\n"), "done\n");
    assert_eq!(plain("done"), "done\n");
    assert_eq!(plain("- "), "• \n");
    assert_eq!(plain("a\n   "), "a\n");
    assert_eq!(plain("a\n```"), "a\n");
    assert_eq!(plain("[x"), "[x\n");
    let out = render(colored(), "*it");
    assert_eq!(out, "\x1b[0;3mit\x1b[0m\n");

    // The stream is reusable after finish.
    let mut md = MarkdownStream::new(Styler::plain());
    let mut out = String::new();
    md.push("```\ncode", &mut out);
    md.finish(&mut out);
    md.push("# again", &mut out);
    md.finish(&mut out);
    assert_eq!(out, "  code\nagain\n");
}

#[test]
fn control_characters_cannot_reach_the_terminal() {
    assert_eq!(
        plain("a\x1b[2Jb\r\nc\u{9b}d\x07\n"),
        "a\u{fffd}[2Jb\nc\u{fffd}d\u{fffd}\n"
    );
    assert_eq!(
        plain("```\n\x1b]0;t\x07\n```\n"),
        "  \u{fffd}]0;t\u{fffd}\n"
    );
}

#[test]
fn multibyte_text_in_every_construct() {
    let doc = "# 見出し 🎉\n**太字** _斜体_ `コード` [リンク](https://例え.jp)\n- 🍣 寿司\n> 引用 ✨\n```\n中文 😀\n```\n";
    assert_eq!(
        plain(doc),
        "見出し 🎉\n太字 斜体 コード リンク (https://例え.jp)\n• 🍣 寿司\n│ 引用 ✨\n  中文 😀\n"
    );
    for styler in [Styler::plain(), colored()] {
        let whole = render(styler, doc);
        assert_eq!(render_deltas(styler, chars(doc)), whole);
        assert_eq!(render_deltas(styler, split(doc, &[3, 7])), whole);
    }
}

#[test]
fn a_megabyte_line_streams_without_holding_it() {
    let chunk = "word ".repeat(200);
    let mut md = MarkdownStream::new(Styler::plain());
    let mut out = String::new();
    for _ in 0..1000 {
        let before = out.len();
        md.push(&chunk, &mut out);
        assert!(out.len() >= before + chunk.len() - 8, "text held back");
    }
    assert!(md.hold.capacity() <= LINE_HOLD_CAP * 2);
    md.finish(&mut out);
    assert_eq!(out.len(), chunk.len() * 1000 + 1);
}

#[test]
fn hostile_input_is_bounded_and_not_lost() {
    let mb = 1 << 20;
    // Runs too long to be markdown come out exactly as typed.
    for text in [
        "`".repeat(mb),
        "*".repeat(mb),
        "_".repeat(mb),
        "-".repeat(mb),
        ">".repeat(mb),
        "[".repeat(mb),
        "#".repeat(mb),
        "1".repeat(mb),
        " ".repeat(mb) + "x",
        "[a](".repeat(mb / 4),
    ] {
        let mut md = MarkdownStream::new(Styler::plain());
        let mut out = String::new();
        let mut pushed = 0;
        for piece in split(&text, &[4093]) {
            md.push(piece, &mut out);
            pushed += piece.len();
            assert!(md.hold.capacity() <= LINE_HOLD_CAP * 2);
            assert!(md.link_buf.capacity() <= LINK_HOLD_CAP * 2);
            let held = pushed.saturating_sub(out.len());
            assert!(held <= LINK_HOLD_CAP + 4, "{:?} held {held}", &text[..8]);
        }
        md.finish(&mut out);
        assert!(out == text.clone() + "\n", "{:?}", &text[..8]);
    }
    // Alternating ticks are code spans: the ticks go, the text stays.
    let out = plain(&"` ".repeat(mb / 2));
    assert_eq!(out.matches(' ').count(), mb / 2);
    let out = plain(&"x`".repeat(mb / 2));
    assert_eq!(out.matches('x').count(), mb / 2);
}

/// The text of coloured output without its escape sequences.
fn strip_sgr(out: &str) -> String {
    let mut text = String::new();
    let mut rest = out;
    while let Some(start) = rest.find("\x1b[") {
        text.push_str(&rest[..start]);
        let end = rest[start..]
            .find('m')
            .map_or(rest.len(), |m| start + m + 1);
        rest = &rest[end..];
    }
    text.push_str(rest);
    text
}

#[test]
fn unbalanced_markers_keep_all_words() {
    let text = "a **b _c `d [e *f ~g ``h ___i ** j* k_ l` m] n) o\n**\n__\n`\n";
    let plain_out = plain(text);
    assert_eq!(
        plain_out,
        "a b c d [e *f ~g ``h ___i ** j* k_ l m] n) o\n**\n__\n`\n"
    );
    let out = render(colored(), text);
    assert_eq!(strip_sgr(&out), plain_out);
    assert_resets_before_newlines(&out);
    for styler in [Styler::plain(), colored()] {
        let whole = render(styler, text);
        assert_eq!(render_deltas(styler, chars(text)), whole);
        assert_eq!(render_deltas(styler, split(text, &[3, 7])), whole);
    }
}

#[test]
fn classify_decides_only_when_it_can() {
    assert_eq!(classify("#", false), None);
    assert_eq!(classify("##", true), Some(Kind::Heading { content: 2 }));
    assert_eq!(classify("- ", false), None);
    assert_eq!(
        classify("- x", false),
        Some(Kind::Bullet {
            indent: 0,
            content: 2
        })
    );
    assert_eq!(classify("12", false), None);
    assert_eq!(classify("12.", false), None);
    assert_eq!(
        classify("12. ", false),
        Some(Kind::Ordered {
            indent: 0,
            number: 0..3,
            content: 4
        })
    );
    assert_eq!(classify("``", false), None);
    assert_eq!(classify("``x", false), Some(Kind::Paragraph));
    assert_eq!(classify("   ", false), None);
    assert_eq!(classify("   ", true), Some(Kind::Blank));
    assert_eq!(classify("hello", false), Some(Kind::Paragraph));
    let fence = Fence {
        marker: '`',
        len: 3,
        indent: 0,
    };
    assert_eq!(classify_code("  ``", false, fence), None);
    assert_eq!(classify_code("```  ", true, fence), Some(CodeLine::Close));
    assert_eq!(classify_code("``", true, fence), Some(CodeLine::Text));
    assert_eq!(classify_code("x", false, fence), Some(CodeLine::Text));
}
