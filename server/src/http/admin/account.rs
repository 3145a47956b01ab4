//! Accounts: import (one or many), check, kick, online state.

use chime_proto::pb::{self, Platform};
use chime_proto::{codes, ids};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Ctx, RestResult, parse};
use crate::commit::Op;
use crate::error::ApiError;
use crate::keys::{Key, tag};
use crate::registry::push_frame;

#[derive(Deserialize)]
struct ImportReq {
    #[serde(rename = "UserID")]
    user_id: String,
    #[serde(rename = "Nick")]
    nick: Option<String>,
    #[serde(rename = "FaceUrl")]
    face_url: Option<String>,
}

/// `im_open_login_svc/account_import {UserID, Nick?, FaceUrl?}`: creates the account (no-op if
/// it exists) and sets the given profile fields.
pub(super) async fn import(ctx: &Ctx, body: Value) -> RestResult {
    let req: ImportReq = parse(body)?;
    if !ids::is_valid_user_id(&req.user_id) {
        return Err(ApiError::new(
            codes::ERR_INVALID_USER_ID,
            format!("invalid UserID {:?}", req.user_id),
        ));
    }
    ctx.commit(&req.user_id, Op::Register).await?;
    if req.nick.is_some() || req.face_url.is_some() {
        let set = pb::SetProfileReq {
            nick_name: req.nick,
            face_url: req.face_url,
            ..Default::default()
        };
        let op = pb::RelationReq {
            op: Some(pb::relation_req::Op::SetProfile(set)),
        };
        ctx.commit(&req.user_id, Op::Relation(Box::new(op))).await?;
    }
    Ok(Map::new())
}

#[derive(Deserialize)]
struct MultiImportReq {
    #[serde(rename = "Accounts")]
    accounts: Vec<String>,
}

/// `im_open_login_svc/multiaccount_import {Accounts}` (at most 100) → `FailAccounts`.
pub(super) async fn multi_import(ctx: &Ctx, body: Value) -> RestResult {
    let req: MultiImportReq = parse(body)?;
    if req.accounts.len() > 100 {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            "at most 100 Accounts per call",
        ));
    }
    let mut fail = Vec::new();
    for user in req.accounts {
        if !ids::is_valid_user_id(&user) || ctx.commit(&user, Op::Register).await.is_err() {
            fail.push(user);
        }
    }
    let mut out = Map::new();
    out.insert("FailAccounts".into(), json!(fail));
    Ok(out)
}

#[derive(Deserialize)]
struct CheckItem {
    #[serde(rename = "UserID")]
    user_id: String,
}

#[derive(Deserialize)]
struct CheckReq {
    #[serde(rename = "CheckItem")]
    check_item: Vec<CheckItem>,
}

/// `im_open_login_svc/account_check {CheckItem: [{UserID}]}` → `ResultItem: [{UserID,
/// ResultCode, ResultInfo, AccountStatus ("Imported"|"NotImported")}]`.
pub(super) async fn check(ctx: &Ctx, body: Value) -> RestResult {
    let req: CheckReq = parse(body)?;
    let users: Vec<String> = req.check_item.into_iter().map(|c| c.user_id).collect();
    let items = ctx
        .read(move |store, app| {
            users
                .into_iter()
                .map(|user| {
                    if !ids::is_valid_user_id(&user) {
                        return Ok(
                            json!({"UserID": user, "ResultCode": codes::ERR_INVALID_USER_ID,
                            "ResultInfo": "invalid UserID", "AccountStatus": "NotImported"}),
                        );
                    }
                    let key = Key::new(tag::USER, app).s(user.as_bytes()).done();
                    let status = if store.get(&key)?.is_some() {
                        "Imported"
                    } else {
                        "NotImported"
                    };
                    Ok(json!({"UserID": user, "ResultCode": 0, "ResultInfo": "",
                        "AccountStatus": status}))
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .await?;
    let mut out = Map::new();
    out.insert("ResultItem".into(), json!(items));
    Ok(out)
}

#[derive(Deserialize)]
struct KickReq {
    #[serde(rename = "UserID")]
    user_id: String,
}

/// `im_open_login_svc/kick {UserID}`: every session of the user gets `on_kicked_offline` and is
/// closed.
pub(super) async fn kick(ctx: &Ctx, body: Value) -> RestResult {
    let req: KickReq = parse(body)?;
    ctx.require_account(&req.user_id).await?;
    let sessions = ctx.shared.registry.kick_all(ctx.app, &req.user_id);
    let frame = push_frame(pb::push::Kind::Kicked(pb::KickedPush {
        code: codes::ERR_LOGIN_KICKED_OFF_BY_OTHER,
        desc: "kicked by the REST API".into(),
        by_platform: Platform::Unspecified as i32,
    }));
    for s in &sessions {
        s.conn.send(frame.clone());
        s.conn.close();
    }
    if !sessions.is_empty() {
        crate::relations::presence_changed(&ctx.shared, ctx.app, &req.user_id, false);
    }
    Ok(Map::new())
}

#[derive(Deserialize)]
struct StateReq {
    #[serde(rename = "To_Account")]
    to_account: Vec<String>,
}

/// `openim/query_online_status {To_Account}` → `QueryResult: [{To_Account, Status
/// ("Online"|"Offline"), Detail: [{Platform, Status}]}]`, `ErrorList` for invalid ids.
pub(super) async fn state(ctx: &Ctx, body: Value) -> RestResult {
    let req: StateReq = parse(body)?;
    if req.to_account.len() > 500 {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            "at most 500 To_Account per call",
        ));
    }
    let mut result = Vec::new();
    let mut errors = Vec::new();
    for user in req.to_account {
        if !ids::is_valid_user_id(&user) {
            errors.push(json!({"To_Account": user, "ErrorCode": codes::ERR_INVALID_USER_ID}));
            continue;
        }
        let platforms = ctx.shared.registry.platforms(ctx.app, &user);
        let detail: Vec<Value> = platforms
            .iter()
            .map(|p| json!({"Platform": platform_name(*p), "Status": "Online"}))
            .collect();
        let status = if platforms.is_empty() {
            "Offline"
        } else {
            "Online"
        };
        result.push(json!({"To_Account": user, "Status": status, "Detail": detail}));
    }
    let mut out = Map::new();
    out.insert("QueryResult".into(), json!(result));
    if !errors.is_empty() {
        out.insert("ErrorList".into(), json!(errors));
    }
    Ok(out)
}

/// The seed's platform names.
fn platform_name(p: Platform) -> &'static str {
    match p {
        Platform::Windows => "Windows",
        Platform::Mac => "Mac",
        Platform::Linux => "Linux",
        Platform::Android => "Android",
        Platform::Ios => "iOS",
        Platform::Web => "Web",
        Platform::Unity => "Unity",
        Platform::Unreal => "Unreal",
        Platform::Unspecified => "Unknown",
    }
}
