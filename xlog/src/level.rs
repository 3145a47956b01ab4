//! Log levels as the seed names them (`V2TIMLogLevel`), and the shared, run-time changeable
//! threshold every part of a logger reads.
//!
//! The seed has five levels: `none` (nothing is logged), `debug` (the default: everything),
//! `info`, `warn` and `error`; each includes the ones after it. `tracing`'s `TRACE` events are
//! below `debug` and never recorded; when they are handed to the listener they are reported as
//! [`Level::Debug`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::{Deserialize, Serialize};

/// A log level (the seed's `V2TIMLogLevel`). As a threshold, a level lets through events of
/// itself and everything more severe; [`Level::None`] lets nothing through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// No logs at all.
    None,
    /// Debug and above (the seed's default).
    #[default]
    Debug,
    /// Info and above.
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
}

impl Level {
    /// The lowercase name used in configuration (`none debug info warn error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// The level a `tracing` event is reported as (`TRACE` counts as debug).
    pub fn of_event(level: &tracing::Level) -> Level {
        if *level == tracing::Level::ERROR {
            Level::Error
        } else if *level == tracing::Level::WARN {
            Level::Warn
        } else if *level == tracing::Level::INFO {
            Level::Info
        } else {
            Level::Debug
        }
    }

    /// Whether a `tracing` event of `level` passes this threshold.
    pub fn allows(self, level: &tracing::Level) -> bool {
        match self.max_tracing_level() {
            Some(max) => *level <= max,
            None => false,
        }
    }

    /// The most verbose `tracing` level this threshold lets through (`None` for [`Level::None`]).
    pub fn max_tracing_level(self) -> Option<tracing::Level> {
        match self {
            Level::None => None,
            Level::Debug => Some(tracing::Level::DEBUG),
            Level::Info => Some(tracing::Level::INFO),
            Level::Warn => Some(tracing::Level::WARN),
            Level::Error => Some(tracing::Level::ERROR),
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Level::None => 0,
            Level::Debug => 1,
            Level::Info => 2,
            Level::Warn => 3,
            Level::Error => 4,
        }
    }

    fn from_u8(v: u8) -> Level {
        match v {
            1 => Level::Debug,
            2 => Level::Info,
            3 => Level::Warn,
            4 => Level::Error,
            _ => Level::None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Level`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {0:?} (expected none, debug, info, warn or error)")]
pub struct ParseLevelError(pub String);

impl FromStr for Level {
    type Err = ParseLevelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Level::None),
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warn" | "warning" => Ok(Level::Warn),
            "error" => Ok(Level::Error),
            _ => Err(ParseLevelError(s.to_owned())),
        }
    }
}

/// A threshold shared by the layer and the logger handle, changeable at run time without locks.
#[derive(Debug, Clone)]
pub(crate) struct SharedLevel(Arc<AtomicU8>);

impl SharedLevel {
    pub(crate) fn new(level: Level) -> Self {
        SharedLevel(Arc::new(AtomicU8::new(level.to_u8())))
    }

    pub(crate) fn get(&self) -> Level {
        Level::from_u8(self.0.load(Ordering::Relaxed))
    }

    pub(crate) fn set(&self, level: Level) {
        self.0.store(level.to_u8(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_names_and_round_trips() {
        for level in [
            Level::None,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
        ] {
            assert_eq!(level.as_str().parse::<Level>(), Ok(level));
            assert_eq!(Level::from_u8(level.to_u8()), level);
        }
        assert_eq!("WARNING".parse::<Level>(), Ok(Level::Warn));
        assert_eq!(
            "loud".parse::<Level>(),
            Err(ParseLevelError("loud".to_owned()))
        );
        assert_eq!(Level::default(), Level::Debug);
    }

    #[test]
    fn thresholds_include_the_more_severe_levels() {
        use tracing::Level as T;
        assert!(Level::Debug.allows(&T::DEBUG));
        assert!(Level::Debug.allows(&T::ERROR));
        assert!(!Level::Debug.allows(&T::TRACE));
        assert!(!Level::Info.allows(&T::DEBUG));
        assert!(Level::Info.allows(&T::INFO));
        assert!(Level::Warn.allows(&T::ERROR));
        assert!(!Level::Error.allows(&T::WARN));
        assert!(!Level::None.allows(&T::ERROR));
        assert_eq!(Level::of_event(&T::TRACE), Level::Debug);
        assert_eq!(Level::of_event(&T::WARN), Level::Warn);
    }
}
