//! Offline push end to end: a real server pushes to providers that this test runs on 127.0.0.1
//! (an axum receiver recording every request, HTTP/1.1 and h2c): the webhook provider gets C2C
//! and group messages for devices whose app is in the background or disconnected, with the
//! title, description and badge of the seed's defaults, never for a foreground device or after
//! logout; receive options, the DND window, `online_user_only`, `disable_push` and the sender's
//! `offline_push_info` are honoured; signaling invitations with push info are pushed; the device
//! state survives a server restart because the engine sends it again; a failing gateway is
//! retried, then dead-lettered. APNs (HTTP/2, ES256 provider token) and FCM (RS256 service
//! account exchange, HTTP v1 send) requests are checked field by field.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chime_tests::{APP_ID, TestClient, TestProxy, TestServer, app_key, eventually, send_c2c_text};
use ring::signature::{self, KeyPair as _};
use serde_json::{Value, json};

use crate::rest::rest as admin;

const QUIET: Duration = Duration::from_millis(700);

/// A throwaway RSA key (PKCS#8) for the FCM service account of the test.
const FCM_TEST_KEY: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDVmWK8pgY48TOl\n\
MXBVtvQn3UCu3zaZK1ACSi8vqRRfisY6tcC12xC3Zj6VwdXkDbGmvoH9ikDC3Pxr\n\
eKXGrh3r+OC8lNKcgBBmtyUC3nmxE2p2QDLFF3Z3dLguPYXZArpR4mhlynK7g6S9\n\
wsPoM4+CG9Xnwbvswr0WdAjnRKyQZ9wrHNKWgud5IDmyZPq7ROofgBfxzr484kQ9\n\
DH9yxn2p4qT8bk5eIJaSo/eptkny6NrzIU/GjyME+Ljt9lfU5oFAnwkW/ddzFnpJ\n\
YeDbey4bBsAnutNvFDIhpJrSW2jvcR7hEBSmK9ooJM4NaL2+0H8MJGJagEaOGtxv\n\
YTUFBnkjAgMBAAECggEAA+dIsaU1vzv73fdNqT4DBOjQh3bsJYJwH4qW2tUehTHL\n\
tkOfYPNplnXCNl8Td0EfelTy79zjRWxfxIsGOd+cC7WW+HtJGgkRGP9x0rVEHg36\n\
cmzGlhQmsGor+imvqivtlxTUeZUTNwVh26yVLfIl8OfB/KPtY5dEzgXoKmnL3tuu\n\
dfE56ntY+Vw2+MJAQ5Y1GEoh3Cuz1gOOMFJAJ+WTfTojN2Dgpp0T853gcoy9M3IJ\n\
qjPcRo1GCHNGxFcoxOchkQSO4ktj+TpOlykLcIC1Gkp++Q4hz74crDhWWGNmXQ/i\n\
mNRfRQv3HZ8RsyOfsPLq0/C0lfMSpnX2iahakvuK+QKBgQD+0tufvmAd9t0XE2Gn\n\
abpoua4IllEAV7F0OfWZVxP9V5wX/NIHjXIAiJpwlBVvsu5acSZqx9eJzi74FE3V\n\
YPiR+aiygHnEVBVEetD/YTtTtjWp5NoxLn4C/UhUUuLBzRYRfZMJnqb9vaUMn24a\n\
izitfnDUQrcjcORIQg4qMHS1TQKBgQDWlc9fOVXY0ZgQrAEKZL+5yuAQbsA3XYTY\n\
BLSdZuxGAo5GkJVb8U0RJxKQCsIt7cbSiTTcW13ppISGAjcOhDIXbh94ZEwoXSVN\n\
Jey8YceGiIcAjgX/QobZEp39PZ6uloK9b63Bsfgbs+r9Kd3RUfU0DQ2SzENF+877\n\
bXjlx6XwLwKBgHO3y1ZafIl+7l2pRoJg5+7gyyBJKpWOPR57p4Uv3vsACvl1rOcT\n\
G38UiZWwGZ/00HqvwXNiNwX0ZK3xgnrwo1Ce4DXXU/SM/m9vmnMuc2OLbgktzMvi\n\
wgSXgn4QebrqaCgfL2OB8XFu6oG18KkLKfzXW2N4vHPSs0gA/y+3e3hNAoGBALjh\n\
kC66BoXtZ3gNykO7NBkOe2iNE11gXMGFpFvtPmq/bvfLQHRb/Ytmv66NJmpN8Dya\n\
7IliyxIvpeKT6/281i+ruL+QorEwN6A1qbdRA4ic/rvyoaYhGm/Sg36Z5asEkJZI\n\
r0swW9T6ed8vgCcF1x7GlEhDZz7XyqiD1GMdVZIPAoGAbuzrHZvDG5rP6QQq5MJV\n\
5WpWoO0WrEKJ2V1RJXrvBJC2ISfHCiKOrVRH0L/qNWf4N6uxgkn1W/yOlLZLNaOk\n\
EIaXNqjYG3P0viYq1oiLxX/b3DFK3/T1qjOU7k3krsf+pOHA0tFr4Aox/b/jPrik\n\
CXl8bE7vNAiQriPCqY+PWhw=\n\
-----END PRIVATE KEY-----\n";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    version: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// The local receiver: the webhook gateway, the APNs and the FCM endpoints in one. Answers
/// `status` (200 unless set) to pushes.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    fn all(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn on(&self, path_part: &str) -> Vec<Seen> {
        self.all()
            .into_iter()
            .filter(|s| s.path.contains(path_part))
            .collect()
    }

    /// Waits until `n` requests to paths containing `path_part` arrived, then answers them.
    async fn wait(&self, path_part: &str, n: usize) -> Vec<Seen> {
        eventually(&format!("{n} requests to {path_part}"), || async {
            self.on(path_part).len() >= n
        })
        .await;
        self.on(path_part)
    }

    /// The webhook pushes' notifications.
    fn pushes(&self) -> Vec<Value> {
        self.on("/push").iter().map(|s| s.json()).collect()
    }
}

async fn record(State(r): State<Receiver>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let version = format!("{:?}", req.version());
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    if let Ok(mut s) = r.seen.lock() {
        s.push(Seen {
            path: path.clone(),
            version,
            headers,
            body,
        });
    }
    if path.ends_with("/token") {
        let answer = json!({"access_token": "at-1", "expires_in": 3600, "token_type": "Bearer"});
        return axum::Json(answer).into_response();
    }
    let status = match r.status.load(Ordering::Relaxed) {
        0 => StatusCode::OK,
        s => StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let answer = if path.ends_with(":send") {
        json!({"name": "projects/proj-1/messages/1"})
    } else {
        json!({})
    };
    (status, axum::Json(answer)).into_response()
}

/// Starts the receiver on 127.0.0.1 (HTTP/1.1 and h2c); answers its base URL.
async fn receiver() -> (String, Receiver) {
    let r = Receiver::default();
    let app = Router::new().fallback(record).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), r)
}

/// A server whose business id 1 is the webhook provider at `base`.
async fn server_with_webhook(base: &str, attempts: u32) -> TestServer {
    server_with_webhook_and(base, attempts, "").await
}

/// [`server_with_webhook`] with `top` (top-level keys) at the start of the config.
async fn server_with_webhook_and(base: &str, attempts: u32, top: &str) -> TestServer {
    TestServer::start_with_config(&format!(
        "{top}[push]\nmax_attempts = {attempts}\nretry_base_ms = 50\nretry_max_ms = 200\n\
         [[push.provider]]\nbusiness_id = 1\nkind = \"webhook\"\nurl = \"{base}/push\"\n"
    ))
    .await
}

async fn user(server: &TestServer, id: &str) -> TestClient {
    let c = TestClient::new(server).await;
    c.login(id).await;
    c
}

/// `id` logged in with a registered device (business id 1, token `tok-<id>`).
async fn device(server: &TestServer, id: &str) -> TestClient {
    let c = user(server, id).await;
    register(&c, id).await;
    c
}

async fn register(c: &TestClient, id: &str) {
    c.ok(
        "set_offline_push_config",
        json!({"business_id": 1, "token": format!("tok-{id}")}),
    )
    .await;
}

async fn send(from: &TestClient, params: Value) -> Value {
    let msg = from
        .ok("create_text_message", json!({"text": params["text"]}))
        .await;
    let mut p = params.clone();
    p["message"] = msg;
    from.ok("send_message", p).await
}

/// The descriptions of the pushes so far.
fn descs(r: &Receiver) -> Vec<String> {
    r.pushes()
        .iter()
        .map(|p| p["Notification"]["desc"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn backgrounded_device_gets_c2c_pushes_with_title_desc_and_badge() {
    let (base, r) = receiver().await;
    let server = server_with_webhook(&base, 3).await;
    let bob = device(&server, "bob").await;
    let alice = user(&server, "alice").await;
    alice
        .ok("set_self_info", json!({"nick_name": "Alice"}))
        .await;
    // Bob's app is in the foreground: no push.
    send_c2c_text(&alice, "bob", "while you look").await;
    bob.ok("do_background", json!({})).await;
    send_c2c_text(&alice, "bob", "hello").await;
    let seen = r.wait("/push", 1).await;
    let p = seen[0].json();
    assert_eq!(p["CallbackCommand"], "Push.OfflinePush");
    assert_eq!(p["SdkAppid"], APP_ID);
    assert_eq!(p["To_Account"], "bob");
    assert_eq!(p["BusinessId"], 1);
    assert_eq!(p["Token"], "tok-bob");
    let n = &p["Notification"];
    assert_eq!(n["title"], "Alice");
    assert_eq!(n["desc"], "hello");
    assert_eq!(n["conversation_id"], "c2c_alice");
    assert_eq!(n["sender"], "alice");
    assert_eq!(n["seq"], 2);
    // The server's count: both messages are unread.
    assert_eq!(n["badge"], 2);
    // Signed with the app key like the webhooks.
    let ts: i64 = seen[0].header("x-chime-timestamp").parse().unwrap_or(0);
    assert_eq!(
        seen[0].header("x-chime-signature"),
        chime_server::webhooks::sign(app_key(APP_ID), ts, &seen[0].body)
    );
    // Back in the foreground: nothing; in the background with the app's own count: that count
    // plus one per push.
    bob.ok("do_foreground", json!({})).await;
    send_c2c_text(&alice, "bob", "seen live").await;
    bob.ok("do_background", json!({"unread_count": 10})).await;
    send_c2c_text(&alice, "bob", "badge one").await;
    r.wait("/push", 2).await;
    send_c2c_text(&alice, "bob", "badge two").await;
    r.wait("/push", 3).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(descs(&r), vec!["hello", "badge one", "badge two"]);
    let badges: Vec<Value> = r
        .pushes()
        .iter()
        .map(|p| p["Notification"]["badge"].clone())
        .collect();
    assert_eq!(badges, vec![json!(2), json!(11), json!(12)]);
}

#[tokio::test]
async fn disconnected_device_is_pushed_and_logout_forgets_it() {
    let (base, r) = receiver().await;
    let server = server_with_webhook(&base, 3).await;
    // Bob's connection goes through a proxy, to lose it without a logout (the app was killed).
    let proxy = TestProxy::start(&server).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let bob = TestClient::with_url(&proxy.ws_url(), dir.path(), json!({}));
    bob.login("bob").await;
    register(&bob, "bob").await;
    let carol = device(&server, "carol").await;
    carol.ok("do_background", json!({})).await;
    let alice = user(&server, "alice").await;
    drop(proxy);
    eventually("the server sees bob offline", || async {
        let st = alice
            .ok("get_user_status", json!({"user_ids": ["bob"]}))
            .await;
        st["user_status_list"][0]["status_type"] == "offline"
    })
    .await;
    send_c2c_text(&alice, "bob", "are you there").await;
    let p = r.wait("/push", 1).await[0].json();
    assert_eq!(p["To_Account"], "bob");
    assert_eq!(p["Notification"]["desc"], "are you there");
    assert_eq!(p["Notification"]["badge"], 1);
    // The same device (same data dir, same device id) logs in and out: the server forgets it.
    bob.shutdown().await;
    drop(bob);
    let bob = TestClient::with_data_dir(&server, dir.path(), json!({})).await;
    bob.login("bob").await;
    bob.ok("logout", json!({})).await;
    send_c2c_text(&alice, "bob", "gone").await;
    send_c2c_text(&alice, "carol", "marker").await;
    r.wait("/push", 2).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(descs(&r), vec!["are you there", "marker"]);
}

#[tokio::test]
async fn device_state_is_sent_again_after_the_server_restarts() {
    let (base, r) = receiver().await;
    let mut server = server_with_webhook(&base, 3).await;
    let bob = device(&server, "bob").await;
    bob.ok("do_background", json!({})).await;
    let alice = user(&server, "alice").await;
    server.restart().await;
    // The server forgot who is in the background; the engines log in again and say it again.
    for c in [&bob, &alice] {
        eventually("reconnected", || async {
            c.event_count("on_connect_success") >= 2
        })
        .await;
    }
    // A round trip on bob's new connection: what the engine sent before it has been handled.
    bob.ok("get_user_status", json!({"user_ids": ["bob"]}))
        .await;
    send_c2c_text(&alice, "bob", "after restart").await;
    let p = r.wait("/push", 1).await[0].json();
    assert_eq!(p["Notification"]["desc"], "after restart");
}

#[tokio::test]
async fn group_push_is_titled_by_the_group_name() {
    let (base, r) = receiver().await;
    let server = server_with_webhook(&base, 3).await;
    let bob = device(&server, "bob").await;
    let carol = device(&server, "carol").await;
    let alice = user(&server, "alice").await;
    alice
        .ok("set_self_info", json!({"nick_name": "Alice"}))
        .await;
    alice
        .ok(
            "create_group",
            json!({"group_type": "Work", "group_id": "team", "group_name": "Team",
                   "member_list": ["bob", "carol"]}),
        )
        .await;
    bob.ok("do_background", json!({})).await;
    send(&alice, json!({"text": "standup", "group_id": "team"})).await;
    let p = r.wait("/push", 1).await[0].json();
    assert_eq!(p["To_Account"], "bob");
    let n = &p["Notification"];
    assert_eq!(n["title"], "Team");
    assert_eq!(n["desc"], "Alice: standup");
    assert_eq!(n["conversation_id"], "group_team");
    // Carol's app is in the foreground.
    tokio::time::sleep(QUIET).await;
    assert_eq!(r.pushes().len(), 1);
    drop(carol);
}

/// `HH:MM:SS` of `secs` after now (UTC).
fn time_of_day(offset_secs: i64) -> (u64, u64, u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let t = (now + offset_secs).rem_euclid(86_400) as u64;
    (t / 3600, t % 3600 / 60, t % 60)
}

/// Waits until the planner logged `n` messages it did not push (decisions read the receiver's
/// settings when planned, so a test changing them waits for the decision first).
async fn wait_skipped(server: &TestServer, n: usize) {
    eventually(&format!("{n} skipped pushes"), || async {
        server.log_tail().matches("no offline push").count() >= n
    })
    .await;
}

#[tokio::test]
async fn receive_options_and_the_dnd_window_are_respected() {
    let (base, r) = receiver().await;
    let debug = "log_level = \"info,chime_server::push=debug\"\n";
    let server = server_with_webhook_and(&base, 3, debug).await;
    let bob = device(&server, "bob").await;
    bob.ok("do_background", json!({})).await;
    let alice = user(&server, "alice").await;
    bob.ok(
        "set_c2c_receive_message_opt",
        json!({"user_ids": ["alice"], "opt": "not_notify"}),
    )
    .await;
    send_c2c_text(&alice, "bob", "muted conversation").await;
    wait_skipped(&server, 1).await;
    bob.ok(
        "set_c2c_receive_message_opt",
        json!({"user_ids": ["alice"], "opt": "receive"}),
    )
    .await;
    // A daily window that started a minute ago.
    let (h, m, s) = time_of_day(-60);
    bob.ok(
        "set_all_receive_message_opt",
        json!({"opt": "not_notify", "start_hour": h, "start_minute": m, "start_second": s,
               "duration": 3600}),
    )
    .await;
    send_c2c_text(&alice, "bob", "inside the window").await;
    wait_skipped(&server, 2).await;
    // A window that starts in two hours.
    let (h, m, s) = time_of_day(7200);
    bob.ok(
        "set_all_receive_message_opt",
        json!({"opt": "not_notify", "start_hour": h, "start_minute": m, "start_second": s,
               "duration": 60}),
    )
    .await;
    send_c2c_text(&alice, "bob", "outside the window").await;
    r.wait("/push", 1).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(descs(&r), vec!["outside the window"]);
}

#[tokio::test]
async fn push_info_overrides_and_opt_outs() {
    let (base, r) = receiver().await;
    let server = server_with_webhook(&base, 3).await;
    let bob = device(&server, "bob").await;
    bob.ok("do_background", json!({})).await;
    let alice = user(&server, "alice").await;
    send(
        &alice,
        json!({"text": "x", "receiver": "bob", "offline_push_info": {
            "title": "Call", "desc": "Incoming call", "ext": "{\"room\":7}",
            "ios_sound": "ring.caf", "ignore_ios_badge": true,
            "android_fcm_channel_id": "calls"}}),
    )
    .await;
    send(
        &alice,
        json!({"text": "online only", "receiver": "bob", "online_user_only": true}),
    )
    .await;
    send(
        &alice,
        json!({"text": "quiet", "receiver": "bob",
               "offline_push_info": {"disable_push": true}}),
    )
    .await;
    // Signaling: an invitation pushes only with push info (a custom message without a
    // description has nothing to show).
    alice
        .ok(
            "invite",
            json!({"invitee": "bob", "data": "d1", "timeout": 30}),
        )
        .await;
    alice
        .ok(
            "invite",
            json!({"invitee": "bob", "data": "d2", "timeout": 30,
                   "offline_push_info": {"title": "Alice", "desc": "Video call"}}),
        )
        .await;
    send_c2c_text(&alice, "bob", "marker").await;
    r.wait("/push", 3).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(descs(&r), vec!["Incoming call", "Video call", "marker"]);
    let n = &r.pushes()[0]["Notification"];
    assert_eq!(n["title"], "Call");
    assert_eq!(n["ext"], "{\"room\":7}");
    assert_eq!(n["ios_sound"], "ring.caf");
    assert_eq!(n["badge"], Value::Null);
    assert_eq!(n["android"]["fcm_channel_id"], "calls");
}

#[tokio::test]
async fn failing_gateway_is_retried_then_dead_lettered() {
    let (base, r) = receiver().await;
    r.status.store(503, Ordering::Relaxed);
    let server = server_with_webhook(&base, 3).await;
    let bob = device(&server, "bob").await;
    bob.ok("do_background", json!({})).await;
    let alice = user(&server, "alice").await;
    send_c2c_text(&alice, "bob", "lost").await;
    r.wait("/push", 3).await;
    eventually("dead letter logged", || async {
        server.log_tail().contains("offline push dead-lettered")
    })
    .await;
    let log = server.log_tail();
    let line = log
        .lines()
        .find(|l| l.contains("offline push dead-lettered"))
        .unwrap_or_default();
    assert!(line.contains("attempts=3"), "{line}");
    assert!(line.contains("HTTP 503"), "{line}");
    tokio::time::sleep(QUIET).await;
    assert_eq!(r.pushes().len(), 3);
}

/// The decoded parts of a compact JWS.
fn jwt_parts(token: &str) -> (Value, Value, Vec<u8>, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap_or_default();
    let header = serde_json::from_slice(&decode(parts[0])).unwrap_or(Value::Null);
    let claims = serde_json::from_slice(&decode(parts[1])).unwrap_or(Value::Null);
    (
        header,
        claims,
        decode(parts[2]),
        format!("{}.{}", parts[0], parts[1]),
    )
}

fn pem(der: &[u8]) -> String {
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(der)
    )
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[tokio::test]
async fn apns_request_is_http2_with_an_es256_provider_token() {
    let (base, r) = receiver().await;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        signature::EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap_or_else(|e| panic!("key: {e}"));
    let pair = signature::EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .unwrap_or_else(|e| panic!("key: {e}"));
    let server = TestServer::start_with_config(&format!(
        "[push]\n[[push.provider]]\nbusiness_id = 2\nkind = \"apns\"\nbase_url = \"{base}\"\n\
         team_id = \"TEAM123456\"\nkey_id = \"KEY1234567\"\ntopic = \"com.example.chime\"\n\
         private_key = '''\n{}'''\n",
        pem(pkcs8.as_ref())
    ))
    .await;
    let bob = user(&server, "bob").await;
    // The app's own count, reported before the token: kept for the device registered after.
    bob.ok("do_background", json!({"unread_count": 4})).await;
    bob.ok(
        "set_offline_push_config",
        json!({"business_id": 2, "token": "a1b2c3d4"}),
    )
    .await;
    let alice = user(&server, "alice").await;
    send_c2c_text(&alice, "bob", "over h2").await;
    let seen = r.wait("/3/device/", 1).await;
    let req = &seen[0];
    assert_eq!(req.path, "/3/device/a1b2c3d4");
    assert_eq!(req.version, "HTTP/2.0");
    assert_eq!(req.header("apns-topic"), "com.example.chime");
    assert_eq!(req.header("apns-push-type"), "alert");
    assert_eq!(req.header("apns-priority"), "10");
    let token = req
        .header("authorization")
        .strip_prefix("bearer ")
        .unwrap_or_else(|| panic!("authorization: {:?}", req.header("authorization")));
    let (header, claims, sig, signed) = jwt_parts(token);
    assert_eq!(header, json!({"alg": "ES256", "kid": "KEY1234567"}));
    assert_eq!(claims["iss"], "TEAM123456");
    let iat = claims["iat"].as_i64().unwrap_or(0);
    assert!((now_secs() - iat).abs() < 120, "iat {iat}");
    assert_eq!(claims.as_object().map(|o| o.len()), Some(2), "{claims}");
    signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_FIXED,
        pair.public_key().as_ref(),
    )
    .verify(signed.as_bytes(), &sig)
    .unwrap_or_else(|_| panic!("the ES256 signature does not verify"));
    assert_eq!(
        req.json(),
        json!({
            "aps": {"alert": {"title": "alice", "body": "over h2"}, "badge": 5,
                    "sound": "default"},
            "ext": "", "conversation_id": "c2c_alice",
            "msg_id": req.json()["msg_id"], "sender": "alice",
        })
    );
    assert!(!req.json()["msg_id"].as_str().unwrap_or("").is_empty());
}

#[tokio::test]
async fn fcm_exchanges_a_service_account_jwt_then_sends_v1_messages() {
    let (base, r) = receiver().await;
    let account = json!({
        "type": "service_account", "project_id": "proj-1", "private_key_id": "kid-9",
        "private_key": FCM_TEST_KEY, "client_email": "push@proj-1.iam.gserviceaccount.com",
        "token_uri": format!("{base}/token"),
    });
    let server = TestServer::start_with_config(&format!(
        "[push]\n[[push.provider]]\nbusiness_id = 3\nkind = \"fcm\"\nbase_url = \"{base}\"\n\
         service_account = '''{account}'''\n"
    ))
    .await;
    let bob = user(&server, "bob").await;
    bob.ok(
        "set_offline_push_config",
        json!({"business_id": 3, "token": "fcm-reg-1"}),
    )
    .await;
    bob.ok("do_background", json!({})).await;
    let alice = user(&server, "alice").await;
    send(
        &alice,
        json!({"text": "via fcm", "receiver": "bob",
               "offline_push_info": {"android_fcm_channel_id": "chat", "ext": "e1"}}),
    )
    .await;
    let sends = r.wait(":send", 1).await;
    send_c2c_text(&alice, "bob", "second").await;
    r.wait(":send", 2).await;
    // One token exchange serves both sends.
    let tokens = r.on("/token");
    assert_eq!(tokens.len(), 1);
    let t = &tokens[0];
    assert_eq!(
        t.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let assertion = t
        .body
        .strip_prefix("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=")
        .unwrap_or_else(|| panic!("token body: {}", t.body));
    let (header, claims, sig, signed) = jwt_parts(assertion);
    assert_eq!(
        header,
        json!({"alg": "RS256", "typ": "JWT", "kid": "kid-9"})
    );
    assert_eq!(claims["iss"], "push@proj-1.iam.gserviceaccount.com");
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/firebase.messaging"
    );
    assert_eq!(claims["aud"], format!("{base}/token"));
    let iat = claims["iat"].as_i64().unwrap_or(0);
    assert!((now_secs() - iat).abs() < 120, "iat {iat}");
    assert_eq!(claims["exp"].as_i64(), Some(iat + 3600));
    let der = STANDARD
        .decode(
            FCM_TEST_KEY
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap_or_default();
    let key = signature::RsaKeyPair::from_pkcs8(&der).unwrap_or_else(|e| panic!("key: {e}"));
    signature::UnparsedPublicKey::new(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        key.public().as_ref(),
    )
    .verify(signed.as_bytes(), &sig)
    .unwrap_or_else(|_| panic!("the RS256 signature does not verify"));
    let s = &sends[0];
    assert_eq!(s.path, "/v1/projects/proj-1/messages:send");
    assert_eq!(s.header("authorization"), "Bearer at-1");
    let body = s.json();
    let msg_id = body["message"]["data"]["msg_id"].clone();
    assert_eq!(
        body,
        json!({"message": {
            "token": "fcm-reg-1",
            "notification": {"title": "alice", "body": "via fcm"},
            "data": {"ext": "e1", "conversation_id": "c2c_alice", "msg_id": msg_id,
                     "sender": "alice", "seq": "1"},
            "android": {"notification": {"channel_id": "chat", "notification_count": 1}},
            "apns": {"payload": {"aps": {"sound": "default", "badge": 1}}},
        }})
    );
}

#[tokio::test]
async fn a_dead_token_forgets_the_device() {
    let (base, r) = receiver().await;
    r.status.store(410, Ordering::Relaxed);
    let server = server_with_webhook(&base, 3).await;
    let bob = device(&server, "bob").await;
    bob.ok("do_background", json!({})).await;
    let carol = device(&server, "carol").await;
    carol.ok("do_background", json!({})).await;
    let alice = user(&server, "alice").await;
    send_c2c_text(&alice, "bob", "to a dead token").await;
    // 410 is not retried: one try, a dead letter, and the device is gone.
    eventually("dead letter logged", || async {
        server.log_tail().contains("offline push dead-lettered")
    })
    .await;
    r.status.store(0, Ordering::Relaxed);
    send_c2c_text(&alice, "bob", "nobody to push").await;
    send_c2c_text(&alice, "carol", "marker").await;
    r.wait("/push", 2).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(descs(&r), vec!["to a dead token", "marker"]);
}

#[tokio::test]
async fn the_same_engine_registers_again_at_its_next_login() {
    let (base, r) = receiver().await;
    let server = server_with_webhook(&base, 3).await;
    let bob = device(&server, "bob").await;
    bob.ok("do_background", json!({})).await;
    let alice = user(&server, "alice").await;
    bob.ok("logout", json!({})).await;
    send_c2c_text(&alice, "bob", "while logged out").await;
    bob.login("bob").await;
    // A round trip after the login: the token and the background state went out before it.
    bob.ok("get_user_status", json!({"user_ids": ["bob"]}))
        .await;
    send_c2c_text(&alice, "bob", "logged in again").await;
    r.wait("/push", 1).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(descs(&r), vec!["logged in again"]);
}

/// The dead letters' descriptions, newest first (one page of 1000).
async fn dead_descs(server: &TestServer) -> Vec<String> {
    let out = admin(
        server,
        "offline_push/get_dead_letters",
        json!({"Limit": 1000}),
    )
    .await;
    assert_eq!(out["ActionStatus"], "OK", "{out}");
    out["DeadLetters"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| l["Desc"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn dead_letters_are_listed_retried_and_deleted_over_rest() {
    let (base, r) = receiver().await;
    r.status.store(503, Ordering::Relaxed);
    let server = server_with_webhook(&base, 2).await;
    let bob = device(&server, "bob").await;
    bob.ok("do_background", json!({})).await;
    let alice = user(&server, "alice").await;
    let mut msg_ids = Vec::new();
    for (i, text) in ["one", "two", "three"].into_iter().enumerate() {
        let sent = send_c2c_text(&alice, "bob", text).await;
        msg_ids.push(sent["msg_id"].as_str().unwrap_or_default().to_owned());
        eventually("dead letter stored", || async {
            dead_descs(&server).await.len() == i + 1
        })
        .await;
    }
    assert_eq!(dead_descs(&server).await, vec!["three", "two", "one"]);

    // Paged, newest first, with the device, provider, reason, attempts and message.
    let page1 = admin(
        &server,
        "offline_push/get_dead_letters",
        json!({"Limit": 2}),
    )
    .await;
    let letters = page1["DeadLetters"].as_array().cloned().unwrap_or_default();
    assert_eq!(letters.len(), 2, "{page1}");
    let newest = &letters[0];
    assert_eq!(newest["To_Account"], "bob");
    assert_eq!(newest["From_Account"], "alice");
    assert_eq!(newest["Provider"], "webhook");
    assert_eq!(newest["BusinessId"], 1);
    assert_eq!(newest["Token"], "tok-bob");
    assert_eq!(newest["Attempts"], 2);
    assert_eq!(newest["MsgId"], msg_ids[2].as_str());
    assert_eq!(newest["ConversationId"], "c2c_alice");
    assert_eq!(newest["Title"], "alice");
    assert!(
        newest["Reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("HTTP 503"),
        "{newest}"
    );
    assert!(!newest["DeviceId"].as_str().unwrap_or("").is_empty());
    assert!(newest["FailedTime"].as_i64().unwrap_or(0) > 0);
    let next = page1["Next"].as_str().unwrap_or("").to_owned();
    assert_eq!(next, letters[1]["Id"].as_str().unwrap_or("-"));
    let page2 = admin(
        &server,
        "offline_push/get_dead_letters",
        json!({"Limit": 2, "Next": next}),
    )
    .await;
    let rest = page2["DeadLetters"].as_array().cloned().unwrap_or_default();
    assert_eq!(rest.len(), 1, "{page2}");
    assert_eq!(rest[0]["Desc"], "one");
    assert_eq!(page2["Next"], "");

    // Bad requests.
    let bad = admin(
        &server,
        "offline_push/get_dead_letters",
        json!({"Limit": 0}),
    )
    .await;
    assert_eq!(bad["ErrorCode"], 90002, "{bad}");
    let bad = admin(
        &server,
        "offline_push/retry_dead_letters",
        json!({"Id": "xyz"}),
    )
    .await;
    assert_eq!(bad["ErrorCode"], 90002, "{bad}");
    let bad = admin(&server, "offline_push/delete_dead_letters", json!({})).await;
    assert_eq!(bad["ErrorCode"], 90002, "{bad}");

    // The gateway is healthy again: retrying one pushes it and takes it off the list.
    r.status.store(200, Ordering::Relaxed);
    let failed_so_far = r.pushes().len();
    assert_eq!(failed_so_far, 6);
    let three = letters[0]["Id"].as_str().unwrap_or_default().to_owned();
    let out = admin(
        &server,
        "offline_push/retry_dead_letters",
        json!({"Id": three}),
    )
    .await;
    assert_eq!(out["RetryCount"], 1, "{out}");
    assert_eq!(out["HasMore"], false);
    r.wait("/push", failed_so_far + 1).await;
    assert_eq!(descs(&r).last().map(String::as_str), Some("three"));
    assert_eq!(dead_descs(&server).await, vec!["two", "one"]);
    // Retrying it again finds nothing.
    let out = admin(
        &server,
        "offline_push/retry_dead_letters",
        json!({"Id": three}),
    )
    .await;
    assert_eq!(out["RetryCount"], 0, "{out}");

    // Delete one, retry all the others.
    let two = letters[1]["Id"].as_str().unwrap_or_default().to_owned();
    let out = admin(
        &server,
        "offline_push/delete_dead_letters",
        json!({"IdList": [two]}),
    )
    .await;
    assert_eq!(out["DeleteCount"], 1, "{out}");
    assert_eq!(dead_descs(&server).await, vec!["one"]);
    let out = admin(
        &server,
        "offline_push/retry_dead_letters",
        json!({"All": true}),
    )
    .await;
    assert_eq!(out["RetryCount"], 1, "{out}");
    r.wait("/push", failed_so_far + 2).await;
    assert!(dead_descs(&server).await.is_empty());
    tokio::time::sleep(QUIET).await;
    let tail: Vec<String> = descs(&r).split_off(failed_so_far);
    assert_eq!(tail, vec!["three", "one"]);

    // Delete all of a list that fails again.
    r.status.store(500, Ordering::Relaxed);
    send_c2c_text(&alice, "bob", "four").await;
    eventually("dead letter stored", || async {
        dead_descs(&server).await == vec!["four"]
    })
    .await;
    let out = admin(
        &server,
        "offline_push/delete_dead_letters",
        json!({"All": true}),
    )
    .await;
    assert_eq!(out["DeleteCount"], 1, "{out}");
    assert!(dead_descs(&server).await.is_empty());
}
