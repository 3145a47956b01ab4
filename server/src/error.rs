//! The server's error types: [`ServerError`] for running the server, [`ApiError`] for a request
//! answered with a numeric code (api.md §6). Codes are chosen where the request is handled.

use chime_proto::codes;

/// Failure to start or run the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// I/O (binding the listener, files).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The sled backend failed.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value could not be decoded.
    #[error("corrupt value: {0}")]
    Corrupt(String),
}

/// A request refused with a code and a description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {desc}")]
pub struct ApiError {
    /// api.md §6 code.
    pub code: i32,
    /// Human-readable reason.
    pub desc: String,
}

impl ApiError {
    /// An error with `code` and `desc`.
    pub fn new(code: i32, desc: impl Into<String>) -> Self {
        Self {
            code,
            desc: desc.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::new(codes::ERR_SVR_INTERNAL, e.to_string())
    }
}

impl From<prost::DecodeError> for StoreError {
    fn from(e: prost::DecodeError) -> Self {
        Self::Corrupt(e.to_string())
    }
}

/// Result of a request handler.
pub type ApiResult<T> = Result<T, ApiError>;
