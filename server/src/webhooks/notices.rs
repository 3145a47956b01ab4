//! The after-the-fact callbacks (notices): a user's login state changed, a group was created or
//! dismissed, members joined or left a group (an AVChatRoom's too), friends were added or
//! deleted. Unlike before-send they decide nothing, so they never hold up the
//! caller: the commit pipeline (or the gateway) hands a typed [`Notice`] to
//! [`super::Webhooks::notify`], which only queues it; a dispatcher task builds the JSON body in
//! the seed's REST callback format and posts it, signed, with the configured timeout. A full
//! queue (a backend far behind) drops the notice with a warning rather than slow anyone down.

use chime_proto::pb;
use serde_json::{Value, json};

use super::WebhookConfig;

/// A change of a user's login state (`State.StateChange`): the seed's `Action` and `Reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChange {
    /// A session logged in (`Login` / `Register`).
    Login,
    /// The client logged out (`Logout` / `Unregister`).
    Logout,
    /// The session was replaced by another login or kicked over REST (`Logout` / `Kicked`).
    Kicked,
    /// The connection closed or failed (`Disconnect` / `LinkClose`).
    LinkClose,
    /// The connection went silent past the idle timeout (`Disconnect` / `TimeOut`).
    TimeOut,
}

impl StateChange {
    /// How a session that was logged in ended: still registered means its connection went away
    /// (`idle` = by the idle timeout); no longer registered means another login or a kick
    /// removed it.
    pub fn session_end(still_registered: bool, idle: bool) -> Self {
        match (still_registered, idle) {
            (false, _) => StateChange::Kicked,
            (true, true) => StateChange::TimeOut,
            (true, false) => StateChange::LinkClose,
        }
    }

    /// The seed's `Info.Action`.
    pub fn action(self) -> &'static str {
        match self {
            StateChange::Login => "Login",
            StateChange::Logout | StateChange::Kicked => "Logout",
            StateChange::LinkClose | StateChange::TimeOut => "Disconnect",
        }
    }

    /// The seed's `Info.Reason`.
    pub fn reason(self) -> &'static str {
        match self {
            StateChange::Login => "Register",
            StateChange::Logout => "Unregister",
            StateChange::Kicked => "Kicked",
            StateChange::LinkClose => "LinkClose",
            StateChange::TimeOut => "TimeOut",
        }
    }
}

/// Something the backend is told after it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// `State.StateChange`.
    State {
        /// The user.
        user: String,
        /// What happened.
        change: StateChange,
    },
    /// `Group.CallbackAfterNewMemberJoin`.
    MemberJoin {
        /// The group.
        group_id: String,
        /// Its type (`Work`, `Public`, ...).
        group_type: String,
        /// True when invited (`Invited`), false when joined or approved (`Apply`).
        invited: bool,
        /// Who did it.
        operator: String,
        /// The new members.
        members: Vec<String>,
    },
    /// `Group.CallbackAfterMemberExit`.
    MemberExit {
        /// The group.
        group_id: String,
        /// Its type.
        group_type: String,
        /// True when kicked (`Kicked`), false when they quit (`Quit`).
        kicked: bool,
        /// Who did it.
        operator: String,
        /// The members who left.
        members: Vec<String>,
    },
    /// `Group.CallbackAfterCreateGroup`.
    GroupCreated {
        /// The group.
        group_id: String,
        /// Its type.
        group_type: String,
        /// Its owner (who created it).
        owner: String,
        /// Its name.
        name: String,
        /// The members it was created with, the owner aside.
        members: Vec<String>,
    },
    /// `Group.CallbackAfterGroupDestroyed`.
    GroupDestroyed {
        /// The group.
        group_id: String,
        /// Its type.
        group_type: String,
        /// Its owner.
        owner: String,
        /// Its name.
        name: String,
        /// Its members when it was dismissed.
        members: Vec<String>,
    },
    /// `Sns.CallbackFriendDelete`.
    FriendDelete {
        /// `(owner, friend)`: `friend` is no longer in `owner`'s list (one pair per direction).
        pairs: Vec<(String, String)>,
    },
    /// `Sns.CallbackFriendAdd`.
    FriendAdd {
        /// `(owner, friend)`: `friend` is now in `owner`'s list (one pair per direction).
        pairs: Vec<(String, String)>,
        /// Who asked to be friends.
        initiator: String,
        /// True when made by accepting an application (`Response`), false by adding (`Add`).
        response: bool,
    },
}

impl Notice {
    /// The membership notice of a group tips message, if it is a join or an exit.
    pub fn of_group_tips(info: &pb::GroupInfo, tips: &pb::GroupTipsElem) -> Option<Notice> {
        let group_id = info.group_id.clone();
        let group_type = info.group_type.clone();
        let operator = tips.op_user.clone();
        let members = tips.member_list.clone();
        match tips.tips_type() {
            pb::GroupTipsType::GroupTipsJoin | pb::GroupTipsType::GroupTipsInvite => {
                Some(Notice::MemberJoin {
                    invited: tips.tips_type() == pb::GroupTipsType::GroupTipsInvite,
                    group_id,
                    group_type,
                    operator,
                    members,
                })
            }
            pb::GroupTipsType::GroupTipsQuit | pb::GroupTipsType::GroupTipsKicked => {
                Some(Notice::MemberExit {
                    kicked: tips.tips_type() == pb::GroupTipsType::GroupTipsKicked,
                    group_id,
                    group_type,
                    operator,
                    members,
                })
            }
            _ => None,
        }
    }

    /// Whether `config` asks for this kind of callback.
    pub fn enabled(&self, config: &WebhookConfig) -> bool {
        match self {
            Notice::State { .. } => config.state_change,
            Notice::MemberJoin { .. } => config.member_join,
            Notice::MemberExit { .. } => config.member_exit,
            Notice::FriendAdd { .. } => config.friend_add,
            Notice::GroupCreated { .. } => config.group_create,
            Notice::GroupDestroyed { .. } => config.group_destroy,
            Notice::FriendDelete { .. } => config.friend_delete,
        }
    }

    /// The callback command.
    pub fn command(&self) -> &'static str {
        match self {
            Notice::State { .. } => "State.StateChange",
            Notice::MemberJoin { .. } => "Group.CallbackAfterNewMemberJoin",
            Notice::MemberExit { .. } => "Group.CallbackAfterMemberExit",
            Notice::FriendAdd { .. } => "Sns.CallbackFriendAdd",
            Notice::GroupCreated { .. } => "Group.CallbackAfterCreateGroup",
            Notice::GroupDestroyed { .. } => "Group.CallbackAfterGroupDestroyed",
            Notice::FriendDelete { .. } => "Sns.CallbackFriendDelete",
        }
    }

    /// The JSON body, stamped with `event_time_ms`.
    pub fn payload(&self, event_time_ms: i64) -> Value {
        let accounts = |users: &[String]| -> Vec<Value> {
            users
                .iter()
                .map(|u| json!({ "Member_Account": u }))
                .collect()
        };
        match self {
            Notice::State { user, change } => json!({
                "CallbackCommand": self.command(),
                "EventTime": event_time_ms,
                "Info": {
                    "Action": change.action(),
                    "To_Account": user,
                    "Reason": change.reason(),
                },
            }),
            Notice::MemberJoin {
                group_id,
                group_type,
                invited,
                operator,
                members,
            } => json!({
                "CallbackCommand": self.command(),
                "EventTime": event_time_ms,
                "GroupId": group_id,
                "Type": group_type,
                "JoinType": if *invited { "Invited" } else { "Apply" },
                "Operator_Account": operator,
                "NewMemberList": accounts(members),
            }),
            Notice::MemberExit {
                group_id,
                group_type,
                kicked,
                operator,
                members,
            } => json!({
                "CallbackCommand": self.command(),
                "EventTime": event_time_ms,
                "GroupId": group_id,
                "Type": group_type,
                "ExitType": if *kicked { "Kicked" } else { "Quit" },
                "Operator_Account": operator,
                "ExitMemberList": accounts(members),
            }),
            Notice::GroupCreated {
                group_id,
                group_type,
                owner,
                name,
                members,
            } => json!({
                "CallbackCommand": self.command(),
                "EventTime": event_time_ms,
                "GroupId": group_id,
                "Type": group_type,
                "Owner_Account": owner,
                "Operator_Account": owner,
                "Name": name,
                "CreatedGroupNum": 1,
                "MemberList": accounts(members),
                "UserDefinedDataList": [],
            }),
            Notice::GroupDestroyed {
                group_id,
                group_type,
                owner,
                name,
                members,
            } => json!({
                "CallbackCommand": self.command(),
                "EventTime": event_time_ms,
                "GroupId": group_id,
                "Type": group_type,
                "Owner_Account": owner,
                "Name": name,
                "MemberList": accounts(members),
            }),
            Notice::FriendDelete { pairs } => json!({
                "CallbackCommand": self.command(),
                "EventTime": event_time_ms,
                "PairList": pairs
                    .iter()
                    .map(|(from, to)| json!({"From_Account": from, "To_Account": to}))
                    .collect::<Vec<_>>(),
            }),
            Notice::FriendAdd {
                pairs,
                initiator,
                response,
            } => json!({
                "CallbackCommand": self.command(),
                "EventTime": event_time_ms,
                "PairList": pairs
                    .iter()
                    .map(|(from, to)| json!({
                        "From_Account": from,
                        "To_Account": to,
                        "Initiator_Account": initiator,
                    }))
                    .collect::<Vec<_>>(),
                "ClientCmdType": if *response { "Response" } else { "Add" },
                "Admin_Account": "",
                "ForceFlag": 0,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_changes_map_to_the_seeds_actions_and_reasons() {
        let pairs: Vec<(&str, &str)> = [
            StateChange::Login,
            StateChange::Logout,
            StateChange::Kicked,
            StateChange::LinkClose,
            StateChange::TimeOut,
        ]
        .iter()
        .map(|c| (c.action(), c.reason()))
        .collect();
        assert_eq!(
            pairs,
            [
                ("Login", "Register"),
                ("Logout", "Unregister"),
                ("Logout", "Kicked"),
                ("Disconnect", "LinkClose"),
                ("Disconnect", "TimeOut"),
            ]
        );
        assert_eq!(StateChange::session_end(false, true), StateChange::Kicked);
        assert_eq!(StateChange::session_end(true, true), StateChange::TimeOut);
        assert_eq!(
            StateChange::session_end(true, false),
            StateChange::LinkClose
        );
        let v = Notice::State {
            user: "ann".into(),
            change: StateChange::Login,
        }
        .payload(5);
        assert_eq!(
            v,
            json!({"CallbackCommand": "State.StateChange", "EventTime": 5,
                   "Info": {"Action": "Login", "To_Account": "ann", "Reason": "Register"}})
        );
    }

    #[test]
    fn group_tips_become_join_and_exit_notices() {
        let info = pb::GroupInfo {
            group_id: "g".into(),
            group_type: "Public".into(),
            ..Default::default()
        };
        let tips = |t: pb::GroupTipsType| pb::GroupTipsElem {
            tips_type: t as i32,
            op_user: "owner".into(),
            member_list: vec!["bob".into()],
            ..Default::default()
        };
        let join = Notice::of_group_tips(&info, &tips(pb::GroupTipsType::GroupTipsInvite));
        let Some(join) = join else {
            panic!("no join notice")
        };
        assert_eq!(
            join.payload(1),
            json!({"CallbackCommand": "Group.CallbackAfterNewMemberJoin", "EventTime": 1,
                   "GroupId": "g", "Type": "Public", "JoinType": "Invited",
                   "Operator_Account": "owner", "NewMemberList": [{"Member_Account": "bob"}]})
        );
        let exit = Notice::of_group_tips(&info, &tips(pb::GroupTipsType::GroupTipsKicked));
        let Some(exit) = exit else {
            panic!("no exit notice")
        };
        assert_eq!(exit.payload(1)["ExitType"], "Kicked");
        assert_eq!(
            exit.payload(1)["ExitMemberList"][0]["Member_Account"],
            "bob"
        );
        let quit = Notice::of_group_tips(&info, &tips(pb::GroupTipsType::GroupTipsQuit));
        assert_eq!(
            quit.map(|q| q.payload(1)["ExitType"].clone()),
            Some(json!("Quit"))
        );
        assert_eq!(
            Notice::of_group_tips(&info, &tips(pb::GroupTipsType::GroupTipsSetAdmin)),
            None
        );
    }

    #[test]
    fn friend_add_lists_every_pair() {
        let n = Notice::FriendAdd {
            pairs: vec![("a".into(), "b".into()), ("b".into(), "a".into())],
            initiator: "a".into(),
            response: true,
        };
        let v = n.payload(9);
        assert_eq!(v["CallbackCommand"], "Sns.CallbackFriendAdd");
        assert_eq!(v["ClientCmdType"], "Response");
        assert_eq!(
            v["PairList"],
            json!([
                {"From_Account": "a", "To_Account": "b", "Initiator_Account": "a"},
                {"From_Account": "b", "To_Account": "a", "Initiator_Account": "a"},
            ])
        );
    }

    #[test]
    fn group_lifecycle_and_friend_delete_payloads() {
        let created = Notice::GroupCreated {
            group_id: "g".into(),
            group_type: "Public".into(),
            owner: "o".into(),
            name: "N".into(),
            members: vec!["a".into()],
        };
        assert_eq!(
            created.payload(3),
            json!({"CallbackCommand": "Group.CallbackAfterCreateGroup", "EventTime": 3,
                   "GroupId": "g", "Type": "Public", "Owner_Account": "o",
                   "Operator_Account": "o", "Name": "N", "CreatedGroupNum": 1,
                   "MemberList": [{"Member_Account": "a"}], "UserDefinedDataList": []})
        );
        let destroyed = Notice::GroupDestroyed {
            group_id: "g".into(),
            group_type: "Public".into(),
            owner: "o".into(),
            name: "N".into(),
            members: vec!["o".into(), "a".into()],
        };
        assert_eq!(destroyed.command(), "Group.CallbackAfterGroupDestroyed");
        assert_eq!(
            destroyed.payload(4)["MemberList"],
            json!([{"Member_Account": "o"}, {"Member_Account": "a"}])
        );
        let deleted = Notice::FriendDelete {
            pairs: vec![("a".into(), "b".into())],
        };
        assert_eq!(
            deleted.payload(5),
            json!({"CallbackCommand": "Sns.CallbackFriendDelete", "EventTime": 5,
                   "PairList": [{"From_Account": "a", "To_Account": "b"}]})
        );
        let mut config: WebhookConfig =
            toml::from_str("url = \"http://x\"\nfriend_delete = false\n").unwrap();
        assert!(!deleted.enabled(&config));
        assert!(created.enabled(&config) && destroyed.enabled(&config));
        config.group_create = false;
        assert!(!created.enabled(&config));
    }
}
