//! Per-message read receipts for messages sent with `need_read_receipt` (C2C and group):
//! `send_message_read_receipts` records that a reader read a message and tells its sender;
//! `get_message_read_receipts` answers read / unread counts; `get_group_message_read_member_list`
//! pages the readers or the members who have not read.
//!
//! Storage: one key per (message, reader) so a receipt is idempotent, and a read counter per
//! message so counts are one point read. Both are written by the commit task (reads through the
//! batches in flight, so concurrent receipts count exactly once). A group message's unread count
//! is the group's current members, less the sender, less the readers.

use chime_proto::pb::{self, response::Kind as RespKind};
use chime_proto::{codes, ids};
use prost::Message as _;

use crate::commit::{Core, Effect};
use crate::error::{ApiError, ApiResult, StoreError};
use crate::keys::{self, Key, tag};
use crate::queries;
use crate::registry::push_frame;
use crate::store::Store;
use crate::txn::Txn;

/// Most messages in one receipt request.
pub const MAX_MSGS_PER_REQUEST: usize = 100;
/// Default and largest member page.
pub const MEMBER_PAGE: u32 = 100;

fn invalid(desc: impl Into<String>) -> ApiError {
    ApiError::new(codes::ERR_SVR_INVALID_PARAMS, desc)
}

fn conv_key(user: &str, c: &pb::ConvRef) -> ApiResult<Vec<u8>> {
    match c.conv_type() {
        pb::ConvType::C2c if ids::is_valid_user_id(&c.target) => {
            Ok(keys::c2c_conv(user, &c.target))
        }
        pb::ConvType::Group if ids::is_valid_group_id(&c.target) => Ok(keys::group_conv(&c.target)),
        _ => Err(invalid("invalid conversation")),
    }
}

fn reader_key(app: u64, conv: &[u8], seq: u64, reader: &str) -> Vec<u8> {
    Key::new(tag::RECEIPT_READER, app)
        .s(conv)
        .n(seq)
        .s(reader.as_bytes())
        .done()
}

fn count_key(app: u64, conv: &[u8], seq: u64) -> Vec<u8> {
    Key::new(tag::RECEIPT_COUNT, app).s(conv).n(seq).done()
}

fn load_message(
    get: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, StoreError>,
    app: u64,
    conv: &[u8],
    seq: u64,
) -> ApiResult<pb::Message> {
    let raw = get(&Key::new(tag::MSG, app).s(conv).n(seq).done())?
        .ok_or_else(|| invalid(format!("no message at seq {seq}")))?;
    Ok(pb::Message::decode(&raw[..]).map_err(StoreError::from)?)
}

/// The members who count for a group message's receipts: current members except the sender.
fn audience(members: impl Iterator<Item = String>, sender: &str) -> Vec<String> {
    let mut v: Vec<String> = members.filter(|m| m != sender).collect();
    v.sort();
    v
}

/// Whether `user` may see receipts of / send receipts for `msg` in `conv_ref`.
fn check_party(msg: &pb::Message, user: &str, member: bool) -> ApiResult<()> {
    let visible = msg.target_user_list.is_empty()
        || msg.sender == user
        || msg.target_user_list.iter().any(|u| u == user);
    if !member || !visible {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_PERMISSION_DENIED,
            "not a party to this message",
        ));
    }
    if !msg.need_read_receipt {
        return Err(invalid(format!(
            "message {} was not sent with need_read_receipt",
            msg.msg_id
        )));
    }
    Ok(())
}

/// `SendReceipts`: `reader` read these messages (run by the commit task).
pub(crate) fn send(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    reader: &str,
    req: pb::SendReceiptsReq,
    fx: &mut Vec<Effect>,
) -> ApiResult<RespKind> {
    if req.msgs.is_empty() || req.msgs.len() > MAX_MSGS_PER_REQUEST {
        return Err(invalid("1..=100 messages per request"));
    }
    let mut staged = Vec::new();
    for r in &req.msgs {
        let c = r.conv.as_ref().ok_or_else(|| invalid("conv is required"))?;
        let conv = conv_key(reader, c)?;
        let msg = load_message(|k| txn.get(k), app, &conv, r.seq)?;
        let audience = match c.conv_type() {
            pb::ConvType::Group => {
                let governing = crate::community::membership_group(&*txn, app, &c.target)?;
                let g = core.group(txn, app, &governing)?.ok_or_else(|| {
                    ApiError::new(codes::ERR_SVR_GROUP_NOT_FOUND, "no such group")
                })?;
                check_party(&msg, reader, g.members.contains_key(reader))?;
                audience(g.members.keys().cloned(), &msg.sender).len()
            }
            _ => {
                check_party(&msg, reader, true)?;
                1
            }
        };
        if msg.sender == reader {
            return Err(invalid("a receipt is for someone else's message"));
        }
        staged.push((c.clone(), conv, msg, audience));
    }
    let mut pushes: Vec<(String, pb::MessageReceipt)> = Vec::new();
    for (c, conv, msg, audience) in staged {
        let rk = reader_key(app, &conv, msg.seq, reader);
        if txn.get(&rk)?.is_some() {
            continue;
        }
        txn.put(rk, Vec::new());
        let ck = count_key(app, &conv, msg.seq);
        let read = txn.get_u64(&ck)? + 1;
        txn.put(ck, read.to_be_bytes().to_vec());
        let audience = audience as u64;
        let conv_for_sender = match c.conv_type() {
            pb::ConvType::Group => c.clone(),
            _ => pb::ConvRef {
                conv_type: pb::ConvType::C2c as i32,
                target: reader.to_owned(),
            },
        };
        pushes.push((
            msg.sender.clone(),
            pb::MessageReceipt {
                conv: Some(conv_for_sender),
                seq: msg.seq,
                msg_id: msg.msg_id.clone(),
                read_count: u32::try_from(read).unwrap_or(u32::MAX),
                unread_count: u32::try_from(audience.saturating_sub(read)).unwrap_or(0),
                is_peer_read: c.conv_type() == pb::ConvType::C2c,
            },
        ));
    }
    pushes.sort_by(|a, b| a.0.cmp(&b.0));
    let mut i = 0;
    while i < pushes.len() {
        let sender = pushes[i].0.clone();
        let mut receipts = Vec::new();
        while i < pushes.len() && pushes[i].0 == sender {
            receipts.push(pushes[i].1.clone());
            i += 1;
        }
        fx.push(Effect::Push {
            app,
            user: sender,
            frame: push_frame(pb::push::Kind::MessageReceipt(pb::MessageReceiptPush {
                receipts,
            })),
            skip: 0,
        });
    }
    Ok(RespKind::SendReceipts(pb::SendReceiptsResp {}))
}

fn read_u64(store: &dyn Store, key: &[u8]) -> Result<u64, StoreError> {
    Ok(store
        .get(key)?
        .and_then(|v| keys::be_u64(&v, 0))
        .unwrap_or(0))
}

/// Readers of one message (user ids, sorted).
fn readers(store: &dyn Store, app: u64, conv: &[u8], seq: u64) -> ApiResult<Vec<String>> {
    let (start, end) = Key::new(tag::RECEIPT_READER, app)
        .s(conv)
        .n(seq)
        .prefix_range();
    let prefix = start.len();
    let mut out = Vec::new();
    for (k, _) in store.scan(&start, &end, usize::MAX, false)? {
        if let Some(u) = keys::trailing_str(&k, prefix) {
            out.push(u);
        }
    }
    Ok(out)
}

/// The group's members now (user ids), or 10010 / 10007; a topic's are its community's.
fn group_members(store: &dyn Store, app: u64, group: &str, user: &str) -> ApiResult<Vec<String>> {
    let group = &crate::community::membership_group(store, app, group)?;
    let members: Vec<String> = queries::load_members(store, app, group)?
        .into_iter()
        .map(|(_, m)| m.user_id)
        .collect();
    if members.is_empty() {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_NOT_FOUND,
            "no such group",
        ));
    }
    if !members.iter().any(|m| m == user) {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_PERMISSION_DENIED,
            "not a member of the group",
        ));
    }
    Ok(members)
}

/// `GetReceipts`: read / unread counts of messages.
pub fn get(
    store: &dyn Store,
    app: u64,
    user: &str,
    req: &pb::GetReceiptsReq,
) -> ApiResult<RespKind> {
    if req.msgs.len() > MAX_MSGS_PER_REQUEST {
        return Err(invalid("at most 100 messages per request"));
    }
    let mut receipts = Vec::with_capacity(req.msgs.len());
    for r in &req.msgs {
        let c = r.conv.as_ref().ok_or_else(|| invalid("conv is required"))?;
        let conv = conv_key(user, c)?;
        let msg = load_message(|k| store.get(k), app, &conv, r.seq)?;
        let read = read_u64(store, &count_key(app, &conv, r.seq))?;
        let audience = match c.conv_type() {
            pb::ConvType::Group => {
                let members = group_members(store, app, &c.target, user)?;
                check_party(&msg, user, true)?;
                audience(members.into_iter(), &msg.sender).len() as u64
            }
            _ => {
                check_party(&msg, user, true)?;
                1
            }
        };
        receipts.push(pb::MessageReceipt {
            conv: Some(c.clone()),
            seq: r.seq,
            msg_id: msg.msg_id,
            read_count: u32::try_from(read).unwrap_or(u32::MAX),
            unread_count: u32::try_from(audience.saturating_sub(read)).unwrap_or(0),
            is_peer_read: c.conv_type() == pb::ConvType::C2c && read > 0,
        });
    }
    Ok(RespKind::GetReceipts(pb::GetReceiptsResp { receipts }))
}

/// `GetReadMembers`: a page of the members who read (or have not read) a group message.
pub fn members(
    store: &dyn Store,
    app: u64,
    user: &str,
    req: &pb::GetReadMembersReq,
) -> ApiResult<RespKind> {
    let r = req.msg.as_ref().ok_or_else(|| invalid("msg is required"))?;
    let c = r.conv.as_ref().ok_or_else(|| invalid("conv is required"))?;
    if c.conv_type() != pb::ConvType::Group {
        return Err(invalid("read member lists are for group messages"));
    }
    let conv = conv_key(user, c)?;
    let group = group_members(store, app, &c.target, user)?;
    let msg = load_message(|k| store.get(k), app, &conv, r.seq)?;
    check_party(&msg, user, true)?;
    let read = readers(store, app, &conv, r.seq)?;
    let list: Vec<String> = if req.read {
        read
    } else {
        audience(group.into_iter(), &msg.sender)
            .into_iter()
            .filter(|m| read.binary_search(m).is_err())
            .collect()
    };
    let count = if req.count == 0 {
        MEMBER_PAGE
    } else {
        req.count.min(MEMBER_PAGE)
    } as usize;
    let start = usize::try_from(req.next_seq)
        .unwrap_or(usize::MAX)
        .min(list.len());
    let end = start.saturating_add(count).min(list.len());
    Ok(RespKind::GetReadMembers(pb::GetReadMembersResp {
        user_ids: list[start..end].to_vec(),
        next_seq: end as u64,
        is_finished: end >= list.len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audience_leaves_out_the_sender_and_is_sorted() {
        let m = ["carol", "alice", "bob"].map(String::from);
        assert_eq!(audience(m.into_iter(), "alice"), ["bob", "carol"]);
    }

    #[test]
    fn only_receipt_messages_of_parties_qualify() {
        let mut msg = pb::Message {
            msg_id: "m".into(),
            sender: "alice".into(),
            need_read_receipt: true,
            ..Default::default()
        };
        assert!(check_party(&msg, "bob", true).is_ok());
        assert_eq!(
            check_party(&msg, "bob", false).unwrap_err().code,
            codes::ERR_SVR_GROUP_PERMISSION_DENIED
        );
        msg.target_user_list = vec!["carol".into()];
        assert!(check_party(&msg, "bob", true).is_err());
        msg.target_user_list.clear();
        msg.need_read_receipt = false;
        assert_eq!(
            check_party(&msg, "bob", true).unwrap_err().code,
            codes::ERR_SVR_INVALID_PARAMS
        );
    }
}
