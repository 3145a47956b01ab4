//! The `chime-server` binary itself: the ready line on port 0, the `usersig` subcommand.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chime_proto::pb::{self, request::Kind as ReqKind};
use chime_server::usersig;

use crate::*;

const BIN: &str = env!("CARGO_BIN_EXE_chime-server");

#[test]
fn usersig_subcommand_prints_a_verifiable_sig() {
    let out = Command::new(BIN)
        .args([
            "usersig",
            "--sdk-app-id",
            "1400000000",
            "--key",
            KEY,
            "--user-id",
            "alice",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let sig = String::from_utf8(out.stdout).unwrap();
    let v = usersig::verify(sig.trim(), APP, KEY, "alice", usersig::now_secs()).unwrap();
    assert_eq!(v.expire, 604_800);
}

/// Spawns the binary on `dir`; returns the child and its ws url.
fn spawn_server(dir: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(["--app", &format!("{APP}:{KEY}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("no ready line");
    let url = line
        .strip_prefix("chime-server listening ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_owned();
    (child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_messages_survive_sigkill_and_seqs_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_server(dir.path());
    let sig = usersig::gen_user_sig(APP, KEY, "alice", 3600);
    let mut c = Client::connect(&url).await;
    assert_eq!(
        c.login(APP, "alice", &sig, pb::Platform::Linux, "d")
            .await
            .code,
        0
    );
    for i in 1..=20u64 {
        let ack = c
            .send_ok(text_msg(&format!("k{i}"), "bob", "before the crash"))
            .await;
        assert_eq!(ack.seq, i);
    }
    // SIGKILL right after the acks: no graceful flush, no checkpoint.
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, url) = spawn_server(dir.path());
    let mut c = Client::connect(&url).await;
    assert_eq!(
        c.login(APP, "alice", &sig, pb::Platform::Linux, "d")
            .await
            .code,
        0
    );
    assert_eq!(c.send_ok(text_msg("k20", "bob", "resend")).await.seq, 20);
    assert_eq!(c.send_ok(text_msg("k21", "bob", "after")).await.seq, 21);
    let p = c
        .pull(pb::PullMessagesReq {
            conv: Some(c2c("bob")),
            ..Default::default()
        })
        .await;
    assert_eq!(
        p.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=21).collect::<Vec<u64>>()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_prints_the_ready_line_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--app", &format!("{APP}:{KEY}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("no ready line");
    assert!(start.elapsed() < Duration::from_secs(20));
    let url = line
        .strip_prefix("chime-server listening ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_owned();
    assert!(
        url.starts_with("ws://127.0.0.1:") && url.ends_with("/ws"),
        "{url}"
    );
    let mut c = Client::connect(&url).await;
    let sig = usersig::gen_user_sig(APP, KEY, "alice", 3600);
    let r = c.login(APP, "alice", &sig, pb::Platform::Linux, "d").await;
    assert_eq!(r.code, 0, "{}", r.desc);
    c.ok(ReqKind::GetServerTime(pb::GetServerTimeReq {})).await;
    // SIGTERM: graceful shutdown, exit 0.
    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "exit status {st}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
