//! The permission model of communities, as pure functions (no store, no I/O), so that the rules
//! are stated once and unit-tested: which community bits and which topic bits a member holds.
//!
//! - The owner, the administrators and the app administrator hold every bit.
//! - While permission groups are disabled (the default), an ordinary member holds
//!   [`MEMBER_BASELINE`] in the community and [`TOPIC_BASELINE`] in every topic: send, @all and
//!   read history, nothing to manage.
//! - Once enabled, an ordinary member holds the community's `default_permissions` plus the
//!   `group_permission` of every permission group they belong to. In a topic they hold the
//!   topic's `default_permissions`, the topic bits their permission groups give for that topic,
//!   and the topic equivalents of their community bits (a community bit applies to every topic).

use std::collections::BTreeMap;

use chime_proto::pb;

/// Community permission bits (the seed's `V2TIMCommunityPermissionValue`).
pub mod community {
    /// Change the community's profile.
    pub const MANAGE_GROUP_INFO: u64 = 0x1;
    /// Manage members (kick).
    pub const MANAGE_GROUP_MEMBER: u64 = 0x2;
    /// Create, delete, modify permission groups and their topic permissions.
    pub const MANAGE_PERMISSION_GROUP_INFO: u64 = 0x4;
    /// Add and remove members of permission groups.
    pub const MANAGE_PERMISSION_GROUP_MEMBER: u64 = 0x8;
    /// Create, delete and change topics.
    pub const MANAGE_TOPIC_IN_COMMUNITY: u64 = 0x10;
    /// Mute members.
    pub const MUTE_MEMBER: u64 = 0x20;
    /// Send messages.
    pub const SEND_MESSAGE: u64 = 0x40;
    /// @all.
    pub const AT_ALL: u64 = 0x80;
    /// Read history.
    pub const GET_HISTORY_MESSAGE: u64 = 0x100;
    /// Revoke other members' messages.
    pub const REVOKE_OTHER_MEMBER_MESSAGE: u64 = 0x200;
    /// Ban members.
    pub const BAN_MEMBER: u64 = 0x400;
    /// Every bit.
    pub const ALL: u64 = 0x7ff;
}

/// Topic permission bits (the seed's `V2TIMTopicPermissionValue`).
pub mod topic {
    /// Change the topic.
    pub const MANAGE_TOPIC: u64 = 0x1;
    /// Change the topic's permissions in permission groups.
    pub const MANAGE_TOPIC_PERMISSION: u64 = 0x2;
    /// Mute members in the topic.
    pub const MUTE_MEMBER: u64 = 0x4;
    /// Send messages to the topic.
    pub const SEND_MESSAGE: u64 = 0x8;
    /// Read the topic's history.
    pub const GET_HISTORY_MESSAGE: u64 = 0x10;
    /// Revoke other members' messages in the topic.
    pub const REVOKE_OTHER_MEMBER_MESSAGE: u64 = 0x20;
    /// @all in the topic.
    pub const AT_ALL: u64 = 0x40;
    /// Every bit.
    pub const ALL: u64 = 0x7f;
}

/// An ordinary member's community bits while permission groups are disabled.
pub const MEMBER_BASELINE: u64 =
    community::SEND_MESSAGE | community::AT_ALL | community::GET_HISTORY_MESSAGE;
/// An ordinary member's topic bits while permission groups are disabled.
pub const TOPIC_BASELINE: u64 = topic::SEND_MESSAGE | topic::AT_ALL | topic::GET_HISTORY_MESSAGE;
/// The community default permissions before anyone sets them.
pub const DEFAULT_PERMISSIONS: u64 = MEMBER_BASELINE;

/// Who is asking, as far as permissions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Owner, administrator or the app administrator: every bit.
    Staff,
    /// An ordinary member.
    Member,
    /// Not a member: no bit.
    Outsider,
}

/// The community bits of a member with `standing` who belongs to `groups`.
pub fn community_bits(
    standing: Standing,
    record: &pb::CommunityRecord,
    groups: &[&pb::PermissionGroupInfo],
) -> u64 {
    match standing {
        Standing::Staff => community::ALL,
        Standing::Outsider => 0,
        Standing::Member if !record.enable_permission_group => MEMBER_BASELINE,
        Standing::Member => groups.iter().fold(record.default_permissions, |acc, g| {
            acc | g.group_permission
        }),
    }
}

/// The topic bits that community bits `c` give in every topic.
fn topic_equivalents(c: u64) -> u64 {
    [
        (
            community::MANAGE_TOPIC_IN_COMMUNITY,
            topic::MANAGE_TOPIC | topic::MANAGE_TOPIC_PERMISSION,
        ),
        (
            community::MANAGE_PERMISSION_GROUP_INFO,
            topic::MANAGE_TOPIC_PERMISSION,
        ),
        (community::MUTE_MEMBER, topic::MUTE_MEMBER),
        (community::SEND_MESSAGE, topic::SEND_MESSAGE),
        (community::AT_ALL, topic::AT_ALL),
        (community::GET_HISTORY_MESSAGE, topic::GET_HISTORY_MESSAGE),
        (
            community::REVOKE_OTHER_MEMBER_MESSAGE,
            topic::REVOKE_OTHER_MEMBER_MESSAGE,
        ),
    ]
    .iter()
    .filter(|(cb, _)| c & cb != 0)
    .fold(0, |acc, (_, tb)| acc | tb)
}

/// The topic bits in `t` of a member with `standing` who belongs to `groups`.
pub fn topic_bits(
    standing: Standing,
    record: &pb::CommunityRecord,
    t: &pb::TopicInfo,
    groups: &[&pb::PermissionGroupInfo],
) -> u64 {
    match standing {
        Standing::Staff => topic::ALL,
        Standing::Outsider => 0,
        Standing::Member if !record.enable_permission_group => TOPIC_BASELINE,
        Standing::Member => {
            let from_groups = groups
                .iter()
                .filter_map(|g| g.topic_permissions.get(&t.topic_id))
                .fold(0, |acc, b| acc | b);
            t.default_permissions
                | from_groups
                | topic_equivalents(community_bits(standing, record, groups))
        }
    }
}

/// The permission groups of `record` named in `ids`.
pub fn groups_of<'a>(
    record: &'a pb::CommunityRecord,
    ids: &[String],
) -> Vec<&'a pb::PermissionGroupInfo> {
    record
        .permission_groups
        .iter()
        .filter(|g| ids.contains(&g.permission_group_id))
        .collect()
}

/// Checks a topic → permission map: every value within [`topic::ALL`].
pub fn valid_topic_map(m: &BTreeMap<String, u64>) -> bool {
    m.values().all(|v| v & !topic::ALL == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(enabled: bool, default_permissions: u64) -> pb::CommunityRecord {
        pb::CommunityRecord {
            enable_permission_group: enabled,
            default_permissions,
            ..Default::default()
        }
    }

    fn pg(id: &str, bits: u64, topics: &[(&str, u64)]) -> pb::PermissionGroupInfo {
        pb::PermissionGroupInfo {
            permission_group_id: id.into(),
            group_permission: bits,
            topic_permissions: topics.iter().map(|(t, b)| ((*t).into(), *b)).collect(),
            ..Default::default()
        }
    }

    fn t(id: &str, default_permissions: u64) -> pb::TopicInfo {
        pb::TopicInfo {
            topic_id: id.into(),
            default_permissions,
            ..Default::default()
        }
    }

    #[test]
    fn staff_hold_everything_and_outsiders_nothing() {
        let r = record(true, 0);
        assert_eq!(community_bits(Standing::Staff, &r, &[]), community::ALL);
        assert_eq!(topic_bits(Standing::Staff, &r, &t("x", 0), &[]), topic::ALL);
        assert_eq!(
            community_bits(Standing::Outsider, &record(false, 0), &[]),
            0
        );
        assert_eq!(
            topic_bits(Standing::Outsider, &record(false, 0), &t("x", 0), &[]),
            0
        );
    }

    #[test]
    fn disabled_permission_groups_give_members_the_baseline() {
        let r = record(false, 0);
        let g = pg("p", community::ALL, &[("x", topic::ALL)]);
        assert_eq!(community_bits(Standing::Member, &r, &[&g]), MEMBER_BASELINE);
        assert_eq!(
            topic_bits(Standing::Member, &r, &t("x", 0), &[&g]),
            TOPIC_BASELINE
        );
    }

    #[test]
    fn enabled_permission_groups_add_to_the_defaults() {
        let r = record(true, community::GET_HISTORY_MESSAGE);
        let a = pg("a", community::MANAGE_TOPIC_IN_COMMUNITY, &[]);
        let b = pg("b", community::MUTE_MEMBER, &[("x", topic::SEND_MESSAGE)]);
        assert_eq!(
            community_bits(Standing::Member, &r, &[]),
            community::GET_HISTORY_MESSAGE
        );
        assert_eq!(
            community_bits(Standing::Member, &r, &[&a, &b]),
            community::GET_HISTORY_MESSAGE
                | community::MANAGE_TOPIC_IN_COMMUNITY
                | community::MUTE_MEMBER
        );
        // Topic x: its default (at-all), b's send in x, and the community bits' equivalents.
        assert_eq!(
            topic_bits(Standing::Member, &r, &t("x", topic::AT_ALL), &[&b]),
            topic::AT_ALL | topic::SEND_MESSAGE | topic::MUTE_MEMBER | topic::GET_HISTORY_MESSAGE
        );
        // Topic y: b gives nothing there.
        assert_eq!(
            topic_bits(Standing::Member, &r, &t("y", 0), &[&b]),
            topic::MUTE_MEMBER | topic::GET_HISTORY_MESSAGE
        );
        assert_eq!(
            topic_bits(Standing::Member, &r, &t("y", 0), &[&a]),
            topic::MANAGE_TOPIC | topic::MANAGE_TOPIC_PERMISSION | topic::GET_HISTORY_MESSAGE
        );
    }

    #[test]
    fn groups_are_picked_by_id_and_topic_maps_are_checked() {
        let mut r = record(true, 0);
        r.permission_groups = vec![pg("a", 1, &[]), pg("b", 2, &[])];
        let picked = groups_of(&r, &["b".to_owned(), "zz".to_owned()]);
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].permission_group_id, "b");
        assert!(valid_topic_map(&[("x".to_owned(), topic::ALL)].into()));
        assert!(!valid_topic_map(&[("x".to_owned(), 0x80)].into()));
    }
}
