//! The shared end-to-end test harness: a real `chime-server` process and real engines.
//!
//! Every workspace-level test (and the benchmark) needs the same two things: a server process on
//! loopback with a fresh data dir, and engines with their own data dirs whose events can be
//! awaited by name. Writing them once, here, keeps the tests reading like their scenario ("start a
//! server, log two users in, send, expect") and keeps every wait bounded in time.
//!
//! - [`TestServer`] spawns the `chime-server` binary (found next to the running executable's
//!   profile dir, or at `$CHIME_SERVER_BIN`), reads its ready line, keeps draining its output,
//!   and can be killed (SIGKILL) and restarted on the same port and data dir.
//! - [`TestProxy`] sits between engines and the server on loopback and breaks the network on
//!   command: every connection cut at once, or a silent black hole that only heartbeats detect.
//! - [`TestClient`] runs one [`chime_engine::Engine`] with a recorder of every event and a per-name
//!   cursor, so [`TestClient::expect_event`] returns each event exactly once.
//!
//! - [`wire::WireClient`] speaks the protocol directly, without an engine, for server-only
//!   workloads (hundreds of connections) and protocol-level tests.
//! - [`lossy::LossyRelay`] drops and delays UDP datagrams between engines and the server's QUIC
//!   endpoint ([`TestServer::start_with_quic`]).
//!
//! Set `CHIME_TEST_LOG=1` to copy the server's stderr to the test's stderr.

pub mod lossy;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chime_engine::{ApiError, Engine, EngineConfig, Event};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// The main test app's SDKAppID.
pub const APP_ID: u64 = 1_400_000_000;
/// The main test app's secret key.
pub const APP_KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
/// A second app on the same server (isolation tests).
pub const APP2_ID: u64 = 1_400_000_001;
/// The second app's secret key.
pub const APP2_KEY: &str = "a3c1f0b9d86e4f2aa1c9e7b5d3f10e2c7b6a5d4c3b2a190817263544f3e2d1c0";

/// How long a server gets to print its ready line.
const SERVER_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times `restart` retries a port still held (TIME_WAIT, slow exit).
const RESTART_ATTEMPTS: u32 = 50;
/// How many of the server's last output lines are kept for failure messages.
const KEPT_LOG_LINES: usize = 60;
/// The prefix of the server's WebSocket ready line (api.md §8).
const READY_PREFIX: &str = "chime-server listening ws://";

/// The secret key of a test app (`APP_KEY` for unknown ids, so a wrong-app login is well formed).
pub fn app_key(app_id: u64) -> &'static str {
    if app_id == APP2_ID { APP2_KEY } else { APP_KEY }
}

/// A UserSig for `user` of `app_id`, valid for `expire_secs` from now.
pub fn user_sig_for(app_id: u64, user: &str, expire_secs: u64) -> String {
    chime_server::usersig::gen_user_sig(app_id, app_key(app_id), user, expire_secs)
}

/// Finds a workspace binary: `$<env_var>` if set, else `<name>` in the running executable's dir
/// or its parent (tests run from `target/<profile>/deps`, bins from `target/<profile>`).
pub fn workspace_binary(name: &str, env_var: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut dir = exe.parent().map(Path::to_path_buf);
    let mut tried = Vec::new();
    while let Some(d) = dir {
        let candidate = d.join(name);
        if candidate.is_file() {
            return candidate;
        }
        tried.push(candidate);
        if tried.len() >= 2 {
            break;
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    panic!(
        "binary {name} not found (tried {tried:?}); build it first with `cargo build --workspace \
         --bins` or set {env_var}"
    )
}

/// The path of a workspace plugin `cdylib` (`package` e.g. `chime-quic-transport`, `lib_name` e.g.
/// `chime_quic_transport`) in the running executable's profile dir. Under cargo (`$CARGO` set, as
/// in `cargo test` / `cargo nextest` / `cargo run`) the package is built first, once per process
/// and package, with the same profile and target dir (a no-op when fresh): a `cdylib` cannot be
/// a dependency, so nothing else builds it. With `CHIME_PLUGINS_PREBUILT=1` (set by `.ci/run`
/// after its `cargo build --workspace`, which builds every plugin) the library is used as built.
pub fn plugin_library(package: &str, lib_name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut profile_dir = exe
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("no dir of {}", exe.display()));
    if profile_dir.file_name().is_some_and(|name| name == "deps") {
        profile_dir.pop();
    }
    let path = profile_dir.join(format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let prebuilt = std::env::var_os("CHIME_PLUGINS_PREBUILT").is_some_and(|v| v == "1");
    if let Some(cargo) = std::env::var_os("CARGO").filter(|_| !prebuilt) {
        let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
        if !built.iter().any(|p| p == package) {
            let target_dir = profile_dir
                .parent()
                .unwrap_or_else(|| panic!("no target dir above {}", profile_dir.display()));
            let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
                Some("debug") | None => "dev".to_owned(),
                Some(other) => other.to_owned(),
            };
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or_else(|| panic!("no workspace above the tests crate"));
            let output = std::process::Command::new(cargo)
                .arg("build")
                .arg("--manifest-path")
                .arg(workspace.join("Cargo.toml"))
                .arg("--profile")
                .arg(&profile)
                .arg("--target-dir")
                .arg(target_dir)
                .arg("-p")
                .arg(package)
                .output()
                .unwrap_or_else(|e| panic!("run cargo build -p {package}: {e}"));
            assert!(
                output.status.success(),
                "cargo build -p {package} failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            built.push(package.to_owned());
        }
    }
    assert!(
        path.is_file(),
        "plugin library {} not found; build it with `cargo build -p {package}`",
        path.display()
    );
    path
}

/// Engine config (to merge into a [`TestClient`]'s) for `transport: "quic"` through the real
/// `chime-quic-transport` plugin, pinned to `cert_sha256`, connecting to `url` (the server's
/// [`TestServer::quic_url`] or a [`lossy::LossyRelay`]'s), with `transport_fallback` as given.
/// Timeouts scale from `connect_timeout_ms` (the plugin's handshake timeout), so that a lossy
/// path gets the time its retransmissions need; reconnects are quick.
pub fn quic_engine_config(
    url: &str,
    cert_sha256: &str,
    fallback: bool,
    connect_timeout_ms: u64,
) -> Value {
    let plugin = plugin_library("chime-quic-transport", "chime_quic_transport");
    json!({
        "plugins": [{
            "path": plugin,
            "config": {
                "server_cert_sha256": cert_sha256,
                "connect_timeout_ms": connect_timeout_ms,
            },
        }],
        "plugin_call_timeout_ms": connect_timeout_ms + 5_000,
        "connect_timeout_ms": connect_timeout_ms + 10_000,
        "transport": "quic",
        "transport_url": url,
        "transport_fallback": fallback,
        "reconnect_min_ms": 50,
        "reconnect_max_ms": 500,
    })
}

/// The last lines a server process wrote, for failure messages.
type LogTail = Arc<Mutex<VecDeque<String>>>;

fn push_line(tail: &LogTail, line: String) {
    if let Ok(mut t) = tail.lock() {
        if t.len() >= KEPT_LOG_LINES {
            t.pop_front();
        }
        t.push_back(line);
    }
}

fn tail_text(tail: &LogTail) -> String {
    tail.lock()
        .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

/// A real `chime-server` process on 127.0.0.1 with a fresh temporary data dir, serving
/// [`APP_ID`] and [`APP2_ID`]. Killed on drop.
pub struct TestServer {
    child: Option<Child>,
    data_dir: TempDir,
    config_file: Option<PathBuf>,
    port: u16,
    ws_url: String,
    log: LogTail,
    /// The QUIC endpoint, when started with one: its port and its ready line's
    /// `quic://ADDR sha256:HEX`.
    quic: Option<(u16, String)>,
    /// The HTTP endpoint (REST admin API) from the `chime-server listening http URL` line.
    http_url: Arc<Mutex<String>>,
}

impl TestServer {
    /// Starts a server on a free port with the default configuration.
    pub async fn start() -> TestServer {
        Self::start_inner(None, false).await
    }

    /// Starts a server on free ports with a QUIC endpoint too (`--quic-listen`, self-signed).
    pub async fn start_with_quic() -> TestServer {
        Self::start_inner(None, true).await
    }

    /// Starts a server with `toml` as its `--config` file.
    pub async fn start_with_config(toml: &str) -> TestServer {
        Self::start_inner(Some(toml), false).await
    }

    async fn start_inner(toml: Option<&str>, quic: bool) -> TestServer {
        let data_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let config_file = toml.map(|text| {
            let path = data_dir.path().join("chime-server.toml");
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write config: {e}"));
            path
        });
        let mut server = TestServer {
            child: None,
            data_dir,
            config_file,
            port: 0,
            ws_url: String::new(),
            log: Arc::new(Mutex::new(VecDeque::new())),
            quic: quic.then(|| (0, String::new())),
            http_url: Arc::new(Mutex::new(String::new())),
        };
        let store = server.data_dir.path().join("data");
        server
            .spawn(0, &store)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        server
    }

    /// Spawns the process listening on `port` (0 = any) and waits for its ready line.
    async fn spawn(&mut self, port: u16, store: &Path) -> Result<(), String> {
        let bin = workspace_binary("chime-server", "CHIME_SERVER_BIN");
        let mut cmd = Command::new(&bin);
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(store)
            .arg("--app")
            .arg(format!("{APP_ID}:{APP_KEY}"))
            .arg("--app")
            .arg(format!("{APP2_ID}:{APP2_KEY}"));
        if let Some(cfg) = &self.config_file {
            cmd.arg("--config").arg(cfg);
        }
        cmd.arg("--http-listen").arg("127.0.0.1:0");
        if let Some((quic_port, _)) = &self.quic {
            cmd.arg("--quic-listen")
                .arg(format!("127.0.0.1:{quic_port}"));
        }
        // Plain log lines (no ANSI colours) in the captured output.
        cmd.env("NO_COLOR", "1");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let echo = std::env::var_os("CHIME_TEST_LOG").is_some();
        let err_log = self.log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if echo {
                    eprintln!("[chime-server] {line}");
                }
                push_line(&err_log, line);
            }
        });
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<String>(1);
        let out_log = self.log.clone();
        let quic_line: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let quic_seen = quic_line.clone();
        let http_seen = self.http_url.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut ready = Some(ready_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(quic) = line.strip_prefix("chime-server listening quic://")
                    && let Ok(mut seen) = quic_seen.lock()
                {
                    *seen = Some(quic.trim().to_owned());
                }
                if let Some(url) = line.strip_prefix("chime-server listening http ")
                    && let Ok(mut seen) = http_seen.lock()
                {
                    *seen = url.trim().to_owned();
                }
                if let Some(url) = line.strip_prefix("chime-server listening ")
                    && url.starts_with("ws://")
                    && let Some(tx) = ready.take()
                {
                    let _ = tx.send(url.trim().to_owned()).await;
                }
                push_line(&out_log, line);
            }
        });
        let url = match tokio::time::timeout(SERVER_READY_TIMEOUT, ready_rx.recv()).await {
            Ok(Some(url)) => url,
            Ok(None) => {
                let status = child.wait().await.ok();
                return Err(format!(
                    "chime-server exited before its ready line ({status:?}); output:\n{}",
                    tail_text(&self.log)
                ));
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err(format!(
                    "chime-server printed no `{READY_PREFIX}...` line within {SERVER_READY_TIMEOUT:?}; \
                     output:\n{}",
                    tail_text(&self.log)
                ));
            }
        };
        self.port = port_of(&url).ok_or_else(|| format!("no port in ready line url {url}"))?;
        if self.quic.is_some() {
            // The server prints its QUIC line before the WebSocket one.
            let line = quic_line
                .lock()
                .ok()
                .and_then(|seen| seen.clone())
                .ok_or("no `chime-server listening quic://` line before the WebSocket one")?;
            let quic_port = line
                .split_whitespace()
                .next()
                .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
                .map(|addr| addr.port())
                .ok_or_else(|| format!("bad QUIC ready line {line}"))?;
            self.quic = Some((quic_port, line));
        }
        self.ws_url = url;
        self.child = Some(child);
        Ok(())
    }

    /// The HTTP endpoint (REST admin API), e.g. `http://127.0.0.1:41235`.
    pub fn http_url(&self) -> String {
        self.http_url.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// The WebSocket endpoint, e.g. `ws://127.0.0.1:41234/ws`.
    pub fn ws_url(&self) -> String {
        self.ws_url.clone()
    }

    /// The QUIC endpoint's UDP address (panics when started without QUIC).
    pub fn quic_addr(&self) -> std::net::SocketAddr {
        let (port, _) = self.quic.as_ref().expect("server started without QUIC");
        std::net::SocketAddr::from(([127, 0, 0, 1], *port))
    }

    /// `quic://127.0.0.1:PORT` of the QUIC endpoint (panics when started without QUIC).
    pub fn quic_url(&self) -> String {
        format!("quic://{}", self.quic_addr())
    }

    /// The SHA-256 fingerprint (hex) of the QUIC certificate, from the ready line.
    pub fn quic_cert_sha256(&self) -> String {
        let (_, line) = self.quic.as_ref().expect("server started without QUIC");
        line.split_whitespace()
            .find_map(|word| word.strip_prefix("sha256:"))
            .expect("ready line without sha256:")
            .to_owned()
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's data dir (kept across restarts).
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.path().join("data")
    }

    /// A UserSig for `user` of [`APP_ID`], valid one day.
    pub fn user_sig(&self, user: &str) -> String {
        user_sig_for(APP_ID, user, 86_400)
    }

    /// The server process id (0 when not running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().and_then(Child::id).unwrap_or(0)
    }

    /// The server's last output lines (stdout and stderr), for failure messages.
    pub fn log_tail(&self) -> String {
        tail_text(&self.log)
    }

    /// Kills the process with SIGKILL (no graceful shutdown) and reaps it.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Stops the server gracefully (SIGTERM, so it flushes and logs its totals), waiting at most
    /// `timeout` before falling back to SIGKILL. Answers whether it exited by itself.
    pub async fn stop(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let Some(pid) = child.id() else {
            return false;
        };
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if signalled && let Ok(Ok(_)) = tokio::time::timeout(timeout, child.wait()).await {
            // Let the output pumps read the last lines.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return true;
        }
        let _ = child.kill().await;
        false
    }

    /// Kills the server if running, then starts it again on the same port and data dir.
    pub async fn restart(&mut self) {
        self.kill().await;
        let store = self.data_dir();
        let mut last = String::new();
        for _ in 0..RESTART_ATTEMPTS {
            match self.spawn(self.port, &store).await {
                Ok(()) => return,
                Err(e) => {
                    last = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!(
            "restart on port {} failed {RESTART_ATTEMPTS} times; last: {last}",
            self.port
        );
    }
}

fn port_of(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("ws://")?;
    let host_port = rest.split('/').next()?;
    host_port.rsplit(':').next()?.parse().ok()
}

/// Shared switches of a [`TestProxy`].
#[derive(Default)]
struct ProxyState {
    /// A black hole is in force: new connections forward nothing.
    blackhole: AtomicBool,
    /// How many black holes have begun; a connection accepted before the latest one stays dead.
    blackhole_starts: AtomicU64,
    /// Connections accepted so far.
    accepted: AtomicU64,
}

impl ProxyState {
    fn is_dead(&self, starts_at_accept: u64) -> bool {
        self.blackhole.load(Ordering::SeqCst)
            || self.blackhole_starts.load(Ordering::SeqCst) > starts_at_accept
    }
}

/// A TCP forwarder on 127.0.0.1 in front of a server, to break the network under live engines
/// without touching the server: [`TestProxy::cut`] closes every open connection at once (what a
/// Wi-Fi switch looks like), [`TestProxy::set_blackhole`] silently swallows every byte (a dead
/// NAT mapping: only heartbeats can tell). Stops on drop.
pub struct TestProxy {
    port: u16,
    state: Arc<ProxyState>,
    cut: watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl TestProxy {
    /// Starts a proxy on a free port forwarding to `server`.
    pub async fn start(server: &TestServer) -> TestProxy {
        Self::to_port(server.port()).await
    }

    /// Starts a proxy on a free port forwarding to `127.0.0.1:upstream`.
    pub async fn to_port(upstream: u16) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("proxy bind: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy addr: {e}"))
            .port();
        let state = Arc::new(ProxyState::default());
        let (cut, _) = watch::channel(0u64);
        let accept_state = state.clone();
        let accept_cut = cut.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                accept_state.accepted.fetch_add(1, Ordering::SeqCst);
                let state = accept_state.clone();
                let cut_rx = accept_cut.subscribe();
                tokio::spawn(forward(client, upstream, state, cut_rx));
            }
        });
        TestProxy {
            port,
            state,
            cut,
            accept,
        }
    }

    /// The server's WebSocket endpoint as reached through this proxy.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// Closes every connection open now; later connections work.
    pub fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// Turns the black hole on (every open and new connection forwards nothing, without closing)
    /// or off (new connections forward again; those caught in the black hole stay dead).
    pub fn set_blackhole(&self, on: bool) {
        if on {
            self.state.blackhole_starts.fetch_add(1, Ordering::SeqCst);
        }
        self.state.blackhole.store(on, Ordering::SeqCst);
    }

    /// How many connections the proxy has accepted.
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Forwards one connection both ways until either side closes or the proxy cuts it.
async fn forward(
    client: TcpStream,
    upstream: u16,
    state: Arc<ProxyState>,
    mut cut: watch::Receiver<u64>,
) {
    cut.borrow_and_update();
    let starts_at_accept = state.blackhole_starts.load(Ordering::SeqCst);
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, state.clone(), starts_at_accept);
    let down = pump(server_read, client_write, state, starts_at_accept);
    tokio::select! {
        _ = cut.changed() => {}
        _ = async { tokio::join!(up, down) } => {}
    }
}

/// Copies bytes one way, swallowing them while the connection is in a black hole.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<ProxyState>,
    starts_at_accept: u64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if state.is_dead(starts_at_accept) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The events one engine has emitted, in order, with a per-name read cursor.
#[derive(Default)]
struct Recorder {
    events: Vec<Event>,
    cursors: HashMap<String, usize>,
}

/// One engine with its own temporary data dir and an event recorder.
pub struct TestClient {
    /// The engine under test.
    pub engine: Engine,
    recorder: Arc<Mutex<Recorder>>,
    changed: watch::Receiver<u64>,
    app_id: u64,
    data_dir: PathBuf,
    _temp: Option<TempDir>,
}

impl TestClient {
    /// `init_sdk` against `server` for [`APP_ID`], with a fresh temporary data dir.
    pub async fn new(server: &TestServer) -> TestClient {
        Self::with_config(server, json!({})).await
    }

    /// Like [`TestClient::new`], with `extra_config` merged into the engine config (e.g.
    /// `{"sdk_app_id": APP2_ID}` or `{"platform": "web"}`).
    pub async fn with_config(server: &TestServer, extra_config: Value) -> TestClient {
        let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let dir = temp.path().to_path_buf();
        let mut client = Self::with_data_dir(server, &dir, extra_config).await;
        client._temp = Some(temp);
        client
    }

    /// `init_sdk` against `url` (e.g. a [`TestProxy`]) with a fresh temporary data dir and
    /// `extra_config` merged into the config.
    pub async fn at_url(url: &str, extra_config: Value) -> TestClient {
        let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let dir = temp.path().to_path_buf();
        let mut client = Self::with_url(url, &dir, extra_config);
        client._temp = Some(temp);
        client
    }

    /// `init_sdk` with the given data dir (kept by the caller, e.g. to restart an engine on the
    /// same store) and `extra_config` merged into the config.
    pub async fn with_data_dir(server: &TestServer, dir: &Path, extra_config: Value) -> TestClient {
        Self::with_url(&server.ws_url(), dir, extra_config)
    }

    /// `init_sdk` against any server URL (the benchmark and the quickstart use this).
    pub fn with_url(url: &str, dir: &Path, extra_config: Value) -> TestClient {
        let mut config = json!({
            "sdk_app_id": APP_ID,
            "server_url": url,
            "data_dir": dir,
            "log_level": "warn",
        });
        if let (Some(base), Value::Object(extra)) = (config.as_object_mut(), extra_config) {
            for (k, v) in extra {
                base.insert(k, v);
            }
        }
        let app_id = config["sdk_app_id"].as_u64().unwrap_or(APP_ID);
        let config: EngineConfig = serde_json::from_value(config.clone())
            .unwrap_or_else(|e| panic!("engine config {config}: {e}"));
        let engine = Engine::init(config).unwrap_or_else(|e| panic!("Engine::init failed: {e}"));
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        let (tx, changed) = watch::channel(0u64);
        let rec = recorder.clone();
        engine.set_event_handler(Some(Arc::new(move |event: Event| {
            if let Ok(mut r) = rec.lock() {
                r.events.push(event);
            }
            tx.send_modify(|n| *n += 1);
        })));
        TestClient {
            engine,
            recorder,
            changed,
            app_id,
            data_dir: dir.to_path_buf(),
            _temp: None,
        }
    }

    /// The engine's data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Logs `user` in with a valid UserSig of this client's app; panics with the error if it fails.
    pub async fn login(&self, user: &str) {
        let sig = user_sig_for(self.app_id, user, 86_400);
        if let Err(e) = self.login_with(user, &sig).await {
            panic!("login of {user} failed: {} ({})", e.code, e.desc);
        }
    }

    /// Logs in with an explicit UserSig and answers the engine's result.
    pub async fn login_with(&self, user: &str, user_sig: &str) -> Result<Value, ApiError> {
        self.call("login", json!({ "user_id": user, "user_sig": user_sig }))
            .await
    }

    /// Calls one API method through the engine's dispatch table.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ApiError> {
        self.engine.call(method, params).await
    }

    /// Calls a method and panics with the method, params and error if it fails.
    pub async fn ok(&self, method: &str, params: Value) -> Value {
        match self.engine.call(method, params.clone()).await {
            Ok(v) => v,
            Err(e) => panic!("{method}({params}) failed: {} ({})", e.code, e.desc),
        }
    }

    /// Calls a method that must fail and answers its error code; panics if it succeeded.
    pub async fn err_code(&self, method: &str, params: Value) -> i32 {
        match self.engine.call(method, params.clone()).await {
            Ok(v) => panic!("{method}({params}) succeeded with {v}, an error was expected"),
            Err(e) => e.code,
        }
    }

    /// The next not-yet-returned event named `name`; panics with the events seen after `timeout`.
    pub async fn expect_event(&self, name: &str, timeout: Duration) -> Value {
        match self.next_event(name, timeout).await {
            Some(v) => v,
            None => panic!(
                "no `{name}` event within {timeout:?}; events seen: {}",
                self.event_summary()
            ),
        }
    }

    /// The next not-yet-returned event named `name`, or `None` after `timeout`.
    pub async fn next_event(&self, name: &str, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.changed.clone();
        loop {
            changed.borrow_and_update();
            if let Some(v) = self.take_event(name) {
                return Some(v);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return self.take_event(name),
            }
        }
    }

    fn take_event(&self, name: &str) -> Option<Value> {
        let mut r = self.recorder.lock().ok()?;
        let start = r.cursors.get(name).copied().unwrap_or(0);
        let found = r
            .events
            .iter()
            .enumerate()
            .skip(start)
            .find(|(_, e)| e.name == name)
            .map(|(i, e)| (i, e.data.clone()));
        let (i, data) = found?;
        r.cursors.insert(name.to_owned(), i + 1);
        Some(data)
    }

    /// The `message` of the next `n` `on_recv_new_message` events that are not group tips
    /// (the membership and profile notices every group change leaves in the group's history;
    /// a test that wants them reads `on_recv_new_message` itself); panics with what arrived if
    /// fewer than `n` come within `timeout`.
    pub async fn expect_messages(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event("on_recv_new_message", left).await {
                Some(data) => {
                    let message = data.get("message").cloned().unwrap_or(data);
                    if !is_group_tips(&message) {
                        out.push(message);
                    }
                }
                None => panic!(
                    "expected {n} messages within {timeout:?}, got {}: {:?}; events seen: {}",
                    out.len(),
                    out,
                    self.event_summary()
                ),
            }
        }
        out
    }

    /// Every event named `name` recorded so far (cursor untouched).
    pub fn events(&self, name: &str) -> Vec<Value> {
        self.recorder
            .lock()
            .map(|r| {
                r.events
                    .iter()
                    .filter(|e| e.name == name)
                    .map(|e| e.data.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many events named `name` were recorded so far.
    pub fn event_count(&self, name: &str) -> usize {
        self.recorder
            .lock()
            .map(|r| r.events.iter().filter(|e| e.name == name).count())
            .unwrap_or(0)
    }

    /// Waits until every event the engine emitted before this call has been recorded.
    ///
    /// Events reach the recorder on the engine's delivery thread, a moment after they are
    /// emitted; a completion of [`Engine::call_with`] is delivered in order with them, so once a
    /// completion queued after this call has run, everything queued before it is recorded. Use it
    /// before reading [`TestClient::events`] as "what was emitted up to now" (e.g. the baseline of
    /// a negative check). Panics if the engine is shut down or the barrier takes longer than
    /// [`EVENTUALLY_TIMEOUT`].
    pub async fn events_delivered(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Any cheap call will do: only its completion's place in the delivery order matters.
        self.engine
            .call_with("get_login_user", json!({}), move |_| {
                let _ = tx.send(());
            })
            .unwrap_or_else(|e| panic!("events_delivered: {} ({})", e.code, e.desc));
        match tokio::time::timeout(EVENTUALLY_TIMEOUT, rx).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("events_delivered: the completion was dropped"),
            Err(_) => panic!("events_delivered: not delivered within {EVENTUALLY_TIMEOUT:?}"),
        }
    }

    /// A short list of the recorded events' names in order, for failure messages.
    pub fn event_summary(&self) -> String {
        self.recorder
            .lock()
            .map(|r| {
                let names: Vec<&str> = r.events.iter().map(|e| e.name.as_str()).collect();
                format!("[{}]", names.join(", "))
            })
            .unwrap_or_default()
    }

    /// `un_init_sdk`: stops the engine and closes its store.
    pub async fn shutdown(&self) {
        self.engine.shutdown().await;
    }
}

/// How long dropping a [`TestClient`] waits for its engine to shut down.
const DROP_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

impl Drop for TestClient {
    /// Shuts the engine down (`un_init_sdk`) so that its store is closed before the data dir is
    /// reused or removed, and a test's engines never outlive it reconnecting to a dead server.
    /// Runs on a helper thread with its own small runtime (the engine works from any executor),
    /// bounded in time.
    fn drop(&mut self) {
        let engine = self.engine.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("chime-test-shutdown".into())
            .spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(engine.shutdown());
                }
                let _ = done_tx.send(());
            });
        if spawned.is_ok() {
            let _ = done_rx.recv_timeout(DROP_SHUTDOWN_TIMEOUT);
        }
    }
}

/// Sends a C2C text message from `from` to `to` and answers the sent message.
pub async fn send_c2c_text(from: &TestClient, to: &str, text: &str) -> Value {
    let msg = from
        .ok("create_text_message", json!({ "text": text }))
        .await;
    from.ok("send_message", json!({ "message": msg, "receiver": to }))
        .await
}

/// Whether a message object is a group tips message (its first elem is `group_tips`).
pub fn is_group_tips(message: &Value) -> bool {
    message["elem_list"][0]["elem_type"] == "group_tips"
}

/// Longest [`eventually`] waits for its condition.
pub const EVENTUALLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits (bounded by [`EVENTUALLY_TIMEOUT`]) until `f` holds, re-evaluating every 50 ms; panics
/// naming `what` if it never does.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + EVENTUALLY_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition never held within {EVENTUALLY_TIMEOUT:?}: {what}");
}

/// Every page of a one-conversation message search (`search_local_messages` or
/// `search_cloud_messages` with `params`), `count` results a page: the msg_ids in the order the
/// pages listed them and the `total_count`, checking that every page announces the same total,
/// that every result item is of `conv` and that the cursor walk ends (within 100 pages).
pub async fn search_conversation_pages(
    c: &TestClient,
    method: &str,
    params: &Value,
    conv: &str,
    count: u64,
) -> (Vec<String>, u64) {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    let mut total = None;
    for _ in 0..100 {
        let mut p = params.clone();
        p["conversation_id"] = json!(conv);
        p["count"] = json!(count);
        p["cursor"] = json!(cursor);
        let r = c.ok(method, p).await;
        let t = r["total_count"].as_u64().unwrap_or(u64::MAX);
        assert!(total.is_none_or(|x| x == t), "total_count is stable");
        total = Some(t);
        for item in r["message_search_result_items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            assert_eq!(item["conversation_id"], json!(conv));
            for m in item["message_list"].as_array().cloned().unwrap_or_default() {
                ids.push(m["msg_id"].as_str().unwrap_or_default().to_owned());
            }
        }
        cursor = r["cursor"].as_str().unwrap_or_default().to_owned();
        if cursor.is_empty() {
            return (ids, total.unwrap_or(0));
        }
    }
    panic!("cursor never finished");
}

/// The client's `get_total_unread_message_count` (u64::MAX if the answer has none).
pub async fn total_unread(c: &TestClient) -> u64 {
    c.ok("get_total_unread_message_count", json!({})).await["total_unread_count"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

/// The text of a message object: the `text` of its first text elem (empty if none).
pub fn text_of(message: &Value) -> String {
    message
        .get("elem_list")
        .and_then(Value::as_array)
        .and_then(|elems| {
            elems
                .iter()
                .find_map(|e| e.get("text").and_then(Value::as_str))
        })
        .unwrap_or_default()
        .to_owned()
}

/// The percentile `p` (0..=100) of sorted `values` (nearest rank); 0 when empty.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_is_parsed_from_the_ready_line_url() {
        assert_eq!(port_of("ws://127.0.0.1:41234/ws"), Some(41234));
        assert_eq!(port_of("ws://127.0.0.1:7700"), Some(7700));
        assert_eq!(port_of("http://127.0.0.1:7700"), None);
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[7], 99.0), 7);
    }
}
