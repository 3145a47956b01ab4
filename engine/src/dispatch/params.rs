//! Parameter readers shared by every area of the dispatch table: one place decides how a missing
//! or mistyped field is reported (6017 / 7002 / 7003).

use chime_proto::pb;
use chime_proto::{codes, ids};
use serde_json::Value;

use crate::{ApiError, Result, codec};

pub(super) fn mailbox(e: actix::MailboxError) -> ApiError {
    ApiError::new(codes::ERR_SDK_INTERNAL, format!("engine stopped: {e}"))
}

pub(super) fn req_str(p: &Value, f: &str) -> Result<String> {
    p.get(f)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::invalid_param(format!("{f} (string) is required")))
}

pub(super) fn opt_str(p: &Value, f: &str) -> Result<Option<String>> {
    match p.get(f) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid_param(format!("{f} must be a string"))),
    }
}

pub(super) fn opt_bool(p: &Value, f: &str) -> Result<bool> {
    match p.get(f) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::invalid_param(format!("{f} must be a boolean"))),
    }
}

pub(super) fn opt_u64(p: &Value, f: &str) -> Result<u64> {
    match p.get(f) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| ApiError::invalid_param(format!("{f} must be a non-negative integer"))),
    }
}

pub(super) fn user_id(p: &Value, f: &str) -> Result<String> {
    let u = req_str(p, f)?;
    if !ids::is_valid_user_id(&u) {
        return Err(ApiError::new(
            codes::ERR_INVALID_USER_ID,
            format!("invalid {f}"),
        ));
    }
    Ok(u)
}

pub(super) fn group_id(p: &Value, f: &str) -> Result<String> {
    let g = req_str(p, f)?;
    if !ids::is_valid_group_id(&g) {
        return Err(ApiError::new(
            codes::ERR_INVALID_GROUP_ID,
            format!("invalid {f}"),
        ));
    }
    Ok(g)
}

pub(super) fn priority(p: &Value) -> Result<Option<i32>> {
    match opt_str(p, "priority")? {
        None => Ok(None),
        Some(s) => codec::priority_from_str(&s)
            .map(Some)
            .ok_or_else(|| ApiError::invalid_param("priority must be default|high|normal|low")),
    }
}

pub(super) fn c2c(target: String) -> pb::ConvRef {
    pb::ConvRef {
        conv_type: pb::ConvType::C2c as i32,
        target,
    }
}

pub(super) fn group(target: String) -> pb::ConvRef {
    pb::ConvRef {
        conv_type: pb::ConvType::Group as i32,
        target,
    }
}
