//! Retention: deletes stored files past `[files] retention_days` and upload sessions past
//! `upload_expiry_hours`, every `sweep_interval_ms`.
//!
//! Files expire by age (from the completed upload), oldest first, through the `Z` index. The
//! bytes go first, then the bookkeeping (record, grants, index entry) in one commit: if the
//! server stops in between, the next sweep finds the record again and finishes. After
//! deletion a download URL of the file answers 7004 and a signed URL 404.

use std::sync::Arc;
use std::time::Duration;

use crate::Shared;
use crate::commit::{Op, now_ms};
use crate::error::StoreError;
use crate::files::grants;
use crate::keys::{self, Key, tag};

/// Most files expired per sweep (the rest wait for the next one).
const MAX_PER_SWEEP: usize = 10_000;

/// Starts the sweeper; it stops with the server.
pub fn spawn(shared: Arc<Shared>) {
    let every = Duration::from_millis(shared.files.config.sweep_interval_ms.max(10));
    tokio::spawn(async move {
        let mut stopping = shared.stopping.clone();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopping.wait_for(|s| *s) => break,
                _ = tick.tick() => {}
            }
            let scan = Arc::clone(&shared);
            let swept = tokio::task::spawn_blocking(move || sweep(&scan, now_ms())).await;
            let keys = match swept {
                Ok(Ok(keys)) => keys,
                Ok(Err(e)) => {
                    tracing::warn!("file retention sweep failed: {e}");
                    continue;
                }
                Err(e) => {
                    tracing::warn!("file retention sweep failed: {e}");
                    continue;
                }
            };
            if keys.is_empty() {
                continue;
            }
            if let Err(e) = super::routes::commit(&shared, 0, "", Op::Prune(keys)).await {
                tracing::warn!("file retention commit failed: {}", e.desc);
            }
        }
    });
}

/// One sweep at `now`: deletes expired objects and stale sessions; answers the store keys to
/// delete (committed by the caller).
pub fn sweep(shared: &Shared, now: i64) -> Result<Vec<Vec<u8>>, StoreError> {
    let files = &shared.files;
    let expiry = files.config.upload_expiry_ms();
    match files.sessions.list() {
        Ok(sessions) => {
            for s in sessions {
                if now.saturating_sub(s.created_ms) > expiry
                    && let Err(e) = files.sessions.remove(&s.upload_id)
                {
                    tracing::warn!(upload_id = s.upload_id, "removing an upload failed: {e}");
                }
            }
        }
        Err(e) => tracing::warn!("listing uploads failed: {e}"),
    }
    let retention = files.config.retention_ms();
    if retention == 0 {
        return Ok(Vec::new());
    }
    let cutoff = u64::try_from(now.saturating_sub(retention)).unwrap_or(0);
    let (start, _) = Key::new(tag::FILE_AGE, 0).prefix_range();
    let end = Key::new(tag::FILE_AGE, 0).n(cutoff).done();
    let store = shared.store.as_ref();
    let mut out = Vec::new();
    // Index key: tag, app 0, created (u64), app (u64), uuid (length-prefixed).
    const APP_AT: usize = 1 + 8 + 8;
    for (key, _) in store.scan(&start, &end, MAX_PER_SWEEP, false)? {
        let (Some(app), Some(uuid)) = (
            keys::be_u64(&key, APP_AT),
            keys::trailing_str(&key, APP_AT + 8),
        ) else {
            out.push(key);
            continue;
        };
        if let Err(e) = files.storage.delete(&uuid) {
            tracing::warn!(uuid, "deleting an expired file failed: {e}");
            continue;
        }
        match grants::record(store, app, &uuid)? {
            Some(record) => out.extend(grants::all_keys(store, app, &record)?),
            None => out.push(key),
        }
        tracing::debug!(uuid, "file expired");
    }
    if !out.is_empty() {
        tracing::info!(keys = out.len(), "expiring stored files");
    }
    Ok(out)
}
