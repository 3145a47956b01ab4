//! The gateway: the session loop every client connection runs, and the WebSocket transport.
//!
//! [`session`] is transport-agnostic: it reads encoded frames from a [`FrameSource`] and answers
//! through a [`ConnTx`] (a bounded [`crate::outbound`] queue) whose writer task the transport
//! runs. [`serve`] runs it over WebSocket (one binary message per frame); `quic.rs` runs it over
//! a QUIC stream (length-prefixed frames).
//! One task reads a connection, one writes it.
//!
//! Each binary WebSocket message is one `pb::Frame`. The reader decodes frames, enforces the
//! session state (login first), and dispatches requests: mutations go to the commit task (which
//! answers by id on this connection's queue), reads run on the blocking pool and answer by id, so
//! requests are pipelined. The writer drains a bounded queue; a connection that can't keep up is
//! closed rather than slowing anyone else. Text messages and undecodable frames are answered with
//! a `Response` of id 0 and code 90001, and the connection stays; a frame over the limit is
//! answered 90003 and the connection closed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chime_proto::pb::{self, request::Kind as ReqKind, response::Kind as RespKind};
use chime_proto::{codes, ids};
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};

use crate::Shared;
use crate::annotations::AnnotationOp;
use crate::commit::{Command, Msg, Op, Reply, now_ms, response_frame};
use crate::conversations;
use crate::error::{ApiError, ApiResult};
use crate::keys::{Key, tag};
use crate::lifecycle::LifecycleOp;
use crate::queries;
use crate::registry::{ConnTx, Session, push_frame};
use crate::usersig;

pub mod ws_io;

/// The path of the WebSocket endpoint.
pub const WS_PATH: &str = "/ws";

/// Read buffer reserved per connection (tungstenite grows it for larger frames).
const READ_BUFFER_BYTES: usize = 512;
/// Frames are buffered up to this size before being written out.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// Longest time a session timer is armed for (ten years).
const MAX_SESSION_SECS: i64 = 10 * 365 * 86_400;

/// The logged-in identity of a connection.
#[derive(Debug, Clone)]
struct Identity {
    app: u64,
    user: String,
    /// The login's device id and platform (offline push registers this device).
    device_id: String,
    platform: i32,
}

impl Identity {
    fn push_caller(&self) -> crate::push::Caller<'_> {
        crate::push::Caller {
            app: self.app,
            user: &self.user,
            device_id: &self.device_id,
            platform: self.platform,
        }
    }
}

/// What a transport's reader hands the session loop.
#[derive(Debug)]
pub enum Inbound {
    /// One encoded frame (not yet decoded).
    Frame(Bytes),
    /// A WebSocket text message (answered 90001; the connection stays).
    Text,
    /// A frame over the limit (answered 90003, then the connection closes).
    TooLarge(String),
    /// The peer closed the connection.
    Closed,
    /// The connection failed.
    Failed(String),
}

/// The reading half of a transport: WebSocket messages or length-prefixed frames of a QUIC
/// stream. The session loop drops the future only when the session ends, so an implementation
/// need not be cancel-safe.
pub trait FrameSource: Send {
    /// The next inbound event.
    fn next_frame(&mut self) -> impl std::future::Future<Output = Inbound> + Send;
}

/// A WebSocket connection's reading half.
struct WsSource<S>(S);

impl<S> FrameSource for WsSource<S>
where
    S: futures_util::Stream<Item = Result<WsMessage, tungstenite::Error>> + Unpin + Send,
{
    async fn next_frame(&mut self) -> Inbound {
        loop {
            return match self.0.next().await {
                None | Some(Ok(WsMessage::Close(_))) => Inbound::Closed,
                Some(Err(tungstenite::Error::Capacity(e))) => Inbound::TooLarge(e.to_string()),
                Some(Err(e)) => Inbound::Failed(e.to_string()),
                Some(Ok(WsMessage::Binary(b))) => Inbound::Frame(b),
                Some(Ok(WsMessage::Text(_))) => Inbound::Text,
                Some(Ok(_)) => continue,
            };
        }
    }
}

/// Serves one accepted TCP connection until it closes.
pub async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let limit = shared.tunables.max_frame_bytes;
    // Small buffers: most connections are idle, and memory per connection is what bounds how
    // many a server holds.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    // Boxed, like every large future the session awaits only now and then (the login, webhook
    // and push calls): a task's future is as large as its largest state, and an idle
    // connection's task should hold only its small read-loop state.
    let socket = ws_io::Socket::new(stream);
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(
        ws_io::WsSocket(Arc::clone(&socket)),
        check_path,
        Some(config),
    );
    let ws = match Box::pin(handshake).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!("handshake failed: {e}");
            return;
        }
    };
    let (conn, rx) = ConnTx::new(
        shared.registry.next_conn_id(),
        shared.tunables.outbound_queue.max(16),
    );
    // From here the writer task, or the commit pipeline's thread when that writer is idle,
    // writes the frames (`ws_io`); tungstenite only reads.
    socket.start(&rx);
    let writer = tokio::spawn(ws_io::write_frames(socket, rx));
    session(shared, conn, WsSource(ws)).await;
    let abort = writer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(2), writer)
        .await
        .is_err()
    {
        abort.abort();
    }
}

/// The session of one connection, whatever its transport: reads frames from `source`, enforces
/// login first, dispatches requests, answers through `conn` (whose writer task the transport
/// runs), and ends on close, idle timeout, a kill of `conn` (its queue overflowed), UserSig
/// expiry or server stop. The session is logged out of the registry and `conn` closed before
/// this returns.
pub async fn session<S: FrameSource>(shared: Arc<Shared>, conn: ConnTx, mut source: S) {
    let mut stopping = shared.stopping.clone();
    let mut identity: Option<Identity> = None;
    let mut expires_at = tokio::time::Instant::now() + Duration::from_secs(365 * 86_400);
    let idle = shared.tunables.idle_timeout();
    let mut timed_out = false;
    loop {
        let next = tokio::select! {
            r = tokio::time::timeout(idle, source.next_frame()) => r,
            _ = conn.killed() => break,
            _ = stopping.wait_for(|s| *s) => {
                conn.close();
                break;
            }
            _ = tokio::time::sleep_until(expires_at), if identity.is_some() => {
                conn.send(push_frame(pb::push::Kind::UserSigExpired(pb::UserSigExpiredPush {})));
                conn.close();
                break;
            }
        };
        let data = match next {
            Err(_) => {
                tracing::debug!(conn = conn.conn_id, "idle timeout");
                timed_out = true;
                conn.close();
                break;
            }
            Ok(Inbound::Closed) => break,
            Ok(Inbound::TooLarge(e)) => {
                conn.send(response_frame(
                    0,
                    Err(ApiError::new(codes::ERR_SVR_FRAME_TOO_LARGE, e)),
                ));
                conn.close();
                break;
            }
            Ok(Inbound::Failed(e)) => {
                tracing::debug!(conn = conn.conn_id, "read error: {e}");
                break;
            }
            Ok(Inbound::Text) => {
                conn.send(malformed(0, "text messages are not frames"));
                continue;
            }
            Ok(Inbound::Frame(data)) => data,
        };
        // Boxed: a decoded frame (a request of any kind) and the handling of it live only
        // while it is handled, not in every idle connection's task.
        match Box::pin(handle_frame(&shared, &conn, &mut identity, data)).await {
            Flow::Continue => {}
            Flow::Stop => break,
            Flow::LoggedIn(expiry) => expires_at = expiry,
        }
    }
    if let Some(who) = &identity {
        let current = shared.registry.is_current(who.app, &who.user, conn.conn_id);
        if shared.registry.logout(who.app, &who.user, conn.conn_id) {
            crate::groups::went_offline(&shared, who.app, &who.user);
        }
        crate::followups::after_session_end(&shared, who.app, &who.user);
        let end = crate::webhooks::StateChange::session_end(current, timed_out);
        crate::webhooks::state_changed(&shared, who.app, &who.user, end);
    }
    conn.close();
}

/// What the session loop does after a frame was handled.
enum Flow {
    /// Read the next frame.
    Continue,
    /// End the session.
    Stop,
    /// The connection logged in; its UserSig expires at this instant.
    LoggedIn(tokio::time::Instant),
}

/// Decodes and handles one inbound frame of a session: login first, then requests.
async fn handle_frame(
    shared: &Arc<Shared>,
    conn: &ConnTx,
    identity: &mut Option<Identity>,
    data: Bytes,
) -> Flow {
    let frame = match chime_proto::frame::decode(&data, shared.tunables.max_frame_bytes) {
        Ok(f) => f,
        Err(chime_proto::frame::FrameError::TooLarge { size, limit }) => {
            conn.send(response_frame(
                0,
                Err(ApiError::new(
                    codes::ERR_SVR_FRAME_TOO_LARGE,
                    format!("frame of {size} bytes over {limit}"),
                )),
            ));
            conn.close();
            return Flow::Stop;
        }
        Err(e) => {
            conn.send(malformed(0, &e.to_string()));
            return Flow::Continue;
        }
    };
    let id = frame.id;
    let Some(pb::frame::Body::Request(pb::Request { kind: Some(kind) })) = frame.body else {
        conn.send(malformed(id, "expected a request"));
        return Flow::Continue;
    };
    match identity {
        None => match kind {
            ReqKind::Login(req) => match Box::pin(login(shared, conn, req)).await {
                Ok((who, resp)) => {
                    let now = usersig::now_secs();
                    // Clamped so that a far-future expiry cannot overflow the timer.
                    let left = resp
                        .user_sig_expire_at
                        .saturating_sub(now)
                        .clamp(0, MAX_SESSION_SECS) as u64;
                    let expiry = tokio::time::Instant::now() + Duration::from_secs(left + 1);
                    conn.send(response_frame(id, Ok(RespKind::Login(resp))));
                    crate::followups::after_login(shared, who.app, &who.user, conn);
                    let login = crate::webhooks::StateChange::Login;
                    crate::webhooks::state_changed(shared, who.app, &who.user, login);
                    *identity = Some(who);
                    Flow::LoggedIn(expiry)
                }
                Err(e) => {
                    conn.send(response_frame(id, Err(e)));
                    Flow::Continue
                }
            },
            _ => {
                conn.send(response_frame(
                    id,
                    Err(ApiError::new(codes::ERR_SVR_NOT_LOGGED_IN, "log in first")),
                ));
                Flow::Continue
            }
        },
        Some(who) => {
            if matches!(kind, ReqKind::Logout(_)) {
                if shared.registry.logout(who.app, &who.user, conn.conn_id) {
                    crate::groups::went_offline(shared, who.app, &who.user);
                }
                crate::followups::after_session_end(shared, who.app, &who.user);
                let logout = crate::webhooks::StateChange::Logout;
                crate::webhooks::state_changed(shared, who.app, &who.user, logout);
                Box::pin(crate::push::logged_out(
                    shared,
                    who.push_caller(),
                    conn.conn_id,
                ))
                .await;
                conn.send(response_frame(id, Ok(RespKind::Logout(pb::LogoutResp {}))));
                conn.close();
                *identity = None;
                return Flow::Stop;
            }
            // Boxed: the request's future lives only while it is handled, not in every
            // idle connection's task.
            Box::pin(dispatch(shared, conn, who, id, kind)).await;
            Flow::Continue
        }
    }
}

/// Handshake callback: only the endpoint path is served. (The error type is tungstenite's.)
#[allow(clippy::result_large_err)]
fn check_path(req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
    if req.uri().path() == WS_PATH {
        Ok(resp)
    } else {
        let mut err = ErrorResponse::new(Some(format!("no endpoint at {}", req.uri().path())));
        *err.status_mut() = StatusCode::NOT_FOUND;
        Err(err)
    }
}

fn malformed(id: u64, desc: &str) -> Bytes {
    response_frame(id, Err(ApiError::new(codes::ERR_SVR_MALFORMED, desc)))
}

async fn login(
    shared: &Arc<Shared>,
    conn: &ConnTx,
    req: pb::LoginReq,
) -> ApiResult<(Identity, pb::LoginResp)> {
    if req.protocol_version != chime_proto::PROTOCOL_VERSION {
        return Err(ApiError::new(
            codes::ERR_SVR_PROTOCOL_VERSION,
            format!(
                "protocol version {} not supported (server speaks {})",
                req.protocol_version,
                chime_proto::PROTOCOL_VERSION
            ),
        ));
    }
    let key = shared.apps.get(&req.sdk_app_id).ok_or_else(|| {
        ApiError::new(
            codes::ERR_SVR_INVALID_SDK_APP_ID,
            format!("unknown SDKAppID {}", req.sdk_app_id),
        )
    })?;
    if !ids::is_valid_user_id(&req.user_id) {
        return Err(ApiError::new(codes::ERR_INVALID_USER_ID, "invalid UserID"));
    }
    let verified = usersig::verify(
        &req.user_sig,
        req.sdk_app_id,
        key,
        &req.user_id,
        usersig::now_secs(),
    )
    .map_err(|e| ApiError::new(e.code(), e.to_string()))?;
    let app = req.sdk_app_id;
    // First login registers the account. No wait at the read barrier on this async worker: a
    // registration answered but not yet applied only costs a second `Register`, which staging
    // finds done.
    let user_key = Key::new(tag::USER, app).s(req.user_id.as_bytes()).done();
    if shared.reads.unsettled().get(&user_key)?.is_none() {
        let (tx, rx) = oneshot::channel();
        submit(shared, app, &req.user_id, Op::Register, Reply::Once(tx)).await;
        rx.await
            .map_err(|_| ApiError::new(codes::ERR_SVR_INTERNAL, "server stopping"))??;
    }
    let session = Session {
        conn: conn.clone(),
        device_id: req.device_id.clone(),
        platform: req.platform(),
    };
    let displaced = shared.registry.login(
        app,
        &req.user_id,
        session,
        shared.tunables.multi_device_policy,
    );
    for d in displaced {
        if d.kicked {
            d.session
                .conn
                .send(push_frame(pb::push::Kind::Kicked(pb::KickedPush {
                    code: codes::ERR_LOGIN_KICKED_OFF_BY_OTHER,
                    desc: "logged in on another device".into(),
                    by_platform: req.platform,
                })));
        }
        d.session.conn.close();
    }
    tracing::debug!(app, user = %req.user_id, conn = conn.conn_id, "login");
    Ok((
        Identity {
            app,
            platform: req.platform,
            device_id: req.device_id,
            user: req.user_id,
        },
        pb::LoginResp {
            server_time_ms: now_ms(),
            user_sig_expire_at: verified.expire_at,
            heartbeat_interval_ms: u32::try_from(shared.tunables.heartbeat_interval_ms)
                .unwrap_or(u32::MAX),
            max_frame_bytes: u32::try_from(shared.tunables.max_frame_bytes).unwrap_or(u32::MAX),
            max_message_body_bytes: chime_proto::limits::MAX_MESSAGE_BODY_BYTES as u32,
        },
    ))
}

/// Hands a command to the commit task; answers 90000 if it has stopped.
async fn submit(shared: &Shared, app: u64, user: &str, op: Op, reply: Reply) {
    let cmd = Command {
        app,
        user: user.to_owned(),
        op,
        reply,
    };
    if let Err(mpsc::error::SendError(Msg::Cmd(cmd))) = shared.commit.send(Msg::Cmd(cmd)).await {
        let err = ApiError::new(codes::ERR_SVR_INTERNAL, "server stopping");
        match cmd.reply {
            Reply::Conn { conn, id } => {
                conn.send(response_frame(id, Err(err)));
            }
            Reply::Once(tx) => {
                let _ = tx.send(Err(err));
            }
            Reply::None => {}
        }
    }
}

async fn dispatch(shared: &Arc<Shared>, conn: &ConnTx, who: &Identity, id: u64, kind: ReqKind) {
    let reply = || Reply::Conn {
        conn: conn.clone(),
        id,
    };
    let (app, user) = (who.app, who.user.as_str());
    match kind {
        ReqKind::Heartbeat(_) => {
            conn.send(response_frame(
                id,
                Ok(RespKind::Heartbeat(pb::HeartbeatResp {
                    server_time_ms: now_ms(),
                })),
            ));
        }
        ReqKind::GetServerTime(_) => {
            conn.send(response_frame(
                id,
                Ok(RespKind::GetServerTime(pb::GetServerTimeResp {
                    server_time_ms: now_ms(),
                })),
            ));
        }
        ReqKind::Login(_) => {
            conn.send(response_frame(
                id,
                Err(ApiError::new(
                    codes::ERR_SVR_INVALID_PARAMS,
                    "already logged in",
                )),
            ));
        }
        ReqKind::Logout(_) => {}
        ReqKind::SendMessage(req) => {
            let Some(msg) = req.message else {
                conn.send(response_frame(
                    id,
                    Err(ApiError::new(
                        codes::ERR_SVR_INVALID_PARAMS,
                        "message is required",
                    )),
                ));
                return;
            };
            if let Some(hooks) = &shared.webhooks {
                Box::pin(crate::webhooks::send_with_hooks(
                    shared,
                    hooks,
                    app,
                    user,
                    msg,
                    reply(),
                ))
                .await;
            } else {
                submit(shared, app, user, Op::Send(Box::new(msg)), reply()).await;
            }
        }
        ReqKind::MarkRead(req) => submit(shared, app, user, Op::MarkRead(req), reply()).await,
        ReqKind::UpdateConv(req) => submit(shared, app, user, Op::UpdateConv(req), reply()).await,
        ReqKind::SendReceipts(req) => {
            submit(shared, app, user, Op::SendReceipts(req), reply()).await;
        }
        ReqKind::CreateGroup(req) => {
            submit(shared, app, user, Op::CreateGroup(Box::new(req)), reply()).await;
        }
        ReqKind::JoinGroup(req) => submit(shared, app, user, Op::JoinGroup(req), reply()).await,
        ReqKind::QuitGroup(req) => submit(shared, app, user, Op::QuitGroup(req), reply()).await,
        ReqKind::DismissGroup(req) => {
            submit(shared, app, user, Op::DismissGroup(req), reply()).await;
        }
        k @ (ReqKind::SetGroupInfo(_)
        | ReqKind::InviteToGroup(_)
        | ReqKind::KickGroupMembers(_)
        | ReqKind::SetGroupMemberRole(_)
        | ReqKind::TransferGroupOwner(_)
        | ReqKind::MuteGroupMember(_)
        | ReqKind::SetGroupMemberInfo(_)
        | ReqKind::MarkGroupMemberList(_)
        | ReqKind::HandleGroupApplication(_)
        | ReqKind::SetGroupApplicationRead(_)
        | ReqKind::GroupAttributes(_)
        | ReqKind::GroupCounters(_)) => {
            if let Ok(op) = crate::group_admin::GroupOp::from_request(k) {
                submit(shared, app, user, Op::Group(Box::new(op)), reply()).await;
            }
        }
        ReqKind::RevokeMessage(req) => {
            let op = Op::Lifecycle(LifecycleOp::Revoke(req));
            submit(shared, app, user, op, reply()).await;
        }
        ReqKind::ModifyMessage(req) => {
            let op = Op::Lifecycle(LifecycleOp::Modify(Box::new(req)));
            submit(shared, app, user, op, reply()).await;
        }
        ReqKind::DeleteMessages(req) => {
            let op = Op::Lifecycle(LifecycleOp::Delete(req));
            submit(shared, app, user, op, reply()).await;
        }
        ReqKind::ClearHistory(req) => {
            let op = Op::Lifecycle(LifecycleOp::Clear(req));
            submit(shared, app, user, op, reply()).await;
        }
        ReqKind::Reaction(req) => {
            let op = Op::Annotation(AnnotationOp::Reaction(req));
            submit(shared, app, user, op, reply()).await;
        }
        ReqKind::Extensions(req) => {
            let op = Op::Annotation(AnnotationOp::Extensions(req));
            submit(shared, app, user, op, reply()).await;
        }
        ReqKind::PinGroupMessage(req) => {
            submit(shared, app, user, Op::PinGroupMessage(req), reply()).await;
        }
        ReqKind::Signaling(req) => crate::signaling::request(shared, conn, app, user, id, req),
        ReqKind::Community(req) => {
            submit(shared, app, user, Op::Community(Box::new(req)), reply()).await;
        }
        k @ (ReqKind::SetPushConfig(_) | ReqKind::SetAppState(_)) => {
            Box::pin(crate::push::request(shared, conn, who.push_caller(), id, k)).await;
        }
        ReqKind::FileUploadTicket(_) => {
            conn.send(response_frame(id, shared.files.ticket(app, user)));
        }
        ReqKind::Relation(req) => {
            submit(shared, app, user, Op::Relation(Box::new(req)), reply()).await;
        }
        read => {
            let shared = Arc::clone(shared);
            let conn = conn.clone();
            let user = user.to_owned();
            tokio::task::spawn_blocking(move || {
                // Waits once for every write answered before this read (`barrier`).
                let store = match shared.reads.settled() {
                    Ok(store) => store,
                    Err(e) => {
                        conn.send(response_frame(id, Err(e.into())));
                        return;
                    }
                };
                let result = match read {
                    ReqKind::Sync(req) => {
                        conversations::sync(store, &shared.tunables, app, &user, &req)
                    }
                    ReqKind::PullMessages(req) => {
                        conversations::pull(store, &shared.tunables, app, &user, &req)
                    }
                    ReqKind::SearchCloudMessages(req) => {
                        crate::search::search(store, &shared.tunables, app, &user, &req)
                    }
                    ReqKind::GetReceipts(req) => crate::receipts::get(store, app, &user, &req),
                    ReqKind::GetReadMembers(req) => {
                        crate::receipts::members(store, app, &user, &req)
                    }
                    ReqKind::GetJoinedGroups(_) => {
                        queries::joined_groups(store, app, &user).map(|groups| {
                            RespKind::GetJoinedGroups(pb::GetJoinedGroupsResp { groups })
                        })
                    }
                    ReqKind::GetGroupsInfo(req) => queries::groups_info(store, app, &user, &req),
                    ReqKind::GetGroupMembers(req) => {
                        crate::groups::member_list(store, &shared.registry, app, &user, &req)
                    }
                    ReqKind::GetGroupOnlineCount(req) => {
                        crate::groups::online_count(store, &shared.registry, app, &user, &req)
                    }
                    ReqKind::GetGroupMembersInfo(req) => {
                        crate::group_reads::members_info(store, app, &user, &req)
                    }
                    ReqKind::GetGroupApplications(_) => crate::group_apply::list(store, app, &user),
                    ReqKind::GetGroupAttributes(req) => {
                        crate::group_kv::get_attributes(store, app, &user, &req)
                    }
                    ReqKind::GetGroupCounters(req) => {
                        crate::group_kv::get_counters(store, app, &user, &req)
                    }
                    ReqKind::PullMessageChanges(req) => {
                        crate::lifecycle::pull_changes(store, app, &user, &req)
                    }
                    ReqKind::GetReactions(req) => {
                        crate::annotations::get_reactions(store, app, &user, &req)
                    }
                    ReqKind::GetReactionUsers(req) => {
                        crate::annotations::get_reaction_users(store, app, &user, &req)
                    }
                    ReqKind::GetExtensions(req) => {
                        crate::annotations::get_extensions(store, app, &user, &req)
                    }
                    ReqKind::GetCommunity(req) => crate::community::get(
                        store,
                        &shared.tunables.admin_identifier,
                        app,
                        &user,
                        &req,
                    ),
                    ReqKind::GetPinnedGroupMessages(req) => {
                        crate::pins::list(store, app, &user, &req)
                    }
                    ReqKind::FileDownloadUrl(req) => {
                        crate::files::download_url(&shared.files, store, app, &user, &req)
                    }
                    r @ (ReqKind::GetProfiles(_)
                    | ReqKind::RelationSync(_)
                    | ReqKind::CheckFriend(_)
                    | ReqKind::GetUserStatus(_)
                    | ReqKind::GetFollowList(_)
                    | ReqKind::GetFollowInfo(_)) => {
                        crate::relations::read(store, &shared.registry, app, &user, r)
                    }
                    _ => Err(ApiError::new(
                        codes::ERR_SVR_MALFORMED,
                        "unsupported request",
                    )),
                };
                conn.send(response_frame(id, result));
            });
        }
    }
}
