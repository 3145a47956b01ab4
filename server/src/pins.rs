//! Pinned group messages: the group's owner and admins pin up to [`MAX_PINNED`] stored messages;
//! every member reads the list and is told of each pin and unpin (`GroupPinPush`).
//!
//! Key: `P app group` → encoded `pb::GetPinnedGroupMessagesResp` (newest pin first). The pinned
//! copy of a message is the stored one at pin time; a message revoked later stays pinned with its
//! revoked state when the list is read (the list is refreshed from the store on read).

use chime_proto::pb::{self, response::Kind as RespKind};
use chime_proto::{codes, ids};
use prost::Message as _;

use crate::commit::{Core, Effect, now_ms};
use crate::error::{ApiError, ApiResult, StoreError};
use crate::keys::{self, Key, tag};
use crate::registry::push_frame;
use crate::store::Store;
use crate::txn::Txn;

/// Most pinned messages per group (the seed's limit).
pub const MAX_PINNED: usize = 10;

fn pins_key(app: u64, group_id: &str) -> Vec<u8> {
    Key::new(tag::PINNED, app).s(group_id.as_bytes()).done()
}

fn decode(raw: Option<Vec<u8>>) -> ApiResult<pb::GetPinnedGroupMessagesResp> {
    Ok(match raw {
        Some(v) => pb::GetPinnedGroupMessagesResp::decode(&v[..]).map_err(StoreError::from)?,
        None => pb::GetPinnedGroupMessagesResp::default(),
    })
}

/// Stages `PinGroupMessage`.
pub(crate) fn pin(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    req: pb::PinGroupMessageReq,
    skip: u64,
    fx: &mut Vec<Effect>,
) -> ApiResult<RespKind> {
    if !ids::is_valid_group_id(&req.group_id) {
        return Err(ApiError::new(
            codes::ERR_INVALID_GROUP_ID,
            "invalid group id",
        ));
    }
    // A topic's pins are its own; its community's members and managers apply.
    let governing = crate::community::membership_group(&*txn, app, &req.group_id)?;
    let Some(g) = core.group(txn, app, &governing)? else {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_NOT_FOUND,
            "no such group",
        ));
    };
    let owner = g.info.owner.clone();
    let members: Vec<String> = g.members.keys().cloned().collect();
    if !crate::lifecycle::is_group_manager(core, txn, app, &governing, &owner, user)? {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_PERMISSION_DENIED,
            "only the group owner and admins pin messages",
        ));
    }
    let conv = keys::group_conv(&req.group_id);
    let raw = txn.get(&Key::new(tag::MSG, app).s(&conv).n(req.seq).done())?;
    let m = match raw {
        Some(v) => pb::Message::decode(&v[..]).map_err(StoreError::from)?,
        None => {
            return Err(ApiError::new(
                crate::lifecycle::ERR_MSG_NOT_FOUND,
                "no such message",
            ));
        }
    };
    if !req.msg_id.is_empty() && m.msg_id != req.msg_id {
        return Err(ApiError::new(
            crate::lifecycle::ERR_MSG_NOT_FOUND,
            "no such message",
        ));
    }
    let key = pins_key(app, &req.group_id);
    let mut list = decode(txn.get(&key)?)?;
    let at = list
        .pinned
        .iter()
        .position(|p| p.message.as_ref().is_some_and(|x| x.seq == m.seq));
    let entry = match (req.pin, at) {
        (true, Some(_)) | (false, None) => {
            return Ok(RespKind::PinGroupMessage(pb::PinGroupMessageResp {}));
        }
        (true, None) => {
            if list.pinned.len() >= MAX_PINNED {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_INVALID_PARAMS,
                    format!("at most {MAX_PINNED} pinned messages per group"),
                ));
            }
            let p = pb::PinnedMessage {
                message: Some(m),
                pinner: user.to_owned(),
                pin_time_ms: now_ms(),
            };
            list.pinned.insert(0, p.clone());
            p
        }
        (false, Some(i)) => list.pinned.remove(i),
    };
    if list.pinned.is_empty() {
        txn.del(key);
    } else {
        txn.put(key, list.encode_to_vec());
    }
    let frame = push_frame(pb::push::Kind::GroupPin(pb::GroupPinPush {
        group_id: req.group_id.clone(),
        pinned: Some(entry),
        is_pinned: req.pin,
        op_user: user.to_owned(),
    }));
    for u in members {
        fx.push(Effect::Push {
            app,
            user: u,
            frame: frame.clone(),
            skip,
        });
    }
    Ok(RespKind::PinGroupMessage(pb::PinGroupMessageResp {}))
}

/// `GetPinnedGroupMessages`: the group's pinned messages as stored now (members only).
pub fn list(
    store: &dyn Store,
    app: u64,
    user: &str,
    req: &pb::GetPinnedGroupMessagesReq,
) -> ApiResult<RespKind> {
    if !ids::is_valid_group_id(&req.group_id) {
        return Err(ApiError::new(
            codes::ERR_INVALID_GROUP_ID,
            "invalid group id",
        ));
    }
    let governing = crate::community::membership_group(store, app, &req.group_id)?;
    let member = Key::new(tag::MEMBER, app)
        .s(governing.as_bytes())
        .s(user.as_bytes())
        .done();
    if store.get(&member)?.is_none() {
        let exists = store
            .get(&Key::new(tag::GROUP, app).s(governing.as_bytes()).done())?
            .is_some();
        return Err(if exists {
            ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "not a member of the group",
            )
        } else {
            ApiError::new(codes::ERR_SVR_GROUP_NOT_FOUND, "no such group")
        });
    }
    let mut list = decode(store.get(&pins_key(app, &req.group_id))?)?;
    let conv = keys::group_conv(&req.group_id);
    for p in &mut list.pinned {
        let Some(seq) = p.message.as_ref().map(|m| m.seq) else {
            continue;
        };
        if let Some(v) = store.get(&Key::new(tag::MSG, app).s(&conv).n(seq).done())? {
            p.message = Some(pb::Message::decode(&v[..]).map_err(StoreError::from)?);
        }
    }
    Ok(RespKind::GetPinnedGroupMessages(list))
}
