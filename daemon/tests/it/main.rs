//! `chimed --stdio` end to end: the real daemon binary, driven over its stdin/stdout, against a
//! real `chime-server` and a harness engine on the other side; `listen` drives `--listen`.

mod listen;
mod translation;

use std::process::Stdio;
use std::time::Duration;

use chime_tests::{TestClient, TestServer, text_of};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);

/// One running `chimed --stdio` with its output split into answers and notifications.
struct Daemon {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<Value>,
    answers: Vec<Value>,
    notifications: Vec<Value>,
    next_id: u64,
    _data: tempfile::TempDir,
}

impl Daemon {
    fn spawn() -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chimed"))
            .arg("--stdio")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn chimed");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("chimed wrote a non-JSON line {line:?}: {e}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            stdin,
            lines,
            answers: Vec::new(),
            notifications: Vec::new(),
            next_id: 1,
            _data: tempfile::tempdir().expect("temp dir"),
        }
    }

    async fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).await.expect("write");
        stdin.write_all(b"\n").await.expect("write");
        stdin.flush().await.expect("flush");
    }

    /// Reads one more output line into answers/notifications; false on timeout or EOF.
    async fn pump(&mut self, deadline: tokio::time::Instant) -> bool {
        match tokio::time::timeout_at(deadline, self.lines.recv()).await {
            Ok(Some(v)) => {
                assert_eq!(v["jsonrpc"], json!("2.0"), "line without jsonrpc 2.0: {v}");
                if v.get("id").is_some() {
                    self.answers.push(v);
                } else {
                    self.notifications.push(v);
                }
                true
            }
            _ => false,
        }
    }

    async fn answer(&mut self, id: &Value) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(i) = self.answers.iter().position(|a| &a["id"] == id) {
                return self.answers.remove(i);
            }
            if !self.pump(deadline).await {
                panic!(
                    "no answer for id {id} within {WAIT:?}; answers {:?}",
                    self.answers
                );
            }
        }
    }

    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = json!(self.next_id);
        self.next_id += 1;
        let line = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        self.send_raw(&line.to_string()).await;
        self.answer(&id).await
    }

    async fn ok(&mut self, method: &str, params: Value) -> Value {
        let a = self.request(method, params).await;
        match a.get("result") {
            Some(r) => r.clone(),
            None => panic!("{method} failed: {a}"),
        }
    }

    async fn notification(&mut self, name: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(i) = self
                .notifications
                .iter()
                .position(|n| n["method"] == json!(name))
            {
                return self.notifications.remove(i)["params"].clone();
            }
            if !self.pump(deadline).await {
                let seen: Vec<&Value> = self.notifications.iter().map(|n| &n["method"]).collect();
                panic!("no {name} notification within {WAIT:?}; seen {seen:?}");
            }
        }
    }

    async fn init(&mut self, server: &TestServer) {
        self.init_with(server, json!({})).await;
    }

    /// `init_sdk` against `server` with `extra` merged into the config (e.g. `plugins`).
    async fn init_with(&mut self, server: &TestServer, extra: Value) {
        let config = listen::init_params(server, self._data.path(), extra);
        let r = self.ok("init_sdk", config).await;
        assert_eq!(r, json!({}));
    }

    /// Whether an answer for `id` has arrived (reads what is already there, waits `for_at_most`).
    async fn has_answer(&mut self, id: &Value, for_at_most: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + for_at_most;
        loop {
            if self.answers.iter().any(|a| &a["id"] == id) {
                return true;
            }
            if !self.pump(deadline).await {
                return false;
            }
        }
    }
}

fn error_code(answer: &Value) -> i64 {
    answer["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("expected an error answer, got {answer}"))
}

#[tokio::test]
async fn calls_before_init_sdk_answer_6013() {
    let mut d = Daemon::spawn();
    let a = d.request("get_login_status", json!({})).await;
    assert_eq!(error_code(&a), 6013);
    let a = d
        .request("login", json!({ "user_id": "a", "user_sig": "x" }))
        .await;
    assert_eq!(error_code(&a), 6013);
}

#[tokio::test]
async fn malformed_json_answers_6027_with_a_null_id() {
    let mut d = Daemon::spawn();
    d.send_raw("{\"jsonrpc\":\"2.0\",\"id\":1,").await;
    let a = d.answer(&Value::Null).await;
    assert_eq!(error_code(&a), 6027);
    // The daemon keeps serving after a bad line.
    let a = d.request("get_login_status", json!({})).await;
    assert_eq!(error_code(&a), 6013);
}

#[tokio::test]
async fn non_objects_missing_and_unknown_methods_answer_6017() {
    let server = TestServer::start().await;
    let mut d = Daemon::spawn();
    d.send_raw("[1,2,3]").await;
    assert_eq!(error_code(&d.answer(&Value::Null).await), 6017);
    d.send_raw(r#"{"jsonrpc":"2.0","id":"no-method"}"#).await;
    assert_eq!(error_code(&d.answer(&json!("no-method")).await), 6017);

    d.init(&server).await;
    let a = d.request("no_such_method", json!({})).await;
    assert_eq!(error_code(&a), 6017);
    let message = a["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no_such_method"),
        "message {message:?} does not name the method"
    );
}

#[tokio::test]
async fn a_daemon_engine_and_a_harness_engine_exchange_messages() {
    let server = TestServer::start().await;
    let bob = TestClient::new(&server).await;
    bob.login("bob").await;

    let mut d = Daemon::spawn();
    d.init(&server).await;
    assert_eq!(
        d.ok("get_login_status", json!({})).await["status"],
        json!("logout")
    );
    d.ok(
        "login",
        json!({ "user_id": "alice", "user_sig": server.user_sig("alice") }),
    )
    .await;
    assert_eq!(
        d.ok("get_login_user", json!({})).await["user_id"],
        json!("alice")
    );
    assert_eq!(
        d.ok("get_login_status", json!({})).await["status"],
        json!("logined")
    );

    // Daemon → harness.
    let sent = d
        .ok(
            "send_c2c_text_message",
            json!({ "text": "from the daemon", "user_id": "bob" }),
        )
        .await;
    assert_eq!(sent["status"], json!("send_succ"));
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["sender"], json!("alice"));
    assert_eq!(got[0]["msg_id"], sent["msg_id"]);
    assert_eq!(text_of(&got[0]), "from the daemon");

    // Harness → daemon, arriving as a notification.
    bob.ok(
        "send_c2c_text_message",
        json!({ "text": "to the daemon", "user_id": "alice" }),
    )
    .await;
    let event = d.notification("on_recv_new_message").await;
    assert_eq!(event["message"]["sender"], json!("bob"));
    assert_eq!(text_of(&event["message"]), "to the daemon");

    d.ok("logout", json!({})).await;
    assert_eq!(
        d.ok("get_login_status", json!({})).await["status"],
        json!("logout")
    );
}

#[tokio::test]
async fn eof_on_stdin_uninits_and_exits_0() {
    let server = TestServer::start().await;
    let mut d = Daemon::spawn();
    d.init(&server).await;
    d.ok(
        "login",
        json!({ "user_id": "eve", "user_sig": server.user_sig("eve") }),
    )
    .await;
    d.stdin.take();
    let status = tokio::time::timeout(WAIT, d.child.wait())
        .await
        .expect("chimed did not exit after EOF")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn a_slow_send_does_not_block_other_requests() {
    let mut server = TestServer::start().await;
    let bob = TestClient::new(&server).await;
    let mut d = Daemon::spawn();
    d.init(&server).await;
    d.ok(
        "login",
        json!({ "user_id": "alice", "user_sig": server.user_sig("alice") }),
    )
    .await;

    // With the server down, send_message waits in the outbox until the link is back.
    server.kill().await;
    d.notification("on_connect_failed").await;
    let send = json!({
        "jsonrpc": "2.0", "id": "slow", "method": "send_c2c_text_message",
        "params": { "text": "held in the outbox", "user_id": "bob" },
    });
    d.send_raw(&send.to_string()).await;
    assert_eq!(
        d.ok("get_login_status", json!({})).await["status"],
        json!("logined")
    );
    assert_eq!(
        d.ok("get_login_user", json!({})).await["user_id"],
        json!("alice")
    );
    assert!(
        !d.has_answer(&json!("slow"), Duration::from_millis(300))
            .await,
        "the send answered while the server was down"
    );

    server.restart().await;
    let answer = d.answer(&json!("slow")).await;
    assert_eq!(answer["result"]["status"], json!("send_succ"), "{answer}");
    assert_eq!(answer["result"]["seq"], json!(1));
    bob.login("bob").await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["msg_id"], answer["result"]["msg_id"]);
    assert_eq!(text_of(&got[0]), "held in the outbox");
}
