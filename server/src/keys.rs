//! The key layout of the store. Every key starts with a one-byte table tag and the SDKAppID
//! (big-endian), so apps are isolated by construction; strings are length-prefixed (u8) so that
//! any printable id sorts and prefixes correctly; seqs and versions are big-endian so that range
//! scans run in numeric order.
//!
//! | tag | key | value |
//! |---|---|---|
//! | `M` | app, conv, seq | encoded `pb::Message` |
//! | `H` | app, conv | conversation head: max seq (u64) |
//! | `I` | app, sender, msg_id | idempotency: seq u64, server_time i64, conv |
//! | `0x01` | app, sender, first msg_id | the `I` entries packed in blocks, hidden behind `I` (`store::idem_blocks`) |
//! | `L` | app, user, version | change log entry: conv |
//! | `V` | app, user, conv | the conv's current change-log version (u64) |
//! | `C` | app, user | the user's last change version (u64) |
//! | `R` | app, user, conv | read position (u64) |
//! | `U` | app, user | account: registration time (i64 ms) |
//! | `G` | app, group | encoded `pb::GroupInfo` (shared fields only) |
//! | `m` | app, group, user | member: join seq (u64) + encoded `pb::GroupMember` |
//! | `j` | app, user, group | joined-group index (empty) |
//! | `N` | app | generated group id counter (u64) |
//! | `q` | app, group, user | join application: encoded `pb::GroupApplication` |
//! | `h` | app, user | the user's join-application read marker: ms (`group_apply`) |
//! | `x` | app, group, user | re-join ban after a kick: until (i64 ms) |
//! | `y` | app, group | group attributes: encoded `pb::GetGroupAttributesResp` |
//! | `z` | app, group | group counters: encoded `pb::GetGroupCountersResp` |
//! | `X` | app, user, version | message change log entry: encoded `pb::MessageChange` |
//! | `Y` | app, user | the user's last message change version (u64) |
//! | `D` | app, user, conv, seq | message deleted for the user (empty) |
//! | `K` | app, user, conv | history cleared for the user up to this seq (u64) |
//! | `E` | app, conv, seq | message reactions: encoded `pb::MessageReactions` |
//! | `T` | app, conv, seq | message extensions: encoded `pb::GetExtensionsResp` |
//! | `P` | app, group | pinned messages: encoded `pb::GetPinnedGroupMessagesResp` |
//! | `s` | app, user, conv | the user's settings of the conversation (`pb::ConvSettings`) |
//! | `o` / `v` | app, conv, user / app, user, conv | `not_receive` now (since seq) / past `not_receive` seq spans (`conversations`) |
//! | `S` | app, user | the user's folders and global receive option (`pb::UserConvSettings`) |
//! | `r` | app, conv, seq, reader | read receipt of a message by a reader (empty) |
//! | `Q` | app, conv, seq | read receipt count of a message (u64) |
//! | `W` / `p` / `w` | app, invite id / app, user, invite id / 0, deadline, app, invite id | signaling invitations, a user's pending ones, the timeout index (`signaling`) |
//! | `A` / `B` / `Z` | app, uuid / app, uuid, conv / 0, created ms, app, uuid | the file store: a file's record (JSON), the conversations granted access, the retention index (`files::grants`) |
//! | `O` / `J` | app, user, device / app, failed ms, random | offline push: a user's registered devices, the dead letters (JSON; `push::devices`) |
//! | `n` | app, conv, "", block / app, conv / app, conv, trigram, first seq | cloud search: a block of postings (trigram → delta-varint seqs) / the conversation's index state: last seq indexed, next block, open blocks / posting chunk of the layout before blocks, read only (`search_index`) |
//! | `i` | app, conv [, seq] | cloud search: the conversation has messages to index / a changed message to index again (empty; `search_index`) |
//! | `F` | app, user, table, ... | relationships: profiles, friends, applications, blacklist, friend groups, follow, subscriptions, the relationship change log (`relations::keys`) |
//!
//! | `k` | app, sub-table, community, ... | communities: options, topics, permission groups and their members (`community::records`) |
//!
//! A conversation key (`conv`) is `c` + the two user ids sorted (C2C) or `g` + the group id.

/// Table tags.
pub mod tag {
    /// Communities: records, topics, permission-group members (`community::records`).
    pub const COMMUNITY: u8 = b'k';
    /// Messages.
    pub const MSG: u8 = b'M';
    /// Conversation heads.
    pub const HEAD: u8 = b'H';
    /// Idempotency index.
    pub const IDEM: u8 = b'I';
    /// Idempotency entries packed in blocks (`store::idem_blocks`; never read or written
    /// through the store by anyone else).
    pub const IDEM_BLOCK: u8 = 0x01;
    /// Per-user change log.
    pub const LOG: u8 = b'L';
    /// Per-user conversation → change version.
    pub const VER: u8 = b'V';
    /// Per-user change cursor.
    pub const CURSOR: u8 = b'C';
    /// Read positions.
    pub const READ: u8 = b'R';
    /// Accounts.
    pub const USER: u8 = b'U';
    /// Groups.
    pub const GROUP: u8 = b'G';
    /// Group members.
    pub const MEMBER: u8 = b'm';
    /// Joined-group index.
    pub const JOINED: u8 = b'j';
    /// Group id counter.
    pub const GROUP_COUNTER: u8 = b'N';
    /// Group join applications.
    pub const GROUP_APPLICATION: u8 = b'q';
    /// Per-user join-application read markers.
    pub const GROUP_APPLICATION_READ: u8 = b'h';
    /// Re-join bans after a kick.
    pub const GROUP_BAN: u8 = b'x';
    /// Per-user message change log (message lifecycle).
    pub const MSG_CHANGE: u8 = b'X';
    /// Per-user message change log head (u64).
    pub const MSG_CHANGE_HEAD: u8 = b'Y';
    /// Per-user deleted messages (delete for me).
    pub const HIDDEN: u8 = b'D';
    /// Per-user cleared history floor (u64).
    pub const CLEARED: u8 = b'K';
    /// Message reactions (one record per message).
    pub const REACTION: u8 = b'E';
    /// Message extensions (one record per message).
    pub const EXTENSION: u8 = b'T';
    /// Pinned group messages (one record per group).
    pub const PINNED: u8 = b'P';
    /// Group custom attributes.
    pub const GROUP_ATTRS: u8 = b'y';
    /// Group counters.
    pub const GROUP_COUNTERS: u8 = b'z';
    /// Per-user conversation settings.
    pub const CONV_SETTINGS: u8 = b's';
    /// Per-user conversation-list settings (folders, global receive option).
    pub const USER_CONV_SETTINGS: u8 = b'S';
    /// Message read receipts: one per (message, reader).
    pub const RECEIPT_READER: u8 = b'r';
    /// Message read receipt counts.
    pub const RECEIPT_COUNT: u8 = b'Q';
    /// Users and relationships (sub-tables in `relations::keys`).
    pub const RELATION: u8 = b'F';
    /// Signaling invitations (`pb::Invitation`), by app and invite id.
    pub const SIGNAL: u8 = b'W';
    /// Pending invitations of a user (app, invitee, invite id → empty).
    pub const SIGNAL_PENDING: u8 = b'p';
    /// Invitation deadlines (app 0, deadline, app, invite id → empty).
    pub const SIGNAL_DEADLINE: u8 = b'w';
    /// Stored files (app, uuid → `files::grants::FileRecord` JSON).
    pub const FILE: u8 = b'A';
    /// Conversations granted access to a file (app, uuid, conv → empty).
    pub const FILE_GRANT: u8 = b'B';
    /// Files by upload time, for retention (0, created ms, app, uuid → empty).
    pub const FILE_AGE: u8 = b'Z';
    /// Users who turned a conversation's messages off (`not_receive`): app, conv, user → the
    /// conversation's head seq when they did (u64).
    pub const RECV_OFF: u8 = b'o';
    /// Past `not_receive` spans of a user's conversation: app, user, conv → (from, to] seq
    /// pairs (u64, u64) whose messages from others the user is never served.
    pub const RECV_GAPS: u8 = b'v';
    /// Cloud search postings: app, conv, trigram, first seq → seqs; app, conv → watermark
    /// (`search_index`).
    pub const SEARCH: u8 = b'n';
    /// Cloud search marks: app, conv [, seq] → empty (`search_index`).
    pub const SEARCH_QUEUE: u8 = b'i';
    /// Offline push devices (app, user, device id → `push::Device` JSON).
    pub const PUSH_DEVICE: u8 = b'O';
    /// Offline pushes that failed every try (app, failed ms, random → `push::DeadLetter` JSON).
    pub const PUSH_DEAD: u8 = b'J';
}

/// Builds keys component by component.
#[derive(Debug, Clone)]
pub struct Key(Vec<u8>);

impl Key {
    /// A key of table `tag` in app `app`.
    pub fn new(tag: u8, app: u64) -> Self {
        let mut v = Vec::with_capacity(48);
        v.push(tag);
        v.extend_from_slice(&app.to_be_bytes());
        Self(v)
    }

    /// Appends a length-prefixed component (ids are at most 255 bytes; longer ones are cut,
    /// which validation prevents).
    pub fn s(mut self, part: &[u8]) -> Self {
        let n = part.len().min(255);
        self.0.push(n as u8);
        self.0.extend_from_slice(&part[..n]);
        self
    }

    /// Appends a big-endian u64.
    pub fn n(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// The key bytes.
    pub fn done(self) -> Vec<u8> {
        self.0
    }

    /// `[start, end)` covering every key that extends this one.
    pub fn prefix_range(self) -> (Vec<u8>, Vec<u8>) {
        let start = self.0;
        let end = prefix_end(&start);
        (start, end)
    }
}

/// The smallest key greater than every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// Conversation key of a C2C pair (order-independent).
pub fn c2c_conv(a: &str, b: &str) -> Vec<u8> {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    let mut v = Vec::with_capacity(2 + x.len() + y.len() + 1);
    v.push(b'c');
    v.push(x.len() as u8);
    v.extend_from_slice(x.as_bytes());
    v.extend_from_slice(y.as_bytes());
    v
}

/// Conversation key of a group.
pub fn group_conv(group: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + group.len());
    v.push(b'g');
    v.extend_from_slice(group.as_bytes());
    v
}

/// A decoded conversation key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conv {
    /// C2C between two users (sorted).
    C2c(String, String),
    /// A group.
    Group(String),
}

/// Decodes a conversation key.
pub fn parse_conv(conv: &[u8]) -> Option<Conv> {
    match conv.split_first()? {
        (b'c', rest) => {
            let (&n, rest) = rest.split_first()?;
            let n = n as usize;
            if rest.len() < n {
                return None;
            }
            let a = std::str::from_utf8(&rest[..n]).ok()?;
            let b = std::str::from_utf8(&rest[n..]).ok()?;
            Some(Conv::C2c(a.to_owned(), b.to_owned()))
        }
        (b'g', rest) => Some(Conv::Group(std::str::from_utf8(rest).ok()?.to_owned())),
        _ => None,
    }
}

/// The conversation key `conv` as `user` names it (C2C: by the other user).
pub fn conv_ref_for(conv: &[u8], user: &str) -> Option<chime_proto::pb::ConvRef> {
    use chime_proto::pb::{ConvRef, ConvType};
    match parse_conv(conv)? {
        Conv::C2c(a, b) => Some(ConvRef {
            conv_type: ConvType::C2c as i32,
            target: if a == user { b } else { a },
        }),
        Conv::Group(g) => Some(ConvRef {
            conv_type: ConvType::Group as i32,
            target: g,
        }),
    }
}

/// Reads a big-endian u64 at `at`.
pub fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

/// The trailing big-endian u64 of a key (seq or version).
pub fn trailing_u64(key: &[u8]) -> Option<u64> {
    key.len().checked_sub(8).and_then(|at| be_u64(key, at))
}

/// The trailing length-prefixed component of a key that ends in one.
pub fn trailing_str(key: &[u8], prefix_len: usize) -> Option<String> {
    let rest = key.get(prefix_len..)?;
    let (&n, rest) = rest.split_first()?;
    let s = rest.get(..n as usize)?;
    String::from_utf8(s.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tables sharing a tag would see each other's keys in their range scans (a user id equal
    /// to a group id, a group id equal to a conversation key): every `tag` constant of this file
    /// must be a byte of its own.
    #[test]
    fn every_table_tag_is_distinct() {
        let source = include_str!("keys.rs");
        let mut seen: std::collections::HashMap<String, String> = Default::default();
        for line in source.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("pub const ") else {
                continue;
            };
            let Some((name, value)) = rest.split_once(": u8 = ") else {
                continue;
            };
            if let Some(other) = seen.insert(value.to_owned(), name.to_owned()) {
                panic!("{name} and {other} share the tag {value}");
            }
        }
        assert!(seen.len() > 30, "found only {} tags", seen.len());
    }

    #[test]
    fn conv_keys_round_trip_and_are_symmetric() {
        assert_eq!(c2c_conv("bob", "alice"), c2c_conv("alice", "bob"));
        assert_eq!(
            parse_conv(&c2c_conv("bob", "alice")),
            Some(Conv::C2c("alice".into(), "bob".into()))
        );
        assert_eq!(
            parse_conv(&group_conv("g1")),
            Some(Conv::Group("g1".into()))
        );
        assert_eq!(prefix_end(b"ab"), b"ac".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
    }

    #[test]
    fn seq_keys_sort_numerically_and_apps_are_disjoint() {
        let k = |app, seq| Key::new(tag::MSG, app).s(b"conv").n(seq).done();
        assert!(k(1, 2) < k(1, 10));
        assert!(k(1, u64::MAX) < k(2, 0));
        assert_eq!(trailing_u64(&k(1, 77)), Some(77));
        let (start, end) = Key::new(tag::MSG, 1).s(b"conv").prefix_range();
        assert!(start <= k(1, 0) && k(1, u64::MAX) < end);
        assert!(k(1, 0) >= start && Key::new(tag::MSG, 1).s(b"conw").done() >= end);
    }
}
