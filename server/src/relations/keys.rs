//! The key layout of the relationship tables. Everything lives under one store tag
//! ([`tag::RELATION`](crate::keys::tag::RELATION)), then the SDKAppID, then the user the record
//! belongs to, then a one-letter table name, so a user's records of one kind are one prefix scan.
//!
//! | table | key after `F app user` | value |
//! |---|---|---|
//! | `P` | — | `pb::UserProfile` |
//! | `T` | — | custom status (UTF-8) |
//! | `F` | friend | `pb::Friend` (profile empty): `user` has `friend` in their list |
//! | `f` | owner | empty: reverse index, `owner` has `user` in their list |
//! | `A` | `i`/`o`, other | `pb::FriendApplication` come-in / send-out (profile empty) |
//! | `B` | other | `pb::BlackEntry` (profile empty) |
//! | `Q` | group name | `pb::FriendGroup` |
//! | `R` | — | applications read time (i64 ms) |
//! | `o` | target | follow time (i64 ms): `user` follows `target` |
//! | `w` | follower | follow time (i64 ms): `follower` follows `user` |
//! | `u` | subscriber | empty: `subscriber` watches `user`'s profile |
//! | `t` | subscriber | empty: `subscriber` watches `user`'s status |
//! | `U` / `S` | target | empty: `user` watches `target`'s profile / status (reverse indexes) |
//! | `L` | version (u64) | item key (see `pb::RelationItem::key`): the relationship change log |
//! | `V` | item key | the item's current log version (u64) |
//! | `C` | — | the user's relationship version (u64) |

use crate::keys::{Key, tag};

/// `F app user table`.
pub fn base(app: u64, user: &str, table: &[u8]) -> Key {
    Key::new(tag::RELATION, app).s(user.as_bytes()).s(table)
}

/// `user`'s profile.
pub fn profile(app: u64, user: &str) -> Vec<u8> {
    base(app, user, b"P").done()
}

/// `user`'s custom status.
pub fn custom_status(app: u64, user: &str) -> Vec<u8> {
    base(app, user, b"T").done()
}

/// `owner` has `friend` in their list.
pub fn friend(app: u64, owner: &str, friend: &str) -> Vec<u8> {
    base(app, owner, b"F").s(friend.as_bytes()).done()
}

/// Reverse index of [`friend`].
pub fn friend_of(app: u64, friend: &str, owner: &str) -> Vec<u8> {
    base(app, friend, b"f").s(owner.as_bytes()).done()
}

/// An application in `owner`'s list; `incoming` = sent to `owner` by `other`.
pub fn application(app: u64, owner: &str, incoming: bool, other: &str) -> Vec<u8> {
    let dir: &[u8] = if incoming { b"i" } else { b"o" };
    base(app, owner, b"A").s(dir).s(other.as_bytes()).done()
}

/// `owner` blocked `other`.
pub fn black(app: u64, owner: &str, other: &str) -> Vec<u8> {
    base(app, owner, b"B").s(other.as_bytes()).done()
}

/// `owner`'s friend group `name`.
pub fn friend_group(app: u64, owner: &str, name: &str) -> Vec<u8> {
    base(app, owner, b"Q").s(name.as_bytes()).done()
}

/// When `owner` last marked their applications read.
pub fn applications_read(app: u64, owner: &str) -> Vec<u8> {
    base(app, owner, b"R").done()
}

/// `user` follows `target`.
pub fn following(app: u64, user: &str, target: &str) -> Vec<u8> {
    base(app, user, b"o").s(target.as_bytes()).done()
}

/// `follower` follows `user`.
pub fn follower(app: u64, user: &str, follower: &str) -> Vec<u8> {
    base(app, user, b"w").s(follower.as_bytes()).done()
}

/// `subscriber` watches `user`'s profile.
pub fn info_sub(app: u64, user: &str, subscriber: &str) -> Vec<u8> {
    base(app, user, b"u").s(subscriber.as_bytes()).done()
}

/// `subscriber` watches `user`'s status.
pub fn status_sub(app: u64, user: &str, subscriber: &str) -> Vec<u8> {
    base(app, user, b"t").s(subscriber.as_bytes()).done()
}

/// Reverse index of [`info_sub`]: `user` watches `target`'s profile.
pub fn my_info_sub(app: u64, user: &str, target: &str) -> Vec<u8> {
    base(app, user, b"U").s(target.as_bytes()).done()
}

/// Reverse index of [`status_sub`]: `user` watches `target`'s status.
pub fn my_status_sub(app: u64, user: &str, target: &str) -> Vec<u8> {
    base(app, user, b"S").s(target.as_bytes()).done()
}

/// Change-log entry `version` of `user`.
pub fn log(app: u64, user: &str, version: u64) -> Vec<u8> {
    base(app, user, b"L").n(version).done()
}

/// Current log version of `item` for `user`.
pub fn item_version(app: u64, user: &str, item: &str) -> Vec<u8> {
    base(app, user, b"V").s(item.as_bytes()).done()
}

/// `user`'s relationship version.
pub fn version(app: u64, user: &str) -> Vec<u8> {
    base(app, user, b"C").done()
}

/// The length of the prefix `F app user table` up to (not including) the trailing
/// length-prefixed component of a two-component key such as [`friend`]: for
/// [`crate::keys::trailing_str`].
pub fn prefix_len(user: &str, table: &[u8]) -> usize {
    1 + 8 + 1 + user.len() + 1 + table.len()
}

/// Whether `key` is a record that staging a message reads on every send: a profile (`P`,
/// stamped on the message) or a block-list entry (`B`, checked for C2C). The staging thread's
/// read cache keeps these ([`crate::read_cache`]).
pub fn read_on_send(key: &[u8]) -> bool {
    let Some(&user_len) = key.get(9) else {
        return false;
    };
    let table = 10 + usize::from(user_len);
    key.first() == Some(&tag::RELATION)
        && key.get(table) == Some(&1)
        && matches!(key.get(table + 1), Some(b'P' | b'B'))
}

/// Item keys of the change log (`pb::RelationItem::key`).
pub mod item {
    /// A friend.
    pub fn friend(user: &str) -> String {
        format!("f/{user}")
    }
    /// An application (`incoming` = come-in).
    pub fn application(incoming: bool, user: &str) -> String {
        format!("a/{}/{user}", if incoming { "i" } else { "o" })
    }
    /// A blacklist entry.
    pub fn black(user: &str) -> String {
        format!("b/{user}")
    }
    /// A friend group.
    pub fn friend_group(name: &str) -> String {
        format!("g/{name}")
    }
    /// The user's own profile.
    pub const SELF_PROFILE: &str = "s";
    /// The applications' read time.
    pub const APPLICATIONS_READ: &str = "r";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_of_one_user_are_disjoint_prefixes() {
        let (lo, hi) = base(1, "bob", b"F").prefix_range();
        let k = friend(1, "bob", "alice");
        assert!(lo <= k && k < hi);
        assert!(friend_of(1, "bob", "alice") >= hi || friend_of(1, "bob", "alice") < lo);
        assert!(friend(1, "bo", "balice") < lo || friend(1, "bo", "balice") >= hi);
        assert_eq!(
            crate::keys::trailing_str(&k, prefix_len("bob", b"F")),
            Some("alice".to_owned())
        );
        assert!(log(1, "bob", 2) < log(1, "bob", 10));
    }
}
