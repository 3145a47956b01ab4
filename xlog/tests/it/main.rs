//! Integration tests of chime-xlog: one binary, one module per behaviour.

mod damage;
mod helpers;
mod levels;
mod listener;
mod retention;
mod round_trip;
mod threads;
