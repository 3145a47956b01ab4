//! The host's handle to an uploader plugin: transfers with progress and cancellation.
//!
//! A transfer blocks a call thread of the plugin for its whole length (with the host's transfer
//! timeout), so several transfers run on several threads; `cancel` runs on yet another one while
//! the transfer is in flight. Progress callbacks come from the transfer's thread and call the
//! host's closure directly: keep it cheap (send to a channel, update an atomic).

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::abi::{ChimeBuf, ChimeStr, ChimeTransferFn, Raw};
use crate::host::library::UploaderFns;
use crate::host::{PluginError, PluginInfo, Shared, call};

/// A progress closure: `(done, total)` bytes, `total` 0 when unknown.
pub type ProgressFn = Arc<dyn Fn(u64, u64) + Send + Sync + 'static>;

unsafe extern "C" fn on_progress(user_data: *mut c_void, _task_id: u64, done: u64, total: u64) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if user_data.is_null() {
            return;
        }
        // SAFETY: `user_data` is the `ProgressFn` borrowed by `transfer` for the call's duration.
        let progress = unsafe { &*user_data.cast::<ProgressFn>() };
        progress(done, total);
    }));
}

/// A loaded uploader. Cheap to clone.
#[derive(Clone)]
pub struct UploaderPlugin {
    pub(crate) shared: Arc<Shared>,
    fns: UploaderFns,
    next_task: Arc<AtomicU64>,
}

impl std::fmt::Debug for UploaderPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("UploaderPlugin")
            .field(&self.shared.library.name)
            .finish()
    }
}

impl UploaderPlugin {
    pub(crate) fn new(shared: Arc<Shared>, fns: UploaderFns) -> Self {
        Self {
            shared,
            fns,
            next_task: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Name, kind, version, path and health.
    pub fn info(&self) -> PluginInfo {
        self.shared.info()
    }

    /// A fresh task id for [`upload`](Self::upload) / [`download`](Self::download) / `cancel`.
    pub fn new_task_id(&self) -> u64 {
        self.next_task.fetch_add(1, Ordering::Relaxed)
    }

    /// Uploads `local_path` to `url`; answers the plugin's result JSON.
    pub async fn upload(
        &self,
        task_id: u64,
        local_path: &str,
        url: &str,
        options_json: &str,
        progress: ProgressFn,
    ) -> Result<String, PluginError> {
        self.transfer(
            self.fns.upload,
            task_id,
            local_path,
            url,
            options_json,
            progress,
        )
        .await
    }

    /// Downloads `url` to `local_path`; answers the plugin's result JSON.
    pub async fn download(
        &self,
        task_id: u64,
        local_path: &str,
        url: &str,
        options_json: &str,
        progress: ProgressFn,
    ) -> Result<String, PluginError> {
        self.transfer(
            self.fns.download,
            task_id,
            local_path,
            url,
            options_json,
            progress,
        )
        .await
    }

    /// Asks transfer `task_id` to stop; it then fails with status `CHIME_STATUS_CANCELLED`.
    pub async fn cancel(&self, task_id: u64) -> Result<(), PluginError> {
        let timeout = self.shared.config.call_timeout;
        self.shared
            .runner
            .call(timeout, self.cancel_call(task_id))
            .await
    }

    /// [`cancel`](Self::cancel), blocking the calling thread until the plugin took the request
    /// (for a host that must know the transfer is told to stop before it goes on, e.g. at
    /// logout or shutdown; the plugin's `cancel` only flags the task, so this is brief).
    pub fn cancel_blocking(&self, task_id: u64) -> Result<(), PluginError> {
        let timeout = self.shared.config.call_timeout;
        self.shared
            .runner
            .call_blocking(timeout, self.cancel_call(task_id))
    }

    fn cancel_call(&self, task_id: u64) -> impl FnOnce() -> Result<(), PluginError> + use<> {
        let shared = Arc::clone(&self.shared);
        let cancel = self.fns.cancel;
        move || {
            // SAFETY: `cancel` per the ABI on a live instance.
            let status = unsafe { cancel(shared.instance.handle(), task_id) };
            call::check_status(&shared.library, status, ChimeBuf::EMPTY)
        }
    }

    async fn transfer(
        &self,
        function: Raw<ChimeTransferFn>,
        task_id: u64,
        local_path: &str,
        url: &str,
        options_json: &str,
        progress: ProgressFn,
    ) -> Result<String, PluginError> {
        let shared = Arc::clone(&self.shared);
        let local_path = local_path.to_owned();
        let url = url.to_owned();
        let options = options_json.to_owned();
        let timeout = self.shared.config.transfer_timeout;
        self.shared
            .runner
            .call(timeout, move || {
                // Owned by this closure until the call returns; the plugin only borrows it.
                let progress: Box<ProgressFn> = Box::new(progress);
                let user_data = (&*progress as *const ProgressFn)
                    .cast_mut()
                    .cast::<c_void>();
                let mut result = ChimeBuf::EMPTY;
                let mut error = ChimeBuf::EMPTY;
                // SAFETY: transfer per the ABI: live instance, borrowed strings, a progress
                // callback whose data outlives the call, writable out-pointers.
                let status = unsafe {
                    function(
                        shared.instance.handle(),
                        task_id,
                        ChimeStr::from_bytes(local_path.as_bytes()),
                        ChimeStr::from_bytes(url.as_bytes()),
                        ChimeStr::from_bytes(options.as_bytes()),
                        Some(on_progress),
                        user_data,
                        &mut result,
                        &mut error,
                    )
                };
                drop(progress);
                call::take_result(&shared.library, status, error, result)
            })
            .await
    }
}
