//! The store reads that follow a session's login or end — the pending signaling invitations
//! pushed to a new session, the status pushed to the user's status subscribers — run in order
//! on one thread of their own ([`Followups`]) rather than as one blocking-pool task each.
//!
//! Why: a login storm (thousands of connections within a second, W4 in `docs/performance.md`)
//! spawned two blocking tasks per login, and the blocking pool grew a thread for each task that
//! found no idle one — 30 to 40 threads, each with its own stack and allocator heap, kept for
//! 10 s. One lane costs one thread whatever the storm, and its reads (two range reads and a
//! few point reads per session) take microseconds, so the lane keeps up with far more logins
//! per second than the server can accept.

use std::sync::Arc;
use std::sync::mpsc;

use crate::Shared;
use crate::registry::ConnTx;

/// One follow-up of a session.
enum Job {
    /// A login: the pending invitations go to `conn`; the status goes to the subscribers if
    /// this is the user's first session (`flipped`).
    Login {
        shared: Arc<Shared>,
        app: u64,
        user: String,
        conn: ConnTx,
        flipped: bool,
    },
    /// A session's end that left the user offline: the status goes to the subscribers.
    Offline {
        shared: Arc<Shared>,
        app: u64,
        user: String,
    },
}

impl Job {
    fn run(self) {
        match self {
            Job::Login {
                shared,
                app,
                user,
                conn,
                flipped,
            } => {
                crate::signaling::send_pending(shared.store.as_ref(), app, &user, &conn);
                if flipped {
                    crate::relations::push_status(&shared, app, &user);
                }
            }
            Job::Offline { shared, app, user } => {
                crate::relations::push_status(&shared, app, &user);
            }
        }
    }
}

/// The lane: a queue and the thread that drains it (it ends when the lane is dropped).
pub struct Followups {
    tx: mpsc::Sender<Job>,
}

impl Followups {
    /// Starts the lane's thread.
    pub fn start() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("chime-followups".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job.run();
                }
            })?;
        Ok(Self { tx })
    }

    fn submit(&self, job: Job) {
        // The thread only ends when every sender is gone, so a send cannot fail while `self`
        // lives; if it ever did, the follow-up is skipped (nothing else depends on it).
        if self.tx.send(job).is_err() {
            tracing::warn!("session follow-up lane stopped");
        }
    }
}

/// After a login of `(app, user)` on `conn` was registered: queues its follow-up (pending
/// invitations to `conn`, status to the subscribers when it is the user's first session).
pub fn after_login(shared: &Arc<Shared>, app: u64, user: &str, conn: &ConnTx) {
    let flipped = crate::relations::status_flipped(shared, app, user, true);
    shared.followups.submit(Job::Login {
        shared: Arc::clone(shared),
        app,
        user: user.to_owned(),
        conn: conn.clone(),
        flipped,
    });
}

/// After a session of `(app, user)` was removed: queues the status push to the subscribers when
/// it was the user's last session.
pub fn after_session_end(shared: &Arc<Shared>, app: u64, user: &str) {
    if crate::relations::status_flipped(shared, app, user, false) {
        shared.followups.submit(Job::Offline {
            shared: Arc::clone(shared),
            app,
            user: user.to_owned(),
        });
    }
}
