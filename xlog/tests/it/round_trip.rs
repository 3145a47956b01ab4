//! Lines written through `tracing` come back from the file exactly.

use chime_xlog::{Level, decode_file};

use crate::helpers::{lines, start, started, untimed, with_logger};

#[test]
fn many_lines_round_trip_exactly_across_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let logger = start(dir.path(), Level::Debug);
    with_logger(&logger, || {
        for i in 0..5000u32 {
            tracing::debug!(target: "chime_engine::outbox", msg_id = i, peer = "bob", "send {i}");
        }
    });
    let got = lines(&logger);
    let mut want = vec![started(Level::Debug, 7, 0)];
    want.extend(
        (0..5000).map(|i| format!("DEBUG chime_engine::outbox: send {i} msg_id={i} peer=bob")),
    );
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    let stats = logger.stats();
    assert_eq!(stats.dropped_lines, 0);
    assert_eq!(stats.lines_written, 5001);
    assert!(
        stats.blocks > 10,
        "5000 lines should span many 16 KiB blocks: {stats:?}"
    );
    assert!(
        stats.file_bytes * 3 < stats.text_bytes,
        "poor compression: {stats:?}"
    );
    let on_disk = std::fs::metadata(logger.today_file()).unwrap().len();
    assert_eq!(on_disk, stats.file_bytes);
}

#[test]
fn spans_levels_fields_and_newlines_are_formatted() {
    let dir = tempfile::tempdir().unwrap();
    let logger = start(dir.path(), Level::Debug);
    with_logger(&logger, || {
        let session = tracing::info_span!("session", user = "alice");
        let _s = session.enter();
        let sync = tracing::debug_span!("sync", page = 3);
        let _y = sync.enter();
        sync.record("page", 4);
        tracing::warn!(target: "chime_engine::sync", code = 6014, "two\nlines");
        tracing::error!(target: "chime_engine::sync", done = true);
    });
    assert_eq!(
        lines(&logger)[1..],
        [
            "WARN chime_engine::sync: session{user=alice}: sync{page=3 page=4}: two\\nlines \
             code=6014",
            "ERROR chime_engine::sync: session{user=alice}: sync{page=3 page=4}: done=true",
        ]
    );
}

#[test]
fn dropping_the_logger_writes_the_pending_block() {
    let dir = tempfile::tempdir().unwrap();
    let path;
    {
        let logger = start(dir.path(), Level::Debug);
        path = logger.today_file();
        with_logger(&logger, || tracing::info!(target: "t", "last words"));
    }
    let report = decode_file(&path).unwrap();
    let got: Vec<String> = report.lines.iter().map(|l| untimed(l)).collect();
    assert_eq!(
        got,
        [started(Level::Debug, 7, 0), "INFO t: last words".to_owned()]
    );
}

#[test]
fn the_decoder_binary_prints_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let logger = start(dir.path(), Level::Debug);
    with_logger(&logger, || tracing::info!(target: "t", n = 1, "hello"));
    let want = lines(&logger);
    let out = dir.path().join("decoded.txt");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_chime-xlog"))
        .arg("decode")
        .arg(logger.today_file())
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&out).unwrap();
    let got: Vec<String> = text.lines().map(untimed).collect();
    assert_eq!(got, want);
    assert!(text.ends_with("INFO t: hello n=1\n"));
}

#[test]
fn a_block_reaches_the_disk_after_the_flush_interval_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::config(dir.path(), Level::Debug);
    config.flush_interval = std::time::Duration::from_millis(50);
    let logger = chime_xlog::Logger::start(config).unwrap();
    with_logger(&logger, || tracing::info!(target: "t", "timely"));
    let path = logger.today_file();
    let on_disk = || decode_file(&path).map(|r| r.lines.len()).unwrap_or(0) == 2;
    assert!(crate::helpers::wait_until(
        std::time::Duration::from_secs(10),
        on_disk
    ));
    assert_eq!(logger.stats().blocks, 1);
}

#[test]
fn the_logger_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<chime_xlog::Logger>();
    shareable::<chime_xlog::LogConfig>();
}

#[test]
fn the_decoder_binary_reports_damage_and_is_strict_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let logger = start(dir.path(), Level::Debug);
    with_logger(&logger, || tracing::info!(target: "t", "kept"));
    logger.flush().unwrap();
    let mut bytes = std::fs::read(logger.today_file()).unwrap();
    let intact = bytes.len();
    bytes.extend_from_slice(b"CXLG torn");
    let torn = dir.path().join("torn.xlog");
    std::fs::write(&torn, &bytes).unwrap();
    let run = |strict: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chime-xlog"));
        cmd.arg("decode").arg(&torn);
        if strict {
            cmd.arg("--strict");
        }
        cmd.output().unwrap()
    };
    let lax = run(false);
    assert_eq!(lax.status.code(), Some(0));
    let text = String::from_utf8(lax.stdout).unwrap();
    assert_eq!(
        text.lines().map(untimed).collect::<Vec<_>>(),
        lines(&logger)
    );
    assert_eq!(
        String::from_utf8(lax.stderr).unwrap(),
        format!(
            "2 lines from 1 blocks; 1 damaged regions, 9 bytes skipped\n  at byte {intact}: 9 \
             bytes skipped, truncated\n"
        )
    );
    assert_eq!(run(true).status.code(), Some(2));
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_chime-xlog"))
        .arg("decode")
        .arg(dir.path().join("nope.xlog"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}
