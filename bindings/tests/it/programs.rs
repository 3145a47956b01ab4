//! The C, C++ and C# programs, built with the system compilers (`cc`, `c++`, Mono's `mcs`) against
//! the freshly built `libchime`, run against a real `chime-server`, exchanging messages with each
//! other and with an engine hosted by the daemon (`chimed --stdio`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chime_tests::{TestServer, text_of};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::support::{crate_dir, profile_dir};

const WAIT: Duration = Duration::from_secs(30);

/// Runs a build command, failing with its output.
fn build(mut cmd: std::process::Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {cmd:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn native_flags(cmd: &mut std::process::Command) {
    let lib = profile_dir();
    cmd.arg("-I")
        .arg(crate_dir().join("include"))
        .arg("-L")
        .arg(&lib)
        .arg("-lchime")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lpthread");
}

/// Builds `examples/c/chat.c` with the system C compiler.
fn build_c(out: &Path) -> PathBuf {
    let exe = out.join("chat_c");
    let mut cmd = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.arg("-std=c11")
        .arg("-D_DEFAULT_SOURCE")
        .arg("-Wall")
        .arg("-Werror")
        .arg(crate_dir().join("../examples/c/chat.c"))
        .arg("-o")
        .arg(&exe);
    native_flags(&mut cmd);
    build(cmd, "building the C example");
    exe
}

/// Builds one C++ program against the header-only wrapper.
fn build_cpp(source: &str, out: &Path, name: &str) -> PathBuf {
    let exe = out.join(name);
    let mut cmd = std::process::Command::new(std::env::var("CXX").unwrap_or_else(|_| "c++".into()));
    cmd.arg("-std=c++17")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(crate_dir().join("cpp/include"))
        .arg(crate_dir().join("cpp").join(source))
        .arg("-o")
        .arg(&exe);
    native_flags(&mut cmd);
    build(cmd, "building a C++ program");
    exe
}

/// Builds one C# program with the wrapper (Mono's `mcs`).
fn build_cs(source: &str, out: &Path, name: &str) -> PathBuf {
    let exe = out.join(name);
    let cs = crate_dir().join("csharp");
    let mut cmd = std::process::Command::new("mcs");
    cmd.arg("-langversion:7.2")
        .arg("-warnaserror")
        .arg(format!("-out:{}", exe.display()))
        .arg(cs.join("Runtime/Native.cs"))
        .arg(cs.join("Runtime/Engine.cs"))
        .arg(cs.join(source));
    build(cmd, "building a C# program (needs mono-mcs)");
    exe
}

/// A running program speaking the chat line protocol (`READY`, `SENT`, `RECV`, `ERROR`).
struct Program {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Program {
    fn spawn(name: &'static str, mut cmd: Command) -> Program {
        let mut child = cmd
            .env("LD_LIBRARY_PATH", profile_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Program {
            name,
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line starting with `prefix`; returns the rest.
    async fn expect(&mut self, prefix: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(i) = self.seen.iter().position(|l| l.starts_with(prefix)) {
                return self.seen.remove(i)[prefix.len()..].to_owned();
            }
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    assert!(!line.starts_with("ERROR"), "{}: {line}", self.name);
                    self.seen.push(line);
                }
                _ => panic!(
                    "{}: no {prefix:?} line within {WAIT:?}; saw {:?}",
                    self.name, self.seen
                ),
            }
        }
    }

    /// Waits for a received message (`on_recv_new_message {message}`); returns the message.
    async fn recv(&mut self) -> Value {
        let json = self.expect("RECV ").await;
        let event: Value =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{}: {json}: {e}", self.name));
        event["message"].clone()
    }

    async fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).await.expect("write");
        stdin.write_all(b"\n").await.expect("write");
        stdin.flush().await.expect("flush");
    }

    /// Closes stdin and expects exit status 0.
    async fn finish(mut self) {
        self.stdin.take();
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit after EOF", self.name))
            .expect("wait");
        assert_eq!(status.code(), Some(0), "{} exit status", self.name);
    }
}

fn chat_args(cmd: &mut Command, server: &TestServer, dir: &Path, user: &str) {
    cmd.arg(server.ws_url())
        .arg(dir.join(user))
        .arg(user)
        .arg(server.user_sig(user));
}

/// `chimed --stdio` hosting one engine, driven with JSON-RPC lines.
struct Daemon {
    program: Program,
    next_id: u64,
    notifications: Vec<Value>,
}

impl Daemon {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let line = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        self.program.say(&line.to_string()).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.program.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("daemon: no answer to {method}"))
                .expect("daemon output");
            let v: Value = serde_json::from_str(&line).expect("daemon JSON line");
            if v["id"] == json!(id) {
                return v["result"].clone();
            }
            self.notifications.push(v);
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
            let line = tokio::time::timeout_at(deadline, self.program.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("daemon: no {name}"))
                .expect("daemon output");
            self.notifications
                .push(serde_json::from_str(&line).expect("daemon JSON line"));
        }
    }
}

/// C → C++ → C# → daemon → C, each hop a real message through one server; each program prints
/// what it sent and received, and exits 0 at the end of its input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_cpp_csharp_and_daemon_engines_chat_through_one_server() {
    let out = tempfile::tempdir().unwrap();
    let c_exe = build_c(out.path());
    let cpp_exe = build_cpp("examples/chat.cpp", out.path(), "chat_cpp");
    let cs_exe = build_cs("Examples/Chat.cs", out.path(), "chat_cs.exe");

    let server = TestServer::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(&c_exe);
    chat_args(&mut cmd, &server, data.path(), "c_user");
    let mut c = Program::spawn("C", cmd);
    let mut cmd = Command::new(&cpp_exe);
    chat_args(&mut cmd, &server, data.path(), "cpp_user");
    let mut cpp = Program::spawn("C++", cmd);
    let mut cmd = Command::new("mono");
    cmd.arg(&cs_exe);
    chat_args(&mut cmd, &server, data.path(), "cs_user");
    let mut cs = Program::spawn("C#", cmd);
    let mut cmd = Command::new(chime_tests::workspace_binary("chimed", "CHIMED_BIN"));
    cmd.arg("--stdio");
    let mut daemon = Daemon {
        program: Program::spawn("chimed", cmd),
        next_id: 1,
        notifications: Vec::new(),
    };
    assert_eq!(c.expect("READY ").await, "c_user");
    assert_eq!(cpp.expect("READY ").await, "cpp_user");
    assert_eq!(cs.expect("READY ").await, "cs_user");
    let init = json!({
        "sdk_app_id": chime_tests::APP_ID,
        "server_url": server.ws_url(),
        "data_dir": data.path().join("d_user"),
        "log_level": "warn",
    });
    assert_eq!(daemon.call("init_sdk", init).await, json!({}));
    let login = json!({ "user_id": "d_user", "user_sig": server.user_sig("d_user") });
    assert_eq!(daemon.call("login", login).await, json!({}));

    c.say("@cpp_user hello from C, ünïcode \"quoted\"").await;
    let sent: Value = {
        let rest = c.expect("SENT cpp_user ").await;
        serde_json::from_str(&rest).unwrap()
    };
    assert_eq!(sent["status"], json!("send_succ"));
    let got = cpp.recv().await;
    assert_eq!(got["sender"], json!("c_user"));
    assert_eq!(got["msg_id"], sent["msg_id"]);
    assert_eq!(text_of(&got), "hello from C, ünïcode \"quoted\"");

    cpp.say("@cs_user hello from C++").await;
    cpp.expect("SENT cs_user ").await;
    let got = cs.recv().await;
    assert_eq!(got["sender"], json!("cpp_user"));
    assert_eq!(text_of(&got), "hello from C++");

    cs.say("@d_user hello from C#").await;
    cs.expect("SENT d_user ").await;
    let got = daemon.notification("on_recv_new_message").await;
    assert_eq!(got["message"]["sender"], json!("cs_user"));
    assert_eq!(text_of(&got["message"]), "hello from C#");

    let sent = daemon
        .call(
            "send_c2c_text_message",
            json!({ "text": "hello from the daemon", "user_id": "c_user" }),
        )
        .await;
    assert_eq!(sent["status"], json!("send_succ"));
    let got = c.recv().await;
    assert_eq!(got["sender"], json!("d_user"));
    assert_eq!(got["msg_id"], sent["msg_id"]);
    assert_eq!(text_of(&got), "hello from the daemon");

    // A bad line is reported, not fatal.
    c.say("no peer here").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let line = tokio::time::timeout_at(deadline, c.lines.recv())
        .await
        .expect("an ERROR line")
        .expect("C output");
    assert_eq!(line, "ERROR 6017 type @peer text");

    c.finish().await;
    cpp.finish().await;
    cs.finish().await;
    daemon.program.finish().await;
}

/// The C++ wrapper's own test program (RAII, errors, callbacks inside `poll`).
#[test]
fn cpp_wrapper_test_program_passes() {
    let out = tempfile::tempdir().unwrap();
    let exe = build_cpp("tests/wrapper_test.cpp", out.path(), "wrapper_test");
    let run = std::process::Command::new(&exe)
        .arg(out.path())
        .output()
        .expect("run wrapper_test");
    assert!(
        run.status.success(),
        "wrapper_test failed:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout), "ok\n");
}

/// The C# wrapper's own test program under Mono.
#[test]
fn csharp_wrapper_tests_pass_under_mono() {
    let out = tempfile::tempdir().unwrap();
    let exe = build_cs("Tests/EngineTests.cs", out.path(), "engine_tests.exe");
    let run = std::process::Command::new("mono")
        .arg(&exe)
        .arg(out.path())
        .env("LD_LIBRARY_PATH", profile_dir())
        .output()
        .expect("run mono");
    assert!(
        run.status.success(),
        "EngineTests failed:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout), "ok\n");
}
