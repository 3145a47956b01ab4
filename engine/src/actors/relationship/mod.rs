//! RelationshipActor: the user's relationship state (friends, applications, blacklist, friend
//! groups, own profile), kept in the account's store (table `F`) and synced from the server by
//! version (ARCHITECTURE.md §3 "relations sync by version"), and the relationship events.
//!
//! Every change — made on this device, on another device of the user, or by another user (an
//! application, an acceptance, a profile change of a friend) — reaches the state the same way:
//! the server moves the item in the user's relationship change log and pushes the new version;
//! the actor pulls the items changed since its version ([`state::RelState::apply`] turns them into
//! events) and stores them. Writes made here sync before they answer, so a call that returns has
//! its effect in the local lists. Syncs run one at a time (the actor waits on them), after every
//! (re)connection and on every push, so a device that was offline catches up on login.
//!
//! Follow lists, status and profiles of other users are read from the server; their changes
//! arrive as pushes and become events directly.

pub mod json;
pub mod remarks;
pub mod state;

use std::collections::HashMap;

use actix::fut::LocalBoxActorFuture;
use actix::prelude::*;
use chime_proto::codes;
use chime_proto::pb::{self, push, request, response};
use serde_json::{Value, json};

use self::json::{application_json, black_json, friend_json, status_json, user_json};
use self::state::{Changes, RelState};
use super::connection::{ConnectionActor, Rpc};
use super::{Account, CloseAccount, Online, OpenAccount, Peers, Shared, decode};
use crate::store::WriteBatch;
use crate::{ApiError, Result};

/// The store table of relationship items: `F` + item key. The version is under `F\0version`
/// (item keys never start with a NUL).
const TABLE: u8 = b'F';
/// Most sync pages pulled in one go (500 items each).
const MAX_SYNC_PAGES: usize = 1_000;

fn item_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(TABLE);
    k.extend_from_slice(key.as_bytes());
    k
}

fn version_key() -> Vec<u8> {
    vec![TABLE, 0, b'v']
}

fn mailbox(e: MailboxError) -> ApiError {
    ApiError::new(codes::ERR_SDK_INTERNAL, format!("engine actor: {e}"))
}

/// Owns the relationship state.
pub struct RelationshipActor {
    shared: Shared,
    peers: Option<Peers>,
    acct: Option<Account>,
    state: RelState,
    /// Profiles seen on messages: user → (nick name, face URL).
    seen: HashMap<String, (String, String)>,
}

impl RelationshipActor {
    /// An actor with no account.
    pub fn new(shared: Shared) -> Self {
        Self {
            shared,
            peers: None,
            acct: None,
            state: RelState::default(),
            seen: HashMap::new(),
        }
    }

    fn logged_in(&self) -> Result<&Account> {
        self.acct
            .as_ref()
            .ok_or_else(|| ApiError::new(codes::ERR_SDK_NOT_LOGGED_IN, "not logged in"))
    }

    /// Pulls every page changed since the state's version, applies and stores it, and emits the
    /// events. Errors (offline) leave the state as it was; the next connection retries.
    fn sync(&self) -> LocalBoxActorFuture<Self, Result<()>> {
        let (Some(peers), Some(acct)) = (self.peers.clone(), self.acct.as_ref()) else {
            return Box::pin(actix::fut::ready(Ok(())));
        };
        let user = acct.user.clone();
        let version = self.state.version;
        Box::pin(
            fetch(peers.conn, version)
                .into_actor(self)
                .map(move |pages, act, _| {
                    let pages = pages?;
                    if act.acct.as_ref().map(|a| a.user.as_str()) != Some(user.as_str()) {
                        return Ok(());
                    }
                    for page in pages {
                        act.apply_page(page);
                    }
                    Ok(())
                }),
        )
    }

    fn apply_page(&mut self, page: pb::RelationSyncResp) {
        let keys: Vec<String> = page.items.iter().map(|i| i.key.clone()).collect();
        let changes = self.state.apply(page.items, page.version);
        let mut b = WriteBatch::new();
        let renamed = changes
            .groups_renamed
            .iter()
            .map(|(old, _)| format!("g/{old}"));
        for k in keys.into_iter().chain(renamed) {
            match self.state.items.get(&k) {
                Some(it) => b.put(item_key(&k), prost::Message::encode_to_vec(it)),
                None => b.delete(item_key(&k)),
            }
        }
        b.put(version_key(), self.state.version.to_be_bytes().to_vec());
        if let Some(a) = &self.acct
            && let Err(e) = a.store.apply(b)
        {
            tracing::warn!("relationship write: {e}");
        }
        if !(changes.friends_added.is_empty()
            && changes.friends_deleted.is_empty()
            && changes.friends_changed.is_empty())
        {
            self.publish_remarks();
        }
        if !changes.is_empty() {
            self.emit(&changes);
        }
    }

    /// Publishes the friend remarks for message objects ([`remarks`]).
    fn publish_remarks(&self) {
        let remarks = self
            .state
            .friends()
            .map(|f| (f.user_id.clone(), f.remark.clone()));
        self.shared.events.remarks().replace(remarks);
    }

    fn friends_json(&self, ids: &[String]) -> Vec<Value> {
        ids.iter()
            .map(|u| match self.state.friend(u) {
                Some(f) => friend_json(f),
                None => json!({"user_id": u}),
            })
            .collect()
    }

    fn emit(&self, ch: &Changes) {
        let ev = &self.shared.events;
        if let Some(p) = &ch.self_profile {
            ev.emit("on_self_info_updated", json!({"info": user_json(p)}));
        }
        if !ch.applications_added.is_empty() {
            let list: Vec<Value> = ch.applications_added.iter().map(application_json).collect();
            ev.emit(
                "on_friend_application_list_added",
                json!({"application_list": list}),
            );
        }
        if !ch.applications_deleted.is_empty() {
            ev.emit(
                "on_friend_application_list_deleted",
                json!({"user_ids": ch.applications_deleted}),
            );
        }
        if ch.applications_read {
            ev.emit("on_friend_application_list_read", json!({}));
        }
        if !ch.friends_added.is_empty() {
            let list: Vec<Value> = ch.friends_added.iter().map(friend_json).collect();
            ev.emit("on_friend_list_added", json!({"friend_info_list": list}));
        }
        if !ch.friends_deleted.is_empty() {
            ev.emit(
                "on_friend_list_deleted",
                json!({"user_ids": ch.friends_deleted}),
            );
        }
        if !ch.friends_changed.is_empty() {
            let list: Vec<Value> = ch.friends_changed.iter().map(friend_json).collect();
            ev.emit("on_friend_info_changed", json!({"friend_info_list": list}));
        }
        if !ch.black_added.is_empty() {
            let list: Vec<Value> = ch.black_added.iter().map(black_json).collect();
            ev.emit("on_black_list_added", json!({"friend_info_list": list}));
        }
        if !ch.black_deleted.is_empty() {
            ev.emit(
                "on_black_list_deleted",
                json!({"user_ids": ch.black_deleted}),
            );
        }
        for g in &ch.groups_created {
            ev.emit(
                "on_friend_group_created",
                json!({"group_name": g.name, "friend_info_list": self.friends_json(&g.user_ids)}),
            );
        }
        if !ch.groups_deleted.is_empty() {
            ev.emit(
                "on_friend_group_deleted",
                json!({"group_names": ch.groups_deleted}),
            );
        }
        for (old, new) in &ch.groups_renamed {
            ev.emit(
                "on_friend_group_name_changed",
                json!({"old_name": old, "new_name": new}),
            );
        }
        for (name, ids) in &ch.group_members_added {
            ev.emit(
                "on_friends_added_to_friend_group",
                json!({"group_name": name, "friend_info_list": self.friends_json(ids)}),
            );
        }
        for (name, ids) in &ch.group_members_removed {
            ev.emit(
                "on_friends_deleted_from_friend_group",
                json!({"group_name": name, "user_ids": ids}),
            );
        }
    }
}

/// Pulls the relationship change pages from `version` on.
async fn fetch(conn: Addr<ConnectionActor>, mut version: u64) -> Result<Vec<pb::RelationSyncResp>> {
    let mut pages = Vec::new();
    for _ in 0..MAX_SYNC_PAGES {
        let req = request::Kind::RelationSync(pb::RelationSyncReq { version, limit: 0 });
        let resp = conn.send(Rpc(req)).await.map_err(mailbox)??;
        let Some(response::Kind::RelationSync(page)) = resp.kind else {
            return Err(ApiError::new(
                codes::ERR_PARSE_RESPONSE,
                "unexpected relation sync answer",
            ));
        };
        version = page.version;
        let more = page.has_more;
        pages.push(page);
        if !more {
            break;
        }
    }
    Ok(pages)
}

impl Actor for RelationshipActor {
    type Context = Context<Self>;
}

/// Tells the actor its peers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPeers(pub Peers);

impl Handler<SetPeers> for RelationshipActor {
    type Result = ();
    fn handle(&mut self, msg: SetPeers, _: &mut Context<Self>) {
        self.peers = Some(msg.0);
    }
}

impl Handler<OpenAccount> for RelationshipActor {
    type Result = ();
    fn handle(&mut self, msg: OpenAccount, _: &mut Context<Self>) {
        let Account { store, .. } = &msg.0;
        let mut state = RelState::default();
        if let Ok(Some(v)) = store.get(&version_key()) {
            state.version = v
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes);
        }
        if let Ok(entries) = store.scan(&[TABLE, 1], &[TABLE + 1], false, usize::MAX) {
            for (k, v) in entries {
                if let Ok(it) = decode::<pb::RelationItem>(&k, &v) {
                    state.items.insert(it.key.clone(), it);
                }
            }
        }
        self.state = state;
        self.publish_remarks();
        self.seen.clear();
        self.acct = Some(msg.0);
    }
}

impl Handler<CloseAccount> for RelationshipActor {
    type Result = ();
    fn handle(&mut self, _: CloseAccount, _: &mut Context<Self>) {
        self.acct = None;
        self.state = RelState::default();
        self.publish_remarks();
        self.seen.clear();
    }
}

impl Handler<Online> for RelationshipActor {
    type Result = ();
    fn handle(&mut self, _: Online, ctx: &mut Context<Self>) {
        let f = self.sync().map(|r, _, _| {
            if let Err(e) = r {
                tracing::info!("relationship sync: {} {}", e.code, e.desc);
            }
        });
        ctx.wait(f);
    }
}

/// A relationship push from the server.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Pushed(pub push::Kind);

impl Handler<Pushed> for RelationshipActor {
    type Result = ();
    fn handle(&mut self, msg: Pushed, ctx: &mut Context<Self>) {
        if self.acct.is_none() {
            return;
        }
        let ev = &self.shared.events;
        match msg.0 {
            push::Kind::RelationChanged(p) if p.version > self.state.version => {
                let f = self.sync().map(|r, _, _| {
                    if let Err(e) = r {
                        tracing::info!("relationship sync: {} {}", e.code, e.desc);
                    }
                });
                ctx.wait(f);
            }
            push::Kind::UserInfoChanged(p) => {
                let list: Vec<Value> = p.profiles.iter().map(user_json).collect();
                ev.emit("on_user_info_changed", json!({"user_info_list": list}));
            }
            push::Kind::UserStatus(p) => {
                let list: Vec<Value> = p.statuses.iter().map(status_json).collect();
                ev.emit("on_user_status_changed", json!({"user_status_list": list}));
            }
            push::Kind::FollowChanged(p) => {
                let name = match p.list() {
                    pb::FollowList::Followers => "on_my_followers_list_changed",
                    pb::FollowList::Mutual => "on_mutual_followers_list_changed",
                    _ => "on_my_following_list_changed",
                };
                let list: Vec<Value> = p.users.iter().map(user_json).collect();
                ev.emit(name, json!({"user_info_list": list, "is_add": p.is_add}));
            }
            _ => {}
        }
    }
}

/// One relationship write: sent, then synced, then answered.
#[derive(Message)]
#[rtype(result = "Result<pb::RelationResp>")]
pub struct Write(pub pb::relation_req::Op);

impl Handler<Write> for RelationshipActor {
    type Result = AtomicResponse<Self, Result<pb::RelationResp>>;
    fn handle(&mut self, msg: Write, _: &mut Context<Self>) -> Self::Result {
        let peers = match (self.logged_in(), self.peers.clone()) {
            (Err(e), _) => return AtomicResponse::new(Box::pin(actix::fut::ready(Err(e)))),
            (Ok(_), None) => {
                let e = ApiError::new(codes::ERR_SDK_INTERNAL, "not wired");
                return AtomicResponse::new(Box::pin(actix::fut::ready(Err(e))));
            }
            (Ok(_), Some(p)) => p,
        };
        let req = request::Kind::Relation(pb::RelationReq { op: Some(msg.0) });
        let fut = async move {
            let resp = peers.conn.send(Rpc(req)).await.map_err(mailbox)??;
            match resp.kind {
                Some(response::Kind::Relation(r)) => Ok(r),
                _ => Err(ApiError::new(
                    codes::ERR_PARSE_RESPONSE,
                    "unexpected relation answer",
                )),
            }
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).then(|res, act, _| {
            let sync: LocalBoxActorFuture<Self, Result<()>> = match &res {
                Ok(_) => act.sync(),
                Err(_) => Box::pin(actix::fut::ready(Ok(()))),
            };
            sync.map(move |s, _, _| {
                if let Err(e) = s {
                    tracing::info!("relationship sync after write: {} {}", e.code, e.desc);
                }
                res
            })
        })))
    }
}

/// A read of the local relationship state.
pub type QueryFn = Box<dyn FnOnce(&RelState) -> Result<Value> + Send>;

/// Answers a read from the local state.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct Query(pub QueryFn);

impl Handler<Query> for RelationshipActor {
    type Result = Result<Value>;
    fn handle(&mut self, msg: Query, _: &mut Context<Self>) -> Self::Result {
        self.logged_in()?;
        (msg.0)(&self.state)
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
            self.seen.insert(u, (nick, face));
        }
    }
}

/// Profiles known locally (own, friends', seen on messages), for `get_users_info` while offline.
#[derive(Message)]
#[rtype(result = "Result<Vec<pb::UserProfile>>")]
pub struct LocalProfiles(pub Vec<String>);

impl Handler<LocalProfiles> for RelationshipActor {
    type Result = Result<Vec<pb::UserProfile>>;
    fn handle(&mut self, msg: LocalProfiles, _: &mut Context<Self>) -> Self::Result {
        let me = self.logged_in()?.user.clone();
        Ok(msg
            .0
            .into_iter()
            .map(|u| {
                if u == me
                    && let Some(p) = self.state.self_profile()
                {
                    return p.clone();
                }
                if let Some(p) = self.state.friend(&u).and_then(|f| f.profile.clone()) {
                    return p;
                }
                let (nick_name, face_url) = self.seen.get(&u).cloned().unwrap_or_default();
                pb::UserProfile {
                    user_id: u,
                    nick_name,
                    face_url,
                    ..Default::default()
                }
            })
            .collect())
    }
}
