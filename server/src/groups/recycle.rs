//! Group recycling: the system ends groups nobody uses any more (Tencent's "group recycled",
//! report type 11), so that an app's abandoned groups do not live forever.
//!
//! The rule (server option `group_recycle_idle_secs`, 0 = never, the default): a group whose
//! last activity — its newest stored message (which includes the `group_tips` of every
//! membership, role and profile change), else its creation — is older than the limit is
//! recycled. An AVChatRoom keeps no history, so it counts as active while it has members.
//! Communities are never recycled automatically (their topics' messages live in other
//! conversations). Operators recycle one group at once with the REST extension
//! `group_open_http_svc/recycle_group`.
//!
//! A scan task ([`spawn`]) looks for idle groups every `group_recycle_scan_secs` off the commit
//! thread, then hands each to the commit task (`GroupOp::Recycle`), which checks the rule again
//! against the current state before ending the group ([`crate::commit::Core::recycle_group`]):
//! a message sent between the scan and the commit keeps the group.

use std::sync::Arc;
use std::time::Duration;

use chime_proto::pb;
use prost::Message as _;

use crate::Shared;
use crate::commit::{Command, Msg, Op, Reply, now_ms};
use crate::community::records::Get;
use crate::error::{ApiResult, StoreError};
use crate::group_admin::GroupOp;
use crate::groups::LIVE_ROOM;
use crate::keys::{self, Key, tag};
use crate::store::Store;

/// Most groups one scan hands to the commit task (the rest wait for the next scan).
const MAX_PER_SCAN: usize = 1000;

/// The time (ms) of the last activity of the group `info`: its newest stored message, else its
/// creation. `r` is the store or a transaction's view of it.
pub(crate) fn last_activity_ms(
    r: &(impl Get + ?Sized),
    app: u64,
    info: &pb::GroupInfo,
) -> ApiResult<i64> {
    let conv = keys::group_conv(&info.group_id);
    let head_key = Key::new(tag::HEAD, app).s(&conv).done();
    let head = r
        .get_raw(&head_key)?
        .and_then(|v| keys::be_u64(&v, 0))
        .unwrap_or(0);
    let mut last = info.create_time_ms;
    if head > 0
        && let Some(raw) = r.get_raw(&Key::new(tag::MSG, app).s(&conv).n(head).done())?
    {
        let msg = pb::Message::decode(&raw[..]).map_err(StoreError::from)?;
        last = last.max(msg.server_time_ms);
    }
    Ok(last)
}

/// Whether the group `info`, last active at `last_ms`, is idle by `cutoff_ms` (inactive since
/// before it) and may be recycled.
pub(crate) fn is_idle(info: &pb::GroupInfo, last_ms: i64, cutoff_ms: i64) -> bool {
    if info.group_type == "Community" {
        return false;
    }
    if info.group_type == LIVE_ROOM && info.member_count > 0 {
        return false;
    }
    last_ms < cutoff_ms
}

/// Splits a `G` key into its app and group id.
fn parse_group_key(key: &[u8]) -> Option<(u64, String)> {
    let app = keys::be_u64(key, 1)?;
    Some((app, keys::trailing_str(key, 9)?))
}

/// The idle groups (app, group id) by `cutoff_ms`, at most `limit`, in key order.
pub fn idle_groups(
    store: &dyn Store,
    cutoff_ms: i64,
    limit: usize,
) -> ApiResult<Vec<(u64, String)>> {
    let lo = vec![tag::GROUP];
    let hi = vec![tag::GROUP + 1];
    let mut out = Vec::new();
    for (k, v) in store.scan(&lo, &hi, usize::MAX, false)? {
        let Some((app, group_id)) = parse_group_key(&k) else {
            continue;
        };
        let Ok(info) = pb::GroupInfo::decode(&v[..]) else {
            continue;
        };
        let last = last_activity_ms(store, app, &info)?;
        if is_idle(&info, last, cutoff_ms) {
            out.push((app, group_id));
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Starts the scan task when `group_recycle_idle_secs` is set.
pub fn spawn(shared: Arc<Shared>) {
    let idle_secs = shared.tunables.group_recycle_idle_secs;
    if idle_secs == 0 {
        return;
    }
    let every = Duration::from_secs(shared.tunables.group_recycle_scan_secs.max(1));
    let idle_ms = i64::try_from(idle_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    tokio::spawn(async move {
        let mut stopping = shared.stopping.clone();
        loop {
            tokio::select! {
                _ = stopping.wait_for(|s| *s) => break,
                _ = tokio::time::sleep(every) => {}
            }
            let cutoff = now_ms().saturating_sub(idle_ms);
            let scan = Arc::clone(&shared);
            let found = tokio::task::spawn_blocking(move || {
                idle_groups(scan.store.as_ref(), cutoff, MAX_PER_SCAN)
            })
            .await;
            let groups = match found {
                Ok(Ok(g)) => g,
                Ok(Err(e)) => {
                    tracing::warn!("group recycle scan failed: {e}");
                    continue;
                }
                Err(e) => {
                    tracing::warn!("group recycle scan task failed: {e}");
                    continue;
                }
            };
            for (app, group_id) in groups {
                tracing::info!(app, group_id = %group_id, "recycling an idle group");
                let op = GroupOp::Recycle {
                    group_id,
                    idle_before: Some(cutoff),
                };
                let cmd = Command {
                    app,
                    user: shared.tunables.admin_identifier.clone(),
                    op: Op::Group(Box::new(op)),
                    reply: Reply::None,
                };
                if shared.commit.send(Msg::Cmd(cmd)).await.is_err() {
                    return;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(t: &str, members: u32) -> pb::GroupInfo {
        pb::GroupInfo {
            group_id: "g".into(),
            group_type: t.into(),
            member_count: members,
            create_time_ms: 1_000,
            ..Default::default()
        }
    }

    #[test]
    fn idle_means_last_activity_before_the_cutoff() {
        assert!(is_idle(&info("Public", 3), 999, 1_000));
        assert!(!is_idle(&info("Public", 3), 1_000, 1_000));
        assert!(is_idle(&info("Work", 1), 5, 6));
        assert!(is_idle(&info("Meeting", 1), 5, 6));
    }

    #[test]
    fn live_rooms_with_members_and_communities_stay() {
        assert!(!is_idle(&info("AVChatRoom", 1), 0, 1_000));
        assert!(is_idle(&info("AVChatRoom", 0), 0, 1_000));
        assert!(!is_idle(&info("Community", 0), 0, 1_000));
    }

    /// A store of a few records.
    struct Records(std::collections::BTreeMap<Vec<u8>, Vec<u8>>);

    impl Get for Records {
        fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.0.get(key).cloned())
        }
    }

    #[test]
    fn last_activity_is_the_newest_message_else_the_creation() {
        let g = info("Public", 2);
        let conv = keys::group_conv("g");
        let head_key = Key::new(tag::HEAD, 7).s(&conv).done();
        let msg_key = Key::new(tag::MSG, 7).s(&conv).n(4).done();
        let msg = pb::Message {
            server_time_ms: 5_000,
            ..Default::default()
        }
        .encode_to_vec();
        let mut r = Records(Default::default());
        assert_eq!(last_activity_ms(&r, 7, &g).unwrap(), 1_000);
        r.0.insert(head_key, 4u64.to_be_bytes().to_vec());
        // A pruned head message leaves the creation time.
        assert_eq!(last_activity_ms(&r, 7, &g).unwrap(), 1_000);
        r.0.insert(msg_key, msg);
        assert_eq!(last_activity_ms(&r, 7, &g).unwrap(), 5_000);
    }

    #[test]
    fn group_keys_split_into_app_and_id() {
        let k = Key::new(tag::GROUP, 1_400_000_000).s(b"@TGS#1").done();
        assert_eq!(parse_group_key(&k), Some((1_400_000_000, "@TGS#1".into())));
    }
}
