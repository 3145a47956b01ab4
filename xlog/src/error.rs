//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong starting, flushing or reading logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XlogError {
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A background thread could not be started.
    #[error("cannot start the {what} thread: {source}")]
    Spawn {
        /// Which thread.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The background writer has stopped (it panicked or the logger is shutting down).
    #[error("the log writer has stopped")]
    WriterStopped,
    /// The writer did not confirm a flush in time.
    #[error("the log writer did not confirm the flush within {0:?}")]
    FlushTimeout(std::time::Duration),
    /// Writing a block failed (the writer reports the latest failure on flush).
    #[error("writing the log file failed: {0}")]
    Write(String),
}

/// `Result` with [`XlogError`] as the default error.
pub type Result<T, E = XlogError> = std::result::Result<T, E>;
