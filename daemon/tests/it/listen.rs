//! `chimed --listen` end to end: WebSocket JSON-RPC behind a bearer token, several named engines,
//! engines from a TOML config logged in at start-up, graceful SIGTERM keeping the outbox, and the
//! Python example bot.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use chime_tests::{TestClient, TestServer, text_of};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(15);
const TOKEN: &str = "test-token-0123456789";

/// A `chimed --listen 127.0.0.1:0` process and the URL it printed.
struct Listening {
    child: Child,
    url: String,
}

impl Listening {
    async fn start(config: Option<&Path>) -> Listening {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chimed"));
        cmd.arg("--listen").arg("127.0.0.1:0");
        match config {
            Some(c) => {
                cmd.arg("--config").arg(c);
            }
            None => {
                cmd.env("CHIMED_TOKEN", TOKEN);
            }
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn chimed");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("chimed printed its ready line")
            .expect("read")
            .expect("a line");
        let url = line
            .strip_prefix("chimed listening ")
            .unwrap_or_else(|| panic!("unexpected ready line {line:?}"))
            .to_owned();
        Listening { child, url }
    }

    async fn connect(&self, token: Option<&str>) -> Result<Ws, WsError> {
        let mut request = self.url.as_str().into_client_request()?;
        if let Some(t) = token {
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {t}").parse().expect("header value"),
            );
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Ws {
            ws,
            next_id: 1,
            answers: Vec::new(),
            events: Vec::new(),
        })
    }

    fn sigterm(&self) {
        let pid = self.child.id().expect("running") as i32;
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    async fn exit_code(mut self) -> Option<i32> {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("chimed exited after SIGTERM")
            .expect("wait")
            .code()
    }
}

/// One WebSocket client.
struct Ws {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    answers: Vec<Value>,
    events: Vec<Value>,
}

impl Ws {
    async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    async fn read_one(&mut self, deadline: tokio::time::Instant) -> bool {
        match tokio::time::timeout_at(deadline, self.ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON frame");
                if v.get("id").is_some() {
                    self.answers.push(v);
                } else {
                    self.events.push(v);
                }
                true
            }
            Ok(Some(Ok(_))) => true,
            _ => false,
        }
    }

    async fn answer(&mut self, id: &Value) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(i) = self.answers.iter().position(|a| &a["id"] == id) {
                return self.answers.remove(i);
            }
            assert!(self.read_one(deadline).await, "no answer for {id}");
        }
    }

    async fn request(&mut self, engine: Option<&str>, method: &str, params: Value) -> Value {
        let id = json!(self.next_id);
        self.next_id += 1;
        let mut req = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        if let Some(e) = engine {
            req["engine"] = json!(e);
        }
        self.send_raw(&req.to_string()).await;
        self.answer(&id).await
    }

    async fn ok(&mut self, engine: &str, method: &str, params: Value) -> Value {
        let a = self.request(Some(engine), method, params).await;
        a.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("{engine}/{method} failed: {a}"))
    }

    async fn event(&mut self, engine: &str, name: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(i) = self
                .events
                .iter()
                .position(|e| e["method"] == json!(name) && e["engine"] == json!(engine))
            {
                return self.events.remove(i)["params"].clone();
            }
            assert!(
                self.read_one(deadline).await,
                "no {name} from {engine}; saw {:?}",
                self.events
                    .iter()
                    .map(|e| format!("{}/{}", e["engine"], e["method"]))
                    .collect::<Vec<_>>()
            );
        }
    }
}

/// `init_sdk`'s parameters against `server` with data in `dir`, `extra` merged in (e.g.
/// `plugins`, `callback_mode`).
pub(crate) fn init_params(server: &TestServer, dir: &Path, extra: Value) -> Value {
    let mut p = json!({
        "sdk_app_id": chime_tests::APP_ID,
        "server_url": server.ws_url(),
        "data_dir": dir,
        "log_level": "warn",
        "reconnect_min_ms": 50,
        "reconnect_max_ms": 400,
    });
    if let (Some(p), Value::Object(extra)) = (p.as_object_mut(), extra) {
        p.extend(extra);
    }
    p
}

fn http_status(err: WsError) -> u16 {
    match err {
        WsError::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test]
async fn websocket_clients_need_the_bearer_token() {
    let daemon = Listening::start(None).await;
    assert!(daemon.url.starts_with("ws://127.0.0.1:"), "{}", daemon.url);
    let refused = daemon
        .connect(None)
        .await
        .err()
        .expect("refused without a token");
    assert_eq!(http_status(refused), 401);
    let refused = daemon
        .connect(Some("wrong"))
        .await
        .err()
        .expect("refused with a wrong token");
    assert_eq!(http_status(refused), 401);
    let mut ws = daemon.connect(Some(TOKEN)).await.expect("connected");
    let a = ws.request(None, "get_engine_list", json!({})).await;
    assert_eq!(a["result"], json!({ "engine_list": [] }));
    let a = ws.request(None, "get_login_status", json!({})).await;
    assert_eq!(a["error"]["code"], json!(6013));
    ws.send_raw("{\"jsonrpc\":\"2.0\",\"id\":").await;
    let a = ws.answer(&Value::Null).await;
    assert_eq!(a["error"]["code"], json!(6027));
    daemon.sigterm();
    assert_eq!(daemon.exit_code().await, Some(0));
}

#[tokio::test]
async fn two_named_engines_chat_and_events_carry_the_engine_name() {
    let server = TestServer::start().await;
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let daemon = Listening::start(None).await;
    let mut ws = daemon.connect(Some(TOKEN)).await.expect("connected");
    ws.ok(
        "alice",
        "init_sdk",
        init_params(&server, dirs.0.path(), json!({})),
    )
    .await;
    ws.ok(
        "bob",
        "init_sdk",
        init_params(&server, dirs.1.path(), json!({})),
    )
    .await;
    assert_eq!(
        ws.ok("x", "get_engine_list", json!({})).await,
        json!({ "engine_list": ["alice", "bob"] })
    );
    for user in ["alice", "bob"] {
        let login = json!({ "user_id": user, "user_sig": server.user_sig(user) });
        assert_eq!(ws.ok(user, "login", login).await, json!({}));
        assert_eq!(
            ws.ok(user, "get_login_user", json!({})).await,
            json!({ "user_id": user })
        );
    }
    let a = ws
        .request(Some("carol"), "get_login_status", json!({}))
        .await;
    assert_eq!(a["error"]["code"], json!(6013), "no engine named carol");
    let pump = init_params(&server, dirs.0.path(), json!({ "callback_mode": "pump" }));
    let a = ws.request(Some("carol"), "init_sdk", pump).await;
    assert_eq!(
        a["error"]["code"],
        json!(6017),
        "the daemon refuses pump mode"
    );
    assert_eq!(
        ws.ok("x", "get_engine_list", json!({})).await,
        json!({ "engine_list": ["alice", "bob"] }),
        "a refused init leaves no engine behind"
    );

    let sent = ws
        .ok(
            "alice",
            "send_c2c_text_message",
            json!({ "text": "hi bob", "user_id": "bob" }),
        )
        .await;
    let got = ws.event("bob", "on_recv_new_message").await;
    assert_eq!(got["message"]["msg_id"], sent["msg_id"]);
    assert_eq!(got["message"]["sender"], json!("alice"));
    assert_eq!(text_of(&got["message"]), "hi bob");

    // A second client sees the same engines and their events.
    let mut ws2 = daemon.connect(Some(TOKEN)).await.expect("second client");
    ws.ok(
        "bob",
        "send_c2c_text_message",
        json!({ "text": "hi alice", "user_id": "alice" }),
    )
    .await;
    let got = ws2.event("alice", "on_recv_new_message").await;
    assert_eq!(text_of(&got["message"]), "hi alice");

    // un_init_sdk removes the engine.
    assert_eq!(ws.ok("bob", "un_init_sdk", json!({})).await, json!({}));
    assert_eq!(
        ws.ok("x", "get_engine_list", json!({})).await,
        json!({ "engine_list": ["alice"] })
    );
    daemon.sigterm();
    assert_eq!(daemon.exit_code().await, Some(0));
}

fn write_config(dir: &Path, server: &TestServer, data: &Path) -> std::path::PathBuf {
    let path = dir.join("chimed.toml");
    let text = format!(
        r#"
token = "{TOKEN}"

[[engine]]
name = "bot"
user_id = "bot"
user_sig = "{sig}"
[engine.config]
sdk_app_id = {app}
server_url = "{url}"
data_dir = "{data}"
log_level = "warn"
reconnect_min_ms = 50
reconnect_max_ms = 400
send_timeout_ms = 1500
"#,
        sig = server.user_sig("bot"),
        app = chime_tests::APP_ID,
        url = server.ws_url(),
        data = data.display(),
    );
    std::fs::write(&path, text).expect("write the config");
    path
}

/// The config's engine is logged in at start-up; a message sent while the server is down stays in
/// the outbox across a SIGTERM and goes out after the next start.
#[tokio::test]
async fn config_engines_log_in_at_start_and_sigterm_keeps_the_outbox() {
    let mut server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bot");
    let config = write_config(dir.path(), &server, &data);
    let carol = TestClient::new(&server).await;
    carol.login("carol").await;

    let daemon = Listening::start(Some(&config)).await;
    let mut ws = daemon.connect(Some(TOKEN)).await.expect("connected");
    assert_eq!(
        ws.ok("bot", "get_login_status", json!({})).await,
        json!({ "status": "logined" })
    );
    chime_tests::send_c2c_text(&carol, "bot", "are you there?").await;
    let got = ws.event("bot", "on_recv_new_message").await;
    assert_eq!(text_of(&got["message"]), "are you there?");

    server.kill().await;
    ws.event("bot", "on_connect_failed").await;
    let a = ws
        .request(
            Some("bot"),
            "send_c2c_text_message",
            json!({ "text": "kept in the outbox", "user_id": "carol" }),
        )
        .await;
    assert_eq!(a["error"]["code"], json!(9520), "send timed out: {a}");
    daemon.sigterm();
    assert_eq!(daemon.exit_code().await, Some(0), "graceful exit");

    server.restart().await;
    let daemon = Listening::start(Some(&config)).await;
    let got = carol.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "kept in the outbox");
    assert_eq!(got[0]["sender"], json!("bot"));
    assert_eq!(got[0]["seq"], json!(2), "after carol's message, once");
    daemon.sigterm();
    assert_eq!(daemon.exit_code().await, Some(0));
}

/// The Python example bot (stdlib only, driving `chimed --stdio`) answers a message.
#[tokio::test]
async fn python_echo_bot_answers_messages() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/echo_bot.py");
    let mut child = Command::new("python3")
        .arg(bot)
        .arg("--chimed")
        .arg(env!("CARGO_BIN_EXE_chimed"))
        .arg("--server")
        .arg(server.ws_url())
        .arg("--user")
        .arg("echo")
        .arg("--user-sig")
        .arg(server.user_sig("echo"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--max-replies")
        .arg("1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(WAIT, lines.next_line()).await.unwrap();
    assert_eq!(ready.unwrap().as_deref(), Some("ready"));

    let dave = TestClient::new(&server).await;
    dave.login("dave").await;
    chime_tests::send_c2c_text(&dave, "echo", "ping").await;
    let got = dave.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["sender"], json!("echo"));
    assert_eq!(text_of(&got[0]), "echo: ping");
    let replied = tokio::time::timeout(WAIT, lines.next_line()).await.unwrap();
    assert_eq!(
        replied.unwrap(),
        Some(format!("replied {}", got[0]["msg_id"].as_str().unwrap()))
    );
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
