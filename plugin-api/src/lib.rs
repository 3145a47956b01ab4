//! The stable C ABI of Chime plugins.
#![warn(missing_docs)]
