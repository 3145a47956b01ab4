//! Offline push (离线推送): notifications for messages that arrive while the receiver's app is
//! not in the foreground.
//!
//! - Devices register with `set_offline_push_config` ([`pb::SetPushConfigReq`]) and report
//!   `do_background` / `do_foreground` ([`pb::SetAppStateReq`]). The registry of devices is
//!   persisted ([`devices`]); which connections are in the background is kept in memory
//!   ([`Pusher`]), since it is only true while the connection lives. Logout forgets the device.
//! - Each stored message is handed, after it is durable, to a bounded queue ([`Hook`], filled by
//!   the commit task's apply thread without blocking). The [`planner`] finds the receivers with
//!   no foreground connection and a registered device, the [`builder`] decides (receive options,
//!   DND window, `online_user_only`, `disable_push`) and writes the notification, and the
//!   [`queue`] delivers it through the device's provider ([`providers`]: an HTTP webhook to the
//!   app's push gateway, APNs, FCM), retrying with backoff and dead-lettering what keeps failing.
//!
//! The design notes are in docs/push.md.

pub mod builder;
pub mod config;
pub mod devices;
pub mod jwt;
pub mod planner;
pub mod providers;
pub mod queue;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use chime_proto::codes;
use chime_proto::pb::{self, request::Kind as ReqKind};
use tokio::sync::mpsc;

pub use config::PushConfig;
pub use devices::{DeadLetter, Device, LetterId, PushOp};

use crate::Shared;
use crate::commit::{Command, Msg, Op, Reply, response_frame};
use crate::error::{ApiError, ServerError};
use crate::registry::{ConnTx, Registry};

/// Longest device token accepted.
pub const MAX_TOKEN_BYTES: usize = 1024;

/// One stored message waiting to be planned.
#[derive(Debug)]
pub struct Job {
    /// The app.
    pub app: u64,
    /// The encoded `pb::Message` as stored.
    pub encoded: Vec<u8>,
    /// When it was staged ([`now_us`]): the foreground state is judged as of then.
    pub at_us: i64,
}

/// Microseconds since the epoch: orders a message against a `do_background` that raced it (a
/// round trip apart, so never within the same microsecond).
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The commit task's end of the queue.
#[derive(Debug, Clone)]
pub struct Hook(mpsc::Sender<Job>);

impl Hook {
    /// Queues a stored message without blocking; a full queue loses its pushes (logged).
    pub fn message(&self, app: u64, encoded: Vec<u8>, at_us: i64) {
        let job = Job {
            app,
            encoded,
            at_us,
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.0.try_send(job) {
            tracing::warn!(app, "offline push queue full, push dropped");
        }
    }
}

/// The queue of a server with a `[push]` table: the hook for the commit task and the receiving
/// end for [`start`]. `None` without one (nothing is queued then).
pub fn channel(config: Option<&PushConfig>) -> Option<(Hook, mpsc::Receiver<Job>)> {
    let config = config?;
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    Some((Hook(tx), rx))
}

/// Builds the providers and starts the queue's planner (a server with a `[push]` table).
pub fn start(shared: &Arc<Shared>, jobs: mpsc::Receiver<Job>) -> Result<(), ServerError> {
    let Some(config) = shared.tunables.push.clone() else {
        return Ok(());
    };
    let providers = Arc::new(providers::build(&config)?);
    let (retry_tx, retries) = mpsc::channel(config.queue.max(1));
    // Set once: `start` runs once per server.
    let _ = shared.push.retry.set(retry_tx);
    tokio::spawn(queue::run(
        Arc::clone(shared),
        jobs,
        retries,
        providers,
        config,
    ));
    Ok(())
}

/// A connection's push state.
#[derive(Debug, Clone, Default)]
struct ConnState {
    /// When `do_background` was the last word ([`now_us`]), `None` in the foreground.
    background_since: Option<i64>,
    /// The app's unread count of its last `do_background`.
    unread_count: Option<u32>,
    /// The device key this connection registered.
    device: Option<String>,
}

/// The in-memory side of offline push: which connections are in the background, and the pushes
/// counted on top of an app-reported unread count.
#[derive(Debug, Default)]
pub struct Pusher {
    conns: Mutex<HashMap<(u64, String), HashMap<u64, ConnState>>>,
    /// Pushes since `do_background {unread_count}`, per (app, user, device).
    pushed: Mutex<HashMap<(u64, String, String), u32>>,
    /// The queue's door for retried dead letters (set by [`start`]; unset without `[push]`).
    retry: OnceLock<mpsc::Sender<providers::Delivery>>,
}

/// The key of a device: the login's device id, else the token itself.
fn device_key(device_id: &str, token: &str) -> String {
    if device_id.is_empty() {
        format!("token:{token}")
    } else {
        device_id.to_owned()
    }
}

impl Pusher {
    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, String), HashMap<u64, ConnState>>> {
        // Each critical section is one map operation: a poisoned lock is still consistent.
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pushed(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, String, String), u32>> {
        self.pushed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Updates connection `conn` of `(app, user)` (dropping connections that are gone).
    fn with_conn<T>(
        &self,
        registry: &Registry,
        app: u64,
        user: &str,
        conn: u64,
        f: impl FnOnce(&mut ConnState) -> T,
    ) -> T {
        let mut conns = self.conns();
        let map = conns.entry((app, user.to_owned())).or_default();
        map.retain(|c, _| *c == conn || registry.is_current(app, user, *c));
        f(map.entry(conn).or_default())
    }

    /// Whether `(app, user)` had a connection in the foreground when a message was staged at
    /// `at_us`: an online connection that had not said `do_background` by then. (The planner
    /// runs a little after the message; an app that went to the background since still saw it.)
    pub fn in_foreground(&self, registry: &Registry, app: u64, user: &str, at_us: i64) -> bool {
        let online = registry.platforms(app, user).len();
        if online == 0 {
            return false;
        }
        let conns = self.conns();
        let background = conns.get(&(app, user.to_owned())).map_or(0, |m| {
            m.iter()
                .filter(|(c, s)| {
                    s.background_since.is_some_and(|t| t < at_us)
                        && registry.is_current(app, user, **c)
                })
                .count()
        });
        online > background
    }

    /// The badge of a push to `device` when its app reported its own unread count: that count
    /// plus the pushes since (this one included). `None` = the server counts.
    pub fn app_badge(&self, app: u64, user: &str, device: &Device) -> Option<u32> {
        let base = device.unread_count.filter(|_| device.background)?;
        let mut pushed = self.pushed();
        let n = pushed
            .entry((app, user.to_owned(), device.device_id.clone()))
            .or_default();
        *n = n.saturating_add(1);
        Some(base.saturating_add(*n))
    }

    /// Hands a dead letter's delivery back to the queue, tried afresh with the full retry
    /// policy. False when the server has no `[push]` table or the queue is full or stopped.
    pub fn retry(&self, delivery: providers::Delivery) -> bool {
        self.retry
            .get()
            .is_some_and(|tx| tx.try_send(delivery).is_ok())
    }

    fn reset_badge(&self, app: u64, user: &str, device: &str) {
        self.pushed()
            .remove(&(app, user.to_owned(), device.to_owned()));
    }
}

/// Who is asking: the logged-in identity of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The app.
    pub app: u64,
    /// The user.
    pub user: &'a str,
    /// The login's device id.
    pub device_id: &'a str,
    /// The login's platform.
    pub platform: i32,
}

async fn commit(shared: &Shared, app: u64, user: &str, op: PushOp, reply: Reply) {
    let cmd = Command {
        app,
        user: user.to_owned(),
        op: Op::Push(op),
        reply,
    };
    if let Err(mpsc::error::SendError(Msg::Cmd(cmd))) = shared.commit.send(Msg::Cmd(cmd)).await
        && let Reply::Conn { conn, id } = cmd.reply
    {
        let err = ApiError::new(codes::ERR_SVR_INTERNAL, "server stopping");
        conn.send(response_frame(id, Err(err)));
    }
}

/// A client's `SetPushConfig` or `SetAppState` (answered on `conn` by the commit task).
pub async fn request(shared: &Shared, conn: &ConnTx, who: Caller<'_>, id: u64, kind: ReqKind) {
    let reply = Reply::Conn {
        conn: conn.clone(),
        id,
    };
    let (app, user) = (who.app, who.user);
    match kind {
        ReqKind::SetPushConfig(req) => {
            if req.token.is_empty() || req.token.len() > MAX_TOKEN_BYTES {
                let e = ApiError::new(
                    codes::ERR_SVR_INVALID_PARAMS,
                    "token must be 1..=1024 bytes",
                );
                conn.send(response_frame(id, Err(e)));
                return;
            }
            let key = device_key(who.device_id, &req.token);
            let ((background, unread_count), old) =
                shared
                    .push
                    .with_conn(&shared.registry, app, user, conn.conn_id, |s| {
                        let state = (s.background_since.is_some(), s.unread_count);
                        (state, s.device.replace(key.clone()))
                    });
            if let Some(old) = old.filter(|o| *o != key) {
                let forget = PushOp::Forget {
                    device_id: old,
                    token: None,
                };
                commit(shared, app, user, forget, Reply::None).await;
            }
            shared.push.reset_badge(app, user, &key);
            let device = Device {
                device_id: key,
                business_id: req.business_id,
                token: req.token,
                is_tpns_token: req.is_tpns_token,
                platform: who.platform,
                background,
                unread_count,
                updated_ms: crate::commit::now_ms(),
            };
            commit(shared, app, user, PushOp::Register(device), reply).await;
        }
        ReqKind::SetAppState(req) => {
            let device = shared
                .push
                .with_conn(&shared.registry, app, user, conn.conn_id, |s| {
                    s.background_since = req.background.then(now_us);
                    s.unread_count = req.unread_count.filter(|_| req.background);
                    s.device.clone()
                });
            let Some(device_id) = device else {
                // No device registered on this connection: only the foreground state matters.
                conn.send(response_frame(
                    id,
                    Ok(pb::response::Kind::SetAppState(pb::SetAppStateResp {})),
                ));
                return;
            };
            shared.push.reset_badge(app, user, &device_id);
            let op = PushOp::State {
                device_id,
                background: req.background,
                unread_count: req.unread_count.filter(|_| req.background),
            };
            commit(shared, app, user, op, reply).await;
        }
        _ => {
            let e = ApiError::new(codes::ERR_SVR_MALFORMED, "not a push request");
            conn.send(response_frame(id, Err(e)));
        }
    }
}

/// Logout of connection `conn`: the login's device, and the device this connection registered,
/// stop getting pushes.
pub async fn logged_out(shared: &Shared, who: Caller<'_>, conn: u64) {
    let (app, user) = (who.app, who.user);
    let registered = {
        let mut conns = shared.push.conns();
        let key = (app, user.to_owned());
        let device = conns
            .get_mut(&key)
            .and_then(|m| m.remove(&conn))
            .and_then(|s| s.device);
        if conns.get(&key).is_some_and(HashMap::is_empty) {
            conns.remove(&key);
        }
        device
    };
    let mut forget: Vec<String> = registered.into_iter().collect();
    if !who.device_id.is_empty() && !forget.iter().any(|d| d == who.device_id) {
        forget.push(who.device_id.to_owned());
    }
    for device_id in forget {
        shared.push.reset_badge(app, user, &device_id);
        let op = PushOp::Forget {
            device_id,
            token: None,
        };
        commit(shared, app, user, op, Reply::None).await;
    }
}
