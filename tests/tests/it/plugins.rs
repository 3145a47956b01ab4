//! Plugins end to end (issue 5): real `cdylib` plugins, built by cargo and loaded by path at
//! `init_sdk`, in real engines talking to a real server. The profanity filter replaces or blocks
//! text before the outbox (the sender and the receiver see the same text); plugins that cannot
//! load are listed with a clear error and the engine goes on; a failing plugin degrades only the
//! filtering; two engines in one process share one loaded library.
//!
//! The plugins are built by cargo and found by path with the harness's
//! [`chime_tests::plugin_library`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use chime_proto::codes;
use chime_tests::{TestClient, TestServer, plugin_library, send_c2c_text, text_of};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

/// The path of plugin library `lib_name` (e.g. `chime_test_filter`), built on first use.
fn plugin(lib_name: &str) -> PathBuf {
    plugin_library(&lib_name.replace('_', "-"), lib_name)
}

/// A word list shipped with the profanity filter.
fn wordlist(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/profanity-filter/wordlists")
        .join(name)
}

/// The profanity filter with the shipped English and Chinese lists and `extra` config.
fn profanity(extra: Value) -> Value {
    let mut config = json!({ "word_lists": [wordlist("en.txt"), wordlist("zh.txt")] });
    if let (Some(base), Value::Object(extra)) = (config.as_object_mut(), extra) {
        base.extend(extra);
    }
    json!({ "path": plugin("chime_profanity_filter"), "config": config })
}

async fn with_plugins(server: &TestServer, plugins: Value, extra: Value) -> TestClient {
    let mut config = json!({ "plugins": plugins });
    if let (Some(base), Value::Object(extra)) = (config.as_object_mut(), extra) {
        base.extend(extra);
    }
    TestClient::with_config(server, config).await
}

fn history(v: &Value) -> Vec<Value> {
    v["message_list"].as_array().cloned().unwrap_or_default()
}

async fn c2c_history(c: &TestClient, user: &str) -> Vec<Value> {
    history(
        &c.ok(
            "get_history_message_list",
            json!({"get_type": "local_older", "user_id": user, "count": 20}),
        )
        .await,
    )
}

#[tokio::test]
async fn the_profanity_filter_replaces_text_before_send_and_both_sides_see_it() {
    let server = TestServer::start().await;
    let alice = with_plugins(&server, json!([profanity(json!({}))]), json!({})).await;
    let bob = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;

    // Created, then sent: the answer is what was sent.
    let sent = send_c2c_text(&alice, "bob", "oh f.u.c.k, you 笨蛋").await;
    assert_eq!(sent["status"], "send_succ");
    assert_eq!(text_of(&sent), "oh *******, you **");
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "oh *******, you **");
    assert_eq!(got[0]["msg_id"], sent["msg_id"]);

    // The shorthand, evasions in full-width forms, and a clean text passing untouched.
    let sent = alice
        .ok(
            "send_c2c_text_message",
            json!({"text": "ＳＨＩＴ happens", "user_id": "bob"}),
        )
        .await;
    assert_eq!(text_of(&sent), "**** happens");
    let sent = send_c2c_text(&alice, "bob", "a classic assessment").await;
    assert_eq!(text_of(&sent), "a classic assessment");
    let got = bob.expect_messages(2, WAIT).await;
    assert_eq!(text_of(&got[0]), "**** happens");
    assert_eq!(text_of(&got[1]), "a classic assessment");

    // The sender's store holds the replaced text too.
    let texts: Vec<String> = c2c_history(&alice, "bob")
        .await
        .iter()
        .map(text_of)
        .collect();
    assert_eq!(
        texts,
        ["a classic assessment", "**** happens", "oh *******, you **"]
    );
    let loaded = alice.ok("get_loaded_plugins", json!({})).await;
    assert_eq!(loaded["plugin_list"][0]["name"], "profanity-filter");
    assert_eq!(loaded["plugin_list"][0]["kind"], "content_filter");
    assert_eq!(loaded["plugin_list"][0]["is_disabled"], false);
    assert_eq!(loaded["plugin_list"][0]["failure_count"], 0);
    assert_eq!(loaded["failed_plugin_list"], json!([]));
}

#[tokio::test]
async fn a_blocked_text_fails_with_80001_and_nothing_is_stored_or_delivered() {
    let server = TestServer::start().await;
    let alice = with_plugins(
        &server,
        json!([profanity(json!({"action": "block"}))]),
        json!({}),
    )
    .await;
    let bob = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;

    let msg = alice
        .ok(
            "create_text_message",
            json!({"text": "what a d a m n mess"}),
        )
        .await;
    let err = alice
        .call("send_message", json!({"message": msg, "receiver": "bob"}))
        .await
        .unwrap_err();
    assert_eq!(err.code, codes::ERR_CONTENT_BLOCKED);
    assert_eq!(
        err.desc,
        "blocked by profanity-filter: content blocked by the profanity filter (1 match(es))"
    );
    assert_eq!(
        alice
            .err_code(
                "send_c2c_text_message",
                json!({"text": "你这个混蛋", "user_id": "bob"})
            )
            .await,
        codes::ERR_CONTENT_BLOCKED
    );
    assert!(c2c_history(&alice, "bob").await.is_empty());

    // A clean message goes through; it is the only one bob ever gets.
    let sent = send_c2c_text(&alice, "bob", "all good").await;
    assert_eq!(text_of(&sent), "all good");
    assert_eq!(sent["seq"], 1);
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "all good");
    assert!(
        bob.next_event("on_recv_new_message", Duration::from_millis(300))
            .await
            .is_none()
    );
    assert_eq!(c2c_history(&alice, "bob").await.len(), 1);
}

#[tokio::test]
async fn at_text_is_filtered_and_custom_descriptions_only_when_configured() {
    let server = TestServer::start().await;
    let owner = with_plugins(
        &server,
        json!([profanity(json!({"filter_custom_description": true}))]),
        json!({}),
    )
    .await;
    let plain = with_plugins(&server, json!([profanity(json!({}))]), json!({})).await;
    let bob = TestClient::new(&server).await;
    owner.login("alice").await;
    plain.login("carol").await;
    bob.login("bob").await;
    let group = owner
        .ok(
            "create_group",
            json!({"group_type": "Work", "group_name": "g", "member_list": [{"user_id": "bob"}]}),
        )
        .await["group_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let at = owner
        .ok(
            "create_text_at_message",
            json!({"text": "@bob you idiot", "at_user_list": ["bob"]}),
        )
        .await;
    let sent = owner
        .ok("send_message", json!({"message": at, "group_id": group}))
        .await;
    assert_eq!(text_of(&sent), "@bob you *****");
    assert_eq!(sent["group_at_user_list"], json!(["bob"]));
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "@bob you *****");

    let custom = json!({"data": "{\"card\":1}", "description": "crap card", "extension": "x"});
    let msg = owner.ok("create_custom_message", custom.clone()).await;
    let sent = owner
        .ok("send_message", json!({"message": msg, "receiver": "bob"}))
        .await;
    assert_eq!(sent["elem_list"][0]["description"], "**** card");
    assert_eq!(sent["elem_list"][0]["data"], "{\"card\":1}");
    let msg = plain.ok("create_custom_message", custom).await;
    let sent = plain
        .ok("send_message", json!({"message": msg, "receiver": "bob"}))
        .await;
    assert_eq!(sent["elem_list"][0]["description"], "crap card");
    let got = bob.expect_messages(2, WAIT).await;
    let descriptions: Vec<&Value> = got
        .iter()
        .map(|m| &m["elem_list"][0]["description"])
        .collect();
    assert!(descriptions.contains(&&json!("**** card")), "{got:?}");
    assert!(descriptions.contains(&&json!("crap card")), "{got:?}");
}

#[tokio::test]
async fn plugins_that_cannot_load_are_listed_by_name_and_the_engine_goes_on() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("libchime_nothing.so");
    let not_a_library = dir.path().join("libfake.so");
    std::fs::write(&not_a_library, b"\x7fELF but not really").unwrap();
    let logs = tempfile::tempdir().unwrap();
    let c = with_plugins(
        &server,
        json!([
            {"path": missing},
            {"path": plugin("chime_test_bad_abi")},
            {"path": plugin("chime_test_filter"), "config": {"mode": "fail_create"}},
            {"path": not_a_library},
            {"path": plugin("chime_test_filter"), "config": {"mode": "ok"}},
        ]),
        json!({"log_dir": logs.path(), "log_level": "info"}),
    )
    .await;
    let loaded = c.ok("get_loaded_plugins", json!({})).await;
    let list = loaded["plugin_list"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{loaded}");
    assert_eq!(list[0]["name"], "test-filter");
    assert_eq!(list[0]["kind"], "content_filter");
    assert_eq!(list[0]["version"], "0.1.0");
    assert_eq!(
        list[0]["path"],
        plugin("chime_test_filter")
            .canonicalize()
            .unwrap()
            .display()
            .to_string()
    );
    let failed = loaded["failed_plugin_list"].as_array().unwrap();
    assert_eq!(failed.len(), 4, "{loaded}");
    assert_eq!(failed[0]["path"], missing.display().to_string());
    assert_eq!(failed[0]["code"], codes::ERR_FILE_NOT_FOUND);
    assert_eq!(
        failed[0]["desc"],
        format!("plugin {}: file not found", missing.display())
    );
    let bad_abi = plugin("chime_test_bad_abi");
    assert_eq!(failed[1]["code"], codes::ERR_INVALID_PARAMETERS);
    let desc = failed[1]["desc"].as_str().unwrap();
    assert!(
        desc.contains(&format!("({})", bad_abi.display()))
            && desc.contains("ABI 99.0 is not compatible with the host's ABI 1."),
        "{desc}"
    );
    assert_eq!(
        failed[2]["desc"],
        format!(
            "plugin test-filter ({}): init failed: test plugin refuses its config",
            plugin("chime_test_filter").display()
        )
    );
    assert!(
        failed[3]["desc"].as_str().unwrap().starts_with(&format!(
            "plugin {}: cannot load library",
            not_a_library.display()
        )),
        "{}",
        failed[3]
    );

    // The engine works, with the one plugin that loaded (the test filter upper-cases).
    let bob = TestClient::new(&server).await;
    c.login("alice").await;
    bob.login("bob").await;
    let sent = send_c2c_text(&c, "bob", "quiet please").await;
    assert_eq!(text_of(&sent), "QUIET PLEASE");
    assert_eq!(
        text_of(&bob.expect_messages(1, WAIT).await[0]),
        "QUIET PLEASE"
    );

    // Each failure is in the log as an error naming the plugin.
    c.shutdown().await;
    let report = chime_xlog::decode_file(logs.path().join(chime_xlog::retention::file_name(
        chime_xlog::clock::Date::from_days(chime_xlog::clock::day_of_ms(
            chime_xlog::clock::now_ms(),
        )),
    )))
    .unwrap();
    let errors: Vec<&String> = report
        .lines
        .iter()
        .filter(|l| l.contains("ERROR chime_engine::plugins") && l.contains("plugin not loaded"))
        .collect();
    assert_eq!(errors.len(), 4, "{:#?}", report.lines);
    assert!(errors[0].contains("file not found"), "{}", errors[0]);
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.contains("plugin loaded name=test-filter kind=content_filter")),
        "{:#?}",
        report.lines
    );
}

#[tokio::test]
async fn a_panicking_or_hanging_filter_degrades_only_filtering() {
    let server = TestServer::start().await;
    let panicking = with_plugins(
        &server,
        json!([{"path": plugin("chime_test_filter"), "config": {"mode": "panic_on_call"}}]),
        json!({}),
    )
    .await;
    let hanging = with_plugins(
        &server,
        json!([{"path": plugin("chime_test_filter"),
                "config": {"mode": "hang", "hang_ms": 60_000}}]),
        json!({"plugin_call_timeout_ms": 200}),
    )
    .await;
    let bob = TestClient::new(&server).await;
    panicking.login("alice").await;
    hanging.login("carol").await;
    bob.login("bob").await;

    // Every send still succeeds, unfiltered; after 3 failures in a row the plugin is disabled.
    for i in 0..4 {
        let text = format!("message {i}");
        assert_eq!(
            text_of(&send_c2c_text(&panicking, "bob", &text).await),
            text
        );
        assert_eq!(text_of(&send_c2c_text(&hanging, "bob", &text).await), text);
    }
    let got = bob.expect_messages(8, WAIT).await;
    assert_eq!(got.len(), 8);
    for c in [&panicking, &hanging] {
        let loaded = c.ok("get_loaded_plugins", json!({})).await;
        let info = &loaded["plugin_list"][0];
        assert_eq!(info["name"], "test-filter");
        assert_eq!(info["is_disabled"], true, "{loaded}");
        assert_eq!(info["failure_count"], 3, "{loaded}");
    }
    let panicked = panicking.ok("get_loaded_plugins", json!({})).await;
    let last = panicked["plugin_list"][0]["last_error"].as_str().unwrap();
    assert!(
        last.starts_with("plugin test-filter: panicked: ")
            && last.ends_with("test plugin panics on every call"),
        "{last}"
    );
    let hung = hanging.ok("get_loaded_plugins", json!({})).await;
    assert_eq!(
        hung["plugin_list"][0]["last_error"],
        "plugin test-filter: call timed out after 200ms"
    );
}

#[tokio::test]
async fn two_engines_in_one_process_share_one_loaded_plugin() {
    let server = TestServer::start().await;
    let config = json!([{"path": plugin("chime_test_filter"),
                         "config": {"mode": "ok", "tag": "e2e-shared"}}]);
    let a = with_plugins(&server, config.clone(), json!({})).await;
    let b = with_plugins(&server, config, json!({})).await;
    a.login("alice").await;
    b.login("bob").await;
    // The text `instances` becomes the number of live instances with this tag in the library:
    // both engines' instances live in the one library loaded in this process.
    let sent = send_c2c_text(&a, "bob", "instances").await;
    assert_eq!(text_of(&sent), "2");
    assert_eq!(text_of(&b.expect_messages(1, WAIT).await[0]), "2");
    let (la, lb) = (
        a.ok("get_loaded_plugins", json!({})).await,
        b.ok("get_loaded_plugins", json!({})).await,
    );
    assert_eq!(la["plugin_list"][0]["path"], lb["plugin_list"][0]["path"]);
    // One engine going away destroys its instance only; the other keeps filtering.
    a.shutdown().await;
    let mut count = String::new();
    for _ in 0..100 {
        let sent = send_c2c_text(&b, "alice", "instances").await;
        count = text_of(&sent);
        if count == "1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count, "1");
    assert_eq!(text_of(&send_c2c_text(&b, "alice", "hello").await), "HELLO");
}

#[tokio::test]
async fn an_edit_is_screened_like_a_send() {
    let server = TestServer::start().await;
    let replacing = with_plugins(&server, json!([profanity(json!({}))]), json!({})).await;
    let blocking = with_plugins(
        &server,
        json!([profanity(json!({"action": "block"}))]),
        json!({}),
    )
    .await;
    let bob = TestClient::new(&server).await;
    replacing.login("alice").await;
    blocking.login("carol").await;
    bob.login("bob").await;

    // Replace: the edit goes out starred, and the receiver sees the starred edit.
    let sent = send_c2c_text(&replacing, "bob", "see you at six").await;
    let mut edited = sent.clone();
    edited["elem_list"] = json!([{"elem_type": "text", "text": "see you at six, bastard"}]);
    let r = replacing
        .ok("modify_message", json!({"message": edited}))
        .await;
    assert_eq!(text_of(&r), "see you at six, *******");
    let ev = bob.expect_event("on_recv_message_modified", WAIT).await;
    assert_eq!(ev["message"]["msg_id"], sent["msg_id"]);
    assert_eq!(text_of(&ev["message"]), "see you at six, *******");

    // Block: the edit is refused with 80001 and the message keeps its text everywhere.
    let sent = send_c2c_text(&blocking, "bob", "fine words").await;
    let mut edited = sent.clone();
    edited["elem_list"] = json!([{"elem_type": "text", "text": "b.i.t.c.h"}]);
    assert_eq!(
        blocking
            .err_code("modify_message", json!({"message": edited}))
            .await,
        codes::ERR_CONTENT_BLOCKED
    );
    let found = blocking
        .ok("find_messages", json!({"msg_ids": [sent["msg_id"]]}))
        .await;
    assert_eq!(text_of(&found["message_list"][0]), "fine words");
    assert_eq!(found["message_list"][0]["version"], 0);
}

#[tokio::test]
async fn a_send_cancelled_while_the_filter_judges_it_is_never_stored_or_sent() {
    let server = TestServer::start().await;
    let alice = with_plugins(
        &server,
        json!([{"path": plugin("chime_test_filter"),
                "config": {"mode": "hang", "hang_ms": 1_500}}]),
        json!({}),
    )
    .await;
    let bob = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;

    let created = alice
        .ok("create_text_message", json!({ "text": "never" }))
        .await;
    let id = created["msg_id"].clone();
    let engine = alice.engine.clone();
    let pending = tokio::spawn(async move {
        engine
            .call(
                "send_message",
                json!({ "message": created, "receiver": "bob" }),
            )
            .await
    });
    // The filter holds the text for 1.5 s; cancel while it judges (the send is not stored yet).
    // The spawned send reaches the filter when the loaded machine lets it: until then there is
    // nothing to cancel (answered like a second cancel, below), so cancel until it takes.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        assert!(!pending.is_finished(), "the filter still judges");
        match alice
            .call("cancel_send_message", json!({ "msg_id": id }))
            .await
        {
            Ok(answer) => {
                assert_eq!(answer, json!({}));
                break;
            }
            Err(e) => assert_eq!(e.code, codes::ERR_INVALID_PARAMETERS, "{}", e.desc),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the send never reached the filter"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = tokio::time::timeout(WAIT, pending)
        .await
        .expect("the send call ends")
        .expect("task");
    assert_eq!(r.map_err(|e| e.code).err(), Some(codes::ERR_SEND_CANCELLED));
    // Cancelling again: nothing is waiting any more.
    assert_eq!(
        alice
            .err_code("cancel_send_message", json!({ "msg_id": id }))
            .await,
        codes::ERR_INVALID_PARAMETERS
    );
    let found = alice.ok("find_messages", json!({ "msg_ids": [id] })).await;
    assert_eq!(found["message_list"], json!([]));
    assert!(c2c_history(&alice, "bob").await.is_empty());

    // The next message goes out (after its own screening) and is the only one bob ever gets.
    let after = send_c2c_text(&alice, "bob", "after").await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["msg_id"], after["msg_id"]);
    assert_eq!(text_of(&got[0]), "after");
    let bobs: Vec<String> = c2c_history(&bob, "alice")
        .await
        .iter()
        .map(text_of)
        .collect();
    assert_eq!(bobs, ["after"]);
}

#[tokio::test]
async fn received_text_is_masked_when_the_filter_is_asked_to_screen_incoming() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    let bob = with_plugins(
        &server,
        json!([profanity(json!({"filter_incoming": true}))]),
        json!({}),
    )
    .await;
    // The same plugin without `filter_incoming` leaves received text alone.
    let carol = with_plugins(&server, json!([profanity(json!({}))]), json!({})).await;
    alice.login("alice").await;
    bob.login("bob").await;
    carol.login("carol").await;

    // Live: the push is screened before it is stored and announced.
    send_c2c_text(&alice, "bob", "you b.a.s.t.a.r.d").await;
    send_c2c_text(&alice, "carol", "you bastard").await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "you *************");
    let got = carol.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "you bastard");
    let history: Vec<String> = c2c_history(&bob, "alice")
        .await
        .iter()
        .map(text_of)
        .collect();
    assert_eq!(history, ["you *************"]);

    // Caught up after being offline: the pulled page is screened the same way; clean text and
    // Chinese terms too.
    bob.ok("logout", json!({})).await;
    send_c2c_text(&alice, "bob", "hello there").await;
    send_c2c_text(&alice, "bob", "你这个笨蛋").await;
    bob.login("bob").await;
    let got = bob.expect_messages(2, WAIT).await;
    let texts: Vec<String> = got.iter().map(text_of).collect();
    assert_eq!(texts, ["hello there", "你这个**"]);
    // The sender's own copy is what was sent.
    let sent: Vec<String> = c2c_history(&alice, "bob")
        .await
        .iter()
        .map(text_of)
        .collect();
    assert_eq!(sent, ["你这个笨蛋", "hello there", "you b.a.s.t.a.r.d"]);
}
