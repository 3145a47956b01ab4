//! The conversation rules that need no I/O: which conversations are listed, in what order, what
//! a filter matches, which ones count toward the total unread, the `@` info a message adds, and
//! the api.md JSON object. The actor keeps the state; this module decides.

use chime_proto::pb;
use serde_json::{Value, json};

use super::record::{AtInfo, ConvRecord, at_type};
use crate::codec;
use crate::model::StoredMessage;

/// Mark bits of the seed (`V2TIMConversationMarkType`).
pub mod mark {
    /// Star.
    pub const STAR: u64 = 1;
    /// Marked unread.
    pub const UNREAD: u64 = 2;
    /// Folded.
    pub const FOLD: u64 = 4;
    /// Hidden.
    pub const HIDE: u64 = 8;
}

/// The `@all` entry of a message's `group_at_user_list`.
pub const AT_ALL: &str = "__kImSDK_MessageAtALL__";

/// Receive options by value (api.md §1 spelling).
pub const RECV_OPTS: [&str; 4] = [
    "receive",
    "not_receive",
    "not_notify",
    "not_notify_except_at",
];

/// The api.md name of a receive option value.
pub fn recv_opt_str(v: i32) -> &'static str {
    usize::try_from(v)
        .ok()
        .and_then(|i| RECV_OPTS.get(i))
        .copied()
        .unwrap_or("receive")
}

/// The value of an api.md receive option name.
pub fn recv_opt_from_str(s: &str) -> Option<i32> {
    RECV_OPTS
        .iter()
        .position(|o| *o == s)
        .and_then(|i| i32::try_from(i).ok())
}

fn settings(r: &ConvRecord) -> pb::ConvSettings {
    r.settings.clone().unwrap_or_default()
}

/// The marks in effect: the hide mark lapses when a message arrives after hiding.
pub fn effective_marks(r: &ConvRecord) -> u64 {
    let s = r.settings.as_ref();
    let marks = s.map_or(0, |s| s.marks);
    if marks & mark::HIDE != 0 && s.is_some_and(|s| r.max_seq > s.hide_seq) {
        marks & !mark::HIDE
    } else {
        marks
    }
}

/// Deleted and not brought back by a newer message.
pub fn is_deleted(r: &ConvRecord) -> bool {
    r.settings
        .as_ref()
        .is_some_and(|s| s.deleted && r.max_seq <= s.deleted_seq)
}

/// Whether the conversation exists for the list at all (a C2C one needs a message; a group one
/// exists while the user is in it), hidden or not.
pub fn exists(r: &ConvRecord) -> bool {
    !is_deleted(r) && (r.is_group || r.max_seq > 0 || r.last_message.is_some())
}

/// Whether `get_conversation_list` returns it: it exists and is not hidden.
pub fn listed(r: &ConvRecord) -> bool {
    exists(r) && effective_marks(r) & mark::HIDE == 0
}

/// The receive option value.
pub fn recv_opt(r: &ConvRecord) -> i32 {
    r.settings.as_ref().map_or(0, |s| s.recv_opt)
}

/// Whether the conversation's unread counts toward the total (not muted by its receive option).
pub fn counts_in_total(r: &ConvRecord) -> bool {
    exists(r) && recv_opt(r) == 0
}

/// The total unread over `records` (ARCHITECTURE.md §3: the sum over conversations that are not
/// DND-muted).
pub fn total_unread<'a>(records: impl Iterator<Item = &'a ConvRecord>) -> u64 {
    records
        .filter(|r| counts_in_total(r))
        .map(|r| u64::from(r.unread_count))
        .sum()
}

/// List order: pinned first, then newest `orderkey` (together: [`position`], descending), then id
/// (stable).
pub fn order(a: &ConvRecord, b: &ConvRecord) -> std::cmp::Ordering {
    position(b)
        .cmp(&position(a))
        .then(a.conversation_id.cmp(&b.conversation_id))
}

/// The list position of `r` (the paging cursor, [`super::paging`]).
pub fn position(r: &ConvRecord) -> u64 {
    let pinned = r.settings.as_ref().is_some_and(|s| s.pinned);
    super::paging::position(pinned, r.orderkey, &r.conversation_id)
}

/// The `@` kind `m` adds for `me`, if any.
pub fn at_kind(m: &StoredMessage, me: &str) -> Option<i32> {
    if !m.is_group || m.sender == me {
        return None;
    }
    let all = m.group_at_user_list.iter().any(|u| u == AT_ALL);
    let mine = m.group_at_user_list.iter().any(|u| u == me);
    match (all, mine) {
        (true, true) => Some(at_type::AT_ALL_AT_ME),
        (true, false) => Some(at_type::AT_ALL),
        (false, true) => Some(at_type::AT_ME),
        (false, false) => None,
    }
}

/// Records the `@` of `m` (if unread and not yet known), keeping the list ordered by seq.
pub fn add_at(r: &mut ConvRecord, m: &StoredMessage, me: &str) -> bool {
    let Some(kind) = at_kind(m, me) else {
        return false;
    };
    if m.seq <= r.read_seq || m.revoked || r.at_infos.iter().any(|a| a.seq == m.seq) {
        return false;
    }
    let at = r.at_infos.partition_point(|a| a.seq < m.seq);
    r.at_infos.insert(
        at,
        AtInfo {
            seq: m.seq,
            at_type: kind,
        },
    );
    true
}

/// Moves the read position: `@` info at or below it is cleared.
pub fn set_read(r: &mut ConvRecord, read_seq: u64) {
    r.read_seq = r.read_seq.max(read_seq);
    let read = r.read_seq;
    r.at_infos.retain(|a| a.seq > read);
}

/// A parsed `get_conversation_list_by_filter` / unread filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `Some(true)` groups, `Some(false)` C2C.
    pub group: Option<bool>,
    /// Every bit of this must be set (0 = no condition).
    pub mark_type: u64,
    /// Must be in this folder.
    pub conversation_group: Option<String>,
    /// Must have unread messages (or the unread mark).
    pub has_unread_count: bool,
    /// Must have unread `@` info.
    pub has_group_at_info: bool,
}

impl Filter {
    /// Parses the api.md filter object; `Err` names the bad field.
    pub fn from_json(v: &Value) -> Result<Filter, String> {
        let Some(o) = v.as_object() else {
            return Err("filter must be an object".into());
        };
        let mut f = Filter::default();
        for (k, val) in o {
            match (k.as_str(), val) {
                (_, Value::Null) => {}
                ("conversation_type", Value::String(s)) => {
                    f.group = match s.as_str() {
                        "c2c" => Some(false),
                        "group" => Some(true),
                        _ => return Err("conversation_type must be c2c|group".into()),
                    }
                }
                ("mark_type", v) => {
                    f.mark_type = v
                        .as_u64()
                        .ok_or("mark_type must be a non-negative integer")?
                }
                ("conversation_group", Value::String(s)) => {
                    f.conversation_group = Some(s.clone());
                }
                ("has_unread_count", Value::Bool(b)) => f.has_unread_count = *b,
                ("has_group_at_info", Value::Bool(b)) => f.has_group_at_info = *b,
                (k, _) => return Err(format!("filter field {k} is unknown or mistyped")),
            }
        }
        Ok(f)
    }

    /// The filter as the api.md object (echoed in events).
    pub fn to_json(&self) -> Value {
        let mut o = serde_json::Map::new();
        if let Some(g) = self.group {
            o.insert(
                "conversation_type".into(),
                json!(if g { "group" } else { "c2c" }),
            );
        }
        if self.mark_type != 0 {
            o.insert("mark_type".into(), json!(self.mark_type));
        }
        if let Some(n) = &self.conversation_group {
            o.insert("conversation_group".into(), json!(n));
        }
        if self.has_unread_count {
            o.insert("has_unread_count".into(), json!(true));
        }
        if self.has_group_at_info {
            o.insert("has_group_at_info".into(), json!(true));
        }
        Value::Object(o)
    }

    /// Whether `r` (in `folders`) matches. Hidden conversations match only a filter on the hide
    /// mark.
    pub fn matches(&self, r: &ConvRecord, folders: &[pb::ConvFolder]) -> bool {
        let marks = effective_marks(r);
        if !exists(r) || (marks & mark::HIDE != 0 && self.mark_type & mark::HIDE == 0) {
            return false;
        }
        if self.group.is_some_and(|g| g != r.is_group)
            || marks & self.mark_type != self.mark_type
            || (self.has_unread_count && r.unread_count == 0 && marks & mark::UNREAD == 0)
            || (self.has_group_at_info && r.at_infos.is_empty())
        {
            return false;
        }
        match &self.conversation_group {
            None => true,
            Some(name) => folders
                .iter()
                .any(|f| f.name == *name && f.conversation_ids.contains(&r.conversation_id)),
        }
    }
}

/// The unread total of the conversations matching `f` (DND-muted ones left out, as for the
/// total).
pub fn filtered_unread<'a>(
    f: &Filter,
    records: impl Iterator<Item = &'a ConvRecord>,
    folders: &[pb::ConvFolder],
) -> u64 {
    records
        .filter(|r| counts_in_total(r) && f.matches(r, folders))
        .map(|r| u64::from(r.unread_count))
        .sum()
}

/// The names of the folders holding `conv_id`.
pub fn folders_of(conv_id: &str, folders: &[pb::ConvFolder]) -> Vec<String> {
    folders
        .iter()
        .filter(|f| f.conversation_ids.iter().any(|c| c == conv_id))
        .map(|f| f.name.clone())
        .collect()
}

/// Sets `is_read` (mine, or at/below my read position) and `is_peer_read` (mine in C2C, at/below
/// the peer's read position) of a message object: the store keeps read positions per
/// conversation, not flags per message.
pub fn set_read_flags(j: &mut Value, m: &StoredMessage, me: &str, read_seq: u64, peer_read: u64) {
    if m.seq == 0 {
        return;
    }
    if m.sender == me {
        if !m.is_group && m.seq <= peer_read {
            j["is_peer_read"] = json!(true);
        }
    } else if m.seq <= read_seq {
        j["is_read"] = json!(true);
    }
}

fn at_str(t: i32) -> &'static str {
    match t {
        at_type::AT_ALL => "at_all",
        at_type::AT_ALL_AT_ME => "at_all_at_me",
        _ => "at_me",
    }
}

/// Whether a field that [`to_json`] shows as it is differs between `a` and `b`: then their
/// objects differ, which a new message (orderkey, unread count) or a read (read seq) shows without
/// rendering the old object to compare.
pub fn shown_fields_differ(a: &ConvRecord, b: &ConvRecord) -> bool {
    a.orderkey != b.orderkey
        || a.unread_count != b.unread_count
        || a.read_seq != b.read_seq
        || a.peer_read_seq != b.peer_read_seq
        || a.draft_timestamp != b.draft_timestamp
}

/// The api.md conversation object.
pub fn to_json(r: &ConvRecord, me: &str, folders: &[pb::ConvFolder]) -> Value {
    let s = settings(r);
    let marks = effective_marks(r);
    let mark_list: Vec<u64> = (0..64)
        .map(|b| 1u64 << b)
        .filter(|b| marks & b != 0)
        .collect();
    let last = r.last_message.as_ref().map_or(Value::Null, |m| {
        let mut j = codec::to_json(m, me);
        set_read_flags(&mut j, m, me, r.read_seq, r.peer_read_seq);
        j
    });
    json!({
        "conversation_id": r.conversation_id,
        "type": if r.is_group { "group" } else { "c2c" },
        "user_id": if r.is_group { "" } else { r.target.as_str() },
        "group_id": if r.is_group { r.target.as_str() } else { "" },
        "group_type": r.group_type,
        "show_name": r.show_name,
        "face_url": r.face_url,
        "recv_opt": recv_opt_str(s.recv_opt),
        "last_message": last,
        "unread_count": r.unread_count,
        "is_pinned": s.pinned,
        "orderkey": r.orderkey,
        "draft_text": r.draft_text,
        "draft_timestamp": r.draft_timestamp,
        "group_at_info_list": r.at_infos.iter()
            .map(|a| json!({ "seq": a.seq, "at_type": at_str(a.at_type) }))
            .collect::<Vec<_>>(),
        "mark_list": mark_list,
        "custom_data": String::from_utf8_lossy(&s.custom_data),
        "conversation_group_list": folders_of(&r.conversation_id, folders),
        "read_seq": r.read_seq,
        "peer_read_seq": r.peer_read_seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, max_seq: u64, unread: u32) -> ConvRecord {
        ConvRecord {
            conversation_id: id.into(),
            is_group: id.starts_with("group_"),
            max_seq,
            unread_count: unread,
            ..Default::default()
        }
    }

    fn with(mut r: ConvRecord, f: impl FnOnce(&mut pb::ConvSettings)) -> ConvRecord {
        let mut s = r.settings.take().unwrap_or_default();
        f(&mut s);
        r.settings = Some(s);
        r
    }

    #[test]
    fn hidden_and_deleted_conversations_come_back_with_a_newer_message() {
        let hidden = with(rec("c2c_a", 5, 0), |s| {
            s.marks = mark::HIDE | mark::STAR;
            s.hide_seq = 5;
        });
        assert!(exists(&hidden) && !listed(&hidden));
        let mut back = hidden.clone();
        back.max_seq = 6;
        assert!(listed(&back));
        assert_eq!(effective_marks(&back), mark::STAR);
        let deleted = with(rec("c2c_b", 3, 0), |s| {
            s.deleted = true;
            s.deleted_seq = 3;
        });
        assert!(!exists(&deleted));
        let mut again = deleted.clone();
        again.max_seq = 4;
        assert!(listed(&again));
        assert!(!exists(&rec("c2c_never", 0, 0)));
        assert!(exists(&rec("group_new", 0, 0)));
    }

    #[test]
    fn muted_conversations_keep_their_count_but_leave_the_total() {
        let a = rec("c2c_a", 9, 4);
        let b = with(rec("c2c_b", 9, 3), |s| s.recv_opt = 2);
        let c = with(rec("group_g", 9, 5), |s| s.recv_opt = 3);
        let all = [a, b, c];
        assert_eq!(total_unread(all.iter()), 4);
        assert_eq!(all[1].unread_count, 3);
    }

    #[test]
    fn order_is_pinned_first_then_newest() {
        let mut a = rec("c2c_a", 1, 0);
        a.orderkey = 10;
        let mut b = rec("c2c_b", 1, 0);
        b.orderkey = 20;
        let c = with(
            ConvRecord {
                orderkey: 5,
                ..rec("c2c_c", 1, 0)
            },
            |s| s.pinned = true,
        );
        let mut v = [a, b, c];
        v.sort_by(order);
        let ids: Vec<&str> = v.iter().map(|r| r.conversation_id.as_str()).collect();
        assert_eq!(ids, ["c2c_c", "c2c_b", "c2c_a"]);
    }

    #[test]
    fn at_info_is_kept_until_read() {
        let mut r = rec("group_g", 0, 0);
        let msg = |seq, at: &[&str]| StoredMessage {
            is_group: true,
            group_id: "g".into(),
            sender: "bob".into(),
            seq,
            group_at_user_list: at.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert!(add_at(&mut r, &msg(3, &["me"]), "me"));
        assert!(add_at(&mut r, &msg(2, &[AT_ALL, "me"]), "me"));
        assert!(!add_at(&mut r, &msg(4, &["other"]), "me"));
        assert!(!add_at(&mut r, &msg(3, &["me"]), "me"));
        assert!(add_at(&mut r, &msg(5, &[AT_ALL]), "me"));
        let kinds: Vec<(u64, i32)> = r.at_infos.iter().map(|a| (a.seq, a.at_type)).collect();
        assert_eq!(
            kinds,
            [
                (2, at_type::AT_ALL_AT_ME),
                (3, at_type::AT_ME),
                (5, at_type::AT_ALL)
            ]
        );
        set_read(&mut r, 3);
        assert_eq!(r.at_infos.len(), 1);
        assert!(!add_at(&mut r, &msg(1, &["me"]), "me"), "already read");
    }

    #[test]
    fn filters_parse_strictly_and_match() {
        assert!(Filter::from_json(&json!({"conversation_type": "x"})).is_err());
        assert!(Filter::from_json(&json!({"mark_type": "star"})).is_err());
        assert!(Filter::from_json(&json!({"colour": 1})).is_err());
        assert!(Filter::from_json(&json!([])).is_err());
        let f = Filter::from_json(&json!({
            "conversation_type": "c2c", "has_unread_count": true, "conversation_group": "work"
        }))
        .unwrap();
        assert_eq!(Filter::from_json(&f.to_json()).unwrap(), f);
        let folders = vec![pb::ConvFolder {
            name: "work".into(),
            conversation_ids: vec!["c2c_a".into(), "c2c_b".into()],
        }];
        let a = rec("c2c_a", 3, 2);
        let b = with(rec("c2c_b", 3, 0), |s| s.marks = mark::UNREAD);
        let c = rec("c2c_c", 3, 1);
        let g = rec("group_g", 3, 1);
        assert!(f.matches(&a, &folders));
        assert!(f.matches(&b, &folders), "the unread mark counts as unread");
        assert!(!f.matches(&c, &folders), "not in the folder");
        assert!(!f.matches(&g, &folders), "not c2c");
        assert_eq!(filtered_unread(&f, [a, b, c, g].iter(), &folders), 2);
    }

    #[test]
    fn a_shown_field_that_differs_always_changes_the_object() {
        let base = rec("c2c_a", 5, 1);
        let edits: [fn(&mut ConvRecord); 5] = [
            |r| r.orderkey += 1,
            |r| r.unread_count += 1,
            |r| r.read_seq += 1,
            |r| r.peer_read_seq += 1,
            |r| r.draft_timestamp += 1,
        ];
        for edit in edits {
            let mut other = base.clone();
            edit(&mut other);
            assert!(shown_fields_differ(&base, &other));
            assert_ne!(to_json(&base, "me", &[]), to_json(&other, "me", &[]));
        }
        assert!(!shown_fields_differ(&base, &base.clone()));
    }
}
