//! `GET /torrents/{info_hash}/files/{index}`: a torrent's file over HTTP with `Range`
//! support. While the torrent downloads, the read waits for each piece it needs and
//! makes the next pieces urgent in the picker, so a file can be streamed before the
//! torrent is complete.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use crate::api_common::{parse_info_hash, ApiError, ApiState};
use crate::shared::Shared;

/// Bytes read from disk per body chunk.
const CHUNK: u64 = 256 * 1024;
/// Pieces ahead of the reader that are made urgent.
const READ_AHEAD_PIECES: u32 = 8;
/// How often a read waiting for a piece looks again.
const PIECE_POLL: Duration = Duration::from_millis(50);

/// The byte range `[start, end)` of a file of `len` bytes that `Range` asks for;
/// `Ok(None)` means the whole file. Only single ranges are served.
fn parse_range(value: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = value else { return Ok(None) };
    let spec = v.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Err(());
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        // Suffix: the last N bytes.
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            len
        } else {
            b.parse::<u64>().map_err(|_| ())?.saturating_add(1).min(len)
        };
        (start, end)
    };
    if range.0 >= range.1 {
        return Err(());
    }
    Ok(Some(range))
}

pub(crate) async fn read(
    State(state): State<Arc<ApiState>>,
    Path((ih, index)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ih = parse_info_hash(&ih)?;
    let index: usize = index.parse().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("file index {index:?} is not a number"),
        )
    })?;
    let (shared, file_offset, len, name) = state.session.file_source(ih, index)?;
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    );
    let (start, end, partial) = match range {
        Ok(None) => (0, len, false),
        Ok(Some((a, b))) => (a, b, true),
        Err(()) => {
            let mut resp = Response::new(Body::from(
                serde_json::json!({ "error": format!("unsatisfiable or unsupported range; the file has {len} bytes") })
                    .to_string(),
            ));
            *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            resp.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii"),
            );
            return Ok(resp);
        }
    };
    let stream = futures_util::stream::unfold(
        (shared, file_offset + start, file_offset + end),
        |(shared, pos, end)| async move {
            if pos >= end {
                return None;
            }
            let chunk = read_chunk(&shared, pos, end).await;
            match chunk {
                Ok(b) => {
                    let next = pos + b.len() as u64;
                    Some((Ok::<Bytes, std::io::Error>(b), (shared, next, end)))
                }
                Err(e) => Some((Err(e), (shared, end, end))),
            }
        },
    );
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    let safe_name: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"')
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe_name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if partial {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)).expect("ascii"),
        );
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(resp)
}

/// Reads up to `CHUNK` bytes at torrent offset `pos` (not past `end` or the end of
/// its piece), waiting until that piece is verified.
async fn read_chunk(shared: &Arc<Shared>, pos: u64, end: u64) -> std::io::Result<Bytes> {
    let layout = shared.storage.layout();
    let piece_len = u64::from(layout.piece_len);
    let piece = (pos / piece_len) as u32;
    let begin = (pos % piece_len) as u32;
    let piece_end = layout.piece_offset(piece) + u64::from(layout.piece_size(piece));
    let n = (end.min(piece_end) - pos).min(CHUNK) as usize;
    loop {
        {
            let mut st = shared.lock();
            if st.picker.have(piece) {
                break;
            }
            st.picker
                .set_urgent(piece..piece.saturating_add(READ_AHEAD_PIECES));
        }
        if shared.events.is_closed() {
            return Err(std::io::Error::other(
                "the torrent stopped before this piece arrived",
            ));
        }
        tokio::time::sleep(PIECE_POLL).await;
    }
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; n];
        shared
            .storage
            .read(piece, begin, &mut buf)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_are_parsed_and_clamped_and_bad_ones_refused() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ok(Some((0, 10))));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Ok(Some((90, 100))));
        assert_eq!(parse_range(Some("bytes=-5"), 100), Ok(Some((95, 100))));
        assert_eq!(parse_range(Some("bytes=-500"), 100), Ok(Some((0, 100))));
        assert_eq!(parse_range(Some("bytes=50-5000"), 100), Ok(Some((50, 100))));
        for bad in [
            "bytes=100-",
            "bytes=5-2",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=x-1",
            "bytes=-0",
        ] {
            assert_eq!(parse_range(Some(bad), 100), Err(()), "{bad}");
        }
    }
}
