//! Conversation methods (api.md §4.3), read marks and receive options (§4.2): parameter
//! validation and the mapping to the [`ConversationActor`](crate::actors::conversation)'s
//! messages. Multi-step operations (cleaning unread over many conversations) are sequenced here.

use chime_proto::pb::{self, update_conv_req::Change};
use serde_json::{Value, json};

use super::params::*;
use crate::actors::Peers;
use crate::actors::conversation::view::{self, Filter};
use crate::actors::conversation::{
    CleanPlan, CleanTarget, ClearConversationMessages, MarkRead, Query, SetDraft, Update,
    parse_conv_id,
};
use crate::events::EventBus;
use crate::{ApiError, Result, codec};

/// Most conversations (or users) in one request (the seed's limit; more answers 51006).
pub const MAX_IDS_PER_REQUEST: usize = 100;
/// Too many conversations in one request (the seed's code).
pub const ERR_TOO_MANY_IDS: i32 = 51006;

mod receipts;

/// The methods this area answers (its own and those of [`receipts`]).
pub(super) const METHODS: &[&str] = &[
    "send_message_read_receipts",
    "get_message_read_receipts",
    "get_group_message_read_member_list",
    "get_conversation_list",
    "get_conversation",
    "get_conversation_list_by_ids",
    "get_conversation_list_by_filter",
    "delete_conversation",
    "delete_conversation_list",
    "set_conversation_draft",
    "set_conversation_custom_data",
    "pin_conversation",
    "get_total_unread_message_count",
    "get_unread_message_count_by_filter",
    "subscribe_unread_message_count_by_filter",
    "unsubscribe_unread_message_count_by_filter",
    "clean_conversation_unread_message_count",
    "mark_conversation",
    "create_conversation_group",
    "get_conversation_group_list",
    "delete_conversation_group",
    "rename_conversation_group",
    "add_conversations_to_group",
    "delete_conversations_from_group",
    "mark_c2c_message_as_read",
    "mark_group_message_as_read",
    "mark_all_message_as_read",
    "set_c2c_receive_message_opt",
    "get_c2c_receive_message_opt",
    "set_group_receive_message_opt",
    "set_all_receive_message_opt",
    "get_all_receive_message_opt",
    "get_sync_stats",
];

/// The methods of this area that work before login.
pub(super) const PRE_LOGIN: &[&str] = &[];

fn page_count(p: &Value) -> Result<usize> {
    Ok(match opt_u64(p, "count")? {
        0 => 100,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    })
}

fn filter(p: &Value) -> Result<Filter> {
    let f = p
        .get("filter")
        .ok_or_else(|| ApiError::invalid_param("filter (object) is required"))?;
    Filter::from_json(f).map_err(ApiError::invalid_param)
}

/// A list of conversation ids (1..=100, each well-formed).
fn conv_ids(p: &Value, field: &str) -> Result<Vec<pb::ConvRef>> {
    let list = codec::string_list(p, field)?;
    if list.is_empty() {
        return Err(ApiError::invalid_param(format!("{field} is empty")));
    }
    if list.len() > MAX_IDS_PER_REQUEST {
        return Err(ApiError::new(
            ERR_TOO_MANY_IDS,
            format!("{field}: at most {MAX_IDS_PER_REQUEST} per request"),
        ));
    }
    list.iter().map(|id| parse_conv_id(id)).collect()
}

fn one_conv(p: &Value) -> Result<(String, pb::ConvRef)> {
    let id = req_str(p, "conversation_id")?;
    let c = parse_conv_id(&id)?;
    Ok((id, c))
}

fn recv_opt(p: &Value) -> Result<i32> {
    let s = req_str(p, "opt")?;
    view::recv_opt_from_str(&s).ok_or_else(|| {
        ApiError::invalid_param("opt must be receive|not_receive|not_notify|not_notify_except_at")
    })
}

fn folder(op: pb::FolderOp, name: String, new_name: String) -> Change {
    Change::Folder(pb::FolderChange {
        op: op as i32,
        name,
        new_name,
    })
}

fn u32_field(p: &Value, f: &str, max: u64) -> Result<u32> {
    let v = opt_u64(p, f)?;
    if v > max {
        return Err(ApiError::invalid_param(format!(
            "{f} must be at most {max}"
        )));
    }
    u32::try_from(v).map_err(|_| ApiError::invalid_param(format!("{f} out of range")))
}

async fn update(
    peers: &Peers,
    convs: Vec<pb::ConvRef>,
    change: Change,
    must_exist: bool,
) -> Result<pb::UpdateConvResp> {
    peers
        .conv
        .send(Update {
            convs,
            change,
            must_exist,
        })
        .await
        .map_err(mailbox)?
}

async fn query(peers: &Peers, q: Query) -> Result<Value> {
    peers.conv.send(q).await.map_err(mailbox)?
}

/// Marks read and clears unread marks as planned by the actor.
async fn clean(peers: &Peers, target: CleanTarget) -> Result<Value> {
    let (reads, marks) = peers
        .conv
        .send(CleanPlan(target))
        .await
        .map_err(mailbox)??;
    for (c, seq) in reads {
        peers.conv.send(MarkRead(c, seq)).await.map_err(mailbox)??;
    }
    for chunk in marks.chunks(MAX_IDS_PER_REQUEST) {
        let convs = chunk
            .iter()
            .map(|id| parse_conv_id(id))
            .collect::<Result<Vec<_>>>()?;
        let change = Change::Mark(pb::MarkChange {
            mark: view::mark::UNREAD,
            enable: false,
        });
        update(peers, convs, change, false).await?;
    }
    Ok(json!({}))
}

/// Deletes conversations (and, with `clear_message`, their messages on this device; the server
/// stops serving them to this user).
async fn delete(peers: &Peers, convs: Vec<pb::ConvRef>, clear_message: bool) -> Result<Value> {
    let change = Change::Delete(pb::DeleteConvChange { clear_message });
    let resp = update(peers, convs, change, true).await?;
    if clear_message {
        for e in resp.convs {
            let (Some(c), Some(s)) = (e.conv, e.settings) else {
                continue;
            };
            peers
                .msg
                .send(ClearConversationMessages {
                    conversation_id: chime_proto::ids::conversation_id(&c),
                    up_to: s.cleared_seq,
                })
                .await
                .map_err(mailbox)??;
        }
    }
    Ok(json!({}))
}

/// Calls one method of this area.
pub(super) async fn call(
    peers: &Peers,
    _events: &EventBus,
    method: &str,
    p: Value,
) -> Result<Value> {
    if receipts::METHODS.contains(&method) {
        return receipts::call(peers, method, p).await;
    }
    match method {
        "get_conversation_list" => {
            let next_seq = opt_u64(&p, "next_seq")?;
            let count = page_count(&p)?;
            query(peers, Query::List { next_seq, count }).await
        }
        "get_conversation_list_by_filter" => {
            let q = Query::ByFilter {
                filter: filter(&p)?,
                next_seq: opt_u64(&p, "next_seq")?,
                count: page_count(&p)?,
            };
            query(peers, q).await
        }
        "get_conversation" => query(peers, Query::One(one_conv(&p)?.0)).await,
        "get_conversation_list_by_ids" => {
            let ids = conv_ids(&p, "conversation_ids")?
                .iter()
                .map(chime_proto::ids::conversation_id)
                .collect();
            query(peers, Query::ByIds(ids)).await
        }
        "get_total_unread_message_count" => query(peers, Query::TotalUnread).await,
        "get_sync_stats" => query(peers, Query::SyncStats).await,
        "get_unread_message_count_by_filter" => {
            query(peers, Query::FilteredUnread(filter(&p)?)).await
        }
        "subscribe_unread_message_count_by_filter" => {
            query(peers, Query::Subscribe(filter(&p)?)).await
        }
        "unsubscribe_unread_message_count_by_filter" => {
            query(peers, Query::Unsubscribe(filter(&p)?)).await
        }
        "delete_conversation" => {
            let (_, c) = one_conv(&p)?;
            delete(peers, vec![c], opt_bool(&p, "clear_message")?).await
        }
        "delete_conversation_list" => {
            let convs = conv_ids(&p, "conversation_ids")?;
            delete(peers, convs, opt_bool(&p, "clear_message")?).await
        }
        "set_conversation_draft" => {
            let (id, _) = one_conv(&p)?;
            let text = opt_str(&p, "draft_text")?.unwrap_or_default();
            peers
                .conv
                .send(SetDraft { id, text })
                .await
                .map_err(mailbox)??;
            Ok(json!({}))
        }
        "set_conversation_custom_data" => {
            let convs = conv_ids(&p, "conversation_ids")?;
            let data = opt_str(&p, "custom_data")?.unwrap_or_default();
            update(peers, convs, Change::CustomData(data.into_bytes()), true).await?;
            Ok(json!({}))
        }
        "pin_conversation" => {
            let (_, c) = one_conv(&p)?;
            update(
                peers,
                vec![c],
                Change::Pin(opt_bool(&p, "is_pinned")?),
                true,
            )
            .await?;
            Ok(json!({}))
        }
        "mark_conversation" => {
            let convs = conv_ids(&p, "conversation_ids")?;
            let mark = match p.get("mark_type") {
                Some(Value::String(s)) => match s.as_str() {
                    "star" => view::mark::STAR,
                    "unread" => view::mark::UNREAD,
                    "fold" => view::mark::FOLD,
                    "hide" => view::mark::HIDE,
                    _ => {
                        return Err(ApiError::invalid_param(
                            "mark_type must be star|unread|fold|hide",
                        ));
                    }
                },
                Some(v) => v
                    .as_u64()
                    .filter(|m| *m != 0)
                    .ok_or_else(|| ApiError::invalid_param("mark_type"))?,
                None => return Err(ApiError::invalid_param("mark_type is required")),
            };
            let change = Change::Mark(pb::MarkChange {
                mark,
                enable: opt_bool(&p, "enable_mark")?,
            });
            update(peers, convs, change, true).await?;
            Ok(json!({}))
        }
        "clean_conversation_unread_message_count" => {
            let id = req_str(&p, "conversation_id")?;
            let seq = opt_u64(&p, "clean_sequence")?;
            let ts = opt_u64(&p, "clean_timestamp")?;
            let target = match id.as_str() {
                "" => CleanTarget::All,
                "c2c" => CleanTarget::Type(false),
                "group" => CleanTarget::Type(true),
                _ => CleanTarget::One {
                    id,
                    seq,
                    time_ms: i64::try_from(ts.saturating_mul(1000)).unwrap_or(i64::MAX),
                },
            };
            if !matches!(target, CleanTarget::One { .. }) && (seq != 0 || ts != 0) {
                return Err(ApiError::invalid_param(
                    "clean_timestamp / clean_sequence apply to one conversation only",
                ));
            }
            clean(peers, target).await
        }
        "mark_c2c_message_as_read" => {
            let c = c2c(user_id(&p, "user_id")?);
            clean(
                peers,
                CleanTarget::One {
                    id: chime_proto::ids::conversation_id(&c),
                    seq: 0,
                    time_ms: 0,
                },
            )
            .await
        }
        "mark_group_message_as_read" => {
            let c = group(group_id(&p, "group_id")?);
            clean(
                peers,
                CleanTarget::One {
                    id: chime_proto::ids::conversation_id(&c),
                    seq: 0,
                    time_ms: 0,
                },
            )
            .await
        }
        "mark_all_message_as_read" => clean(peers, CleanTarget::All).await,
        "create_conversation_group" => {
            let name = req_str(&p, "group_name")?;
            let convs = match p.get("conversation_ids") {
                None | Some(Value::Null) => Vec::new(),
                Some(_) => conv_ids(&p, "conversation_ids")?,
            };
            let change = folder(pb::FolderOp::Create, name, String::new());
            update(peers, convs, change, false).await?;
            Ok(json!({}))
        }
        "get_conversation_group_list" => query(peers, Query::Folders).await,
        "delete_conversation_group" => {
            let change = folder(
                pb::FolderOp::Delete,
                req_str(&p, "group_name")?,
                String::new(),
            );
            update(peers, Vec::new(), change, false).await?;
            Ok(json!({}))
        }
        "rename_conversation_group" => {
            let change = folder(
                pb::FolderOp::Rename,
                req_str(&p, "old_name")?,
                req_str(&p, "new_name")?,
            );
            update(peers, Vec::new(), change, false).await?;
            Ok(json!({}))
        }
        "add_conversations_to_group" | "delete_conversations_from_group" => {
            let op = if method == "add_conversations_to_group" {
                pb::FolderOp::Add
            } else {
                pb::FolderOp::Remove
            };
            let convs = conv_ids(&p, "conversation_ids")?;
            let change = folder(op, req_str(&p, "group_name")?, String::new());
            update(peers, convs, change, false).await?;
            Ok(json!({}))
        }
        "set_c2c_receive_message_opt" => {
            let users = codec::string_list(&p, "user_ids")?;
            if users.is_empty() {
                return Err(ApiError::invalid_param("user_ids is empty"));
            }
            if users.len() > MAX_IDS_PER_REQUEST {
                return Err(ApiError::new(ERR_TOO_MANY_IDS, "user_ids: at most 100"));
            }
            let mut convs = Vec::with_capacity(users.len());
            for u in users {
                convs.push(c2c(user_id(&json!({ "user_id": u }), "user_id")?));
            }
            update(peers, convs, Change::RecvOpt(recv_opt(&p)?), false).await?;
            Ok(json!({}))
        }
        "get_c2c_receive_message_opt" => {
            let users = codec::string_list(&p, "user_ids")?;
            for u in &users {
                user_id(&json!({ "user_id": u }), "user_id")?;
            }
            query(peers, Query::C2cRecvOpts(users)).await
        }
        "set_group_receive_message_opt" => {
            let c = group(group_id(&p, "group_id")?);
            update(peers, vec![c], Change::RecvOpt(recv_opt(&p)?), false).await?;
            Ok(json!({}))
        }
        "set_all_receive_message_opt" => {
            let o = pb::AllRecvOpt {
                opt: recv_opt(&p)?,
                start_hour: u32_field(&p, "start_hour", 23)?,
                start_minute: u32_field(&p, "start_minute", 59)?,
                start_second: u32_field(&p, "start_second", 59)?,
                start_time_stamp: i64::try_from(opt_u64(&p, "start_time_stamp")?)
                    .map_err(|_| ApiError::invalid_param("start_time_stamp out of range"))?,
                duration: u32_field(&p, "duration", u64::from(u32::MAX))?,
            };
            update(peers, Vec::new(), Change::AllRecvOpt(o), false).await?;
            Ok(json!({}))
        }
        "get_all_receive_message_opt" => query(peers, Query::AllRecvOpt).await,
        _ => Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    }
}
