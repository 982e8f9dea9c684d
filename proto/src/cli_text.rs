//! How kpbt's binaries talk to a person: an error chain on one line with each cause
//! once, and colour only where a person reads it. Pure functions, shared by both CLIs.

use std::error::Error;
use std::ffi::OsStr;

/// `err` and its sources joined by `": "`, skipping a cause whose text the line already
/// holds: many error types print their source in their own message, which a plain
/// chain (anyhow's `{:#}`) would repeat ("Permission denied: Permission denied").
pub fn error_line(err: &(dyn Error + 'static)) -> String {
    let mut out = String::new();
    let mut next = Some(err);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// Colour only on a terminal, and never when `NO_COLOR` is set to anything non-empty
/// (<https://no-color.org>).
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("binding 127.0.0.1:1: {source}")]
    struct Bind {
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("starting")]
    struct Starting(#[source] Bind);

    #[test]
    fn each_cause_once() {
        let e = Starting(Bind {
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        });
        let text = error_line(&e);
        assert_eq!(text.matches("address in use").count(), 1, "{text}");
        assert!(
            text.starts_with("starting: binding 127.0.0.1:1: "),
            "{text}"
        );
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
    }
}
