//! What the API's handlers share: their state, the JSON error type and its mapping
//! from session errors, and info-hash parsing.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kpbt_proto::InfoHash;
use serde_json::json;

use crate::session::{Session, SessionError};

pub(crate) struct ApiState {
    pub session: Session,
    pub token: Option<String>,
    /// For `POST /torrents {"url": ...}`.
    pub http: reqwest::Client,
}

/// An API failure: its status and what to tell the caller.
#[derive(Debug)]
pub(crate) struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> ApiError {
        let status = match &e {
            SessionError::Exists(_) | SessionError::WrongState(..) => StatusCode::CONFLICT,
            SessionError::NotFound(_) => StatusCode::NOT_FOUND,
            SessionError::BadTorrent(_) | SessionError::BadRequest(_) => StatusCode::BAD_REQUEST,
            SessionError::StateDir(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

pub(crate) fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

pub(crate) fn parse_info_hash(s: &str) -> Result<InfoHash, ApiError> {
    InfoHash::from_hex(s)
        .ok_or_else(|| bad_request(format!("{s:?} is not an info hash (40 hex digits)")))
}
