//! Chime's logging, as the seed's init chapter describes it: levels (`none`, `debug` — the
//! default —, `info`, `warn`, `error`), compressed day files in a log directory kept for 7 days,
//! a log listener that receives every line, and a decoder.
//!
//! - [`Logger::start`] creates the directory, removes day files past retention, and starts a
//!   background writer thread. It installs **no global subscriber**: it returns a
//!   [`tracing::Dispatch`] (via [`Logger::dispatch`]) that an engine sets as the default on the
//!   threads it owns, so several engines in one process each log to their own directory
//!   ([`set_thread_default`] does it for a thread's whole life, e.g. from a thread-start hook).
//! - Events become text lines ([`XlogLayer`]) handed to the writer through a bounded queue that
//!   is never waited on; overflow is dropped and counted ([`Logger::dropped_lines`]), and the
//!   file says how many lines were lost.
//! - The writer appends self-delimiting, CRC-checked, deflate-compressed blocks to
//!   `chime_YYYYMMDD.xlog` (UTC date); see [`block`] and `docs/logging.md` for the format.
//! - [`decode_file`] reads a file back, skipping and reporting damage; the `chime-xlog decode`
//!   binary prints it as plain text.
//!
//! ```no_run
//! use chime_xlog::{Level, LogConfig, Logger};
//!
//! # fn main() -> Result<(), chime_xlog::XlogError> {
//! let mut config = LogConfig::new("/tmp/chime-logs");
//! config.level = Level::Info;
//! let logger = Logger::start(config)?;
//! let dispatch = logger.dispatch();
//! std::thread::spawn(move || {
//!     let _guard = tracing::dispatcher::set_default(&dispatch);
//!     tracing::info!(user = "alice", "login ok");
//! })
//! .join()
//! .ok();
//! logger.flush()?;
//! let report = chime_xlog::decode_file(logger.today_file())?;
//! assert!(report.lines.iter().any(|l| l.ends_with("login ok user=alice")));
//! # Ok(())
//! # }
//! ```

pub mod block;
pub mod clock;
mod decode;
mod error;
mod layer;
mod level;
mod listener;
mod logger;
pub mod retention;
mod thread_default;
mod writer;

pub use decode::{Damage, DamageKind, DecodeReport, decode_bytes, decode_file};
pub use error::{Result, XlogError};
pub use layer::XlogLayer;
pub use level::{Level, ParseLevelError};
pub use listener::LogListener;
pub use logger::{LogConfig, LogStats, Logger};
pub use thread_default::set_thread_default;
