//! Group custom attributes and group counters: small key/value maps per group that members
//! write and every member is told about (`GroupNotifyPush` ATTRIBUTES / COUNTERS).
//!
//! Both are staged by the single commit thread, so concurrent writes from many engines are
//! serialized: an increase is a read-modify-write no other write can interleave with, and no
//! update is lost. The map arithmetic and limits are pure functions ([`apply_attributes`],
//! [`apply_counters`]), unit-tested below.

use std::collections::BTreeMap;

use chime_proto::codes;
use chime_proto::pb::{self, response::Kind as RespKind};
use prost::Message as _;

use crate::commit::{Core, Effect};
use crate::error::{ApiError, ApiResult};
use crate::groups::GroupState;
use crate::keys::{Key, tag};
use crate::registry::push_frame;
use crate::store::Store;
use crate::txn::Txn;

/// Most attributes per group.
pub const MAX_ATTRIBUTES: usize = 16;
/// Longest attribute key (bytes).
pub const MAX_ATTRIBUTE_KEY_BYTES: usize = 32;
/// Longest attribute value (bytes).
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 4096;
/// Largest total of keys and values (bytes).
pub const MAX_ATTRIBUTES_TOTAL_BYTES: usize = 16 * 1024;
/// Most counters per group.
pub const MAX_COUNTERS: usize = 20;
/// Longest counter key (bytes).
pub const MAX_COUNTER_KEY_BYTES: usize = 128;

fn invalid(desc: String) -> ApiError {
    ApiError::new(codes::ERR_SVR_GROUP_INVALID_PARAMS, desc)
}

/// The attributes after `op`, or 10004 when a limit is broken (nothing changes then).
pub fn apply_attributes(
    current: &BTreeMap<String, String>,
    op: pb::GroupAttrOp,
    attrs: BTreeMap<String, String>,
    keys: &[String],
) -> ApiResult<BTreeMap<String, String>> {
    let mut next = match op {
        pb::GroupAttrOp::Init => BTreeMap::new(),
        pb::GroupAttrOp::Set | pb::GroupAttrOp::Delete => current.clone(),
        pb::GroupAttrOp::Unspecified => return Err(invalid("op is required".into())),
    };
    if op == pb::GroupAttrOp::Delete {
        if keys.is_empty() {
            next.clear();
        }
        for k in keys {
            next.remove(k);
        }
        return Ok(next);
    }
    for (k, v) in attrs {
        if k.is_empty() || k.len() > MAX_ATTRIBUTE_KEY_BYTES {
            return Err(invalid(format!("attribute key {k:?}: 1..=32 bytes")));
        }
        if v.len() > MAX_ATTRIBUTE_VALUE_BYTES {
            return Err(invalid(format!("attribute {k:?}: value over 4096 bytes")));
        }
        next.insert(k, v);
    }
    if next.len() > MAX_ATTRIBUTES {
        return Err(invalid(format!("more than {MAX_ATTRIBUTES} attributes")));
    }
    let total: usize = next.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_ATTRIBUTES_TOTAL_BYTES {
        return Err(invalid("attributes over 16 KB in all".into()));
    }
    Ok(next)
}

/// The counters after `op` and the changed keys with their new values, or 10004.
pub fn apply_counters(
    current: &BTreeMap<String, i64>,
    op: pb::GroupCounterOp,
    values: &BTreeMap<String, i64>,
) -> ApiResult<(BTreeMap<String, i64>, BTreeMap<String, i64>)> {
    if values.is_empty() {
        return Err(invalid("counters is empty".into()));
    }
    let mut next = current.clone();
    let mut changed = BTreeMap::new();
    for (k, v) in values {
        if k.is_empty() || k.len() > MAX_COUNTER_KEY_BYTES {
            return Err(invalid(format!("counter key {k:?}: 1..=128 bytes")));
        }
        let old = next.get(k).copied().unwrap_or(0);
        let new = match op {
            pb::GroupCounterOp::Set => *v,
            pb::GroupCounterOp::Increase => old
                .checked_add(*v)
                .ok_or_else(|| invalid(format!("counter {k:?} overflows")))?,
            pb::GroupCounterOp::Decrease => old
                .checked_sub(*v)
                .ok_or_else(|| invalid(format!("counter {k:?} overflows")))?,
            pb::GroupCounterOp::Unspecified => return Err(invalid("op is required".into())),
        };
        next.insert(k.clone(), new);
        changed.insert(k.clone(), new);
    }
    if next.len() > MAX_COUNTERS {
        return Err(invalid(format!("more than {MAX_COUNTERS} counters")));
    }
    Ok((next, changed))
}

fn attrs_key(app: u64, group_id: &str) -> Vec<u8> {
    Key::new(tag::GROUP_ATTRS, app)
        .s(group_id.as_bytes())
        .done()
}

fn counters_key(app: u64, group_id: &str) -> Vec<u8> {
    Key::new(tag::GROUP_COUNTERS, app)
        .s(group_id.as_bytes())
        .done()
}

fn decode_attrs(raw: Option<Vec<u8>>) -> ApiResult<BTreeMap<String, String>> {
    Ok(match raw {
        None => BTreeMap::new(),
        Some(v) => {
            pb::GetGroupAttributesResp::decode(&v[..])
                .map_err(crate::error::StoreError::from)?
                .attributes
        }
    })
}

fn decode_counters(raw: Option<Vec<u8>>) -> ApiResult<BTreeMap<String, i64>> {
    Ok(match raw {
        None => BTreeMap::new(),
        Some(v) => {
            pb::GetGroupCountersResp::decode(&v[..])
                .map_err(crate::error::StoreError::from)?
                .counters
        }
    })
}

/// Keeps only `keys` of `map` (all when `keys` is empty).
fn select<V: Clone>(map: BTreeMap<String, V>, keys: &[String]) -> BTreeMap<String, V> {
    if keys.is_empty() {
        return map;
    }
    map.into_iter().filter(|(k, _)| keys.contains(k)).collect()
}

fn notify_members(fx: &mut Vec<Effect>, app: u64, g: &GroupState, push: pb::GroupNotifyPush) {
    let frame = push_frame(pb::push::Kind::GroupNotify(push));
    for user in g.members.keys() {
        fx.push(Effect::Push {
            app,
            user: user.clone(),
            frame: frame.clone(),
            skip: 0,
        });
    }
}

impl Core {
    fn kv_group(
        &mut self,
        txn: &Txn<'_>,
        app: u64,
        op: &str,
        group_id: &str,
    ) -> ApiResult<std::sync::Arc<GroupState>> {
        let g = self.existing(txn, app, group_id)?;
        crate::group_admin::rules::member(&g, op, op == self.tunables.admin_identifier)?;
        Ok(g)
    }

    pub(crate) fn group_attributes(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        op: &str,
        req: pb::GroupAttributesReq,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let g = self.kv_group(txn, app, op, &req.group_id)?;
        let key = attrs_key(app, &req.group_id);
        let current = decode_attrs(txn.get(&key)?)?;
        let op_kind = req.op();
        let next = apply_attributes(&current, op_kind, req.attributes, &req.keys)?;
        if next != current || op_kind == pb::GroupAttrOp::Init {
            let value = pb::GetGroupAttributesResp {
                attributes: next.clone(),
            };
            txn.put(key, value.encode_to_vec());
            notify_members(
                fx,
                app,
                &g,
                pb::GroupNotifyPush {
                    kind: pb::GroupNotifyKind::GroupNotifyAttributes as i32,
                    group_id: req.group_id,
                    op_user: op.to_owned(),
                    attributes: next.clone(),
                    ..Default::default()
                },
            );
        }
        Ok(RespKind::GroupAttributes(pb::GroupAttributesResp {
            attributes: next,
        }))
    }

    pub(crate) fn group_counters(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        op: &str,
        req: pb::GroupCountersReq,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let g = self.kv_group(txn, app, op, &req.group_id)?;
        let key = counters_key(app, &req.group_id);
        let current = decode_counters(txn.get(&key)?)?;
        let (next, changed) = apply_counters(&current, req.op(), &req.counters)?;
        txn.put(
            key,
            pb::GetGroupCountersResp { counters: next }.encode_to_vec(),
        );
        notify_members(
            fx,
            app,
            &g,
            pb::GroupNotifyPush {
                kind: pb::GroupNotifyKind::GroupNotifyCounters as i32,
                group_id: req.group_id,
                op_user: op.to_owned(),
                counters: changed.clone(),
                ..Default::default()
            },
        );
        Ok(RespKind::GroupCounters(pb::GroupCountersResp {
            counters: changed,
        }))
    }
}

/// `GetGroupAttributes` (read path): members only.
pub fn get_attributes(
    store: &dyn Store,
    app: u64,
    user: &str,
    req: &pb::GetGroupAttributesReq,
) -> ApiResult<RespKind> {
    crate::group_reads::require_member(store, app, &req.group_id, user)?;
    let all = decode_attrs(store.get(&attrs_key(app, &req.group_id))?)?;
    Ok(RespKind::GetGroupAttributes(pb::GetGroupAttributesResp {
        attributes: select(all, &req.keys),
    }))
}

/// `GetGroupCounters` (read path): members only.
pub fn get_counters(
    store: &dyn Store,
    app: u64,
    user: &str,
    req: &pb::GetGroupCountersReq,
) -> ApiResult<RespKind> {
    crate::group_reads::require_member(store, app, &req.group_id, user)?;
    let all = decode_counters(store.get(&counters_key(app, &req.group_id))?)?;
    Ok(RespKind::GetGroupCounters(pb::GetGroupCountersResp {
        counters: select(all, &req.keys),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map<V: Clone>(pairs: &[(&str, V)]) -> BTreeMap<String, V> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn attributes_init_set_delete() {
        let cur = map(&[("a", "1".to_owned()), ("b", "2".to_owned())]);
        let init = apply_attributes(
            &cur,
            pb::GroupAttrOp::Init,
            map(&[("c", "3".to_owned())]),
            &[],
        )
        .unwrap();
        assert_eq!(init, map(&[("c", "3".to_owned())]));
        let set = apply_attributes(
            &cur,
            pb::GroupAttrOp::Set,
            map(&[("a", "9".to_owned())]),
            &[],
        )
        .unwrap();
        assert_eq!(set, map(&[("a", "9".to_owned()), ("b", "2".to_owned())]));
        let del = apply_attributes(
            &cur,
            pb::GroupAttrOp::Delete,
            BTreeMap::new(),
            &["a".into()],
        )
        .unwrap();
        assert_eq!(del, map(&[("b", "2".to_owned())]));
        let all = apply_attributes(&cur, pb::GroupAttrOp::Delete, BTreeMap::new(), &[]).unwrap();
        assert!(all.is_empty());
    }

    #[test]
    fn attribute_limits_are_10004() {
        let many: BTreeMap<String, String> =
            (0..17).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        let e = apply_attributes(&BTreeMap::new(), pb::GroupAttrOp::Set, many, &[]).unwrap_err();
        assert_eq!(e.code, 10004);
        let long = map(&[(&*"k".repeat(33), "v".to_owned())]);
        let e = apply_attributes(&BTreeMap::new(), pb::GroupAttrOp::Set, long, &[]).unwrap_err();
        assert_eq!(e.code, 10004);
    }

    #[test]
    fn counters_set_increase_decrease() {
        let cur = map(&[("x", 5i64)]);
        let (next, changed) = apply_counters(
            &cur,
            pb::GroupCounterOp::Increase,
            &map(&[("x", 2), ("y", 3)]),
        )
        .unwrap();
        assert_eq!(next, map(&[("x", 7), ("y", 3)]));
        assert_eq!(changed, next);
        let (next, changed) =
            apply_counters(&next, pb::GroupCounterOp::Decrease, &map(&[("y", 10)])).unwrap();
        assert_eq!(next, map(&[("x", 7), ("y", -7)]));
        assert_eq!(changed, map(&[("y", -7)]));
        let (next, _) = apply_counters(&next, pb::GroupCounterOp::Set, &map(&[("x", 0)])).unwrap();
        assert_eq!(next["x"], 0);
        let e = apply_counters(
            &map(&[("x", i64::MAX)]),
            pb::GroupCounterOp::Increase,
            &map(&[("x", 1)]),
        )
        .unwrap_err();
        assert_eq!(e.code, 10004);
    }
}
