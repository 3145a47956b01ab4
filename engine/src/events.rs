//! The one event queue of an engine: every actor emits into it, and it delivers in order to the
//! host's handler. Listener switches (simple / advanced message listener) live here because they
//! decide which events exist at all.
//!
//! Two delivery modes ([`CallbackMode`]):
//! - **thread**: one delivery thread (`chime-events`) runs the handler for each event, and runs
//!   the completions of front-end calls ([`EventBus::complete`]) in the same order;
//! - **pump**: nothing runs until the host calls [`EventBus::poll`], which runs up to `max` queued
//!   events and completions on the caller's thread (a game calls it once a frame).
//!
//! The pump queue is bounded (the **overflow policy**): completions of calls are never dropped
//! (there is one per call the host made, so the host bounds them itself); events beyond
//! `capacity` queued events are discarded and counted, and at the point of the gap the host gets
//! one `on_events_dropped {count}` event, delivered in order before the first event queued after
//! room was made again. The host then knows exactly where it lost events and re-reads the state it
//! shows (conversation list, history), which the store still holds in full.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use serde_json::{Value, json};

use crate::actors::relationship::remarks::FriendRemarks;
use crate::{CallbackMode, Event, EventHandler};

/// The event that marks a gap left by the pump queue's overflow policy.
pub const EVENTS_DROPPED: &str = "on_events_dropped";

/// `{ key: value }`, taking `value` as it is: `json!` serialises each interpolated expression
/// afresh, so `json!({ "message": m })` copies the whole of an already built `m`.
pub fn object(key: &str, value: Value) -> Value {
    let mut o = serde_json::Map::with_capacity(1);
    o.insert(key.to_owned(), value);
    Value::Object(o)
}

/// Work run by the delivery (thread mode) or by the host's `poll` (pump mode).
pub type Completion = Box<dyn FnOnce() + Send>;

enum Item {
    Event(Event),
    Completion(Completion),
}

enum Queued {
    Item(Item),
    Stop,
}

/// The bounded queue of pump mode: an I/O-free core, unit-tested below.
struct PumpQueue {
    items: VecDeque<Item>,
    /// How many of `items` are events (completions do not count against the capacity).
    events: usize,
    /// Events discarded since the last gap marker was queued.
    dropped: u64,
    capacity: usize,
}

impl PumpQueue {
    fn new(capacity: usize) -> Self {
        PumpQueue {
            items: VecDeque::new(),
            events: 0,
            dropped: 0,
            capacity: capacity.max(1),
        }
    }

    fn push(&mut self, item: Item) {
        match item {
            Item::Completion(_) => self.items.push_back(item),
            Item::Event(_) => {
                // After a gap, an event is queued only with its marker before it.
                let needed = if self.dropped > 0 { 2 } else { 1 };
                if self.events + needed > self.capacity {
                    self.dropped += 1;
                    return;
                }
                self.flush_gap_marker();
                self.events += 1;
                self.items.push_back(item);
            }
        }
    }

    /// Queues the gap marker if events were dropped and there is room for it.
    fn flush_gap_marker(&mut self) {
        if self.dropped > 0 && self.events < self.capacity {
            let marker = Event {
                name: EVENTS_DROPPED.to_owned(),
                data: json!({ "count": self.dropped }),
            };
            self.dropped = 0;
            self.events += 1;
            self.items.push_back(Item::Event(marker));
        }
    }

    fn pop(&mut self) -> Option<Item> {
        if self.items.is_empty() {
            self.flush_gap_marker();
        }
        let item = self.items.pop_front()?;
        if matches!(item, Item::Event(_)) {
            self.events -= 1;
        }
        Some(item)
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

enum Delivery {
    Thread {
        tx: Sender<Queued>,
        thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    },
    Pump(Arc<Mutex<PumpQueue>>),
}

impl Clone for Delivery {
    fn clone(&self) -> Self {
        match self {
            Delivery::Thread { tx, thread } => Delivery::Thread {
                tx: tx.clone(),
                thread: thread.clone(),
            },
            Delivery::Pump(q) => Delivery::Pump(q.clone()),
        }
    }
}

/// A cloneable sender into the engine's event queue.
#[derive(Clone)]
pub struct EventBus {
    delivery: Delivery,
    handler: Arc<RwLock<Option<EventHandler>>>,
    simple: Arc<AtomicBool>,
    advanced: Arc<AtomicBool>,
    /// The local user's friend remarks, filled into the message objects of events.
    remarks: FriendRemarks,
}

impl EventBus {
    /// Starts a bus in thread mode (its delivery thread).
    #[cfg(test)]
    pub fn start() -> std::io::Result<EventBus> {
        Self::start_with(CallbackMode::Thread, usize::MAX)
    }

    /// Starts a bus in `mode`; `pump_capacity` bounds the queued events of pump mode.
    pub fn start_with(mode: CallbackMode, pump_capacity: usize) -> std::io::Result<EventBus> {
        let handler: Arc<RwLock<Option<EventHandler>>> = Arc::new(RwLock::new(None));
        let delivery = match mode {
            CallbackMode::Thread => {
                let (tx, rx) = channel();
                let h = handler.clone();
                let thread = std::thread::Builder::new()
                    .name("chime-events".into())
                    .spawn(move || deliver(rx, h))?;
                Delivery::Thread {
                    tx,
                    thread: Arc::new(Mutex::new(Some(thread))),
                }
            }
            CallbackMode::Pump => {
                Delivery::Pump(Arc::new(Mutex::new(PumpQueue::new(pump_capacity))))
            }
        };
        Ok(EventBus {
            delivery,
            handler,
            simple: Arc::new(AtomicBool::new(false)),
            advanced: Arc::new(AtomicBool::new(true)),
            remarks: FriendRemarks::default(),
        })
    }

    /// The local user's friend remarks (published by the RelationshipActor), filled into every
    /// message object that leaves the engine by an event or a call's result.
    pub fn remarks(&self) -> &FriendRemarks {
        &self.remarks
    }

    /// The delivery mode.
    pub fn mode(&self) -> CallbackMode {
        match self.delivery {
            Delivery::Thread { .. } => CallbackMode::Thread,
            Delivery::Pump(_) => CallbackMode::Pump,
        }
    }

    fn queue(&self, item: Item) {
        match &self.delivery {
            Delivery::Thread { tx, .. } => {
                let _ = tx.send(Queued::Item(item));
            }
            Delivery::Pump(q) => {
                if let Ok(mut q) = q.lock() {
                    q.push(item);
                }
            }
        }
    }

    /// Queues an event.
    pub fn emit(&self, name: &str, mut data: Value) {
        self.remarks.annotate(&mut data);
        self.queue(Item::Event(Event {
            name: name.to_owned(),
            data,
        }));
    }

    /// Queues the completion of a front-end call, delivered in order with the events (on the
    /// delivery thread, or by `poll`). Completions are never dropped.
    pub fn complete(&self, completion: Completion) {
        self.queue(Item::Completion(completion));
    }

    /// Pump mode: runs up to `max` queued events and completions on the calling thread, in order;
    /// returns how many ran. Thread mode: 0.
    pub fn poll(&self, max: usize) -> usize {
        let Delivery::Pump(q) = &self.delivery else {
            return 0;
        };
        let mut ran = 0;
        while ran < max {
            // The lock is released before running the item, so an item may emit or poll again.
            let item = match q.lock() {
                Ok(mut q) => q.pop(),
                Err(_) => None,
            };
            let Some(item) = item else { break };
            run(item, &self.handler);
            ran += 1;
        }
        ran
    }

    /// Pump mode: how many items wait for `poll` (thread mode: 0).
    pub fn pending(&self) -> usize {
        match &self.delivery {
            Delivery::Pump(q) => q.lock().map(|q| q.len()).unwrap_or(0),
            Delivery::Thread { .. } => 0,
        }
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

    /// Thread mode: delivers what is queued, then ends the delivery thread, waiting for it unless
    /// called from it. Pump mode: nothing (what is queued stays for `poll`).
    pub fn stop(&self) {
        if let Delivery::Thread { tx, thread } = &self.delivery {
            let _ = tx.send(Queued::Stop);
            let handle = thread.lock().ok().and_then(|mut t| t.take());
            if let Some(handle) = handle
                && handle.thread().id() != std::thread::current().id()
            {
                let _ = handle.join();
            }
        }
    }
}

/// Runs one item; a panicking handler or completion is contained so delivery goes on.
fn run(item: Item, handler: &RwLock<Option<EventHandler>>) {
    let outcome = catch_unwind(AssertUnwindSafe(|| match item {
        Item::Event(ev) => {
            let h = handler.read().ok().and_then(|h| h.clone());
            if let Some(h) = h {
                h(ev);
            }
        }
        Item::Completion(f) => f(),
    }));
    if outcome.is_err() {
        tracing::error!("an event handler or call completion panicked; delivery goes on");
    }
}

fn deliver(rx: Receiver<Queued>, handler: Arc<RwLock<Option<EventHandler>>>) {
    while let Ok(Queued::Item(item)) = rx.recv() {
        run(item, &handler);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(q: &mut PumpQueue) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(item) = q.pop() {
            match item {
                Item::Event(e) if e.name == EVENTS_DROPPED => {
                    out.push(format!("dropped:{}", e.data["count"]))
                }
                Item::Event(e) => out.push(e.name),
                Item::Completion(_) => out.push("completion".into()),
            }
        }
        out
    }

    fn event(name: &str) -> Item {
        Item::Event(Event {
            name: name.into(),
            data: Value::Null,
        })
    }

    #[test]
    fn a_burst_within_capacity_keeps_every_event_in_order() {
        let mut q = PumpQueue::new(10_000);
        for i in 0..10_000 {
            q.push(event(&i.to_string()));
        }
        let got = names(&mut q);
        let want: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn overflow_drops_new_events_and_marks_the_gap_once() {
        let mut q = PumpQueue::new(3);
        for n in ["a", "b", "c", "d", "e"] {
            q.push(event(n));
        }
        q.push(Item::Completion(Box::new(|| {})));
        assert_eq!(q.len(), 4, "completions are queued beyond the capacity");
        // Room for one: the gap marker takes it, the event after it is dropped too.
        assert!(matches!(q.pop(), Some(Item::Event(e)) if e.name == "a"));
        q.push(event("f"));
        assert!(matches!(q.pop(), Some(Item::Event(e)) if e.name == "b"));
        q.push(event("g"));
        assert_eq!(
            names(&mut q),
            ["c", "completion", "dropped:3", "g"].map(String::from)
        );
    }

    #[test]
    fn a_gap_at_the_end_is_reported_when_the_queue_drains() {
        let mut q = PumpQueue::new(1);
        q.push(event("a"));
        q.push(event("b"));
        q.push(event("c"));
        assert_eq!(names(&mut q), ["a", "dropped:2"].map(String::from));
        assert!(q.pop().is_none());
    }

    #[test]
    fn poll_runs_events_and_completions_on_the_caller_thread_in_order() {
        let bus = EventBus::start_with(CallbackMode::Pump, 100).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let me = std::thread::current().id();
        bus.set_handler(Some(Arc::new(move |e: Event| {
            assert_eq!(std::thread::current().id(), me);
            s.lock().unwrap().push(e.name);
        })));
        bus.emit("one", Value::Null);
        let s = seen.clone();
        bus.complete(Box::new(move || s.lock().unwrap().push("done".into())));
        bus.emit("two", Value::Null);
        assert_eq!(bus.pending(), 3);
        assert_eq!(bus.poll(2), 2);
        assert_eq!(bus.poll(10), 1);
        assert_eq!(bus.poll(10), 0);
        assert_eq!(*seen.lock().unwrap(), ["one", "done", "two"]);
    }

    #[test]
    fn a_panicking_handler_does_not_stop_delivery() {
        let bus = EventBus::start().unwrap();
        let (tx, rx) = channel();
        bus.set_handler(Some(Arc::new(move |e: Event| {
            if e.name == "boom" {
                panic!("handler panics");
            }
            let _ = tx.send(e.name);
        })));
        bus.emit("boom", Value::Null);
        bus.emit("after", Value::Null);
        bus.stop();
        assert_eq!(rx.recv().unwrap(), "after");
    }
}
