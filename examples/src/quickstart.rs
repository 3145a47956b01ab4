//! The Chime quickstart: the whole system in one process, each step printed.
//!
//! Starts an in-process `chime-server` on 127.0.0.1 (free port, temporary data dir), two engines
//! (alice and bob, each with its own temporary data dir), logs both in, and walks through C2C and
//! group messages both ways, history, the conversation list, unread counts and marking read. It
//! drives the engines only through their JSON API (`Engine::call`), the same one the daemon and the
//! C ABI expose, so every call printed here works the same from any front end.
//!
//! ```text
//! cargo run -p chime-examples --bin quickstart
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chime_engine::{Engine, EngineConfig, Event};
use chime_server::{ServerConfig, usersig};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The demo app.
const APP_ID: u64 = 1_400_000_000;
/// The demo app's secret key (UserSigs are signed with it).
const APP_KEY: &str = "quickstart-secret-key";
/// How long any one step may wait for an event.
const WAIT: Duration = Duration::from_secs(10);

/// Why the quickstart stopped.
type Failure = String;

/// One user: an engine and the events it emitted, in order.
struct Peer {
    name: &'static str,
    engine: Engine,
    events: mpsc::UnboundedReceiver<Event>,
    /// Events read while waiting for another name, kept for later waits.
    backlog: Vec<Event>,
}

impl Peer {
    fn start(name: &'static str, server_url: &str, dir: &Path) -> Result<Peer, Failure> {
        let config: EngineConfig = serde_json::from_value(json!({
            "sdk_app_id": APP_ID,
            "server_url": server_url,
            "data_dir": dir,
            "log_level": "warn",
        }))
        .map_err(|e| format!("engine config: {e}"))?;
        let engine = Engine::init(config).map_err(|e| format!("init_sdk for {name}: {e}"))?;
        let (tx, events) = mpsc::unbounded_channel();
        engine.set_event_handler(Some(Arc::new(move |event: Event| {
            let _ = tx.send(event);
        })));
        Ok(Peer {
            name,
            engine,
            events,
            backlog: Vec::new(),
        })
    }

    /// Calls one API method, printing the call; an error stops the quickstart.
    async fn call(&self, method: &str, params: Value) -> Result<Value, Failure> {
        println!("  {:<5} → {method} {}", self.name, brief(&params));
        self.engine
            .call(method, params)
            .await
            .map_err(|e| format!("{} {method} failed: {} ({})", self.name, e.code, e.desc))
    }

    /// The next event named `name` (earlier events of other names stay queued).
    async fn event(&mut self, name: &str) -> Result<Value, Failure> {
        if let Some(i) = self.backlog.iter().position(|e| e.name == name) {
            return Ok(self.backlog.remove(i).data);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) if e.name == name => return Ok(e.data),
                Ok(Some(e)) => self.backlog.push(e),
                Ok(None) | Err(_) => {
                    return Err(format!("{} got no {name} within {WAIT:?}", self.name));
                }
            }
        }
    }

    /// Waits for one new message and prints it.
    async fn receive(&mut self) -> Result<Value, Failure> {
        let data = self.event("on_recv_new_message").await?;
        let msg = data.get("message").cloned().unwrap_or(data);
        println!(
            "  {:<5} ← on_recv_new_message: {}",
            self.name,
            describe(&msg, self.name)
        );
        Ok(msg)
    }
}

/// A params object shortened for printing (UserSigs and long texts elided).
fn brief(params: &Value) -> String {
    let mut p = params.clone();
    if let Some(obj) = p.as_object_mut() {
        if obj.contains_key("user_sig") {
            obj.insert("user_sig".into(), json!("…"));
        }
        if obj.get("message").is_some_and(Value::is_object) {
            obj.insert("message".into(), json!("{…}"));
        }
    }
    p.to_string()
}

/// `sender → target: content (seq N)` for a message object seen by `viewer` (a C2C message's
/// `user_id` is the viewer's peer, so the target is the peer for the viewer's own messages and
/// the viewer otherwise).
fn describe(msg: &Value, viewer: &str) -> String {
    let target = match msg["group_id"].as_str() {
        Some(g) if !g.is_empty() => format!("group {g}"),
        _ if msg["is_self"] == json!(true) => {
            msg["user_id"].as_str().unwrap_or_default().to_owned()
        }
        _ => viewer.to_owned(),
    };
    format!(
        "{} → {}: {} (seq {})",
        msg["sender"].as_str().unwrap_or_default(),
        target,
        content(msg),
        msg["seq"]
    )
}

/// The printable content of a message's elems.
fn content(msg: &Value) -> String {
    let elems = msg["elem_list"].as_array().cloned().unwrap_or_default();
    let parts: Vec<String> = elems
        .iter()
        .map(|e| match e["elem_type"].as_str() {
            Some("text") => format!("{:?}", e["text"].as_str().unwrap_or_default()),
            Some("custom") => format!("custom data {}", e["data"]),
            Some(other) => format!("[{other}]"),
            None => "[?]".to_owned(),
        })
        .collect();
    parts.join(" + ")
}

fn step(n: u32, title: &str) {
    println!("\n[{n}] {title}");
}

async fn run() -> Result<(), Failure> {
    let root = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;

    step(
        1,
        "start an in-process chime-server on a free loopback port",
    );
    let listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let server = chime_server::start(
        ServerConfig::new(listen, root.path().join("server")).with_app(APP_ID, APP_KEY),
    )
    .await
    .map_err(|e| format!("server start: {e}"))?;
    let url = server.ws_url();
    println!("  chime-server listening {url} (data in a temporary dir)");

    step(2, "start two engines and log alice and bob in");
    let mut alice = Peer::start("alice", &url, &root.path().join("alice"))?;
    let mut bob = Peer::start("bob", &url, &root.path().join("bob"))?;
    for peer in [&alice, &bob] {
        let sig = usersig::gen_user_sig(APP_ID, APP_KEY, peer.name, 86_400);
        peer.call("login", json!({ "user_id": peer.name, "user_sig": sig }))
            .await?;
        let status = peer.call("get_login_status", json!({})).await?;
        println!("  {:<5}   status: {}", peer.name, status["status"]);
    }

    step(3, "C2C: alice sends bob a text message");
    let msg = alice
        .call("create_text_message", json!({ "text": "Hi Bob! 👋" }))
        .await?;
    println!(
        "  {:<5}   created {} with status {}",
        alice.name, msg["msg_id"], msg["status"]
    );
    let sent = alice
        .call("send_message", json!({ "message": msg, "receiver": "bob" }))
        .await?;
    println!(
        "  {:<5}   sent: status {}, seq {}",
        alice.name, sent["status"], sent["seq"]
    );
    bob.receive().await?;

    step(4, "C2C: bob answers with a text and a custom message");
    bob.call(
        "send_c2c_text_message",
        json!({ "text": "Hey Alice, got it.", "user_id": "alice" }),
    )
    .await?;
    alice.receive().await?;
    let custom = bob
        .call(
            "create_custom_message",
            json!({ "data": "{\"kind\":\"typing-done\"}", "description": "status" }),
        )
        .await?;
    bob.call(
        "send_message",
        json!({ "message": custom, "receiver": "alice" }),
    )
    .await?;
    alice.receive().await?;

    step(
        5,
        "group: alice creates a Public group, bob joins, both talk",
    );
    let created = alice
        .call(
            "create_group",
            json!({ "group_type": "Public", "group_id": "quickstart", "group_name": "Quickstart" }),
        )
        .await?;
    println!(
        "  {:<5}   created group {}",
        alice.name, created["group_id"]
    );
    bob.call(
        "join_group",
        json!({ "group_id": "quickstart", "message": "hello" }),
    )
    .await?;
    alice
        .call(
            "send_group_text_message",
            json!({ "text": "Welcome to the group!", "group_id": "quickstart" }),
        )
        .await?;
    bob.receive().await?;
    bob.call(
        "send_group_text_message",
        json!({ "text": "Glad to be here.", "group_id": "quickstart" }),
    )
    .await?;
    alice.receive().await?;

    step(
        6,
        "history: bob reads his C2C history with alice from the cloud (newest first)",
    );
    let history = bob
        .call(
            "get_c2c_history_message_list",
            json!({ "user_id": "alice", "count": 20 }),
        )
        .await?;
    for m in history["message_list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        println!("          {}", describe(&m, bob.name));
    }

    step(7, "conversations and unread counts (alice's view)");
    print_conversations(&alice).await?;
    let total = alice
        .call("get_total_unread_message_count", json!({}))
        .await?;
    println!(
        "  {:<5}   total unread: {}",
        alice.name, total["total_unread_count"]
    );

    step(8, "alice marks both conversations read");
    alice
        .call("mark_c2c_message_as_read", json!({ "user_id": "bob" }))
        .await?;
    alice
        .call(
            "mark_group_message_as_read",
            json!({ "group_id": "quickstart" }),
        )
        .await?;
    print_conversations(&alice).await?;
    let total = alice
        .call("get_total_unread_message_count", json!({}))
        .await?;
    println!(
        "  {:<5}   total unread: {}",
        alice.name, total["total_unread_count"]
    );

    step(9, "log out and shut everything down");
    for peer in [&alice, &bob] {
        peer.call("logout", json!({})).await?;
        peer.engine.shutdown().await;
    }
    server.shutdown().await;
    println!("\nquickstart finished: every step succeeded.");
    Ok(())
}

async fn print_conversations(peer: &Peer) -> Result<(), Failure> {
    let list = peer
        .call(
            "get_conversation_list",
            json!({ "next_seq": 0, "count": 20 }),
        )
        .await?;
    for c in list["conversation_list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        println!(
            "          {:<20} unread {:<3} last: {}",
            c["conversation_id"].as_str().unwrap_or_default(),
            c["unread_count"],
            content(&c["last_message"])
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("quickstart: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nquickstart failed: {e}");
            ExitCode::FAILURE
        }
    }
}
