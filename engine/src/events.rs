//! The one event queue of an engine: every actor emits into it, one thread delivers in order to
//! the host's handler (callback mode). Listener switches (simple / advanced message listener)
//! live here because they decide which events exist at all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::{Event, EventHandler};

enum Queued {
    Event(Event),
    Stop,
}

/// A cloneable sender into the engine's event queue.
#[derive(Clone)]
pub struct EventBus {
    tx: Sender<Queued>,
    handler: Arc<RwLock<Option<EventHandler>>>,
    simple: Arc<AtomicBool>,
    advanced: Arc<AtomicBool>,
}

impl EventBus {
    /// Starts the delivery thread.
    pub fn start() -> std::io::Result<EventBus> {
        let (tx, rx) = channel();
        let handler: Arc<RwLock<Option<EventHandler>>> = Arc::new(RwLock::new(None));
        let h = handler.clone();
        std::thread::Builder::new()
            .name("chime-events".into())
            .spawn(move || deliver(rx, h))?;
        Ok(EventBus {
            tx,
            handler,
            simple: Arc::new(AtomicBool::new(false)),
            advanced: Arc::new(AtomicBool::new(true)),
        })
    }

    /// Queues an event.
    pub fn emit(&self, name: &str, data: Value) {
        let _ = self.tx.send(Queued::Event(Event {
            name: name.to_owned(),
            data,
        }));
    }

    /// Sets (or clears) the handler.
    pub fn set_handler(&self, handler: Option<EventHandler>) {
        if let Ok(mut h) = self.handler.write() {
            *h = handler;
        }
    }

    /// Turns the simple message listener on or off.
    pub fn set_simple(&self, on: bool) {
        self.simple.store(on, Ordering::SeqCst);
    }

    /// Turns the advanced message listener on or off.
    pub fn set_advanced(&self, on: bool) {
        self.advanced.store(on, Ordering::SeqCst);
    }

    /// Whether simple-listener events are emitted.
    pub fn simple(&self) -> bool {
        self.simple.load(Ordering::SeqCst)
    }

    /// Whether advanced-listener events are emitted.
    pub fn advanced(&self) -> bool {
        self.advanced.load(Ordering::SeqCst)
    }

    /// Delivers what is queued, then ends the delivery thread.
    pub fn stop(&self) {
        let _ = self.tx.send(Queued::Stop);
    }
}

fn deliver(rx: Receiver<Queued>, handler: Arc<RwLock<Option<EventHandler>>>) {
    while let Ok(Queued::Event(ev)) = rx.recv() {
        let h = handler.read().ok().and_then(|h| h.clone());
        if let Some(h) = h {
            h(ev);
        }
    }
}
