//! BEP 41 announce options: the URL path and query carried after an announce's fixed
//! fields, so a tracker can see `/announce/<passkey>` like an HTTP one does.
//!
//! Options are type-length-value: `EndOfOptions` (0x0) stops parsing, `NOP` (0x1) is one
//! byte of padding, and every other type has a length byte and that many data bytes.
//! `URLData` (0x2) chunks are concatenated in order; other types are skipped by their
//! length, as the BEP asks, so new option types do not break old trackers.

const END_OF_OPTIONS: u8 = 0x0;
const NOP: u8 = 0x1;
const URL_DATA: u8 = 0x2;

/// Most bytes one URLData option carries (its length is one byte).
pub const URL_DATA_CHUNK: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("BEP 41 option of type {kind} at byte {at} has no length byte")]
    MissingLength { kind: u8, at: usize },
    #[error("BEP 41 option of type {kind} at byte {at} runs past the end of the datagram")]
    Truncated { kind: u8, at: usize },
}

impl OptionsError {
    pub const LABEL: &'static str = "udp_bad_options";
}

/// Collects the URLData of `options` into `out` (cleared first). Never allocates beyond
/// `options.len()` bytes in `out`, so a reused buffer of [`super::MAX_DATAGRAM`] bytes
/// never grows.
pub fn url_data(options: &[u8], out: &mut Vec<u8>) -> Result<(), OptionsError> {
    out.clear();
    let mut at = 0;
    while at < options.len() {
        let kind = options[at];
        match kind {
            END_OF_OPTIONS => break,
            NOP => at += 1,
            _ => {
                let Some(&len) = options.get(at + 1) else {
                    return Err(OptionsError::MissingLength { kind, at });
                };
                let start = at + 2;
                let end = start + usize::from(len);
                let Some(data) = options.get(start..end) else {
                    return Err(OptionsError::Truncated { kind, at });
                };
                if kind == URL_DATA {
                    out.extend_from_slice(data);
                }
                at = end;
            }
        }
    }
    Ok(())
}

/// Appends `path_and_query` (e.g. `/announce/KEY?x=1`) as URLData options, split into
/// chunks of at most [`URL_DATA_CHUNK`] bytes, followed by `EndOfOptions`. Nothing is
/// written for an empty path.
pub fn encode_url_data(out: &mut Vec<u8>, path_and_query: &[u8]) {
    if path_and_query.is_empty() {
        return;
    }
    for chunk in path_and_query.chunks(URL_DATA_CHUNK) {
        out.push(URL_DATA);
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
    out.push(END_OF_OPTIONS);
}
