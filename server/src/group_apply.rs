//! Join applications: a join to a group whose add option is `auth` becomes an application that
//! the owner and administrators see (`GroupNotifyPush` JOIN_APPLICATION online, and in
//! `get_group_application_list` at any time), and accept or refuse. The applicant is told the
//! outcome (APPLICATION_PROCESSED); an accepted applicant joins like a self-join (tips, change
//! log). Handled applications stay listed with their outcome until the group is dismissed.

use chime_proto::codes;
use chime_proto::pb::{self, response::Kind as RespKind};
use prost::Message as _;

use crate::commit::{Core, Effect, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::groups::{ERR_SVR_GROUP_ALREADY_PROCESSED, GroupState};
use crate::keys::{Key, tag};
use crate::registry::push_frame;
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
        let a = pb::GroupApplication {
            group_id: g.info.group_id.clone(),
            from_user: user.to_owned(),
            add_msg: message.to_owned(),
            add_time_ms: now_ms(),
            handle_status: status::PENDING,
            ..Default::default()
        };
        txn.put(
            application_key(app, &g.info.group_id, user),
            a.encode_to_vec(),
        );
        let staff = std::iter::once(&g.info.owner).chain(g.admins.iter());
        for to in staff.filter(|u| g.members.contains_key(*u)) {
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
