//! Engine-owned stored values, encoded with prost. These are NOT wire types: the wire
//! [`chime_proto::pb::Message`] is mapped into them by [`crate::codec`], so the store format can
//! grow (local fields, statuses) independently of the protocol.

/// Message status (api.md §1 `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for the server's ack (in the outbox).
    Sending = 1,
    /// Acked by the server (or received).
    SendSucc = 2,
    /// The server refused it.
    SendFail = 3,
    /// Inserted into the local store by the app; never sent.
    LocalImported = 5,
    /// Revoked by its sender or a group manager.
    LocalRevoked = 6,
}

impl Status {
    /// The api.md spelling.
    pub fn as_str(code: i32) -> &'static str {
        match code {
            1 => "sending",
            3 => "send_fail",
            4 => "has_deleted",
            5 => "local_imported",
            6 => "local_revoked",
            _ => "send_succ",
        }
    }
}

/// Elem kinds stored (the numbering follows `pb::Elem`'s oneof tags).
pub mod elem_kind {
    /// Text.
    pub const TEXT: i32 = 1;
    /// Custom.
    pub const CUSTOM: i32 = 2;
    /// Image (origin + large + thumb), in [`StoredElem::media`](super::StoredElem::media).
    pub const IMAGE: i32 = 3;
    /// Sound, in `media`.
    pub const SOUND: i32 = 4;
    /// Video (+ snapshot), in `media`.
    pub const VIDEO: i32 = 5;
    /// File, in `media`.
    pub const FILE: i32 = 6;
    /// Location, in `media`.
    pub const LOCATION: i32 = 7;
    /// Face (sticker), in `media`.
    pub const FACE: i32 = 8;
    /// Group tips (system).
    pub const GROUP_TIPS: i32 = 9;
    /// Merged messages (chat history forwarded as one message).
    pub const MERGER: i32 = 10;
}

/// One elem of a stored message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredElem {
    /// See [`elem_kind`].
    #[prost(int32, tag = "1")]
    pub kind: i32,
    /// Text elem.
    #[prost(string, tag = "2")]
    pub text: String,
    /// Custom elem data.
    #[prost(bytes = "vec", tag = "3")]
    pub data: Vec<u8>,
    /// Custom elem description.
    #[prost(string, tag = "4")]
    pub description: String,
    /// Custom elem extension.
    #[prost(string, tag = "5")]
    pub extension: String,
    /// Group tips type.
    #[prost(int32, tag = "6")]
    pub tips_type: i32,
    /// Group tips operator.
    #[prost(string, tag = "7")]
    pub op_user: String,
    /// Group tips members.
    #[prost(string, repeated, tag = "8")]
    pub member_list: Vec<String>,
    /// Merger elem: the encoded `pb::MergerElem` (title, abstracts, the merged messages).
    #[prost(bytes = "vec", tag = "9")]
    pub merger: Vec<u8>,
    /// Image, sound, video, file, location and face elems: the wire elem plus, on the sending
    /// device, the local files still to upload (`crate::media`).
    #[prost(message, optional, tag = "10")]
    pub media: Option<crate::media::MediaRecord>,
}

/// Offline push info, carried as the sender set it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredPushInfo {
    /// Title.
    #[prost(string, tag = "1")]
    pub title: String,
    /// Body.
    #[prost(string, tag = "2")]
    pub desc: String,
    /// Extension.
    #[prost(string, tag = "3")]
    pub ext: String,
    /// No offline push.
    #[prost(bool, tag = "4")]
    pub disable_push: bool,
    /// iOS sound.
    #[prost(string, tag = "5")]
    pub ios_sound: String,
    /// Android sound.
    #[prost(string, tag = "6")]
    pub android_sound: String,
    /// Ignore the iOS badge.
    #[prost(bool, tag = "7")]
    pub ignore_ios_badge: bool,
    /// OPPO channel.
    #[prost(string, tag = "8")]
    pub android_oppo_channel_id: String,
    /// FCM channel.
    #[prost(string, tag = "9")]
    pub android_fcm_channel_id: String,
    /// Xiaomi channel.
    #[prost(string, tag = "10")]
    pub android_xiaomi_channel_id: String,
    /// vivo classification.
    #[prost(string, tag = "11")]
    pub android_vivo_classification: String,
    /// iOS push type.
    #[prost(string, tag = "12")]
    pub ios_push_type: String,
    /// Huawei category.
    #[prost(string, tag = "13")]
    pub android_huawei_category: String,
}

/// A message in the local store.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredMessage {
    /// Client-chosen id (unique per sender).
    #[prost(string, tag = "1")]
    pub msg_id: String,
    /// Sender.
    #[prost(string, tag = "2")]
    pub sender: String,
    /// True for group messages.
    #[prost(bool, tag = "3")]
    pub is_group: bool,
    /// C2C: the peer of the local user. Group: "".
    #[prost(string, tag = "4")]
    pub peer: String,
    /// Group id ("" for C2C).
    #[prost(string, tag = "5")]
    pub group_id: String,
    /// Server seq (0 until acked).
    #[prost(uint64, tag = "6")]
    pub seq: u64,
    /// Server time (ms), or the client's creation time until acked.
    #[prost(int64, tag = "7")]
    pub time_ms: i64,
    /// Random.
    #[prost(uint32, tag = "8")]
    pub random: u32,
    /// Elems.
    #[prost(message, repeated, tag = "9")]
    pub elems: Vec<StoredElem>,
    /// `pb::Priority` value.
    #[prost(int32, tag = "10")]
    pub priority: i32,
    /// Online only.
    #[prost(bool, tag = "11")]
    pub online_user_only: bool,
    /// Offline push info.
    #[prost(message, optional, tag = "12")]
    pub offline_push_info: Option<StoredPushInfo>,
    /// Need read receipt.
    #[prost(bool, tag = "13")]
    pub need_read_receipt: bool,
    /// Excluded from unread.
    #[prost(bool, tag = "14")]
    pub exclude_from_unread: bool,
    /// Excluded from last message.
    #[prost(bool, tag = "15")]
    pub exclude_from_last_message: bool,
    /// Cloud custom data.
    #[prost(bytes = "vec", tag = "16")]
    pub cloud_custom_data: Vec<u8>,
    /// @ list.
    #[prost(string, repeated, tag = "17")]
    pub group_at_user_list: Vec<String>,
    /// Sender nick.
    #[prost(string, tag = "18")]
    pub nick_name: String,
    /// Sender face.
    #[prost(string, tag = "19")]
    pub face_url: String,
    /// [`Status`] value.
    #[prost(int32, tag = "20")]
    pub status: i32,
    /// Local custom data.
    #[prost(bytes = "vec", tag = "21")]
    pub local_custom_data: Vec<u8>,
    /// Local custom int.
    #[prost(int32, tag = "22")]
    pub local_custom_int: i32,
    /// Local order (creation order on this device; 0 for received messages).
    #[prost(uint64, tag = "23")]
    pub local_order: u64,
    /// Broadcast message.
    #[prost(bool, tag = "24")]
    pub is_broadcast_message: bool,
    /// Targeted group receivers.
    #[prost(string, repeated, tag = "25")]
    pub target_user_list: Vec<String>,
    /// C2C: the receiving user as sent (the peer of the sender).
    #[prost(string, tag = "26")]
    pub receiver: String,
    /// Client creation time (ms).
    #[prost(int64, tag = "27")]
    pub client_time_ms: i64,
    /// Revoked.
    #[prost(bool, tag = "28")]
    pub revoked: bool,
    /// Server version: incremented by every modification and revoke.
    #[prost(uint32, tag = "29")]
    pub version: u32,
    /// Who revoked it.
    #[prost(string, tag = "30")]
    pub revoker: String,
    /// The reason given with the revoke.
    #[prost(string, tag = "31")]
    pub revoke_reason: String,
    /// The sender opted out of the app backend's before-send callback (tags 117.. are the
    /// webhooks' own, clear of the others).
    #[prost(bool, tag = "117")]
    pub disable_cloud_message_pre_hook: bool,
    /// The sender opted out of the app backend's after-send callback.
    #[prost(bool, tag = "118")]
    pub disable_cloud_message_post_hook: bool,
}

impl StoredMessage {
    /// The conversation id (`c2c_<peer>` / `group_<group>`).
    pub fn conversation_id(&self) -> String {
        if self.is_group {
            format!("group_{}", self.group_id)
        } else {
            format!("c2c_{}", self.peer)
        }
    }
}

/// One inclusive seq range.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SeqRange {
    /// First seq.
    #[prost(uint64, tag = "1")]
    pub from: u64,
    /// Last seq.
    #[prost(uint64, tag = "2")]
    pub to: u64,
}

/// The seq ranges of a conversation that the local store holds completely.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SyncedRanges {
    /// Disjoint, sorted, non-adjacent.
    #[prost(message, repeated, tag = "1")]
    pub ranges: Vec<SeqRange>,
}

/// A group the user belongs to, as last seen.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredGroup {
    /// Group id.
    #[prost(string, tag = "1")]
    pub group_id: String,
    /// Type (`Work`, ...).
    #[prost(string, tag = "2")]
    pub group_type: String,
    /// Name.
    #[prost(string, tag = "3")]
    pub name: String,
    /// Introduction.
    #[prost(string, tag = "4")]
    pub introduction: String,
    /// Notification.
    #[prost(string, tag = "5")]
    pub notification: String,
    /// Face URL.
    #[prost(string, tag = "6")]
    pub face_url: String,
    /// Owner.
    #[prost(string, tag = "7")]
    pub owner: String,
    /// Member count.
    #[prost(uint32, tag = "8")]
    pub member_count: u32,
    /// Creation time (ms).
    #[prost(int64, tag = "9")]
    pub create_time_ms: i64,
    /// Newest seq.
    #[prost(uint64, tag = "10")]
    pub max_seq: u64,
    /// Own role.
    #[prost(string, tag = "11")]
    pub self_role: String,
    /// Max member count.
    #[prost(uint32, tag = "12")]
    pub max_member_count: u32,
    /// Add option.
    #[prost(string, tag = "13")]
    pub add_opt: String,
    /// All muted.
    #[prost(bool, tag = "14")]
    pub is_all_muted: bool,
    /// Join time (ms).
    #[prost(int64, tag = "15")]
    pub self_join_time_ms: i64,
}
