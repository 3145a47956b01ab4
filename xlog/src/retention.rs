//! Retention: at start, day files older than the configured number of days are removed.
//!
//! The age of a file is read from its name (`chime_YYYYMMDD.xlog`, a UTC date), not from its
//! modification time, so copying a log directory around does not change what is kept. Files
//! whose names do not match exactly (the decoder's `*.xlog.log` output, anything a host puts
//! there) are never touched.

use std::path::{Path, PathBuf};

use crate::clock::Date;
use crate::error::{Result, XlogError};

/// The name prefix of day files.
pub const FILE_PREFIX: &str = "chime_";
/// The name suffix of day files.
pub const FILE_SUFFIX: &str = ".xlog";

/// The file name of the day file for `date` (`chime_YYYYMMDD.xlog`).
pub fn file_name(date: Date) -> String {
    format!("{FILE_PREFIX}{}{FILE_SUFFIX}", date.compact())
}

/// The date of a day file's name, or `None` if the name is not one.
pub fn date_of_file_name(name: &str) -> Option<Date> {
    let stem = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    Date::parse_compact(stem)
}

/// Removes the day files in `dir` that are `retention_days` days old or older, counting from
/// `today` (a Unix day number): with 7, today's file and the six before it are kept. A
/// `retention_days` of 0 keeps everything. Returns the removed paths, sorted. A file that
/// cannot be removed is left in place (and not returned); only an unreadable directory is an
/// error.
pub fn remove_expired(dir: &Path, retention_days: u32, today: i64) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    if retention_days == 0 {
        return Ok(removed);
    }
    let io = |source| XlogError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(date) = name.to_str().and_then(date_of_file_name) else {
            continue;
        };
        if today - date.to_days() >= i64::from(retention_days) && entry.path().is_file() {
            let path = entry.path();
            // Someone else's permissions or a race with another process: keep going.
            if std::fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let d = Date {
            year: 2026,
            month: 1,
            day: 5,
        };
        assert_eq!(file_name(d), "chime_20260105.xlog");
        assert_eq!(date_of_file_name("chime_20260105.xlog"), Some(d));
        assert_eq!(date_of_file_name("chime_20260105.xlog.log"), None);
        assert_eq!(date_of_file_name("other_20260105.xlog"), None);
    }
}
