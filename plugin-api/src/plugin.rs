//! The safe Rust side for plugin authors: one trait per kind and the glue the export macros use.
//!
//! A plugin implements [`ContentFilter`], [`Transport`] or [`Uploader`] on its own type and calls
//! [`export_content_filter!`](crate::export_content_filter),
//! [`export_transport!`](crate::export_transport) or [`export_uploader!`](crate::export_uploader)
//! once. The macro generates the `chime_plugin_entry` symbol, the static declaration and the
//! vtable, whose functions are the generic `extern "C"` functions in this module. Each of them
//! catches every panic with `catch_unwind` and turns it into [`CHIME_STATUS_PANICKED`] with the
//! panic message in `out_error`: an unwinding panic never crosses the C boundary (that would be
//! undefined behaviour). Plugins must therefore be built with `panic = "unwind"` (the default).

use std::any::Any;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, RwLock};

use crate::abi::{
    CHIME_CONTENT_CUSTOM_DESCRIPTION, CHIME_CONTENT_TEXT, CHIME_FILTER_BLOCKED,
    CHIME_FILTER_INCOMING, CHIME_FILTER_OUTGOING, CHIME_FILTER_PASS, CHIME_FILTER_REPLACED,
    CHIME_STATUS_CANCELLED, CHIME_STATUS_FAILED, CHIME_STATUS_INVALID_ARGUMENT, CHIME_STATUS_OK,
    CHIME_STATUS_PANICKED, CHIME_TRANSPORT_EVENT_CLOSED, CHIME_TRANSPORT_EVENT_ERROR,
    CHIME_TRANSPORT_EVENT_FRAME, ChimeBuf, ChimeFilterResult, ChimeProgressFn, ChimeStr,
    ChimeTransportEventFn, Raw,
};

/// An error a plugin returns from a trait method: a `CHIME_STATUS_*` code and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (status {status})")]
pub struct PluginCallError {
    /// A `CHIME_STATUS_*` code other than OK.
    pub status: i32,
    /// What went wrong, for the host's logs and error replies.
    pub message: String,
}

impl PluginCallError {
    /// A plain failure ([`CHIME_STATUS_FAILED`]).
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            status: CHIME_STATUS_FAILED,
            message: message.into(),
        }
    }

    /// An invalid argument or config ([`CHIME_STATUS_INVALID_ARGUMENT`]).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: CHIME_STATUS_INVALID_ARGUMENT,
            message: message.into(),
        }
    }

    /// A cancelled transfer ([`CHIME_STATUS_CANCELLED`]).
    pub fn cancelled() -> Self {
        Self {
            status: CHIME_STATUS_CANCELLED,
            message: "cancelled".to_owned(),
        }
    }
}

/// Which way the text is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Written by the local user, about to be sent.
    Outgoing,
    /// Received from someone else.
    Incoming,
}

/// Which field of a message the text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// A text element (including @ messages).
    Text,
    /// The `description` of a custom element.
    CustomDescription,
    /// A field this ABI version did not know when the plugin was built (the raw value).
    Other(u32),
}

/// What a content filter decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterOutcome {
    /// Send (or show) the text unchanged.
    Pass,
    /// Send (or show) this text instead.
    Replaced(String),
    /// Do not send; the engine answers 80001 with this reason.
    Blocked {
        /// Why, for the sender.
        reason: String,
    },
}

/// A content-filter plugin (`CHIME_PLUGIN_KIND_CONTENT_FILTER`).
pub trait ContentFilter: Send + Sync + Sized + 'static {
    /// Builds an instance from its JSON config (the `config` of the engine's plugin entry).
    fn create(config_json: &str) -> Result<Self, PluginCallError>;

    /// Judges one text.
    fn filter(
        &self,
        text: &str,
        direction: Direction,
        content: ContentKind,
    ) -> Result<FilterOutcome, PluginCallError>;
}

/// Where a transport connection reports what happens; handed to [`Transport::connect`].
///
/// Cheap to clone and `Send + Sync`: give it to the threads or tasks that read the connection.
/// Once the host has closed the connection every method is a no-op, so a late reader thread can
/// never call into the host after `close` returned.
#[derive(Clone)]
pub struct TransportEvents {
    inner: Arc<EventsInner>,
}

struct EventsInner {
    /// `None` once the host closed the connection. Emitting holds the read lock, closing takes
    /// the write lock, so `close` waits for an emission in progress and none starts after it.
    target: RwLock<Option<(Raw<ChimeTransportEventFn>, usize)>>,
}

impl TransportEvents {
    fn new(callback: Raw<ChimeTransportEventFn>, user_data: *mut c_void) -> Self {
        Self {
            inner: Arc::new(EventsInner {
                target: RwLock::new(Some((callback, user_data as usize))),
            }),
        }
    }

    fn emit(&self, event: u32, data: &[u8]) {
        let guard = match self.inner.target.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((callback, user_data)) = *guard {
            // SAFETY: the host registered `callback` with `user_data` for this connection and
            // keeps both valid until `close` returns, which cannot happen while we hold the lock.
            unsafe { callback(user_data as *mut c_void, event, ChimeStr::from_bytes(data)) };
        }
    }

    /// Reports a received binary frame.
    pub fn frame(&self, frame: &[u8]) {
        self.emit(CHIME_TRANSPORT_EVENT_FRAME, frame);
    }

    /// Reports that the connection closed (the last event).
    pub fn closed(&self, reason: &str) {
        self.emit(CHIME_TRANSPORT_EVENT_CLOSED, reason.as_bytes());
    }

    /// Reports a non-fatal error.
    pub fn error(&self, message: &str) {
        self.emit(CHIME_TRANSPORT_EVENT_ERROR, message.as_bytes());
    }

    fn detach(&self) {
        let mut guard = match self.inner.target.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = None;
    }
}

/// One open connection of a [`Transport`].
pub trait TransportConnection: Send + Sync + 'static {
    /// Sends one binary frame.
    fn send(&self, frame: &[u8]) -> Result<(), PluginCallError>;

    /// Closes the connection; called once, then the value is dropped. Events emitted afterwards
    /// are discarded by [`TransportEvents`].
    fn close(&self);
}

/// A transport plugin (`CHIME_PLUGIN_KIND_TRANSPORT`).
pub trait Transport: Send + Sync + Sized + 'static {
    /// The connection type.
    type Connection: TransportConnection;

    /// Builds an instance from its JSON config.
    fn create(config_json: &str) -> Result<Self, PluginCallError>;

    /// Opens a connection; frames and the close arrive through `events`.
    fn connect(
        &self,
        url: &str,
        options_json: &str,
        events: TransportEvents,
    ) -> Result<Self::Connection, PluginCallError>;
}

/// Reports transfer progress to the host; handed to [`Uploader::upload`] / `download`.
pub struct Progress {
    callback: ChimeProgressFn,
    user_data: *mut c_void,
    task_id: u64,
}

impl Progress {
    /// The host's id for this transfer.
    pub fn task_id(&self) -> u64 {
        self.task_id
    }

    /// Reports `done` of `total` bytes (`total` 0 when unknown).
    pub fn report(&self, done: u64, total: u64) {
        if let Some(callback) = self.callback {
            // SAFETY: the host keeps `user_data` valid for the duration of the transfer call,
            // and `Progress` cannot outlive that call (it is only lent by reference).
            unsafe { callback(self.user_data, self.task_id, done, total) };
        }
    }
}

/// An uploader plugin (`CHIME_PLUGIN_KIND_UPLOADER`).
pub trait Uploader: Send + Sync + Sized + 'static {
    /// Builds an instance from its JSON config.
    fn create(config_json: &str) -> Result<Self, PluginCallError>;

    /// Uploads `local_path` to `url`, blocking; answers a result JSON (for example the file's
    /// final URL).
    fn upload(
        &self,
        local_path: &str,
        url: &str,
        options_json: &str,
        progress: &Progress,
    ) -> Result<String, PluginCallError>;

    /// Downloads `url` to `local_path`, blocking; answers a result JSON.
    fn download(
        &self,
        local_path: &str,
        url: &str,
        options_json: &str,
        progress: &Progress,
    ) -> Result<String, PluginCallError>;

    /// Asks the running transfer `task_id` to stop (it then returns
    /// [`PluginCallError::cancelled`]). Called from another thread.
    fn cancel(&self, task_id: u64);
}

/// The message of a caught panic payload.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Writes `message` into `out_error` when the host gave one.
///
/// # Safety
/// `out_error` is null or valid for a write.
unsafe fn set_error(out_error: *mut ChimeBuf, message: &str) {
    if !out_error.is_null() {
        // SAFETY: checked non-null; the host passes a writable slot.
        unsafe { out_error.write(ChimeBuf::from_vec(message.as_bytes().to_vec())) };
    }
}

/// Runs `body` behind `catch_unwind` and turns its result into a status code.
///
/// # Safety
/// `out_error` is null or valid for a write.
pub(crate) unsafe fn guarded(
    out_error: *mut ChimeBuf,
    body: impl FnOnce() -> Result<(), PluginCallError>,
) -> i32 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => CHIME_STATUS_OK,
        Ok(Err(error)) => {
            // SAFETY: forwarded contract.
            unsafe { set_error(out_error, &error.message) };
            if error.status == CHIME_STATUS_OK {
                CHIME_STATUS_FAILED
            } else {
                error.status
            }
        }
        Err(payload) => {
            let message = format!("plugin panicked: {}", panic_message(payload.as_ref()));
            // SAFETY: forwarded contract.
            unsafe { set_error(out_error, &message) };
            CHIME_STATUS_PANICKED
        }
    }
}

/// Reads a borrowed UTF-8 argument.
///
/// # Safety
/// `text` is valid for the call.
pub(crate) unsafe fn utf8_arg<'a>(text: ChimeStr, what: &str) -> Result<&'a str, PluginCallError> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { text.as_bytes() };
    std::str::from_utf8(bytes).map_err(|_| PluginCallError::invalid(format!("{what} is not UTF-8")))
}

/// Writes a handle into an out-pointer, or fails when the host passed null.
///
/// # Safety
/// `out` is null or valid for a write.
unsafe fn write_handle<T>(out: *mut *mut c_void, value: T) -> Result<(), PluginCallError> {
    if out.is_null() {
        return Err(PluginCallError::invalid("null out pointer"));
    }
    let handle = Box::into_raw(Box::new(value)).cast::<c_void>();
    // SAFETY: checked non-null.
    unsafe { out.write(handle) };
    Ok(())
}

/// Borrows the instance behind a handle made by [`write_handle`].
///
/// # Safety
/// `instance` is null or a live handle of type `T`.
pub(crate) unsafe fn instance_ref<'a, T>(instance: *mut c_void) -> Result<&'a T, PluginCallError> {
    if instance.is_null() {
        return Err(PluginCallError::invalid("null instance"));
    }
    // SAFETY: the host only passes handles this library created and has not destroyed.
    Ok(unsafe { &*instance.cast::<T>() })
}

/// Generic `create`: parses nothing itself, hands the config to `make`.
///
/// # Safety
/// The ABI's `create` contract.
pub(crate) unsafe fn create_with<T: Send + Sync + 'static>(
    config_json: ChimeStr,
    out_instance: *mut *mut c_void,
    out_error: *mut ChimeBuf,
    make: fn(&str) -> Result<T, PluginCallError>,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        guarded(out_error, || {
            let config = utf8_arg(config_json, "config")?;
            let value = make(config)?;
            write_handle(out_instance, value)
        })
    }
}

/// Generic `destroy`.
///
/// # Safety
/// `instance` is null or a live handle of type `T`, not used afterwards.
pub(crate) unsafe fn destroy_with<T>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    // A panic in a destructor is swallowed: there is nobody to report it to.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: made by `write_handle::<T>`, destroyed once.
        drop(unsafe { Box::from_raw(instance.cast::<T>()) });
    }));
}

/// `free_buf` for every kind.
///
/// # Safety
/// `buf` comes from this library and is freed once.
pub unsafe extern "C" fn free_buf(buf: ChimeBuf) {
    // SAFETY: forwarded contract.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe { buf.free() }));
}

/// Content filter `create` for `T`.
///
/// # Safety
/// The ABI's `create` contract.
pub unsafe extern "C" fn filter_create<T: ContentFilter>(
    config_json: ChimeStr,
    out_instance: *mut *mut c_void,
    out_error: *mut ChimeBuf,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { create_with::<T>(config_json, out_instance, out_error, T::create) }
}

/// Content filter `destroy` for `T`.
///
/// # Safety
/// The ABI's `destroy` contract.
pub unsafe extern "C" fn filter_destroy<T: ContentFilter>(instance: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { destroy_with::<T>(instance) }
}

/// Content filter `filter` for `T`.
///
/// # Safety
/// The ABI's `filter` contract.
pub unsafe extern "C" fn filter_filter<T: ContentFilter>(
    instance: *mut c_void,
    text: ChimeStr,
    direction: u32,
    content: u32,
    out_result: *mut ChimeFilterResult,
    out_error: *mut ChimeBuf,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        guarded(out_error, || {
            let filter = instance_ref::<T>(instance)?;
            let text = utf8_arg(text, "text")?;
            let direction = match direction {
                CHIME_FILTER_OUTGOING => Direction::Outgoing,
                CHIME_FILTER_INCOMING => Direction::Incoming,
                other => {
                    return Err(PluginCallError::invalid(format!(
                        "unknown direction {other}"
                    )));
                }
            };
            let content = match content {
                CHIME_CONTENT_TEXT => ContentKind::Text,
                CHIME_CONTENT_CUSTOM_DESCRIPTION => ContentKind::CustomDescription,
                other => ContentKind::Other(other),
            };
            if out_result.is_null() {
                return Err(PluginCallError::invalid("null out_result"));
            }
            let result = match filter.filter(text, direction, content)? {
                FilterOutcome::Pass => ChimeFilterResult {
                    action: CHIME_FILTER_PASS,
                    text: ChimeBuf::EMPTY,
                },
                FilterOutcome::Replaced(text) => ChimeFilterResult {
                    action: CHIME_FILTER_REPLACED,
                    text: ChimeBuf::from_vec(text.into_bytes()),
                },
                FilterOutcome::Blocked { reason } => ChimeFilterResult {
                    action: CHIME_FILTER_BLOCKED,
                    text: ChimeBuf::from_vec(reason.into_bytes()),
                },
            };
            out_result.write(result);
            Ok(())
        })
    }
}

/// A connection handle: the plugin's connection plus the events it may still emit.
struct ConnectionHandle<C> {
    connection: C,
    events: TransportEvents,
}

/// Transport `create` for `T`.
///
/// # Safety
/// The ABI's `create` contract.
pub unsafe extern "C" fn transport_create<T: Transport>(
    config_json: ChimeStr,
    out_instance: *mut *mut c_void,
    out_error: *mut ChimeBuf,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { create_with::<T>(config_json, out_instance, out_error, T::create) }
}

/// Transport `destroy` for `T`.
///
/// # Safety
/// The ABI's `destroy` contract.
pub unsafe extern "C" fn transport_destroy<T: Transport>(instance: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { destroy_with::<T>(instance) }
}

/// Transport `connect` for `T`.
///
/// # Safety
/// The ABI's `connect` contract.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn transport_connect<T: Transport>(
    instance: *mut c_void,
    url: ChimeStr,
    options_json: ChimeStr,
    on_event: ChimeTransportEventFn,
    user_data: *mut c_void,
    out_connection: *mut *mut c_void,
    out_error: *mut ChimeBuf,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        guarded(out_error, || {
            let transport = instance_ref::<T>(instance)?;
            let url = utf8_arg(url, "url")?;
            let options = utf8_arg(options_json, "options")?;
            let callback =
                on_event.ok_or_else(|| PluginCallError::invalid("null event callback"))?;
            if out_connection.is_null() {
                return Err(PluginCallError::invalid("null out_connection"));
            }
            let events = TransportEvents::new(callback, user_data);
            let connection = match transport.connect(url, options, events.clone()) {
                Ok(connection) => connection,
                Err(error) => {
                    events.detach();
                    return Err(error);
                }
            };
            write_handle(out_connection, ConnectionHandle { connection, events })
        })
    }
}

/// Transport `send` for `T`.
///
/// # Safety
/// The ABI's `send` contract.
pub unsafe extern "C" fn transport_send<T: Transport>(
    connection: *mut c_void,
    frame: ChimeStr,
    out_error: *mut ChimeBuf,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        guarded(out_error, || {
            let handle = instance_ref::<ConnectionHandle<T::Connection>>(connection)?;
            handle.connection.send(frame.as_bytes())
        })
    }
}

/// Transport `close` for `T`.
///
/// # Safety
/// The ABI's `close` contract.
pub unsafe extern "C" fn transport_close<T: Transport>(connection: *mut c_void) {
    if connection.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: made by `transport_connect::<T>`, closed once.
        let handle = unsafe { Box::from_raw(connection.cast::<ConnectionHandle<T::Connection>>()) };
        handle.connection.close();
        // After this no event reaches the host, whatever the connection's threads still do.
        handle.events.detach();
    }));
}

/// Uploader `create` for `T`.
///
/// # Safety
/// The ABI's `create` contract.
pub unsafe extern "C" fn uploader_create<T: Uploader>(
    config_json: ChimeStr,
    out_instance: *mut *mut c_void,
    out_error: *mut ChimeBuf,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { create_with::<T>(config_json, out_instance, out_error, T::create) }
}

/// Uploader `destroy` for `T`.
///
/// # Safety
/// The ABI's `destroy` contract.
pub unsafe extern "C" fn uploader_destroy<T: Uploader>(instance: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { destroy_with::<T>(instance) }
}

/// Shared body of upload and download.
///
/// # Safety
/// The ABI's transfer contract.
#[allow(clippy::too_many_arguments)]
unsafe fn transfer<T: Uploader>(
    instance: *mut c_void,
    task_id: u64,
    local_path: ChimeStr,
    url: ChimeStr,
    options_json: ChimeStr,
    on_progress: ChimeProgressFn,
    user_data: *mut c_void,
    out_result_json: *mut ChimeBuf,
    out_error: *mut ChimeBuf,
    upload: bool,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        guarded(out_error, || {
            let uploader = instance_ref::<T>(instance)?;
            let local_path = utf8_arg(local_path, "local path")?;
            let url = utf8_arg(url, "url")?;
            let options = utf8_arg(options_json, "options")?;
            if out_result_json.is_null() {
                return Err(PluginCallError::invalid("null out_result_json"));
            }
            let progress = Progress {
                callback: on_progress,
                user_data,
                task_id,
            };
            let result = if upload {
                uploader.upload(local_path, url, options, &progress)?
            } else {
                uploader.download(local_path, url, options, &progress)?
            };
            out_result_json.write(ChimeBuf::from_vec(result.into_bytes()));
            Ok(())
        })
    }
}

/// Uploader `upload` for `T`.
///
/// # Safety
/// The ABI's transfer contract.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn uploader_upload<T: Uploader>(
    instance: *mut c_void,
    task_id: u64,
    local_path: ChimeStr,
    url: ChimeStr,
    options_json: ChimeStr,
    on_progress: ChimeProgressFn,
    user_data: *mut c_void,
    out_result_json: *mut ChimeBuf,
    out_error: *mut ChimeBuf,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        transfer::<T>(
            instance,
            task_id,
            local_path,
            url,
            options_json,
            on_progress,
            user_data,
            out_result_json,
            out_error,
            true,
        )
    }
}

/// Uploader `download` for `T`.
///
/// # Safety
/// The ABI's transfer contract.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn uploader_download<T: Uploader>(
    instance: *mut c_void,
    task_id: u64,
    local_path: ChimeStr,
    url: ChimeStr,
    options_json: ChimeStr,
    on_progress: ChimeProgressFn,
    user_data: *mut c_void,
    out_result_json: *mut ChimeBuf,
    out_error: *mut ChimeBuf,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        transfer::<T>(
            instance,
            task_id,
            local_path,
            url,
            options_json,
            on_progress,
            user_data,
            out_result_json,
            out_error,
            false,
        )
    }
}

/// Uploader `cancel` for `T`.
///
/// # Safety
/// The ABI's `cancel` contract.
pub unsafe extern "C" fn uploader_cancel<T: Uploader>(instance: *mut c_void, task_id: u64) -> i32 {
    // SAFETY: `instance` is a live handle; no error buffer for cancel.
    unsafe {
        guarded(std::ptr::null_mut(), || {
            instance_ref::<T>(instance)?.cancel(task_id);
            Ok(())
        })
    }
}

/// Exports a [`ContentFilter`] implementation as a plugin: `export_content_filter!(MyFilter,
/// "my-filter");`. The version is the plugin crate's `CARGO_PKG_VERSION`. Use once per library.
#[macro_export]
macro_rules! export_content_filter {
    ($ty:ty, $name:literal) => {
        $crate::__export_plugin!(
            $crate::abi::CHIME_PLUGIN_KIND_CONTENT_FILTER,
            $name,
            $crate::abi::ChimeContentFilterVTable,
            $crate::abi::ChimeContentFilterVTable {
                struct_size: ::core::mem::size_of::<$crate::abi::ChimeContentFilterVTable>() as u32,
                create: Some($crate::plugin::filter_create::<$ty>),
                destroy: Some($crate::plugin::filter_destroy::<$ty>),
                filter: Some($crate::plugin::filter_filter::<$ty>),
                free_buf: Some($crate::plugin::free_buf),
            }
        );
    };
}

/// Exports a [`Transport`] implementation as a plugin: `export_transport!(MyTransport, "quic");`.
#[macro_export]
macro_rules! export_transport {
    ($ty:ty, $name:literal) => {
        $crate::__export_plugin!(
            $crate::abi::CHIME_PLUGIN_KIND_TRANSPORT,
            $name,
            $crate::abi::ChimeTransportVTable,
            $crate::abi::ChimeTransportVTable {
                struct_size: ::core::mem::size_of::<$crate::abi::ChimeTransportVTable>() as u32,
                create: Some($crate::plugin::transport_create::<$ty>),
                destroy: Some($crate::plugin::transport_destroy::<$ty>),
                connect: Some($crate::plugin::transport_connect::<$ty>),
                send: Some($crate::plugin::transport_send::<$ty>),
                close: Some($crate::plugin::transport_close::<$ty>),
                free_buf: Some($crate::plugin::free_buf),
            }
        );
    };
}

/// Exports an [`Uploader`] implementation as a plugin: `export_uploader!(MyUploader, "upload");`.
#[macro_export]
macro_rules! export_uploader {
    ($ty:ty, $name:literal) => {
        $crate::__export_plugin!(
            $crate::abi::CHIME_PLUGIN_KIND_UPLOADER,
            $name,
            $crate::abi::ChimeUploaderVTable,
            $crate::abi::ChimeUploaderVTable {
                struct_size: ::core::mem::size_of::<$crate::abi::ChimeUploaderVTable>() as u32,
                create: Some($crate::plugin::uploader_create::<$ty>),
                destroy: Some($crate::plugin::uploader_destroy::<$ty>),
                upload: Some($crate::plugin::uploader_upload::<$ty>),
                download: Some($crate::plugin::uploader_download::<$ty>),
                cancel: Some($crate::plugin::uploader_cancel::<$ty>),
                free_buf: Some($crate::plugin::free_buf),
            }
        );
    };
}

/// The shared part of the export macros: the static vtable, declaration and entry symbol.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin {
    ($kind:expr, $name:literal, $vtable_ty:ty, $vtable:expr) => {
        const _: () = {
            static VTABLE: $vtable_ty = $vtable;
            static NAME: &str = ::core::concat!($name, "\0");
            static VERSION: &str = ::core::concat!(::core::env!("CARGO_PKG_VERSION"), "\0");
            static DECLARATION: $crate::abi::ChimePluginDeclaration =
                $crate::abi::ChimePluginDeclaration {
                    abi_major: $crate::abi::CHIME_PLUGIN_ABI_MAJOR,
                    abi_minor: $crate::abi::CHIME_PLUGIN_ABI_MINOR,
                    struct_size: ::core::mem::size_of::<$crate::abi::ChimePluginDeclaration>()
                        as u32,
                    kind: $kind,
                    name: NAME.as_ptr().cast(),
                    version: VERSION.as_ptr().cast(),
                    vtable: &VTABLE as *const $vtable_ty as *const ::core::ffi::c_void,
                };

            /// The plugin entry symbol: answers this library's static declaration.
            #[unsafe(no_mangle)]
            pub extern "C" fn chime_plugin_entry() -> *const $crate::abi::ChimePluginDeclaration {
                &DECLARATION
            }
        };
    };
}
