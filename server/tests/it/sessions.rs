//! Multi-device policy, malformed and oversized frames, heartbeat and idle timeout.

use std::time::Duration;

use chime_proto::pb::{self, request::Kind as ReqKind};
use chime_server::{MultiDevicePolicy, Tunables};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_class_login_kicks_with_6208_and_other_class_stays() {
    let s = TestServer::start().await;
    let mut desktop = s
        .login_as(APP, KEY, "alice", pb::Platform::Windows, "desk")
        .await;
    let mut web = s
        .login_as(APP, KEY, "alice", pb::Platform::Web, "web")
        .await;
    let mut phone = s
        .login_as(APP, KEY, "alice", pb::Platform::Android, "phone")
        .await;
    match desktop.push(WAIT).await.unwrap().kind.unwrap() {
        pb::push::Kind::Kicked(k) => {
            assert_eq!(k.code, 6208);
            assert_eq!(k.by_platform, pb::Platform::Android as i32);
        }
        other => panic!("{other:?}"),
    }
    assert!(desktop.wait_closed(WAIT).await);
    // Web and the phone both still work and both get messages.
    let mut bob = s.login("bob").await;
    bob.send_ok(text_msg("k1", "alice", "hi")).await;
    assert_eq!(web.message().await.message.unwrap().msg_id, "k1");
    assert_eq!(phone.message().await.message.unwrap().msg_id, "k1");
    // Same device id again: a silent replacement (no kick push).
    let mut phone2 = s
        .login_as(APP, KEY, "alice", pb::Platform::Android, "phone")
        .await;
    assert!(phone.wait_closed(WAIT).await);
    assert!(
        !phone
            .pushes_seen()
            .iter()
            .any(|p| matches!(p.kind, Some(pb::push::Kind::Kicked(_)))),
        "a reconnect of the same device must not be kicked"
    );
    bob.send_ok(text_msg("k2", "alice", "again")).await;
    assert_eq!(phone2.message().await.message.unwrap().msg_id, "k2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_policy_kicks_across_classes() {
    let s = TestServer::start_with(Tunables {
        multi_device_policy: MultiDevicePolicy::Single,
        ..Tunables::default()
    })
    .await;
    let mut web = s.login_as(APP, KEY, "alice", pb::Platform::Web, "w").await;
    let _desk = s.login_as(APP, KEY, "alice", pb::Platform::Mac, "m").await;
    match web.push(WAIT).await.unwrap().kind.unwrap() {
        pb::push::Kind::Kicked(k) => assert_eq!(k.code, 6208),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_answer_90001_and_the_connection_keeps_working() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice").await;
    alice
        .send_raw(WsMessage::Binary(vec![0xff, 0xff, 0xff].into()))
        .await;
    let r = alice.wait(0).await;
    assert_eq!(r.code, 90001);
    alice.send_raw(WsMessage::Text("hello".into())).await;
    assert_eq!(alice.wait(0).await.code, 90001);
    match alice.ok(ReqKind::Heartbeat(pb::HeartbeatReq {})).await {
        pb::response::Kind::Heartbeat(h) => assert!(h.server_time_ms > 0),
        other => panic!("{other:?}"),
    }
    assert_eq!(alice.send_ok(text_msg("after", "bob", "ok")).await.seq, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_answers_90003_and_closes() {
    let s = TestServer::start_with(Tunables {
        max_frame_bytes: 64 * 1024,
        ..Tunables::default()
    })
    .await;
    let mut alice = s.login("alice").await;
    alice
        .send_raw(WsMessage::Binary(vec![0u8; 100 * 1024].into()))
        .await;
    let r = alice.wait(0).await;
    assert_eq!(r.code, 90003);
    assert!(alice.wait_closed(WAIT).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_is_closed_but_heartbeats_keep_it() {
    let s = TestServer::start_with(Tunables {
        heartbeat_interval_ms: 100,
        idle_timeout_ms: Some(600),
        ..Tunables::default()
    })
    .await;
    let mut beating = s.login("alice").await;
    let mut idle = s.login("bob").await;
    // Heartbeats every 150 ms until the idle connection is closed (when the loaded server gets
    // to it); waiting on the idle one is the pause between heartbeats.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let closed = idle.wait_closed(Duration::from_millis(150)).await;
        beating.ok(ReqKind::Heartbeat(pb::HeartbeatReq {})).await;
        if closed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the idle connection was never closed"
        );
    }
    assert!(!beating.closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_user_sig_during_a_session_pushes_and_closes() {
    let s = TestServer::start().await;
    let mut c = Client::connect(&s.url()).await;
    let now = chime_server::usersig::now_secs();
    // Valid for one more second.
    let sig = chime_server::usersig::gen_user_sig_at(APP, KEY, "alice", 1, now, None);
    let r = c.login(APP, "alice", &sig, pb::Platform::Linux, "d").await;
    assert_eq!(r.code, 0, "{}", r.desc);
    match c.push(Duration::from_secs(5)).await.unwrap().kind.unwrap() {
        pb::push::Kind::UserSigExpired(_) => {}
        other => panic!("{other:?}"),
    }
    assert!(c.wait_closed(WAIT).await);
}
