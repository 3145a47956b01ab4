//! Login errors and session gating.

use chime_proto::pb::{self, request::Kind as ReqKind};
use chime_server::usersig;

use crate::*;

async fn login_code(server: &TestServer, app: u64, user: &str, sig: &str) -> (i32, String) {
    let mut c = Client::connect(&server.url()).await;
    let r = c.login(app, user, sig, pb::Platform::Linux, "d").await;
    (r.code, r.desc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_errors_have_exact_codes() {
    let s = TestServer::start().await;
    let now = usersig::now_secs();
    // Bad signature (wrong key).
    let bad = usersig::gen_user_sig(APP, "not-the-key", "alice", 3600);
    assert_eq!(login_code(&s, APP, "alice", &bad).await.0, 70003);
    // Expired.
    let expired = usersig::gen_user_sig_at(APP, KEY, "alice", 10, now - 100, None);
    assert_eq!(login_code(&s, APP, "alice", &expired).await.0, 70001);
    // A sig of app 1 presented for app 2.
    let good = usersig::gen_user_sig(APP, KEY, "alice", 3600);
    assert_eq!(login_code(&s, APP2, "alice", &good).await.0, 70014);
    // Unknown app.
    assert_eq!(login_code(&s, 42, "alice", &good).await.0, 70020);
    // Identifier mismatch.
    assert_eq!(login_code(&s, APP, "bob", &good).await.0, 70013);
    // Empty.
    assert_eq!(login_code(&s, APP, "alice", "").await.0, 70002);
    // Garbage.
    assert_eq!(login_code(&s, APP, "alice", "@@@").await.0, 70005);
    // Invalid user id.
    let sig = usersig::gen_user_sig(APP, KEY, "bad\nid", 3600);
    assert_eq!(login_code(&s, APP, "bad\nid", &sig).await.0, 7003);
    // Wrong protocol version.
    let mut c = Client::connect(&s.url()).await;
    let r = c
        .login_version(99, APP, "alice", &good, pb::Platform::Linux, "d")
        .await;
    assert_eq!(r.code, 70399);
    // The same connection can still log in properly afterwards.
    let r = c.login(APP, "alice", &good, pb::Platform::Linux, "d").await;
    assert_eq!(r.code, 0, "{}", r.desc);
    match r.kind.unwrap() {
        pb::response::Kind::Login(l) => {
            assert_eq!(l.heartbeat_interval_ms, 15_000);
            assert_eq!(l.max_message_body_bytes, 12 * 1024);
            assert!(l.user_sig_expire_at >= now + 3600);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_before_login_answer_70398() {
    let s = TestServer::start().await;
    let mut c = Client::connect(&s.url()).await;
    let r = c
        .call(ReqKind::GetServerTime(pb::GetServerTimeReq {}))
        .await;
    assert_eq!(r.code, 70398);
    let r = c.send(text_msg("m1", "bob", "hi")).await;
    assert_eq!(r.code, 70398);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_closes_the_session() {
    let s = TestServer::start().await;
    let mut a = s.login("alice").await;
    a.ok(ReqKind::Logout(pb::LogoutReq {})).await;
    assert!(a.wait_closed(WAIT).await);
}
