//! Reads right after an ack or a push see the write.
//!
//! The server answers a batch and sends its pushes as soon as the batch is durable in its
//! write-ahead log, before its store has applied it; the read barrier (`server/src/barrier.rs`)
//! makes every read wait for the batches answered before it arrived. These tests read at once,
//! in a loop, after each ack (the sender's own connection) and after each push (the receiver's
//! connection, and another member's connection in a group): pull, sync and search must have the
//! message every time.

use std::time::Duration;

use chime_proto::pb;
use chime_proto::pb::request::Kind as ReqKind;
use chime_proto::pb::response::Kind as RespKind;
use chime_tests::wire::{WireClient, c2c_text, first_text, group_text};
use chime_tests::{APP_ID, TestServer};

/// Messages per test.
const ROUNDS: usize = 100;
/// Longest wait for one push.
const PUSH_WAIT: Duration = Duration::from_secs(30);
/// Most pushes skipped while waiting for one message (read positions, group tips).
const MAX_OTHER_PUSHES: usize = 50;

async fn login(server: &TestServer, user: &str) -> WireClient {
    WireClient::login(&server.ws_url(), APP_ID, user, &server.user_sig(user), user)
        .await
        .unwrap_or_else(|e| panic!("login of {user}: {e}"))
}

fn c2c(target: &str) -> pb::ConvRef {
    pb::ConvRef {
        conv_type: pb::ConvType::C2c as i32,
        target: target.into(),
    }
}

fn group(target: &str) -> pb::ConvRef {
    pb::ConvRef {
        conv_type: pb::ConvType::Group as i32,
        target: target.into(),
    }
}

/// Sends `msg`; answers the acked seq.
async fn send(client: &mut WireClient, msg: pb::Message) -> u64 {
    let r = client
        .call(ReqKind::SendMessage(pb::SendMessageReq {
            message: Some(msg),
        }))
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    match r.kind {
        Some(RespKind::SendMessage(a)) => a.seq,
        other => panic!("not a send ack: {other:?}"),
    }
}

/// Waits for the message push of `msg_id`, skipping other pushes; answers its message.
async fn pushed(client: &mut WireClient, msg_id: &str) -> pb::Message {
    for _ in 0..MAX_OTHER_PUSHES {
        let push = tokio::time::timeout(PUSH_WAIT, client.next_push())
            .await
            .unwrap_or_else(|_| panic!("no push of {msg_id} in {PUSH_WAIT:?}"))
            .unwrap_or_else(|e| panic!("waiting for {msg_id}: {e}"));
        if let Some(pb::push::Kind::Message(p)) = push.kind
            && let Some(m) = p.message
            && m.msg_id == msg_id
        {
            return m;
        }
    }
    panic!("no push of {msg_id} among {MAX_OTHER_PUSHES} pushes")
}

/// Pulls exactly seq `seq` of `conv`.
async fn pull_one(client: &mut WireClient, conv: pb::ConvRef, seq: u64) -> Vec<pb::Message> {
    let r = client
        .call(ReqKind::PullMessages(pb::PullMessagesReq {
            conv: Some(conv),
            from_seq: seq,
            to_seq: seq,
            limit: 10,
            ..Default::default()
        }))
        .await
        .unwrap_or_else(|e| panic!("pull of seq {seq}: {e}"));
    match r.kind {
        Some(RespKind::PullMessages(p)) => p.messages,
        other => panic!("not a pull answer: {other:?}"),
    }
}

/// The message `msg_id` with `text` at `seq`, as one pull answers it.
fn assert_one(messages: &[pb::Message], msg_id: &str, seq: u64, text: &str, who: &str) {
    let got: Vec<_> = messages
        .iter()
        .map(|m| (m.msg_id.as_str(), m.seq, first_text(m)))
        .collect();
    assert_eq!(got, vec![(msg_id, seq, text)], "{who} pulled right after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2c_pull_sync_and_search_right_after_the_ack_and_the_push_see_the_message() {
    let server = TestServer::start().await;
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;
    let mut bob_cursor = 0;
    for i in 0..ROUNDS {
        let (id, text) = (format!("rb-{i}"), format!("barrier tok{i}x"));
        let seq = send(&mut alice, c2c_text("bob", &id, &text)).await;
        assert_eq!(seq, i as u64 + 1);
        // The sender, at once after the ack.
        assert_one(
            &pull_one(&mut alice, c2c("bob"), seq).await,
            &id,
            seq,
            &text,
            "alice",
        );
        let r = alice
            .call(ReqKind::SearchCloudMessages(pb::SearchCloudMessagesReq {
                keywords: vec![format!("tok{i}x")],
                conv: Some(c2c("bob")),
                count: 10,
                ..Default::default()
            }))
            .await
            .unwrap_or_else(|e| panic!("search: {e}"));
        let Some(RespKind::SearchCloudMessages(found)) = r.kind else {
            panic!("not a search answer: {:?}", r.kind);
        };
        let ids: Vec<_> = found
            .items
            .iter()
            .flat_map(|item| item.messages.iter().map(|m| m.msg_id.as_str()))
            .collect();
        assert_eq!(ids, vec![id.as_str()], "alice searched right after the ack");

        // The receiver, at once after the push.
        let m = pushed(&mut bob, &id).await;
        assert_eq!(m.seq, seq);
        assert_one(
            &pull_one(&mut bob, c2c("alice"), seq).await,
            &id,
            seq,
            &text,
            "bob",
        );
        let r = bob
            .call(ReqKind::Sync(pb::SyncReq {
                cursor: bob_cursor,
                limit: 100,
                ..Default::default()
            }))
            .await
            .unwrap_or_else(|e| panic!("sync: {e}"));
        let Some(RespKind::Sync(sync)) = r.kind else {
            panic!("not a sync answer: {:?}", r.kind);
        };
        let state = sync
            .conversations
            .iter()
            .find(|c| c.conv.as_ref() == Some(&c2c("alice")))
            .unwrap_or_else(|| panic!("round {i}: the conversation is not in the sync"));
        assert_eq!((state.max_seq, state.unread_count), (seq, seq as u32));
        assert_eq!(
            state.last_message.as_ref().map(|m| m.msg_id.as_str()),
            Some(id.as_str())
        );
        bob_cursor = sync.cursor;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_members_pull_right_after_a_group_push_sees_the_message() {
    let server = TestServer::start().await;
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;
    let mut carol = login(&server, "carol").await;
    let gid = "barrier-group";
    alice
        .call(ReqKind::CreateGroup(pb::CreateGroupReq {
            group_type: "Work".into(),
            group_id: gid.into(),
            name: "barrier".into(),
            member_list: ["bob", "carol"]
                .iter()
                .map(|u| pb::GroupMember {
                    user_id: (*u).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }))
        .await
        .unwrap_or_else(|e| panic!("create group: {e}"));
    let mut first = None;
    for i in 0..ROUNDS {
        let (id, text) = (format!("gb-{i}"), format!("group {i}"));
        // High priority: never dropped by the group's 40 messages/s limit.
        let mut msg = group_text(gid, &id, &text);
        msg.priority = pb::Priority::High as i32;
        let seq = send(&mut alice, msg).await;
        // Group tips may hold the first seqs: the messages' seqs follow one another from there.
        let first = *first.get_or_insert(seq);
        assert_eq!(seq, first + i as u64);
        assert_one(
            &pull_one(&mut alice, group(gid), seq).await,
            &id,
            seq,
            &text,
            "alice",
        );
        // Bob got the push: carol's connection (which may not have its own push yet) and bob's
        // read at once.
        let m = pushed(&mut bob, &id).await;
        assert_eq!(m.seq, seq);
        assert_one(
            &pull_one(&mut carol, group(gid), seq).await,
            &id,
            seq,
            &text,
            "carol",
        );
        assert_one(
            &pull_one(&mut bob, group(gid), seq).await,
            &id,
            seq,
            &text,
            "bob",
        );
    }
}
