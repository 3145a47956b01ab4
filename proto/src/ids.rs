//! Identifier rules and conversation ids, shared by engine and server.

use crate::pb::{ConvRef, ConvType};

/// Longest UserID in bytes.
pub const MAX_USER_ID_BYTES: usize = 32;
/// Longest GroupID in bytes.
pub const MAX_GROUP_ID_BYTES: usize = 48;
/// Prefix reserved for server-generated group ids (custom ids may not use it).
pub const GENERATED_GROUP_ID_PREFIX: &str = "@TGS#";

fn printable_ascii(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// A UserID is printable ASCII, 1–32 bytes (else 7003).
pub fn is_valid_user_id(id: &str) -> bool {
    printable_ascii(id, MAX_USER_ID_BYTES)
}

/// A GroupID is printable ASCII, 1–48 bytes (else 8501).
pub fn is_valid_group_id(id: &str) -> bool {
    printable_ascii(id, MAX_GROUP_ID_BYTES)
}

/// The reference of a group (`is_group`) or C2C conversation with `target`.
pub fn conv_ref(is_group: bool, target: String) -> ConvRef {
    let conv_type = if is_group {
        ConvType::Group
    } else {
        ConvType::C2c
    };
    ConvRef {
        conv_type: conv_type as i32,
        target,
    }
}

/// The conversation id of api.md §1: `c2c_<userID>` or `group_<groupID>`.
pub fn conversation_id(conv: &ConvRef) -> String {
    match conv.conv_type() {
        ConvType::Group => format!("group_{}", conv.target),
        _ => format!("c2c_{}", conv.target),
    }
}

/// Parses `c2c_<userID>` / `group_<groupID>`; `None` if malformed or the id is invalid.
pub fn parse_conversation_id(id: &str) -> Option<ConvRef> {
    if let Some(user) = id.strip_prefix("c2c_") {
        is_valid_user_id(user).then(|| ConvRef {
            conv_type: ConvType::C2c as i32,
            target: user.to_owned(),
        })
    } else if let Some(group) = id.strip_prefix("group_") {
        is_valid_group_id(group).then(|| ConvRef {
            conv_type: ConvType::Group as i32,
            target: group.to_owned(),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_rules() {
        assert!(is_valid_user_id("alice"));
        assert!(!is_valid_user_id(""));
        assert!(!is_valid_user_id(&"a".repeat(33)));
        assert!(is_valid_user_id(&"a".repeat(32)));
        assert!(!is_valid_user_id("al\u{e9}"));
        assert!(!is_valid_user_id("a\nb"));
        assert!(is_valid_group_id(&"g".repeat(48)));
        assert!(!is_valid_group_id(&"g".repeat(49)));
    }

    #[test]
    fn conversation_ids_round_trip() {
        let c = parse_conversation_id("group_g1").unwrap();
        assert_eq!(c.conv_type(), ConvType::Group);
        assert_eq!(conversation_id(&c), "group_g1");
        assert_eq!(
            conversation_id(&parse_conversation_id("c2c_bob").unwrap()),
            "c2c_bob"
        );
        assert!(parse_conversation_id("c2c_").is_none());
        assert!(parse_conversation_id("x_bob").is_none());
    }
}
