//! The planner: turns one stored message into the deliveries it causes. Runs on the blocking
//! pool, after the message is durable, never on the commit path: it reads the receivers (the C2C
//! peer, or the group's members / the targeted ones), skips those with a foreground connection
//! or no registered device, reads each remaining receiver's receive options, DND window and
//! badge, and asks the [`builder`](super::builder) for each device's notification.

use chime_proto::pb;
use prost::Message as _;

use super::Job;
use super::builder::{self, Conversation, Receiver};
use super::devices::{self, Device};
use super::providers::{Delivery, Providers};
use crate::Shared;
use crate::error::{ApiError, StoreError};
use crate::keys::{self, Key, tag};
use crate::store::Store;

/// Most sync pages read to count a user's total unread.
const MAX_UNREAD_PAGES: usize = 100;

/// The receivers of `msg` other than its sender.
fn receivers(store: &dyn Store, app: u64, msg: &pb::Message) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = match msg.conv_type() {
        pb::ConvType::C2c => vec![msg.receiver.clone()],
        pb::ConvType::Group => {
            let members = crate::queries::load_members(store, app, &msg.group_id)?;
            let members = members.into_iter().map(|(_, m)| m.user_id);
            if msg.target_user_list.is_empty() {
                members.collect()
            } else {
                members
                    .filter(|u| msg.target_user_list.contains(u))
                    .collect()
            }
        }
        pb::ConvType::Unspecified => Vec::new(),
    };
    out.retain(|u| *u != msg.sender);
    Ok(out)
}

/// The user's global receive option (the DND window), if set.
fn all_recv_opt(
    store: &dyn Store,
    app: u64,
    user: &str,
) -> Result<Option<pb::AllRecvOpt>, StoreError> {
    let key = Key::new(tag::USER_CONV_SETTINGS, app)
        .s(user.as_bytes())
        .done();
    match store.get(&key)? {
        None => Ok(None),
        Some(raw) => Ok(pb::UserConvSettings::decode(&raw[..])?.all_recv_opt),
    }
}

/// The user's total unread as the server counts it: the sum over conversations whose receive
/// option is `receive` (DND-muted ones left out, as the engine's total does).
pub fn total_unread(shared: &Shared, app: u64, user: &str) -> Result<u32, ApiError> {
    let mut req = pb::SyncReq::default();
    let mut total = 0u32;
    for _ in 0..MAX_UNREAD_PAGES {
        let kind =
            crate::conversations::sync(shared.store.as_ref(), &shared.tunables, app, user, &req)?;
        let pb::response::Kind::Sync(page) = kind else {
            break;
        };
        let counted: u32 = page
            .conversations
            .iter()
            .filter(|c| {
                c.settings
                    .as_ref()
                    .is_none_or(|s| s.recv_opt == builder::recv_opt::RECEIVE)
            })
            .map(|c| c.unread_count)
            .sum();
        total = total.saturating_add(counted);
        if !page.has_more {
            break;
        }
        req.cursor = page.cursor;
    }
    Ok(total)
}

/// Every delivery `job` causes (none when nobody is to be pushed). A failed read is logged and
/// loses only this message's pushes.
pub fn plan(shared: &Shared, providers: &Providers, job: &Job) -> Vec<Delivery> {
    match try_plan(shared, providers, job) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(app = job.app, "offline push not planned: {}", e.desc);
            Vec::new()
        }
    }
}

fn try_plan(shared: &Shared, providers: &Providers, job: &Job) -> Result<Vec<Delivery>, ApiError> {
    let msg = pb::Message::decode(&job.encoded[..]).map_err(StoreError::from)?;
    let disabled = msg
        .offline_push_info
        .as_ref()
        .is_some_and(|i| i.disable_push);
    if msg.online_user_only || disabled {
        return Ok(Vec::new());
    }
    let app = job.app;
    let Some(app_key) = shared.apps.get(&app) else {
        return Ok(Vec::new());
    };
    let store = shared.store.as_ref();
    let is_group = msg.conv_type() == pb::ConvType::Group;
    let group_name = if is_group {
        crate::queries::group_info(store, app, &msg.group_id)?
            .map(|g| g.name)
            .unwrap_or_default()
    } else {
        String::new()
    };
    let conv = Conversation {
        group_name: &group_name,
    };
    let now_secs = crate::usersig::now_secs();
    let mut out = Vec::new();
    for user in receivers(store, app, &msg)? {
        let devices: Vec<Device> = devices::devices_of(store, app, &user)?
            .into_iter()
            .filter(|d| providers.contains_key(&d.business_id))
            .collect();
        let foreground = shared
            .push
            .in_foreground(&shared.registry, app, &user, job.at_us);
        if devices.is_empty() || foreground {
            continue;
        }
        let conv_key = if is_group {
            keys::group_conv(&msg.group_id)
        } else {
            keys::c2c_conv(&msg.sender, &user)
        };
        let settings = crate::conversations::load_settings(store, app, &user, &conv_key)?;
        let to = Receiver {
            user: &user,
            conv_recv_opt: settings.recv_opt,
            all_recv_opt: all_recv_opt(store, app, &user)?,
            badge: Some(0),
        };
        // The decision is the same for every device of the user.
        let template = match builder::build(&msg, &conv, &to, now_secs) {
            Ok(n) => n,
            Err(skip) => {
                tracing::debug!(app, user, msg_id = %msg.msg_id, ?skip, "no offline push");
                continue;
            }
        };
        let mut server_total: Option<u32> = None;
        for device in devices {
            let mut notification = template.clone();
            if notification.badge.is_some() {
                let badge = match shared.push.app_badge(app, &user, &device) {
                    Some(b) => b,
                    None => match server_total {
                        Some(t) => t,
                        None => {
                            let t = total_unread(shared, app, &user)?;
                            server_total = Some(t);
                            t
                        }
                    },
                };
                notification.badge = Some(badge);
            }
            out.push(Delivery {
                app,
                app_key: app_key.clone(),
                user: user.clone(),
                device,
                notification,
            });
        }
    }
    Ok(out)
}
