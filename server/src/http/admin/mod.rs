//! The REST admin API, in the style of the seed's REST API: `POST /v4/<service>/<command>?
//! sdkappid=&identifier=&usersig=&random=&contenttype=json`, JSON in, JSON out with
//! `ActionStatus` / `ErrorCode` / `ErrorInfo`.
//!
//! It exists so that an app's own backend can act on the server without a client: import
//! accounts, kick users, send messages as anyone, manage groups, set profiles, broadcast. The
//! caller must be the configured administrator identifier (`admin_identifier`) with a valid
//! UserSig of the app. Every write is a [`crate::commit::Op`] on the same commit pipeline as a
//! client's, so REST writes get the same seqs, pushes, checks and durability; nothing here
//! stores data by itself. Every call is audited in the server log (target
//! `chime_server::audit`).

mod account;
pub mod body;
mod group;
mod group_edit;
mod group_system;
pub mod import;
mod message;
mod profile;
mod push;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Json;
use axum::routing::post;
use chime_proto::codes;
use chime_proto::pb::response::Kind as RespKind;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use crate::Shared;
use crate::commit::{Command, Msg, Op, Reply};
use crate::error::{ApiError, ApiResult};
use crate::keys::{Key, tag};
use crate::store::Store;
use crate::usersig;

/// The route of every REST call.
pub const PATH: &str = "/v4/{service}/{command}";

/// Error codes of the REST API (the seed's 6xxxx "REST/common" codes, plus 70107).
pub mod rest_codes {
    /// The request body is not JSON.
    pub const JSON_PARSE_FAILED: i32 = 60003;
    /// The SDKAppID is unknown.
    pub const INVALID_SDKAPPID: i32 = 60006;
    /// No such REST API (check the URL).
    pub const INVALID_RESOURCE: i32 = 60009;
    /// The identifier is not the app's administrator.
    pub const NOT_ADMIN: i32 = 60010;
    /// The URL has no (numeric) `sdkappid`.
    pub const SDKAPPID_MISSING: i32 = 60012;
    /// The account does not exist (never imported nor logged in).
    pub const ACCOUNT_NOT_FOUND: i32 = 70107;
}

/// The REST routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().route(PATH, post(handle)).with_state(shared)
}

/// The authentication part of the query string.
#[derive(Debug, Default, Deserialize)]
struct AuthQuery {
    sdkappid: Option<String>,
    identifier: Option<String>,
    usersig: Option<String>,
    random: Option<String>,
}

/// What a handler answers on success: the fields added to `ActionStatus: "OK"`.
pub(crate) type RestResult = Result<Map<String, Value>, ApiError>;

/// One authenticated REST call: the app, and the administrator acting.
pub(crate) struct Ctx {
    pub shared: Arc<Shared>,
    pub app: u64,
    pub admin: String,
}

impl Ctx {
    /// Runs `op` on the commit pipeline as `user` and waits for its answer.
    pub async fn commit(&self, user: &str, op: Op) -> ApiResult<RespKind> {
        let (tx, rx) = oneshot::channel();
        let cmd = Command {
            app: self.app,
            user: user.to_owned(),
            op,
            reply: Reply::Once(tx),
        };
        let stopping = || ApiError::new(codes::ERR_SVR_INTERNAL, "server stopping");
        self.shared
            .commit
            .send(Msg::Cmd(cmd))
            .await
            .map_err(|_| stopping())?;
        rx.await.map_err(|_| stopping())?
    }

    /// Runs a store read on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store, u64) -> ApiResult<T> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let app = self.app;
        tokio::task::spawn_blocking(move || f(shared.store.as_ref(), app))
            .await
            .map_err(|e| ApiError::new(codes::ERR_SVR_INTERNAL, format!("read failed: {e}")))?
    }

    /// Fails with 70107 unless `user` has an account (imported or logged in once), or is the
    /// administrator.
    pub async fn require_account(&self, user: &str) -> ApiResult<()> {
        if user == self.admin {
            return Ok(());
        }
        if !chime_proto::ids::is_valid_user_id(user) {
            return Err(ApiError::new(
                codes::ERR_INVALID_USER_ID,
                format!("invalid UserID {user:?}"),
            ));
        }
        let key = Key::new(tag::USER, self.app).s(user.as_bytes()).done();
        let exists = self
            .read(move |store, _| Ok(store.get(&key)?.is_some()))
            .await?;
        if exists {
            Ok(())
        } else {
            Err(ApiError::new(
                rest_codes::ACCOUNT_NOT_FOUND,
                format!("account {user:?} does not exist"),
            ))
        }
    }
}

/// Decodes a request body into `T`; a missing or mistyped field answers 90002 naming it.
pub(crate) fn parse<T: DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            format!("invalid request body: {e}"),
        )
    })
}

/// The success envelope with `fields` added.
fn ok_envelope(fields: Map<String, Value>) -> Value {
    let mut out = Map::new();
    out.insert("ActionStatus".into(), json!("OK"));
    out.insert("ErrorCode".into(), json!(0));
    out.insert("ErrorInfo".into(), json!(""));
    out.extend(fields);
    Value::Object(out)
}

/// The failure envelope.
fn fail_envelope(e: &ApiError) -> Value {
    json!({"ActionStatus": "FAIL", "ErrorCode": e.code, "ErrorInfo": e.desc})
}

/// Checks the query string: a known app, the administrator identifier, a valid UserSig.
fn authenticate(shared: &Arc<Shared>, q: &AuthQuery) -> Result<Ctx, ApiError> {
    let app = q
        .sdkappid
        .as_deref()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::new(
                rest_codes::SDKAPPID_MISSING,
                "the URL needs a numeric sdkappid",
            )
        })?;
    let key = shared.apps.get(&app).ok_or_else(|| {
        ApiError::new(
            rest_codes::INVALID_SDKAPPID,
            format!("unknown SDKAppID {app}"),
        )
    })?;
    let identifier = q.identifier.as_deref().unwrap_or_default();
    let admin = &shared.tunables.admin_identifier;
    if identifier != admin {
        return Err(ApiError::new(
            rest_codes::NOT_ADMIN,
            format!("identifier {identifier:?} is not the app administrator"),
        ));
    }
    let sig = q.usersig.as_deref().unwrap_or_default();
    if sig.is_empty() {
        return Err(ApiError::new(
            codes::ERR_SVR_USER_SIG_EMPTY,
            "the URL needs a usersig",
        ));
    }
    usersig::verify(sig, app, key, identifier, usersig::now_secs())
        .map_err(|e| ApiError::new(e.code(), e.to_string()))?;
    Ok(Ctx {
        shared: Arc::clone(shared),
        app,
        admin: admin.clone(),
    })
}

/// One REST call: authenticate, decode, dispatch, audit, answer.
async fn handle(
    State(shared): State<Arc<Shared>>,
    Path((service, command)): Path<(String, String)>,
    Query(q): Query<AuthQuery>,
    body: Bytes,
) -> Json<Value> {
    let started = Instant::now();
    let action = format!("{service}/{command}");
    let result = match authenticate(&shared, &q) {
        Err(e) => Err(e),
        Ok(ctx) => match decode_body(&body) {
            Err(e) => Err(e),
            Ok(value) => dispatch(&ctx, &action, value).await,
        },
    };
    let code = result.as_ref().err().map_or(0, |e| e.code);
    tracing::info!(
        target: "chime_server::audit",
        app = q.sdkappid.as_deref().unwrap_or_default(),
        identifier = q.identifier.as_deref().unwrap_or_default(),
        random = q.random.as_deref().unwrap_or_default(),
        action = %action,
        code,
        elapsed_us = started.elapsed().as_micros() as u64,
        "admin action"
    );
    Json(match result {
        Ok(fields) => ok_envelope(fields),
        Err(e) => fail_envelope(&e),
    })
}

/// The JSON body (an empty body is `{}`).
fn decode_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            rest_codes::JSON_PARSE_FAILED,
            format!("request body is not JSON: {e}"),
        )
    })
}

async fn dispatch(ctx: &Ctx, action: &str, body: Value) -> RestResult {
    match action {
        "im_open_login_svc/account_import" => account::import(ctx, body).await,
        "im_open_login_svc/multiaccount_import" => account::multi_import(ctx, body).await,
        "im_open_login_svc/account_check" => account::check(ctx, body).await,
        "im_open_login_svc/kick" => account::kick(ctx, body).await,
        "openim/query_online_status" | "openim/querystate" => account::state(ctx, body).await,
        "openim/sendmsg" => message::send_c2c(ctx, body).await,
        "openim/batchsendmsg" => message::batch_send(ctx, body).await,
        "all_member_push/im_push" => message::push_all(ctx, body).await,
        "group_open_http_svc/send_group_msg" => message::send_group(ctx, body).await,
        "group_open_http_svc/send_broadcast_msg" => message::broadcast(ctx, body).await,
        "openim/importmsg" => import::import_c2c(ctx, body).await,
        "group_open_http_svc/import_group_msg" => import::import_group(ctx, body).await,
        "group_open_http_svc/create_group" => group::create(ctx, body).await,
        "group_open_http_svc/add_group_member" => group::add_members(ctx, body).await,
        "group_open_http_svc/delete_group_member" => group::delete_members(ctx, body).await,
        "group_open_http_svc/get_group_info" => group_edit::info(ctx, body).await,
        "group_open_http_svc/modify_group_base_info" => group_edit::modify(ctx, body).await,
        "group_open_http_svc/change_group_owner" => group_edit::change_owner(ctx, body).await,
        "group_open_http_svc/forbid_send_msg" => group_edit::forbid_send(ctx, body).await,
        "group_open_http_svc/destroy_group" => group_system::destroy(ctx, body).await,
        "group_open_http_svc/recycle_group" => group_system::recycle(ctx, body).await,
        "group_open_http_svc/send_group_system_notification" => {
            group_system::system_notification(ctx, body).await
        }
        "profile/portrait_set" => profile::set(ctx, body).await,
        "offline_push/get_dead_letters" => push::list(ctx, body).await,
        "offline_push/retry_dead_letters" => push::retry(ctx, body).await,
        "offline_push/delete_dead_letters" => push::delete(ctx, body).await,
        _ => Err(ApiError::new(
            rest_codes::INVALID_RESOURCE,
            format!("no REST API {action}"),
        )),
    }
}
