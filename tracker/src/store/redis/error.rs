//! What a Redis call can end with: the store's error, and the outcome the seam reports
//! back to it.

/// Why a Redis call failed (the seam turns it into "storage unavailable").
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
}

/// How a store call ended, as the seam saw it.
#[derive(Debug, Clone, Copy)]
pub enum CallOutcome<'a> {
    Ok,
    Failed(&'a RemoteError),
    /// The seam's deadline passed first (the call was dropped).
    TimedOut,
}
