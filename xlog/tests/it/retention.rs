//! Day files past retention are removed at start; recent and foreign files are kept.

use chime_xlog::clock::{Date, day_of_ms, now_ms};
use chime_xlog::retention::file_name;
use chime_xlog::{Level, LogConfig, Logger};

use crate::helpers::{lines, started};

fn name(days_ago: i64) -> String {
    file_name(Date::from_days(day_of_ms(now_ms()) - days_ago))
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn files_seven_days_old_or_older_are_removed_and_others_kept() {
    let dir = tempfile::tempdir().unwrap();
    let old_log = format!("{}.log", name(30)); // decoder output: foreign
    for f in [
        name(30),
        name(8),
        name(7),
        name(6),
        name(1),
        old_log.clone(),
    ] {
        std::fs::write(dir.path().join(f), b"x").unwrap();
    }
    for f in ["notes.txt", "chime_20260231.xlog", "chime_2020.xlog"] {
        std::fs::write(dir.path().join(f), b"x").unwrap();
    }
    let logger = Logger::start(LogConfig::new(dir.path())).unwrap();
    let mut removed: Vec<String> = logger
        .removed_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    removed.sort();
    let mut want_removed = vec![name(30), name(8), name(7)];
    want_removed.sort();
    assert_eq!(removed, want_removed);
    assert_eq!(lines(&logger), [started(Level::Debug, 7, 3)]);
    let mut want = vec![
        name(6),
        name(1),
        name(0),
        old_log,
        "notes.txt".to_owned(),
        "chime_20260231.xlog".to_owned(),
        "chime_2020.xlog".to_owned(),
    ];
    want.sort();
    assert_eq!(names(dir.path()), want);
}

#[test]
fn retention_is_configurable_and_zero_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    for f in [name(400), name(3), name(2)] {
        std::fs::write(dir.path().join(f), b"x").unwrap();
    }
    let mut config = LogConfig::new(dir.path());
    config.retention_days = 0;
    drop(Logger::start(config).unwrap());
    assert_eq!(names(dir.path()).len(), 4, "{:?}", names(dir.path()));

    let mut config = LogConfig::new(dir.path());
    config.retention_days = 3;
    let logger = Logger::start(config).unwrap();
    assert_eq!(logger.removed_files().len(), 2);
    let mut want = vec![name(2), name(0)];
    want.sort();
    assert_eq!(names(dir.path()), want);
}

#[test]
fn a_missing_log_dir_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/logs");
    let logger = Logger::start(LogConfig::new(&nested)).unwrap();
    assert_eq!(lines(&logger), [started(Level::Debug, 7, 0)]);
    assert!(logger.today_file().starts_with(&nested));
}
