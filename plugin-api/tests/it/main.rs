//! Integration tests of the plugin ABI and host: real `cdylib` plugins, built by cargo and loaded
//! by path (see `support`).

mod header;
mod load;
mod profanity;
mod resilience;
mod sharing;
mod support;
mod transport;
mod uploader;
