//! Where a community's state lives in the store (table `k`, [`crate::keys::tag::COMMUNITY`]),
//! and how it is read, both by the commit task (through its transaction, so that later commands
//! of a batch see earlier ones) and by the read path (straight from the store).
//!
//! | sub-table | key | value |
//! |---|---|---|
//! | `r` | app, community | `pb::CommunityRecord`: options, topic ids, permission groups |
//! | `t` | app, community, topic | `pb::TopicInfo` |
//! | `u` | app, community, user | `pb::MemberPermissionGroups`: the user's permission groups |
//! | `g` | app, community, permission group, user | empty: member list of a permission group |
//!
//! Everything the commit task needs to decide a permission is in point reads (`r`, `t`, `u`), so
//! no scan of the staging path can miss a write still in flight; `g` is only scanned by reads.

use chime_proto::pb;
use prost::Message as _;

use super::perms;
use crate::error::StoreError;
use crate::keys::{Key, tag};
use crate::store::Store;
use crate::txn::Txn;

/// Point reads, from a transaction or from the store.
pub(crate) trait Get {
    /// The value of `key`.
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
}

impl Get for Txn<'_> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(key)
    }
}

impl Get for dyn Fn(&[u8]) -> Result<Option<Vec<u8>>, StoreError> + '_ {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self(key)
    }
}

impl Get for dyn Store + '_ {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(key)
    }
}

fn base(app: u64, sub: &[u8], community: &str) -> Key {
    Key::new(tag::COMMUNITY, app).s(sub).s(community.as_bytes())
}

/// Key of the community record.
pub(crate) fn record_key(app: u64, community: &str) -> Vec<u8> {
    base(app, b"r", community).done()
}

/// Key of a topic.
pub(crate) fn topic_key(app: u64, community: &str, topic: &str) -> Vec<u8> {
    base(app, b"t", community).s(topic.as_bytes()).done()
}

/// Key of a member's permission groups.
pub(crate) fn member_groups_key(app: u64, community: &str, user: &str) -> Vec<u8> {
    base(app, b"u", community).s(user.as_bytes()).done()
}

/// Key of one member of a permission group.
pub(crate) fn group_member_key(app: u64, community: &str, group: &str, user: &str) -> Vec<u8> {
    group_members_prefix(app, community, group)
        .s(user.as_bytes())
        .done()
}

/// Prefix of a permission group's member list.
pub(crate) fn group_members_prefix(app: u64, community: &str, group: &str) -> Key {
    base(app, b"g", community).s(group.as_bytes())
}

/// Prefixes of everything a community owns (dropped with the community).
pub(crate) fn all_prefixes(app: u64, community: &str) -> [(Vec<u8>, Vec<u8>); 4] {
    [b"r", b"t", b"u", b"g"].map(|sub| base(app, sub, community).prefix_range())
}

fn decode<T: prost::Message + Default>(v: Option<Vec<u8>>) -> Result<Option<T>, StoreError> {
    v.map(|v| T::decode(&v[..]).map_err(StoreError::from))
        .transpose()
}

/// The community record (defaults when none was written yet).
pub(crate) fn record(
    r: &(impl Get + ?Sized),
    app: u64,
    community: &str,
) -> Result<pb::CommunityRecord, StoreError> {
    Ok(
        decode(r.get_raw(&record_key(app, community))?)?.unwrap_or(pb::CommunityRecord {
            default_permissions: perms::DEFAULT_PERMISSIONS,
            ..Default::default()
        }),
    )
}

/// A topic, if it exists.
pub(crate) fn topic(
    r: &(impl Get + ?Sized),
    app: u64,
    community: &str,
    topic: &str,
) -> Result<Option<pb::TopicInfo>, StoreError> {
    decode(r.get_raw(&topic_key(app, community, topic))?)
}

/// The permission groups `user` belongs to.
pub(crate) fn member_groups(
    r: &(impl Get + ?Sized),
    app: u64,
    community: &str,
    user: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(
        decode::<pb::MemberPermissionGroups>(r.get_raw(&member_groups_key(app, community, user))?)?
            .map(|m| m.ids)
            .unwrap_or_default(),
    )
}

/// Stages the community record.
pub(crate) fn put_record(txn: &mut Txn<'_>, app: u64, community: &str, rec: &pb::CommunityRecord) {
    txn.put(record_key(app, community), rec.encode_to_vec());
}

/// Stages a topic.
pub(crate) fn put_topic(txn: &mut Txn<'_>, app: u64, t: &pb::TopicInfo) {
    let mut stored = t.clone();
    stored.max_seq = 0;
    txn.put(
        topic_key(app, &t.group_id, &t.topic_id),
        stored.encode_to_vec(),
    );
}

/// Stages a member's permission groups (deleted when empty).
pub(crate) fn put_member_groups(
    txn: &mut Txn<'_>,
    app: u64,
    community: &str,
    user: &str,
    ids: Vec<String>,
) {
    let key = member_groups_key(app, community, user);
    if ids.is_empty() {
        txn.del(key);
    } else {
        txn.put(key, pb::MemberPermissionGroups { ids }.encode_to_vec());
    }
}

/// The community a topic id names: the part before `@TOPIC#_`.
pub fn community_of(topic_id: &str) -> Option<&str> {
    let (community, suffix) = topic_id.split_once(super::TOPIC_MARK)?;
    (!community.is_empty() && !suffix.is_empty()).then_some(community)
}

/// The community of `id` when `id` is an existing topic.
pub(crate) fn topic_owner(
    r: &(impl Get + ?Sized),
    app: u64,
    id: &str,
) -> Result<Option<String>, StoreError> {
    let Some(community) = community_of(id) else {
        return Ok(None);
    };
    Ok(r.get_raw(&topic_key(app, community, id))?
        .map(|_| community.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_name_their_community() {
        assert_eq!(community_of("@TGS#_c1@TOPIC#_t"), Some("@TGS#_c1"));
        assert_eq!(community_of("@TGS#_c1"), None);
        assert_eq!(community_of("@TOPIC#_t"), None);
        assert_eq!(community_of("c@TOPIC#_"), None);
    }

    #[test]
    fn sub_tables_do_not_overlap() {
        let r = record_key(1, "c");
        let t = topic_key(1, "c", "t");
        let (lo, hi) = group_members_prefix(1, "c", "p").prefix_range();
        let range = lo..hi;
        assert!(!range.contains(&r) && !range.contains(&t));
        assert!(range.contains(&group_member_key(1, "c", "p", "u")));
    }
}
