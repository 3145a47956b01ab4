//! The push builder: decides whether one stored message becomes an offline push to one receiver,
//! and what the notification says. No I/O: the planner reads everything it needs (the receiver's
//! receive options, DND window, badge, the conversation's title) and hands it in, so the rules
//! live here, testable on their own.
//!
//! The rules (the seed's, see docs/push.md):
//! - no push for online-only messages, for `offline_push_info.disable_push`, for group tips, for
//!   the sender's own messages, and for a custom message with neither a push `desc` nor an elem
//!   description;
//! - no push when the receiver's option for the conversation is `not_receive` or `not_notify`
//!   (`not_notify_except_at` pushes only messages that @ the receiver or @all), nor inside the
//!   receiver's global DND window (`set_all_receive_message_opt`);
//! - title: the sender's nick (C2C; the user id when it has none) or the group's name (group;
//!   the id when it has none); description: the text, a placeholder for media (`[Image]`, ...),
//!   `nick: ` before it in groups; both overridden by the sender's `offline_push_info`.

use chime_proto::pb;

/// The seed's @all entry of `group_at_user_list`.
pub const AT_ALL: &str = "__kImSDK_MessageAtALL__";

/// Receive option values of `pb::ConvSettings::recv_opt` / `pb::AllRecvOpt::opt`.
pub mod recv_opt {
    /// Receive and notify.
    pub const RECEIVE: i32 = 0;
    /// Do not receive.
    pub const NOT_RECEIVE: i32 = 1;
    /// Receive without notification.
    pub const NOT_NOTIFY: i32 = 2;
    /// Receive without notification, except messages that @ the user.
    pub const NOT_NOTIFY_EXCEPT_AT: i32 = 3;
}

/// Seconds in a day.
const DAY_SECS: i64 = 86_400;

/// What the planner knows about one receiver of one message.
#[derive(Debug, Clone)]
pub struct Receiver<'a> {
    /// The receiving user.
    pub user: &'a str,
    /// The receiver's option for this conversation (`recv_opt` values).
    pub conv_recv_opt: i32,
    /// The receiver's global receive option (DND window), if set.
    pub all_recv_opt: Option<pb::AllRecvOpt>,
    /// The badge for this device (`None` = leave the badge alone).
    pub badge: Option<u32>,
}

/// The conversation as the notification names it.
#[derive(Debug, Clone, Default)]
pub struct Conversation<'a> {
    /// The group's name (group messages; empty for C2C).
    pub group_name: &'a str,
}

/// One notification, ready for a provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Notification {
    /// Title.
    pub title: String,
    /// Body text.
    pub desc: String,
    /// Pass-through content for the app (`offline_push_info.ext`).
    pub ext: String,
    /// Sound (iOS or Android, from `offline_push_info`; empty = the default sound).
    pub ios_sound: String,
    /// Android sound.
    pub android_sound: String,
    /// The badge (`None` when `ignore_ios_badge` or unknown).
    pub badge: Option<u32>,
    /// The conversation id of the seed (`c2c_<sender>`, `group_<id>`), so the app opens it.
    pub conversation_id: String,
    /// The sender.
    pub sender: String,
    /// The message.
    pub msg_id: String,
    /// The message's seq.
    pub seq: u64,
    /// Android channel fields of `offline_push_info`.
    pub android: AndroidChannels,
    /// The iOS push type of `offline_push_info` (`""` = alert, `"voip"`).
    pub ios_push_type: String,
}

/// The Android vendor channel fields of `offline_push_info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AndroidChannels {
    /// OPPO channel id.
    pub oppo_channel_id: String,
    /// FCM channel id.
    pub fcm_channel_id: String,
    /// Xiaomi channel id.
    pub xiaomi_channel_id: String,
    /// vivo classification.
    pub vivo_classification: String,
    /// Huawei category.
    pub huawei_category: String,
}

/// Why a message is not pushed to a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Online-only message.
    OnlineOnly,
    /// The sender disabled the push (`offline_push_info.disable_push`).
    Disabled,
    /// The receiver is the sender.
    OwnMessage,
    /// Nothing to show (group tips, a custom message without description).
    NoContent,
    /// The receiver does not receive this conversation.
    NotReceive,
    /// The receiver receives this conversation without notifications.
    NotNotify,
    /// Inside the receiver's DND window.
    DoNotDisturb,
}

/// Whether the global receive option `o` mutes notifications at `now_secs` (Unix seconds): a
/// one-off period from `start_time_stamp`, or else a daily window from the start time of day
/// (UTC), each `duration` seconds long. Option `receive` never mutes.
pub fn dnd_active(o: &pb::AllRecvOpt, now_secs: i64) -> bool {
    if o.opt == recv_opt::RECEIVE || o.duration == 0 {
        return false;
    }
    let duration = i64::from(o.duration);
    if o.start_time_stamp > 0 {
        return now_secs >= o.start_time_stamp && now_secs - o.start_time_stamp < duration;
    }
    if duration >= DAY_SECS {
        return true;
    }
    let start =
        i64::from(o.start_hour) * 3600 + i64::from(o.start_minute) * 60 + i64::from(o.start_second);
    (now_secs.rem_euclid(DAY_SECS) - start).rem_euclid(DAY_SECS) < duration
}

/// Whether `msg` @-mentions `user` (or everyone).
fn mentions(msg: &pb::Message, user: &str) -> bool {
    msg.group_at_user_list
        .iter()
        .any(|u| u == user || u == AT_ALL)
}

/// The default push text of a message's first elem (`None` = nothing to push).
pub fn default_text(msg: &pb::Message) -> Option<String> {
    use pb::elem::Content;
    let first = msg.elems.first()?.content.as_ref()?;
    let text = match first {
        Content::Text(t) => t.text.clone(),
        Content::Custom(c) if c.description.is_empty() => return None,
        Content::Custom(c) => c.description.clone(),
        Content::Image(_) => "[Image]".into(),
        Content::Sound(_) => "[Voice]".into(),
        Content::Video(_) => "[Video]".into(),
        Content::File(_) => "[File]".into(),
        Content::Location(_) => "[Location]".into(),
        Content::Face(_) => "[Animated Sticker]".into(),
        Content::Merger(_) => "[Chat History]".into(),
        Content::GroupTips(_) => return None,
    };
    Some(text)
}

/// The sender's name as shown: the nick, else the user id.
fn sender_name(msg: &pb::Message) -> &str {
    if msg.nick_name.is_empty() {
        &msg.sender
    } else {
        &msg.nick_name
    }
}

/// Builds the notification of `msg` for `to`, or says why there is none.
pub fn build(
    msg: &pb::Message,
    conv: &Conversation<'_>,
    to: &Receiver<'_>,
    now_secs: i64,
) -> Result<Notification, Skip> {
    let info = msg.offline_push_info.clone().unwrap_or_default();
    if msg.online_user_only {
        return Err(Skip::OnlineOnly);
    }
    if info.disable_push {
        return Err(Skip::Disabled);
    }
    if to.user == msg.sender {
        return Err(Skip::OwnMessage);
    }
    let is_group = msg.conv_type() == pb::ConvType::Group;
    match to.conv_recv_opt {
        recv_opt::NOT_RECEIVE => return Err(Skip::NotReceive),
        recv_opt::NOT_NOTIFY => return Err(Skip::NotNotify),
        recv_opt::NOT_NOTIFY_EXCEPT_AT if !(is_group && mentions(msg, to.user)) => {
            return Err(Skip::NotNotify);
        }
        _ => {}
    }
    if to
        .all_recv_opt
        .as_ref()
        .is_some_and(|o| dnd_active(o, now_secs))
    {
        return Err(Skip::DoNotDisturb);
    }
    let is_tips = msg
        .elems
        .iter()
        .any(|e| matches!(e.content, Some(pb::elem::Content::GroupTips(_))));
    if is_tips {
        return Err(Skip::NoContent);
    }
    let desc = if info.desc.is_empty() {
        let text = default_text(msg).ok_or(Skip::NoContent)?;
        if is_group {
            format!("{}: {text}", sender_name(msg))
        } else {
            text
        }
    } else {
        info.desc.clone()
    };
    let title = if !info.title.is_empty() {
        info.title.clone()
    } else if is_group {
        if conv.group_name.is_empty() {
            msg.group_id.clone()
        } else {
            conv.group_name.to_owned()
        }
    } else {
        sender_name(msg).to_owned()
    };
    let conversation_id = if is_group {
        format!("group_{}", msg.group_id)
    } else {
        format!("c2c_{}", msg.sender)
    };
    Ok(Notification {
        title,
        desc,
        ext: info.ext,
        ios_sound: info.ios_sound,
        android_sound: info.android_sound,
        badge: if info.ignore_ios_badge {
            None
        } else {
            to.badge
        },
        conversation_id,
        sender: msg.sender.clone(),
        msg_id: msg.msg_id.clone(),
        seq: msg.seq,
        android: AndroidChannels {
            oppo_channel_id: info.android_oppo_channel_id,
            fcm_channel_id: info.android_fcm_channel_id,
            xiaomi_channel_id: info.android_xiaomi_channel_id,
            vivo_classification: info.android_vivo_classification,
            huawei_category: info.android_huawei_category,
        },
        ios_push_type: info.ios_push_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> pb::Elem {
        pb::Elem {
            content: Some(pb::elem::Content::Text(pb::TextElem { text: t.into() })),
        }
    }

    fn c2c(t: &str) -> pb::Message {
        pb::Message {
            msg_id: "m1".into(),
            sender: "alice".into(),
            receiver: "bob".into(),
            conv_type: pb::ConvType::C2c as i32,
            nick_name: "Alice".into(),
            seq: 7,
            elems: vec![text(t)],
            ..Default::default()
        }
    }

    fn group(t: &str) -> pb::Message {
        pb::Message {
            msg_id: "g1".into(),
            sender: "alice".into(),
            group_id: "team".into(),
            conv_type: pb::ConvType::Group as i32,
            seq: 3,
            elems: vec![text(t)],
            ..Default::default()
        }
    }

    fn bob(badge: Option<u32>) -> Receiver<'static> {
        Receiver {
            user: "bob",
            conv_recv_opt: recv_opt::RECEIVE,
            all_recv_opt: None,
            badge,
        }
    }

    const NOW: i64 = 1_700_000_000; // 22:13:20 UTC

    #[test]
    fn c2c_text_titled_by_nick_with_badge() {
        let n = build(&c2c("hi"), &Conversation::default(), &bob(Some(4)), NOW).unwrap();
        assert_eq!(n.title, "Alice");
        assert_eq!(n.desc, "hi");
        assert_eq!(n.badge, Some(4));
        assert_eq!(n.conversation_id, "c2c_alice");
        assert_eq!((n.msg_id.as_str(), n.seq), ("m1", 7));
    }

    #[test]
    fn group_titled_by_group_name_and_prefixed_by_sender() {
        let conv = Conversation { group_name: "Team" };
        let n = build(&group("go"), &conv, &bob(None), NOW).unwrap();
        assert_eq!(n.title, "Team");
        assert_eq!(n.desc, "alice: go");
        assert_eq!(n.conversation_id, "group_team");
        let unnamed = build(&group("go"), &Conversation::default(), &bob(None), NOW).unwrap();
        assert_eq!(unnamed.title, "team");
    }

    #[test]
    fn media_placeholders_and_custom_descriptions() {
        let mut m = c2c("");
        m.elems = vec![pb::Elem {
            content: Some(pb::elem::Content::Image(pb::ImageElem::default())),
        }];
        assert_eq!(default_text(&m).as_deref(), Some("[Image]"));
        m.elems = vec![pb::Elem {
            content: Some(pb::elem::Content::Custom(pb::CustomElem::default())),
        }];
        let r = build(&m, &Conversation::default(), &bob(None), NOW);
        assert_eq!(r, Err(Skip::NoContent));
        // A push desc makes a custom message pushable (signaling invitations).
        m.offline_push_info = Some(pb::OfflinePushInfo {
            desc: "incoming call".into(),
            ..Default::default()
        });
        let n = build(&m, &Conversation::default(), &bob(None), NOW).unwrap();
        assert_eq!(n.desc, "incoming call");
    }

    #[test]
    fn sender_push_info_overrides() {
        let mut m = c2c("hi");
        m.offline_push_info = Some(pb::OfflinePushInfo {
            title: "T".into(),
            desc: "D".into(),
            ext: "{\"k\":1}".into(),
            ios_sound: "ring.caf".into(),
            ignore_ios_badge: true,
            android_fcm_channel_id: "chat".into(),
            ..Default::default()
        });
        let n = build(&m, &Conversation::default(), &bob(Some(9)), NOW).unwrap();
        assert_eq!((n.title.as_str(), n.desc.as_str()), ("T", "D"));
        assert_eq!(n.ext, "{\"k\":1}");
        assert_eq!(n.ios_sound, "ring.caf");
        assert_eq!(n.badge, None);
        assert_eq!(n.android.fcm_channel_id, "chat");
    }

    #[test]
    fn skips() {
        let conv = Conversation::default();
        let mut m = c2c("hi");
        m.online_user_only = true;
        assert_eq!(build(&m, &conv, &bob(None), NOW), Err(Skip::OnlineOnly));
        let mut m = c2c("hi");
        m.offline_push_info = Some(pb::OfflinePushInfo {
            disable_push: true,
            ..Default::default()
        });
        assert_eq!(build(&m, &conv, &bob(None), NOW), Err(Skip::Disabled));
        let mut own = bob(None);
        own.user = "alice";
        assert_eq!(build(&c2c("x"), &conv, &own, NOW), Err(Skip::OwnMessage));
        for (opt, skip) in [
            (recv_opt::NOT_RECEIVE, Skip::NotReceive),
            (recv_opt::NOT_NOTIFY, Skip::NotNotify),
            (recv_opt::NOT_NOTIFY_EXCEPT_AT, Skip::NotNotify),
        ] {
            let mut to = bob(None);
            to.conv_recv_opt = opt;
            assert_eq!(build(&group("x"), &conv, &to, NOW), Err(skip));
        }
        let mut at = group("x");
        at.group_at_user_list = vec!["bob".into()];
        let mut to = bob(None);
        to.conv_recv_opt = recv_opt::NOT_NOTIFY_EXCEPT_AT;
        assert!(build(&at, &conv, &to, NOW).is_ok());
        at.group_at_user_list = vec![AT_ALL.into()];
        assert!(build(&at, &conv, &to, NOW).is_ok());
        let mut tips = group("");
        tips.elems = vec![pb::Elem {
            content: Some(pb::elem::Content::GroupTips(pb::GroupTipsElem::default())),
        }];
        assert_eq!(build(&tips, &conv, &bob(None), NOW), Err(Skip::NoContent));
    }

    #[test]
    fn dnd_windows() {
        // NOW is 22:13:20 UTC.
        let daily = |h, m, duration| pb::AllRecvOpt {
            opt: recv_opt::NOT_NOTIFY,
            start_hour: h,
            start_minute: m,
            duration,
            ..Default::default()
        };
        assert!(dnd_active(&daily(22, 0, 3600), NOW));
        assert!(!dnd_active(&daily(23, 0, 3600), NOW));
        // Across midnight.
        assert!(dnd_active(&daily(21, 0, 8 * 3600), NOW));
        assert!(dnd_active(&daily(21, 0, 8 * 3600), NOW + 6 * 3600));
        assert!(!dnd_active(&daily(21, 0, 8 * 3600), NOW + 12 * 3600));
        assert!(dnd_active(&daily(0, 0, u32::MAX), NOW));
        let mut off = daily(22, 0, 3600);
        off.opt = recv_opt::RECEIVE;
        assert!(!dnd_active(&off, NOW));
        let once = pb::AllRecvOpt {
            opt: recv_opt::NOT_RECEIVE,
            start_time_stamp: NOW - 10,
            duration: 60,
            ..Default::default()
        };
        assert!(dnd_active(&once, NOW));
        assert!(!dnd_active(&once, NOW + 60));
        assert!(!dnd_active(&once, NOW - 11));
        let to = Receiver {
            all_recv_opt: Some(daily(22, 0, 3600)),
            ..bob(None)
        };
        let r = build(&c2c("x"), &Conversation::default(), &to, NOW);
        assert_eq!(r, Err(Skip::DoNotDisturb));
    }
}
