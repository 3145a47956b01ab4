//! `search_local_messages` over the engine's index in blocks (`engine/src/search_index.rs`):
//! each logout flushes what the device queued into one block, and the ninth flush finds eight
//! small blocks merged into one, so the answers below come from blocks, a merged block, the
//! merge's sources awaiting deletion and the queue — always exactly the matching messages, each
//! once, with paging over them.

use std::collections::BTreeSet;

use chime_tests::{TestClient, TestServer, eventually};
use serde_json::{Value, json};

/// Logout/login rounds: eight flushes merge, the ninth deletes the merged-away blocks.
const ROUNDS: usize = 9;
/// Messages bob sends per round.
const PER_ROUND: usize = 3;
/// Results a page of every search.
const PER_PAGE: u64 = 3;

/// The text of bob's `i`-th message of round `r`.
fn text(r: usize, i: usize) -> String {
    format!("Tide{r} swell{i} 潮汐 round{r}x{i}")
}

/// The msg_ids of every match of `params` in `c2c_bob`, over every page (3 a page), and the
/// total the first page announced.
async fn search(alice: &TestClient, params: Value) -> (BTreeSet<String>, u64) {
    let (listed, total) = chime_tests::search_conversation_pages(
        alice,
        "search_local_messages",
        &params,
        "c2c_bob",
        PER_PAGE,
    )
    .await;
    let mut ids = BTreeSet::new();
    for id in listed {
        assert!(ids.insert(id), "a message appears once: {params}");
    }
    (ids, total)
}

/// Whether alice's device holds `n` messages of `c2c_bob`.
async fn holds(alice: &TestClient, n: usize) -> bool {
    let r = alice
        .ok(
            "get_history_message_list",
            json!({ "get_type": "local_older", "user_id": "bob", "count": n + 1 }),
        )
        .await;
    r["message_list"].as_array().map_or(0, Vec::len) == n
}

#[tokio::test]
async fn searches_read_flushed_merged_and_queued_messages_exactly() {
    let server = TestServer::start().await;
    let alice = TestClient::new(&server).await;
    alice.login("alice").await;
    let bob = TestClient::new(&server).await;
    bob.login("bob").await;
    // sent[r][i] = msg_id.
    let mut sent: Vec<Vec<String>> = Vec::new();
    for r in 0..=ROUNDS {
        let mut ids = Vec::new();
        for i in 0..PER_ROUND {
            let m = bob
                .ok(
                    "send_c2c_text_message",
                    json!({ "user_id": "alice", "text": text(r, i) }),
                )
                .await;
            ids.push(m["msg_id"].as_str().unwrap_or_default().to_owned());
        }
        sent.push(ids);
        let n = (r + 1) * PER_ROUND;
        eventually(&format!("alice holds {n} messages"), || holds(&alice, n)).await;
        // Each logout flushes the queue into a block; the last round stays queued.
        if r < ROUNDS {
            alice.ok("logout", json!({})).await;
            alice.login("alice").await;
        }
    }
    let round = |r: usize| -> BTreeSet<String> { sent[r].iter().cloned().collect() };
    let all: BTreeSet<String> = sent.iter().flatten().cloned().collect();
    let kw = |words: &[&str], and: bool| {
        json!({
            "keyword_list": words,
            "keyword_list_match_type": if and { "and" } else { "or" },
        })
    };

    // A word of every message: each once, across blocks, the merged one and the queue.
    let (got, total) = search(&alice, kw(&["SWELL"], false)).await;
    assert_eq!(got, all);
    assert_eq!(total, all.len() as u64);
    let (got, _) = search(&alice, kw(&["潮汐"], false)).await;
    assert_eq!(got, all, "CJK keyword (one trigram)");
    // One round: from a merged block (0, 7), a block after the merge (8), the queue (9).
    for r in [0, 3, 7, 8, ROUNDS] {
        let (got, total) = search(&alice, kw(&[&format!("tide{r} ")], false)).await;
        assert_eq!(got, round(r), "round {r}");
        assert_eq!(total, PER_ROUND as u64);
    }
    // One message: and / or of keywords.
    let (got, _) = search(&alice, kw(&["round5x1", "swell1"], true)).await;
    assert_eq!(got, [sent[5][1].clone()].into());
    let (got, _) = search(&alice, kw(&["round5x1", "round9x2"], false)).await;
    assert_eq!(got, [sent[5][1].clone(), sent[9][2].clone()].into());
    let (got, total) = search(&alice, kw(&["round5x1", "round9x2"], true)).await;
    assert_eq!((got.len(), total), (0, 0));
    // A short keyword scans; an absent one finds nothing.
    let (got, _) = search(&alice, kw(&["x2"], false)).await;
    assert_eq!(got, sent.iter().map(|r| r[2].clone()).collect());
    let (got, _) = search(&alice, kw(&["ebb tide"], false)).await;
    assert!(got.is_empty());
    // One more flush (the next logout) deletes the merged-away blocks: the same answers.
    alice.ok("logout", json!({})).await;
    alice.login("alice").await;
    let (got, _) = search(&alice, kw(&["swell"], false)).await;
    assert_eq!(got, all);
    let (got, _) = search(&alice, kw(&["tide2 "], false)).await;
    assert_eq!(got, round(2));
    // Sender and keyword together.
    let mut p = kw(&["swell0"], false);
    p["sender_user_id_list"] = json!(["bob"]);
    let (got, _) = search(&alice, p).await;
    assert_eq!(got, sent.iter().map(|r| r[0].clone()).collect());
    let mut p = kw(&["swell0"], false);
    p["sender_user_id_list"] = json!(["carol"]);
    let (got, _) = search(&alice, p).await;
    assert!(got.is_empty());
}
