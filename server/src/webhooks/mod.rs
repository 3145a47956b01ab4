//! Webhooks (第三方回调): HTTP callbacks to the app's backend around message sends, and the
//! after-the-fact notices of [`notices`] (login state, group joins and exits, friend adds).
//!
//! `before_send` runs before a client's message enters the commit pipeline: the backend may allow
//! it, rewrite its body / cloud custom data, block it (the sender gets 20006), or drop it silently
//! (the sender is told success, nobody gets it). When the backend does not answer in time, the
//! configured policy decides (allow by default). `after_send` is a fire-and-forget notice once the
//! message is stored. Every call is signed with the app's key so that the backend can verify it:
//! `X-Chime-Signature: hex(HMAC-SHA256(key, X-Chime-Timestamp + "." + body))`. A message whose
//! sender set `disable_cloud_message_pre_hook` / `_post_hook` skips that callback.

pub mod notices;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chime_proto::codes;
use chime_proto::pb;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::error::ApiError;
use crate::http::admin::body;
pub use notices::{Notice, StateChange};

/// Notices queued for the dispatcher at most; past this they are dropped (with a warning).
const NOTICE_QUEUE: usize = 10_000;
/// Notices being posted at once at most.
const NOTICE_CONCURRENCY: usize = 32;

/// Code of a send blocked by the before-send callback (the seed's 20006).
pub const ERR_BLOCKED_BY_CALLBACK: i32 = 20006;

/// The `[webhook]` table of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The backend's callback URL (`http://` or `https://`).
    pub url: String,
    /// How long a before-send callback may take (default 2,000 ms).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Call before every client send (default true).
    #[serde(default = "yes")]
    pub before_send: bool,
    /// Call after every stored client send (default true).
    #[serde(default = "yes")]
    pub after_send: bool,
    /// Block the send when the before-send callback fails or times out (default false: allow).
    #[serde(default)]
    pub block_on_failure: bool,
    /// Call on login, logout and disconnect (`State.StateChange`, default true).
    #[serde(default = "yes")]
    pub state_change: bool,
    /// Call after members joined a group (`Group.CallbackAfterNewMemberJoin`, default true).
    #[serde(default = "yes")]
    pub member_join: bool,
    /// Call after members left a group (`Group.CallbackAfterMemberExit`, default true).
    #[serde(default = "yes")]
    pub member_exit: bool,
    /// Call after friends were added (`Sns.CallbackFriendAdd`, default true).
    #[serde(default = "yes")]
    pub friend_add: bool,
    /// Call after a group was created (`Group.CallbackAfterCreateGroup`, default true).
    #[serde(default = "yes")]
    pub group_create: bool,
    /// Call after a group was dismissed (`Group.CallbackAfterGroupDestroyed`, default true).
    #[serde(default = "yes")]
    pub group_destroy: bool,
    /// Call after friends were deleted (`Sns.CallbackFriendDelete`, default true).
    #[serde(default = "yes")]
    pub friend_delete: bool,
}

fn default_timeout_ms() -> u64 {
    2000
}

fn yes() -> bool {
    true
}

/// What the before-send callback decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send it (possibly rewritten).
    Allow(Box<pb::Message>),
    /// Refuse it: the sender gets this error.
    Block(ApiError),
    /// Pretend success; nobody receives it.
    Drop,
}

/// The webhook client of one server.
pub struct Webhooks {
    config: WebhookConfig,
    poster: Poster,
    /// The queue of the notice dispatcher: `(app, notice)`.
    notices: tokio::sync::mpsc::Sender<(u64, Notice)>,
}

/// Posts signed callbacks to the backend's URL.
#[derive(Clone)]
struct Poster {
    url: String,
    client: reqwest::Client,
}

/// `hex(HMAC-SHA256(key, timestamp + "." + body))`.
pub fn sign(key: &str, timestamp: i64, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(format!("{timestamp}.{body}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The callback command of a message (`C2C.` or `Group.` + `CallbackBeforeSendMsg` /
/// `CallbackAfterSendMsg`).
fn command(msg: &pb::Message, after: bool) -> String {
    let scope = if msg.conv_type() == pb::ConvType::Group {
        "Group"
    } else {
        "C2C"
    };
    let what = if after {
        "CallbackAfterSendMsg"
    } else {
        "CallbackBeforeSendMsg"
    };
    format!("{scope}.{what}")
}

/// The JSON body of a callback about `msg`.
pub fn payload(msg: &pb::Message, after: bool) -> Value {
    let mut v = json!({
        "CallbackCommand": command(msg, after),
        "From_Account": msg.sender,
        "MsgRandom": msg.random,
        "MsgId": msg.msg_id,
        "MsgBody": body::from_elems(&msg.elems),
        "CloudCustomData": String::from_utf8_lossy(&msg.cloud_custom_data),
        "OnlineOnlyFlag": u8::from(msg.online_user_only),
    });
    if msg.conv_type() == pb::ConvType::Group {
        v["GroupId"] = json!(msg.group_id);
    } else {
        v["To_Account"] = json!(msg.receiver);
    }
    if after {
        v["MsgSeq"] = json!(msg.seq);
        v["MsgTime"] = json!(msg.server_time_ms / 1000);
    }
    v
}

/// Applies the backend's answer to a before-send callback.
pub fn verdict(mut msg: pb::Message, answer: &Value) -> Verdict {
    match answer.get("ErrorCode").and_then(Value::as_i64).unwrap_or(0) {
        0 => {
            if let Some(new_body) = answer.get("MsgBody") {
                match serde_json::from_value::<Vec<body::MsgElem>>(new_body.clone())
                    .ok()
                    .and_then(|b| body::to_elems(&b).ok())
                {
                    Some(elems) => msg.elems = elems,
                    None => {
                        return Verdict::Block(ApiError::new(
                            ERR_BLOCKED_BY_CALLBACK,
                            "the before-send callback answered an invalid MsgBody",
                        ));
                    }
                }
            }
            if let Some(ccd) = answer.get("CloudCustomData").and_then(Value::as_str) {
                msg.cloud_custom_data = ccd.as_bytes().to_vec();
            }
            Verdict::Allow(Box::new(msg))
        }
        2 => Verdict::Drop,
        _ => Verdict::Block(ApiError::new(
            ERR_BLOCKED_BY_CALLBACK,
            answer
                .get("ErrorInfo")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("blocked by the before-send callback")
                .to_owned(),
        )),
    }
}

impl Poster {
    /// POSTs `body` to the callback URL, signed with `key`; answers the JSON reply.
    async fn post(&self, app: u64, key: &str, body: &Value) -> Result<Value, String> {
        let text = body.to_string();
        let ts = crate::usersig::now_secs();
        let cmd = body["CallbackCommand"].as_str().unwrap_or_default();
        let resp = self
            .client
            .post(&self.url)
            .query(&[
                ("SdkAppid", app.to_string()),
                ("CallbackCommand", cmd.to_owned()),
                ("contenttype", "json".to_owned()),
            ])
            .header("Content-Type", "application/json")
            .header("X-Chime-Timestamp", ts.to_string())
            .header("X-Chime-Signature", sign(key, ts, &text))
            .body(text)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        resp.json::<Value>().await.map_err(|e| e.to_string())
    }
}

/// Posts queued notices, at most [`NOTICE_CONCURRENCY`] at once, each with the client's
/// timeout; a failure is logged and forgotten (notices are informational).
async fn dispatch_notices(
    poster: Poster,
    apps: Arc<HashMap<u64, String>>,
    mut rx: tokio::sync::mpsc::Receiver<(u64, Notice)>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(NOTICE_CONCURRENCY));
    while let Some((app, notice)) = rx.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let poster = poster.clone();
        let key = apps.get(&app).cloned().unwrap_or_default();
        tokio::spawn(async move {
            let body = notice.payload(crate::commit::now_ms());
            if let Err(e) = poster.post(app, &key, &body).await {
                tracing::warn!(app, command = notice.command(), "callback failed: {e}");
            }
            drop(slot);
        });
    }
}

impl Webhooks {
    /// A client for `config`, signing with the keys of `apps`; starts the notice dispatcher
    /// (so it must be called inside a tokio runtime).
    pub fn new(
        config: WebhookConfig,
        apps: HashMap<u64, String>,
    ) -> Result<Self, crate::error::ServerError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms.max(1)))
            .build()
            .map_err(|e| crate::error::ServerError::Config(format!("webhook client: {e}")))?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            crate::error::ServerError::Config(format!("webhooks need a tokio runtime: {e}"))
        })?;
        let poster = Poster {
            url: config.url.clone(),
            client,
        };
        let (notices, rx) = tokio::sync::mpsc::channel(NOTICE_QUEUE);
        runtime.spawn(dispatch_notices(poster.clone(), Arc::new(apps), rx));
        Ok(Self {
            config,
            poster,
            notices,
        })
    }

    /// Queues `notice` for the backend if the config asks for its kind. Never waits: callable
    /// from the commit threads; a full queue drops the notice.
    pub fn notify(&self, app: u64, notice: Notice) {
        if !notice.enabled(&self.config) {
            return;
        }
        let command = notice.command();
        if let Err(e) = self.notices.try_send((app, notice)) {
            tracing::warn!(app, command, "callback not queued: {e}");
        }
    }

    async fn post(&self, app: u64, key: &str, body: &Value) -> Result<Value, String> {
        self.poster.post(app, key, body).await
    }

    /// The before-send decision about `msg` (already stamped with its sender).
    pub async fn before_send(&self, app: u64, key: &str, msg: pb::Message) -> Verdict {
        if !self.config.before_send || msg.disable_cloud_message_pre_hook {
            return Verdict::Allow(Box::new(msg));
        }
        match self.post(app, key, &payload(&msg, false)).await {
            Ok(answer) => verdict(msg, &answer),
            Err(e) => {
                tracing::warn!(app, "before-send callback failed: {e}");
                if self.config.block_on_failure {
                    Verdict::Block(ApiError::new(
                        ERR_BLOCKED_BY_CALLBACK,
                        "the before-send callback did not answer",
                    ))
                } else {
                    Verdict::Allow(Box::new(msg))
                }
            }
        }
    }

    /// Notifies the backend that `msg` was stored (fire and forget).
    pub fn after_send(self: &std::sync::Arc<Self>, app: u64, key: &str, msg: pb::Message) {
        if !self.config.after_send || msg.disable_cloud_message_post_hook {
            return;
        }
        let this = std::sync::Arc::clone(self);
        let key = key.to_owned();
        tokio::spawn(async move {
            if let Err(e) = this.post(app, &key, &payload(&msg, true)).await {
                tracing::warn!(app, "after-send callback failed: {e}");
            }
        });
    }
}

/// A client send with the callbacks around it: before-send decides, then the message is
/// committed and the answer goes to `reply`; after a stored send, after-send is told.
pub async fn send_with_hooks(
    shared: &crate::Shared,
    hooks: &std::sync::Arc<Webhooks>,
    app: u64,
    user: &str,
    mut msg: pb::Message,
    reply: crate::commit::Reply,
) {
    use crate::commit::{Command, Msg, Op, Reply};
    let key = shared.apps.get(&app).cloned().unwrap_or_default();
    msg.sender = user.to_owned();
    let msg_id = msg.msg_id.clone();
    let msg = match hooks.before_send(app, &key, msg).await {
        Verdict::Allow(m) => *m,
        Verdict::Block(e) => return answer(reply, Err(e)),
        Verdict::Drop => {
            let ack = pb::response::Kind::SendMessage(pb::SendMessageResp {
                msg_id,
                seq: 0,
                server_time_ms: crate::commit::now_ms(),
                change_version: 0,
            });
            return answer(reply, Ok(ack));
        }
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let cmd = Command {
        app,
        user: user.to_owned(),
        op: Op::Send(Box::new(msg.clone())),
        reply: Reply::Once(tx),
    };
    if shared.commit.send(Msg::Cmd(cmd)).await.is_err() {
        return answer(
            reply,
            Err(ApiError::new(codes::ERR_SVR_INTERNAL, "server stopping")),
        );
    }
    let result = rx
        .await
        .unwrap_or_else(|_| Err(ApiError::new(codes::ERR_SVR_INTERNAL, "server stopping")));
    if let Ok(pb::response::Kind::SendMessage(ack)) = &result {
        let mut stored = msg;
        stored.seq = ack.seq;
        stored.server_time_ms = ack.server_time_ms;
        hooks.after_send(app, &key, stored);
    }
    answer(reply, result);
}

/// Tells the backend about a login state change of `user` (a no-op without webhooks).
pub fn state_changed(shared: &crate::Shared, app: u64, user: &str, change: StateChange) {
    if let Some(hooks) = &shared.webhooks {
        let user = user.to_owned();
        hooks.notify(app, Notice::State { user, change });
    }
}

/// The membership notice of a group tips message being staged, as a commit effect (sent once
/// the batch is durable), or nothing for other tips.
pub(crate) fn group_tips_effect(
    app: u64,
    info: &pb::GroupInfo,
    tips: &pb::GroupTipsElem,
) -> Option<crate::commit::Effect> {
    Notice::of_group_tips(info, tips).map(|notice| crate::commit::Effect::Notice { app, notice })
}

/// The friend-add notice of `pairs` `(owner, friend)` made by one write of `initiator`, as a
/// commit effect; `response` when made by accepting an application.
pub(crate) fn friends_added_effect(
    app: u64,
    pairs: Vec<(String, String)>,
    initiator: &str,
    response: bool,
) -> crate::commit::Effect {
    let notice = Notice::FriendAdd {
        pairs,
        initiator: initiator.to_owned(),
        response,
    };
    crate::commit::Effect::Notice { app, notice }
}

/// The creation notice of group `info` made with `members` (the owner among them), as a commit
/// effect.
pub(crate) fn group_created_effect(
    app: u64,
    info: &pb::GroupInfo,
    members: &[pb::GroupMember],
) -> crate::commit::Effect {
    let notice = Notice::GroupCreated {
        group_id: info.group_id.clone(),
        group_type: info.group_type.clone(),
        owner: info.owner.clone(),
        name: info.name.clone(),
        members: members
            .iter()
            .filter(|m| m.user_id != info.owner)
            .map(|m| m.user_id.clone())
            .collect(),
    };
    crate::commit::Effect::Notice { app, notice }
}

/// The dismissal notice of group `info` with its last `members`, as a commit effect.
pub(crate) fn group_destroyed_effect<'a>(
    app: u64,
    info: &pb::GroupInfo,
    members: impl IntoIterator<Item = &'a String>,
) -> crate::commit::Effect {
    let notice = Notice::GroupDestroyed {
        group_id: info.group_id.clone(),
        group_type: info.group_type.clone(),
        owner: info.owner.clone(),
        name: info.name.clone(),
        members: members.into_iter().cloned().collect(),
    };
    crate::commit::Effect::Notice { app, notice }
}

/// The join notice of `users` entering AVChatRoom `info` (other groups are told through their
/// join tips: nothing here), as a commit effect.
pub(crate) fn live_room_join_effect(
    app: u64,
    info: &pb::GroupInfo,
    operator: &str,
    users: &[String],
    invited: bool,
) -> Option<crate::commit::Effect> {
    (info.group_type == crate::groups::LIVE_ROOM).then(|| {
        let notice = Notice::MemberJoin {
            group_id: info.group_id.clone(),
            group_type: info.group_type.clone(),
            invited,
            operator: operator.to_owned(),
            members: users.to_vec(),
        };
        crate::commit::Effect::Notice { app, notice }
    })
}

/// The exit notice of `user` leaving AVChatRoom `info` by themselves (quitting, or offline past
/// the grace period; other groups are told through their quit tips), as a commit effect.
pub(crate) fn live_room_exit_effect(
    app: u64,
    info: &pb::GroupInfo,
    user: &str,
) -> Option<crate::commit::Effect> {
    (info.group_type == crate::groups::LIVE_ROOM).then(|| {
        let notice = Notice::MemberExit {
            group_id: info.group_id.clone(),
            group_type: info.group_type.clone(),
            kicked: false,
            operator: user.to_owned(),
            members: vec![user.to_owned()],
        };
        crate::commit::Effect::Notice { app, notice }
    })
}

/// The friend-delete notice of `me` deleting `friend` (`mine`: `friend` left `me`'s list;
/// `theirs`: `me` left `friend`'s), as a commit effect; nothing when neither list changed.
pub(crate) fn friends_deleted_effect(
    app: u64,
    me: &str,
    friend: &str,
    mine: bool,
    theirs: bool,
) -> Option<crate::commit::Effect> {
    let mut pairs = Vec::new();
    if mine {
        pairs.push((me.to_owned(), friend.to_owned()));
    }
    if theirs {
        pairs.push((friend.to_owned(), me.to_owned()));
    }
    (!pairs.is_empty()).then_some(crate::commit::Effect::Notice {
        app,
        notice: Notice::FriendDelete { pairs },
    })
}

fn answer(reply: crate::commit::Reply, result: crate::error::ApiResult<pb::response::Kind>) {
    match reply {
        crate::commit::Reply::Conn { conn, id } => {
            conn.send(crate::commit::response_frame(id, result));
        }
        crate::commit::Reply::Once(tx) => {
            let _ = tx.send(result);
        }
        crate::commit::Reply::None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_msg(t: &str) -> pb::Message {
        pb::Message {
            msg_id: "m1".into(),
            sender: "alice".into(),
            receiver: "bob".into(),
            conv_type: pb::ConvType::C2c as i32,
            elems: vec![pb::Elem {
                content: Some(pb::elem::Content::Text(pb::TextElem { text: t.into() })),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn verdicts_allow_rewrite_block_drop() {
        let m = text_msg("hello");
        assert_eq!(
            verdict(m.clone(), &json!({"ErrorCode": 0})),
            Verdict::Allow(Box::new(m.clone()))
        );
        let Verdict::Allow(r) = verdict(
            m.clone(),
            &json!({"ErrorCode": 0, "MsgBody": [{"MsgType": "TIMTextElem",
                "MsgContent": {"Text": "h***o"}}], "CloudCustomData": "x"}),
        ) else {
            panic!("not allowed");
        };
        assert_eq!(body::from_elems(&r.elems)[0]["MsgContent"]["Text"], "h***o");
        assert_eq!(r.cloud_custom_data, b"x");
        let Verdict::Block(e) = verdict(m.clone(), &json!({"ErrorCode": 1, "ErrorInfo": "no"}))
        else {
            panic!("not blocked");
        };
        assert_eq!((e.code, e.desc.as_str()), (20006, "no"));
        assert_eq!(verdict(m, &json!({"ErrorCode": 2})), Verdict::Drop);
    }

    #[test]
    fn payload_and_signature() {
        let v = payload(&text_msg("hi"), false);
        assert_eq!(v["CallbackCommand"], "C2C.CallbackBeforeSendMsg");
        assert_eq!(v["To_Account"], "bob");
        assert_eq!(v["MsgBody"][0]["MsgContent"]["Text"], "hi");
        let s = sign("key", 1, "{}");
        assert_eq!(s.len(), 64);
        assert_ne!(s, sign("key", 2, "{}"));
    }
}
