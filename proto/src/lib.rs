//! `chime-proto`: the Chime wire protocol.
//!
//! - [`pb`]: the prost types generated from `proto/chime.proto` (the schema is the contract; read
//!   its comments).
//! - [`frame`]: encoding frames with the size limit enforced on both sides, for message-oriented
//!   transports (WebSocket) and length-prefixed stream transports (QUIC).
//! - [`codes`]: the numeric error codes shared by server and engine (api.md §6).
//! - [`limits`], [`ids`], [`unread`], [`search`]: rules both sides must apply identically, kept in
//!   one place.

pub mod codes;
pub mod frame;
pub mod ids;
pub mod limits;
pub mod search;
pub mod unread;

/// Generated protocol types (package `chime.v1`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/chime.v1.rs"));
}

/// The protocol version this crate speaks; checked by the server at login.
pub const PROTOCOL_VERSION: u32 = 1;
