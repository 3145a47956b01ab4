//! The level filters lines, from start and after changes at run time.

use chime_xlog::Level;

use crate::helpers::{lines, start, started, with_logger};

fn all_levels(tag: &str) {
    tracing::trace!(target: "t", "{tag} trace");
    tracing::debug!(target: "t", "{tag} debug");
    tracing::info!(target: "t", "{tag} info");
    tracing::warn!(target: "t", "{tag} warn");
    tracing::error!(target: "t", "{tag} error");
}

#[test]
fn each_level_keeps_itself_and_the_more_severe() {
    let dir = tempfile::tempdir().unwrap();
    let logger = start(dir.path(), Level::Info);
    assert_eq!(logger.level(), Level::Info);
    with_logger(&logger, || {
        all_levels("a");
        logger.set_level(Level::Warn);
        all_levels("b");
        logger.set_level(Level::Error);
        all_levels("c");
        logger.set_level(Level::None);
        all_levels("d");
        logger.set_level(Level::Debug);
        all_levels("e");
    });
    assert_eq!(
        lines(&logger),
        [
            started(Level::Info, 7, 0).as_str(),
            "INFO t: a info",
            "WARN t: a warn",
            "ERROR t: a error",
            "WARN t: b warn",
            "ERROR t: b error",
            "ERROR t: c error",
            "DEBUG t: e debug",
            "INFO t: e info",
            "WARN t: e warn",
            "ERROR t: e error",
        ]
    );
}

#[test]
fn level_none_writes_nothing_until_raised() {
    let dir = tempfile::tempdir().unwrap();
    let logger = start(dir.path(), Level::None);
    with_logger(&logger, || all_levels("quiet"));
    logger.flush().unwrap();
    assert!(!logger.today_file().exists());
    logger.set_level(Level::Error);
    with_logger(&logger, || all_levels("loud"));
    assert_eq!(lines(&logger), ["ERROR t: loud error"]);
}

#[test]
fn level_names_parse_and_serialize_lowercase() {
    let l: Level = serde_json::from_str("\"warn\"").unwrap();
    assert_eq!(l, Level::Warn);
    assert_eq!(serde_json::to_string(&Level::None).unwrap(), "\"none\"");
    assert_eq!("info".parse::<Level>().unwrap(), Level::Info);
    assert!("verbose".parse::<Level>().is_err());
}
