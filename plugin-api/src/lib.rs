//! The stable C ABI of Chime plugins, the safe Rust side for plugin authors, and (feature `host`)
//! the plugin host the engine uses.
//!
//! - [`abi`]: the `#[repr(C)]` contract (declaration, kinds, vtables, ownership rules). The C
//!   header `include/chime_plugin.h` is generated from it.
//! - [`plugin`]: one trait per kind ([`ContentFilter`], [`Transport`], [`Uploader`]) and the export
//!   macros ([`export_content_filter!`], [`export_transport!`], [`export_uploader!`]) that generate
//!   the entry symbol and catch every panic at the boundary.
//! - [`language`] (ABI 1.1): the translator and speech-to-text kinds ([`Translator`],
//!   [`SpeechToText`], [`export_translator!`], [`export_speech_to_text!`]) and their JSON shapes.
//! - `host` (feature `host`): `host::PluginHost` loads plugins by path with libloading and calls
//!   them on their own threads with timeouts.
//!
//! `docs/plugins.md` is the guide.
#![warn(missing_docs)]

pub mod abi;
#[cfg(feature = "host")]
pub mod host;
pub mod language;
pub mod plugin;

pub use language::{SpeechToText, Translator};
pub use plugin::{
    ContentFilter, ContentKind, Direction, FilterOutcome, PluginCallError, Progress, Transport,
    TransportConnection, TransportEvents, Uploader,
};
