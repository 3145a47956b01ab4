//! `group_tips` messages: every membership, role, profile and mute change leaves one in the
//! group's history, so members online get it pushed (their engine turns it into the group
//! listener event) and members offline find it when they sync the group. An AVChatRoom's tips
//! are online-only like all its messages.
//!
//! A tips message is stored like any group message (the next seq, read diffusion: nothing per
//! member), is sent by the operator, and is excluded from unread counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chime_proto::pb;

use crate::commit::{Core, Effect, now_ms};
use crate::error::ApiResult;
use crate::groups::GroupState;
use crate::keys::{self, Key, tag};
use crate::registry::message_push_frame;
use crate::txn::Txn;

/// Makes the ids of online-only tips (never stored, so no seq to name them by) unique.
static ONLINE_TIPS: AtomicU64 = AtomicU64::new(0);

/// The message carrying `tips` in group `group_id` (seq and id filled in by the caller).
fn tips_message(group_id: &str, tips: pb::GroupTipsElem, now: i64) -> pb::Message {
    pb::Message {
        sender: tips.op_user.clone(),
        conv_type: pb::ConvType::Group as i32,
        group_id: group_id.to_owned(),
        server_time_ms: now,
        client_time_ms: now,
        elems: vec![pb::Elem {
            content: Some(pb::elem::Content::GroupTips(tips)),
        }],
        exclude_from_unread: true,
        ..Default::default()
    }
}

impl Core {
    /// Appends `tips` to the history of `g` (online-only for an AVChatRoom) and pushes it to
    /// every member of `g` and to `extra` (users who just left and should still see why).
    pub(crate) fn group_tips(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        g: &Arc<GroupState>,
        tips: pb::GroupTipsElem,
        extra: &[String],
        fx: &mut Vec<Effect>,
    ) -> ApiResult<()> {
        append_tips(txn, app, g, tips, extra, fx)
    }
}

/// [`Core::group_tips`] for stagers that hold no `Core` (the community's).
pub(crate) fn append_tips(
    txn: &mut Txn<'_>,
    app: u64,
    g: &Arc<GroupState>,
    tips: pb::GroupTipsElem,
    extra: &[String],
    fx: &mut Vec<Effect>,
) -> ApiResult<()> {
    let group_id = g.info.group_id.as_str();
    let now = now_ms();
    let op_user = tips.op_user.clone();
    fx.extend(crate::webhooks::group_tips_effect(app, &g.info, &tips));
    let mut msg = tips_message(group_id, tips, now);
    let conv = keys::group_conv(group_id);
    let encoded = if g.info.group_type == "AVChatRoom" {
        msg.online_user_only = true;
        let n = ONLINE_TIPS.fetch_add(1, Ordering::Relaxed);
        msg.msg_id = format!("tips-{group_id}-{now}-{n}");
        prost::Message::encode_to_vec(&msg)
    } else {
        let next = Core::head(txn, app, group_id)? + 1;
        msg.msg_id = format!("tips-{group_id}-{next}");
        let idem = Key::new(tag::IDEM, app)
            .s(op_user.as_bytes())
            .s(msg.msg_id.as_bytes())
            .done();
        Core::append(txn, app, &conv, &mut msg, idem)?
    };
    let frame = message_push_frame(&encoded, pb::ConvType::Group, group_id);
    fx.push(Effect::Group {
        app,
        group: Arc::clone(g),
        frame: frame.clone(),
        skip: 0,
        all: true,
    });
    for user in extra {
        fx.push(Effect::Push {
            app,
            user: user.clone(),
            frame: frame.clone(),
            skip: 0,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tips_messages_are_group_messages_excluded_from_unread() {
        let tips = pb::GroupTipsElem {
            tips_type: pb::GroupTipsType::GroupTipsJoin as i32,
            op_user: "ann".into(),
            member_list: vec!["ann".into()],
            ..Default::default()
        };
        let m = tips_message("g1", tips.clone(), 42);
        assert_eq!(m.sender, "ann");
        assert_eq!(m.group_id, "g1");
        assert_eq!(m.conv_type(), pb::ConvType::Group);
        assert!(m.exclude_from_unread);
        assert_eq!(m.server_time_ms, 42);
        assert_eq!(
            m.elems,
            vec![pb::Elem {
                content: Some(pb::elem::Content::GroupTips(tips))
            }]
        );
    }
}
