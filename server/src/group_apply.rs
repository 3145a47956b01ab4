//! Join applications: a join to a group whose add option is `auth` becomes an application that
//! the owner and administrators see (`GroupNotifyPush` JOIN_APPLICATION online, and in
//! `get_group_application_list` at any time), and accept or refuse. The applicant is told the
//! outcome (APPLICATION_PROCESSED); an accepted applicant joins like a self-join (tips, change
//! log). Handled applications stay listed with their outcome until the group is dismissed.
//!
//! **Read state.** Each user has one read marker (a time, durable, written by
//! `set_group_application_read` through the commit task). The list answers `unread_count` by
//! one rule ([`is_unread`]): an application to a group the user owns or administers, still
//! pending, made after the marker. A new application raises it; one handled by anyone (another
//! administrator) leaves it. The engine keeps no copy: every device reads the list, and so the
//! count, from here.

use chime_proto::codes;
use chime_proto::pb::{self, response::Kind as RespKind};
use prost::Message as _;

use crate::commit::{Core, Effect, now_ms};
use crate::community::records::Get;
use crate::error::{ApiError, ApiResult, StoreError};
use crate::groups::{ERR_SVR_GROUP_ALREADY_PROCESSED, GroupState, role};
use crate::keys::{self, Key, tag};
use crate::queries::member;
use crate::registry::push_frame;
use crate::store::Store;
use crate::txn::Txn;

/// Application status values of `pb::GroupApplication::handle_status`.
pub mod status {
    /// Waiting for the owner or an administrator.
    pub const PENDING: i32 = 0;
    /// Accepted: the applicant joined.
    pub const ACCEPTED: i32 = 1;
    /// Refused.
    pub const REFUSED: i32 = 2;
}

/// The key of `user`'s application to `group_id`.
pub fn application_key(app: u64, group_id: &str, user: &str) -> Vec<u8> {
    Key::new(tag::GROUP_APPLICATION, app)
        .s(group_id.as_bytes())
        .s(user.as_bytes())
        .done()
}

/// The key of `user`'s application read marker.
pub fn read_marker_key(app: u64, user: &str) -> Vec<u8> {
    Key::new(tag::GROUP_APPLICATION_READ, app)
        .s(user.as_bytes())
        .done()
}

/// `user`'s read marker (ms; 0 when never set).
pub(crate) fn read_marker(
    r: &(impl Get + ?Sized),
    app: u64,
    user: &str,
) -> Result<i64, StoreError> {
    Ok(r.get_raw(&read_marker_key(app, user))?
        .and_then(|v| keys::be_u64(&v, 0))
        .map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX)))
}

/// The one unread rule: pending and made after the reader's marker (the list holds only the
/// applications the reader handles).
pub fn is_unread(a: &pb::GroupApplication, read_ms: i64) -> bool {
    a.handle_status == status::PENDING && a.add_time_ms > read_ms
}

/// The time of a new application: now, but after every read marker of the staff who will see
/// it, so that an application made in the millisecond of a read still counts as unread.
fn application_time(txn: &Txn<'_>, app: u64, staff: &[&String]) -> Result<i64, StoreError> {
    let mut t = now_ms();
    for u in staff {
        t = t.max(read_marker(txn, app, u)?.saturating_add(1));
    }
    Ok(t)
}

/// `GetGroupApplications`: the applications to every group `user` owns or administers, newest
/// first, with the unread count of [`is_unread`].
pub fn list(store: &dyn Store, app: u64, user: &str) -> ApiResult<RespKind> {
    let (lo, hi) = Key::new(tag::JOINED, app).s(user.as_bytes()).prefix_range();
    let prefix = lo.len();
    let mut out = Vec::new();
    for (k, _) in store.scan(&lo, &hi, usize::MAX, false)? {
        let Some(group_id) = keys::trailing_str(&k, prefix) else {
            continue;
        };
        let Some((_, m)) = member(store, app, &group_id, user)? else {
            continue;
        };
        if m.role != role::OWNER && m.role != role::ADMIN {
            continue;
        }
        let (alo, ahi) = Key::new(tag::GROUP_APPLICATION, app)
            .s(group_id.as_bytes())
            .prefix_range();
        for (_, v) in store.scan(&alo, &ahi, usize::MAX, false)? {
            out.push(pb::GroupApplication::decode(&v[..]).map_err(StoreError::from)?);
        }
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.add_time_ms));
    let read_time_ms = read_marker(store, app, user)?;
    let unread = out.iter().filter(|a| is_unread(a, read_time_ms)).count();
    Ok(RespKind::GetGroupApplications(
        pb::GetGroupApplicationsResp {
            applications: out,
            unread_count: u32::try_from(unread).unwrap_or(u32::MAX),
            read_time_ms,
        },
    ))
}

fn notify(
    fx: &mut Vec<Effect>,
    app: u64,
    to: &str,
    kind: pb::GroupNotifyKind,
    op_user: &str,
    a: &pb::GroupApplication,
) {
    fx.push(Effect::Push {
        app,
        user: to.to_owned(),
        frame: push_frame(pb::push::Kind::GroupNotify(pb::GroupNotifyPush {
            kind: kind as i32,
            group_id: a.group_id.clone(),
            op_user: op_user.to_owned(),
            application: Some(a.clone()),
            ..Default::default()
        })),
        skip: 0,
    });
}

impl Core {
    /// Records `user`'s application to `g` and tells the owner and administrators.
    pub(crate) fn apply_to_join(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        user: &str,
        g: &GroupState,
        message: &str,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<()> {
        if message.len() > 300 {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_INVALID_PARAMS,
                "message longer than 300 bytes",
            ));
        }
        let staff: Vec<&String> = std::iter::once(&g.info.owner)
            .chain(g.admins.iter())
            .filter(|u| g.members.contains_key(*u))
            .collect();
        let a = pb::GroupApplication {
            group_id: g.info.group_id.clone(),
            from_user: user.to_owned(),
            add_msg: message.to_owned(),
            add_time_ms: application_time(txn, app, &staff)?,
            handle_status: status::PENDING,
            ..Default::default()
        };
        txn.put(
            application_key(app, &g.info.group_id, user),
            a.encode_to_vec(),
        );
        for to in staff {
            notify(
                fx,
                app,
                to,
                pb::GroupNotifyKind::GroupNotifyJoinApplication,
                user,
                &a,
            );
        }
        Ok(())
    }

    /// `SetGroupApplicationRead`: `user`'s read marker moves to now (never back), so every
    /// application listed so far is read.
    pub(crate) fn set_group_application_read(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        user: &str,
    ) -> ApiResult<RespKind> {
        let now = now_ms().max(read_marker(txn, app, user)?);
        txn.put(
            read_marker_key(app, user),
            u64::try_from(now).unwrap_or(0).to_be_bytes().to_vec(),
        );
        Ok(RespKind::SetGroupApplicationRead(
            pb::SetGroupApplicationReadResp {},
        ))
    }

    pub(crate) fn handle_group_application(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        op: &str,
        req: pb::HandleGroupApplicationReq,
        skip: u64,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let g = self.existing(txn, app, &req.group_id)?;
        if !g.is_staff(op) && op != self.tunables.admin_identifier {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "only the owner or an administrator handles applications",
            ));
        }
        let key = application_key(app, &req.group_id, &req.from_user);
        let Some(raw) = txn.get(&key)? else {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_INVALID_PARAMS,
                format!("no application from {}", req.from_user),
            ));
        };
        let mut a =
            pb::GroupApplication::decode(&raw[..]).map_err(crate::error::StoreError::from)?;
        if a.handle_status != status::PENDING {
            return Err(ApiError::new(
                ERR_SVR_GROUP_ALREADY_PROCESSED,
                "the application was already handled",
            ));
        }
        if req.accept {
            if g.members.contains_key(&req.from_user) {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_ALREADY_MEMBER,
                    "already a member",
                ));
            }
            Self::check_room(&g, 1)?;
            Self::check_not_banned(txn, app, &req.group_id, &req.from_user)?;
        }
        a.handle_status = if req.accept {
            status::ACCEPTED
        } else {
            status::REFUSED
        };
        a.handler = op.to_owned();
        a.handle_msg = req.reason;
        txn.put(key, a.encode_to_vec());
        if req.accept {
            self.admit_members(
                txn,
                app,
                &g,
                op,
                std::slice::from_ref(&req.from_user),
                None,
                skip,
                fx,
            )?;
        }
        notify(
            fx,
            app,
            &req.from_user,
            pb::GroupNotifyKind::GroupNotifyApplicationProcessed,
            op,
            &a,
        );
        Ok(RespKind::HandleGroupApplication(
            pb::HandleGroupApplicationResp {},
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(status: i32, add_time_ms: i64) -> pb::GroupApplication {
        pb::GroupApplication {
            handle_status: status,
            add_time_ms,
            ..Default::default()
        }
    }

    #[test]
    fn unread_means_pending_and_after_the_marker() {
        assert!(is_unread(&app(status::PENDING, 5), 0));
        assert!(is_unread(&app(status::PENDING, 5), 4));
        assert!(!is_unread(&app(status::PENDING, 5), 5));
        assert!(!is_unread(&app(status::ACCEPTED, 5), 0));
        assert!(!is_unread(&app(status::REFUSED, 5), 0));
    }
}
