//! Integration tests of the plugin ABI and host: real `cdylib` plugins, built by cargo and loaded
//! by path (see `support`).

// Helpers, not only `#[test]` functions, unwrap: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod c_plugin;
mod header;
mod language;
mod load;
mod profanity;
mod resilience;
mod sharing;
mod support;
mod transport;
mod uploader;
