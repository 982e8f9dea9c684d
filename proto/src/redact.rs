//! Secrets out of tracker URLs before they reach a log line or an error message.
//!
//! Private trackers put a per-user passkey in the announce URL, either as a path segment
//! (`/announce/<key>`, also `/<key>/announce`) or in the query (`?passkey=<key>`). A URL
//! that is logged must name the tracker without handing the key to whoever reads the log.

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// `url` with every query value and every passkey-like path segment replaced by
/// [`REDACTED`]: `http://t:6969/announce/abc123?uid=7` → `http://t:6969/announce/<redacted>?uid=<redacted>`.
/// Works on full URLs and on bare paths (`/announce/abc?x=1`). The scheme, host, port and
/// the well-known path words (`announce`, `scrape`) are kept, so the line still says which
/// tracker it was.
pub fn tracker_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (origin, path) = split_origin(before_query);
    let mut out = String::with_capacity(url.len());
    out.push_str(origin);
    let segments: Vec<&str> = path.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        // Whatever follows an endpoint word is the key (`/announce/<key>`), however short.
        let after_endpoint = i > 0 && matches!(segments[i - 1], "announce" | "scrape");
        if seg.is_empty() || (!after_endpoint && is_public_segment(seg)) {
            out.push_str(seg);
        } else {
            out.push_str(REDACTED);
        }
    }
    if let Some(q) = query {
        out.push('?');
        redact_query(q, &mut out);
    }
    out
}

/// A web seed or origin URL fit for a log line: the user and password of `user:pw@`
/// and every query value (presigned URLs carry signatures there) become
/// [`REDACTED`]; the path, which names the file, is kept.
/// `https://u:p@s3.example/b/f.iso?X-Amz-Signature=ab` → `https://<redacted>@s3.example/b/f.iso?X-Amz-Signature=<redacted>`.
pub fn web_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    let (origin, path) = split_origin(before_query);
    match origin.find("://").map(|i| i + 3) {
        Some(start) if origin[start..].contains('@') => {
            let at = start + origin[start..].rfind('@').expect("contains @");
            out.push_str(&origin[..start]);
            out.push_str(REDACTED);
            out.push_str(&origin[at..]);
        }
        _ => out.push_str(origin),
    }
    out.push_str(path);
    if let Some(q) = query {
        out.push('?');
        redact_query(q, &mut out);
    }
    out
}

fn redact_query(q: &str, out: &mut String) {
    for (i, pair) in q.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) => {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            None if pair.is_empty() => {}
            None => out.push_str(REDACTED),
        }
    }
}

/// `scheme://host:port` and the path after it (the whole input is a path when there is
/// no scheme).
fn split_origin(url: &str) -> (&str, &str) {
    let Some(scheme_end) = url.find("://") else {
        return ("", url);
    };
    let rest = &url[scheme_end + 3..];
    match rest.find('/') {
        Some(slash) => url.split_at(scheme_end + 3 + slash),
        None => (url, ""),
    }
}

/// Path segments that are never secrets: the tracker endpoints and short words. A key
/// is a long random token, so anything of 16 or more characters, or anything that is
/// not one of the endpoint names and contains a digit, is treated as one.
fn is_public_segment(seg: &str) -> bool {
    matches!(
        seg,
        "announce" | "scrape" | "announce.php" | "scrape.php" | "tracker"
    ) || (seg.len() < 16 && !seg.bytes().any(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passkeys_in_paths_and_queries_are_hidden() {
        let cases = [
            ("http://t:6969/announce", "http://t:6969/announce"),
            (
                "http://t:6969/announce/0123456789abcdef0123456789abcdef",
                "http://t:6969/announce/<redacted>",
            ),
            (
                "https://t.example/9f8e7d6c5b4a39281706/announce",
                "https://t.example/<redacted>/announce",
            ),
            (
                "http://t/announce?passkey=s3cret&uid=7",
                "http://t/announce?passkey=<redacted>&uid=<redacted>",
            ),
            ("http://t:1", "http://t:1"),
            (
                "/announce/k3y?info_hash=x",
                "/announce/<redacted>?info_hash=<redacted>",
            ),
            (
                "udp://t:6969/announce/abc1",
                "udp://t:6969/announce/<redacted>",
            ),
            ("http://t/announce?", "http://t/announce?"),
        ];
        for (input, want) in cases {
            assert_eq!(tracker_url(input), want, "{input}");
        }
    }

    #[test]
    fn the_key_never_survives() {
        for key in ["abcdefabcdefabcdefab", "k1", "0000", "letters"] {
            for url in [
                format!("http://h:80/announce/{key}"),
                format!("http://h:80/announce?passkey={key}"),
                format!("http://h:80/{key}0/announce"),
            ] {
                assert!(!tracker_url(&url).contains(key), "{url}");
            }
        }
    }

    #[test]
    fn web_urls_keep_the_path_and_hide_credentials_and_query_values() {
        let cases = [
            ("http://o:8080/files/", "http://o:8080/files/"),
            (
                "http://o/release-1.2/app-2024.tar",
                "http://o/release-1.2/app-2024.tar",
            ),
            (
                "https://u:pw@s3.example/b/f.iso?X-Amz-Signature=ab&x",
                "https://<redacted>@s3.example/b/f.iso?X-Amz-Signature=<redacted>&<redacted>",
            ),
            ("https://a@b@h/p", "https://<redacted>@h/p"),
            ("http://h?k=v", "http://h?k=<redacted>"),
            ("not a url?secret=1", "not a url?secret=<redacted>"),
        ];
        for (input, want) in cases {
            assert_eq!(web_url(input), want, "{input}");
        }
    }
}
