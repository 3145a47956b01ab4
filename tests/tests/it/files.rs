//! The server's file store end to end: a real `chime-server` (its `--http-listen` endpoint), the
//! real `chime-upload-plugin` cdylib loaded by path through the plugin host, raw protocol
//! clients for tickets, download URLs and messages, and plain HTTP where the test plays a client
//! that misbehaves.

// The helpers below are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chime_plugin_api::abi::CHIME_STATUS_CANCELLED;
use chime_plugin_api::host::{HostConfig, PluginError, PluginHost, ProgressFn, UploaderPlugin};
use chime_proto::pb::{self, request::Kind as ReqKind, response::Kind as RespKind};
use chime_server::commit::now_ms;
use chime_server::files::signing::Signer;
use chime_tests::wire::{WireClient, WireError};
use chime_tests::{APP_ID, TestServer, eventually, plugin_library};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MB: u64 = 1024 * 1024;

/// The uploader plugin, loaded by path, with `config`.
fn uploader(config: Value) -> UploaderPlugin {
    let path = plugin_library("chime-upload-plugin", "chime_upload_plugin");
    let host = PluginHost::new(HostConfig::default());
    host.load(&path, &config.to_string())
        .unwrap_or_else(|e| panic!("load {}: {e}", path.display()));
    host.uploader().expect("the upload plugin is an uploader")
}

async fn login(server: &TestServer, user: &str) -> WireClient {
    WireClient::login(
        &server.ws_url(),
        APP_ID,
        user,
        &server.user_sig(user),
        &format!("{user}-device"),
    )
    .await
    .unwrap_or_else(|e| panic!("login {user}: {e}"))
}

async fn ticket(client: &mut WireClient) -> pb::FileUploadTicketResp {
    match client
        .call(ReqKind::FileUploadTicket(pb::FileUploadTicketReq {}))
        .await
        .unwrap_or_else(|e| panic!("ticket: {e}"))
        .kind
    {
        Some(RespKind::FileUploadTicket(t)) => t,
        other => panic!("unexpected answer {other:?}"),
    }
}

/// The download URL answer, or the refusal's code.
async fn download_url(client: &mut WireClient, uuid: &str) -> Result<pb::FileDownloadUrlResp, i32> {
    match client
        .call(ReqKind::FileDownloadUrl(pb::FileDownloadUrlReq {
            uuid: uuid.into(),
        }))
        .await
    {
        Ok(pb::Response {
            kind: Some(RespKind::FileDownloadUrl(r)),
            ..
        }) => Ok(r),
        Ok(other) => panic!("unexpected answer {other:?}"),
        Err(WireError::Refused { code, .. }) => Err(code),
        Err(e) => panic!("download url: {e}"),
    }
}

/// `size` bytes of a deterministic pseudo-random pattern seeded by `seed`.
fn pattern(size: u64, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The signature a file named `name` starts with (the store sniffs image, sound and video
/// uploads).
fn magic_of(name: &str) -> &'static [u8] {
    match name.rsplit('.').next().unwrap_or_default() {
        "jpg" => b"\xFF\xD8\xFF\xE0",
        "png" => b"\x89PNG\r\n\x1A\n",
        "m4a" => b"\0\0\0\x20ftypM4A ",
        "mp4" => b"\0\0\0\x18ftypisom",
        _ => b"",
    }
}

/// Writes a file of `size` pattern bytes in `dir`, starting with the signature of its
/// extension's format.
fn write_file(dir: &Path, name: &str, size: u64, seed: u64) -> (PathBuf, Vec<u8>) {
    let mut bytes = pattern(size, seed);
    let magic = magic_of(name);
    if bytes.len() >= magic.len() {
        bytes[..magic.len()].copy_from_slice(magic);
    }
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// A progress recorder for a transfer.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(u64, u64)>>>);

impl Recorder {
    fn progress(&self) -> ProgressFn {
        let seen = Arc::clone(&self.0);
        Arc::new(move |done, total| seen.lock().unwrap().push((done, total)))
    }

    fn reports(&self) -> Vec<(u64, u64)> {
        self.0.lock().unwrap().clone()
    }

    /// Asserts the reports rise strictly and end at `total` of `total`.
    fn assert_monotone_to(&self, total: u64) {
        let reports = self.reports();
        assert!(!reports.is_empty(), "no progress reported");
        for pair in reports.windows(2) {
            assert!(pair[0].0 < pair[1].0, "progress went from {pair:?}");
        }
        assert!(reports.iter().all(|&(_, t)| t == total), "{reports:?}");
        assert_eq!(reports.last().copied(), Some((total, total)));
    }
}

fn upload_options(token: &str, content_type: &str, resume_key: &str) -> String {
    json!({
        "token": token,
        "content_type": content_type,
        "resume_key": resume_key,
        "file_name": "test.bin",
    })
    .to_string()
}

/// Uploads `path` with the plugin: the `{uuid, size}` answer.
async fn upload(
    plugin: &UploaderPlugin,
    path: &Path,
    ticket: &pb::FileUploadTicketResp,
    content_type: &str,
    resume_key: &str,
    recorder: &Recorder,
) -> Result<(String, u64), PluginError> {
    let answer = plugin
        .upload(
            plugin.new_task_id(),
            path.to_str().unwrap(),
            &ticket.base_url,
            &upload_options(&ticket.token, content_type, resume_key),
            recorder.progress(),
        )
        .await?;
    let answer: Value = serde_json::from_str(&answer).unwrap();
    Ok((
        answer["uuid"].as_str().unwrap().to_owned(),
        answer["size"].as_u64().unwrap(),
    ))
}

async fn download(
    plugin: &UploaderPlugin,
    path: &Path,
    url: &str,
    expected_size: u64,
    recorder: &Recorder,
) -> Result<u64, PluginError> {
    let answer = plugin
        .download(
            plugin.new_task_id(),
            path.to_str().unwrap(),
            url,
            &json!({"expected_size": expected_size}).to_string(),
            recorder.progress(),
        )
        .await?;
    let answer: Value = serde_json::from_str(&answer).unwrap();
    Ok(answer["size"].as_u64().unwrap())
}

/// A message to `receiver` with a file elem of `uuid`.
fn file_message(receiver: &str, msg_id: &str, uuid: &str) -> pb::Message {
    pb::Message {
        msg_id: msg_id.into(),
        conv_type: pb::ConvType::C2c as i32,
        receiver: receiver.into(),
        elems: vec![pb::Elem {
            content: Some(pb::elem::Content::File(pb::FileElem {
                uuid: uuid.into(),
                file_name: "test.bin".into(),
                file_size: 1,
                ..Default::default()
            })),
        }],
        ..Default::default()
    }
}

async fn send(client: &mut WireClient, msg: pb::Message) {
    client
        .call(ReqKind::SendMessage(pb::SendMessageReq {
            message: Some(msg),
        }))
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
}

/// An HTTP answer: status and JSON body.
async fn http_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// `POST /files/uploads` as a raw client.
async fn begin(
    http: &reqwest::Client,
    ticket: &pb::FileUploadTicketResp,
    body: Value,
) -> (u16, Value) {
    http_json(
        http.post(format!("{}/files/uploads", ticket.base_url))
            .bearer_auth(&ticket.token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// `PUT /files/uploads/{id}?offset=N` as a raw client.
async fn put(
    http: &reqwest::Client,
    ticket: &pb::FileUploadTicketResp,
    upload_id: &str,
    offset: u64,
    bytes: Vec<u8>,
) -> (u16, Value) {
    http_json(
        http.put(format!(
            "{}/files/uploads/{upload_id}?offset={offset}",
            ticket.base_url
        ))
        .bearer_auth(&ticket.token)
        .body(bytes)
        .send()
        .await
        .unwrap(),
    )
    .await
}

#[tokio::test]
async fn an_uploaded_file_downloads_byte_for_byte_with_monotone_progress() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = uploader(json!({"chunk_bytes": MB}));
    let mut alice = login(&server, "alice").await;
    let t = ticket(&mut alice).await;
    assert_eq!(t.base_url, server.http_url());
    let (path, bytes) = write_file(dir.path(), "photo.jpg", 5 * MB + 123, 1);
    let up = Recorder::default();
    let (uuid, size) = upload(&plugin, &path, &t, "image/jpeg", "m1/0/origin", &up)
        .await
        .unwrap();
    assert_eq!(size, 5 * MB + 123);
    assert_eq!(uuid.len(), 32);
    up.assert_monotone_to(size);
    // 0, then one report per 1 MiB chunk.
    assert_eq!(up.reports().len(), 7, "{:?}", up.reports());

    // The same resume key again answers the same file without sending it again.
    let again = Recorder::default();
    let (same, _) = upload(&plugin, &path, &t, "image/jpeg", "m1/0/origin", &again)
        .await
        .unwrap();
    assert_eq!(same, uuid);
    assert_eq!(again.reports(), vec![(size, size)]);

    let url = download_url(&mut alice, &uuid).await.unwrap();
    assert_eq!(url.size, size);
    assert_eq!(url.content_type, "image/jpeg");
    assert!(
        url.url
            .starts_with(&format!("{}/files/{uuid}?exp=", t.base_url))
    );
    let target = dir.path().join("downloaded.jpg");
    let down = Recorder::default();
    assert_eq!(
        download(&plugin, &target, &url.url, size, &down)
            .await
            .unwrap(),
        size
    );
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
    down.assert_monotone_to(size);

    // A partial local file is resumed with a range request.
    let partial = dir.path().join("partial.jpg");
    std::fs::write(&partial, &bytes[..3 * MB as usize]).unwrap();
    let resumed = Recorder::default();
    download(&plugin, &partial, &url.url, size, &resumed)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&partial).unwrap(), bytes);
    assert_eq!(resumed.reports().first().copied(), Some((3 * MB, size)));

    // Ranges over plain HTTP.
    let http = reqwest::Client::new();
    let r = http
        .get(&url.url)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 100-199/{size}")
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[100..200]);
    let r = http
        .get(&url.url)
        .header("Range", format!("bytes={size}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 416);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes */{size}")
    );
    // A download whose size is not the expected one fails and leaves no file behind.
    let wrong = dir.path().join("wrong.jpg");
    let e = download(&plugin, &wrong, &url.url, size + 1, &Recorder::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("expected"), "{e}");
    assert!(!wrong.exists());
}

/// A TCP forwarder that cuts the first connection after `budget` bytes went upstream (in the
/// middle of a request body); later connections are forwarded whole.
async fn cutting_proxy(upstream: u16, budget: u64) -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&accepted);
    let cut_done = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let cut_first = !cut_done.swap(true, Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                if !cut_first {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    return;
                }
                let (mut client_r, mut client_w) = client.split();
                let (mut server_r, mut server_w) = server.split();
                let up = async {
                    let mut sent = 0u64;
                    let mut buf = vec![0u8; 64 * 1024];
                    while sent < budget {
                        let want = buf.len().min((budget - sent) as usize);
                        let Ok(n) = client_r.read(&mut buf[..want]).await else {
                            return;
                        };
                        if n == 0 || server_w.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                        sent += n as u64;
                    }
                };
                let down = tokio::io::copy(&mut server_r, &mut client_w);
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                }
                // Dropping both sockets here cuts the connection mid-body.
            });
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn an_upload_cut_mid_body_resumes_from_what_the_server_kept() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = uploader(json!({"chunk_bytes": 2 * MB, "retry_delay_ms": 20}));
    let mut alice = login(&server, "alice").await;
    let mut t = ticket(&mut alice).await;
    let http_port: u16 = t.base_url.rsplit(':').next().unwrap().parse().unwrap();
    // Cut inside the first chunk's body.
    let (proxy_port, accepted) = cutting_proxy(http_port, MB + 4321).await;
    t.base_url = format!("http://127.0.0.1:{proxy_port}");
    let (path, bytes) = write_file(dir.path(), "clip.mp4", 6 * MB, 2);
    let up = Recorder::default();
    let (uuid, size) = upload(&plugin, &path, &t, "video/mp4", "m2/0/video", &up)
        .await
        .unwrap();
    assert_eq!(size, 6 * MB);
    up.assert_monotone_to(size);
    assert!(
        accepted.load(Ordering::SeqCst) >= 2,
        "the plugin reconnected"
    );
    // The server kept the part of the cut body that arrived, and the upload went on from
    // there: a report that is not on a chunk boundary.
    let reports = up.reports();
    assert!(
        reports
            .iter()
            .any(|&(done, _)| done > 0 && done < size && done % (2 * MB) != 0),
        "no resume from the middle of a chunk: {reports:?}"
    );
    let url = download_url(&mut alice, &uuid).await.unwrap();
    let target = dir.path().join("clip-down.mp4");
    download(&plugin, &target, &url.url, size, &Recorder::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
}

#[tokio::test]
async fn an_upload_resumes_after_a_server_restart() {
    let mut server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = uploader(json!({"chunk_bytes": MB}));
    let (path, bytes) = write_file(dir.path(), "voice.m4a", 3 * MB + 7, 3);
    let http = reqwest::Client::new();
    let t = {
        let mut alice = login(&server, "alice").await;
        ticket(&mut alice).await
    };
    let declared = json!({
        "resume_key": "m3/0/sound", "size": bytes.len(), "content_type": "audio/mp4",
    });
    let (status, session) = begin(&http, &t, declared.clone()).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["offset"], 0);
    let upload_id = session["upload_id"].as_str().unwrap().to_owned();
    let half = bytes.len() / 2;
    let (status, answer) = put(&http, &t, &upload_id, 0, bytes[..half].to_vec()).await;
    assert_eq!(
        (status, answer["offset"].as_u64()),
        (200, Some(half as u64))
    );

    server.restart().await;
    let mut alice = login(&server, "alice").await;
    let fresh = ticket(&mut alice).await;
    // The old token is still good (the store's secret survives a restart), and the session is
    // where it was.
    let moved = pb::FileUploadTicketResp {
        base_url: fresh.base_url.clone(),
        ..t.clone()
    };
    let (status, session) = begin(&http, &moved, declared).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["upload_id"], upload_id.as_str());
    assert_eq!(session["offset"], half as u64);
    let up = Recorder::default();
    let (uuid, size) = upload(&plugin, &path, &fresh, "audio/mp4", "m3/0/sound", &up)
        .await
        .unwrap();
    assert_eq!(size, bytes.len() as u64);
    up.assert_monotone_to(size);
    assert_eq!(
        up.reports()[0],
        (half as u64, size),
        "resumed, not restarted"
    );
    let url = download_url(&mut alice, &uuid).await.unwrap();
    let target = dir.path().join("voice-down.m4a");
    download(&plugin, &target, &url.url, size, &Recorder::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_upload_stops_and_a_later_one_resumes_it() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = uploader(json!({"chunk_bytes": 256 * 1024}));
    let mut alice = login(&server, "alice").await;
    let t = ticket(&mut alice).await;
    let (path, bytes) = write_file(dir.path(), "doc.pdf", 4 * MB, 4);
    let task = plugin.new_task_id();
    // Cancel from the progress callback once 1 MiB is in: deterministic, whatever the speed.
    let runtime = tokio::runtime::Handle::current();
    let canceller = plugin.clone();
    let cancelled_at = Arc::new(Mutex::new(None));
    let at = Arc::clone(&cancelled_at);
    let progress: ProgressFn = Arc::new(move |done, _| {
        let mut at = at.lock().unwrap();
        if done >= MB && at.is_none() {
            *at = Some(done);
            runtime.block_on(canceller.cancel(task)).unwrap();
        }
    });
    let e = plugin
        .upload(
            task,
            path.to_str().unwrap(),
            &t.base_url,
            &upload_options(&t.token, "application/pdf", "m4/0/file"),
            progress,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, PluginError::CallFailed { status, .. } if status == CHIME_STATUS_CANCELLED),
        "{e}"
    );
    let stopped_at = cancelled_at.lock().unwrap().unwrap();
    assert!(stopped_at < 4 * MB);
    // Not completed: nothing to download yet, and the session holds what was sent.
    let http = reqwest::Client::new();
    let (_, session) = begin(
        &http,
        &t,
        json!({"resume_key": "m4/0/file", "size": 4 * MB, "content_type": "application/pdf"}),
    )
    .await;
    assert_eq!(session["offset"], stopped_at);
    assert!(session.get("uuid").is_none());
    let up = Recorder::default();
    let (uuid, size) = upload(&plugin, &path, &t, "application/pdf", "m4/0/file", &up)
        .await
        .unwrap();
    assert_eq!(up.reports()[0], (stopped_at, size));
    up.assert_monotone_to(size);
    let url = download_url(&mut alice, &uuid).await.unwrap();
    let target = dir.path().join("doc-down.pdf");
    download(&plugin, &target, &url.url, size, &Recorder::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
}

#[tokio::test]
async fn download_urls_go_to_the_owner_and_members_of_conversations_it_was_sent_to() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = uploader(json!({}));
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;
    let mut carol = login(&server, "carol").await;
    let mut dave = login(&server, "dave").await;
    let mut erin = login(&server, "erin").await;
    let t = ticket(&mut alice).await;
    let (path, _) = write_file(dir.path(), "a.png", 1000, 5);
    let (uuid, _) = upload(
        &plugin,
        &path,
        &t,
        "image/png",
        "g1/0/origin",
        &Recorder::default(),
    )
    .await
    .unwrap();
    let (path2, _) = write_file(dir.path(), "b.png", 2000, 6);
    let (group_file, _) = upload(
        &plugin,
        &path2,
        &t,
        "image/png",
        "g2/0/origin",
        &Recorder::default(),
    )
    .await
    .unwrap();

    // Only the owner before any message.
    assert_eq!(
        download_url(&mut alice, &uuid).await.map(|r| r.size),
        Ok(1000)
    );
    assert_eq!(
        download_url(&mut bob, &uuid).await.map(|r| r.size),
        Err(10007)
    );
    // Unknown and malformed uuids.
    assert_eq!(
        download_url(&mut alice, &"0".repeat(32))
            .await
            .map(|r| r.size),
        Err(7004)
    );
    assert_eq!(
        download_url(&mut alice, "../x").await.map(|r| r.size),
        Err(7004)
    );

    // alice sends it to bob: bob may read it, carol may not.
    send(&mut alice, file_message("bob", "f1", &uuid)).await;
    assert_eq!(
        download_url(&mut bob, &uuid).await.map(|r| r.size),
        Ok(1000)
    );
    assert_eq!(
        download_url(&mut carol, &uuid).await.map(|r| r.size),
        Err(10007)
    );
    // carol cannot grant herself (or dave) access by naming the uuid in her own message.
    send(&mut carol, file_message("dave", "f2", &uuid)).await;
    assert_eq!(
        download_url(&mut carol, &uuid).await.map(|r| r.size),
        Err(10007)
    );
    assert_eq!(
        download_url(&mut dave, &uuid).await.map(|r| r.size),
        Err(10007)
    );
    // bob forwards it to carol: now carol may.
    send(&mut bob, file_message("carol", "f3", &uuid)).await;
    let url = download_url(&mut carol, &uuid).await.unwrap();
    let target = dir.path().join("carol.png");
    assert_eq!(
        download(&plugin, &target, &url.url, 1000, &Recorder::default())
            .await
            .unwrap(),
        1000
    );

    // A group: its members may read what is sent there; others may not.
    let created = alice
        .call(ReqKind::CreateGroup(pb::CreateGroupReq {
            group_type: "Work".into(),
            name: "files".into(),
            member_list: vec![pb::GroupMember {
                user_id: "dave".into(),
                ..Default::default()
            }],
            ..Default::default()
        }))
        .await
        .unwrap();
    let Some(RespKind::CreateGroup(pb::CreateGroupResp { group_id })) = created.kind else {
        panic!("unexpected answer {created:?}");
    };
    let mut in_group = file_message("", "f4", &group_file);
    in_group.conv_type = pb::ConvType::Group as i32;
    in_group.receiver.clear();
    in_group.group_id = group_id;
    send(&mut alice, in_group).await;
    assert_eq!(
        download_url(&mut dave, &group_file).await.map(|r| r.size),
        Ok(2000)
    );
    assert_eq!(
        download_url(&mut erin, &group_file).await.map(|r| r.size),
        Err(10007)
    );
    assert_eq!(
        download_url(&mut bob, &group_file).await.map(|r| r.size),
        Err(10007)
    );
}

#[tokio::test]
async fn tampered_and_expired_signatures_and_tokens_are_refused() {
    let server = TestServer::start_with_config("[files]\nurl_ttl_secs = 120\n").await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = uploader(json!({}));
    let mut alice = login(&server, "alice").await;
    let t = ticket(&mut alice).await;
    let (path, bytes) = write_file(dir.path(), "s.png", 4096, 7);
    let (uuid, _) = upload(
        &plugin,
        &path,
        &t,
        "image/png",
        "s/0/origin",
        &Recorder::default(),
    )
    .await
    .unwrap();
    let before = now_ms();
    let url = download_url(&mut alice, &uuid).await.unwrap();
    assert!(
        (before + 119_000..=now_ms() + 120_000).contains(&url.expires_at_ms),
        "url_ttl_secs = 120: {}",
        url.expires_at_ms - before
    );
    let http = reqwest::Client::new();
    let r = http.get(&url.url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[..]);
    let (base, query) = url.url.split_once('?').unwrap();
    let sig = query.split("&sig=").nth(1).unwrap();
    let exp: i64 = query
        .strip_prefix("exp=")
        .and_then(|q| q.split('&').next())
        .unwrap()
        .parse()
        .unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    for (what, bad) in [
        (
            "another signature",
            format!("{base}?exp={exp}&sig={flipped}{}", &sig[1..]),
        ),
        (
            "a later expiry",
            format!("{base}?exp={}&sig={sig}", exp + 3_600_000),
        ),
        ("no signature", base.to_owned()),
        (
            "another file",
            format!("{}/files/{}?{query}", server.http_url(), "1".repeat(32)),
        ),
    ] {
        let (status, body) = http_json(http.get(&bad).send().await.unwrap()).await;
        assert_eq!(
            (status, body["code"].as_i64()),
            (403, Some(10007)),
            "{what}: {body}"
        );
    }
    // Signed with the store's own secret (read from its data dir): valid until it expires.
    let secret = std::fs::read(server.data_dir().join("files/secret")).unwrap();
    let signer = Signer::new(secret);
    let signed = |exp: i64| format!("{base}?{}", signer.download_query(&uuid, exp));
    let r = http.get(signed(now_ms() + 60_000)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (status, body) = http_json(http.get(signed(now_ms() - 1)).send().await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (403, Some(10007)),
        "{body}"
    );
    assert!(body["desc"].as_str().unwrap().contains("expired"), "{body}");
    // Upload tokens: expired, of an app the server does not serve, forged, missing.
    let declared = json!({"resume_key": "k", "size": 1, "content_type": "image/png"});
    let with_token = |token: String| pb::FileUploadTicketResp { token, ..t.clone() };
    let expired = with_token(signer.upload_token(APP_ID, "alice", now_ms() - 1));
    let (status, body) = begin(&http, &expired, declared.clone()).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (401, Some(70001)),
        "{body}"
    );
    let other_app = with_token(signer.upload_token(42, "alice", now_ms() + 60_000));
    let (status, body) = begin(&http, &other_app, declared.clone()).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (401, Some(70020)),
        "{body}"
    );
    let forged = with_token(t.token.replace("v1.", "v1.9"));
    let (status, body) = begin(&http, &forged, declared.clone()).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (401, Some(70003)),
        "{body}"
    );
    let r = http
        .post(format!("{}/files/uploads", t.base_url))
        .json(&declared)
        .send()
        .await
        .unwrap();
    let (status, body) = http_json(r).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (401, Some(70002)),
        "{body}"
    );
}

#[tokio::test]
async fn sizes_and_content_types_are_checked() {
    let server =
        TestServer::start_with_config("[files]\nmax_image_bytes = 3000\nmax_file_bytes = 5000\n")
            .await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = uploader(json!({}));
    let mut alice = login(&server, "alice").await;
    let t = ticket(&mut alice).await;
    let http = reqwest::Client::new();
    let declared = |size: u64, content_type: &str| json!({"resume_key": format!("k{size}{content_type}"), "size": size, "content_type": content_type});
    for (size, content_type, status, code) in [
        (3000, "image/png", 200, None),
        (3001, "image/png", 413, Some(7005)),
        (3001, "audio/aac", 413, Some(7005)),
        (5000, "video/mp4", 200, None),
        (5001, "video/mp4", 413, Some(7005)),
        (5001, "application/zip", 413, Some(7005)),
        (0, "image/png", 400, Some(7006)),
        (10, "model/gltf", 400, Some(90002)),
        (10, "png", 400, Some(90002)),
    ] {
        let (got, body) = begin(&http, &t, declared(size, content_type)).await;
        assert_eq!(
            (got, body["code"].as_i64()),
            (status, code),
            "{size} {content_type}: {body}"
        );
    }
    let (status, body) = begin(&http, &t, json!({"size": 3})).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (400, Some(90002)),
        "{body}"
    );

    // The declared size is held against the bytes: more is refused, a wrong offset is told
    // the right one.
    let (_, session) = begin(&http, &t, declared(100, "text/plain")).await;
    let id = session["upload_id"].as_str().unwrap().to_owned();
    let (status, body) = put(&http, &t, &id, 0, vec![b'x'; 101]).await;
    assert_eq!((status, body["code"].as_i64()), (413, Some(7005)), "{body}");
    let (status, body) = put(&http, &t, &id, 0, vec![b'x'; 60]).await;
    assert_eq!((status, body["offset"].as_u64()), (200, Some(60)), "{body}");
    let (status, body) = put(&http, &t, &id, 10, vec![b'x'; 40]).await;
    assert_eq!(
        (status, body["code"].as_i64(), body["offset"].as_u64()),
        (409, Some(90002), Some(60)),
        "{body}"
    );
    let (status, body) = put(&http, &t, &id, 60, vec![b'y'; 40]).await;
    assert_eq!(
        (status, body["offset"].as_u64()),
        (200, Some(100)),
        "{body}"
    );
    let uuid = body["uuid"].as_str().unwrap().to_owned();
    let url = download_url(&mut alice, &uuid).await.unwrap();
    let got = http.get(&url.url).send().await.unwrap();
    assert_eq!(got.headers()["content-type"], "text/plain");
    let mut expected = vec![b'x'; 60];
    expected.extend([b'y'; 40]);
    assert_eq!(got.bytes().await.unwrap().as_ref(), &expected[..]);
    // Someone else's upload reads as missing.
    let mut bob = login(&server, "bob").await;
    let bob_ticket = ticket(&mut bob).await;
    let (status, body) = put(&http, &bob_ticket, &id, 100, vec![b'z']).await;
    assert_eq!((status, body["code"].as_i64()), (404, Some(7004)), "{body}");

    // Through the plugin: the store's refusal comes back as its JSON answer.
    let (big, _) = write_file(dir.path(), "big.png", 3001, 8);
    let e = upload(&plugin, &big, &t, "image/png", "big", &Recorder::default())
        .await
        .unwrap_err();
    let PluginError::CallFailed { message, .. } = &e else {
        panic!("{e}");
    };
    let refusal: Value = serde_json::from_str(message).unwrap();
    assert_eq!(
        (refusal["code"].as_i64(), refusal["http_status"].as_i64()),
        (Some(7005), Some(413)),
        "{refusal}"
    );
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    assert!(
        upload(
            &plugin,
            &empty,
            &t,
            "image/png",
            "empty",
            &Recorder::default()
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn retention_deletes_expired_files() {
    // 0.00002 days = 1.728 s.
    let server = TestServer::start_with_config(
        "[files]\nretention_days = 0.00002\nsweep_interval_ms = 200\n",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = uploader(json!({}));
    let mut alice = login(&server, "alice").await;
    let t = ticket(&mut alice).await;
    let (path, _) = write_file(dir.path(), "r.png", 5000, 9);
    let (uuid, _) = upload(
        &plugin,
        &path,
        &t,
        "image/png",
        "r/0/origin",
        &Recorder::default(),
    )
    .await
    .unwrap();
    let object = server
        .data_dir()
        .join("files/objects")
        .join(&uuid[..2])
        .join(&uuid);
    assert!(object.is_file(), "stored at {}", object.display());
    let url = download_url(&mut alice, &uuid).await.unwrap();
    let http = reqwest::Client::new();
    eventually("the file expires", || {
        let object = object.clone();
        async move { !object.exists() }
    })
    .await;
    let (status, body) = http_json(http.get(&url.url).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_i64()), (404, Some(7004)), "{body}");
    // The record went in the same sweep's commit.
    let mut gone = false;
    let deadline = tokio::time::Instant::now() + chime_tests::EVENTUALLY_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if download_url(&mut alice, &uuid).await.map(|r| r.size) == Err(7004) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the file's record outlived its bytes");
    // Its upload session no longer answers the gone uuid: the file is uploaded again.
    let (status, session) = begin(
        &http,
        &t,
        json!({"resume_key": "r/0/origin", "size": 5000, "content_type": "image/png"}),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["offset"], 0);
    assert!(session.get("uuid").is_none(), "{session}");
}

#[tokio::test]
async fn content_is_sniffed_and_a_mismatch_stores_nothing() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = login(&server, "alice").await;
    let t = ticket(&mut alice).await;
    let http = reqwest::Client::new();
    let session = |key: &str, size: usize, content_type: &str| json!({"resume_key": key, "size": size, "content_type": content_type});
    let refused = |status: u16, body: &Value, offset: u64| {
        assert_eq!(
            (status, body["code"].as_i64(), body["offset"].as_u64()),
            (415, Some(90002), Some(offset)),
            "{body}"
        );
    };

    // A JPEG declared as PNG, and text declared as video: refused, nothing kept.
    let jpeg = pattern_with(b"\xFF\xD8\xFF\xE0", 500);
    let (_, s) = begin(&http, &t, session("s1", 500, "image/png")).await;
    let id = s["upload_id"].as_str().unwrap().to_owned();
    let (status, body) = put(&http, &t, &id, 0, jpeg.clone()).await;
    refused(status, &body, 0);
    assert!(
        body["desc"].as_str().unwrap().contains("image/jpeg"),
        "{body}"
    );
    let (_, again) = begin(&http, &t, session("s1", 500, "image/png")).await;
    assert_eq!(again["offset"], 0);
    let text = b"<html><script>alert(1)</script></html>".repeat(10);
    let (_, s) = begin(&http, &t, session("s2", text.len(), "video/mp4")).await;
    let id = s["upload_id"].as_str().unwrap().to_owned();
    let (status, body) = put(&http, &t, &id, 0, text.clone()).await;
    refused(status, &body, 0);
    // The same bytes as a file (application/*) are fine.
    let (_, s) = begin(
        &http,
        &t,
        session("s3", text.len(), "application/octet-stream"),
    )
    .await;
    let id = s["upload_id"].as_str().unwrap().to_owned();
    let (status, body) = put(&http, &t, &id, 0, text.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["uuid"].is_string(), "{body}");

    // The first bytes split over two PUTs are checked when they are all in.
    let png = pattern_with(b"\x89PNG\r\n\x1A\n", 400);
    let (_, s) = begin(&http, &t, session("s4", 400, "image/png")).await;
    let id = s["upload_id"].as_str().unwrap().to_owned();
    let (status, body) = put(&http, &t, &id, 0, png[..5].to_vec()).await;
    assert_eq!((status, body["offset"].as_u64()), (200, Some(5)), "{body}");
    let (status, body) = put(&http, &t, &id, 5, png[5..].to_vec()).await;
    assert_eq!(
        (status, body["offset"].as_u64()),
        (200, Some(400)),
        "{body}"
    );
    let uuid = body["uuid"].as_str().unwrap().to_owned();
    let url = download_url(&mut alice, &uuid).await.unwrap();
    let got = http.get(&url.url).send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), &png[..]);
    let (_, s) = begin(&http, &t, session("s5", 400, "image/png")).await;
    let id = s["upload_id"].as_str().unwrap().to_owned();
    let (status, _) = put(&http, &t, &id, 0, jpeg[..3].to_vec()).await;
    assert_eq!(status, 200);
    let (status, body) = put(&http, &t, &id, 3, jpeg[3..400].to_vec()).await;
    refused(status, &body, 3);

    // Through the plugin: the refusal comes back as the store's answer.
    let plugin = uploader(json!({}));
    let fake = dir.path().join("fake.png");
    std::fs::write(&fake, &text).unwrap();
    let e = upload(&plugin, &fake, &t, "image/png", "s6", &Recorder::default())
        .await
        .unwrap_err();
    let PluginError::CallFailed { message, .. } = &e else {
        panic!("{e}");
    };
    let refusal: Value = serde_json::from_str(message).unwrap();
    assert_eq!(
        (refusal["code"].as_i64(), refusal["http_status"].as_i64()),
        (Some(90002), Some(415)),
        "{refusal}"
    );
}

/// `size` pattern bytes starting with `magic`.
fn pattern_with(magic: &[u8], size: usize) -> Vec<u8> {
    let mut bytes = pattern(size as u64, 77);
    bytes[..magic.len()].copy_from_slice(magic);
    bytes
}
