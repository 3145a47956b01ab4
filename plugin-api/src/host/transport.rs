//! The host's handle to a transport plugin: connections whose events arrive on a channel.
//!
//! The plugin calls the host's event callback from its own threads. The callback only pushes the
//! event into an unbounded tokio channel, so it never blocks the plugin and never runs engine code
//! on a plugin thread. Its `user_data` (the channel's sender, boxed) is freed after the plugin's
//! `close` has returned, which is when the ABI guarantees no further callback.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;

use crate::abi::{
    CHIME_TRANSPORT_EVENT_CLOSED, CHIME_TRANSPORT_EVENT_ERROR, CHIME_TRANSPORT_EVENT_FRAME,
    ChimeBuf, ChimeStr, Raw,
};
use crate::host::library::TransportFns;
use crate::host::{PluginError, PluginInfo, Shared, call};

/// Something that happened on a transport connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// A binary frame arrived.
    Frame(Vec<u8>),
    /// The connection closed (the last event), with the plugin's reason.
    Closed(String),
    /// A non-fatal error the plugin reported.
    Error(String),
}

type EventSender = mpsc::UnboundedSender<TransportEvent>;

/// The callback the host registers at `connect`.
unsafe extern "C" fn on_transport_event(user_data: *mut c_void, event: u32, data: ChimeStr) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if user_data.is_null() {
            return;
        }
        // SAFETY: `user_data` is the boxed sender made in `connect`, alive until `close` returned.
        let sender = unsafe { &*user_data.cast::<EventSender>() };
        // SAFETY: borrowed for this call.
        let bytes = unsafe { data.as_bytes() };
        let event = match event {
            CHIME_TRANSPORT_EVENT_FRAME => TransportEvent::Frame(bytes.to_vec()),
            CHIME_TRANSPORT_EVENT_CLOSED => {
                TransportEvent::Closed(String::from_utf8_lossy(bytes).into_owned())
            }
            CHIME_TRANSPORT_EVENT_ERROR => {
                TransportEvent::Error(String::from_utf8_lossy(bytes).into_owned())
            }
            other => TransportEvent::Error(format!("unknown transport event {other}")),
        };
        let _ = sender.send(event);
    }));
}

/// A loaded transport. Cheap to clone.
#[derive(Clone)]
pub struct TransportPlugin {
    pub(crate) shared: Arc<Shared>,
    fns: TransportFns,
}

impl std::fmt::Debug for TransportPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TransportPlugin")
            .field(&self.shared.library.name)
            .finish()
    }
}

/// Raw pointers made `Send` for the trip to a call thread.
struct SendPtr(*mut c_void);
// SAFETY: the pointees (a plugin connection, which the ABI requires to be thread-safe, and a boxed
// tokio sender, which is `Send + Sync`) may be used from any thread.
unsafe impl Send for SendPtr {}

impl TransportPlugin {
    pub(crate) fn new(shared: Arc<Shared>, fns: TransportFns) -> Self {
        Self { shared, fns }
    }

    /// Name, kind, version, path and health.
    pub fn info(&self) -> PluginInfo {
        self.shared.info()
    }

    /// Whether the host has put the plugin aside (too many failures in a row): every call then
    /// answers [`PluginError::Disabled`] at once.
    pub fn is_disabled(&self) -> bool {
        self.shared.runner.status().disabled
    }

    /// Reports that a connection of this plugin failed on the network after `connect` returned
    /// (it closed or timed out before carrying the login). Counts towards disabling the plugin
    /// like a failed call (`HostConfig::failure_threshold` in a row).
    pub fn report_network_failure(&self, reason: &str) {
        self.shared.runner.record_failure(PluginError::Network {
            name: self.shared.library.name.clone(),
            reason: reason.to_owned(),
        });
    }

    /// Reports that a connection of this plugin carried the login: its failure streak ends.
    pub fn report_connected(&self) {
        self.shared.runner.record_success();
    }

    /// Opens a connection to `url` with per-connection options (`{}` when none). Events (frames,
    /// close, errors) arrive on the returned receiver.
    ///
    /// A failed `connect` counts towards disabling the plugin; a successful one does not end a
    /// failure streak: the caller says whether the connection worked
    /// ([`report_connected`](Self::report_connected) /
    /// [`report_network_failure`](Self::report_network_failure)).
    pub async fn connect(
        &self,
        url: &str,
        options_json: &str,
    ) -> Result<(TransportConnection, mpsc::UnboundedReceiver<TransportEvent>), PluginError> {
        let (sender, receiver) = mpsc::unbounded_channel::<TransportEvent>();
        let shared = Arc::clone(&self.shared);
        let connect = self.fns.connect;
        let url = url.to_owned();
        let options = options_json.to_owned();
        let timeout = self.shared.config.call_timeout;
        let close = self.fns.close;
        let (connection, user_data) = self
            .shared
            .runner
            .call_counting_failures(timeout, move || {
                let user_data = Box::into_raw(Box::new(sender)).cast::<c_void>();
                let mut connection: *mut c_void = std::ptr::null_mut();
                let mut error = ChimeBuf::EMPTY;
                // SAFETY: `connect` per the ABI: live instance, borrowed strings, a callback and
                // user data that stay valid until `close` returns, writable out-pointers.
                let status = unsafe {
                    connect(
                        shared.instance.handle(),
                        ChimeStr::from_bytes(url.as_bytes()),
                        ChimeStr::from_bytes(options.as_bytes()),
                        Some(on_transport_event),
                        user_data,
                        &mut connection,
                        &mut error,
                    )
                };
                let checked = call::check_status(&shared.library, status, error).and_then(|()| {
                    if connection.is_null() {
                        Err(PluginError::InvalidResult {
                            name: shared.library.name.clone(),
                            reason: "connect returned a null connection".to_owned(),
                        })
                    } else {
                        Ok(())
                    }
                });
                if let Err(error) = checked {
                    // A failed connect registered nothing: the callback data is ours again.
                    // SAFETY: made above, not retained by the plugin after a failed connect.
                    drop(unsafe { Box::from_raw(user_data.cast::<EventSender>()) });
                    return Err(error);
                }
                Ok((SendPtr(connection), SendPtr(user_data)))
            })
            .await?;
        let connection = TransportConnection {
            inner: Arc::new(ConnectionInner {
                shared: Arc::clone(&self.shared),
                send: self.fns.send,
                close,
                connection: connection.0 as usize,
                user_data: user_data.0 as usize,
                open: RwLock::new(true),
            }),
        };
        Ok((connection, receiver))
    }
}

struct ConnectionInner {
    shared: Arc<Shared>,
    send: Raw<crate::abi::ChimeSendFn>,
    close: Raw<crate::abi::ChimeCloseFn>,
    connection: usize,
    user_data: usize,
    /// `true` until closed. Sends hold the read lock, close takes the write lock, so the plugin
    /// never sees a send racing with (or after) the close of its connection.
    open: RwLock<bool>,
}

impl ConnectionInner {
    /// Closes the plugin connection and frees the callback data; runs once.
    fn close_now(&self) {
        let mut open = match self.open.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !*open {
            return;
        }
        *open = false;
        // SAFETY: a live connection of this plugin, closed once; after `close` returns the plugin
        // makes no further callback, so the boxed sender can be freed.
        unsafe {
            (self.close)(self.connection as *mut c_void);
            drop(Box::from_raw(
                (self.user_data as *mut c_void).cast::<EventSender>(),
            ));
        }
    }
}

impl Drop for ConnectionInner {
    fn drop(&mut self) {
        let open = match self.open.get_mut() {
            Ok(open) => open,
            Err(poisoned) => poisoned.into_inner(),
        };
        if *open {
            // Last handle gone without `close`: close on a call thread, never on the dropper's.
            *open = false;
            let connection = self.connection;
            let user_data = self.user_data;
            let close = self.close;
            let instance = Arc::clone(&self.shared.instance);
            self.shared.runner.detach(move || {
                let _instance = instance;
                // SAFETY: as in `close_now`; this is the only close of this connection.
                unsafe {
                    close(connection as *mut c_void);
                    drop(Box::from_raw(
                        (user_data as *mut c_void).cast::<EventSender>(),
                    ));
                }
            });
        }
    }
}

/// An open connection of a transport plugin. Cheap to clone; closed by [`close`](Self::close) or
/// when the last clone is dropped.
#[derive(Clone)]
pub struct TransportConnection {
    inner: Arc<ConnectionInner>,
}

impl std::fmt::Debug for TransportConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportConnection")
            .field("plugin", &self.inner.shared.library.name)
            .field(
                "open",
                &self.inner.open.read().map(|open| *open).unwrap_or(false),
            )
            .finish()
    }
}

impl TransportConnection {
    /// Sends one binary frame (on a call thread, with the call timeout).
    pub async fn send(&self, frame: Vec<u8>) -> Result<(), PluginError> {
        let inner = Arc::clone(&self.inner);
        let timeout = inner.shared.config.call_timeout;
        self.inner
            .shared
            .runner
            .call(timeout, move || {
                let open = match inner.open.read() {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
                if !*open {
                    return Err(PluginError::CallFailed {
                        name: inner.shared.library.name.clone(),
                        status: crate::abi::CHIME_STATUS_CLOSED,
                        message: "connection closed".to_owned(),
                    });
                }
                let mut error = ChimeBuf::EMPTY;
                // SAFETY: `send` per the ABI on a live connection: the read lock keeps `close`
                // out until this returns.
                let status = unsafe {
                    (inner.send)(
                        inner.connection as *mut c_void,
                        ChimeStr::from_bytes(&frame),
                        &mut error,
                    )
                };
                drop(open);
                call::check_status(&inner.shared.library, status, error)
            })
            .await
    }

    /// Closes the connection (on a call thread, with the call timeout). No event arrives after
    /// this returns `Ok`.
    pub async fn close(self) -> Result<(), PluginError> {
        let inner = Arc::clone(&self.inner);
        let timeout = inner.shared.config.call_timeout;
        self.inner
            .shared
            .runner
            .call(timeout, move || {
                inner.close_now();
                Ok(())
            })
            .await
    }
}
