//! Minimal groups: creation, membership checks, group messages, read diffusion sync, AVChatRoom,
//! rate limiting.

use chime_proto::pb::{self, request::Kind as ReqKind, response::Kind as RespKind};
use chime_server::Tunables;

use crate::*;

async fn create(c: &mut Client, group_type: &str, id: &str, members: &[&str]) -> pb::Response {
    c.call(ReqKind::CreateGroup(pb::CreateGroupReq {
        group_type: group_type.into(),
        group_id: id.into(),
        name: format!("{group_type} group"),
        member_list: members
            .iter()
            .map(|u| pb::GroupMember {
                user_id: (*u).into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }))
    .await
}

async fn join(c: &mut Client, id: &str) -> pb::Response {
    c.call(ReqKind::JoinGroup(pb::JoinGroupReq {
        group_id: id.into(),
        message: String::new(),
    }))
    .await
}

fn change_kind(p: pb::Push) -> pb::GroupChangeKind {
    match p.kind.unwrap() {
        pb::push::Kind::GroupChange(g) => g.kind(),
        other => panic!("expected a group change, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_is_checked_on_send_and_join() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice").await;
    let mut bob = s.login("bob").await;
    let mut carol = s.login("carol").await;
    assert_eq!(create(&mut alice, "Work", "work1", &["bob"]).await.code, 0);
    assert_eq!(
        change_kind(bob.push(WAIT).await.unwrap()),
        pb::GroupChangeKind::GroupChangeJoined
    );
    // Unknown group 10010, not a member 10007, Work is invite-only 10007.
    assert_eq!(carol.send(group_msg("g0", "nope", "x")).await.code, 10010);
    assert_eq!(carol.send(group_msg("g1", "work1", "x")).await.code, 10007);
    assert_eq!(join(&mut carol, "work1").await.code, 10007);
    assert_eq!(join(&mut carol, "nope").await.code, 10010);
    assert_eq!(join(&mut bob, "work1").await.code, 10013);
    // Id rules.
    assert_eq!(create(&mut alice, "Work", "work1", &[]).await.code, 10021);
    assert_eq!(
        create(&mut alice, "Work", "@TGS#mine", &[]).await.code,
        10004
    );
    assert_eq!(create(&mut alice, "Nope", "", &[]).await.code, 10004);
    assert_eq!(alice.send(group_msg("g2", "", "x")).await.code, 8501);
    // Generated ids.
    match create(&mut alice, "Public", "", &[]).await.kind.unwrap() {
        RespKind::CreateGroup(c) => assert!(c.group_id.starts_with("@TGS#"), "{}", c.group_id),
        other => panic!("{other:?}"),
    }
    // Owner cannot quit; a member can.
    let r = alice
        .call(ReqKind::QuitGroup(pb::QuitGroupReq {
            group_id: "work1".into(),
        }))
        .await;
    assert_eq!(r.code, 10009);
    bob.ok(ReqKind::QuitGroup(pb::QuitGroupReq {
        group_id: "work1".into(),
    }))
    .await;
    assert_eq!(bob.send(group_msg("g3", "work1", "x")).await.code, 10007);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_messages_fan_out_with_increasing_seqs_and_sync_by_known_seq() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice").await;
    let mut bob = s.login("bob").await;
    assert_eq!(create(&mut alice, "Public", "pub1", &[]).await.code, 0);
    assert_eq!(join(&mut bob, "pub1").await.code, 0);
    // Group info and members.
    match bob
        .ok(ReqKind::GetJoinedGroups(pb::GetJoinedGroupsReq {}))
        .await
    {
        RespKind::GetJoinedGroups(g) => {
            assert_eq!(g.groups.len(), 1);
            assert_eq!(g.groups[0].group_id, "pub1");
            assert_eq!(g.groups[0].member_count, 2);
            assert_eq!(g.groups[0].self_role, "member");
            assert_eq!(g.groups[0].owner, "alice");
        }
        other => panic!("{other:?}"),
    }
    match bob
        .ok(ReqKind::GetGroupMembers(pb::GetGroupMembersReq {
            group_id: "pub1".into(),
            filter: "all".into(),
            next_seq: 0,
            count: 1,
            mark_type: 0,
        }))
        .await
    {
        RespKind::GetGroupMembers(m) => {
            assert_eq!(m.members.len(), 1);
            assert_eq!(m.members[0].user_id, "alice");
            assert_eq!(m.members[0].role, "owner");
            assert_eq!((m.next_seq, m.is_finished), (1, false));
        }
        other => panic!("{other:?}"),
    }
    // Bob's join is the group's first message (a group tips message, seq 1).
    for i in 2..=4u64 {
        let ack = alice
            .send_ok(group_msg(&format!("p{i}"), "pub1", "hey"))
            .await;
        assert_eq!(ack.seq, i);
        let got = bob.message().await;
        assert_eq!(got.conv.unwrap(), group("pub1"));
        assert_eq!(got.message.unwrap().seq, i);
    }
    let ack = bob.send_ok(group_msg("b1", "pub1", "yo")).await;
    assert_eq!(ack.seq, 5);
    assert_eq!(alice.message().await.message.unwrap().seq, 5);
    // A sync that already knows seq 5 gets nothing for the group; knowing 4 gets its state.
    let known = |seq| {
        vec![pb::ConvSeq {
            conv: Some(group("pub1")),
            max_seq: seq,
        }]
    };
    let sync = bob.sync(0, known(5)).await;
    assert_eq!(sync.joined_groups.len(), 1);
    // The join itself is in bob's change log, so the group appears once, with its state; the
    // tips message is not unread.
    assert_eq!(sync.conversations.len(), 1);
    let st = &sync.conversations[0];
    assert_eq!((st.max_seq, st.unread_count, st.min_seq), (5, 3, 1));
    let cursor = sync.cursor;
    alice.send_ok(group_msg("p6", "pub1", "new")).await;
    assert!(bob.sync(cursor, known(6)).await.conversations.is_empty());
    let later = bob.sync(cursor, known(5)).await;
    assert_eq!(later.conversations.len(), 1);
    assert_eq!(later.conversations[0].max_seq, 6);
    assert_eq!(
        text_of(later.conversations[0].last_message.as_ref().unwrap()),
        "new"
    );
    // Carol joins late: Public history starts at her join.
    let mut carol = s.login("carol").await;
    assert_eq!(join(&mut carol, "pub1").await.code, 0);
    let p = carol
        .pull(pb::PullMessagesReq {
            conv: Some(group("pub1")),
            ..Default::default()
        })
        .await;
    // She sees her own join (the tips message at seq 7) and nothing before it.
    assert_eq!(
        p.messages
            .iter()
            .map(|m| (m.seq, is_group_tips(m)))
            .collect::<Vec<_>>(),
        [(7, true)]
    );
    assert_eq!((p.min_seq, p.max_seq), (7, 7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avchatroom_messages_are_online_only() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice").await;
    let mut bob = s.login("bob").await;
    assert_eq!(create(&mut alice, "AVChatRoom", "live", &[]).await.code, 0);
    assert_eq!(join(&mut bob, "live").await.code, 0);
    let ack = alice.send_ok(group_msg("av1", "live", "live!")).await;
    assert_eq!(ack.seq, 0);
    let got = bob.message().await.message.unwrap();
    assert_eq!((got.seq, got.online_user_only), (0, true));
    let p = bob
        .pull(pb::PullMessagesReq {
            conv: Some(group("live")),
            ..Default::default()
        })
        .await;
    assert_eq!(p.max_seq, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_rate_limit_drops_low_priority_but_delivers_high() {
    let s = TestServer::start_with(Tunables {
        group_message_rate: 4,
        ..Tunables::default()
    })
    .await;
    let mut alice = s.login("alice").await;
    assert_eq!(create(&mut alice, "Meeting", "m1", &[]).await.code, 0);
    let mut stored = 0;
    let mut dropped = 0;
    for i in 0..10 {
        let mut m = group_msg(&format!("low{i}"), "m1", "x");
        m.priority = pb::Priority::Low as i32;
        let ack = alice.send_ok(m).await;
        if ack.seq == 0 {
            dropped += 1;
        } else {
            stored += 1;
        }
    }
    assert!(dropped > 0, "no low-priority message was dropped");
    assert!(stored >= 1);
    for i in 0..5 {
        let mut m = group_msg(&format!("high{i}"), "m1", "x");
        m.priority = pb::Priority::High as i32;
        assert_ne!(
            alice.send_ok(m).await.seq,
            0,
            "high priority must be delivered"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_info_codes_and_dismiss() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice").await;
    let mut bob = s.login("bob").await;
    assert_eq!(
        create(&mut alice, "Meeting", "meet", &["bob"]).await.code,
        0
    );
    assert_eq!(
        change_kind(bob.push(WAIT).await.unwrap()),
        pb::GroupChangeKind::GroupChangeJoined
    );
    match bob
        .ok(ReqKind::GetGroupsInfo(pb::GetGroupsInfoReq {
            group_ids: vec!["meet".into(), "missing".into(), String::new()],
        }))
        .await
    {
        RespKind::GetGroupsInfo(g) => {
            assert_eq!(g.result_codes, vec![0, 10010, 8501]);
            assert_eq!(g.groups[0].group_type, "Meeting");
            assert_eq!(g.groups[0].self_role, "member");
            assert_eq!(g.groups[0].member_count, 2);
        }
        other => panic!("{other:?}"),
    }
    // Only the owner may dismiss.
    let r = bob
        .call(ReqKind::DismissGroup(pb::DismissGroupReq {
            group_id: "meet".into(),
        }))
        .await;
    assert_eq!(r.code, 10007);
    alice
        .ok(ReqKind::DismissGroup(pb::DismissGroupReq {
            group_id: "meet".into(),
        }))
        .await;
    assert_eq!(
        change_kind(bob.push(WAIT).await.unwrap()),
        pb::GroupChangeKind::GroupChangeDismissed
    );
    match bob
        .ok(ReqKind::GetJoinedGroups(pb::GetJoinedGroupsReq {}))
        .await
    {
        RespKind::GetJoinedGroups(g) => assert!(g.groups.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(bob.send(group_msg("x", "meet", "x")).await.code, 10010);
}
