//! When a sled store is checkpointed: the policy, apart from the mechanics in [`super::sled_store`].
//!
//! sled 0.34 recovers by reading its whole log from its last snapshot and writes a snapshot only
//! when a database is opened (`Config::snapshot_after_ops` is a deprecated no-op there, and the
//! page cache's `take_fuzzy_snapshot` is never called): an app killed after a session that wrote
//! a lot (a first sync of a big account, a day of chatting) reads all of it again at its next
//! start — for 100,000 messages some 400 ms of the cold start (docs/performance.md). A
//! *checkpoint* closes the database and opens it again, which makes sled write a snapshot past
//! everything written so far.
//!
//! A checkpoint is due once the store took more than [`Tuning::after_bytes`] of keys and values
//! since the last one (or since it was opened). It then runs:
//! - **during the session**, as soon as the store has been idle (no read or write) for
//!   [`Tuning::idle`]: a short-lived thread, started when the amount is crossed, waits for that
//!   pause (it holds no reference that keeps the store alive);
//! - **at close** (logout, `un_init_sdk`), if still due.
//!
//! Below the amount neither costs anything; a store that is never idle (a sync that runs for
//! minutes) is checkpointed at its first pause.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The checkpoint policy's numbers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tuning {
    /// Bytes of keys and values written since the last checkpoint above which one is due
    /// (recovering this much costs an open some 25 ms; below it nothing changes).
    pub after_bytes: u64,
    /// How long the store must have seen no operation before a due checkpoint runs.
    pub idle: Duration,
    /// How often the waiting thread looks for that pause.
    pub poll: Duration,
}

impl Tuning {
    /// The engine's numbers.
    pub const DEFAULT: Tuning = Tuning {
        after_bytes: 8 * 1024 * 1024,
        idle: Duration::from_millis(1000),
        poll: Duration::from_millis(250),
    };
}

/// What the policy tracks of one open store.
#[derive(Debug)]
pub(super) struct Activity {
    tuning: Tuning,
    /// Time origin of `last_op_ns`.
    epoch: Instant,
    /// Nanoseconds after `epoch` at which the last operation ended.
    last_op_ns: AtomicU64,
    /// Bytes of keys and values written since the last checkpoint.
    written: AtomicU64,
    /// Whether a thread already waits to checkpoint.
    scheduled: AtomicBool,
}

impl Activity {
    /// Nothing written yet.
    pub fn new(tuning: Tuning) -> Self {
        Self {
            tuning,
            epoch: Instant::now(),
            last_op_ns: AtomicU64::new(0),
            written: AtomicU64::new(0),
            scheduled: AtomicBool::new(false),
        }
    }

    /// The numbers this store runs with.
    pub fn tuning(&self) -> Tuning {
        self.tuning
    }

    /// Records that an operation just ended.
    pub fn touch(&self) {
        let ns = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_op_ns.store(ns, Ordering::Relaxed);
    }

    /// How long ago the last operation ended.
    pub fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed();
        now.saturating_sub(Duration::from_nanos(
            self.last_op_ns.load(Ordering::Relaxed),
        ))
    }

    /// Counts `bytes` written.
    pub fn wrote(&self, bytes: usize) {
        self.written.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Answers true exactly once per due checkpoint: when the caller is to start the thread that
    /// waits for a pause.
    pub fn schedule(&self) -> bool {
        self.due()
            && !self.scheduled.load(Ordering::Relaxed)
            && self
                .scheduled
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Whether enough was written since the last checkpoint for another.
    pub fn due(&self) -> bool {
        self.written.load(Ordering::Relaxed) > self.tuning.after_bytes
    }

    /// Bytes written since the last checkpoint.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// A checkpoint took everything written so far (called while no operation runs).
    pub fn checkpointed(&self) {
        self.written.store(0, Ordering::Relaxed);
    }

    /// The waiting thread ended; a later crossing of the amount starts another.
    pub fn unscheduled(&self) {
        self.scheduled.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuning(after_bytes: u64) -> Tuning {
        Tuning {
            after_bytes,
            ..Tuning::DEFAULT
        }
    }

    #[test]
    fn crossing_the_amount_schedules_once_until_unscheduled() {
        let a = Activity::new(tuning(100));
        a.wrote(60);
        assert!(!a.schedule());
        a.wrote(40);
        assert!(!a.due(), "100 is not above 100");
        assert!(!a.schedule());
        a.wrote(1);
        assert!(a.due());
        assert!(a.schedule());
        a.wrote(500);
        assert!(!a.schedule(), "already scheduled");
        a.checkpointed();
        assert_eq!(a.written(), 0);
        assert!(!a.due());
        // Writes that cross again while the thread still ends do not start a second one...
        a.wrote(200);
        assert!(!a.schedule());
        a.unscheduled();
        // ... the next operation after it ended does.
        assert!(a.schedule());
    }

    #[test]
    fn idle_time_restarts_at_each_operation() {
        let a = Activity::new(tuning(0));
        std::thread::sleep(Duration::from_millis(30));
        assert!(a.idle_for() >= Duration::from_millis(30));
        let t = Instant::now();
        a.touch();
        assert!(a.idle_for() <= t.elapsed());
    }
}
