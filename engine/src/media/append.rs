//! `append_elem`: a created (not yet sent) message gets one more elem. The seed's rule: only
//! text, custom, face and location elems may follow the first elem, so "image + image" and
//! "text + image" are refused with 6016, while "image + text" is fine.

use actix::prelude::*;
use chime_proto::codes;
use serde_json::Value;

use crate::actors::message::MessageActor;
use crate::model::StoredElem;
use crate::{ApiError, codec};

/// The elem types that may follow the first elem of a message.
pub const MAY_FOLLOW: &[&str] = &["text", "custom", "face", "location"];

/// 6016 unless an elem of `elem_type` may be appended.
pub fn may_follow(elem_type: &str) -> Result<(), ApiError> {
    if MAY_FOLLOW.contains(&elem_type) {
        return Ok(());
    }
    Err(ApiError::new(
        codes::ERR_INVALID_MSG_ELEM,
        format!(
            "a {elem_type} elem cannot be appended: only text, custom, face and location elems \
             may follow the first elem of a message"
        ),
    ))
}

/// Appends `elem` to the created message `msg_id`; answers the message object.
#[derive(Message)]
#[rtype(result = "Result<Value, ApiError>")]
pub struct AppendElem {
    /// A msg_id answered by a `create_*_message` call, not sent yet.
    pub msg_id: String,
    /// The elem (already checked with [`may_follow`]).
    pub elem: StoredElem,
}

impl Handler<AppendElem> for MessageActor {
    type Result = Result<Value, ApiError>;
    fn handle(&mut self, msg: AppendElem, _: &mut Context<Self>) -> Self::Result {
        let me = self.me().to_owned();
        let m = self.created.get_mut(&msg.msg_id).ok_or_else(|| {
            ApiError::invalid_param(format!(
                "message.msg_id {} is not a message created by create_*_message and not sent yet",
                msg.msg_id
            ))
        })?;
        m.elems.push(msg.elem);
        Ok(codec::to_json(m, &me))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_custom_face_and_location_may_follow() {
        for t in MAY_FOLLOW {
            assert_eq!(may_follow(t), Ok(()));
        }
        for t in [
            "image",
            "sound",
            "video",
            "file",
            "merger",
            "group_tips",
            "hologram",
        ] {
            assert_eq!(may_follow(t).unwrap_err().code, 6016, "{t}");
        }
    }
}
