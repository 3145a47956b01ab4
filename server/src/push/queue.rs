//! The push queue: messages wait in a bounded channel filled by the commit task's apply thread
//! (one non-blocking `try_send` per stored message: a full queue drops the push with a warning
//! rather than slowing a commit), one planner task turns them into deliveries, and each delivery
//! runs as its own task (at most `concurrency` at once) that tries the provider up to
//! `max_attempts` times with exponential backoff. A push that still fails is a dead letter: kept
//! in the store (listed by the REST API) and logged at warn. A dead token forgets the device.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};

use super::config::PushConfig;
use super::devices::{DeadLetter, PushOp};
use super::providers::{Delivery, Provider, Providers, SendError};
use super::{Job, planner};
use crate::Shared;
use crate::commit::{Command, Msg, Op, Reply};

/// The retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all.
    pub max_attempts: u32,
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl RetryPolicy {
    /// The policy of a `[push]` table.
    pub fn of(config: &PushConfig) -> Self {
        Self {
            max_attempts: config.max_attempts.max(1),
            base: Duration::from_millis(config.retry_base_ms),
            max: Duration::from_millis(config.retry_max_ms.max(config.retry_base_ms)),
        }
    }

    /// The delay after failed try number `attempt` (1-based): `base`, `2 base`, `4 base`, ...,
    /// at most `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// Runs the planner until the server stops or the commit task lets go of the queue; also takes
/// the dead letters retried over the REST API (`retries`), tried afresh.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut jobs: mpsc::Receiver<Job>,
    mut retries: mpsc::Receiver<Delivery>,
    providers: Arc<Providers>,
    config: PushConfig,
) {
    let policy = RetryPolicy::of(&config);
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut stopping = shared.stopping.clone();
    loop {
        let next = tokio::select! {
            j = jobs.recv() => j.map(Ok),
            Some(d) = retries.recv() => Some(Err(d)),
            _ = stopping.wait_for(|s| *s) => None,
        };
        let job = match next {
            None => break,
            Some(Ok(job)) => job,
            Some(Err(retried)) => {
                if !spawn_delivery(&shared, &providers, &slots, retried, policy).await {
                    return;
                }
                continue;
            }
        };
        let (s, p) = (Arc::clone(&shared), Arc::clone(&providers));
        let planned = tokio::task::spawn_blocking(move || planner::plan(&s, &p, &job)).await;
        let deliveries = match planned {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("offline push planner failed: {e}");
                continue;
            }
        };
        for d in deliveries {
            if !spawn_delivery(&shared, &providers, &slots, d, policy).await {
                return;
            }
        }
    }
    tracing::debug!("offline push queue stopped");
}

/// Starts delivering `d` once a slot is free (a business id without a provider is skipped);
/// false when the slots are closed.
async fn spawn_delivery(
    shared: &Arc<Shared>,
    providers: &Providers,
    slots: &Arc<Semaphore>,
    d: Delivery,
    policy: RetryPolicy,
) -> bool {
    let Some(provider) = providers.get(&d.device.business_id).cloned() else {
        return true;
    };
    let Ok(permit) = Arc::clone(slots).acquire_owned().await else {
        return false;
    };
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        deliver(&shared, provider.as_ref(), d, policy).await;
        drop(permit);
    });
    true
}

/// Tries `d` until it is sent, fails for good, or the server stops.
async fn deliver(shared: &Shared, provider: &dyn Provider, d: Delivery, policy: RetryPolicy) {
    let mut stopping = shared.stopping.clone();
    let mut attempt = 0;
    let failure = loop {
        attempt += 1;
        match provider.send(&d).await {
            Ok(()) => {
                tracing::debug!(
                    app = d.app,
                    user = d.user,
                    provider = provider.kind(),
                    msg_id = d.notification.msg_id,
                    attempt,
                    "offline push sent"
                );
                return;
            }
            Err(SendError::Retry(e)) if attempt < policy.max_attempts => {
                tracing::debug!(
                    user = d.user,
                    attempt,
                    "offline push failed, will retry: {e}"
                );
                tokio::select! {
                    _ = tokio::time::sleep(policy.delay(attempt)) => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
            }
            Err(e) => break e,
        }
    };
    if let SendError::Unregistered(_) = &failure {
        let forget = PushOp::Forget {
            device_id: d.device.device_id.clone(),
            token: Some(d.device.token.clone()),
        };
        submit(shared, d.app, &d.user, forget).await;
    }
    tracing::warn!(
        app = d.app,
        user = d.user,
        device = d.device.device_id,
        business_id = d.device.business_id,
        provider = provider.kind(),
        msg_id = d.notification.msg_id,
        attempts = attempt,
        "offline push dead-lettered: {}",
        failure.desc()
    );
    let letter = DeadLetter {
        user: d.user.clone(),
        device_id: d.device.device_id,
        business_id: d.device.business_id,
        token: d.device.token.clone(),
        notification: d.notification,
        attempts: attempt,
        error: failure.desc().to_owned(),
        failed_ms: crate::commit::now_ms(),
        provider: provider.kind().to_owned(),
        platform: d.device.platform,
        is_tpns_token: d.device.is_tpns_token,
    };
    submit(shared, d.app, &d.user, PushOp::DeadLetter(Box::new(letter))).await;
}

/// Hands a push write to the commit task without waiting for it.
pub(crate) async fn submit(shared: &Shared, app: u64, user: &str, op: PushOp) {
    let cmd = Command {
        app,
        user: user.to_owned(),
        op: Op::Push(op),
        reply: Reply::None,
    };
    if shared.commit.send(Msg::Cmd(cmd)).await.is_err() {
        tracing::warn!(app, user, "offline push record lost: server stopping");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        let delays: Vec<u64> = (1..=6).map(|a| p.delay(a).as_millis() as u64).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.delay(200), Duration::from_millis(1000));
    }
}
