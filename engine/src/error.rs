//! The one error type every public call answers: a numeric code of api.md §6 and a description.

use chime_proto::codes;
use serde::Serialize;

/// `{code, desc}`: the error answer of every API call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {desc}")]
pub struct ApiError {
    /// Numeric code (api.md §6); never 0.
    pub code: i32,
    /// Human-readable description; for 6017 it names the offending field.
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

    /// 6017 naming the offending field or the reason.
    pub fn invalid_param(desc: impl Into<String>) -> Self {
        Self::new(codes::ERR_INVALID_PARAMETERS, desc)
    }
}

/// Result of an API call.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;
