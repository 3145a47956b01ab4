//! Integration tests of chime-xlog: one binary, one module per behaviour.

// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod damage;
mod helpers;
mod levels;
mod listener;
mod retention;
mod round_trip;
mod threads;
