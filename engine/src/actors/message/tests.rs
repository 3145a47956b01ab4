//! Unit tests of the actor on an in-memory store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::sync::{Pulled, SyncBegin};
use super::*;
use crate::events::EventBus;
use crate::store::MemoryStore;
use crate::{EngineConfig, Event};

fn wire(seq: u64) -> pb::Message {
    pb::Message {
        msg_id: format!("m{seq}"),
        sender: "alice".into(),
        conv_type: pb::ConvType::C2c as i32,
        receiver: "bob".into(),
        seq,
        server_time_ms: 1_700_000_000_000 + seq as i64,
        elems: vec![pb::Elem {
            content: Some(pb::elem::Content::Text(pb::TextElem {
                text: format!("t{seq}"),
            })),
        }],
        ..Default::default()
    }
}

fn pulled(seqs: &[u64], live: bool) -> Pulled {
    Pulled {
        conv: pb::ConvRef {
            conv_type: pb::ConvType::C2c as i32,
            target: "alice".into(),
        },
        resp: pb::PullMessagesResp {
            messages: seqs.iter().map(|&s| wire(s)).collect(),
            covered_from: seqs[0],
            covered_to: seqs[seqs.len() - 1],
            ..Default::default()
        },
        live,
    }
}

/// The receive pipeline on an in-memory store: every message is announced once, whatever
/// mix of catch-up pulls, pushes and history pulls brings it; history is silent.
#[test]
fn receive_pipeline_announces_each_message_exactly_once() {
    let sys = actix::System::new();
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let (list, seqs) = sys.block_on({
        let seen = seen.clone();
        async move {
            let events = EventBus::start().unwrap();
            events.set_handler(Some(Arc::new(move |e: Event| {
                seen.lock().unwrap().push(e);
            })));
            let config: EngineConfig = serde_json::from_value(json!({
                "sdk_app_id": 1, "server_url": "ws://127.0.0.1:1/ws", "data_dir": "/nonexistent"
            }))
            .unwrap();
            let shared = Shared {
                config: Arc::new(config),
                events,
            };
            let addr = MessageActor::new(shared).start();
            let account = Account {
                user: "bob".into(),
                store: Arc::new(MemoryStore::new()),
            };
            addr.send(OpenAccount(account)).await.unwrap();
            assert_eq!(
                addr.send(pulled(&[1, 2, 3], true)).await.unwrap().unwrap(),
                3
            );
            addr.send(PushedBurst(vec![pb::MessagePush {
                message: Some(wire(3)),
                conv: None,
                change_version: 0,
            }]))
            .await
            .unwrap();
            assert_eq!(
                addr.send(pulled(&[2, 3, 4], false)).await.unwrap().unwrap(),
                0
            );
            assert_eq!(addr.send(pulled(&[1, 2], true)).await.unwrap().unwrap(), 0);
            addr.send(PushedBurst(vec![pb::MessagePush {
                message: Some(wire(5)),
                conv: None,
                change_version: 0,
            }]))
            .await
            .unwrap();
            let q = HistoryQuery {
                cloud: false,
                older: true,
                conv: pb::ConvRef {
                    conv_type: pb::ConvType::C2c as i32,
                    target: "alice".into(),
                },
                conversation_id: "c2c_alice".into(),
                count: 10,
                last_msg_id: None,
                last_msg_seq: 0,
                time_begin_ms: 0,
                time_end_ms: 0,
                message_types: Vec::new(),
            };
            let h = addr.send(q).await.unwrap().unwrap();
            let ranges = addr.send(SyncBegin).await.unwrap().unwrap();
            (h, ranges)
        }
    });
    let seqs_in_history: Vec<u64> = list["message_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs_in_history, [5, 4, 3, 2, 1]);
    assert_eq!(seqs, Vec::new());
    // Events are delivered on the event thread: wait (bounded) for the last one.
    for _ in 0..100 {
        if seen.lock().unwrap().len() >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(50));
    let announced: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.name == "on_recv_new_message")
        .map(|e| e.data["message"]["msg_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(announced, ["m1", "m2", "m3", "m5"]);
}

/// Lifecycle changes on an in-memory store: a revoke applies and is announced once however often
/// it arrives, an older version never overwrites a newer one, deletes and clears remove messages
/// and their search postings.
#[test]
fn changes_apply_once_by_version_and_keep_the_search_index_in_step() {
    let sys = actix::System::new();
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let (found, search) = sys.block_on({
        let seen = seen.clone();
        async move {
            let events = EventBus::start().unwrap();
            events.set_handler(Some(Arc::new(move |e: Event| {
                seen.lock().unwrap().push(e);
            })));
            let config: EngineConfig = serde_json::from_value(json!({
                "sdk_app_id": 1, "server_url": "ws://127.0.0.1:1/ws", "data_dir": "/nonexistent"
            }))
            .unwrap();
            let addr = MessageActor::new(Shared {
                config: Arc::new(config),
                events,
            })
            .start();
            let account = Account {
                user: "bob".into(),
                store: Arc::new(MemoryStore::new()),
            };
            addr.send(OpenAccount(account)).await.unwrap();
            addr.send(pulled(&[1, 2, 3, 4], true))
                .await
                .unwrap()
                .unwrap();
            let conv = pb::ConvRef {
                conv_type: pb::ConvType::C2c as i32,
                target: "alice".into(),
            };
            let change = |kind: pb::MessageChangeKind, m: Option<pb::Message>| pb::MessageChange {
                kind: kind as i32,
                conv: Some(conv.clone()),
                message: m,
                ..Default::default()
            };
            let mut revoked = wire(1);
            revoked.revoked = true;
            revoked.revoker = "alice".into();
            revoked.version = 1;
            let mut edited = wire(2);
            edited.version = 2;
            edited.elems[0].content = Some(pb::elem::Content::Text(pb::TextElem {
                text: "edited".into(),
            }));
            let mut stale = wire(2);
            stale.version = 1;
            stale.elems[0].content = Some(pb::elem::Content::Text(pb::TextElem {
                text: "stale".into(),
            }));
            let push =
                |c: pb::MessageChange| ChangePushed(pb::MessageChangePush { change: Some(c) });
            use pb::MessageChangeKind as K;
            for c in [
                change(K::MessageChangeRevoked, Some(revoked.clone())),
                change(K::MessageChangeRevoked, Some(revoked)),
                change(K::MessageChangeModified, Some(edited)),
                change(K::MessageChangeModified, Some(stale)),
                pb::MessageChange {
                    kind: K::MessageChangeDeleted as i32,
                    msg_ids: vec!["m3".into()],
                    ..Default::default()
                },
            ] {
                addr.send(push(c)).await.unwrap();
            }
            let ids: Vec<String> = (1..=4).map(|s| format!("m{s}")).collect();
            let found = addr.send(Find(ids)).await.unwrap().unwrap();
            let criteria = search::Criteria {
                keywords: vec!["t1".into(), "t3".into(), "edited".into(), "t4".into()],
                ..Default::default()
            };
            let search = addr
                .send(SearchLocal {
                    criteria,
                    conversation_id: Some("c2c_alice".into()),
                    offset: 0,
                    count: 10,
                })
                .await
                .unwrap()
                .unwrap();
            // Clearing up to seq 4 empties the conversation.
            addr.send(push(pb::MessageChange {
                kind: K::MessageChangeCleared as i32,
                conv: Some(conv.clone()),
                cleared_seq: 4,
                ..Default::default()
            }))
            .await
            .unwrap();
            let after = addr
                .send(Find(vec!["m2".into(), "m4".into()]))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(after["message_list"], json!([]));
            (found, search)
        }
    });
    let list = found["message_list"].as_array().unwrap();
    let by_id = |id: &str| list.iter().find(|m| m["msg_id"] == id).cloned();
    assert_eq!(by_id("m1").unwrap()["status"], "local_revoked");
    assert_eq!(by_id("m2").unwrap()["elem_list"][0]["text"], "edited");
    assert_eq!(by_id("m2").unwrap()["version"], 2);
    assert!(by_id("m3").is_none(), "deleted");
    assert_eq!(by_id("m4").unwrap()["status"], "send_succ");
    // Revoked (m1) and deleted (m3) messages are not found; the edit is found by its new text.
    let hits: Vec<&str> = search["message_search_result_items"][0]["message_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg_id"].as_str().unwrap())
        .collect();
    assert_eq!(hits, ["m4", "m2"]);
    for _ in 0..100 {
        if seen
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.name == "on_recv_message_modified")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(50));
    let names: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.name.starts_with("on_recv_message_"))
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(
        names,
        ["on_recv_message_revoked", "on_recv_message_modified"],
        "each change announced once"
    );
}
