//! Users and relationships (issue 10): profiles, custom status, friends, friend applications,
//! friend groups, the blacklist, follow, and subscriptions to other users' profile and status.
//!
//! Writes arrive as one request kind (`pb::RelationReq`, one `oneof` variant per operation) and
//! are staged by the commit task ([`stage`]); reads run on the blocking pool ([`read`]).
//!
//! **Sync by version.** A user's relationship state (friends with their profiles, applications,
//! blacklist, friend groups, own profile, applications-read time) is a set of *items*. Every
//! write moves the changed items to the end of that user's relationship change log (one log
//! entry per item, like the conversation change log), and pushes `RelationChangedPush` to the
//! user's online devices. A device asks `RelationSyncReq {version}` and gets every item changed
//! since, with its current value or `removed` — so a device that was offline, or another device
//! of the same user, converges on the same state, and version 0 gets the whole state. Follow
//! lists, status and subscriptions are not items: they are read from the server on demand and
//! their changes are pushed to the devices online.
//!
//! The blacklist also guards messaging: [`check_c2c`] refuses a C2C message to a user who has
//! blocked the sender (20007), and [`stamp_sender`] puts the sender's current nick name and face
//! URL on every message.

pub mod keys;
pub mod presence;
pub mod read;
pub mod stage;

use chime_proto::pb;
use prost::Message as _;

use crate::error::{ApiError, ApiResult};
use crate::txn::Txn;

pub use presence::{presence_changed, push_status, status_flipped};
pub use read::read;
pub(crate) use stage::stage;

/// Relationship server codes (Tencent's 3xxxx / 4xxxx, `tencent-api-surface.md` §5).
pub mod code {
    /// Invalid request parameters.
    pub const INVALID_PARAMETERS: i32 = 30001;
    /// The account does not exist.
    pub const ACCOUNT_NOT_FOUND: i32 = 30003;
    /// Own friend count at the limit.
    pub const FRIEND_COUNT_LIMIT: i32 = 30010;
    /// Friend group count at the limit.
    pub const GROUP_COUNT_LIMIT: i32 = 30011;
    /// Blacklist at the limit.
    pub const BLACKLIST_LIMIT: i32 = 30013;
    /// Already friends.
    pub const ALREADY_FRIENDS: i32 = 30015;
    /// Add friend: the peer is in my blacklist.
    pub const IN_SELF_BLACKLIST: i32 = 30515;
    /// Add friend: the peer denies any request.
    pub const ALLOW_TYPE_DENY_ANY: i32 = 30516;
    /// Add friend: I am in the peer's blacklist.
    pub const IN_PEER_BLACKLIST: i32 = 30525;
    /// Add friend: the peer must confirm; an application was sent.
    pub const ALLOW_TYPE_NEED_CONFIRM: i32 = 30539;
    /// No such application.
    pub const APPLICATION_NOT_FOUND: i32 = 30614;
    /// Not a friend.
    pub const NOT_A_FRIEND: i32 = 31704;
    /// Own following count at the limit.
    pub const FOLLOWING_LIMIT: i32 = 32100;
    /// Profile: invalid parameters.
    pub const PROFILE_INVALID_PARAMETERS: i32 = 40001;
    /// Profile: a value over 500 bytes.
    pub const PROFILE_SIZE_LIMIT: i32 = 40601;
}

/// Limits (the seed's).
pub mod limit {
    /// Friends per user.
    pub const FRIENDS: usize = 10_000;
    /// Friend groups per user.
    pub const FRIEND_GROUPS: usize = 30;
    /// Blacklist entries per user.
    pub const BLACKLIST: usize = 1_000;
    /// Users one user may follow.
    pub const FOLLOWING: usize = 5_000;
    /// Users in one batch request.
    pub const BATCH_USERS: usize = 1_000;
    /// Profile subscriptions / status subscriptions per user.
    pub const SUBSCRIPTIONS: usize = 200;
    /// Bytes of one profile value (nick name, signature, custom field...).
    pub const PROFILE_VALUE_BYTES: usize = 500;
    /// Bytes of a custom status.
    pub const CUSTOM_STATUS_BYTES: usize = 100;
}

/// Allow types on the wire.
pub mod allow {
    /// Friend requests need my confirmation (the default).
    pub const NEED_CONFIRM: i32 = 0;
    /// Anyone may add me.
    pub const ALLOW_ANY: i32 = 1;
    /// Nobody may add me.
    pub const DENY_ANY: i32 = 2;
}

/// `user`'s stored profile, or a default one carrying the id.
pub fn load_profile(txn: &Txn<'_>, app: u64, user: &str) -> ApiResult<pb::UserProfile> {
    Ok(match txn.get(&keys::profile(app, user))? {
        Some(v) => pb::UserProfile::decode(&v[..]).map_err(crate::error::StoreError::from)?,
        None => pb::UserProfile {
            user_id: user.to_owned(),
            ..Default::default()
        },
    })
}

/// Refuses a C2C message from `sender` to a `receiver` who blocked them (20007).
pub fn check_c2c(txn: &Txn<'_>, app: u64, sender: &str, receiver: &str) -> ApiResult<()> {
    if sender != receiver && txn.get(&keys::black(app, receiver, sender))?.is_some() {
        return Err(ApiError::new(
            chime_proto::codes::ERR_SVR_BLOCKED_BY_RECEIVER,
            "the receiver has blocked the sender",
        ));
    }
    Ok(())
}

/// Stamps the sender's current nick name and face URL on a message being sent.
pub fn stamp_sender(txn: &Txn<'_>, app: u64, msg: &mut pb::Message) -> ApiResult<()> {
    if let Some(v) = txn.get(&keys::profile(app, &msg.sender))? {
        let p = pb::UserProfile::decode(&v[..]).map_err(crate::error::StoreError::from)?;
        msg.nick_name = p.nick_name;
        msg.face_url = p.face_url;
    }
    Ok(())
}
