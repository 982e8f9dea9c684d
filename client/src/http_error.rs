//! What went wrong with an HTTP request, in words for a user: the innermost cause of a
//! reqwest error, without the URL (it may carry a passkey), for trackers and web seeds.

/// The innermost cause of `e`; `server` names what was asked ("tracker", "web server")
/// in the hints for the common network failures.
pub fn cause(e: reqwest::Error, server: &str) -> String {
    let e = e.without_url();
    let mut inner: &dyn std::error::Error = &e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    match inner.downcast_ref::<std::io::Error>().map(|io| io.kind()) {
        Some(std::io::ErrorKind::ConnectionRefused) => {
            format!("connection refused (is the {server} running?)")
        }
        Some(std::io::ErrorKind::TimedOut) => "connection timed out".into(),
        Some(std::io::ErrorKind::ConnectionReset) => format!("connection reset by the {server}"),
        _ => inner.to_string(),
    }
}
