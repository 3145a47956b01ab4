//! Profiles: `profile/portrait_set` with the seed's `Tag_Profile_*` tags, as the user's own
//! profile write ([`Op::Relation`] set-profile).

use chime_proto::codes;
use chime_proto::pb;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Ctx, RestResult, parse};
use crate::commit::Op;
use crate::error::ApiError;

/// Prefix of the custom profile tags.
const CUSTOM_PREFIX: &str = "Tag_Profile_Custom_";

#[derive(Deserialize)]
struct Item {
    #[serde(rename = "Tag")]
    tag: String,
    #[serde(rename = "Value")]
    value: Value,
}

#[derive(Deserialize)]
struct SetReq {
    #[serde(rename = "From_Account")]
    from: String,
    #[serde(rename = "ProfileItem")]
    items: Vec<Item>,
}

fn bad(tag: &str, want: &str) -> ApiError {
    ApiError::new(
        codes::ERR_SVR_INVALID_PARAMS,
        format!("{tag}: expected {want}"),
    )
}

fn text(tag: &str, v: &Value) -> Result<String, ApiError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| bad(tag, "a string"))
}

fn number(tag: &str, v: &Value) -> Result<u32, ApiError> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| bad(tag, "an unsigned integer"))
}

/// Folds the seed's profile items into a set-profile request.
fn to_set_profile(items: Vec<Item>) -> Result<pb::SetProfileReq, ApiError> {
    let mut set = pb::SetProfileReq::default();
    for Item { tag, value } in items {
        match tag.as_str() {
            "Tag_Profile_IM_Nick" => set.nick_name = Some(text(&tag, &value)?),
            "Tag_Profile_IM_Image" => set.face_url = Some(text(&tag, &value)?),
            "Tag_Profile_IM_SelfSignature" => set.self_signature = Some(text(&tag, &value)?),
            "Tag_Profile_IM_Gender" => {
                set.gender = Some(match text(&tag, &value)?.as_str() {
                    "Gender_Type_Unknown" => 0,
                    "Gender_Type_Male" => 1,
                    "Gender_Type_Female" => 2,
                    _ => return Err(bad(&tag, "Gender_Type_Unknown|Male|Female")),
                });
            }
            "Tag_Profile_IM_AllowType" => {
                set.allow_type = Some(match text(&tag, &value)?.as_str() {
                    "AllowType_Type_NeedConfirm" => 0,
                    "AllowType_Type_AllowAny" => 1,
                    "AllowType_Type_DenyAny" => 2,
                    _ => return Err(bad(&tag, "AllowType_Type_NeedConfirm|AllowAny|DenyAny")),
                });
            }
            "Tag_Profile_IM_BirthDay" => set.birthday = Some(number(&tag, &value)?),
            "Tag_Profile_IM_Level" => set.level = Some(number(&tag, &value)?),
            "Tag_Profile_IM_Role" => set.role = Some(number(&tag, &value)?),
            custom if custom.starts_with(CUSTOM_PREFIX) => {
                let key = custom[CUSTOM_PREFIX.len()..].to_owned();
                let bytes = match &value {
                    Value::String(s) => s.clone().into_bytes(),
                    Value::Number(n) => n.to_string().into_bytes(),
                    _ => return Err(bad(&tag, "a string or a number")),
                };
                set.custom_info.insert(key, bytes);
            }
            other => {
                return Err(ApiError::new(
                    codes::ERR_SVR_INVALID_PARAMS,
                    format!("unknown profile tag {other:?}"),
                ));
            }
        }
    }
    Ok(set)
}

/// `profile/portrait_set {From_Account, ProfileItem: [{Tag, Value}]}`.
pub(super) async fn set(ctx: &Ctx, body: Value) -> RestResult {
    let req: SetReq = parse(body)?;
    ctx.require_account(&req.from).await?;
    let set = to_set_profile(req.items)?;
    let op = pb::RelationReq {
        op: Some(pb::relation_req::Op::SetProfile(set)),
    };
    ctx.commit(&req.from, Op::Relation(Box::new(op))).await?;
    Ok(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(tag: &str, value: Value) -> Item {
        Item {
            tag: tag.into(),
            value,
        }
    }

    #[test]
    fn seed_tags_map_to_profile_fields() {
        let set = to_set_profile(vec![
            item("Tag_Profile_IM_Nick", "Neo".into()),
            item("Tag_Profile_IM_Gender", "Gender_Type_Female".into()),
            item("Tag_Profile_IM_Level", 7.into()),
            item("Tag_Profile_Custom_Team", "red".into()),
        ])
        .unwrap();
        assert_eq!(set.nick_name.as_deref(), Some("Neo"));
        assert_eq!(set.gender, Some(2));
        assert_eq!(set.level, Some(7));
        assert_eq!(set.custom_info.get("Team"), Some(&b"red".to_vec()));
        assert_eq!(
            to_set_profile(vec![item("Tag_Profile_IM_Level", "x".into())])
                .unwrap_err()
                .code,
            90002
        );
        assert!(
            to_set_profile(vec![item("Tag_Bogus", 1.into())])
                .unwrap_err()
                .desc
                .contains("Tag_Bogus")
        );
    }
}
