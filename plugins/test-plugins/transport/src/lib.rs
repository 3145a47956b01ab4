//! Test fixture: a loopback transport plugin. `connect("loop://...")` opens a connection whose
//! every sent frame comes back as a received frame from another thread (the way a real transport's
//! reader thread delivers). Sending the frame `close` makes the peer close the connection (a
//! `closed` event with reason `peer closed`). Other URL schemes are refused.

use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;

use chime_plugin_api::{
    PluginCallError, Transport, TransportConnection, TransportEvents, export_transport,
};

/// The transport instance (no config).
#[derive(Debug)]
pub struct LoopTransport;

/// One loopback connection: a channel to its echo thread.
pub struct LoopConnection {
    outgoing: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    echo: Mutex<Option<JoinHandle<()>>>,
}

impl Transport for LoopTransport {
    type Connection = LoopConnection;

    fn create(_config_json: &str) -> Result<Self, PluginCallError> {
        Ok(Self)
    }

    fn connect(
        &self,
        url: &str,
        _options_json: &str,
        events: TransportEvents,
    ) -> Result<LoopConnection, PluginCallError> {
        if !url.starts_with("loop://") {
            return Err(PluginCallError::failed(format!(
                "cannot connect to {url}: not loop://"
            )));
        }
        let (sender, receiver) = mpsc::channel::<Vec<u8>>();
        let echo = std::thread::spawn(move || {
            while let Ok(frame) = receiver.recv() {
                if frame == b"close" {
                    events.closed("peer closed");
                    return;
                }
                events.frame(&frame);
            }
        });
        Ok(LoopConnection {
            outgoing: Mutex::new(Some(sender)),
            echo: Mutex::new(Some(echo)),
        })
    }
}

impl TransportConnection for LoopConnection {
    fn send(&self, frame: &[u8]) -> Result<(), PluginCallError> {
        let outgoing = self
            .outgoing
            .lock()
            .map_err(|_| PluginCallError::failed("poisoned"))?;
        match outgoing.as_ref() {
            Some(sender) => sender
                .send(frame.to_vec())
                .map_err(|_| PluginCallError::failed("connection closed by peer")),
            None => Err(PluginCallError::failed("connection closed")),
        }
    }

    fn close(&self) {
        if let Ok(mut outgoing) = self.outgoing.lock() {
            outgoing.take();
        }
        let echo = self.echo.lock().ok().and_then(|mut echo| echo.take());
        if let Some(echo) = echo {
            let _ = echo.join();
        }
    }
}

export_transport!(LoopTransport, "loop-transport");
