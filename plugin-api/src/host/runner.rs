//! Where plugin calls run: a small per-plugin pool of plain threads, a timeout on every call, and
//! the plugin's health.
//!
//! A plugin call is foreign code that may block, hang or fail. It never runs on the caller's
//! thread (an actor, a tokio worker): the caller hands it to an idle call thread of the plugin (or a
//! new one, up to a cap) and awaits the answer with a timeout. A call that times out leaves its
//! thread behind, stuck in the plugin; that thread is never reused and the library is never
//! unloaded (see `library`), so nothing dangles. Plain threads, not `spawn_blocking`, because a
//! tokio runtime waits for its blocking threads at shutdown and a hung plugin would then hang the
//! engine's shutdown too.
//!
//! Health: every failure (error status, panic, timeout, invalid result, and a transport's network
//! failure reported by the engine) bumps a counter of
//! consecutive failures, every success resets it; at the threshold the plugin is disabled and every
//! later call answers [`PluginError::Disabled`] at once. That degrades one capability (the engine
//! sends unfiltered text, or falls back to WebSocket) and never the process.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::abi::CHIME_STATUS_CANCELLED;
use crate::host::PluginError;
use crate::host::info::PluginStatus;

/// How long an idle call thread waits for work before it exits.
const IDLE_EXIT: Duration = Duration::from_secs(30);

/// A call: runs the plugin function and answers how to deliver its result. Delivery is split off
/// so the worker can make itself available again *before* the caller learns the result: a caller
/// that calls again at once then finds it idle instead of starting another thread.
type Job = Box<dyn FnOnce() -> Deliver + Send + 'static>;
type Deliver = Box<dyn FnOnce() + Send + 'static>;

/// Locks a mutex, recovering from poisoning (the state guarded here stays consistent).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[derive(Debug, Default)]
struct Health {
    consecutive_failures: u32,
    total_failures: u64,
    last_error: Option<String>,
    disabled: bool,
}

#[derive(Default)]
struct Pool {
    /// Idle workers: their id and their job sender.
    idle: Vec<(u64, mpsc::Sender<Job>)>,
    /// Calls waiting for a worker when `max_threads` are busy; workers drain it before idling.
    /// Non-empty only while no worker is idle.
    queue: VecDeque<Job>,
    /// Workers alive (idle, busy or stuck).
    live: usize,
    next_id: u64,
}

/// Runs one plugin's calls; shared by every handle to that plugin instance.
pub(crate) struct CallRunner {
    name: String,
    failure_threshold: u32,
    max_threads: usize,
    pool: Mutex<Pool>,
    health: Mutex<Health>,
}

impl CallRunner {
    pub fn new(name: String, failure_threshold: u32, max_threads: usize) -> Arc<Self> {
        Arc::new(Self {
            name,
            failure_threshold: failure_threshold.max(1),
            max_threads: max_threads.max(1),
            pool: Mutex::new(Pool::default()),
            health: Mutex::new(Health::default()),
        })
    }

    /// Health as reported by `loaded_plugins`.
    pub fn status(&self) -> PluginStatus {
        let health = lock(&self.health);
        PluginStatus {
            disabled: health.disabled,
            consecutive_failures: health.consecutive_failures,
            total_failures: health.total_failures,
            last_error: health.last_error.clone(),
        }
    }

    fn check_enabled(&self) -> Result<(), PluginError> {
        let health = lock(&self.health);
        if health.disabled {
            return Err(PluginError::Disabled {
                name: self.name.clone(),
                failures: health.consecutive_failures,
                last_error: health.last_error.clone().unwrap_or_default(),
            });
        }
        Ok(())
    }

    fn record<T>(&self, result: &Result<T, PluginError>) {
        let mut health = lock(&self.health);
        match result {
            Ok(_) => health.consecutive_failures = 0,
            // A cancelled transfer is the caller's wish, not the plugin's fault.
            Err(PluginError::CallFailed { status, .. }) if *status == CHIME_STATUS_CANCELLED => {}
            Err(PluginError::Disabled { .. }) => {}
            Err(error) => {
                health.consecutive_failures = health.consecutive_failures.saturating_add(1);
                health.total_failures = health.total_failures.saturating_add(1);
                health.last_error = Some(error.to_string());
                if health.consecutive_failures >= self.failure_threshold {
                    health.disabled = true;
                }
            }
        }
    }

    /// Hands `job` to an idle worker, a new one, or (at the thread cap) the queue.
    fn submit(self: &Arc<Self>, mut job: Job) -> Result<(), PluginError> {
        loop {
            let mut pool = lock(&self.pool);
            if let Some((_, sender)) = pool.idle.pop() {
                drop(pool);
                match sender.send(job) {
                    Ok(()) => return Ok(()),
                    // That worker is gone (a taken worker keeps waiting, so this should not
                    // happen, but stay correct): take the job back and try again.
                    Err(mpsc::SendError(returned)) => {
                        job = returned;
                        continue;
                    }
                }
            }
            if pool.live >= self.max_threads {
                // Every thread is busy (or stuck): wait in line. The caller's timeout still runs.
                pool.queue.push_back(job);
                return Ok(());
            }
            let id = pool.next_id;
            pool.next_id += 1;
            pool.live += 1;
            drop(pool);
            let (sender, receiver) = mpsc::channel::<Job>();
            let runner = Arc::clone(self);
            let own_sender = sender.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("plugin-{}", self.name))
                .spawn(move || runner.worker(id, receiver, own_sender));
            if let Err(error) = spawned {
                lock(&self.pool).live -= 1;
                return Err(PluginError::Thread {
                    name: self.name.clone(),
                    reason: error.to_string(),
                });
            }
            return sender.send(job).map_err(|_| PluginError::Thread {
                name: self.name.clone(),
                reason: "call thread exited at start".to_owned(),
            });
        }
    }

    fn worker(self: Arc<Self>, id: u64, jobs: mpsc::Receiver<Job>, own: mpsc::Sender<Job>) {
        let mut next: Option<Job> = None;
        loop {
            let job = match next.take() {
                Some(job) => job,
                None => match jobs.recv_timeout(IDLE_EXIT) {
                    Ok(job) => job,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        let mut pool = lock(&self.pool);
                        if let Some(index) = pool.idle.iter().position(|(idle, _)| *idle == id) {
                            pool.idle.swap_remove(index);
                            pool.live -= 1;
                            return;
                        }
                        // Someone took this worker and a job is on its way: keep waiting.
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        lock(&self.pool).live -= 1;
                        return;
                    }
                },
            };
            // Jobs are host code around a plugin call that catches its own panics; guard anyway
            // so one bug cannot take the pool's bookkeeping down.
            let deliver = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            {
                let mut pool = lock(&self.pool);
                match pool.queue.pop_front() {
                    Some(queued) => next = Some(queued),
                    None => pool.idle.push((id, own.clone())),
                }
            }
            if let Ok(deliver) = deliver {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(deliver));
            }
        }
    }

    /// Counts a failure the host's caller observed outside a call (a transport connection that
    /// never carried a login, say), exactly like a failed call.
    pub fn record_failure(&self, error: PluginError) {
        self.record::<()>(&Err(error));
    }

    /// Counts a success the host's caller observed outside a call: the failure streak ends.
    pub fn record_success(&self) {
        self.record(&Ok(()));
    }

    /// Runs `call` on a call thread and awaits it for at most `timeout`.
    pub async fn call<T, F>(self: &Arc<Self>, timeout: Duration, call: F) -> Result<T, PluginError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, PluginError> + Send + 'static,
    {
        let result = self.call_unrecorded(timeout, call).await;
        self.record(&result);
        result
    }

    /// Like [`call`](Self::call), but only a failure counts: a success does not end the failure
    /// streak, because only the caller knows whether what the call started worked (a transport's
    /// `connect` succeeds before the connection has carried anything).
    pub async fn call_counting_failures<T, F>(
        self: &Arc<Self>,
        timeout: Duration,
        call: F,
    ) -> Result<T, PluginError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, PluginError> + Send + 'static,
    {
        let result = self.call_unrecorded(timeout, call).await;
        if result.is_err() {
            self.record(&result);
        }
        result
    }

    async fn call_unrecorded<T, F>(
        self: &Arc<Self>,
        timeout: Duration,
        call: F,
    ) -> Result<T, PluginError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, PluginError> + Send + 'static,
    {
        self.check_enabled()?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let submitted = self.submit(Box::new(move || {
            let result = call();
            Box::new(move || {
                let _ = sender.send(result);
            })
        }));
        match submitted {
            Err(error) => Err(error),
            Ok(()) => match tokio::time::timeout(timeout, receiver).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(PluginError::Thread {
                    name: self.name.clone(),
                    reason: "call thread ended without an answer".to_owned(),
                }),
                Err(_) => Err(PluginError::TimedOut {
                    name: self.name.clone(),
                    timeout,
                }),
            },
        }
    }

    /// Like [`call`](Self::call) but blocks the calling thread (for `load`, which is synchronous).
    pub fn call_blocking<T, F>(
        self: &Arc<Self>,
        timeout: Duration,
        call: F,
    ) -> Result<T, PluginError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, PluginError> + Send + 'static,
    {
        self.check_enabled()?;
        let (sender, receiver) = mpsc::sync_channel(1);
        let submitted = self.submit(Box::new(move || {
            let result = call();
            Box::new(move || {
                let _ = sender.send(result);
            })
        }));
        let result = match submitted {
            Err(error) => Err(error),
            Ok(()) => match receiver.recv_timeout(timeout) {
                Ok(result) => result,
                Err(mpsc::RecvTimeoutError::Disconnected) => Err(PluginError::Thread {
                    name: self.name.clone(),
                    reason: "call thread ended without an answer".to_owned(),
                }),
                Err(mpsc::RecvTimeoutError::Timeout) => Err(PluginError::TimedOut {
                    name: self.name.clone(),
                    timeout,
                }),
            },
        };
        self.record(&result);
        result
    }

    /// Runs `job` on a call thread without waiting (cleanup such as closing a connection).
    pub fn detach(self: &Arc<Self>, job: impl FnOnce() + Send + 'static) {
        let job: Job = Box::new(move || {
            job();
            Box::new(|| {})
        });
        if self.submit(job).is_err() {
            // No thread available: the cleanup is skipped and its resources leak, which is safe.
        }
    }
}
