//! End-to-end tests: a real `chime-server` process, real engines, real sled files.

mod messaging;
mod reconnect;
