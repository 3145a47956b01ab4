//! Offline push dead letters over REST (our extension, docs/rest.md): pushes that failed every
//! try are kept by the push queue ([`crate::push::devices`]); the app's backend lists them
//! (newest first, paged), hands them back to the queue for a fresh round of tries, or deletes
//! them. Deleting and retrying are writes on the commit pipeline like every other.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Ctx, RestResult, parse};
use crate::commit::Op;
use crate::error::{ApiError, ApiResult};
use crate::push::devices::{self, MAX_DEAD_LETTER_PAGE};
use crate::push::providers::Delivery;
use crate::push::{DeadLetter, LetterId, PushOp};
use chime_proto::codes;

/// Letters per page when the request gives no `Limit`.
const DEFAULT_PAGE: usize = 100;

#[derive(Deserialize)]
struct ListReq {
    #[serde(rename = "Limit")]
    limit: Option<usize>,
    #[serde(rename = "Next")]
    next: Option<String>,
}

/// Which letters a retry or delete is about: one `Id`, an `IdList`, or `All`.
#[derive(Deserialize)]
struct SelectReq {
    #[serde(rename = "Id")]
    id: Option<String>,
    #[serde(rename = "IdList")]
    id_list: Option<Vec<String>>,
    #[serde(rename = "All")]
    all: Option<bool>,
}

fn invalid(desc: impl Into<String>) -> ApiError {
    ApiError::new(codes::ERR_SVR_INVALID_PARAMS, desc)
}

fn parse_id(s: &str) -> ApiResult<LetterId> {
    LetterId::parse(s).ok_or_else(|| invalid(format!("invalid dead letter Id {s:?}")))
}

/// One letter as the REST API shows it.
fn letter_json(id: LetterId, l: &DeadLetter) -> Value {
    json!({
        "Id": id.to_string(),
        "To_Account": l.user,
        "DeviceId": l.device_id,
        "BusinessId": l.business_id,
        "Provider": l.provider,
        "Token": l.token,
        "Reason": l.error,
        "Attempts": l.attempts,
        "FailedTime": l.failed_ms,
        "MsgId": l.notification.msg_id,
        "MsgSeq": l.notification.seq,
        "ConversationId": l.notification.conversation_id,
        "From_Account": l.notification.sender,
        "Title": l.notification.title,
        "Desc": l.notification.desc,
    })
}

/// `offline_push/get_dead_letters {Limit? (1..=1000, default 100), Next?}` →
/// `{DeadLetters: [...], Next}` newest first; `Next` (empty on the last page) continues.
pub(super) async fn list(ctx: &Ctx, body: Value) -> RestResult {
    let req: ListReq = parse(body)?;
    let limit = req.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_DEAD_LETTER_PAGE {
        return Err(invalid(format!("Limit must be 1..={MAX_DEAD_LETTER_PAGE}")));
    }
    let before = match req.next.as_deref() {
        None | Some("") => None,
        Some(s) => Some(parse_id(s)?),
    };
    // One more than asked tells whether another page follows.
    let mut page = ctx
        .read(move |store, app| Ok(devices::dead_letters(store, app, limit + 1, before)?))
        .await?;
    let more = page.len() > limit;
    page.truncate(limit);
    let next = match page.last() {
        Some((id, _)) if more => id.to_string(),
        _ => String::new(),
    };
    let mut out = Map::new();
    out.insert(
        "DeadLetters".into(),
        Value::Array(page.iter().map(|(id, l)| letter_json(*id, l)).collect()),
    );
    out.insert("Next".into(), json!(next));
    Ok(out)
}

/// The letters a [`SelectReq`] names that exist: `All` = the newest
/// [`MAX_DEAD_LETTER_PAGE`] (then `true`: there may be more).
async fn select(ctx: &Ctx, body: Value) -> ApiResult<(Vec<(LetterId, DeadLetter)>, bool)> {
    let req: SelectReq = parse(body)?;
    if req.all == Some(true) {
        let mut page = ctx
            .read(|store, app| {
                Ok(devices::dead_letters(
                    store,
                    app,
                    MAX_DEAD_LETTER_PAGE + 1,
                    None,
                )?)
            })
            .await?;
        let more = page.len() > MAX_DEAD_LETTER_PAGE;
        page.truncate(MAX_DEAD_LETTER_PAGE);
        return Ok((page, more));
    }
    let names: Vec<String> = req
        .id
        .into_iter()
        .chain(req.id_list.unwrap_or_default())
        .collect();
    if names.is_empty() || names.len() > MAX_DEAD_LETTER_PAGE {
        return Err(invalid(format!(
            "give Id, IdList (1..={MAX_DEAD_LETTER_PAGE}) or All: true"
        )));
    }
    let ids = names
        .iter()
        .map(|s| parse_id(s))
        .collect::<ApiResult<Vec<_>>>()?;
    let found = ctx
        .read(move |store, app| {
            let mut out = Vec::new();
            for id in ids {
                if let Some(l) = devices::dead_letter(store, app, id)? {
                    out.push((id, l));
                }
            }
            Ok(out)
        })
        .await?;
    Ok((found, false))
}

fn counted(field: &str, n: usize, more: bool) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(field.into(), json!(n));
    out.insert("HasMore".into(), json!(more));
    out
}

/// `offline_push/retry_dead_letters {Id | IdList | All}` → `{RetryCount, HasMore}`: each letter
/// goes back to the push queue for a fresh round of tries and leaves the list (one that fails
/// again is a new dead letter). Unknown ids are skipped; without a `[push]` table 90002.
pub(super) async fn retry(ctx: &Ctx, body: Value) -> RestResult {
    let (letters, mut more) = select(ctx, body).await?;
    let app_key = ctx.shared.apps.get(&ctx.app).cloned().unwrap_or_default();
    let mut retried = Vec::new();
    for (id, letter) in letters {
        let delivery = Delivery {
            app: ctx.app,
            app_key: app_key.clone(),
            user: letter.user.clone(),
            device: letter.device(),
            notification: letter.notification,
        };
        if !ctx.shared.push.retry(delivery) {
            if retried.is_empty() {
                return Err(invalid(
                    "offline push is not configured or its queue is full",
                ));
            }
            more = true;
            break;
        }
        retried.push(id);
    }
    let n = retried.len();
    if !retried.is_empty() {
        ctx.commit(&ctx.admin, Op::Push(PushOp::DropDeadLetters(retried)))
            .await?;
    }
    Ok(counted("RetryCount", n, more))
}

/// `offline_push/delete_dead_letters {Id | IdList | All}` → `{DeleteCount, HasMore}`.
pub(super) async fn delete(ctx: &Ctx, body: Value) -> RestResult {
    let (letters, more) = select(ctx, body).await?;
    let ids: Vec<LetterId> = letters.into_iter().map(|(id, _)| id).collect();
    let n = ids.len();
    if n > 0 {
        ctx.commit(&ctx.admin, Op::Push(PushOp::DropDeadLetters(ids)))
            .await?;
    }
    Ok(counted("DeleteCount", n, more))
}
