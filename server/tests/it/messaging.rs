//! C2C messaging: acks, pushes, seqs, idempotency, offline sync, limits, restart, isolation.

use std::time::Duration;

use chime_proto::pb::{self, request::Kind as ReqKind};

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2c_message_is_acked_and_pushed_to_receiver_and_senders_other_devices() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice").await;
    let mut alice_web = s
        .login_as(APP, KEY, "alice", pb::Platform::Web, "alice-web")
        .await;
    let mut bob = s.login("bob").await;
    let mut m = text_msg("a-1", "bob", "hello bob");
    m.sender = "mallory".into(); // never trusted
    m.seq = 99;
    let ack = alice.send_ok(m).await;
    assert_eq!(ack.msg_id, "a-1");
    assert_eq!(ack.seq, 1);
    assert!(ack.server_time_ms > 0);
    let got = bob.message().await;
    let msg = got.message.unwrap();
    assert_eq!(msg.sender, "alice");
    assert_eq!(msg.seq, 1);
    assert_eq!(msg.server_time_ms, ack.server_time_ms);
    assert_eq!(text_of(&msg), "hello bob");
    assert_eq!(got.conv.unwrap(), c2c("alice"));
    let other = alice_web.message().await;
    assert_eq!(other.conv.unwrap(), c2c("bob"));
    assert_eq!(other.message.unwrap().msg_id, "a-1");
    // Not echoed to the sending connection.
    alice.no_push(Duration::from_millis(200)).await;
    // Bob answers: same conversation, next seq.
    let ack = bob.send_ok(text_msg("b-1", "alice", "hi alice")).await;
    assert_eq!(ack.seq, 2);
    assert_eq!(alice.message().await.message.unwrap().seq, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seqs_are_contiguous_under_concurrent_senders() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice").await;
    let mut bob = s.login("bob").await;
    // Pipeline 50 requests from each side without waiting.
    let mut a_ids = Vec::new();
    let mut b_ids = Vec::new();
    for i in 0..50 {
        a_ids.push(
            alice
                .start(ReqKind::SendMessage(pb::SendMessageReq {
                    message: Some(text_msg(&format!("a{i}"), "bob", "x")),
                }))
                .await,
        );
        b_ids.push(
            bob.start(ReqKind::SendMessage(pb::SendMessageReq {
                message: Some(text_msg(&format!("b{i}"), "alice", "y")),
            }))
            .await,
        );
    }
    let mut seqs = Vec::new();
    for id in a_ids {
        let r = alice.wait(id).await;
        assert_eq!(r.code, 0);
        match r.kind.unwrap() {
            pb::response::Kind::SendMessage(a) => seqs.push(a.seq),
            other => panic!("{other:?}"),
        }
    }
    for id in b_ids {
        match bob.wait(id).await.kind.unwrap() {
            pb::response::Kind::SendMessage(a) => seqs.push(a.seq),
            other => panic!("{other:?}"),
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=100).collect::<Vec<u64>>());
    // Pushes to bob arrive in seq order.
    let mut last = 0;
    for _ in 0..50 {
        let seq = bob.message().await.message.unwrap().seq;
        assert!(seq > last, "push order: {seq} after {last}");
        last = seq;
    }
    // Pulling the conversation returns all 100, ordered.
    let p = alice
        .pull(pb::PullMessagesReq {
            conv: Some(c2c("bob")),
            from_seq: 1,
            limit: 100,
            ..Default::default()
        })
        .await;
    assert_eq!(
        p.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=100).collect::<Vec<_>>()
    );
    assert_eq!(
        (p.covered_from, p.covered_to, p.max_seq, p.min_seq),
        (1, 100, 100, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_resend_returns_the_original_ack_and_no_second_push() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice").await;
    let mut bob = s.login("bob").await;
    let first = alice.send_ok(text_msg("dup-1", "bob", "once")).await;
    assert_eq!(bob.message().await.message.unwrap().msg_id, "dup-1");
    let again = alice.send_ok(text_msg("dup-1", "bob", "once")).await;
    // The original ack; a repeated send moves no change log, so it carries no change version
    // (`SendMessageResp.change_version`: 0 for a repeated send).
    assert_eq!(
        (
            &again.msg_id,
            again.seq,
            again.server_time_ms,
            again.change_version
        ),
        (&first.msg_id, first.seq, first.server_time_ms, 0)
    );
    bob.no_push(Duration::from_millis(300)).await;
    let next = alice.send_ok(text_msg("dup-2", "bob", "twice")).await;
    assert_eq!(next.seq, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_messages_are_returned_by_sync_and_pull() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice").await;
    for i in 1..=3 {
        alice
            .send_ok(text_msg(&format!("off-{i}"), "carol", &format!("m{i}")))
            .await;
    }
    let mut excluded = text_msg("off-4", "carol", "quiet");
    excluded.exclude_from_unread = true;
    excluded.exclude_from_last_message = true;
    alice.send_ok(excluded).await;
    // Carol has never logged in; now she does.
    let mut carol = s.login("carol").await;
    let sync = carol.sync(0, vec![]).await;
    assert!(!sync.has_more);
    assert_eq!(sync.conversations.len(), 1);
    let st = &sync.conversations[0];
    assert_eq!(st.conv.clone().unwrap(), c2c("alice"));
    assert_eq!(
        (st.max_seq, st.read_seq, st.unread_count, st.min_seq),
        (4, 0, 3, 1)
    );
    assert_eq!(text_of(st.last_message.as_ref().unwrap()), "m3");
    let cursor = sync.cursor;
    assert!(cursor > 0);
    let p = carol
        .pull(pb::PullMessagesReq {
            conv: Some(c2c("alice")),
            limit: 2,
            newest_first: true,
            ..Default::default()
        })
        .await;
    assert_eq!(
        p.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert_eq!((p.covered_from, p.covered_to), (3, 4));
    // Nothing changed since: empty sync.
    assert!(carol.sync(cursor, vec![]).await.conversations.is_empty());
    // Mark read: the reader's other device gets a ReadPush, the cursor moves.
    let mut carol2 = s
        .login_as(APP, KEY, "carol", pb::Platform::Web, "carol-web")
        .await;
    match carol
        .ok(ReqKind::MarkRead(pb::MarkReadReq {
            conv: Some(c2c("alice")),
            read_seq: 0,
        }))
        .await
    {
        pb::response::Kind::MarkRead(r) => assert_eq!(r.read_seq, 4),
        other => panic!("{other:?}"),
    }
    match carol2.push(WAIT).await.unwrap().kind.unwrap() {
        pb::push::Kind::Read(r) => {
            assert_eq!((r.read_seq, r.unread_count), (4, 0));
            assert_eq!(r.conv.unwrap(), c2c("alice"));
        }
        other => panic!("{other:?}"),
    }
    let sync = carol.sync(cursor, vec![]).await;
    assert_eq!(sync.conversations.len(), 1);
    assert_eq!(
        (
            sync.conversations[0].read_seq,
            sync.conversations[0].unread_count
        ),
        (4, 0)
    );
    // Read positions never move backwards.
    match carol
        .ok(ReqKind::MarkRead(pb::MarkReadReq {
            conv: Some(c2c("alice")),
            read_seq: 2,
        }))
        .await
    {
        pb::response::Kind::MarkRead(r) => assert_eq!(r.read_seq, 4),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_12_kb_is_refused_with_80002() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice").await;
    let r = alice
        .send(text_msg("big", "bob", &"x".repeat(12 * 1024)))
        .await;
    assert_eq!(r.code, 80002, "{}", r.desc);
    let ok = alice
        .send_ok(text_msg("small", "bob", &"x".repeat(12 * 1024 - 16)))
        .await;
    assert_eq!(ok.seq, 1);
    let r = alice.send(text_msg("bad-rcv", "", "x")).await;
    assert_eq!(r.code, 7003);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_only_messages_are_pushed_but_never_stored() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice").await;
    let mut bob = s.login("bob").await;
    let mut m = text_msg("typing", "bob", "typing...");
    m.online_user_only = true;
    let ack = alice.send_ok(m).await;
    assert_eq!(ack.seq, 0);
    let got = bob.message().await.message.unwrap();
    assert_eq!((got.seq, got.online_user_only), (0, true));
    let p = bob
        .pull(pb::PullMessagesReq {
            conv: Some(c2c("alice")),
            ..Default::default()
        })
        .await;
    assert!(p.messages.is_empty());
    assert_eq!(p.max_seq, 0);
    assert!(bob.sync(0, vec![]).await.conversations.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_isolated() {
    let s = TestServer::start().await;
    let mut alice1 = s.login("alice").await;
    let mut bob2 = s
        .login_as(APP2, KEY2, "bob", pb::Platform::Linux, "b2")
        .await;
    let mut bob1 = s.login("bob").await;
    alice1.send_ok(text_msg("iso-1", "bob", "app one")).await;
    assert_eq!(text_of(&bob1.message().await.message.unwrap()), "app one");
    bob2.no_push(Duration::from_millis(300)).await;
    assert!(bob2.sync(0, vec![]).await.conversations.is_empty());
    let p = bob2
        .pull(pb::PullMessagesReq {
            conv: Some(c2c("alice")),
            ..Default::default()
        })
        .await;
    assert_eq!(p.max_seq, 0);
    // The same msg id in the other app is a different message.
    let mut alice2 = s
        .login_as(APP2, KEY2, "alice", pb::Platform::Linux, "a2")
        .await;
    assert_eq!(
        alice2
            .send_ok(text_msg("iso-1", "bob", "app two"))
            .await
            .seq,
        1
    );
    assert_eq!(text_of(&bob2.message().await.message.unwrap()), "app two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_the_same_data_dir_keeps_messages_and_seqs_continue() {
    let mut s = TestServer::start().await;
    {
        let mut alice = s.login("alice").await;
        for i in 1..=5 {
            alice
                .send_ok(text_msg(&format!("r{i}"), "bob", "before"))
                .await;
        }
    }
    s.restart().await;
    let mut alice = s.login("alice").await;
    // A resend after the restart is still deduplicated.
    assert_eq!(alice.send_ok(text_msg("r5", "bob", "before")).await.seq, 5);
    assert_eq!(alice.send_ok(text_msg("r6", "bob", "after")).await.seq, 6);
    let mut bob = s.login("bob").await;
    let sync = bob.sync(0, vec![]).await;
    assert_eq!(sync.conversations.len(), 1);
    assert_eq!(sync.conversations[0].max_seq, 6);
    assert_eq!(sync.conversations[0].unread_count, 6);
    let p = bob
        .pull(pb::PullMessagesReq {
            conv: Some(c2c("alice")),
            ..Default::default()
        })
        .await;
    assert_eq!(
        p.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_pages_by_limit_and_moves_each_conversation_once() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice").await;
    for (i, peer) in ["bob", "carol", "dave"].iter().enumerate() {
        alice.send_ok(text_msg(&format!("s{i}"), peer, "hi")).await;
    }
    // bob's conversation moves again: it must appear once, as the newest change.
    alice.send_ok(text_msg("s3", "bob", "again")).await;
    let page = |cursor| {
        ReqKind::Sync(pb::SyncReq {
            cursor,
            limit: 2,
            known_groups: vec![],
        })
    };
    let first = match alice.ok(page(0)).await {
        pb::response::Kind::Sync(s) => s,
        other => panic!("{other:?}"),
    };
    assert!(first.has_more);
    let targets = |s: &pb::SyncResp| {
        s.conversations
            .iter()
            .map(|c| c.conv.clone().unwrap().target)
            .collect::<Vec<_>>()
    };
    assert_eq!(targets(&first), vec!["carol", "dave"]);
    let second = match alice.ok(page(first.cursor)).await {
        pb::response::Kind::Sync(s) => s,
        other => panic!("{other:?}"),
    };
    assert!(!second.has_more);
    assert_eq!(targets(&second), vec!["bob"]);
    assert_eq!(second.conversations[0].max_seq, 2);
    assert_eq!(
        second.conversations[0].unread_count, 0,
        "own messages are not unread"
    );
    assert_eq!(
        text_of(second.conversations[0].last_message.as_ref().unwrap()),
        "again"
    );
}
