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
            addr.send(Pushed(pb::MessagePush {
                message: Some(wire(3)),
                conv: None,
            }))
            .await
            .unwrap();
            assert_eq!(
                addr.send(pulled(&[2, 3, 4], false)).await.unwrap().unwrap(),
                0
            );
            assert_eq!(addr.send(pulled(&[1, 2], true)).await.unwrap().unwrap(), 0);
            addr.send(Pushed(pb::MessagePush {
                message: Some(wire(5)),
                conv: None,
            }))
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
    assert_eq!(seqs, (0, Vec::new()));
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
