//! Installing a logger's dispatch for the whole life of a thread.
//!
//! `tracing::dispatcher::set_default` returns a guard that must be kept alive; that is awkward
//! in thread-start hooks (tokio's `Builder::on_thread_start`, a thread that runs an actix
//! `System`) where nothing outlives the hook. [`set_thread_default`] keeps the guard in a
//! thread-local, so the dispatch stays the thread's default until the thread ends.

use std::cell::RefCell;

use tracing::dispatcher::DefaultGuard;

thread_local! {
    static GUARDS: RefCell<Vec<DefaultGuard>> = const { RefCell::new(Vec::new()) };
}

/// Makes `dispatch` the current thread's default until the thread ends (a later call on the
/// same thread takes over from it).
pub fn set_thread_default(dispatch: &tracing::Dispatch) {
    let guard = tracing::dispatcher::set_default(dispatch);
    GUARDS.with(|g| g.borrow_mut().push(guard));
}
