//! The handle table: a `ChimeEngine *` is a token naming an entry here, never a pointer to memory.
//!
//! That is what makes a stale handle harmless: a destroyed, never-created or twice-destroyed
//! handle is simply not in the table and answers 6013, and a null one too; nothing is ever freed
//! under a thread still using it, because each call takes its own clone of the engine handle.
//! Tokens are never reused within a process.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

use chime_engine::{ApiError, Engine};
use chime_proto::codes;

use crate::ChimeEngine;

static ENGINES: LazyLock<Mutex<HashMap<usize, Engine>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static NEXT: AtomicUsize = AtomicUsize::new(1);

/// The host's `user_data`, carried to the thread that runs its callbacks. The host owns what it
/// points to and its thread-safety (documented in the header).
#[derive(Clone, Copy)]
pub struct UserData(pub *mut c_void);

impl UserData {
    /// The pointer (a method, so closures capture the whole `Send` wrapper, not the raw field).
    pub fn get(self) -> *mut c_void {
        self.0
    }
}

// SAFETY: the pointer is only handed back to the host, which chose to receive it on the delivery
// thread (thread mode) or its own polling thread (pump mode); we never dereference it.
unsafe impl Send for UserData {}
// SAFETY: as above; shared only to be copied back to the host.
unsafe impl Sync for UserData {}

fn table() -> std::sync::MutexGuard<'static, HashMap<usize, Engine>> {
    // A poisoned table still holds valid handles: every update is one insert or remove.
    ENGINES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers an engine and returns its token.
pub fn insert(engine: Engine) -> *mut ChimeEngine {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    table().insert(id, engine);
    id as *mut ChimeEngine
}

/// The engine a token names, or 6013.
pub fn get(handle: *mut ChimeEngine) -> Result<Engine, ApiError> {
    if handle.is_null() {
        return Err(ApiError::new(
            codes::ERR_SDK_NOT_INITIALIZED,
            "null engine handle",
        ));
    }
    table().get(&(handle as usize)).cloned().ok_or_else(|| {
        ApiError::new(
            codes::ERR_SDK_NOT_INITIALIZED,
            "unknown or destroyed engine handle",
        )
    })
}

/// Takes an engine out of the table (destroy); `None` if it was not there.
pub fn remove(handle: *mut ChimeEngine) -> Option<Engine> {
    if handle.is_null() {
        return None;
    }
    table().remove(&(handle as usize))
}
