//! The I/O-free core of the relationship slice: the user's relationship items (friends,
//! applications, blacklist, friend groups, own profile, applications-read time) as the last sync
//! left them, and the rule that turns a sync page into the listener events of the seed
//! (`on_friend_list_added`, `on_friend_group_name_changed`, ...). The same rule runs for a change
//! made on this device, on another device, or while this device was offline, so every device
//! reports the same changes.

use std::collections::BTreeMap;

use chime_proto::pb;

/// The user's relationship state.
#[derive(Debug, Default, Clone)]
pub struct RelState {
    /// The server version this state reflects.
    pub version: u64,
    /// Items by key (`pb::RelationItem::key`).
    pub items: BTreeMap<String, pb::RelationItem>,
}

/// What one sync changed, grouped as the listener reports it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Changes {
    /// Friends that appeared.
    pub friends_added: Vec<pb::Friend>,
    /// Friends that left.
    pub friends_deleted: Vec<String>,
    /// Friends whose record or profile changed.
    pub friends_changed: Vec<pb::Friend>,
    /// Applications that appeared (both directions).
    pub applications_added: Vec<pb::FriendApplication>,
    /// Applications that went away (the other user's id).
    pub applications_deleted: Vec<String>,
    /// The applications were marked read.
    pub applications_read: bool,
    /// Users blocked.
    pub black_added: Vec<pb::BlackEntry>,
    /// Users unblocked.
    pub black_deleted: Vec<String>,
    /// Friend groups created.
    pub groups_created: Vec<pb::FriendGroup>,
    /// Friend groups deleted.
    pub groups_deleted: Vec<String>,
    /// Friend groups renamed: (old, new).
    pub groups_renamed: Vec<(String, String)>,
    /// Friends added to an existing group: (group, user ids).
    pub group_members_added: Vec<(String, Vec<String>)>,
    /// Friends removed from an existing group: (group, user ids).
    pub group_members_removed: Vec<(String, Vec<String>)>,
    /// The own profile changed: the new one.
    pub self_profile: Option<pb::UserProfile>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// The other user's id in an item key (`f/bob`, `a/i/bob`, `b/bob`).
fn user_of(key: &str) -> String {
    key.rsplit_once('/').map_or("", |(_, u)| u).to_owned()
}

impl RelState {
    /// Applies one sync page (items oldest change first) and says what changed.
    pub fn apply(&mut self, items: Vec<pb::RelationItem>, version: u64) -> Changes {
        let mut ch = Changes::default();
        // Groups removed in this page, kept until the end in case a rename consumes them.
        let mut removed_groups: Vec<String> = Vec::new();
        for it in items {
            let key = it.key.clone();
            let old = self.items.remove(&key);
            let new = if it.removed { None } else { Some(it) };
            match key.split('/').next().unwrap_or("") {
                "f" => match (&old, &new) {
                    (None, Some(n)) => ch.friends_added.extend(n.friend.clone()),
                    (Some(_), None) => ch.friends_deleted.push(user_of(&key)),
                    (Some(o), Some(n)) if o != n => ch.friends_changed.extend(n.friend.clone()),
                    _ => {}
                },
                "a" => match (&old, &new) {
                    (None, Some(n)) => ch.applications_added.extend(n.application.clone()),
                    (Some(_), None) => ch.applications_deleted.push(user_of(&key)),
                    _ => {}
                },
                "b" => match (&old, &new) {
                    (None, Some(n)) => ch.black_added.extend(n.black.clone()),
                    (Some(_), None) => ch.black_deleted.push(user_of(&key)),
                    _ => {}
                },
                "g" => {
                    let name = key.get(2..).unwrap_or("").to_owned();
                    let members = |i: &Option<pb::RelationItem>| {
                        i.as_ref()
                            .and_then(|i| i.friend_group.as_ref())
                            .map(|g| g.user_ids.clone())
                            .unwrap_or_default()
                    };
                    match (&old, &new) {
                        (Some(_), None) => removed_groups.push(name),
                        (None, Some(n)) => {
                            let g = n.friend_group.clone().unwrap_or_default();
                            let from = g.renamed_from.clone();
                            if !from.is_empty() && removed_groups.contains(&from) {
                                removed_groups.retain(|x| *x != from);
                                ch.groups_renamed.push((from, name));
                            } else if !from.is_empty()
                                && self.items.remove(&format!("g/{from}")).is_some()
                            {
                                ch.groups_renamed.push((from, name));
                            } else {
                                ch.groups_created.push(g);
                            }
                        }
                        (Some(_), Some(_)) => {
                            let (before, after) = (members(&old), members(&new));
                            let added: Vec<String> = after
                                .iter()
                                .filter(|u| !before.contains(u))
                                .cloned()
                                .collect();
                            let gone: Vec<String> = before
                                .iter()
                                .filter(|u| !after.contains(u))
                                .cloned()
                                .collect();
                            if !added.is_empty() {
                                ch.group_members_added.push((name.clone(), added));
                            }
                            if !gone.is_empty() {
                                ch.group_members_removed.push((name, gone));
                            }
                        }
                        (None, None) => {}
                    }
                }
                "s" => {
                    if let Some(n) = &new
                        && old.as_ref() != Some(n)
                    {
                        ch.self_profile.clone_from(&n.profile);
                    }
                }
                "r" if new.is_some() && old != new => ch.applications_read = true,
                _ => {}
            }
            if let Some(n) = new {
                self.items.insert(key, n);
            }
        }
        ch.groups_deleted = removed_groups;
        self.version = self.version.max(version);
        ch
    }

    /// The friends, in user id order.
    pub fn friends(&self) -> impl Iterator<Item = &pb::Friend> {
        self.prefixed("f/").filter_map(|i| i.friend.as_ref())
    }

    /// One friend.
    pub fn friend(&self, user: &str) -> Option<&pb::Friend> {
        self.items.get(&format!("f/{user}"))?.friend.as_ref()
    }

    /// The applications, newest first.
    pub fn applications(&self) -> Vec<&pb::FriendApplication> {
        let mut v: Vec<_> = self
            .prefixed("a/")
            .filter_map(|i| i.application.as_ref())
            .collect();
        v.sort_by(|a, b| {
            b.add_time_ms
                .cmp(&a.add_time_ms)
                .then(a.user_id.cmp(&b.user_id))
        });
        v
    }

    /// Incoming applications newer than the read time.
    pub fn unread_applications(&self) -> usize {
        let read = self.items.get("r").map_or(0, |i| i.read_time_ms);
        self.applications()
            .into_iter()
            .filter(|a| a.r#type == pb::ApplicationType::ComeIn as i32 && a.add_time_ms > read)
            .count()
    }

    /// The blacklist, in user id order.
    pub fn black_list(&self) -> impl Iterator<Item = &pb::BlackEntry> {
        self.prefixed("b/").filter_map(|i| i.black.as_ref())
    }

    /// The friend groups, by name.
    pub fn friend_groups(&self) -> impl Iterator<Item = &pb::FriendGroup> {
        self.prefixed("g/").filter_map(|i| i.friend_group.as_ref())
    }

    /// The own profile, if synced.
    pub fn self_profile(&self) -> Option<&pb::UserProfile> {
        self.items.get("s")?.profile.as_ref()
    }

    fn prefixed<'a>(&'a self, p: &'a str) -> impl Iterator<Item = &'a pb::RelationItem> {
        self.items
            .range(p.to_owned()..)
            .take_while(move |(k, _)| k.starts_with(p))
            .map(|(_, v)| v)
    }
}

/// How well a friend matches a local search: lower is better, `None` = no match. Every keyword
/// must match one of the fields searched; an exact match ranks before a prefix, a prefix before
/// a substring (case-insensitive).
pub fn search_rank(f: &pb::Friend, keywords: &[String], fields: &[&str]) -> Option<u32> {
    let nick = f.profile.as_ref().map_or("", |p| p.nick_name.as_str());
    let values: Vec<&str> = fields
        .iter()
        .map(|field| match *field {
            "user_id" => f.user_id.as_str(),
            "nick_name" => nick,
            _ => f.remark.as_str(),
        })
        .collect();
    let mut total = 0;
    for kw in keywords {
        let kw = kw.to_lowercase();
        let best = values
            .iter()
            .filter_map(|v| {
                let v = v.to_lowercase();
                if v == kw {
                    Some(0)
                } else if v.starts_with(&kw) {
                    Some(1)
                } else if v.contains(&kw) {
                    Some(2)
                } else {
                    None
                }
            })
            .min()?;
        total += best;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn friend(u: &str, remark: &str) -> pb::RelationItem {
        pb::RelationItem {
            key: format!("f/{u}"),
            friend: Some(pb::Friend {
                user_id: u.into(),
                remark: remark.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn group(name: &str, users: &[&str], from: &str) -> pb::RelationItem {
        pb::RelationItem {
            key: format!("g/{name}"),
            friend_group: Some(pb::FriendGroup {
                name: name.into(),
                user_ids: users.iter().map(|u| (*u).to_owned()).collect(),
                renamed_from: from.into(),
                create_time_ms: 0,
            }),
            ..Default::default()
        }
    }

    fn removed(key: &str) -> pb::RelationItem {
        pb::RelationItem {
            key: key.into(),
            removed: true,
            ..Default::default()
        }
    }

    #[test]
    fn friends_added_changed_and_deleted_are_reported_once() {
        let mut s = RelState::default();
        let ch = s.apply(vec![friend("bob", ""), friend("carol", "")], 2);
        assert_eq!(ch.friends_added.len(), 2);
        assert_eq!(s.version, 2);
        // The same items again change nothing.
        assert!(s.apply(vec![friend("bob", "")], 3).is_empty());
        let ch = s.apply(vec![friend("bob", "Bobby"), removed("f/carol")], 5);
        assert_eq!(ch.friends_changed[0].remark, "Bobby");
        assert_eq!(ch.friends_deleted, vec!["carol".to_owned()]);
        assert_eq!(s.friends().count(), 1);
        // Removing what was never there is silent.
        assert!(s.apply(vec![removed("f/zed")], 6).is_empty());
    }

    #[test]
    fn a_rename_is_one_event_even_across_pages() {
        let mut s = RelState::default();
        let ch = s.apply(vec![group("work", &["bob"], "")], 1);
        assert_eq!(ch.groups_created.len(), 1);
        let ch = s.apply(vec![removed("g/work"), group("job", &["bob"], "work")], 3);
        assert_eq!(ch.groups_renamed, vec![("work".into(), "job".into())]);
        assert!(ch.groups_created.is_empty() && ch.groups_deleted.is_empty());
        // Page split: the removal was seen earlier (state no longer has it) or not at all.
        let ch = s.apply(vec![group("team", &["bob"], "job")], 4);
        assert_eq!(ch.groups_renamed, vec![("job".into(), "team".into())]);
        assert_eq!(s.friend_groups().count(), 1);
        let ch = s.apply(vec![group("team", &["bob", "carol"], "")], 5);
        assert_eq!(
            ch.group_members_added,
            vec![("team".into(), vec!["carol".into()])]
        );
        let ch = s.apply(vec![group("team", &["carol"], ""), removed("g/team")], 6);
        assert_eq!(
            ch.group_members_removed,
            vec![("team".into(), vec!["bob".into()])]
        );
        assert_eq!(ch.groups_deleted, vec!["team".to_owned()]);
    }

    #[test]
    fn search_ranks_exact_before_prefix_before_substring() {
        let mut a = friend("anna", "").friend.unwrap_or_default();
        a.remark = "boss".into();
        let b = friend("bob", "").friend.unwrap_or_default();
        let c = friend("kabob", "").friend.unwrap_or_default();
        let kw = vec!["bo".to_owned()];
        let fields = ["user_id", "remark"];
        assert_eq!(search_rank(&a, &kw, &fields), Some(1));
        assert_eq!(search_rank(&b, &["bob".into()], &fields), Some(0));
        assert_eq!(search_rank(&c, &kw, &fields), Some(2));
        assert_eq!(search_rank(&c, &["zz".into()], &fields), None);
        assert_eq!(search_rank(&a, &kw, &["user_id"]), None);
    }
}
