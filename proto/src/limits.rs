//! Limits from the seed that both sides check (the engine before sending, the server again).

use prost::Message as _;

use crate::pb::Message;

/// Largest message body: the elems, the cloud custom data and the offline push info together.
pub const MAX_MESSAGE_BODY_BYTES: usize = 12 * 1024;
/// Most receivers of a targeted group message.
pub const MAX_TARGETED_RECEIVERS: usize = 50;
/// Most messages in one merger message.
pub const MAX_MERGER_MESSAGES: usize = 300;
/// Group message rate limit per group (messages per second); excess dropped by priority.
pub const GROUP_MESSAGES_PER_SECOND: u32 = 40;

/// The size of a message's body as the 12 KB limit counts it: the encoded elems, cloud custom data
/// and offline push info. One definition for engine (8001) and server (80002).
pub fn message_body_bytes(msg: &Message) -> usize {
    msg.elems.iter().map(|e| e.encoded_len()).sum::<usize>()
        + msg.cloud_custom_data.len()
        + msg
            .offline_push_info
            .as_ref()
            .map_or(0, |p| p.encoded_len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{Elem, TextElem, elem::Content};

    #[test]
    fn body_size_counts_elems_and_custom_data() {
        let mut m = Message {
            elems: vec![Elem {
                content: Some(Content::Text(TextElem {
                    text: "x".repeat(100),
                })),
            }],
            ..Default::default()
        };
        let base = message_body_bytes(&m);
        assert!((100..110).contains(&base));
        m.cloud_custom_data = vec![0; 50];
        assert_eq!(message_body_bytes(&m), base + 50);
        m.sender = "not counted".into();
        assert_eq!(message_body_bytes(&m), base + 50);
    }
}
