//! Secrets in URLs: an API key in a query string (`?api-key=…`,
//! `?key=…`) or in a user-info part (`https://user:pass@host`, or a token
//! as the user name) must not be printed. Every place that shows a URL — errors, logs, statuses, REST
//! answers — passes it, or the text that contains it, through here.

use std::borrow::Cow;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// `url` with every query value and any user information replaced by
/// [`REDACTED`]; parameter names stay, so the URL still says what it is.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (url, None),
    };
    let (base, query) = match before_fragment.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (before_fragment, None),
    };
    let base = redact_password(base);
    if query.is_none() && matches!(base, Cow::Borrowed(_)) {
        return Cow::Borrowed(url);
    }
    let mut out = base.into_owned();
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) if !value.is_empty() => format!("{name}={REDACTED}"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    Cow::Owned(out)
}

/// `scheme://user:password@host…` with the user information redacted.
fn redact_password(base: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = base.split_once("://") else {
        return Cow::Borrowed(base);
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rsplit_once('@') {
        Some((_, host)) => Cow::Owned(format!(
            "{scheme}://{REDACTED}@{host}{}",
            &rest[authority_end..]
        )),
        None => Cow::Borrowed(base),
    }
}

/// `text` with every `http://` or `https://` URL in it redacted
/// ([`redact_url`]): for error messages of libraries that quote URLs.
pub fn redact_urls_in(text: &str) -> Cow<'_, str> {
    if !text.contains("http://") && !text.contains("https://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_url(rest) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | '<' | ','))
            .unwrap_or(tail.len());
        out.push_str(&redact_url(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn find_url(text: &str) -> Option<usize> {
    match (text.find("http://"), text.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_and_passwords_are_hidden_names_stay() {
        assert_eq!(
            redact_url("https://h.example/v1?api-key=s3cr3t&api-version=2024"),
            "https://h.example/v1?api-key=[redacted]&api-version=[redacted]"
        );
        assert_eq!(
            redact_url("https://u:pw@h.example:8443/mcp?key=k#top"),
            "https://[redacted]@h.example:8443/mcp?key=[redacted]#top"
        );
        assert_eq!(redact_url("http://127.0.0.1:9/v1"), "http://127.0.0.1:9/v1");
        assert_eq!(redact_url("https://h/p?flag&x="), "https://h/p?flag&x=");
    }

    #[test]
    fn urls_inside_messages_are_found() {
        let text = "error sending request for url (http://h/mcp?key=s3cr3t): connection refused";
        let shown = redact_urls_in(text);
        assert_eq!(
            shown,
            "error sending request for url (http://h/mcp?key=[redacted]): connection refused"
        );
        assert!(matches!(redact_urls_in("no url here"), Cow::Borrowed(_)));
        let two = redact_urls_in("\"https://a/?t=1\" and https://b/?t=2");
        assert_eq!(
            two,
            "\"https://a/?t=[redacted]\" and https://b/?t=[redacted]"
        );
    }
}
