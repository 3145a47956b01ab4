//! Large groups and live rooms end to end (issue 8) and the `not_receive` receive option
//! (issue 3): a 5,000-member Public group whose members are mostly raw-protocol connections
//! (a few real engines among them) — a message reaches the online members once, an offline
//! engine catches up on login, the member list pages by role over all 5,000, the online count is
//! exact; an AVChatRoom with 2,000 online members — every member gets each message exactly once,
//! a later joiner gets none of the earlier ones, the online count and the member list follow the
//! connections, and a member offline past the grace leaves; and `not_receive` withholding C2C
//! and group messages from push, sync and history while the sender and others still have them.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chime_proto::pb;
use chime_proto::pb::request::Kind as ReqKind;
use chime_tests::wire::{self, WireClient, WireReceiver, WireSender};
use chime_tests::{APP_ID, TestClient, TestServer, eventually, send_c2c_text, text_of};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(800);
/// Logins and joins in flight at once while building a crowd.
const CONCURRENCY: usize = 50;

async fn engine(server: &TestServer, user: &str) -> TestClient {
    let c = TestClient::new(server).await;
    c.login(user).await;
    c
}

async fn wire_login(server: &TestServer, user: &str) -> WireClient {
    WireClient::login(&server.ws_url(), APP_ID, user, &server.user_sig(user), user)
        .await
        .unwrap_or_else(|e| panic!("login of {user}: {e}"))
}

/// Logs every user of `users` in over the raw protocol, `CONCURRENCY` at a time, and runs
/// `then` on each connection (e.g. a join).
async fn crowd(server: &TestServer, users: &[String], then: Option<ReqKind>) -> Vec<WireClient> {
    let mut out = Vec::with_capacity(users.len());
    for chunk in users.chunks(CONCURRENCY) {
        let jobs = chunk.iter().map(|u| {
            let then = then.clone();
            async move {
                let mut c = wire_login(server, u).await;
                if let Some(req) = then {
                    c.call(req)
                        .await
                        .unwrap_or_else(|e| panic!("request of {u}: {e}"));
                }
                c
            }
        });
        out.extend(futures_util::future::join_all(jobs).await);
    }
    out
}

/// What one raw member saw: the message pushes of one group, by msg id, in arrival order.
type Seen = Vec<String>;

/// Reads a raw member's pushes on a task until `stop` closes; keeps the msg ids of the text
/// messages of `group_id` (tips skipped). The sending half stays alive with the task.
fn collect(
    conn: WireClient,
    group_id: &str,
) -> (
    tokio::sync::oneshot::Sender<()>,
    JoinHandle<(WireSender, Seen)>,
) {
    let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
    let group_id = group_id.to_owned();
    let (tx, mut rx): (WireSender, WireReceiver) = conn.split();
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            tokio::select! {
                _ = &mut stop => break,
                frame = rx.next_frame() => {
                    let Ok(frame) = frame else { break };
                    if let Some(pb::frame::Body::Push(pb::Push {
                        kind: Some(pb::push::Kind::Message(p)),
                    })) = frame.body
                        && let Some(m) = p.message
                        && m.group_id == group_id
                        && !wire::first_text(&m).is_empty()
                    {
                        seen.push(m.msg_id);
                    }
                }
            }
        }
        (tx, seen)
    });
    (stop_tx, task)
}

fn member_ids(page: &Value) -> Vec<String> {
    page["member_info_list"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|m| m["user_id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every member of `group_id` with role `filter`, paging by 100; also answers the pages' count.
async fn all_members(c: &TestClient, group_id: &str, filter: &str) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut next = 0u64;
    for page in 1..=200 {
        let r = c
            .ok(
                "get_group_member_list",
                json!({ "group_id": group_id, "filter": filter, "next_seq": next, "count": 100 }),
            )
            .await;
        out.extend(member_ids(&r));
        if r["is_finished"] == json!(true) {
            return (out, page);
        }
        next = r["next_seq"].as_u64().unwrap_or(0);
    }
    panic!("member list of {group_id} never finished");
}

async fn online_count(c: &TestClient, group_id: &str) -> u64 {
    c.ok(
        "get_group_online_member_count",
        json!({ "group_id": group_id }),
    )
    .await["member_count"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

fn history_texts(v: &Value) -> Vec<String> {
    v["message_list"]
        .as_array()
        .map(|l| l.iter().map(text_of).filter(|t| !t.is_empty()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5000_member_public_group_reaches_online_members_and_offline_ones_catch_up() {
    const MEMBERS: usize = 5_000;
    const ONLINE_WIRE: usize = 40;
    const ADMINS: usize = 10;
    let server = TestServer::start_with_config("[group_member_limits]\nPublic = 6000\n").await;
    let near = engine(&server, "near").await;
    let mut owner = wire_login(&server, "owner").await;
    // The owner, two engines ("near" online, "far" offline) and 4,997 raw members.
    let raw: Vec<String> = (0..MEMBERS - 3).map(|i| format!("m{i:04}")).collect();
    let mut member_list: Vec<pb::GroupMember> = ["near", "far"]
        .iter()
        .map(|u| pb::GroupMember {
            user_id: (*u).into(),
            ..Default::default()
        })
        .collect();
    member_list.extend(raw.iter().enumerate().map(|(i, u)| pb::GroupMember {
        user_id: u.clone(),
        role: if i < ADMINS {
            "admin".into()
        } else {
            String::new()
        },
        ..Default::default()
    }));
    owner
        .call(ReqKind::CreateGroup(pb::CreateGroupReq {
            group_type: "Public".into(),
            group_id: "big".into(),
            name: "Big".into(),
            member_list,
            ..Default::default()
        }))
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    // A group one over the limit is refused with 10014.
    let too_many = (0..6_000).map(|i| pb::GroupMember {
        user_id: format!("x{i}"),
        ..Default::default()
    });
    let refused = owner
        .call(ReqKind::CreateGroup(pb::CreateGroupReq {
            group_type: "Public".into(),
            group_id: "too_big".into(),
            member_list: too_many.collect(),
            ..Default::default()
        }))
        .await;
    assert!(
        matches!(refused, Err(wire::WireError::Refused { code: 10014, .. })),
        "{refused:?}"
    );

    let online: Vec<String> = raw.iter().skip(ADMINS).take(ONLINE_WIRE).cloned().collect();
    let listeners: Vec<_> = crowd(&server, &online, None)
        .await
        .into_iter()
        .map(|c| collect(c, "big"))
        .collect();
    // Owner + near + the raw ones online.
    assert_eq!(online_count(&near, "big").await, 2 + ONLINE_WIRE as u64);

    let sent = owner
        .call(ReqKind::SendMessage(pb::SendMessageReq {
            message: Some(wire::group_text("big", "big-1", "hello five thousand")),
        }))
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    let Some(pb::response::Kind::SendMessage(ack)) = sent.kind else {
        panic!("no ack: {sent:?}");
    };
    assert!(ack.seq > 0, "a Public group message is stored");

    let got = near.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "hello five thousand");
    tokio::time::sleep(QUIET).await;
    for (stop, task) in listeners {
        let _ = stop.send(());
        let (_tx, seen) = task.await.unwrap_or_else(|e| panic!("listener: {e}"));
        assert_eq!(seen, vec!["big-1".to_owned()], "each online member once");
    }

    // The offline engine catches up on login (read diffusion: nothing was written for it).
    let far = engine(&server, "far").await;
    eventually("far has the message", || async {
        let h = far
            .ok(
                "get_group_history_message_list",
                json!({ "group_id": "big", "count": 20 }),
            )
            .await;
        history_texts(&h) == vec!["hello five thousand".to_owned()]
    })
    .await;
    eventually("far counts it unread", || async {
        far.ok(
            "get_conversation",
            json!({ "conversation_id": "group_big" }),
        )
        .await["unread_count"]
            == json!(1)
    })
    .await;

    // The member list pages by role over all 5,000.
    let (all, pages) = all_members(&far, "big", "all").await;
    assert_eq!(pages, MEMBERS / 100);
    assert_eq!(all.len(), MEMBERS);
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        MEMBERS,
        "no duplicates"
    );
    assert_eq!(all[0], "owner", "owner first");
    let admins: HashSet<String> = raw.iter().take(ADMINS).cloned().collect();
    assert_eq!(
        all[1..=ADMINS].iter().cloned().collect::<HashSet<_>>(),
        admins,
        "then the administrators"
    );
    let (owners, _) = all_members(&far, "big", "owner").await;
    assert_eq!(owners, vec!["owner".to_owned()]);
    let (listed_admins, _) = all_members(&far, "big", "admin").await;
    assert_eq!(listed_admins.into_iter().collect::<HashSet<_>>(), admins);
    let (common, pages) = all_members(&far, "big", "common").await;
    assert_eq!(common.len(), MEMBERS - 1 - ADMINS);
    assert_eq!(pages, (MEMBERS - 1 - ADMINS).div_ceil(100));
    assert_eq!(online_count(&far, "big").await, 2 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_avchatroom_with_2000_online_members_delivers_each_message_exactly_once() {
    const VIEWERS: usize = 2_000;
    const LEAVING: usize = 500;
    let server = TestServer::start_with_config(
        "group_message_rate = 1000000\nlive_room_offline_grace_secs = 1\n",
    )
    .await;
    let host = engine(&server, "host").await;
    host.ok(
        "create_group",
        json!({ "group_type": "AVChatRoom", "group_id": "live", "group_name": "Live" }),
    )
    .await;
    let viewers: Vec<String> = (0..VIEWERS).map(|i| format!("v{i:04}")).collect();
    let join = ReqKind::JoinGroup(pb::JoinGroupReq {
        group_id: "live".into(),
        message: String::new(),
    });
    let listeners: Vec<_> = crowd(&server, &viewers, Some(join.clone()))
        .await
        .into_iter()
        .map(|c| collect(c, "live"))
        .collect();
    assert_eq!(online_count(&host, "live").await, 1 + VIEWERS as u64);

    let mut sent = Vec::new();
    for i in 0..3 {
        let m = host
            .ok(
                "send_group_text_message",
                json!({ "text": format!("live {i}"), "group_id": "live" }),
            )
            .await;
        assert_eq!(m["seq"], json!(0), "online-only: {m}");
        sent.push(m["msg_id"].as_str().unwrap_or_default().to_owned());
    }
    // A joiner after the messages gets none of them, but the next one.
    let mut late = wire_login(&server, "late").await;
    late.call(join.clone())
        .await
        .unwrap_or_else(|e| panic!("late join: {e}"));
    let (late_stop, late_task) = collect(late, "live");
    let last = host
        .ok(
            "send_group_text_message",
            json!({ "text": "live 3", "group_id": "live" }),
        )
        .await;
    sent.push(last["msg_id"].as_str().unwrap_or_default().to_owned());

    // Every viewer gets each message exactly once, in order.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut senders = Vec::with_capacity(VIEWERS);
    let mut short: HashMap<usize, usize> = HashMap::new();
    tokio::time::sleep(QUIET).await;
    for (i, (stop, task)) in listeners.into_iter().enumerate() {
        let _ = stop.send(());
        let (tx, seen) = tokio::time::timeout_at(deadline, task)
            .await
            .unwrap_or_else(|_| panic!("viewer {i} never stopped"))
            .unwrap_or_else(|e| panic!("viewer {i}: {e}"));
        if seen != sent {
            short.insert(i, seen.len());
        }
        senders.push(tx);
    }
    assert!(
        short.is_empty(),
        "viewers with the wrong messages (index → count): {short:?}"
    );
    let _ = late_stop.send(());
    let (mut late_tx, late_seen) = late_task.await.unwrap_or_else(|e| panic!("late: {e}"));
    assert_eq!(
        late_seen,
        vec![sent[3].clone()],
        "the joiner gets only what came after"
    );

    // The count and the member list follow the connections.
    assert_eq!(online_count(&host, "live").await, 2 + VIEWERS as u64);
    for tx in senders.iter_mut().take(LEAVING) {
        tx.close().await;
    }
    late_tx.close().await;
    let remaining = (1 + VIEWERS - LEAVING) as u64;
    eventually("the online count drops with the disconnects", || async {
        online_count(&host, "live").await == remaining
    })
    .await;
    let (listed, _) = all_members(&host, "live", "all").await;
    assert_eq!(
        listed.len() as u64,
        remaining,
        "only online members are listed"
    );
    assert!(!listed.contains(&"v0000".to_owned()));
    assert!(listed.contains(&viewers[VIEWERS - 1]));

    // Past the grace, a viewer who left is no longer a member: back online, it must join again.
    eventually("v0000 has left the room", || async {
        let r = host
            .ok(
                "get_group_members_info",
                json!({ "group_id": "live", "member_list": ["v0000", "v1999"] }),
            )
            .await;
        member_ids(&r) == vec!["v1999".to_owned()]
    })
    .await;
    let mut back = wire_login(&server, "v0000").await;
    let send = |id: &str| {
        ReqKind::SendMessage(pb::SendMessageReq {
            message: Some(wire::group_text("live", id, "back")),
        })
    };
    let refused = back.call(send("back-1")).await;
    assert!(
        matches!(refused, Err(wire::WireError::Refused { code: 10007, .. })),
        "{refused:?}"
    );
    back.call(join)
        .await
        .unwrap_or_else(|e| panic!("rejoin: {e}"));
    back.call(send("back-2"))
        .await
        .unwrap_or_else(|e| panic!("send after rejoin: {e}"));
    assert_eq!(online_count(&host, "live").await, remaining + 1);
}

#[tokio::test]
async fn not_receive_withholds_c2c_messages_from_push_sync_and_history() {
    let server = TestServer::start().await;
    let alice = engine(&server, "alice").await;
    let bob = engine(&server, "bob").await;
    send_c2c_text(&bob, "alice", "before").await;
    alice.expect_messages(1, WAIT).await;
    alice
        .ok(
            "set_c2c_receive_message_opt",
            json!({ "user_ids": ["bob"], "opt": "not_receive" }),
        )
        .await;
    send_c2c_text(&bob, "alice", "withheld 1").await;
    send_c2c_text(&bob, "alice", "withheld 2").await;
    assert_eq!(alice.next_event("on_recv_new_message", QUIET).await, None);
    // Alice's own messages still go out and reach bob.
    send_c2c_text(&alice, "bob", "from alice").await;
    let got = bob.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "from alice");
    alice
        .ok(
            "set_c2c_receive_message_opt",
            json!({ "user_ids": ["bob"], "opt": "receive" }),
        )
        .await;
    send_c2c_text(&bob, "alice", "after").await;
    let got = alice.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "after");

    // Bob has everything; alice — on this device and on a new one — never the withheld two.
    let bob_side = bob
        .ok(
            "get_c2c_history_message_list",
            json!({ "user_id": "alice", "count": 20 }),
        )
        .await;
    let mut texts = history_texts(&bob_side);
    texts.sort();
    assert_eq!(
        texts,
        ["after", "before", "from alice", "withheld 1", "withheld 2"]
    );
    let expected = ["after", "before", "from alice"];
    let second = TestClient::with_config(&server, json!({ "platform": "web" })).await;
    second.login("alice").await;
    for device in [&alice, &second] {
        eventually(
            "alice's history leaves out what she did not receive",
            || async {
                let h = device
                    .ok(
                        "get_c2c_history_message_list",
                        json!({ "user_id": "bob", "count": 20 }),
                    )
                    .await;
                let mut t = history_texts(&h);
                t.sort();
                t == expected
            },
        )
        .await;
    }
    // The new device's conversation settles when its login sync has been applied (the history
    // above is answered by the server and may come first).
    eventually("the new device counts before + after as unread", || async {
        let c = second
            .ok("get_conversation", json!({ "conversation_id": "c2c_bob" }))
            .await;
        c["unread_count"] == json!(2) && text_of(&c["last_message"]) == "after"
    })
    .await;
}

#[tokio::test]
async fn not_receive_withholds_group_messages_but_not_tips() {
    let server = TestServer::start().await;
    let owner = engine(&server, "gowner").await;
    let quiet = engine(&server, "gquiet").await;
    let loud = engine(&server, "gloud").await;
    owner
        .ok(
            "create_group",
            json!({ "group_type": "Work", "group_id": "team", "group_name": "Team",
                    "member_list": ["gquiet", "gloud"] }),
        )
        .await;
    quiet
        .ok(
            "set_group_receive_message_opt",
            json!({ "group_id": "team", "opt": "not_receive" }),
        )
        .await;
    owner
        .ok(
            "send_group_text_message",
            json!({ "text": "withheld", "group_id": "team" }),
        )
        .await;
    let got = loud.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "withheld");
    let withheld = quiet.next_event("on_recv_new_message", QUIET).await;
    assert_eq!(withheld, None, "the quiet member is not pushed the message");
    // Tips still arrive: a profile change is announced to the quiet member.
    owner
        .ok(
            "set_group_info",
            json!({ "group_id": "team", "group_name": "Team 2" }),
        )
        .await;
    let changed = quiet.expect_event("on_group_info_changed", WAIT).await;
    assert_eq!(changed["group_id"], json!("team"));
    // The quiet member's own messages reach the others.
    quiet
        .ok(
            "send_group_text_message",
            json!({ "text": "from quiet", "group_id": "team" }),
        )
        .await;
    assert_eq!(
        text_of(&loud.expect_messages(1, WAIT).await[0]),
        "from quiet"
    );

    quiet
        .ok(
            "set_group_receive_message_opt",
            json!({ "group_id": "team", "opt": "receive" }),
        )
        .await;
    owner
        .ok(
            "send_group_text_message",
            json!({ "text": "after", "group_id": "team" }),
        )
        .await;
    let got = quiet.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "after");
    let fresh = TestClient::with_config(&server, json!({ "platform": "web" })).await;
    fresh.login("gquiet").await;
    for device in [&quiet, &fresh] {
        eventually(
            "the group history leaves out the withheld message",
            || async {
                let h = device
                    .ok(
                        "get_group_history_message_list",
                        json!({ "group_id": "team", "count": 20 }),
                    )
                    .await;
                let mut t = history_texts(&h);
                t.sort();
                t == ["after", "from quiet"]
            },
        )
        .await;
    }
    // The history above is answered by the server and may come before the login sync's
    // conversation state; the count settles when that sync has been applied.
    eventually("the new device counts only 'after' as unread", || async {
        let c = fresh
            .ok(
                "get_conversation",
                json!({ "conversation_id": "group_team" }),
            )
            .await;
        c["unread_count"] == json!(1)
    })
    .await;
}
