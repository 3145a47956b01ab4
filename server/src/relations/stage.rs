//! The relationship writes, staged by the commit task inside its batch transaction: each
//! operation changes records, moves the changed items in the affected users' change logs and
//! decides the pushes (sent after the batch is durable).

use std::collections::BTreeSet;

use chime_proto::pb::{self, relation_req::Op as RelOp, response::Kind as RespKind};
use chime_proto::{codes, ids};

use super::keys::{self, item};
use super::{allow, code, limit, load_profile};
use crate::commit::{Effect, now_ms};
use crate::error::{ApiError, ApiResult, StoreError};
use crate::keys::{Key, tag};
use crate::registry::push_frame;
use crate::store::Store;
use crate::txn::Txn;

/// Stages one relationship write of `me`; `skip` is the requesting connection (it learns the
/// outcome from the answer, the user's other devices from a push).
pub(crate) fn stage(
    txn: &mut Txn<'_>,
    store: &dyn Store,
    app: u64,
    me: &str,
    req: pb::RelationReq,
    skip: u64,
    fx: &mut Vec<Effect>,
) -> ApiResult<RespKind> {
    let op = req
        .op
        .ok_or_else(|| ApiError::new(code::INVALID_PARAMETERS, "op is required"))?;
    let mut cx = Ctx {
        txn,
        store,
        app,
        me: me.to_owned(),
        now: now_ms(),
        moved: BTreeSet::new(),
        fx,
        skip,
    };
    let mut resp = pb::RelationResp::default();
    match op {
        RelOp::SetProfile(p) => resp.profile = Some(cx.set_profile(p)?),
        RelOp::AddFriend(op) => resp.results.push(cx.add_friend(op)?),
        RelOp::DeleteFriends(op) => {
            for u in checked(&op.user_ids)? {
                resp.results.push(cx.delete_friend(&u, op.both)?);
            }
        }
        RelOp::SetFriendInfo(op) => cx.set_friend_info(op)?,
        RelOp::HandleApplication(op) => resp.results.push(cx.handle_application(op)?),
        RelOp::DeleteApplication(op) => resp.results.push(cx.delete_application(op)?),
        RelOp::SetApplicationRead(_) => {
            let now = cx.now;
            cx.txn
                .put(keys::applications_read(app, me), now.to_be_bytes().to_vec());
            cx.bump(me, item::APPLICATIONS_READ)?;
        }
        RelOp::AddToBlackList(op) => {
            for u in checked(&op.user_ids)? {
                resp.results.push(cx.add_black(&u)?);
            }
        }
        RelOp::DeleteFromBlackList(op) => {
            for u in checked(&op.user_ids)? {
                resp.results.push(cx.delete_black(&u)?);
            }
        }
        RelOp::CreateFriendGroup(op) => resp.results = cx.create_group(op)?,
        RelOp::DeleteFriendGroups(op) => {
            for name in op.names {
                resp.results.push(cx.delete_group(&name)?);
            }
        }
        RelOp::RenameFriendGroup(op) => cx.rename_group(&op.old_name, &op.new_name)?,
        RelOp::AddToFriendGroup(op) => {
            let mut g = cx.group(&op.name)?;
            for u in checked(&op.user_ids)? {
                resp.results.push(cx.group_add(&mut g, &u)?);
            }
            cx.put_group(&g)?;
        }
        RelOp::DeleteFromFriendGroup(op) => {
            let mut g = cx.group(&op.name)?;
            for u in checked(&op.user_ids)? {
                resp.results.push(cx.group_remove(&mut g, &u)?);
            }
            cx.put_group(&g)?;
        }
        RelOp::Follow(op) => {
            for u in checked(&op.user_ids)? {
                resp.results.push(cx.follow(&u, true)?);
            }
        }
        RelOp::Unfollow(op) => {
            for u in checked(&op.user_ids)? {
                resp.results.push(cx.follow(&u, false)?);
            }
        }
        RelOp::SubscribeUserInfo(op) => cx.subscribe(&op.user_ids, true, true, &mut resp)?,
        RelOp::UnsubscribeUserInfo(op) => cx.subscribe(&op.user_ids, true, false, &mut resp)?,
        RelOp::SubscribeUserStatus(op) => cx.subscribe(&op.user_ids, false, true, &mut resp)?,
        RelOp::UnsubscribeUserStatus(op) => {
            cx.subscribe(&op.user_ids, false, false, &mut resp)?;
        }
        RelOp::SetCustomStatus(op) => cx.set_custom_status(op.custom_status)?,
    }
    resp.version = cx.txn.get_u64(&keys::version(app, me))?;
    cx.push_moved()?;
    Ok(RespKind::Relation(resp))
}

/// The friendships one add makes: `owner` gets `friend`, and the reverse when `both`.
fn friend_pairs(owner: &str, friend: &str, both: bool) -> Vec<(String, String)> {
    let mut pairs = vec![(owner.to_owned(), friend.to_owned())];
    if both {
        pairs.push((friend.to_owned(), owner.to_owned()));
    }
    pairs
}

/// The user ids of a batch, validated (7003) and bounded.
fn checked(ids_in: &[String]) -> ApiResult<Vec<String>> {
    if ids_in.is_empty() || ids_in.len() > limit::BATCH_USERS {
        return Err(ApiError::new(
            code::INVALID_PARAMETERS,
            format!("user_ids must hold 1..={} ids", limit::BATCH_USERS),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(ids_in.len());
    for u in ids_in {
        if !ids::is_valid_user_id(u) {
            return Err(ApiError::new(
                codes::ERR_INVALID_USER_ID,
                format!("invalid user id {u:?}"),
            ));
        }
        if !out.contains(u) {
            out.push(u.clone());
        }
    }
    Ok(out)
}

fn ok(user: &str) -> pb::UserResult {
    pb::UserResult {
        user_id: user.to_owned(),
        code: 0,
        desc: String::new(),
    }
}

fn fail(user: &str, code: i32, desc: &str) -> pb::UserResult {
    pb::UserResult {
        user_id: user.to_owned(),
        code,
        desc: desc.to_owned(),
    }
}

/// A valid friend group name (the client checks the same and answers 9005).
fn valid_group_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 30
}

struct Ctx<'t, 'a> {
    txn: &'t mut Txn<'a>,
    store: &'t dyn Store,
    app: u64,
    me: String,
    now: i64,
    /// Users whose relationship version moved.
    moved: BTreeSet<String>,
    fx: &'t mut Vec<Effect>,
    skip: u64,
}

impl Ctx<'_, '_> {
    fn get<T: prost::Message + Default>(&self, key: &[u8]) -> ApiResult<Option<T>> {
        match self.txn.get(key)? {
            Some(v) => Ok(Some(T::decode(&v[..]).map_err(StoreError::from)?)),
            None => Ok(None),
        }
    }

    fn put<T: prost::Message>(&mut self, key: Vec<u8>, v: &T) {
        self.txn.put(key, v.encode_to_vec());
    }

    fn exists(&self, key: &[u8]) -> ApiResult<bool> {
        Ok(self.txn.get(key)?.is_some())
    }

    fn registered(&self, user: &str) -> ApiResult<bool> {
        self.exists(&Key::new(tag::USER, self.app).s(user.as_bytes()).done())
    }

    /// Moves `item` to the end of `user`'s relationship change log.
    fn bump(&mut self, user: &str, item: &str) -> ApiResult<()> {
        let app = self.app;
        let vkey = keys::version(app, user);
        let version = self.txn.get_u64(&vkey)? + 1;
        let ikey = keys::item_version(app, user, item);
        let old = self.txn.get_u64(&ikey)?;
        if old != 0 {
            self.txn.del(keys::log(app, user, old));
        }
        self.txn
            .put(keys::log(app, user, version), item.as_bytes().to_vec());
        self.txn.put(ikey, version.to_be_bytes().to_vec());
        self.txn.put(vkey, version.to_be_bytes().to_vec());
        self.moved.insert(user.to_owned());
        Ok(())
    }

    fn push(&mut self, user: &str, kind: pb::push::Kind, skip: u64) {
        self.fx.push(Effect::Push {
            app: self.app,
            user: user.to_owned(),
            frame: push_frame(kind),
            skip,
        });
    }

    /// Tells every user whose version moved (their devices sync).
    fn push_moved(&mut self) -> ApiResult<()> {
        for user in std::mem::take(&mut self.moved) {
            let version = self.txn.get_u64(&keys::version(self.app, &user))?;
            let kind = pb::push::Kind::RelationChanged(pb::RelationChangedPush { version });
            let skip = self.skip;
            self.push(&user, kind, skip);
        }
        Ok(())
    }

    /// Every last component under `F app user table` in the store (committed state).
    fn scan_ids(&self, user: &str, table: &[u8], max: usize) -> ApiResult<Vec<String>> {
        let (lo, hi) = keys::base(self.app, user, table).prefix_range();
        let plen = keys::prefix_len(user, table);
        Ok(self
            .store
            .scan(&lo, &hi, max, false)?
            .into_iter()
            .filter_map(|(k, _)| crate::keys::trailing_str(&k, plen))
            .collect())
    }

    // ---- profiles and status ----

    fn set_profile(&mut self, p: pb::SetProfileReq) -> ApiResult<pb::UserProfile> {
        let me = self.me.clone();
        let mut cur = load_profile(self.txn, self.app, &me)?;
        let too_long = |s: &Option<String>| {
            s.as_ref()
                .is_some_and(|s| s.len() > limit::PROFILE_VALUE_BYTES)
        };
        if too_long(&p.nick_name) || too_long(&p.face_url) || too_long(&p.self_signature) {
            return Err(ApiError::new(
                code::PROFILE_SIZE_LIMIT,
                "a profile value is over 500 bytes",
            ));
        }
        if p.gender.is_some_and(|g| !(0..=2).contains(&g)) {
            return Err(ApiError::new(
                code::PROFILE_INVALID_PARAMETERS,
                "invalid gender",
            ));
        }
        if p.allow_type.is_some_and(|a| !(0..=2).contains(&a)) {
            return Err(ApiError::new(
                code::PROFILE_INVALID_PARAMETERS,
                "invalid allow_type",
            ));
        }
        for (k, v) in &p.custom_info {
            if k.is_empty() || k.len() > 8 || !k.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(ApiError::new(
                    code::PROFILE_INVALID_PARAMETERS,
                    format!("custom key {k:?} must be 1..=8 letters"),
                ));
            }
            if v.len() > limit::PROFILE_VALUE_BYTES {
                return Err(ApiError::new(
                    code::PROFILE_SIZE_LIMIT,
                    format!("custom value of {k:?} is over 500 bytes"),
                ));
            }
        }
        cur.user_id.clone_from(&me);
        if let Some(v) = p.nick_name {
            cur.nick_name = v;
        }
        if let Some(v) = p.face_url {
            cur.face_url = v;
        }
        if let Some(v) = p.self_signature {
            cur.self_signature = v;
        }
        if let Some(v) = p.gender {
            cur.gender = v;
        }
        if let Some(v) = p.birthday {
            cur.birthday = v;
        }
        if let Some(v) = p.level {
            cur.level = v;
        }
        if let Some(v) = p.role {
            cur.role = v;
        }
        if let Some(v) = p.allow_type {
            cur.allow_type = v;
        }
        for (k, v) in p.custom_info {
            if v.is_empty() {
                cur.custom_info.remove(&k);
            } else {
                cur.custom_info.insert(k, v);
            }
        }
        cur.modify_time_ms = self.now;
        self.put(keys::profile(self.app, &me), &cur);
        self.bump(&me, item::SELF_PROFILE)?;
        // Everyone who has me as a friend sees my new profile on my friend item.
        for owner in self.scan_ids(&me, b"f", usize::MAX)? {
            self.bump(&owner, &item::friend(&me))?;
        }
        // My blacklist entries and applications carry profiles too, but they are mine to see.
        for sub in self.scan_ids(&me, b"u", usize::MAX)? {
            let kind = pb::push::Kind::UserInfoChanged(pb::UserInfoChangedPush {
                profiles: vec![cur.clone()],
            });
            self.push(&sub, kind, 0);
        }
        Ok(cur)
    }

    fn set_custom_status(&mut self, status: String) -> ApiResult<()> {
        if status.len() > limit::CUSTOM_STATUS_BYTES {
            return Err(ApiError::new(
                code::INVALID_PARAMETERS,
                "custom_status is over 100 bytes",
            ));
        }
        let me = self.me.clone();
        self.txn.put(
            keys::custom_status(self.app, &me),
            status.as_bytes().to_vec(),
        );
        let st = pb::UserStatus {
            user_id: me.clone(),
            status_type: 1,
            custom_status: status,
            online_devices: Vec::new(),
        };
        let mut to: Vec<String> = self.scan_ids(&me, b"t", usize::MAX)?;
        to.retain(|u| *u != me);
        let kind = |st: &pb::UserStatus| {
            pb::push::Kind::UserStatus(pb::UserStatusPush {
                statuses: vec![st.clone()],
            })
        };
        let skip = self.skip;
        self.push(&me, kind(&st), skip);
        for u in to {
            self.push(&u, kind(&st), 0);
        }
        Ok(())
    }

    fn subscribe(
        &mut self,
        users: &[String],
        info: bool,
        on: bool,
        resp: &mut pb::RelationResp,
    ) -> ApiResult<()> {
        let me = self.me.clone();
        let (table, mine): (&[u8], &[u8]) = if info { (b"u", b"U") } else { (b"t", b"S") };
        let keys_of = |app: u64, target: &str| {
            if info {
                (
                    keys::info_sub(app, target, &me),
                    keys::my_info_sub(app, &me, target),
                )
            } else {
                (
                    keys::status_sub(app, target, &me),
                    keys::my_status_sub(app, &me, target),
                )
            }
        };
        // Unsubscribing from nobody in particular: from everyone.
        let targets = if users.is_empty() && !on {
            self.scan_ids(&me, mine, usize::MAX)?
        } else {
            checked(users)?
        };
        for u in targets {
            if on && !self.registered(&u)? {
                resp.results
                    .push(fail(&u, code::ACCOUNT_NOT_FOUND, "no such user"));
                continue;
            }
            let (key, reverse) = keys_of(self.app, &u);
            if on {
                if self.scan_ids(&u, table, limit::SUBSCRIPTIONS + 1)?.len() > limit::SUBSCRIPTIONS
                {
                    resp.results
                        .push(fail(&u, code::INVALID_PARAMETERS, "too many subscribers"));
                    continue;
                }
                self.txn.put(key, Vec::new());
                self.txn.put(reverse, Vec::new());
            } else {
                self.txn.del(key);
                self.txn.del(reverse);
            }
            resp.results.push(ok(&u));
        }
        Ok(())
    }

    // ---- friends ----

    /// `owner` gets `friend` in their list (no-op if already there).
    fn make_friend(
        &mut self,
        owner: &str,
        friend: &str,
        remark: &str,
        group: &str,
        source: &str,
        wording: &str,
    ) -> ApiResult<()> {
        let app = self.app;
        if self.exists(&keys::friend(app, owner, friend))? {
            return Ok(());
        }
        let mut f = pb::Friend {
            user_id: friend.to_owned(),
            remark: remark.to_owned(),
            add_source: source.to_owned(),
            add_wording: wording.to_owned(),
            add_time_ms: self.now,
            ..Default::default()
        };
        if valid_group_name(group) {
            let gkey = keys::friend_group(app, owner, group);
            let mut g: pb::FriendGroup = self.get(&gkey)?.unwrap_or_else(|| pb::FriendGroup {
                name: group.to_owned(),
                create_time_ms: self.now,
                ..Default::default()
            });
            g.renamed_from.clear();
            if !g.user_ids.iter().any(|u| u == friend) {
                g.user_ids.push(friend.to_owned());
            }
            self.put(gkey, &g);
            self.bump(owner, &item::friend_group(group))?;
            f.groups.push(group.to_owned());
        }
        self.put(keys::friend(app, owner, friend), &f);
        self.txn
            .put(keys::friend_of(app, friend, owner), Vec::new());
        self.bump(owner, &item::friend(friend))
    }

    /// `owner` loses `friend` (and the friend leaves `owner`'s groups); false if not a friend.
    fn remove_friend(&mut self, owner: &str, friend: &str) -> ApiResult<bool> {
        let app = self.app;
        let Some(f) = self.get::<pb::Friend>(&keys::friend(app, owner, friend))? else {
            return Ok(false);
        };
        for name in &f.groups {
            let gkey = keys::friend_group(app, owner, name);
            if let Some(mut g) = self.get::<pb::FriendGroup>(&gkey)? {
                g.user_ids.retain(|u| u != friend);
                g.renamed_from.clear();
                self.put(gkey, &g);
                self.bump(owner, &item::friend_group(name))?;
            }
        }
        self.txn.del(keys::friend(app, owner, friend));
        self.txn.del(keys::friend_of(app, friend, owner));
        self.bump(owner, &item::friend(friend))?;
        Ok(true)
    }

    /// Removes every application between `a` and `b`, both directions, both lists.
    fn clear_applications(&mut self, a: &str, b: &str) -> ApiResult<()> {
        for (owner, other) in [(a, b), (b, a)] {
            for incoming in [true, false] {
                let k = keys::application(self.app, owner, incoming, other);
                if self.exists(&k)? {
                    self.txn.del(k);
                    self.bump(owner, &item::application(incoming, other))?;
                }
            }
        }
        Ok(())
    }

    fn add_friend(&mut self, op: pb::AddFriendOp) -> ApiResult<pb::UserResult> {
        let app = self.app;
        let me = self.me.clone();
        let t = op.user_id.clone();
        if !ids::is_valid_user_id(&t) {
            return Err(ApiError::new(codes::ERR_INVALID_USER_ID, "invalid user_id"));
        }
        if t == me {
            return Ok(fail(&t, code::INVALID_PARAMETERS, "cannot add yourself"));
        }
        if !self.registered(&t)? {
            return Ok(fail(&t, code::ACCOUNT_NOT_FOUND, "no such user"));
        }
        if self.exists(&keys::black(app, &me, &t))? {
            return Ok(fail(
                &t,
                code::IN_SELF_BLACKLIST,
                "the user is in your blacklist",
            ));
        }
        if self.exists(&keys::black(app, &t, &me))? {
            return Ok(fail(
                &t,
                code::IN_PEER_BLACKLIST,
                "you are in the user's blacklist",
            ));
        }
        let mine = self.exists(&keys::friend(app, &me, &t))?;
        let theirs = self.exists(&keys::friend(app, &t, &me))?;
        if mine && (!op.both || theirs) {
            return Ok(fail(&t, code::ALREADY_FRIENDS, "already friends"));
        }
        if !mine && self.scan_ids(&me, b"F", limit::FRIENDS + 1)?.len() >= limit::FRIENDS {
            return Ok(fail(&t, code::FRIEND_COUNT_LIMIT, "friend list is full"));
        }
        let target = load_profile(self.txn, app, &t)?;
        match target.allow_type {
            allow::DENY_ANY => Ok(fail(
                &t,
                code::ALLOW_TYPE_DENY_ANY,
                "the user accepts no friend requests",
            )),
            allow::ALLOW_ANY => {
                self.make_friend(
                    &me,
                    &t,
                    &op.remark,
                    &op.friend_group,
                    &op.add_source,
                    &op.add_wording,
                )?;
                if op.both {
                    self.make_friend(&t, &me, "", "", &op.add_source, &op.add_wording)?;
                }
                let pairs = friend_pairs(&me, &t, op.both);
                self.fx.push(crate::webhooks::friends_added_effect(
                    app, pairs, &me, false,
                ));
                self.clear_applications(&me, &t)?;
                Ok(ok(&t))
            }
            _ => {
                let application = |user: &str, ty: pb::ApplicationType| pb::FriendApplication {
                    user_id: user.to_owned(),
                    r#type: ty as i32,
                    add_source: op.add_source.clone(),
                    add_wording: op.add_wording.clone(),
                    add_time_ms: self.now,
                    both: op.both,
                    remark: op.remark.clone(),
                    friend_group: op.friend_group.clone(),
                    profile: None,
                };
                let incoming = application(&me, pb::ApplicationType::ComeIn);
                let outgoing = application(&t, pb::ApplicationType::SendOut);
                self.put(keys::application(app, &t, true, &me), &incoming);
                self.put(keys::application(app, &me, false, &t), &outgoing);
                self.bump(&t, &item::application(true, &me))?;
                self.bump(&me, &item::application(false, &t))?;
                Ok(fail(
                    &t,
                    code::ALLOW_TYPE_NEED_CONFIRM,
                    "the user must confirm: application sent",
                ))
            }
        }
    }

    fn delete_friend(&mut self, u: &str, both: bool) -> ApiResult<pb::UserResult> {
        let me = self.me.clone();
        let mine = self.remove_friend(&me, u)?;
        let theirs = both && self.remove_friend(u, &me)?;
        self.fx.extend(crate::webhooks::friends_deleted_effect(
            self.app, &me, u, mine, theirs,
        ));
        Ok(if mine || theirs {
            ok(u)
        } else {
            fail(u, code::NOT_A_FRIEND, "not a friend")
        })
    }

    fn set_friend_info(&mut self, op: pb::SetFriendInfoOp) -> ApiResult<()> {
        let me = self.me.clone();
        let key = keys::friend(self.app, &me, &op.user_id);
        let Some(mut f) = self.get::<pb::Friend>(&key)? else {
            return Err(ApiError::new(code::NOT_A_FRIEND, "not a friend"));
        };
        if let Some(r) = op.remark {
            f.remark = r;
        }
        for (k, v) in op.custom_info {
            if v.is_empty() {
                f.custom_info.remove(&k);
            } else {
                f.custom_info.insert(k, v);
            }
        }
        self.put(key, &f);
        self.bump(&me, &item::friend(&op.user_id))
    }

    fn handle_application(&mut self, op: pb::HandleApplicationOp) -> ApiResult<pb::UserResult> {
        let app = self.app;
        let me = self.me.clone();
        let u = op.user_id.clone();
        let Some(a) = self.get::<pb::FriendApplication>(&keys::application(app, &me, true, &u))?
        else {
            return Ok(fail(&u, code::APPLICATION_NOT_FOUND, "no such application"));
        };
        match op.action {
            0 => {}
            1 | 2 => {
                if self.exists(&keys::black(app, &me, &u))? {
                    return Ok(fail(
                        &u,
                        code::IN_SELF_BLACKLIST,
                        "the user is in your blacklist",
                    ));
                }
                self.make_friend(
                    &u,
                    &me,
                    &a.remark,
                    &a.friend_group,
                    &a.add_source,
                    &a.add_wording,
                )?;
                if op.action == 2 {
                    self.make_friend(&me, &u, &op.remark, "", &a.add_source, &a.add_wording)?;
                }
                let pairs = friend_pairs(&u, &me, op.action == 2);
                self.fx
                    .push(crate::webhooks::friends_added_effect(app, pairs, &u, true));
            }
            _ => {
                return Err(ApiError::new(code::INVALID_PARAMETERS, "invalid action"));
            }
        }
        self.clear_applications(&me, &u)?;
        Ok(ok(&u))
    }

    fn delete_application(&mut self, op: pb::DeleteApplicationOp) -> ApiResult<pb::UserResult> {
        let me = self.me.clone();
        let incoming = op.r#type != pb::ApplicationType::SendOut as i32;
        let key = keys::application(self.app, &me, incoming, &op.user_id);
        if !self.exists(&key)? {
            return Ok(fail(
                &op.user_id,
                code::APPLICATION_NOT_FOUND,
                "no such application",
            ));
        }
        self.txn.del(key);
        self.bump(&me, &item::application(incoming, &op.user_id))?;
        Ok(ok(&op.user_id))
    }

    // ---- blacklist ----

    fn add_black(&mut self, u: &str) -> ApiResult<pb::UserResult> {
        let app = self.app;
        let me = self.me.clone();
        if u == me {
            return Ok(fail(u, code::INVALID_PARAMETERS, "cannot block yourself"));
        }
        let key = keys::black(app, &me, u);
        if self.exists(&key)? {
            return Ok(ok(u));
        }
        if self.scan_ids(&me, b"B", limit::BLACKLIST + 1)?.len() >= limit::BLACKLIST {
            return Ok(fail(u, code::BLACKLIST_LIMIT, "blacklist is full"));
        }
        let entry = pb::BlackEntry {
            user_id: u.to_owned(),
            add_time_ms: self.now,
            profile: None,
        };
        self.put(key, &entry);
        // Blocking ends the friendship both ways (Tencent: "拉黑时会解除双向好友关系") and any
        // pending application; the ended friendship is called back like a delete.
        let mine = self.remove_friend(&me, u)?;
        let theirs = self.remove_friend(u, &me)?;
        self.fx.extend(crate::webhooks::friends_deleted_effect(
            app, &me, u, mine, theirs,
        ));
        self.clear_applications(&me, u)?;
        self.bump(&me, &item::black(u))?;
        Ok(ok(u))
    }

    fn delete_black(&mut self, u: &str) -> ApiResult<pb::UserResult> {
        let me = self.me.clone();
        let key = keys::black(self.app, &me, u);
        if !self.exists(&key)? {
            return Ok(fail(u, code::INVALID_PARAMETERS, "not in the blacklist"));
        }
        self.txn.del(key);
        self.bump(&me, &item::black(u))?;
        Ok(ok(u))
    }

    // ---- friend groups ----

    fn group(&self, name: &str) -> ApiResult<pb::FriendGroup> {
        self.get(&keys::friend_group(self.app, &self.me, name))?
            .ok_or_else(|| {
                ApiError::new(
                    code::INVALID_PARAMETERS,
                    format!("no friend group {name:?}"),
                )
            })
    }

    fn put_group(&mut self, g: &pb::FriendGroup) -> ApiResult<()> {
        let me = self.me.clone();
        let mut g = g.clone();
        g.renamed_from.clear();
        self.put(keys::friend_group(self.app, &me, &g.name), &g);
        self.bump(&me, &item::friend_group(&g.name))
    }

    fn group_add(&mut self, g: &mut pb::FriendGroup, u: &str) -> ApiResult<pb::UserResult> {
        let me = self.me.clone();
        let fkey = keys::friend(self.app, &me, u);
        let Some(mut f) = self.get::<pb::Friend>(&fkey)? else {
            return Ok(fail(u, code::NOT_A_FRIEND, "not a friend"));
        };
        if !f.groups.contains(&g.name) {
            f.groups.push(g.name.clone());
            self.put(fkey, &f);
            self.bump(&me, &item::friend(u))?;
        }
        if !g.user_ids.iter().any(|x| x == u) {
            g.user_ids.push(u.to_owned());
        }
        Ok(ok(u))
    }

    fn group_remove(&mut self, g: &mut pb::FriendGroup, u: &str) -> ApiResult<pb::UserResult> {
        let me = self.me.clone();
        if !g.user_ids.iter().any(|x| x == u) {
            return Ok(fail(u, code::INVALID_PARAMETERS, "not in the friend group"));
        }
        g.user_ids.retain(|x| x != u);
        let fkey = keys::friend(self.app, &me, u);
        if let Some(mut f) = self.get::<pb::Friend>(&fkey)? {
            f.groups.retain(|n| *n != g.name);
            self.put(fkey, &f);
            self.bump(&me, &item::friend(u))?;
        }
        Ok(ok(u))
    }

    fn create_group(&mut self, op: pb::FriendGroupOp) -> ApiResult<Vec<pb::UserResult>> {
        if !valid_group_name(&op.name) {
            return Err(ApiError::new(
                code::INVALID_PARAMETERS,
                "group_name must be 1..=30 bytes",
            ));
        }
        let me = self.me.clone();
        if self.exists(&keys::friend_group(self.app, &me, &op.name))? {
            return Err(ApiError::new(
                code::INVALID_PARAMETERS,
                "the friend group exists",
            ));
        }
        if self.scan_ids(&me, b"Q", limit::FRIEND_GROUPS + 1)?.len() >= limit::FRIEND_GROUPS {
            return Err(ApiError::new(
                code::GROUP_COUNT_LIMIT,
                "too many friend groups",
            ));
        }
        let mut g = pb::FriendGroup {
            name: op.name.clone(),
            create_time_ms: self.now,
            ..Default::default()
        };
        let mut results = Vec::new();
        if !op.user_ids.is_empty() {
            for u in checked(&op.user_ids)? {
                results.push(self.group_add(&mut g, &u)?);
            }
        }
        self.put_group(&g)?;
        Ok(results)
    }

    fn delete_group(&mut self, name: &str) -> ApiResult<pb::UserResult> {
        let me = self.me.clone();
        let Some(g) = self.get::<pb::FriendGroup>(&keys::friend_group(self.app, &me, name))? else {
            return Ok(fail(name, code::INVALID_PARAMETERS, "no such friend group"));
        };
        for u in &g.user_ids {
            let fkey = keys::friend(self.app, &me, u);
            if let Some(mut f) = self.get::<pb::Friend>(&fkey)? {
                f.groups.retain(|n| n != name);
                self.put(fkey, &f);
                self.bump(&me, &item::friend(u))?;
            }
        }
        self.txn.del(keys::friend_group(self.app, &me, name));
        self.bump(&me, &item::friend_group(name))?;
        Ok(ok(name))
    }

    fn rename_group(&mut self, old: &str, new: &str) -> ApiResult<()> {
        if !valid_group_name(new) {
            return Err(ApiError::new(
                code::INVALID_PARAMETERS,
                "new_name must be 1..=30 bytes",
            ));
        }
        let me = self.me.clone();
        let mut g = self.group(old)?;
        if old == new {
            return Ok(());
        }
        if self.exists(&keys::friend_group(self.app, &me, new))? {
            return Err(ApiError::new(
                code::INVALID_PARAMETERS,
                "the friend group exists",
            ));
        }
        for u in &g.user_ids {
            let fkey = keys::friend(self.app, &me, u);
            if let Some(mut f) = self.get::<pb::Friend>(&fkey)? {
                for n in &mut f.groups {
                    if n == old {
                        *n = new.to_owned();
                    }
                }
                self.put(fkey, &f);
                self.bump(&me, &item::friend(u))?;
            }
        }
        // The old name leaves the log before the new one enters it, so a device syncing sees
        // the removal and the renamed group together and reports a rename.
        self.txn.del(keys::friend_group(self.app, &me, old));
        self.bump(&me, &item::friend_group(old))?;
        g.name = new.to_owned();
        g.renamed_from = old.to_owned();
        self.put(keys::friend_group(self.app, &me, new), &g);
        self.bump(&me, &item::friend_group(new))
    }

    // ---- follow ----

    fn follow(&mut self, u: &str, on: bool) -> ApiResult<pb::UserResult> {
        let app = self.app;
        let me = self.me.clone();
        if u == me {
            return Ok(fail(u, code::INVALID_PARAMETERS, "cannot follow yourself"));
        }
        let key = keys::following(app, &me, u);
        let was = self.exists(&key)?;
        if on == was {
            return Ok(if on {
                ok(u)
            } else {
                fail(u, code::INVALID_PARAMETERS, "not following")
            });
        }
        if on {
            if !self.registered(u)? {
                return Ok(fail(u, code::ACCOUNT_NOT_FOUND, "no such user"));
            }
            if self.scan_ids(&me, b"o", limit::FOLLOWING + 1)?.len() >= limit::FOLLOWING {
                return Ok(fail(u, code::FOLLOWING_LIMIT, "following list is full"));
            }
            let t = self.now.to_be_bytes().to_vec();
            self.txn.put(key, t.clone());
            self.txn.put(keys::follower(app, u, &me), t);
        } else {
            self.txn.del(key);
            self.txn.del(keys::follower(app, u, &me));
        }
        let mutual = self.exists(&keys::following(app, u, &me))?;
        let them = load_profile(self.txn, app, u)?;
        let mine = load_profile(self.txn, app, &me)?;
        let ev = |list: pb::FollowList, p: &pb::UserProfile| {
            pb::push::Kind::FollowChanged(pb::FollowChangedPush {
                list: list as i32,
                is_add: on,
                users: vec![p.clone()],
            })
        };
        self.push(&me, ev(pb::FollowList::Following, &them), 0);
        self.push(u, ev(pb::FollowList::Followers, &mine), 0);
        if mutual {
            self.push(&me, ev(pb::FollowList::Mutual, &them), 0);
            self.push(u, ev(pb::FollowList::Mutual, &mine), 0);
        }
        Ok(ok(u))
    }
}
