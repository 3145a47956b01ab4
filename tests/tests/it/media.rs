//! Rich media messages end to end (issue 6, engine side): real server with its file store, real
//! engines with the real uploader plugin (`plugins/upload`) loaded by path. Every type is sent,
//! received, downloaded and compared byte for byte; image sizes are checked for a JPEG whose
//! EXIF orientation rotates it; progress, the seed's checks, the append rules, cancel, resume
//! after restarts of the server and of the engine, and the download cache by uuid.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chime_tests::{TestClient, TestServer, plugin_library};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// The uploader plugin with `chunk_bytes` per PUT, and fast reconnects.
fn with_uploader(chunk_bytes: u64) -> Value {
    json!({
        "plugins": [{
            "path": plugin_library("chime-upload-plugin", "chime_upload_plugin"),
            "config": {"chunk_bytes": chunk_bytes},
        }],
        "reconnect_min_ms": 50,
        "reconnect_max_ms": 500,
    })
}

async fn pair(server: &TestServer, chunk_bytes: u64) -> (TestClient, TestClient) {
    let alice = TestClient::with_config(server, with_uploader(chunk_bytes)).await;
    let bob = TestClient::with_config(server, with_uploader(chunk_bytes)).await;
    alice.login("alice").await;
    bob.login("bob").await;
    (alice, bob)
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Deterministic non-trivial bytes.
fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| {
            (i as u64)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(u64::from(seed)) as u8
        })
        .collect()
}

/// `data` starting with a format's signature (the file store checks the first bytes of sound
/// and video uploads).
fn with_magic(magic: &[u8], mut data: Vec<u8>) -> Vec<u8> {
    data[..magic.len()].copy_from_slice(magic);
    data
}

/// A `w`×`h` JPEG whose EXIF orientation (6: rotate 90° clockwise) makes it show as `h`×`w`.
fn rotated_jpeg(path: &Path, w: u32, h: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
        .encode_image(&img)
        .expect("jpeg encoding");
    // APP1 "Exif": a big-endian TIFF header and one IFD entry, Orientation (0x0112) = 6.
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1, 0x00, 0x06, 0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    let mut app1 = vec![0xff, 0xe1];
    app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\x00\x00");
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    std::fs::write(path, out).expect("writing the jpeg");
}

fn png(path: &Path, w: u32, h: u32) {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 3 % 256) as u8, (y * 5 % 256) as u8, 7])
    })
    .save(path)
    .expect("writing the png");
}

/// The progress values alice reported for `msg_id`.
fn progress_of(client: &TestClient, msg_id: &Value) -> Vec<u64> {
    client
        .events("on_message_upload_progress")
        .iter()
        .filter(|e| &e["msg_id"] == msg_id)
        .map(|e| e["progress"].as_u64().expect("progress is a number"))
        .collect()
}

/// The progress values of `msg_id` once its 100 was delivered (events are delivered on the
/// engine's event thread, a moment after they are emitted), checked: strictly rising to 100.
async fn upload_done(client: &TestClient, msg_id: &Value) -> Vec<u64> {
    // Bounded in time, not in rounds: an upload resumed after a login runs for as long as the
    // loaded machine needs.
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        let p = progress_of(client, msg_id);
        if p.contains(&100) {
            assert_monotone_to_100(&p);
            return p;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "no progress 100 for {msg_id}: {:?}",
        progress_of(client, msg_id)
    );
}

fn assert_monotone_to_100(progress: &[u64]) {
    assert!(!progress.is_empty(), "no upload progress at all");
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress not strictly rising: {progress:?}"
    );
    assert_eq!(progress.last(), Some(&100), "{progress:?}");
}

/// `send_message` on a task of its own (it answers only after the uploads).
fn send_in_background(
    from: &TestClient,
    msg: &Value,
    to: &str,
) -> tokio::task::JoinHandle<Result<Value, chime_engine::ApiError>> {
    let engine = from.engine.clone();
    let params = json!({"message": msg, "receiver": to});
    tokio::spawn(async move { engine.call("send_message", params).await })
}

async fn send_to(from: &TestClient, msg: &Value, to: &str) -> Value {
    from.ok("send_message", json!({"message": msg, "receiver": to}))
        .await
}

/// Waits for the `on_download_progress` event that completes a download (`current_size ==
/// total_size`) and answers it.
async fn download_finished(client: &TestClient) -> Value {
    for _ in 0..10_000 {
        let e = client.expect_event("on_download_progress", WAIT).await;
        if e["current_size"] == e["total_size"] {
            return e;
        }
    }
    panic!("no completed download");
}

async fn download(
    client: &TestClient,
    msg_id: &Value,
    index: u64,
    image_type: Option<&str>,
    to: &Path,
) {
    let mut p = json!({"msg_id": msg_id, "elem_index": index, "path": path_str(to)});
    if let Some(t) = image_type {
        p["image_type"] = json!(t);
    }
    let r = client.ok("download_elem", p).await;
    assert_eq!(r["path"], path_str(to));
}

#[tokio::test]
async fn an_image_goes_out_in_three_sizes_with_exif_orientation_applied() {
    let server = TestServer::start().await;
    let (alice, bob) = pair(&server, 64 * 1024).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("photo.jpg");
    rotated_jpeg(&src, 2000, 1200);
    let created = alice
        .ok(
            "create_image_message",
            json!({"image_path": path_str(&src)}),
        )
        .await;
    assert_eq!(created["status"], "sending");
    let e = &created["elem_list"][0];
    assert_eq!(e["elem_type"], "image");
    assert_eq!(e["path"], path_str(&src.canonicalize().unwrap()));
    let dims: Vec<(Value, Value, Value)> = e["image_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["type"].clone(), i["width"].clone(), i["height"].clone()))
        .collect();
    assert_eq!(
        dims,
        [
            (json!("origin"), json!(1200), json!(2000)),
            (json!("large"), json!(720), json!(1200)),
            (json!("thumb"), json!(198), json!(330)),
        ]
    );
    assert_eq!(e["image_list"][0]["uuid"], "");
    let src_size = std::fs::metadata(&src).unwrap().len();
    assert_eq!(e["image_list"][0]["size"], src_size);

    let sent = send_to(&alice, &created, "bob").await;
    assert_eq!(sent["status"], "send_succ");
    let got = bob.expect_messages(1, WAIT).await;
    upload_done(&alice, &created["msg_id"]).await;
    let m = &got[0];
    assert_eq!(m["msg_id"], created["msg_id"]);
    let list = m["elem_list"][0]["image_list"].as_array().unwrap().clone();
    assert_eq!(list.len(), 3);
    let uuids: Vec<&str> = list.iter().map(|i| i["uuid"].as_str().unwrap()).collect();
    assert!(uuids.iter().all(|u| !u.is_empty()), "{uuids:?}");
    assert_ne!(uuids[0], uuids[1]);
    assert_ne!(uuids[1], uuids[2]);
    // The receiver has no local path; the sender's stored copy keeps the uuids too.
    assert_eq!(m["elem_list"][0]["path"], "");
    assert_eq!(
        sent["elem_list"][0]["image_list"],
        Value::Array(list.clone())
    );

    let out = dir.path().join("got-origin.jpg");
    download(&bob, &m["msg_id"], 0, None, &out).await;
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&src).unwrap());
    for (t, w, h) in [("large", 720, 1200), ("thumb", 198, 330)] {
        let out = dir.path().join(format!("got-{t}.jpg"));
        download(&bob, &m["msg_id"], 0, Some(t), &out).await;
        let size = std::fs::metadata(&out).unwrap().len();
        let info = list.iter().find(|i| i["type"] == t).unwrap();
        assert_eq!(info["size"], size);
        assert_eq!(image::image_dimensions(&out).unwrap(), (w, h), "{t}");
    }
    let last = download_finished(&bob).await;
    assert_eq!(last["msg_id"], m["msg_id"]);
    assert_eq!(last["elem_index"], 0);
    assert_eq!(last["total_size"], src_size);
}

#[tokio::test]
async fn sound_video_and_file_arrive_and_download_byte_for_byte() {
    let server = TestServer::start().await;
    let (alice, bob) = pair(&server, 256 * 1024).await;
    let dir = tempfile::tempdir().unwrap();
    let sound = dir.path().join("voice.m4a");
    std::fs::write(&sound, with_magic(b"\0\0\0\x20ftypM4A ", bytes(300_000, 1))).unwrap();
    let video = dir.path().join("clip.mp4");
    std::fs::write(
        &video,
        with_magic(b"\0\0\0\x18ftypisom", bytes(1_500_000, 2)),
    )
    .unwrap();
    let snapshot = dir.path().join("clip.png");
    png(&snapshot, 320, 180);
    let file = dir.path().join("data.bin");
    std::fs::write(&file, bytes(777_777, 3)).unwrap();

    let s = alice
        .ok(
            "create_sound_message",
            json!({"sound_path": path_str(&sound), "duration": 12}),
        )
        .await;
    let v = alice
        .ok(
            "create_video_message",
            json!({"video_file_path": path_str(&video), "type": "mp4", "duration": 31,
                   "snapshot_path": path_str(&snapshot)}),
        )
        .await;
    let f = alice
        .ok(
            "create_file_message",
            json!({"file_path": path_str(&file), "file_name": "report.bin"}),
        )
        .await;
    for m in [&s, &v, &f] {
        send_to(&alice, m, "bob").await;
    }
    let got = bob.expect_messages(3, WAIT).await;
    for m in [&s, &v, &f] {
        upload_done(&alice, &m["msg_id"]).await;
    }

    let se = &got[0]["elem_list"][0];
    assert_eq!(se["elem_type"], "sound");
    assert_eq!(
        (se["data_size"].clone(), se["duration"].clone()),
        (json!(300_000), json!(12))
    );
    let out = dir.path().join("got.m4a");
    download(&bob, &got[0]["msg_id"], 0, None, &out).await;
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&sound).unwrap());

    let ve = &got[1]["elem_list"][0];
    assert_eq!(ve["elem_type"], "video");
    assert_eq!(ve["video_type"], "mp4");
    assert_eq!(ve["video_size"], 1_500_000);
    assert_eq!(ve["duration"], 31);
    assert_eq!(
        (ve["snapshot_width"].clone(), ve["snapshot_height"].clone()),
        (json!(320), json!(180))
    );
    assert_eq!(
        ve["snapshot_size"],
        std::fs::metadata(&snapshot).unwrap().len()
    );
    let out = dir.path().join("got.mp4");
    download(&bob, &got[1]["msg_id"], 0, None, &out).await;
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&video).unwrap());
    let out = dir.path().join("got-snap.png");
    download(&bob, &got[1]["msg_id"], 0, Some("snapshot"), &out).await;
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&snapshot).unwrap()
    );

    let fe = &got[2]["elem_list"][0];
    assert_eq!(fe["elem_type"], "file");
    assert_eq!(
        (fe["file_name"].clone(), fe["file_size"].clone()),
        (json!("report.bin"), json!(777_777))
    );
    let out = dir.path().join("sub/dir/report.bin");
    download(&bob, &got[2]["msg_id"], 0, None, &out).await;
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&file).unwrap());

    // A wrong image_type for the elem, an index past the end, an elem without a file.
    let nowhere = path_str(&dir.path().join("never"));
    let wrong_type = json!({"msg_id": got[2]["msg_id"], "elem_index": 0, "image_type": "thumb", "path": nowhere});
    assert_eq!(bob.err_code("download_elem", wrong_type).await, 6017);
    let past_end = json!({"msg_id": got[2]["msg_id"], "elem_index": 1, "path": nowhere});
    assert_eq!(bob.err_code("download_elem", past_end).await, 6017);
    assert!(!dir.path().join("never").exists());
    let url = bob
        .ok(
            "get_elem_url",
            json!({"msg_id": got[2]["msg_id"], "elem_index": 0}),
        )
        .await;
    let body = reqwest::get(url["url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.as_ref(), std::fs::read(&file).unwrap().as_slice());
}

#[tokio::test]
async fn location_face_and_appended_elems_arrive_as_sent_without_an_uploader() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    let bob = TestClient::new(&server).await;
    alice.login("alice").await;
    bob.login("bob").await;
    let loc = alice
        .ok(
            "create_location_message",
            json!({"desc": "Shenzhen Bay", "longitude": 113.9447, "latitude": 22.5228}),
        )
        .await;
    let face = alice
        .ok("create_face_message", json!({"index": 7, "data": "smile"}))
        .await;
    let text = alice
        .ok("create_text_message", json!({"text": "look"}))
        .await;
    let appended = alice
        .ok(
            "append_elem",
            json!({"message": text, "elem": {"elem_type": "face", "index": 2, "data_base64": "/wA="}}),
        )
        .await;
    let appended = alice
        .ok(
            "append_elem",
            json!({"message": appended, "elem": {"elem_type": "location", "desc": "here",
                   "longitude": -0.5, "latitude": 51.25}}),
        )
        .await;
    assert_eq!(appended["elem_list"].as_array().unwrap().len(), 3);
    for m in [&loc, &face, &appended] {
        send_to(&alice, m, "bob").await;
    }
    let got = bob.expect_messages(3, WAIT).await;
    assert_eq!(
        got[0]["elem_list"][0],
        json!({"elem_type": "location", "desc": "Shenzhen Bay", "longitude": 113.9447, "latitude": 22.5228})
    );
    assert_eq!(
        got[1]["elem_list"][0],
        json!({"elem_type": "face", "index": 7, "data": "smile"})
    );
    assert_eq!(
        got[2]["elem_list"],
        json!([
            {"elem_type": "text", "text": "look"},
            {"elem_type": "face", "index": 2, "data_base64": "/wA="},
            {"elem_type": "location", "desc": "here", "longitude": -0.5, "latitude": 51.25},
        ])
    );
    // History answers the same (stored forms round-trip).
    let h = bob
        .ok(
            "get_c2c_history_message_list",
            json!({"user_id": "alice", "count": 3}),
        )
        .await;
    let elems: Vec<Value> = h["message_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["elem_list"].clone())
        .collect();
    assert!(elems.contains(&got[2]["elem_list"]), "{elems:?}");
    // Bad locations are refused, created or appended.
    let t = alice.ok("create_text_message", json!({"text": "x"})).await;
    let far = json!({"elem_type": "location", "desc": "", "longitude": 0.0, "latitude": 91.0});
    assert_eq!(
        alice
            .err_code("append_elem", json!({"message": t, "elem": far}))
            .await,
        6017
    );
    let bad = json!({"desc": "", "longitude": 200.0, "latitude": 0.0});
    assert_eq!(alice.err_code("create_location_message", bad).await, 6017);
    assert_eq!(
        alice
            .err_code("create_face_message", json!({"data": "x"}))
            .await,
        6017
    );
}

#[tokio::test]
async fn append_elem_follows_the_seeds_rules() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    alice.login("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.png");
    png(&img, 40, 30);
    let image = alice
        .ok(
            "create_image_message",
            json!({"image_path": path_str(&img)}),
        )
        .await;
    let image_elem = image["elem_list"][0].clone();
    let text = alice
        .ok("create_text_message", json!({"text": "caption"}))
        .await;
    // text + image and image + image: 6016.
    let r = alice
        .call("append_elem", json!({"message": text, "elem": image_elem}))
        .await
        .unwrap_err();
    assert_eq!(r.code, 6016);
    assert!(
        r.desc.contains("only text, custom, face and location"),
        "{}",
        r.desc
    );
    assert_eq!(
        alice
            .err_code("append_elem", json!({"message": image, "elem": image_elem}))
            .await,
        6016
    );
    for t in ["sound", "video", "file"] {
        let code = alice
            .err_code(
                "append_elem",
                json!({"message": image, "elem": {"elem_type": t}}),
            )
            .await;
        assert_eq!(code, 6016, "{t}");
    }
    // image + text + custom is fine.
    let m = alice
        .ok(
            "append_elem",
            json!({"message": image, "elem": {"elem_type": "text", "text": "caption"}}),
        )
        .await;
    let m = alice
        .ok(
            "append_elem",
            json!({"message": m, "elem": {"elem_type": "custom", "data": "{\"k\":1}"}}),
        )
        .await;
    let kinds: Vec<&str> = m["elem_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["elem_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["image", "text", "custom"]);
    // Unknown (or already sent) messages, missing elem.
    let code = alice
        .err_code(
            "append_elem",
            json!({"message": {"msg_id": "nope"}, "elem": {"elem_type": "text", "text": "x"}}),
        )
        .await;
    assert_eq!(code, 6017);
    assert_eq!(
        alice.err_code("append_elem", json!({"message": m})).await,
        6017
    );
}

#[tokio::test]
async fn files_are_checked_at_creation_before_any_upload() {
    let server = TestServer::start().await;
    let alice = TestClient::with_config(&server, with_uploader(1 << 20)).await;
    alice.login("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let sparse = |n: &str, len: u64| -> PathBuf {
        let path = p(n);
        std::fs::File::create(&path).unwrap().set_len(len).unwrap();
        path
    };
    const MB: u64 = 1024 * 1024;
    std::fs::write(p("empty.png"), b"").unwrap();
    std::fs::write(p("text.png"), b"this is not a picture").unwrap();
    png(&p("snap.png"), 10, 10);
    let cases: Vec<(&str, Value, i32)> = vec![
        (
            "create_image_message",
            json!({"image_path": path_str(&p("missing.png"))}),
            7004,
        ),
        (
            "create_image_message",
            json!({"image_path": path_str(&p("empty.png"))}),
            7006,
        ),
        (
            "create_image_message",
            json!({"image_path": path_str(&sparse("big.png", 28 * MB + 1))}),
            7005,
        ),
        (
            "create_image_message",
            json!({"image_path": path_str(&p("text.png"))}),
            6031,
        ),
        ("create_image_message", json!({}), 6017),
        (
            "create_sound_message",
            json!({"sound_path": path_str(&sparse("big.m4a", 28 * MB + 1)), "duration": 1}),
            7005,
        ),
        (
            "create_sound_message",
            json!({"sound_path": path_str(&p("nope.m4a")), "duration": 1}),
            7004,
        ),
        (
            "create_video_message",
            json!({"video_file_path": path_str(&sparse("big.mp4", 100 * MB + 1)),
            "type": "mp4", "duration": 1, "snapshot_path": path_str(&p("snap.png"))}),
            7005,
        ),
        (
            "create_video_message",
            json!({"video_file_path": path_str(&sparse("ok.mp4", 10)),
            "type": "mp4", "duration": 1, "snapshot_path": path_str(&p("text.png"))}),
            6031,
        ),
        (
            "create_file_message",
            json!({"file_path": path_str(&sparse("big.bin", 100 * MB + 1)), "file_name": "b"}),
            7005,
        ),
        (
            "create_file_message",
            json!({"file_path": path_str(&p("empty.png")), "file_name": "e"}),
            7006,
        ),
        (
            "create_file_message",
            json!({"file_path": path_str(dir.path()), "file_name": "d"}),
            7004,
        ),
    ];
    for (method, params, code) in cases {
        let r = alice.call(method, params.clone()).await;
        assert_eq!(
            r.as_ref().err().map(|e| e.code),
            Some(code),
            "{method}({params}) → {r:?}"
        );
    }
    // At the limits themselves: accepted (a 28 MB sound, a 100 MB file; sparse, never uploaded).
    let ok = alice
        .ok(
            "create_sound_message",
            json!({"sound_path": path_str(&sparse("max.m4a", 28 * MB)), "duration": 1}),
        )
        .await;
    assert_eq!(ok["elem_list"][0]["data_size"], 28 * MB);
    let ok = alice
        .ok(
            "create_file_message",
            json!({"file_path": path_str(&sparse("max.bin", 100 * MB)), "file_name": "m"}),
        )
        .await;
    assert_eq!(ok["elem_list"][0]["file_size"], 100 * MB);
}

#[tokio::test]
async fn a_media_send_without_an_uploader_answers_7013() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    alice.login("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f.txt");
    std::fs::write(&f, b"hello").unwrap();
    let m = alice
        .ok(
            "create_file_message",
            json!({"file_path": path_str(&f), "file_name": "f.txt"}),
        )
        .await;
    let e = alice
        .call("send_message", json!({"message": m, "receiver": "bob"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, 7013);
    assert!(e.desc.contains("uploader plugin"), "{}", e.desc);
    let found = alice
        .ok("find_messages", json!({"msg_ids": [m["msg_id"]]}))
        .await;
    assert_eq!(found["message_list"][0]["status"], "send_fail");
}

#[tokio::test]
async fn cancel_send_message_stops_an_upload() {
    let server = TestServer::start().await;
    let (alice, bob) = pair(&server, 16 * 1024).await;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.bin");
    std::fs::write(&f, bytes(8 * 1024 * 1024, 9)).unwrap();
    let m = alice
        .ok(
            "create_file_message",
            json!({"file_path": path_str(&f), "file_name": "big.bin"}),
        )
        .await;
    let sending = send_in_background(&alice, &m, "bob");
    let first = alice.expect_event("on_message_upload_progress", WAIT).await;
    assert_eq!(first["msg_id"], m["msg_id"]);
    alice
        .ok("cancel_send_message", json!({"msg_id": m["msg_id"]}))
        .await;
    // What was emitted up to the cancel's answer, delivered (not what the delivery thread has
    // passed on by now: under load it lags behind the upload).
    alice.events_delivered().await;
    let seen = progress_of(&alice, &m["msg_id"]);
    let r = tokio::time::timeout(WAIT, sending).await.unwrap().unwrap();
    assert_eq!(r.unwrap_err().code, 8021);
    tokio::time::sleep(Duration::from_millis(800)).await;
    alice.events_delivered().await;
    let after = progress_of(&alice, &m["msg_id"]);
    // At most the chunks in flight when the plugin heard the cancel (16 KiB of 8 MiB each).
    let (last_seen, last) = (seen.last().copied(), after.last().copied());
    assert!(
        last.unwrap_or(0) <= last_seen.unwrap_or(0) + 3,
        "uploading went on: {seen:?} then {after:?}"
    );
    assert!(!after.contains(&100), "{after:?}");
    assert_eq!(bob.event_count("on_recv_new_message"), 0);
    let found = alice
        .ok("find_messages", json!({"msg_ids": [m["msg_id"]]}))
        .await;
    assert_eq!(found["message_list"], json!([]));
}

#[tokio::test]
async fn an_upload_goes_on_across_a_server_restart() {
    let mut server = TestServer::start().await;
    let (alice, bob) = pair(&server, 32 * 1024).await;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("long.bin");
    std::fs::write(&f, bytes(6 * 1024 * 1024, 4)).unwrap();
    let m = alice
        .ok(
            "create_file_message",
            json!({"file_path": path_str(&f), "file_name": "long.bin"}),
        )
        .await;
    let sending = send_in_background(&alice, &m, "bob");
    alice.expect_event("on_message_upload_progress", WAIT).await;
    server.restart().await;
    let r = tokio::time::timeout(WAIT * 2, sending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.unwrap()["status"], "send_succ");
    upload_done(&alice, &m["msg_id"]).await;
    let got = bob.expect_messages(1, WAIT).await;
    let out = dir.path().join("got.bin");
    download(&bob, &got[0]["msg_id"], 0, None, &out).await;
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f).unwrap());
}

#[tokio::test]
async fn an_upload_resumes_after_the_engine_restarts() {
    let server = TestServer::start().await;
    let bob = TestClient::with_config(&server, with_uploader(1 << 20)).await;
    bob.login("bob").await;
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let f = dir.path().join("resume.bin");
    std::fs::write(&f, bytes(6 * 1024 * 1024, 5)).unwrap();
    let msg_id;
    {
        let alice = TestClient::with_data_dir(&server, data.path(), with_uploader(16 * 1024)).await;
        alice.login("alice").await;
        let m = alice
            .ok(
                "create_file_message",
                json!({"file_path": path_str(&f), "file_name": "resume.bin"}),
            )
            .await;
        msg_id = m["msg_id"].clone();
        let sending = send_in_background(&alice, &m, "bob");
        // Stop the engine once part of the file is up.
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < deadline {
            if progress_of(&alice, &msg_id).last().is_some_and(|p| *p >= 3) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let before = progress_of(&alice, &msg_id);
        assert!(before.last().is_some_and(|p| *p < 100), "{before:?}");
        alice.shutdown().await;
        let r = tokio::time::timeout(WAIT, sending).await.unwrap().unwrap();
        assert!(r.is_err(), "{r:?}");
    }
    let alice = TestClient::with_data_dir(&server, data.path(), with_uploader(1 << 20)).await;
    alice.login("alice").await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["msg_id"], msg_id);
    upload_done(&alice, &msg_id).await;
    let out = dir.path().join("got.bin");
    download(&bob, &msg_id, 0, None, &out).await;
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f).unwrap());
    let found = alice
        .ok("find_messages", json!({"msg_ids": [msg_id]}))
        .await;
    assert_eq!(found["message_list"][0]["status"], "send_succ");
}

#[tokio::test]
async fn a_second_download_of_a_uuid_comes_from_the_cache() {
    let mut server = TestServer::start().await;
    let (alice, bob) = pair(&server, 1 << 20).await;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pic.png");
    png(&f, 64, 48);
    let m = alice
        .ok("create_image_message", json!({"image_path": path_str(&f)}))
        .await;
    // Small image: origin, large and thumb are one file with one uuid.
    let list = m["elem_list"][0]["image_list"].clone();
    assert_eq!(list[1]["width"], 64);
    send_to(&alice, &m, "bob").await;
    let got = bob.expect_messages(1, WAIT).await;
    let list = got[0]["elem_list"][0]["image_list"].clone();
    assert_eq!(list[0]["uuid"], list[2]["uuid"]);
    let first = dir.path().join("first.png");
    download(&bob, &got[0]["msg_id"], 0, None, &first).await;
    let size = std::fs::metadata(&f).unwrap().len();
    assert_eq!(download_finished(&bob).await["total_size"], size);
    // No server at all: the thumb (same uuid) comes from the cache, with one final event.
    server.kill().await;
    let second = dir.path().join("second.png");
    download(&bob, &got[0]["msg_id"], 0, Some("thumb"), &second).await;
    assert_eq!(std::fs::read(&second).unwrap(), std::fs::read(&f).unwrap());
    let e = bob.expect_event("on_download_progress", WAIT).await;
    assert_eq!(
        (e["current_size"].clone(), e["total_size"].clone()),
        (json!(size), json!(size))
    );
    let more = bob
        .next_event("on_download_progress", Duration::from_millis(300))
        .await;
    assert_eq!(more, None);
}

#[tokio::test]
async fn group_members_download_a_group_image_and_a_forward_carries_it_on() {
    let server = TestServer::start().await;
    let (alice, bob) = pair(&server, 1 << 20).await;
    let carol = TestClient::with_config(&server, with_uploader(1 << 20)).await;
    carol.login("carol").await;
    alice
        .ok(
            "create_group",
            json!({ "group_type": "Public", "group_id": "pics", "group_name": "Pics" }),
        )
        .await;
    bob.ok("join_group", json!({ "group_id": "pics", "message": "" }))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("team.png");
    png(&src, 900, 400);
    let m = alice
        .ok(
            "create_image_message",
            json!({"image_path": path_str(&src)}),
        )
        .await;
    alice
        .ok("send_message", json!({"message": m, "group_id": "pics"}))
        .await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["group_id"], "pics");
    let dims: Vec<(Value, Value)> = got[0]["elem_list"][0]["image_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["width"].clone(), i["height"].clone()))
        .collect();
    // Shorter side 400: the large size is the original; the thumb is 198 high.
    assert_eq!(
        dims,
        [
            (json!(900), json!(400)),
            (json!(900), json!(400)),
            (json!(446), json!(198))
        ]
    );
    let out = dir.path().join("group.png");
    download(&bob, &got[0]["msg_id"], 0, None, &out).await;
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&src).unwrap());

    // Bob forwards it to carol, who was never in the group: the forward grants her the file.
    let fwd = bob
        .ok(
            "create_forward_message",
            json!({"msg_id": got[0]["msg_id"]}),
        )
        .await;
    bob.ok("send_message", json!({"message": fwd, "receiver": "carol"}))
        .await;
    let got = carol.expect_messages(1, WAIT).await;
    let thumb = dir.path().join("thumb.jpg");
    download(&carol, &got[0]["msg_id"], 0, Some("thumb"), &thumb).await;
    assert_eq!(image::image_dimensions(&thumb).unwrap(), (446, 198));
}

/// The bytes the server's file store holds of the uploads in progress (`<id>.part` files).
fn server_part_bytes(server: &TestServer) -> u64 {
    let dir = server.data_dir().join("files").join("uploads");
    std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn logout_stops_an_upload_and_the_next_login_resumes_it() {
    let server = TestServer::start().await;
    let (alice, bob) = pair(&server, 16 * 1024).await;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.bin");
    let size = 8 * 1024 * 1024;
    std::fs::write(&f, bytes(size, 11)).unwrap();
    let m = alice
        .ok(
            "create_file_message",
            json!({"file_path": path_str(&f), "file_name": "big.bin"}),
        )
        .await;
    let msg_id = m["msg_id"].clone();
    let sending = send_in_background(&alice, &m, "bob");
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if progress_of(&alice, &msg_id).last().is_some_and(|p| *p >= 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    alice.ok("logout", json!({})).await;
    // The send is interrupted (it stays in the outbox), not failed.
    let r = tokio::time::timeout(WAIT, sending).await.unwrap().unwrap();
    assert_eq!(r.unwrap_err().code, 7009);
    // The transfer stopped: the server's part stops growing short of the whole file (a chunk
    // already in flight may still land, later on a loaded machine), and stays so for a second.
    let mut stopped_at = server_part_bytes(&server);
    let mut stable = false;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let now = server_part_bytes(&server);
        if now == stopped_at {
            stable = true;
            break;
        }
        stopped_at = now;
    }
    assert!(
        stable,
        "the server's part still grows after the logout: {stopped_at} bytes"
    );
    assert!(
        stopped_at > 0 && stopped_at < size as u64,
        "{stopped_at} of {size} bytes at logout"
    );
    assert!(!progress_of(&alice, &msg_id).contains(&100));
    assert_eq!(bob.event_count("on_recv_new_message"), 0);

    // The next login resumes it from where the server stopped, and it is delivered once.
    alice.login("alice").await;
    upload_done(&alice, &msg_id).await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["msg_id"], msg_id);
    let out = dir.path().join("got.bin");
    download(&bob, &msg_id, 0, None, &out).await;
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f).unwrap());
    let found = alice
        .ok("find_messages", json!({"msg_ids": [msg_id]}))
        .await;
    assert_eq!(found["message_list"][0]["status"], "send_succ");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(bob.event_count("on_recv_new_message"), 1);
}

#[tokio::test]
async fn logout_stops_a_download_and_it_resumes_after_login() {
    let server = TestServer::start().await;
    let alice = TestClient::with_config(&server, with_uploader(1 << 20)).await;
    let bob = TestClient::with_config(&server, with_uploader(16 * 1024)).await;
    alice.login("alice").await;
    bob.login("bob").await;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("down.bin");
    std::fs::write(&f, bytes(8 * 1024 * 1024, 12)).unwrap();
    let m = alice
        .ok(
            "create_file_message",
            json!({"file_path": path_str(&f), "file_name": "down.bin"}),
        )
        .await;
    send_to(&alice, &m, "bob").await;
    let got = bob.expect_messages(1, WAIT).await;
    let msg_id = got[0]["msg_id"].clone();
    let out = dir.path().join("got.bin");
    let engine = bob.engine.clone();
    let params = json!({"msg_id": msg_id, "elem_index": 0, "path": path_str(&out)});
    let downloading = tokio::spawn(async move { engine.call("download_elem", params).await });
    bob.expect_event("on_download_progress", WAIT).await;
    bob.ok("logout", json!({})).await;
    let r = tokio::time::timeout(WAIT, downloading)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.unwrap_err().code, 7009);
    assert!(!out.exists());
    let events = bob.event_count("on_download_progress");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(bob.event_count("on_download_progress") <= events + 1);
    bob.login("bob").await;
    download(&bob, &msg_id, 0, None, &out).await;
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f).unwrap());
}

/// The files left under an engine's `<data_dir>/media/outgoing/` (generated image sizes).
fn outgoing_files(client: &TestClient) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&client.data_dir().join("media").join("outgoing"), &mut out);
    out
}

/// The format and pixels of a downloaded file.
fn decoded(path: &Path) -> (Option<image::ImageFormat>, image::RgbaImage) {
    let reader = image::ImageReader::open(path)
        .expect("opening the download")
        .with_guessed_format()
        .expect("reading the download");
    let format = reader.format();
    (format, reader.decode().expect("decoding").to_rgba8())
}

/// Downloads size `t` of image message `id` into `dir` and decodes it.
async fn download_decoded(
    client: &TestClient,
    id: &Value,
    t: &str,
    dir: &Path,
) -> (Option<image::ImageFormat>, image::RgbaImage) {
    let out = dir.join(format!("{}-{t}", id.as_str().unwrap_or("x")));
    download(client, id, 0, Some(t), &out).await;
    decoded(&out)
}

#[tokio::test]
async fn transparent_images_keep_png_sizes_and_generated_files_go_once_sent() {
    let server = TestServer::start().await;
    let (alice, bob) = pair(&server, 1 << 20).await;
    let dir = tempfile::tempdir().unwrap();
    // Left half transparent.
    let clear = dir.path().join("clear.png");
    image::RgbaImage::from_fn(1600, 800, |x, y| {
        image::Rgba([
            (x % 256) as u8,
            (y % 256) as u8,
            40,
            if x < 800 { 0 } else { 255 },
        ])
    })
    .save(&clear)
    .unwrap();
    let opaque = dir.path().join("opaque.png");
    png(&opaque, 1600, 800);
    let mut sent_ids = Vec::new();
    for source in [&clear, &opaque] {
        let m = alice
            .ok(
                "create_image_message",
                json!({"image_path": path_str(source)}),
            )
            .await;
        // Generated when created: large and thumb.
        assert_eq!(outgoing_files(&alice).len(), 2);
        send_to(&alice, &m, "bob").await;
        // Gone once uploaded and sent.
        assert_eq!(outgoing_files(&alice), Vec::<PathBuf>::new());
        sent_ids.push(m["msg_id"].clone());
    }
    bob.expect_messages(2, WAIT).await;
    for t in ["large", "thumb"] {
        let (format, pixels) = download_decoded(&bob, &sent_ids[0], t, dir.path()).await;
        assert_eq!(format, Some(image::ImageFormat::Png), "{t}");
        let (w, h) = pixels.dimensions();
        assert_eq!(h * 2, w, "{t}");
        assert_eq!(pixels.get_pixel(2, h / 2).0[3], 0, "{t} keeps transparency");
        assert_eq!(pixels.get_pixel(w - 3, h / 2).0[3], 255, "{t}");
        let (format, _) = download_decoded(&bob, &sent_ids[1], t, dir.path()).await;
        assert_eq!(format, Some(image::ImageFormat::Jpeg), "{t}");
    }
    // The original is the user's own file: never touched.
    assert!(clear.is_file() && opaque.is_file());
}

#[tokio::test]
async fn cancelling_an_unsent_image_deletes_its_generated_files() {
    let mut server = TestServer::start().await;
    let (alice, _bob) = pair(&server, 1 << 20).await;
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.png");
    png(&big, 1600, 800);
    server.kill().await;
    let m = alice
        .ok(
            "create_image_message",
            json!({"image_path": path_str(&big)}),
        )
        .await;
    assert_eq!(outgoing_files(&alice).len(), 2);
    // Offline: it waits in the outbox; cancelling takes it and its generated sizes away.
    let sending = send_in_background(&alice, &m, "bob");
    // Once the send stored it.
    let mut cancelled = false;
    for _ in 0..200 {
        let p = json!({"msg_id": m["msg_id"]});
        if alice.call("cancel_send_message", p).await.is_ok() {
            cancelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(cancelled);
    let r = tokio::time::timeout(WAIT, sending).await.unwrap().unwrap();
    assert_eq!(r.unwrap_err().code, 8021);
    assert_eq!(outgoing_files(&alice), Vec::<PathBuf>::new());
    assert!(big.is_file());
}
