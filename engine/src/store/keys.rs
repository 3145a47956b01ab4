//! Key layout: every table is a one-byte prefix, keys are built for the queries that read them.
//!
//! | prefix | key | value | owner |
//! |---|---|---|---|
//! | `m` | conv_id `\0` seq (u64 BE) | [`StoredMessage`](crate::model::StoredMessage) acked/received | MessageActor |
//! | `p` | conv_id `\0` local order (u64 BE) | not-yet-acked message (no seq yet) | MessageActor |
//! | `u` | conv_id `\0` msg_id | location key (`m`/`p` key): unique (conversation, msg_id) | MessageActor |
//! | `x` | msg_id | location key: find by id alone | MessageActor |
//! | `r` | conv_id | [`SyncedRanges`](crate::model::SyncedRanges) | MessageActor |
//! | `o` | local order (u64 BE) | outbox entry: location key of a message still `sending` | MessageActor |
//! | `c` | conv_id (NUL + name: user-level settings) | the conversation record of `actors::conversation` | ConversationActor |
//! | `g` | group_id | [`StoredGroup`](crate::model::StoredGroup) | GroupActor |
//! | `M` | name | meta values (sync cursor, local order counter, `search_blocks`: the local search index's state) | MessageActor |
//! | `s` | `\xff` block number | a local search block: the flushed messages' locations, then their grams' postings (`search_index`) | MessageActor |
//! | `s` | trigram `\0` chunk number (u64 BE) | locations: a posting chunk of the layout before blocks, read only (`search_index`) | MessageActor |
//! | `q` | location key | empty: a message not yet in the search postings (`search_index`) | MessageActor |
//!
//! (`w` held one key per (trigram, message) before the search index wrote chunks; it is no longer
//! read or written.)
//!
//! Conversation ids never contain `\0` (ids are printable ASCII), so `conv_id \0` bounds a scan.

/// Table prefixes.
pub mod table {
    /// Messages with a seq.
    pub const MESSAGE: u8 = b'm';
    /// Messages without a seq yet (sending, failed).
    pub const PENDING: u8 = b'p';
    /// Former index (conversation, msg_id) → location: no longer written (msg_ids are unique,
    /// [`MSG_ID`] is the one index); stores written before keep entries that deletes clear.
    pub const CONV_MSG_ID: u8 = b'u';
    /// Unique index msg_id → location (also the receive pipeline's dedupe key).
    pub const MSG_ID: u8 = b'x';
    /// Synced seq ranges per conversation.
    pub const RANGES: u8 = b'r';
    /// Durable outbox.
    pub const OUTBOX: u8 = b'o';
    /// Conversations.
    pub const CONVERSATION: u8 = b'c';
    /// Groups.
    pub const GROUP: u8 = b'g';
    /// Meta values.
    pub const META: u8 = b'M';
    /// Local search index: trigram posting chunks (`crate::search_index`).
    pub const SEARCH: u8 = b's';
    /// Local search index: messages waiting to be indexed (`crate::search_index`).
    pub const INDEX_QUEUE: u8 = b'q';
}

/// Meta key of the per-user sync cursor.
pub const META_SYNC_CURSOR: &str = "sync_cursor";
/// Meta key of the local order counter (orders pending messages and the outbox).
pub const META_LOCAL_ORDER: &str = "local_order";
/// Meta key of the number of the next search posting chunk.
pub const META_SEARCH_CHUNK: &str = "search_chunk";

fn with_prefix(t: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(t);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// `m conv \0 seq`.
pub fn message(conv: &str, seq: u64) -> Vec<u8> {
    with_prefix(table::MESSAGE, &[conv.as_bytes(), &[0], &seq.to_be_bytes()])
}

/// `p conv \0 order`.
pub fn pending(conv: &str, order: u64) -> Vec<u8> {
    with_prefix(
        table::PENDING,
        &[conv.as_bytes(), &[0], &order.to_be_bytes()],
    )
}

/// The scan bounds `[start, end)` of one conversation in table `t` (`m` or `p`).
pub fn conv_bounds(t: u8, conv: &str) -> (Vec<u8>, Vec<u8>) {
    (
        with_prefix(t, &[conv.as_bytes(), &[0]]),
        with_prefix(t, &[conv.as_bytes(), &[1]]),
    )
}

/// `u conv \0 msg_id`.
pub fn conv_msg_id(conv: &str, msg_id: &str) -> Vec<u8> {
    with_prefix(
        table::CONV_MSG_ID,
        &[conv.as_bytes(), &[0], msg_id.as_bytes()],
    )
}

/// `x msg_id`.
pub fn msg_id(msg_id: &str) -> Vec<u8> {
    with_prefix(table::MSG_ID, &[msg_id.as_bytes()])
}

/// `r conv`.
pub fn ranges(conv: &str) -> Vec<u8> {
    with_prefix(table::RANGES, &[conv.as_bytes()])
}

/// `o order`.
pub fn outbox(order: u64) -> Vec<u8> {
    with_prefix(table::OUTBOX, &[&order.to_be_bytes()])
}

/// `c conv`.
pub fn conversation(conv: &str) -> Vec<u8> {
    with_prefix(table::CONVERSATION, &[conv.as_bytes()])
}

/// `g group_id`.
pub fn group(group_id: &str) -> Vec<u8> {
    with_prefix(table::GROUP, &[group_id.as_bytes()])
}

/// `q loc`: one queued message (the format before lists; still read).
pub fn index_queue(loc: &[u8]) -> Vec<u8> {
    with_prefix(table::INDEX_QUEUE, &[loc])
}

/// `q \0 n`: a list of queued messages (all those one batch stored). Locations start with a
/// table letter, so lists sort before the single entries of [`index_queue`] and never meet them.
pub fn index_queue_list(n: u64) -> Vec<u8> {
    with_prefix(table::INDEX_QUEUE, &[&[0], &n.to_be_bytes()])
}

/// `M name`.
pub fn meta(name: &str) -> Vec<u8> {
    with_prefix(table::META, &[name.as_bytes()])
}

/// Bounds of a whole table.
pub fn table_bounds(t: u8) -> (Vec<u8>, Vec<u8>) {
    (vec![t], vec![t + 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_sort_by_seq_within_a_conversation() {
        let (lo, hi) = conv_bounds(table::MESSAGE, "c2c_bob");
        let a = message("c2c_bob", 2);
        let b = message("c2c_bob", 256);
        assert!(lo < a && a < b && b < hi);
        // A conversation whose id extends another's does not fall inside its bounds.
        let other = message("c2c_bob2", 1);
        assert!(other >= hi);
    }
}
