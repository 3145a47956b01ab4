//! Logging end to end (issue 9): real engines against a real server write their `tracing` lines
//! to compressed day files in `log_dir` (decoded here with `chime_xlog::decode_file`), at the
//! level of the config and of `set_log_level`; old day files go at init; a log listener turns
//! lines into `on_log {level, content}` events; two engines in one process keep separate logs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chime_proto::codes;
use chime_tests::{TestClient, TestServer};
use chime_xlog::clock::{self, Date};
use chime_xlog::retention;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

/// Today's (UTC) day file in `dir`.
fn today_file(dir: &Path) -> PathBuf {
    dir.join(retention::file_name(Date::from_days(clock::day_of_ms(
        clock::now_ms(),
    ))))
}

/// The decoded lines of today's file, each without its 24-character timestamp.
fn lines(dir: &Path) -> Vec<String> {
    let report = chime_xlog::decode_file(today_file(dir))
        .unwrap_or_else(|e| panic!("decoding {}: {e}", dir.display()));
    assert!(
        report.is_intact(),
        "damage in {}: {:?}",
        dir.display(),
        report.damaged_blocks
    );
    report
        .lines
        .iter()
        .map(|l| l.get(24..).unwrap_or_default().to_owned())
        .collect()
}

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

/// A client with its own log dir (inside its data dir) and `extra` config.
async fn client(server: &TestServer, log_dir: &Path, extra: Value) -> TestClient {
    let mut config = json!({ "log_dir": log_dir });
    if let (Some(base), Value::Object(extra)) = (config.as_object_mut(), extra) {
        base.extend(extra);
    }
    TestClient::with_config(server, config).await
}

#[tokio::test]
async fn an_engine_logs_its_calls_to_a_compressed_day_file_that_decodes() {
    let server = TestServer::start().await;
    let logs = tempfile::tempdir().unwrap();
    let alice = client(&server, logs.path(), json!({ "log_level": "debug" })).await;
    let bob = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;
    chime_tests::send_c2c_text(&alice, "bob", "hi").await;
    assert_eq!(
        alice.err_code("get_history_message_list", json!({})).await,
        codes::ERR_INVALID_PARAMETERS
    );
    alice.shutdown().await;

    let file = today_file(logs.path());
    assert!(file.is_file(), "no day file {}", file.display());
    let lines = lines(logs.path());
    assert!(
        lines[0].starts_with("INFO chime_xlog: logging started level=debug retention_days=7"),
        "{lines:#?}"
    );
    // Every line of the engine is inside its span; the calls are there with their outcome.
    assert!(
        has(
            &lines,
            "INFO chime_engine::logging: engine{app=1400000000}: init_sdk version="
        ),
        "{lines:#?}"
    );
    for method in ["login", "create_text_message", "send_message"] {
        assert!(
            has(
                &lines,
                &format!(
                    "DEBUG chime_engine::handle: engine{{app=1400000000}}: call method={method}"
                )
            ),
            "no call line for {method}: {lines:#?}"
        );
    }
    assert!(
        has(
            &lines,
            "call failed: get_type (string) is required method=get_history_message_list code=6017"
        ),
        "{lines:#?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("INFO chime_engine::logging: engine{app=1400000000}: un_init_sdk"),
        "{lines:#?}"
    );
    // The file is compressed: fewer bytes on disk than text decoded from it.
    let text: usize = lines.iter().map(|l| l.len() + 25).sum();
    let size = std::fs::metadata(&file).unwrap().len() as usize;
    assert!(size < text, "file {size} bytes, text {text} bytes");
}

#[tokio::test]
async fn the_level_filters_lines_and_set_log_level_changes_it_at_run_time() {
    let server = TestServer::start().await;
    let logs = tempfile::tempdir().unwrap();
    let c = client(&server, logs.path(), json!({ "log_level": "info" })).await;
    c.ok("get_login_status", json!({})).await;
    c.ok("set_log_level", json!({ "log_level": "debug" })).await;
    c.ok("get_server_time", json!({})).await;
    c.ok("set_log_level", json!({ "log_level": "error" })).await;
    c.ok("get_login_user", json!({})).await;
    c.ok("set_log_level", json!({ "log_level": "none" })).await;
    c.ok("get_version", json!({})).await;
    assert_eq!(
        c.err_code("set_log_level", json!({ "log_level": "loud" }))
            .await,
        codes::ERR_INVALID_PARAMETERS
    );
    assert_eq!(
        c.err_code("set_log_level", json!({})).await,
        codes::ERR_INVALID_PARAMETERS
    );
    c.ok("set_log_level", json!({ "log_level": "warn" })).await;
    c.shutdown().await;

    let lines = lines(logs.path());
    // At info the debug call lines are filtered; at debug they are written; at error and none
    // they are filtered again.
    assert!(!has(&lines, "call method=get_login_status"), "{lines:#?}");
    assert!(has(&lines, "call method=get_server_time"), "{lines:#?}");
    assert!(!has(&lines, "call method=get_login_user"), "{lines:#?}");
    assert!(!has(&lines, "call method=get_version"), "{lines:#?}");
    assert!(
        has(
            &lines,
            "INFO chime_engine::dispatch::system: engine{app=1400000000}: set_log_level log_level=debug"
        ),
        "{lines:#?}"
    );
    // Set while the level was `none`, then `warn`: neither info line was written.
    assert!(!has(&lines, "set_log_level log_level=warn"), "{lines:#?}");
    assert!(!has(&lines, "un_init_sdk"), "{lines:#?}");
}

#[tokio::test]
async fn on_log_events_flow_only_while_a_log_listener_is_set() {
    let server = TestServer::start().await;
    let logs = tempfile::tempdir().unwrap();
    let with = client(
        &server,
        logs.path(),
        json!({ "log_level": "debug", "log_listener": true }),
    )
    .await;
    with.ok("get_server_time", json!({})).await;
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let event = with.expect_event("on_log", WAIT).await;
        let content = event["content"].as_str().unwrap_or_default().to_owned();
        seen.push((event["level"].clone(), content.clone()));
        if content.contains("call method=get_server_time") {
            break;
        }
    }
    let (level, content) = seen.last().cloned().unwrap();
    assert_eq!(level, "debug");
    assert!(
        content.ends_with(
            "DEBUG chime_engine::handle: engine{app=1400000000}: call method=get_server_time"
        ),
        "{seen:?}"
    );
    // The content is the file's line, timestamp included.
    assert_eq!(content.as_bytes()[4], b'-');

    with.ok("remove_log_listener", json!({})).await;
    with.ok("get_login_user", json!({})).await;
    with.ok("add_log_listener", json!({})).await;
    with.ok("get_version", json!({})).await;
    loop {
        let event = with.expect_event("on_log", WAIT).await;
        let content = event["content"].as_str().unwrap_or_default();
        assert!(
            !content.contains("call method=get_login_user"),
            "a line logged while the listener was removed arrived: {content}"
        );
        if content.contains("call method=get_version") {
            break;
        }
    }

    // Without a listener there are no on_log events at all.
    let other_logs = tempfile::tempdir().unwrap();
    let without = client(&server, other_logs.path(), json!({ "log_level": "debug" })).await;
    without.ok("get_server_time", json!({})).await;
    without.shutdown().await;
    assert!(has(
        &lines(other_logs.path()),
        "call method=get_server_time"
    ));
    assert_eq!(without.event_count("on_log"), 0);
}

#[tokio::test]
async fn day_files_past_retention_are_removed_at_init_and_others_kept() {
    let server = TestServer::start().await;
    let logs = tempfile::tempdir().unwrap();
    let today = clock::day_of_ms(clock::now_ms());
    let name = |days_ago: i64| retention::file_name(Date::from_days(today - days_ago));
    let old = [name(7), name(30), "chime_20200101.xlog".to_owned()];
    let kept = [name(1), name(6)];
    let foreign = ["notes.txt", "chime_20200101.xlog.log"];
    for f in old.iter().chain(kept.iter()) {
        std::fs::write(logs.path().join(f), b"").unwrap();
    }
    for f in foreign {
        std::fs::write(logs.path().join(f), b"keep me").unwrap();
    }
    let c = client(&server, logs.path(), json!({ "log_level": "info" })).await;
    for f in &old {
        assert!(!logs.path().join(f).exists(), "{f} was not removed");
    }
    for f in kept.iter().map(String::as_str).chain(foreign) {
        assert!(logs.path().join(f).exists(), "{f} was removed");
    }
    c.shutdown().await;
    assert!(
        lines(logs.path())[0].starts_with(
            "INFO chime_xlog: logging started level=info retention_days=7 removed_files=3"
        ),
        "{:?}",
        lines(logs.path())
    );

    // A configured retention of 0 keeps everything.
    std::fs::write(logs.path().join(&old[0]), b"").unwrap();
    let c = client(
        &server,
        logs.path(),
        json!({ "log_level": "info", "log_retention_days": 0 }),
    )
    .await;
    c.shutdown().await;
    assert!(logs.path().join(&old[0]).exists());
}

#[tokio::test]
async fn two_engines_in_one_process_keep_separate_logs() {
    let server = TestServer::start().await;
    let (logs_a, logs_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = client(&server, logs_a.path(), json!({ "log_level": "debug" })).await;
    let b = client(&server, logs_b.path(), json!({ "log_level": "debug" })).await;
    a.login("alice").await;
    b.login("bob").await;
    a.ok("get_login_status", json!({})).await;
    b.ok("get_server_time", json!({})).await;
    a.shutdown().await;
    b.shutdown().await;
    let (la, lb) = (lines(logs_a.path()), lines(logs_b.path()));
    let dir_a = a.data_dir().display().to_string();
    let dir_b = b.data_dir().display().to_string();
    assert!(has(&la, &format!("data_dir={dir_a}")), "{la:#?}");
    assert!(!has(&la, &format!("data_dir={dir_b}")), "{la:#?}");
    assert!(has(&lb, &format!("data_dir={dir_b}")), "{lb:#?}");
    assert!(has(&la, "call method=get_login_status"));
    assert!(!has(&la, "call method=get_server_time"));
    assert!(has(&lb, "call method=get_server_time"));
    assert!(!has(&lb, "call method=get_login_status"));
}

#[tokio::test]
async fn an_unusable_log_dir_fails_init_with_6022() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let config = json!({
        "sdk_app_id": chime_tests::APP_ID,
        "server_url": server.ws_url(),
        "data_dir": dir.path().join("data"),
        "log_dir": file.join("logs"),
    });
    let sdk = chime_engine::Sdk::new();
    let err = sdk.call("init_sdk", config).await.unwrap_err();
    assert_eq!(err.code, codes::ERR_IO);
    assert!(
        err.desc
            .starts_with(&format!("log_dir {}", file.join("logs").display())),
        "{}",
        err.desc
    );
    // Still not initialised.
    assert_eq!(
        sdk.call("get_version", json!({})).await.unwrap_err().code,
        codes::ERR_SDK_NOT_INITIALIZED
    );
}

#[tokio::test]
async fn the_server_logs_json_lines_on_stderr_at_the_configured_level() {
    let server =
        TestServer::start_with_config("log_format = \"json\"\nlog_level = \"debug\"\n").await;
    let c = TestClient::new(&server).await;
    c.login("alice").await;
    let mut login = None;
    for _ in 0..100 {
        login = server
            .log_tail()
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["fields"]["message"] == "login" && v["fields"]["user"] == "alice");
        if login.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let login = login.unwrap_or_else(|| panic!("no JSON login line:\n{}", server.log_tail()));
    assert_eq!(login["level"], "DEBUG");
    assert_eq!(login["target"], "chime_server::gateway");
    assert_eq!(login["fields"]["app"], chime_tests::APP_ID);

    // At `warn` (text) the debug login line is not written.
    let quiet = TestServer::start_with_config("log_level = \"warn\"\n").await;
    let c = TestClient::new(&quiet).await;
    c.login("bob").await;
    c.shutdown().await;
    assert!(!quiet.log_tail().contains("login"), "{}", quiet.log_tail());
}
