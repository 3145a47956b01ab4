//! The process-wide drainer: one thread for every store of the process (a bench or a server-side
//! host runs a hundred engines, each its own store), which drains a store's write-behind overlay
//! ([`super::overlay`]) at the latest its drain age after the window's first write.
//!
//! A store queues itself at the first write after a drain ([`enqueue`]), with the moment it is
//! due; queue order is due order, as every store's age is the same. The queue holds weak
//! references only: a closed store is skipped (its close drained it). A store that finds no
//! drainer (the thread could not start) drains inline, as it would without an overlay.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::Instant;

/// A store the drainer drains.
pub(super) trait Drainable: Send + Sync {
    /// Drains what the store holds now (called on the drainer's thread).
    fn drain_due(self: Arc<Self>);
}

type Queue = VecDeque<(Instant, Weak<dyn Drainable>)>;

struct Drainer {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// The drainer, started at the first use; `None` when its thread could not be started.
fn drainer() -> Option<&'static Drainer> {
    static DRAINER: OnceLock<Option<&'static Drainer>> = OnceLock::new();
    *DRAINER.get_or_init(|| {
        let d: &'static Drainer = Box::leak(Box::new(Drainer {
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
        }));
        let spawned = std::thread::Builder::new()
            .name("chime-store-drainer".into())
            .spawn(move || run(d));
        match spawned {
            Ok(_) => Some(d),
            Err(e) => {
                tracing::warn!("store drainer thread: {e}; stores write through");
                None
            }
        }
    })
}

/// Queues `store` to be drained at `due`; false when there is no drainer (drain inline then).
pub(super) fn enqueue(store: Weak<dyn Drainable>, due: Instant) -> bool {
    let Some(d) = drainer() else { return false };
    let Ok(mut q) = d.queue.lock() else {
        return false;
    };
    let was_empty = q.is_empty();
    q.push_back((due, store));
    drop(q);
    if was_empty {
        d.wake.notify_one();
    }
    true
}

/// The drainer's loop: waits for the front store's moment, drains it, and so on.
fn run(d: &Drainer) {
    let Ok(mut q) = d.queue.lock() else { return };
    loop {
        let Some(&(due, _)) = q.front() else {
            q = match d.wake.wait(q) {
                Ok(q) => q,
                Err(_) => return,
            };
            continue;
        };
        let now = Instant::now();
        if due > now {
            q = match d.wake.wait_timeout(q, due - now) {
                Ok((q, _)) => q,
                Err(_) => return,
            };
            continue;
        }
        let Some((_, store)) = q.pop_front() else {
            continue;
        };
        drop(q);
        if let Some(store) = store.upgrade() {
            store.drain_due();
        }
        q = match d.queue.lock() {
            Ok(q) => q,
            Err(_) => return,
        };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    struct Counter(AtomicUsize);

    impl Drainable for Counter {
        fn drain_due(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn due_stores_are_drained_and_dropped_ones_skipped() {
        let a = Arc::new(Counter(AtomicUsize::new(0)));
        let gone = Arc::new(Counter(AtomicUsize::new(0)));
        let soon = Instant::now() + Duration::from_millis(20);
        let a_dyn: Arc<dyn Drainable> = a.clone();
        let gone_dyn: Arc<dyn Drainable> = gone.clone();
        assert!(enqueue(Arc::downgrade(&gone_dyn), soon));
        assert!(enqueue(Arc::downgrade(&a_dyn), soon));
        assert!(enqueue(
            Arc::downgrade(&a_dyn),
            soon + Duration::from_millis(10)
        ));
        drop((gone_dyn, gone));
        // Bounded in time: the one drainer serves every store of the test process.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && a.0.load(Ordering::SeqCst) < 2 {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(a.0.load(Ordering::SeqCst), 2);
    }
}
