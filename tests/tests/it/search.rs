//! `search_local_messages` end to end: the engine's answers checked against a brute-force scan
//! of the same messages (every message sent and received by one device, C2C and group, text and
//! custom, plus one inserted into local storage), for keyword and/or, sender, type, conversation
//! and time filters, with cursor paging.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chime_proto::codes;
use chime_tests::{TestClient, TestServer};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const LOCAL: &str = "search_local_messages";
const CLOUD: &str = "search_cloud_messages";
const WORDS: [&str; 6] = ["Apple", "banana", "cherry", "delta", "echo", "foxtrot"];

/// One message as the brute force sees it.
#[derive(Debug, Clone)]
struct Known {
    msg_id: String,
    conv: String,
    sender: String,
    /// Lowercased searchable text.
    text: String,
    elem_type: &'static str,
}

/// Deterministic word picks (a tiny LCG) so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize
    }

    fn sentence(&mut self) -> String {
        let n = 1 + self.next() % 3;
        (0..n)
            .map(|_| WORDS[self.next() % WORDS.len()])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

struct Query {
    keywords: Vec<&'static str>,
    and: bool,
    senders: Vec<&'static str>,
    types: Vec<&'static str>,
}

fn brute(all: &[Known], q: &Query, conv: Option<&str>) -> BTreeSet<String> {
    all.iter()
        .filter(|k| conv.is_none_or(|c| k.conv == c))
        .filter(|k| q.senders.is_empty() || q.senders.contains(&k.sender.as_str()))
        .filter(|k| q.types.is_empty() || q.types.contains(&k.elem_type))
        .filter(|k| {
            let hit = |w: &&str| k.text.contains(&w.to_lowercase());
            q.keywords.is_empty()
                || if q.and {
                    q.keywords.iter().all(hit)
                } else {
                    q.keywords.iter().any(hit)
                }
        })
        .map(|k| k.msg_id.clone())
        .collect()
}

fn params(q: &Query) -> Value {
    json!({
        "keyword_list": q.keywords,
        "keyword_list_match_type": if q.and { "and" } else { "or" },
        "sender_user_id_list": q.senders,
        "message_type_list": q.types,
    })
}

/// Every page of a one-conversation search: (msg_ids, total_count), checking the cursor walk.
async fn search_conv(c: &TestClient, method: &str, q: &Query, conv: &str) -> (Vec<String>, u64) {
    chime_tests::search_conversation_pages(c, method, &params(q), conv, 4).await
}

/// The global search: conversation → message_count, walking every page.
async fn search_all(c: &TestClient, method: &str, q: &Query) -> (BTreeMap<String, u64>, u64) {
    let mut out = BTreeMap::new();
    let mut cursor = String::new();
    for _ in 0..100 {
        let mut p = params(q);
        p["count"] = json!(2);
        p["cursor"] = json!(cursor);
        let r = c.ok(method, p).await;
        let total = r["total_count"].as_u64().unwrap_or(u64::MAX);
        for item in r["message_search_result_items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let id = item["conversation_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let n = item["message_count"].as_u64().unwrap_or(0);
            let list = item["message_list"].as_array().map_or(0, Vec::len) as u64;
            assert_eq!(
                list,
                u64::from(n == 1),
                "the message only for a single match"
            );
            assert!(out.insert(id, n).is_none(), "a conversation appears once");
        }
        cursor = r["cursor"].as_str().unwrap_or_default().to_owned();
        if cursor.is_empty() {
            return (out, total);
        }
    }
    panic!("cursor never finished");
}

/// Alice, bob and carol exchange 36 texts and customs (C2C and in alice's group `club`, which
/// bob joins): what each message is, for the brute force.
async fn exchange(alice: &TestClient, bob: &TestClient, carol: &TestClient) -> Vec<Known> {
    alice
        .ok(
            "create_group",
            json!({ "group_type": "Meeting", "group_id": "club", "group_name": "club" }),
        )
        .await;
    bob.ok("join_group", json!({ "group_id": "club", "message": "" }))
        .await;

    let mut rng = Lcg(42);
    let mut all = Vec::new();
    for i in 0..36 {
        let text = rng.sentence();
        let (from, who, conv, custom) = match i % 6 {
            0 | 1 => (alice, "alice", "c2c_bob", false),
            2 => (bob, "bob", "c2c_bob", false),
            3 => (carol, "carol", "c2c_carol", true),
            4 => (alice, "alice", "group_club", false),
            _ => (bob, "bob", "group_club", false),
        };
        let sent = match (conv, custom) {
            ("group_club", _) => {
                from.ok(
                    "send_group_text_message",
                    json!({ "group_id": "club", "text": text }),
                )
                .await
            }
            (_, true) => {
                from.ok(
                    "send_c2c_custom_message",
                    json!({ "user_id": "alice", "data": text }),
                )
                .await
            }
            _ => {
                let to = if who == "alice" { "bob" } else { "alice" };
                from.ok(
                    "send_c2c_text_message",
                    json!({ "user_id": to, "text": text }),
                )
                .await
            }
        };
        all.push(Known {
            msg_id: sent["msg_id"].as_str().unwrap_or_default().to_owned(),
            conv: conv.to_owned(),
            sender: who.to_owned(),
            text: text.to_lowercase(),
            elem_type: if custom { "custom" } else { "text" },
        });
    }
    all
}

/// The queries both searches are checked with.
fn queries() -> Vec<Query> {
    vec![
        Query {
            keywords: vec!["apple"],
            and: false,
            senders: vec![],
            types: vec![],
        },
        Query {
            keywords: vec!["APPLE", "echo"],
            and: false,
            senders: vec![],
            types: vec![],
        },
        Query {
            keywords: vec!["banana", "cherry"],
            and: true,
            senders: vec![],
            types: vec![],
        },
        Query {
            keywords: vec!["delta"],
            and: false,
            senders: vec!["bob"],
            types: vec![],
        },
        Query {
            keywords: vec![],
            and: false,
            senders: vec!["carol"],
            types: vec![],
        },
        Query {
            keywords: vec![],
            and: false,
            senders: vec![],
            types: vec!["custom"],
        },
        Query {
            keywords: vec!["foxtrot"],
            and: false,
            senders: vec!["alice", "carol"],
            types: vec!["text"],
        },
        Query {
            keywords: vec!["zulu"],
            and: false,
            senders: vec![],
            types: vec![],
        },
    ]
}

#[tokio::test]
async fn search_matches_a_brute_force_scan_of_the_same_messages() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    alice.login("alice").await;
    let bob = TestClient::new(&server).await;
    bob.login("bob").await;
    let carol = TestClient::new(&server).await;
    carol.login("carol").await;
    let mut all = exchange(&alice, &bob, &carol).await;
    let inserted = alice
        .ok(
            "insert_c2c_message_to_local_storage",
            json!({
                "message": { "elem_list": [{ "elem_type": "text", "text": "Banana split" }] },
                "user_id": "carol",
                "sender": "carol",
            }),
        )
        .await;
    all.push(Known {
        msg_id: inserted["msg_id"].as_str().unwrap_or_default().to_owned(),
        conv: "c2c_carol".into(),
        sender: "carol".into(),
        text: "banana split".into(),
        elem_type: "text",
    });
    // Wait until alice's device holds every message of the others (bounded).
    let theirs: Vec<String> = all
        .iter()
        .filter(|k| k.sender != "alice")
        .map(|k| k.msg_id.clone())
        .collect();
    for _ in 0..300 {
        let r = alice
            .ok("find_messages", json!({ "msg_ids": theirs }))
            .await;
        if r["message_list"].as_array().map_or(0, Vec::len) == theirs.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let have = alice
        .ok("find_messages", json!({ "msg_ids": theirs }))
        .await;
    assert_eq!(
        have["message_list"].as_array().map_or(0, Vec::len),
        theirs.len(),
        "every message reached alice within {WAIT:?}"
    );

    let queries = queries();
    for (qi, q) in queries.iter().enumerate() {
        for conv in ["c2c_bob", "c2c_carol", "group_club"] {
            let want = brute(&all, q, Some(conv));
            let (got, total) = search_conv(&alice, LOCAL, q, conv).await;
            let got_set: BTreeSet<String> = got.iter().cloned().collect();
            assert_eq!(
                got.len(),
                got_set.len(),
                "query {qi} {conv}: no duplicates across pages"
            );
            assert_eq!(got_set, want, "query {qi} in {conv}");
            assert_eq!(
                total,
                want.len() as u64,
                "query {qi} in {conv}: total_count"
            );
        }
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for id in brute(&all, q, None) {
            if let Some(k) = all.iter().find(|k| k.msg_id == id) {
                *want.entry(k.conv.clone()).or_default() += 1;
            }
        }
        let (got, total) = search_all(&alice, LOCAL, q).await;
        assert_eq!(got, want, "query {qi} over every conversation");
        assert_eq!(
            total,
            want.len() as u64,
            "query {qi}: total_count counts conversations"
        );
    }

    // Time window: everything is within the last hour, nothing starts in the future.
    let q = &queries[0];
    let mut p = params(q);
    p["search_time_period"] = json!(3600);
    let r = alice.ok("search_local_messages", p).await;
    assert_eq!(
        r["total_count"].as_u64(),
        Some(search_all(&alice, LOCAL, q).await.1)
    );
    let mut p = params(q);
    p["search_time_position"] = json!(4_000_000_000u64);
    let r = alice.ok("search_local_messages", p).await;
    assert_eq!(r["total_count"], 0);

    // Bad input.
    for (bad, code) in [
        (json!({}), codes::ERR_INVALID_PARAMETERS),
        (
            json!({ "keyword_list": ["a"], "keyword_list_match_type": "xor" }),
            codes::ERR_INVALID_PARAMETERS,
        ),
        (
            json!({ "keyword_list": ["a"], "conversation_id": "bob" }),
            codes::ERR_INVALID_CONVERSATION,
        ),
        (
            json!({ "keyword_list": ["a"], "cursor": "zz" }),
            codes::ERR_INVALID_PARAMETERS,
        ),
        (
            json!({ "keyword_list": ["a", "b", "c", "d", "e", "f"] }),
            codes::ERR_INVALID_PARAMETERS,
        ),
    ] {
        assert_eq!(
            alice.err_code("search_local_messages", bad.clone()).await,
            code,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn cloud_search_matches_a_brute_force_scan_of_what_the_server_shows_the_user() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    alice.login("alice").await;
    let bob = TestClient::new(&server).await;
    bob.login("bob").await;
    let carol = TestClient::new(&server).await;
    carol.login("carol").await;
    let mut all = exchange(&alice, &bob, &carol).await;
    // Alice revokes one of her messages and deletes one of bob's for herself: neither is found.
    let revoked = all
        .iter()
        .find(|k| k.sender == "alice" && k.conv == "c2c_bob")
        .map(|k| k.msg_id.clone())
        .unwrap_or_default();
    alice
        .ok("revoke_message", json!({ "msg_id": revoked }))
        .await;
    let deleted = all
        .iter()
        .find(|k| k.sender == "bob" && k.conv == "c2c_bob")
        .map(|k| k.msg_id.clone())
        .unwrap_or_default();
    for _ in 0..300 {
        let r = alice
            .ok("find_messages", json!({ "msg_ids": [deleted] }))
            .await;
        if r["message_list"].as_array().is_some_and(|l| !l.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    alice
        .ok("delete_messages", json!({ "msg_ids": [deleted] }))
        .await;
    all.retain(|k| k.msg_id != revoked && k.msg_id != deleted);
    // Past the index's flush (every 5 s), so that the postings answer, not the pending
    // messages (`cloud_search_finds_a_message_right_after_its_ack…` covers those).
    tokio::time::sleep(Duration::from_millis(5_500)).await;

    // A new device of alice with nothing stored: the server answers.
    let fresh = TestClient::with_config(&server, json!({ "platform": "mac" })).await;
    fresh.login("alice").await;
    for (qi, q) in queries().iter().enumerate() {
        for conv in ["c2c_bob", "c2c_carol", "group_club"] {
            let want = brute(&all, q, Some(conv));
            let (got, total) = search_conv(&fresh, CLOUD, q, conv).await;
            let got_set: BTreeSet<String> = got.iter().cloned().collect();
            assert_eq!(got.len(), got_set.len(), "query {qi} {conv}: no duplicates");
            assert_eq!(got_set, want, "query {qi} in {conv}");
            assert_eq!(
                total,
                want.len() as u64,
                "query {qi} in {conv}: total_count"
            );
        }
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for id in brute(&all, q, None) {
            if let Some(k) = all.iter().find(|k| k.msg_id == id) {
                *want.entry(k.conv.clone()).or_default() += 1;
            }
        }
        let (got, total) = search_all(&fresh, CLOUD, q).await;
        assert_eq!(got, want, "query {qi} over every conversation");
        assert_eq!(total, want.len() as u64, "query {qi}: conversations");
    }
    // The found messages are whole message objects, newest first.
    let mut p = params(&queries()[0]);
    p["conversation_id"] = json!("group_club");
    p["count"] = json!(100);
    let r = fresh.ok(CLOUD, p).await;
    let list = r["message_search_result_items"][0]["message_list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let times: Vec<u64> = list
        .iter()
        .map(|m| m["timestamp"].as_u64().unwrap_or(0))
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);
    assert!(
        list.iter()
            .all(|m| m["group_id"] == "club" && m["elem_list"][0]["elem_type"] == "text")
    );

    // Carol sees her own C2C with alice, not the group she is not in.
    let q = Query {
        keywords: vec![],
        and: false,
        senders: vec!["alice", "bob"],
        types: vec![],
    };
    let (got, _) = search_all(&carol, CLOUD, &q).await;
    assert_eq!(got, BTreeMap::new());
    let mut p = params(&q);
    p["conversation_id"] = json!("group_club");
    assert_eq!(carol.err_code(CLOUD, p).await, 10007);

    // Time window and bad input, as for the local search.
    let mut p = params(&queries()[0]);
    p["search_time_position"] = json!(4_000_000_000u64);
    assert_eq!(fresh.ok(CLOUD, p).await["total_count"], 0);
    for (bad, code) in [
        (json!({}), codes::ERR_INVALID_PARAMETERS),
        (
            json!({ "keyword_list": ["a"], "conversation_id": "bob" }),
            codes::ERR_INVALID_CONVERSATION,
        ),
        (
            json!({ "keyword_list": ["a", "b", "c", "d", "e", "f"] }),
            codes::ERR_INVALID_PARAMETERS,
        ),
    ] {
        assert_eq!(fresh.err_code(CLOUD, bad.clone()).await, code, "{bad}");
    }
}

/// The msg_ids `c` finds for `keyword` in its C2C conversation with `peer` (cloud search).
async fn cloud_ids(c: &TestClient, peer: &str, keyword: &'static str) -> Vec<String> {
    let q = Query {
        keywords: vec![keyword],
        and: false,
        senders: vec![],
        types: vec![],
    };
    search_conv(c, CLOUD, &q, &format!("c2c_{peer}")).await.0
}

/// The cloud index is written off the commit path, in periodic flushes: a message is still found
/// the moment its send is acked (no flush yet), by its new text once modified, never once
/// revoked — and the same after the flush has indexed them (`server/src/search_index.rs`).
#[tokio::test]
async fn cloud_search_finds_a_message_right_after_its_ack_before_and_after_the_index_flush() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    alice.login("alice").await;
    let bob = TestClient::new(&server).await;
    bob.login("bob").await;
    let send = |text: &'static str| {
        let alice = &alice;
        async move {
            alice
                .ok(
                    "send_c2c_text_message",
                    json!({ "user_id": "bob", "text": text }),
                )
                .await
        }
    };
    let kept = send("Harbour lights at dusk").await;
    let kept_id = kept["msg_id"].as_str().unwrap_or_default().to_owned();
    // Searched at once after the ack, by either side.
    assert_eq!(cloud_ids(&alice, "bob", "lights").await, [kept_id.as_str()]);
    assert_eq!(
        cloud_ids(&bob, "alice", "HARBOUR").await,
        [kept_id.as_str()]
    );

    let mut edited = kept.clone();
    edited["elem_list"] = json!([{ "elem_type": "text", "text": "Ferry terminal at dawn" }]);
    alice
        .ok("modify_message", json!({ "message": edited }))
        .await;
    let gone = send("Rainy harbour evening").await;
    let gone_id = gone["msg_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(cloud_ids(&alice, "bob", "rainy").await, [gone_id.as_str()]);
    alice
        .ok("revoke_message", json!({ "msg_id": gone_id }))
        .await;

    let check = || async {
        assert_eq!(cloud_ids(&bob, "alice", "ferry").await, [kept_id.as_str()]);
        assert_eq!(
            cloud_ids(&bob, "alice", "lights").await,
            Vec::<String>::new()
        );
        assert_eq!(
            cloud_ids(&bob, "alice", "rainy").await,
            Vec::<String>::new()
        );
        assert_eq!(
            cloud_ids(&bob, "alice", "harbour").await,
            Vec::<String>::new()
        );
        assert_eq!(cloud_ids(&bob, "alice", "at d").await, [kept_id.as_str()]);
    };
    check().await;
    // Past a flush (every 5 s): the same answers from the chunked postings.
    let last = send("Lighthouse keeper").await;
    tokio::time::sleep(Duration::from_millis(6_000)).await;
    check().await;
    assert_eq!(
        cloud_ids(&alice, "bob", "lighthouse").await,
        [last["msg_id"].as_str().unwrap_or_default().to_owned()]
    );
    assert_eq!(cloud_ids(&alice, "bob", "ligh").await.len(), 1);
}
