//! RelationshipActor: the user-profile slice. For now it knows the login user and caches the
//! profiles (nick name, face URL) that arrive with messages, answering `get_users_info` from that
//! cache; friends, blacklist and follow come with the relationship issue.

use std::collections::HashMap;

use actix::prelude::*;
use chime_proto::codes;
use serde_json::{Value, json};

use super::{Account, CloseAccount, OpenAccount};
use crate::{ApiError, Result};

/// Owns user profiles.
#[derive(Default)]
pub struct RelationshipActor {
    me: Option<String>,
    profiles: HashMap<String, (String, String)>,
}

impl RelationshipActor {
    /// An actor with no account.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Actor for RelationshipActor {
    type Context = Context<Self>;
}

impl Handler<OpenAccount> for RelationshipActor {
    type Result = ();
    fn handle(&mut self, msg: OpenAccount, _: &mut Context<Self>) {
        let Account { user, .. } = msg.0;
        self.profiles.clear();
        self.me = Some(user);
    }
}

impl Handler<CloseAccount> for RelationshipActor {
    type Result = ();
    fn handle(&mut self, _: CloseAccount, _: &mut Context<Self>) {
        self.me = None;
        self.profiles.clear();
    }
}

/// Profiles seen on messages: `(user_id, nick_name, face_url)`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SeenProfiles(pub Vec<(String, String, String)>);

impl Handler<SeenProfiles> for RelationshipActor {
    type Result = ();
    fn handle(&mut self, msg: SeenProfiles, _: &mut Context<Self>) {
        for (u, nick, face) in msg.0 {
            self.profiles.insert(u, (nick, face));
        }
    }
}

/// `get_users_info {user_ids}` from the local cache.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct UsersInfo(pub Vec<String>);

impl Handler<UsersInfo> for RelationshipActor {
    type Result = Result<Value>;
    fn handle(&mut self, msg: UsersInfo, _: &mut Context<Self>) -> Self::Result {
        if self.me.is_none() {
            return Err(ApiError::new(codes::ERR_SDK_NOT_LOGGED_IN, "not logged in"));
        }
        let list: Vec<Value> = msg
            .0
            .iter()
            .map(|u| {
                let (nick, face) = self.profiles.get(u).cloned().unwrap_or_default();
                json!({"user_id": u, "nick_name": nick, "face_url": face})
            })
            .collect();
        Ok(json!({ "user_info_list": list }))
    }
}
