//! What the engine stores per conversation (`c` table): the server-derived state (seqs, unread,
//! last message), the user's synced settings and the device-local parts (draft, `@` info).
//!
//! Tags 1..=13 are those of the first store format (`StoredConversation`), so a store written
//! before this record existed decodes unchanged.

use chime_proto::pb;

use crate::model::StoredMessage;

/// `@` info kinds (the seed's `V2TIMGroupAtInfo` types).
pub mod at_type {
    /// Someone @-mentioned me.
    pub const AT_ME: i32 = 1;
    /// @all.
    pub const AT_ALL: i32 = 2;
    /// @all and me.
    pub const AT_ALL_AT_ME: i32 = 3;
}

/// One unread `@` in a group conversation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AtInfo {
    /// The message's seq.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// See [`at_type`].
    #[prost(int32, tag = "2")]
    pub at_type: i32,
}

/// A conversation in the local store.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConvRecord {
    /// `c2c_x` / `group_x`.
    #[prost(string, tag = "1")]
    pub conversation_id: String,
    /// True for groups.
    #[prost(bool, tag = "2")]
    pub is_group: bool,
    /// Peer user or group id.
    #[prost(string, tag = "3")]
    pub target: String,
    /// Highest seq known.
    #[prost(uint64, tag = "4")]
    pub max_seq: u64,
    /// Read position.
    #[prost(uint64, tag = "5")]
    pub read_seq: u64,
    /// Unread count (server-computed at sync, maintained live by the unread rule).
    #[prost(uint32, tag = "6")]
    pub unread_count: u32,
    /// Last message.
    #[prost(message, optional, tag = "7")]
    pub last_message: Option<StoredMessage>,
    /// Sort key: the last message's time (ms).
    #[prost(uint64, tag = "8")]
    pub orderkey: u64,
    /// Unused since the settings record (tag kept for old stores).
    #[prost(bool, tag = "9")]
    pub legacy_pinned: bool,
    /// Lowest fetchable seq.
    #[prost(uint64, tag = "10")]
    pub min_seq: u64,
    /// Group type (groups).
    #[prost(string, tag = "11")]
    pub group_type: String,
    /// Display name.
    #[prost(string, tag = "12")]
    pub show_name: String,
    /// Face URL.
    #[prost(string, tag = "13")]
    pub face_url: String,
    /// Draft text (local only).
    #[prost(string, tag = "14")]
    pub draft_text: String,
    /// When the draft was set (seconds).
    #[prost(int64, tag = "15")]
    pub draft_timestamp: i64,
    /// The user's settings, as the server last said.
    #[prost(message, optional, tag = "16")]
    pub settings: Option<pb::ConvSettings>,
    /// C2C: the peer's read position.
    #[prost(uint64, tag = "17")]
    pub peer_read_seq: u64,
    /// Unread `@`s, by seq.
    #[prost(message, repeated, tag = "18")]
    pub at_infos: Vec<AtInfo>,
    /// The max seq of the last server count taken into `unread_count`: a message added later
    /// with a seq at or below it is already in the count, one above it is not — whatever order
    /// messages arrive in (pushes, gap pulls newest first, sync pages).
    #[prost(uint64, tag = "19")]
    pub counted_seq: u64,
}
